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
//! | slow, hang, leak, cpu-burn, unready | the Go service's `/admin/fault` switch |
//! | cpu-starve | the service pinned to one CPU, busy threads of the supervisor on it |
//! | dns | a rule at the lab's name server |
//! | dns on a cluster | loss or delay of the queries at the forward hook of their pods' nodes |
//! | no-endpoints | the Service's selector, through the cluster's API (kube backend) |

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

use crate::ids::PREFIX;
use crate::plan::{Effect, FaultPlan, FaultTarget};
use crate::sys::cmd::CmdError;
use crate::sys::netns::NsPath;
use crate::topology::AddressBook;
use selector::Selector;

/// The name of every thread a fault runs in the supervisor. Thread names are readable by every
/// user (`/proc/<pid>/task/*/comm`, `ps -L`), so they must not say which fault it is.
const NEUTRAL_THREAD_NAME: &str = "sbx-fault";

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// A host tool (nft, iptables-restore, tc, ip, ethtool) refused a change.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// Entering a site's namespace or reading the host failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The delay engine (NFQUEUE consumer) or a shared table's lock failed.
    #[error("delay engine: {0}")]
    Engine(String),
    /// Loading or attaching the corruption program failed.
    #[error("eBPF: {0}")]
    Ebpf(String),
    /// A service's `/admin/fault` switch did not take the change.
    #[error("app-fault switch: {0}")]
    App(String),
    /// The cluster's API server refused a change.
    #[error("cluster API: {0}")]
    Api(String),
    /// The fault cannot act on this target here (a link for a process fault, no name
    /// server for a dns fault, nothing running to starve).
    #[error("{0}")]
    Unsupported(String),
}

/// Where the fault engine installs its techniques. The backend names the sites; the
/// techniques (pure rule builders plus one owner per kernel object) work at either kind.
#[derive(Debug, Clone)]
pub enum Sites {
    /// One namespace that forwards every packet between instances (the netns backend's
    /// bridge namespace): forward hooks there, and each instance's lab-side link end.
    Router {
        ns: NsPath,
        links: BTreeMap<Ipv4Addr, Link>,
    },
    /// Each instance's own namespace (a container's, a pod's): input and output hooks and
    /// its `eth0`. Traffic towards an instance is caught where it arrives, traffic from an
    /// instance to anyone where it leaves.
    Instances { by_ip: BTreeMap<Ipv4Addr, NsPath> },
}

/// How an instance is plugged into a router site.
#[derive(Debug, Clone)]
pub struct Link {
    /// The instance's own namespace (its end of the link is `eth0`).
    pub instance: NsPath,
    /// The link's end in the router namespace.
    pub veth: String,
    /// Name for an ifb device that shapes traffic leaving the instance.
    pub ifb: String,
}

/// The netfilter hook a rule sits at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    Forward,
    Input,
    Output,
}

impl Hook {
    /// The nftables hook (and chain) name.
    pub fn nft(self) -> &'static str {
        match self {
            Hook::Forward => "forward",
            Hook::Input => "input",
            Hook::Output => "output",
        }
    }

    /// The iptables built-in chain.
    pub fn iptables(self) -> &'static str {
        match self {
            Hook::Forward => "FORWARD",
            Hook::Input => "INPUT",
            Hook::Output => "OUTPUT",
        }
    }
}

/// One place a fault's packets are matched: a namespace, a hook, and what to match there.
#[derive(Debug, Clone)]
pub struct Point {
    pub ns: NsPath,
    pub hook: Hook,
    pub sels: Vec<Selector>,
}

impl Sites {
    /// Where each selector is matched: at the router's forward hook, or at each receiving
    /// instance's input (each sending instance's output when the selector names no receiver).
    pub fn points(&self, sels: &[Selector]) -> Vec<Point> {
        match self {
            Sites::Router { ns, .. } => vec![Point {
                ns: ns.clone(),
                hook: Hook::Forward,
                sels: sels.to_vec(),
            }],
            Sites::Instances { by_ip } => {
                let mut at: BTreeMap<(NsPath, Hook), Vec<Selector>> = BTreeMap::new();
                for sel in sels {
                    let (hook, ends) = if sel.dst.is_empty() {
                        (Hook::Output, &sel.src)
                    } else {
                        (Hook::Input, &sel.dst)
                    };
                    for ip in ends {
                        let Some(ns) = by_ip.get(ip) else { continue };
                        let mut one = sel.clone();
                        match hook {
                            Hook::Output => one.src = vec![*ip],
                            _ => one.dst = vec![*ip],
                        }
                        at.entry((ns.clone(), hook)).or_default().push(one);
                    }
                }
                at.into_iter()
                    .map(|((ns, hook), sels)| Point { ns, hook, sels })
                    .collect()
            }
        }
    }

