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
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Backend, BackendError, BackendKind, Exit, Handle, LabSpec, Run, Started, Wire};
use crate::fault::{Link, Sites};
use crate::ids::{LabId, PREFIX};
use crate::scenario::NameService;
use crate::sys::cmd;
use crate::sys::netns::{self, NsPath};
use crate::topology::{AddressBook, Subnet};

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

pub struct NetnsBackend {
    id: LabId,
    book: AddressBook,
    /// Instance names in address order.
    order: Vec<String>,
    names: NameService,
    binaries: PathBuf,
}

impl NetnsBackend {
    /// Builds the lab's namespaces, bridge and links. On error, whatever was created is
    /// removed again.
    pub fn create(spec: &LabSpec) -> Result<NetnsBackend, BackendError> {
        let book = AddressBook::plan(spec.subnet, &spec.instances).ok_or_else(|| {
            BackendError::Capacity(format!(
                "a lab holds at most {} instances; this one has {}",
                Subnet::MAX_INSTANCES,
                spec.instances.len()
            ))
        })?;
        let b = NetnsBackend {
            id: spec.id.clone(),
            book,
            order: spec.instances.iter().map(|(n, _)| n.clone()).collect(),
            names: spec.names,
            binaries: spec.binaries.clone(),
        };
        if let Err(e) = b.build() {
            let _ = remove_lab(&b.id);
            return Err(e);
        }
        Ok(b)
    }

    fn build(&self) -> Result<(), BackendError> {
        let lab = lab_ns(&self.id);
        let br = bridge(&self.id);
        let prefix = self.book.prefix;
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
            format!("addr add {}/{prefix} dev {br}", self.book.control),
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
        set_bridge_netfilter(&NsPath::named(&lab))?;

        let hosts = match self.names {
            NameService::Hosts => self.book.hosts_file(),
            NameService::Dns => "127.0.0.1\tlocalhost\n".to_string(),
        };
        let resolv = self.book.resolv_conf();
        for name in &self.order {
            let ns = instance_ns(&self.id, name);
            let ip = self
                .book
                .ip_of(name)
                .ok_or_else(|| BackendError::NoInstance {
                    lab: self.id.clone(),
                    instance: name.clone(),
                })?;
            cmd::ip_batch(
                Some(&ns),
                &[
                    "link set lo up".to_string(),
                    "link set eth0 addrgenmode none".to_string(),
                    format!("addr add {ip}/{prefix} dev eth0"),
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
}

/// Bridged IPv4 must pass through the netfilter hooks, or every nftables and iptables fault
/// silently matches nothing.
pub(crate) fn set_bridge_netfilter(ns: &NsPath) -> Result<(), BackendError> {
    ns.run(|| {
        let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
        std::fs::write(path, "1").map_err(|_| {
            format!(
                "{path} is missing: the kernel needs br_netfilter (`modprobe br_netfilter`) for faults on bridged traffic"
            )
        })
    })
    .map_err(BackendError::Unavailable)
}

struct ChildExit(std::process::Child);

impl Exit for ChildExit {
    fn wait(mut self: Box<Self>) -> String {
        match self.0.wait() {
            Ok(status) => status.to_string(),
            Err(e) => format!("unknown status ({e})"),
        }
    }
}

impl Backend for NetnsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Netns
    }

    fn book(&self) -> &AddressBook {
        &self.book
    }

    fn join(&self) -> Result<(), BackendError> {
        let lab = NsPath::named(&lab_ns(&self.id));
        lab.enter().map_err(|source| BackendError::Io {
            what: format!("entering {lab}"),
            source,
        })
    }

    fn start(&self, run: &Run) -> Result<Started, BackendError> {
        let ns = NsPath::named(&instance_ns(&self.id, &run.instance));
        let netns_inode = ns.inode().map_err(|_| BackendError::NoInstance {
            lab: self.id.clone(),
            instance: run.instance.clone(),
        })?;
        let io = |what: String| move |source| BackendError::Io { what, source };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&run.log)
            .map_err(io(format!("opening {}", run.log.display())))?;
        let err = log
            .try_clone()
            .map_err(io(format!("opening {}", run.log.display())))?;
        let binary = self.binaries.join(&run.program);
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &instance_ns(&self.id, &run.instance)])
            .arg(&binary)
            .args(&run.args)
            .envs(&run.env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // A process group of its own: Ctrl-C at the terminal that started the lab never
        // reaches the services.
        c.process_group(0);
        let child = c
            .spawn()
            .map_err(io(format!("starting {}", binary.display())))?;
        Ok(Started {
            handle: Handle {
                pid: child.id(),
                netns: ns,
                netns_inode,
                node: None,
            },
            exit: Box::new(ChildExit(child)),
        })
    }

    fn stop(&self, _instance: &str, handle: &Handle) -> Result<(), BackendError> {
        stop_pids(&[handle.pid as i32], Duration::from_millis(250));
        Ok(())
    }

    fn sites(&self) -> Result<Sites, BackendError> {
        let links = self
            .order
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let ip = self.book.ip_of(name)?;
                Some((
                    ip,
                    Link {
                        instance: NsPath::named(&instance_ns(&self.id, name)),
                        veth: veth(&self.id, i),
                        ifb: ifb(&self.id, i),
                    },
                ))
            })
            .collect::<BTreeMap<_, _>>();
        Ok(Sites::Router {
            ns: NsPath::named(&lab_ns(&self.id)),
            links,
        })
    }

    fn wire(&self) -> Wire {
        let ns = NsPath::named(&lab_ns(&self.id));
        Wire {
            router_inode: ns.inode().ok(),
            netns: Some(ns),
            device: bridge(&self.id),
        }
    }

    fn destroy(&mut self) -> Result<(), BackendError> {
        remove_lab(&self.id)
    }
}

/// `ip netns exec` into an instance's namespace, which also mounts its name files over /etc.
pub fn shell_command(id: &LabId, instance: &str, program: &str) -> Option<std::process::Command> {
    let ns = instance_ns(id, instance);
    netns::exists(&ns).then(|| {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &ns, program]);
        c
    })
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
    let me = std::process::id() as i32;
    let mut pids: Vec<i32> = spaces
        .iter()
        .flat_map(|s| NsPath::named(s).pids())
        .filter(|p| *p != me)
        .collect();
    pids.sort();
    pids.dedup();
    stop_pids(&pids, Duration::from_secs(3));
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

/// SIGTERM, then SIGKILL to those still alive after `grace`.
fn stop_pids(targets: &[i32], grace: Duration) {
    if targets.is_empty() {
        return;
    }
    for p in targets {
        let _ = kill(Pid::from_raw(*p), Signal::SIGTERM);
    }
    let gone = |p: &i32| kill(Pid::from_raw(*p), None).is_err() || is_zombie(*p);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if targets.iter().all(gone) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for p in targets.iter().filter(|p| !gone(p)) {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
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
