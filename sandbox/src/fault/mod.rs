//! The fault engine: turns a planned fault into kernel state (or an app-level switch) and
//! takes it away again. Each technique's installed fault is a guard that undoes exactly what it
//! did when removed or dropped, so several faults on one service compose, and removing one
//! leaves the others in place.
//!
//! | fault | technique |
//! |---|---|
//! | loss, reset, blackhole, partition, syn-drop | nftables table per fault, forward hook |
//! | delay (jitter) | iptables NFQUEUE rule + the lab's delay engine |
//! | bandwidth | htb class (+ ifb for traffic leaving an instance) |
//! | corrupt | eBPF tc program (TCX) + checksum offload off |
//! | slow, hang, leak, cpu-burn | the Go service's `/admin/fault` switch |
//! | cpu-starve | the service pinned to one CPU, busy threads of the supervisor on it |
//! | dns | a rule at the lab's name server |

mod app;
mod corrupt;
mod delay;
mod dns;
mod nft;
pub mod selector;
mod shape;
mod starve;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use crate::backend::AddressBook;
use crate::plan::{Effect, FaultPlan, FaultTarget};
use crate::sys::cmd::CmdError;

/// The name of every thread a fault runs in the supervisor. Thread names are readable by every
/// user (`/proc/<pid>/task/*/comm`, `ps -L`), so they must not say which fault it is.
const NEUTRAL_THREAD_NAME: &str = "sbx-fault";

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("delay engine: {0}")]
    Engine(String),
    #[error("eBPF: {0}")]
    Ebpf(String),
    #[error("app-fault switch: {0}")]
    App(String),
    #[error("{0}")]
    Unsupported(String),
}

/// The network namespace where a lab's packet faults live: the one holding its bridge, so
/// faults act on traffic between instances and are invisible from inside them.
#[derive(Debug, Clone)]
pub struct Place {
    netns: String,
}

impl Place {
    pub fn new(netns: &str) -> Place {
        Place {
            netns: netns.to_string(),
        }
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    fn command(&self, program: &str) -> Result<std::process::Command, FaultError> {
        Ok(crate::sys::netns::command(&self.netns, program)?)
    }
}

/// How an instance is plugged into the lab bridge.
#[derive(Debug, Clone)]
pub struct Wire {
    /// The instance's own namespace (its end of the veth is `eth0`).
    pub netns: String,
    /// Its veth's end in the bridge namespace.
    pub veth: String,
    /// Name for an ifb device that shapes traffic leaving the instance.
    pub ifb: String,
}

#[derive(Debug, Clone, Default)]
pub struct Wiring {
    pub by_ip: BTreeMap<Ipv4Addr, Wire>,
}

/// Installs a lab's faults; owns what they share (delay engine, htb roots, offload state).
pub struct Injector {
    place: Place,
    lab: String,
    book: AddressBook,
    wiring: Wiring,
    delay: Mutex<Option<delay::DelayEngine>>,
    shaper: shape::SharedShaper,
    offloads: corrupt::Offloads,
    /// The lab's name server, where it runs one.
    names: Option<crate::names::Rules>,
}

/// An installed fault. Removing it (or dropping it) undoes it.
pub enum Active {
    Nft(nft::NftFault),
    Delay(delay::DelayFault),
    Shape(shape::ShapeFault),
    Corrupt(corrupt::CorruptFault),
    App(app::AppFault),
    Starve(starve::StarveFault),
    Dns(dns::DnsFault),
}

impl Active {
    pub fn remove(self) -> Result<(), FaultError> {
        match self {
            Active::Nft(f) => f.remove(),
            Active::Delay(f) => f.remove(),
            Active::Shape(f) => f.remove(),
            Active::Corrupt(f) => f.remove(),
            Active::App(f) => f.remove(),
            Active::Starve(f) => f.remove(),
            Active::Dns(f) => f.remove(),
        }
    }

