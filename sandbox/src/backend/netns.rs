//! The built-in backend: network namespaces on this machine.
//!
//! A lab is one namespace holding a bridge (`sbx-<lab>`) and one namespace per instance
//! (`sbx-<lab>-<instance>`), each joined to the bridge by a veth pair created from inside the
//! namespaces, so no link, address or route ever appears in the host's own namespace and
//! nothing the lab sends can leave the machine. Names resolve through the lab's name server
//! on the bridge address, named by a per-instance `/etc/netns/<ns>/resolv.conf` that
//! `ip netns exec` mounts over `/etc/resolv.conf`, or, for a lab with `names: hosts`, from a
//! per-instance `/etc/netns/<ns>/hosts`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{AddressBook, Backend, BackendError};
use crate::fault::{Injector, Place, Wire, Wiring};
use crate::lab::{LabId, PREFIX};
use crate::scenario::NameService;
use crate::sys::{cmd, netns};

/// First address given to an instance; .1 is the bridge (the supervisor's control address).
const FIRST_HOST: u8 = 10;
pub const MAX_INSTANCES: usize = 240;

pub fn lab_ns(id: &LabId) -> String {
    format!("{PREFIX}-{id}")
}

pub fn instance_ns(id: &LabId, instance: &str) -> String {
    format!("{PREFIX}-{id}-{instance}")
}

pub fn bridge(id: &LabId) -> String {
    format!("{PREFIX}{id}-br")
}

fn veth(id: &LabId, i: usize) -> String {
    format!("{PREFIX}{id}-v{i}")
}

fn ifb(id: &LabId, i: usize) -> String {
    format!("{PREFIX}{id}-i{i}")
}

fn etc_dir(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// The subnet of lab slot `slot`: `10.66.<slot>.0/24`.
pub fn subnet(slot: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 66, slot, 0)
}

pub struct NetnsBackend {
    id: LabId,
    book: AddressBook,
    /// Instance names in address order.
    order: Vec<String>,
    names: NameService,
    created: bool,
}

impl NetnsBackend {
    /// A backend for lab `id` in subnet slot `slot`, with these instances (service names
    /// given per instance).
    pub fn new(
        id: &LabId,
        slot: u8,
        instances: &[(String, String)],
    ) -> Result<NetnsBackend, BackendError> {
        if instances.len() > MAX_INSTANCES {
            return Err(BackendError::Missing(format!(
                "a lab holds at most {MAX_INSTANCES} instances"
            )));
        }
        let net = subnet(slot);
        let mut book = AddressBook {
            subnet: net,
            prefix: 24,
            control: Ipv4Addr::new(10, 66, slot, 1),
            instances: BTreeMap::new(),
        };
        let mut order = Vec::new();
        for (i, (name, service)) in instances.iter().enumerate() {
            book.instances.insert(
                name.clone(),
                (
                    service.clone(),
                    Ipv4Addr::new(10, 66, slot, FIRST_HOST + i as u8),
                ),
            );
            order.push(name.clone());
        }
        Ok(NetnsBackend {
            id: id.clone(),
            book,
            order,
            names: NameService::default(),
            created: false,
        })
    }

    /// How instances find each other: through the lab's name server (the default), which
    /// the caller runs, or from a hosts file.
    pub fn with_names(mut self, names: NameService) -> NetnsBackend {
        self.names = names;
        self
    }

    fn build(&self) -> Result<(), BackendError> {
        let lab = lab_ns(&self.id);
        let br = bridge(&self.id);
        let mut adds = vec![format!("netns add {lab}")];
        adds.extend(
            self.order
                .iter()
                .map(|n| format!("netns add {}", instance_ns(&self.id, n))),
        );
        cmd::ip_batch(None, &adds)?;

        let mut lab_cmds = vec![
            "link set lo up".to_string(),
            format!("link add {br} type bridge"),
            format!("link set {br} addrgenmode none"),
            format!("addr add {}/24 dev {br}", self.book.control),
            format!("link set {br} up"),
        ];
        for (i, name) in self.order.iter().enumerate() {
            let v = veth(&self.id, i);
            let ns = instance_ns(&self.id, name);
            lab_cmds.push(format!("link add {v} type veth peer name eth0 netns {ns}"));
            lab_cmds.push(format!("link set {v} addrgenmode none"));
            lab_cmds.push(format!("link set {v} master {br} up"));
        }
        cmd::ip_batch(Some(&lab), &lab_cmds)?;
        set_bridge_netfilter(&lab)?;

        let hosts = match self.names {
            NameService::Hosts => self.book.hosts_file(),
            NameService::Dns => "127.0.0.1\tlocalhost\n".to_string(),
        };
        let resolv = format!(
            "nameserver {}\noptions timeout:1 attempts:1\n",
            self.book.control
        );
        for name in &self.order {
            let ns = instance_ns(&self.id, name);
            let ip = self
                .book
                .ip_of(name)
                .ok_or_else(|| BackendError::Missing(format!("no address for {name}")))?;
            cmd::ip_batch(
                Some(&ns),
                &[
                    "link set lo up".to_string(),
                    "link set eth0 addrgenmode none".to_string(),
                    format!("addr add {ip}/24 dev eth0"),
                    "link set eth0 up".to_string(),
                ],
            )?;
            let dir = etc_dir(&ns);
            let io = |what: &str| {
                let what = format!("{what} {}", dir.display());
                move |source| BackendError::Io { what, source }
            };
            std::fs::create_dir_all(&dir).map_err(io("creating"))?;
            std::fs::write(dir.join("hosts"), &hosts).map_err(io("writing hosts in"))?;
            std::fs::write(dir.join("resolv.conf"), &resolv)
                .map_err(io("writing resolv.conf in"))?;
        }
        Ok(())
    }

