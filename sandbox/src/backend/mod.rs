//! Where a lab runs. A backend builds the lab's network, starts, waits for and stops its
//! instances, names the sites where the fault engine installs faults, and publishes what a
//! probe's scope is made of (namespace paths and inodes, pids, addresses). It also finds and
//! sweeps what a crashed lab left behind. Everything else (the supervisor, faults, probes,
//! commands) talks to [`Backend`] and never to one backend's details.

pub mod docker;
pub mod kube;
pub mod netns;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::scenario::BackendKind;

use crate::fault::{ClusterApi, NodeSite, Sites};
use crate::ids::LabId;
use crate::scenario::NameService;
use crate::sys::cmd::CmdError;
use crate::sys::netns::NsPath;
use crate::topology::{AddressBook, Subnet};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error(transparent)]
    Sys(#[from] std::io::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The lab asks for more than the backend can give (instances, addresses).
    #[error("{0}")]
    Capacity(String),
    /// Something the backend needs is not on this machine (a daemon, a kernel feature).
    #[error("{0}")]
    Unavailable(String),
    /// No such instance in the lab.
    #[error("no instance `{instance}` in lab {lab}")]
    NoInstance { lab: LabId, instance: String },
    /// The container engine refused or failed a request.
    #[error("docker: {0}")]
    Docker(String),
    /// The cluster's API server refused or failed a request.
    #[error("kubernetes: {0}")]
    Kube(String),
}

/// What a backend needs to build a lab.
#[derive(Debug, Clone)]
pub struct LabSpec {
    pub id: LabId,
    pub subnet: Subnet,
    /// (instance, service) pairs, the load generator included.
    pub instances: Vec<(String, String)>,
    pub names: NameService,
    /// Directory of the compiled Go programs.
    pub binaries: PathBuf,
    /// The lab's state directory (the load generator writes its figures there).
    pub dir: PathBuf,
    /// Every instance's run, in start order, for a backend that declares the whole lab at
    /// once (Kubernetes); the others start each instance when `start` asks.
    pub runs: Vec<Run>,
    /// Each service's data port.
    pub ports: BTreeMap<String, u16>,
    /// The cluster a Kubernetes lab runs on (sandbox's only cluster when absent).
    pub cluster: Option<String>,
    /// The prefix of a Kubernetes lab's namespace, where not sandbox's own.
    pub namespace_prefix: Option<String>,
}

/// One instance to start.
#[derive(Debug, Clone)]
pub struct Run {
    pub instance: String,
    /// The Go program, by name (`gateway`, `loadgen`, …).
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Where its standard output and error go.
    pub log: PathBuf,
    /// The cluster node it must run on, by role, where the scenario places it.
    pub node: Option<String>,
}

/// What the rest of sandbox may know about a running instance; published in `state.json`,
/// so probes and commands never recompute a backend's details.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Handle {
    /// The instance's main process, as the host sees it.
    pub pid: u32,
    /// Its network namespace, which outlives restarts of the process.
    pub netns: NsPath,
    /// That namespace's inode, as the kernel reports `net->ns.inum`.
    pub netns_inode: u64,
    /// The cluster node it runs on, by role (`worker`); none off a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Where a lab's network can be watched as a whole: the namespace holding the device that
/// carries all of its traffic (absent: the host's), and that device. Probes that watch the
/// wire (`dns`) attach there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Wire {
    pub netns: Option<NsPath>,
    pub device: String,
    /// Inode of a namespace that forwards the lab's packets, where there is one: kernel events
    /// seen there happened "in the network" rather than in an instance.
    pub router_inode: Option<u64>,
}

/// A started instance: its handle, and a way to wait for it to end.
pub struct Started {
    pub handle: Handle,
    pub exit: Box<dyn Exit>,
}

pub trait Exit: Send {
    /// Blocks until the instance ends; says how it ended.
    fn wait(self: Box<Self>) -> String;
}

/// What the supervisor needs from wherever the lab runs. Methods block; the supervisor calls
/// them off its async threads.
pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;

    fn book(&self) -> &AddressBook;

    /// Moves the calling thread where it reaches every instance's address directly; threads
    /// and processes it starts later are there too. Called before the supervisor's runtime
    /// starts its threads.
    fn join(&self) -> Result<(), BackendError>;

    /// Starts one instance.
    fn start(&self, run: &Run) -> Result<Started, BackendError>;

    /// Stops an instance `start` started: asks it to end, and ends it if it does not.
    fn stop(&self, instance: &str, handle: &Handle) -> Result<(), BackendError>;

    /// Where faults are installed.
    fn sites(&self) -> Result<Sites, BackendError>;

    fn wire(&self) -> Wire;

    /// The cluster's nodes, by role, with the lab's instances on each; none off a cluster.
    fn nodes(&self) -> Result<BTreeMap<String, NodeSite>, BackendError> {
        Ok(BTreeMap::new())
    }

    /// Where faults made through a cluster's API go; none off a cluster.
    fn cluster_api(&self) -> Option<std::sync::Arc<dyn ClusterApi>> {
        None
    }

    /// Whether names resolve through sandbox's own name server (a scenario's `names: dns`);
    /// not where the platform has its own, as a cluster's DNS.
    fn runs_name_server(&self) -> bool {
        true
    }

    /// Removes everything the lab created. Called once, by [`Network`].
    fn destroy(&mut self) -> Result<(), BackendError>;
}