    /// Packets (lookups, for a DNS fault) the fault has acted on so far, where the technique
    /// counts them.
    pub fn packets(&self) -> Option<u64> {
        match self {
            Active::Nft(f) => f.packets().ok(),
            Active::Delay(f) => Some(f.released()),
            Active::Corrupt(f) => Some(f.counts().1),
            Active::Dns(f) => Some(f.lookups()),
            Active::Shape(_) | Active::App(_) | Active::Starve(_) => None,
        }
    }
}

impl Injector {
    pub fn new(place: Place, lab: &str, book: AddressBook, wiring: Wiring) -> Injector {
        Injector {
            place,
            lab: lab.to_string(),
            book,
            wiring,
            delay: Mutex::new(None),
            shaper: Arc::default(),
            offloads: Arc::default(),
            names: None,
        }
    }

    /// Lets `dns` faults act at the lab's name server.
    pub fn with_names(mut self, rules: crate::names::Rules) -> Injector {
        self.names = Some(rules);
        self
    }

    /// Installs fault number `index` of the plan.
    pub fn inject(&self, index: usize, f: &FaultPlan) -> Result<Active, FaultError> {
        let comment = format!("sandbox lab={} fault={}", self.lab, f.id);
        if f.kind.is_process() {
            let ips: Vec<Ipv4Addr> = match &f.target {
                FaultTarget::Service {
                    service,
                    replica: Some(r),
                    ..
                } => self
                    .book
                    .ip_of(&format!("{service}-{r}"))
                    .into_iter()
                    .collect(),
                FaultTarget::Service { service, .. } => self.book.ips_of_service(service),
                FaultTarget::Link { .. } => {
                    return Err(FaultError::Unsupported(format!(
                        "{} acts on a service, not a link",
                        f.effect
                    )));
                }
            };
            if let Effect::CpuStarve { hogs } = f.effect {
                let pids: Vec<i32> = ips
                    .iter()
                    .filter_map(|ip| self.wiring.by_ip.get(ip))
                    .flat_map(|w| crate::sys::netns::pids(&w.netns))
                    .collect();
                return starve::install(&pids, hogs).map(Active::Starve);
            }
            return app::install(&f.effect, &ips).map(Active::App);
        }
        if let Effect::Dns { .. } = f.effect {
            let rules = self.names.as_ref().ok_or_else(|| {
                FaultError::Unsupported(
                    "a dns fault needs the lab's name server (topology.names: dns)".into(),
                )
            })?;
            return dns::install(rules, &f.target, &f.effect, &self.book).map(Active::Dns);
        }
        let sels = selector::selectors(&f.target, &f.effect, &self.book);
        let index =
            u16::try_from(index).map_err(|_| FaultError::Unsupported("too many faults".into()))?;
        match &f.effect {
            e if nft::handles(e) => {
                let table = format!("{}_{}_f{index}", crate::lab::PREFIX, self.lab);
                nft::install(&self.place, &table, &comment, e, &sels).map(Active::Nft)
            }
            Effect::Delay { delay, jitter } => {
                let engine = {
                    let mut slot = self
                        .delay
                        .lock()
                        .map_err(|_| FaultError::Engine("lock poisoned".into()))?;
                    match &*slot {
                        Some(e) => e.clone(),
                        None => {
                            let e = delay::DelayEngine::start(&self.place)?;
                            *slot = Some(e.clone());
                            e
                        }
                    }
                };
                let chain = format!("{}-{}-F{index}", crate::lab::PREFIX, self.lab).to_uppercase();
                let hold = delay::Hold {
                    queue: 100 + index,
                    delay: *delay,
                    jitter: *jitter,
                };
                delay::install(&self.place, &engine, &chain, &comment, hold, &sels)
                    .map(Active::Delay)
            }
            Effect::Bandwidth { bits_per_sec } => shape::install(
                &self.place,
                &self.shaper,
                &self.wiring,
                0x10 + index,
                *bits_per_sec,
                &sels,
            )
            .map(Active::Shape),
            Effect::Corrupt { percent } => {
                corrupt::install(&self.place, &self.offloads, &self.wiring, *percent, &sels)
                    .map(Active::Corrupt)
            }
            other => Err(FaultError::Unsupported(format!("no technique for {other}"))),
        }
    }
}