    /// The namespace of the instance at `ip`.
    pub fn instance_ns(&self, ip: Ipv4Addr) -> Option<&NsPath> {
        match self {
            Sites::Router { links, .. } => links.get(&ip).map(|l| &l.instance),
            Sites::Instances { by_ip } => by_ip.get(&ip),
        }
    }

    pub fn instance_ips(&self) -> Vec<Ipv4Addr> {
        match self {
            Sites::Router { links, .. } => links.keys().copied().collect(),
            Sites::Instances { by_ip } => by_ip.keys().copied().collect(),
        }
    }
}

impl Injector {
    /// A node partition: at the node's forward hook, every packet between the lab's pods
    /// elsewhere and anything on this node is dropped (only this lab's pods: a shared cluster's
    /// other labs keep their network).
    fn cut_node(&self, index: u16, node: &str, comment: &str) -> Result<nft::NftFault, FaultError> {
        let site = self.nodes.get(node).ok_or_else(|| {
            FaultError::Unsupported(format!(
                "the lab runs on no node `{node}` (node faults need the kube backend)"
            ))
        })?;
        let elsewhere: Vec<Ipv4Addr> = self
            .nodes
            .iter()
            .filter(|(name, _)| name.as_str() != node)
            .flat_map(|(_, s)| s.instances.iter().filter_map(|i| self.book.ip_of(i)))
            .collect();
        if elsewhere.is_empty() {
            return Err(FaultError::Unsupported(format!(
                "no pod of the lab runs on a node other than `{node}`: nothing to cut"
            )));
        }
        let sels = vec![
            Selector {
                src: elsewhere.clone(),
                dst: Vec::new(),
                dport: None,
                sport: None,
            },
            Selector {
                src: Vec::new(),
                dst: elsewhere,
                dport: None,
                sport: None,
            },
        ];
        let point = Point {
            ns: site.netns.clone(),
            hook: Hook::Forward,
            sels,
        };
        let table = format!("{PREFIX}_{}_f{index}", self.lab);
        nft::install(&[point], &table, comment, &Effect::NodePartition)
    }

    /// Where packets from the instances `sels` name leave their nodes: the forward hook of
    /// each node that runs one, matching its instances there.
    fn at_nodes(&self, sels: &[Selector]) -> Result<Vec<Point>, FaultError> {
        let points: Vec<Point> = self
            .nodes
            .values()
            .filter_map(|site| {
                let here: Vec<Ipv4Addr> = site
                    .instances
                    .iter()
                    .filter_map(|i| self.book.ip_of(i))
                    .collect();
                let sels: Vec<Selector> = sels
                    .iter()
                    .filter_map(|s| {
                        let src: Vec<Ipv4Addr> = s
                            .src
                            .iter()
                            .copied()
                            .filter(|ip| here.contains(ip))
                            .collect();
                        (!src.is_empty()).then(|| Selector { src, ..s.clone() })
                    })
                    .collect();
                (!sels.is_empty()).then(|| Point {
                    ns: site.netns.clone(),
                    hook: Hook::Forward,
                    sels,
                })
            })
            .collect();
        if points.is_empty() {
            return Err(FaultError::Unsupported(
                "none of the fault's pods runs on a node the lab knows".into(),
            ));
        }
        Ok(points)
    }

    /// Where `sels` are matched; none at all would make a fault that touches nothing and
    /// still says it is active.
    fn points(&self, sels: &[Selector]) -> Result<Vec<Point>, FaultError> {
        let points = self.sites.points(sels);
        if points.is_empty() && !sels.is_empty() {
            return Err(FaultError::Unsupported(
                "no instance of the lab is where this fault's packets pass".into(),
            ));
        }
        Ok(points)
    }
}

/// Removes what lab `lab`'s faults left in a namespace that outlives the lab (a cluster
/// node's), after a supervisor that could not remove them itself.
pub fn sweep_shared(ns: &NsPath, lab: &str) -> Result<(), FaultError> {
    nft::remove_tables(ns, lab)?;
    delay::remove_chains(ns, lab)
}