    fn wiring(&self) -> Wiring {
        let mut w = Wiring::default();
        for (i, name) in self.order.iter().enumerate() {
            if let Some(ip) = self.book.ip_of(name) {
                w.by_ip.insert(
                    ip,
                    Wire {
                        netns: instance_ns(&self.id, name),
                        veth: veth(&self.id, i),
                        ifb: ifb(&self.id, i),
                    },
                );
            }
        }
        w
    }
}

/// Bridged IPv4 must pass through the netfilter hooks, or every nftables and iptables fault
/// silently matches nothing.
fn set_bridge_netfilter(lab: &str) -> Result<(), BackendError> {
    let lab = lab.to_string();
    std::thread::scope(|s| {
        s.spawn(|| -> Result<(), BackendError> {
            netns::enter(&lab).map_err(|source| BackendError::Io { what: format!("entering {lab}"), source })?;
            let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
            std::fs::write(path, "1").map_err(|_| {
                BackendError::Missing(format!(
                    "{path} is missing: the kernel needs br_netfilter (`modprobe br_netfilter`) for faults on bridged traffic"
                ))
            })
        })
        .join()
        .unwrap_or_else(|_| Err(BackendError::Missing("netfilter setup thread panicked".into())))
    })
}

impl Backend for NetnsBackend {
    fn create(&mut self) -> Result<(), BackendError> {
        self.created = true;
        if let Err(e) = self.build() {
            let _ = self.destroy();
            return Err(e);
        }
        Ok(())
    }

    fn book(&self) -> &AddressBook {
        &self.book
    }

    fn join(&self) -> Result<(), BackendError> {
        let lab = lab_ns(&self.id);
        netns::enter(&lab).map_err(|source| BackendError::Io {
            what: format!("entering {lab}"),
            source,
        })
    }

    fn command(
        &self,
        instance: &str,
        program: &Path,
    ) -> Result<std::process::Command, BackendError> {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &instance_ns(&self.id, instance)])
            .arg(program);
        Ok(c)
    }

    fn shell_command(
        &self,
        instance: &str,
        program: &str,
    ) -> Result<std::process::Command, BackendError> {
        let ns = instance_ns(&self.id, instance);
        if !netns::exists(&ns) {
            return Err(BackendError::Missing(format!(
                "no instance `{instance}` in lab {}",
                self.id
            )));
        }
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &ns, program]);
        Ok(c)
    }

    fn injector(&self) -> Injector {
        Injector::new(
            Place::new(&lab_ns(&self.id)),
            self.id.as_str(),
            self.book.clone(),
            self.wiring(),
        )
    }

    fn destroy(&mut self) -> Result<(), BackendError> {
        if !self.created {
            return Ok(());
        }
        remove_lab(&self.id)?;
        self.created = false;
        Ok(())
    }
}

/// Namespaces of lab `id` that exist now, instances first and the bridge namespace last.
pub fn namespaces_of(id: &LabId) -> Vec<String> {
    let lab = lab_ns(id);
    let prefix = format!("{lab}-");
    let mut out: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if netns::exists(&lab) {
        out.push(lab);
    }
    out
}

/// Lab ids that have a namespace on this host.
pub fn lab_ids_present() -> Vec<LabId> {
    let prefix = format!("{PREFIX}-");
    let mut ids: Vec<LabId> = netns::list()
        .iter()
        .filter_map(|n| n.strip_prefix(&prefix))
        .filter_map(|rest| LabId::parse(rest.split('-').next().unwrap_or("")))
        .collect();
    let etc: Vec<LabId> = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|n| LabId::parse(n.strip_prefix(&prefix)?.split('-').next()?))
                .collect()
        })
        .unwrap_or_default();
    ids.extend(etc);
    ids.sort();
    ids.dedup();
    ids
}

/// Stops every process in the lab's namespaces (except the caller) and deletes the
/// namespaces and name files. Everything the lab put in the kernel lives in those
/// namespaces, so this removes it all.
pub fn remove_lab(id: &LabId) -> Result<(), BackendError> {
    let spaces = namespaces_of(id);
    stop_processes(&spaces, Duration::from_secs(3));
    let dels: Vec<String> = spaces.iter().map(|n| format!("netns del {n}")).collect();
    let result = cmd::ip_batch(None, &dels);
    if let Ok(dir) = std::fs::read_dir("/etc/netns") {
        let mine = lab_ns(id);
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == mine || name.starts_with(&format!("{mine}-")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    result.map_err(BackendError::from)
}

/// SIGTERM, then SIGKILL after `grace`, to every process living in `spaces`.
fn stop_processes(spaces: &[String], grace: Duration) {
    let me = std::process::id() as i32;
    let find = || -> Vec<i32> {
        let mut all: Vec<i32> = spaces
            .iter()
            .flat_map(|s| netns::pids(s))
            .filter(|p| *p != me)
            .collect();
        all.sort();
        all.dedup();
        all
    };
    let targets = find();
    if targets.is_empty() {
        return;
    }
    for p in &targets {
        let _ = kill(Pid::from_raw(*p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if targets
            .iter()
            .all(|p| kill(Pid::from_raw(*p), None).is_err() || is_zombie(*p))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for p in find() {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// An exited child its parent has not reaped yet still answers kill(0).
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