/// A lab's network, up. Dropping it removes the network and everything in it, so no error
/// path can forget to.
pub struct Network {
    inner: Option<Box<dyn Backend>>,
}

impl Network {
    /// Takes the network down now, and says whether that worked.
    pub fn remove(mut self) -> Result<(), BackendError> {
        match self.inner.take() {
            Some(mut b) => b.destroy(),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for Network {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        // Only `remove` (which consumes the network) and `drop` take the backend out.
        match &self.inner {
            Some(b) => b.as_ref(),
            None => unreachable!("a removed network is never used"),
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(mut b) = self.inner.take() {
            let _ = b.destroy();
        }
    }
}

/// Builds the lab's network on backend `kind`. On error nothing of it is left.
pub fn create(kind: BackendKind, spec: &LabSpec) -> Result<Network, BackendError> {
    let backend: Box<dyn Backend> = match kind {
        BackendKind::Netns => Box::new(netns::NetnsBackend::create(spec)?),
        BackendKind::Docker => Box::new(docker::DockerBackend::create(spec)?),
        BackendKind::Kube => Box::new(kube::KubeBackend::create(spec)?),
    };
    Ok(Network {
        inner: Some(backend),
    })
}

/// Lab ids that have something on any backend present on this machine.
pub fn labs_present() -> Vec<LabId> {
    let mut ids = netns::lab_ids_present();
    ids.extend(docker::lab_ids_present());
    ids.extend(kube::lab_ids_present());
    ids.sort();
    ids.dedup();
    ids
}

/// Removes whatever lab `id` left, by name and label alone: on the backend it ran on when
/// that is known, on every backend present when it is not (its state is gone).
pub fn sweep(id: &LabId, kind: Option<BackendKind>) -> Vec<String> {
    let mut errors = Vec::new();
    // Namespaces are checked always: a Docker lab's supervisor lives in none, but every
    // lab's name files and namespaces are cheap to look for.
    if let Err(e) = netns::remove_lab(id) {
        errors.push(format!("namespaces: {e}"));
    }
    if kind.is_none_or(|k| k == BackendKind::Docker)
        && let Err(e) = docker::remove_lab(id)
    {
        errors.push(format!("docker: {e}"));
    }
    if kind.is_none_or(|k| k == BackendKind::Kube)
        && let Err(e) = kube::remove_lab(id)
    {
        errors.push(format!("kubernetes: {e}"));
    }
    errors
}

/// What is still there of lab `id`, for `down`'s final check (on `kind`, or everywhere).
pub fn leftovers(id: &LabId, kind: Option<BackendKind>) -> Vec<String> {
    let mut out: Vec<String> = netns::namespaces_of(id)
        .into_iter()
        .map(|n| format!("network namespace {n}"))
        .collect();
    if kind.is_none_or(|k| k == BackendKind::Docker) {
        out.extend(docker::leftovers(id));
    }
    if kind.is_none_or(|k| k == BackendKind::Kube) {
        out.extend(kube::leftovers(id));
    }
    out
}

/// A command that runs `program` inside an instance's network namespace, as `sandbox shell`
/// does, with the lab's name server in its `/etc/resolv.conf`.
pub fn shell_command(
    kind: BackendKind,
    id: &LabId,
    instance: &str,
    netns: Option<&NsPath>,
    program: &str,
) -> Result<std::process::Command, BackendError> {
    let missing = || BackendError::NoInstance {
        lab: id.clone(),
        instance: instance.to_string(),
    };
    match kind {
        BackendKind::Netns => netns::shell_command(id, instance, program).ok_or_else(missing),
        BackendKind::Docker | BackendKind::Kube => {
            let ns = netns.filter(|n| n.exists()).ok_or_else(missing)?;
            Ok(enter_with_resolver(ns, &resolv_conf(id), program))
        }
    }
}

/// The domain that qualifies a service name into its full DNS name, on backends with cluster
/// DNS (the others' name server answers service names alone).
pub fn service_domain(
    kind: BackendKind,
    id: &LabId,
    namespace_prefix: Option<&str>,
) -> Option<String> {
    (kind == BackendKind::Kube)
        .then(|| kube::service_domain(&kube::namespace(namespace_prefix, id)))
}

/// The resolver configuration an instance's processes (and `sandbox shell`) use, written by
/// backends whose instances do not share the host's: the lab's name server, or the cluster's.
pub fn resolv_conf(id: &LabId) -> PathBuf {
    crate::ids::lab_dir(id).join("resolv.conf")
}

/// `nsenter` into `ns` with a private mount namespace where `resolv` is `/etc/resolv.conf`:
/// host tools, the lab's names.
fn enter_with_resolver(ns: &NsPath, resolv: &Path, program: &str) -> std::process::Command {
    let mut c = std::process::Command::new("nsenter");
    c.arg(format!("--net={}", ns.path().display()))
        .args(["--", "unshare", "--mount", "--propagation", "private", "--"])
        .args([
            "sh",
            "-c",
            r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#,
        ])
        .arg(resolv)
        .arg(program);
    c
}