/// What lab `lab`'s faults still hold in a namespace that outlives the lab.
pub fn left_in_shared(ns: &NsPath, lab: &str) -> Vec<String> {
    let tables = nft::tables_of(ns, lab)
        .into_iter()
        .map(|t| format!("nftables table {t} in {ns}"));
    let chains = delay::chains_of(ns, lab)
        .into_iter()
        .map(|c| format!("iptables chain {c} in {ns}"));
    tables.chain(chains).collect()
}

/// Installs a lab's faults; owns what they share (delay engine, htb roots, offload state).
pub struct Injector {
    sites: Sites,
    lab: String,
    book: AddressBook,
    /// One delay engine per namespace that holds a delay fault (queues are per namespace).
    delay: Mutex<BTreeMap<NsPath, delay::DelayEngine>>,
    shaper: shape::SharedShaper,
    offloads: corrupt::Offloads,
    /// The lab's name server, where it runs one.
    names: Option<crate::names::Rules>,
    /// The cluster's nodes, by role, where the lab runs on one.
    nodes: BTreeMap<String, NodeSite>,
    /// The cluster's API, where the lab runs on one.
    api: Option<Arc<dyn ClusterApi>>,
}

/// A cluster node as the fault engine sees it: the network namespace that forwards its pods'
/// packets, and the lab's instances whose pods run there.
#[derive(Debug, Clone)]
pub struct NodeSite {
    pub netns: NsPath,
    pub instances: Vec<String>,
}

/// Faults made through a cluster's API rather than in a kernel (a Service's selector). The
/// backend that talks to the cluster makes them, so its client library stays behind it.
pub trait ClusterApi: Send + Sync {
    /// Makes `effect` on `service`; the returned change undoes it.
    fn install(&self, effect: &Effect, service: &str) -> Result<Box<dyn ApiChange>, FaultError>;
}

/// One change made through a cluster's API. A lab's namespace holds every object such a
/// change touches, so a lab taken down after a crash leaves none behind.
pub trait ApiChange: Send + Sync {
    fn remove(self: Box<Self>) -> Result<(), FaultError>;
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
    Api(Box<dyn ApiChange>),
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
            Active::Api(f) => f.remove(),
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
            Active::Shape(_) | Active::App(_) | Active::Starve(_) | Active::Api(_) => None,
        }
    }
}

impl Injector {
    pub fn new(sites: Sites, lab: &str, book: AddressBook) -> Injector {
        Injector {
            sites,
            lab: lab.to_string(),
            book,
            delay: Mutex::default(),
            shaper: Arc::default(),
            offloads: Arc::default(),
            names: None,
            nodes: BTreeMap::new(),
            api: None,
        }
    }

    /// Lets `no-endpoints` faults act through the cluster's API.
    pub fn with_api(mut self, api: Option<Arc<dyn ClusterApi>>) -> Injector {
        self.api = api;
        self
    }

    /// Lets `node-partition` and cluster `dns` faults act on the cluster's nodes.
    pub fn with_nodes(mut self, nodes: BTreeMap<String, NodeSite>) -> Injector {
        self.nodes = nodes;
        self
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
                FaultTarget::Link { .. } | FaultTarget::Node { .. } => {
                    return Err(FaultError::Unsupported(format!(
                        "{} acts on a service, not a link or node",
                        f.effect
                    )));
                }
            };
            if let Effect::CpuStarve { hogs } = f.effect {
                let pids: Vec<i32> = ips
                    .iter()
                    .filter_map(|ip| self.sites.instance_ns(*ip))
                    .flat_map(|ns| ns.pids())
                    .collect();
                return starve::install(&pids, hogs).map(Active::Starve);
            }
            return app::install(&f.effect, &ips).map(Active::App);
        }
        if let Effect::NoEndpoints = f.effect {
            let (Some(api), FaultTarget::Service { service, .. }) = (&self.api, &f.target) else {
                return Err(FaultError::Unsupported(format!(
                    "{} needs a service on a cluster (the kube backend)",
                    f.effect
                )));
            };
            return api.install(&f.effect, service).map(Active::Api);
        }
        // Where the packets are matched, when not where `sites` says.
        let (effect, sels, at_nodes) = match (&f.effect, &self.names) {
            (Effect::Dns { .. }, Some(rules)) => {
                return dns::install(rules, &f.target, &f.effect, &self.book).map(Active::Dns);
            }
            // A cluster's pods ask cluster DNS: the fault acts on their queries on the way,
            // at their nodes, so in the pod (and to a probe there) the server is slow or mute.
            (Effect::Dns { .. }, None) if !self.nodes.is_empty() => {
                let (effect, sels) = dns::as_packets(&f.target, &f.effect, &self.book)?;
                let points = self.at_nodes(&sels)?;
                (effect, sels, Some(points))
            }
            (Effect::Dns { .. }, None) => {
                return Err(FaultError::Unsupported(
                    "a dns fault needs the lab's name server (topology.names: dns)".into(),
                ));
            }
            (e, _) => (
                e.clone(),
                selector::selectors(&f.target, &f.effect, &self.book),
                None,
            ),
        };
        let points = |sels: &[Selector]| match &at_nodes {
            Some(points) => Ok(points.clone()),
            None => self.points(sels),
        };
        let index =
            u16::try_from(index).map_err(|_| FaultError::Unsupported("too many faults".into()))?;
        if let FaultTarget::Node { node } = &f.target {
            return self.cut_node(index, node, &comment).map(Active::Nft);
        }
        match &effect {
            e if nft::handles(e) => {
                let table = format!("{PREFIX}_{}_f{index}", self.lab);
                nft::install(&points(&sels)?, &table, &comment, e).map(Active::Nft)
            }
            Effect::Delay { delay, jitter } => {
                let points = points(&sels)?;
                let mut engines = Vec::new();
                {
                    let mut running = self
                        .delay
                        .lock()
                        .map_err(|_| FaultError::Engine("lock poisoned".into()))?;
                    for p in &points {
                        let engine = match running.get(&p.ns) {
                            Some(e) => e.clone(),
                            None => {
                                let e = delay::DelayEngine::start(&p.ns)?;
                                running.insert(p.ns.clone(), e.clone());
                                e
                            }
                        };
                        engines.push(engine);
                    }
                }
                let chain = format!("{PREFIX}-{}-F{index}", self.lab).to_uppercase();
                let hold = delay::Hold {
                    queue: 100 + index,
                    delay: *delay,
                    jitter: *jitter,
                };
                delay::install(points.into_iter().zip(engines), &chain, &comment, hold)
                    .map(Active::Delay)
            }
            Effect::Bandwidth { bits_per_sec } => shape::install(
                &self.sites,
                &self.lab,
                &self.shaper,
                0x10 + index,
                *bits_per_sec,
                &sels,
            )
            .map(Active::Shape),
            Effect::Corrupt { percent } => {
                corrupt::install(&self.sites, &self.offloads, *percent, &sels).map(Active::Corrupt)
            }
            other => Err(FaultError::Unsupported(format!("no technique for {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(src: &[u8], dst: &[u8]) -> Selector {
        let ip = |n: &u8| Ipv4Addr::new(10, 9, 0, *n);
        Selector {
            src: src.iter().map(ip).collect(),
            dst: dst.iter().map(ip).collect(),
            dport: Some(80),
            sport: None,
        }
    }

    #[test]
    fn instance_sites_catch_packets_where_they_arrive_or_leave() {
        let by_ip = [10u8, 11, 12]
            .iter()
            .map(|n| (Ipv4Addr::new(10, 9, 0, *n), NsPath::of_pid(u32::from(*n))))
            .collect();
        let sites = Sites::Instances { by_ip };
        let points = sites.points(&[sel(&[10], &[11, 12]), sel(&[12], &[])]);
        let seen: Vec<(String, Hook, Vec<Ipv4Addr>, Vec<Ipv4Addr>)> = points
            .iter()
            .map(|p| {
                (
                    p.ns.to_string(),
                    p.hook,
                    p.sels[0].src.clone(),
                    p.sels[0].dst.clone(),
                )
            })
            .collect();
        let a = |n| Ipv4Addr::new(10, 9, 0, n);
        assert_eq!(
            seen,
            vec![
                (
                    "/proc/11/ns/net".into(),
                    Hook::Input,
                    vec![a(10)],
                    vec![a(11)]
                ),
                (
                    "/proc/12/ns/net".into(),
                    Hook::Input,
                    vec![a(10)],
                    vec![a(12)]
                ),
                ("/proc/12/ns/net".into(), Hook::Output, vec![a(12)], vec![]),
            ]
        );
    }

    #[test]
    fn a_router_site_matches_everything_at_its_forward_hook() {
        let sites = Sites::Router {
            ns: NsPath::named("sbx-ab12c"),
            links: BTreeMap::new(),
        };
        let points = sites.points(&[sel(&[10], &[11]), sel(&[12], &[])]);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].hook, Hook::Forward);
        assert_eq!(points[0].sels.len(), 2);
    }
}
