//! kind clusters for the Kubernetes backend, on machines without a container registry.
//!
//! The layouts are minijinja templates in `kind-configs/` (rendered by
//! [`crate::scenario::render_document`] and shape-checked against kind's `v1alpha4` Cluster
//! schema before kind sees them); the node image comes from `kind-configs/build-node-image.sh`,
//! which builds it from Debian packages and Go modules. Both ship inside the binary.
//!
//! Clusters sandbox makes are named `sbx-…` and mount a directory of sandbox's state into every
//! node. That mount is visible in `docker inspect` from the moment kind creates a node, so
//! sweeps find sandbox's clusters after any crash, and a cluster anyone else made (no mount)
//! is never touched. Each cluster has its own Docker network and its own kubeconfig in that
//! directory; the user's `~/.kube/config` is never read or written.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::sys::cmd::{self, CmdError};

/// Prefix of every cluster sandbox makes.
pub const PREFIX: &str = "sbx-";
/// Docker label kind puts on node containers, with the cluster's name.
const KIND_LABEL: &str = "io.x-k8s.kind.cluster";
/// Docker label on the network sandbox makes for a cluster.
const NET_LABEL: &str = "sandbox.cluster";
/// Label naming the state directory a cluster's network belongs to: a sandbox run with
/// another `SANDBOX_STATE_DIR` (another user, a test) leaves it alone.
const STATE_LABEL: &str = "sandbox.state";
/// Where the marker directory appears inside nodes.
const MARKER_IN_NODE: &str = "/sandbox";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no cluster layout `{0}`; the layouts are: {layouts}", layouts = Layout::names().join(", "))]
    UnknownLayout(String),
    #[error(
        "`{0}` is not a usable cluster name: lower-case letters, digits and dashes, at most 32, starting with a letter"
    )]
    BadName(String),
    #[error("cluster `{0}` exists already (`sandbox cluster delete {0}` removes it)")]
    Exists(String),
    #[error("no cluster `{0}` made by sandbox (`sandbox cluster list` shows them)")]
    NotFound(String),
    #[error("layout `{layout}` rendered to an invalid kind config: {message}")]
    Config { layout: String, message: String },
    #[error(
        "no Docker daemon answers: start one with `bash scripts/dockerd.sh start` (or `sudo scripts/setup.sh --kind`)"
    )]
    NoDocker,
    #[error(
        "the Docker daemon's default runtime is `{0}`, which cannot start kind's privileged nodes on this machine: `bash scripts/dockerd.sh restart` (it registers scripts/runc-caps)"
    )]
    Runtime(String),
    #[error(
        "the node image {0} is not built: `sandbox cluster image` (or `sudo scripts/setup.sh --kind`) builds it"
    )]
    NoImage(String),
    #[error("{what} not ready after {secs} s: {detail}")]
    NotReady {
        what: String,
        secs: u64,
        detail: String,
    },
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error(transparent)]
    Go(#[from] crate::gobuild::GoError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// A cluster layout a scenario can name.
#[derive(Debug)]
pub struct Layout {
    pub name: &'static str,
    pub nodes: usize,
    /// False when the default CNI is disabled: the nodes stay NotReady until one is applied.
    pub cni: bool,
    template: &'static str,
}

static LAYOUTS: [Layout; 3] = [
    Layout {
        name: "single",
        nodes: 1,
        cni: true,
        template: include_str!("../../kind-configs/single.yaml.j2"),
    },
    Layout {
        name: "pair",
        nodes: 2,
        cni: true,
        template: include_str!("../../kind-configs/pair.yaml.j2"),
    },
    Layout {
        name: "pair-no-cni",
        nodes: 2,
        cni: false,
        template: include_str!("../../kind-configs/pair-no-cni.yaml.j2"),
    },
];

impl Layout {
    pub fn named(name: &str) -> Option<&'static Layout> {
        LAYOUTS.iter().find(|l| l.name == name)
    }

    pub fn names() -> Vec<&'static str> {
        LAYOUTS.iter().map(|l| l.name).collect()
    }

    /// The kind config for cluster `name`, checked against kind's schema.
    pub fn render(&self, name: &str, image: &str, marker: &Path) -> Result<String, ClusterError> {
        let values = BTreeMap::from([
            ("name", name.to_string()),
            ("image", image.to_string()),
            ("marker", marker.display().to_string()),
        ]);
        let bad = |message: String| ClusterError::Config {
            layout: self.name.into(),
            message,
        };
        let text = crate::scenario::render_document(self.template, &values).map_err(bad)?;
        let config = check_config(&text).map_err(bad)?;
        let want = if self.cni { "enabled" } else { "disabled" };
        if config.nodes.len() != self.nodes || config.networking.disable_default_cni == self.cni {
            return Err(bad(format!(
                "expected {} node(s) with the default CNI {want}",
                self.nodes
            )));
        }
        Ok(text)
    }
}

/// The part of kind's `v1alpha4` Cluster schema the layouts use; unknown fields are errors, so a
/// misspelt field fails here rather than being ignored by kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindConfig {
    pub kind: String,
    pub api_version: String,
    pub name: String,
    pub networking: Networking,
    #[serde(default)]
    pub kubeadm_config_patches: Vec<String>,
    pub nodes: Vec<KindNode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Networking {
    pub ip_family: String,
    #[serde(default, rename = "disableDefaultCNI")]
    pub disable_default_cni: bool,
    pub kube_proxy_mode: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindNode {
    pub role: String,
    pub image: String,
    #[serde(default)]
    pub extra_mounts: Vec<ExtraMount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtraMount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A kubeadm config patch: a YAML mapping naming the kind of object it patches.
#[derive(Debug, Deserialize)]
struct Patch {
    kind: String,
    #[serde(flatten)]
    _rest: BTreeMap<String, serde_json::Value>,
}

/// Parses a rendered layout and checks the values kind accepts.
pub fn check_config(text: &str) -> Result<KindConfig, String> {
    let c: KindConfig =
        crate::yaml::from_str(text, crate::yaml::Limits::default()).map_err(|e| e.to_string())?;
    if c.kind != "Cluster" || c.api_version != "kind.x-k8s.io/v1alpha4" {
        return Err(format!(
            "expected kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4; found {} {}",
            c.kind, c.api_version
        ));
    }
    if !valid_name(&c.name) {
        return Err(format!("name `{}` is not a kind cluster name", c.name));
    }
    if !["ipv4", "ipv6", "dual"].contains(&c.networking.ip_family.as_str()) {
        return Err(format!("ipFamily `{}`", c.networking.ip_family));
    }
    if !["iptables", "ipvs", "nftables", "none"].contains(&c.networking.kube_proxy_mode.as_str()) {
        return Err(format!("kubeProxyMode `{}`", c.networking.kube_proxy_mode));
    }
    for (i, p) in c.kubeadm_config_patches.iter().enumerate() {
        let patch: Patch = crate::yaml::from_str(p, crate::yaml::Limits::default())
            .map_err(|e| format!("kubeadmConfigPatches[{i}]: {e}"))?;
        if patch.kind.is_empty() {
            return Err(format!("kubeadmConfigPatches[{i}] names no kind"));
        }
    }
    match c.nodes.first() {
        Some(n) if n.role == "control-plane" => {}
        _ => return Err("the first node must be the control plane".into()),
    }
    for (i, n) in c.nodes.iter().enumerate() {
        if !["control-plane", "worker"].contains(&n.role.as_str()) {
            return Err(format!("nodes[{i}].role `{}`", n.role));
        }
        if n.image.is_empty() {
            return Err(format!("nodes[{i}].image is empty"));
        }
        for (j, m) in n.extra_mounts.iter().enumerate() {
            if !m.host_path.starts_with('/') || !m.container_path.starts_with('/') {
                return Err(format!(
                    "nodes[{i}].extraMounts[{j}]: paths must be absolute"
                ));
            }
        }
    }
    Ok(c)
}

/// kind turns cluster names into container and network names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 32
        && !name.ends_with('-')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The cluster name for `--name` (or the layout's name): always with sandbox's prefix.
pub fn cluster_name(name: &str) -> Result<String, ClusterError> {
    let full = if name.starts_with(PREFIX) {
        name.to_string()
    } else {
        format!("{PREFIX}{name}")
    };
    if valid_name(&full) {
        Ok(full)
    } else {
        Err(ClusterError::BadName(name.into()))
    }
}

/// Where built binaries, root filesystems and image archives are kept.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("SANDBOX_KIND_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/sandbox/kind"))
}

/// The state directory of sandbox's clusters; each cluster's directory is its marker.
pub fn clusters_root() -> PathBuf {
    crate::ids::state_root().join("clusters")
}

fn cluster_dir(name: &str) -> PathBuf {
    clusters_root().join(name)
}

/// The kubeconfig of one of sandbox's clusters.
pub fn kubeconfig(name: &str) -> PathBuf {
    cluster_dir(name).join("kubeconfig")
}

/// The embedded kind-configs directory, written once per content to the cache, so the
/// builder runs the same from any working directory.
fn configs_on_disk() -> Result<PathBuf, ClusterError> {
    fn all(
        d: &'static include_dir::Dir<'static>,
        out: &mut Vec<&'static include_dir::File<'static>>,
    ) {
        out.extend(d.files());
        for s in d.dirs() {
            all(s, out);
        }
    }
    let mut files = Vec::new();
    all(crate::scenario::kind_configs(), &mut files);
    files.sort_by_key(|f| f.path());
    let mut h = Sha256::new();
    for f in &files {
        h.update(f.path().to_string_lossy().as_bytes());
        h.update([0]);
        h.update(f.contents());
    }
    let key: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_dir().join("src").join(format!("kind-configs-{key}"));
    if !dir.join("build-node-image.sh").is_file() {
        let tmp = cache_dir()
            .join("src")
            .join(format!(".kind-configs-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        crate::scenario::kind_configs()
            .extract(&tmp)
            .map_err(io(format!("writing {}", tmp.display())))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    Ok(dir)
}

fn builder() -> Result<Command, ClusterError> {
    let mut c = Command::new("bash");
    c.arg(configs_on_disk()?.join("build-node-image.sh"))
        .env("SANDBOX_KIND_CACHE", cache_dir());
    Ok(c)
}

/// What the builder makes, by name; nothing is built to answer.
#[derive(Debug, Clone)]
pub struct Tools {
    pub image: String,
    pub kind: PathBuf,
    pub kubectl: PathBuf,
    /// The image holding sandbox-cni, which also answers DNS checks.
    pub cni_image: String,
}

pub fn tools() -> Result<Tools, ClusterError> {
    let out = cmd::run(builder()?.arg("--paths"))?;
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    };
    Ok(Tools {
        image: get("image"),
        kind: PathBuf::from(get("kind")),
        kubectl: PathBuf::from(get("kubectl")),
        cni_image: get("cni_image"),
    })
}

/// Builds the node image (and kind, kubectl) unless cached, passing each step's line to
/// `progress`; returns the image's name.
pub fn build_image(progress: &mut dyn FnMut(&str)) -> Result<String, ClusterError> {
    let mut c = builder()?;
    c.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = c
        .spawn()
        .map_err(io("running kind-configs/build-node-image.sh"))?;
    let mut last = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            progress(&line);
            last = line;
        }
    }
    let status = child
        .wait()
        .map_err(io("waiting for kind-configs/build-node-image.sh"))?;
    if !status.success() {
        return Err(CmdError::Failed {
            cmd: "kind-configs/build-node-image.sh".into(),
            status: status.to_string(),
            stderr: "see its output above".into(),
        }
        .into());
    }
    Ok(last)
}

fn docker() -> Command {
    Command::new("docker")
}

fn docker_answers() -> bool {
    cmd::run(docker().args(["version", "--format", "{{.Server.Version}}"])).is_ok()
}

fn image_present(image: &str) -> bool {
    cmd::run(docker().args(["image", "inspect", "--format", "{{.Id}}", image])).is_ok()
}

/// Capabilities missing from this process's bounding set (Docker 20.10's privileged containers
/// fail on such machines unless the runtime drops them).
fn bounding_set_is_full() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|bnd| bnd & 0x1ff_ffff_ffff == 0x1ff_ffff_ffff)
}

fn default_runtime() -> Option<String> {
    cmd::run(docker().args(["info", "--format", "{{.DefaultRuntime}}"]))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Docker answers and can start privileged nodes.
fn check_docker() -> Result<(), ClusterError> {
    if !docker_answers() {
        return Err(ClusterError::NoDocker);
    }
    if !bounding_set_is_full() {
        let rt = default_runtime().unwrap_or_default();
        if rt != "sandbox-runc" {
            return Err(ClusterError::Runtime(rt));
        }
    }
    Ok(())
}

/// One node container of a kind cluster, as `docker inspect` shows it.
#[derive(Debug, Deserialize)]
struct Inspected {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Config")]
    config: InspectedConfig,
    #[serde(rename = "Mounts", default)]
    mounts: Vec<InspectedMount>,
    #[serde(rename = "State")]
    state: InspectedState,
}

#[derive(Debug, Deserialize)]
struct InspectedConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct InspectedMount {
    #[serde(rename = "Source", default)]
    source: String,
    #[serde(rename = "Destination", default)]
    destination: String,
}

#[derive(Debug, Deserialize)]
struct InspectedState {
    #[serde(rename = "Status", default)]
    status: String,
}

/// A node container and whether sandbox made it.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub cluster: String,
    pub status: String,
    pub ours: bool,
}

/// Every kind node container on this machine (sandbox's or not).
fn kind_nodes() -> Vec<Node> {
    let Ok(ids) = cmd::run(docker().args([
        "ps",
        "-a",
        "--filter",
        &format!("label={KIND_LABEL}"),
        "--format",
        "{{.ID}}",
    ])) else {
        return Vec::new();
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    // A container removed between the two calls makes inspect fail; the next sweep finds the rest.
    let Ok(json) = cmd::run(docker().arg("inspect").args(&ids)) else {
        return Vec::new();
    };
    let list: Vec<Inspected> = serde_json::from_str(&json).unwrap_or_default();
    let root = clusters_root();
    list.into_iter()
        .filter_map(|c| {
            let cluster = c.config.labels.as_ref()?.get(KIND_LABEL)?.clone();
            let marker = root.join(&cluster);
            let ours = cluster.starts_with(PREFIX)
                && c.mounts
                    .iter()
                    .any(|m| Path::new(&m.source) == marker && m.destination == MARKER_IN_NODE);
            Some(Node {
                id: c.id,
                name: c.name.trim_start_matches('/').to_string(),
                cluster,
                status: c.state.status,
                ours,
            })
        })
        .collect()
}

/// Networks sandbox made for clusters, by cluster name.
fn our_networks() -> Vec<(String, String)> {
    let Ok(out) = cmd::run(docker().args([
        "network",
        "ls",
        "--filter",
        &format!("label={NET_LABEL}"),
        "--filter",
        &format!("label={STATE_LABEL}={}", clusters_root().display()),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{NET_LABEL}\"}}}}"),
    ])) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| {
            let (id, name) = l.split_once(' ')?;
            Some((id.to_string(), name.trim().to_string()))
        })
        .collect()
}

/// Names of sandbox's clusters (this state directory's): from node containers, networks and
/// state directories.
pub fn ours() -> Vec<String> {
    let mut names: Vec<String> = kind_nodes()
        .into_iter()
        .filter(|n| n.ours)
        .map(|n| n.cluster)
        .collect();
    names.extend(our_networks().into_iter().map(|(_, n)| n));
    if let Ok(dir) = std::fs::read_dir(clusters_root()) {
        names.extend(
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(PREFIX)),
        );
    }
    names.sort();
    names.dedup();
    names
}

/// One of sandbox's clusters, for `cluster list`.
#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub layout: String,
    pub nodes: Vec<Node>,
    pub kubeconfig: PathBuf,
}

pub fn list() -> Vec<Summary> {
    let nodes = kind_nodes();
    ours()
        .into_iter()
        .map(|name| Summary {
            layout: std::fs::read_to_string(cluster_dir(&name).join("layout"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into()),
            nodes: nodes
                .iter()
                .filter(|n| n.ours && n.cluster == name)
                .cloned()
                .collect(),
            kubeconfig: kubeconfig(&name),
            name,
        })
        .collect()
}

/// What deleting a cluster left, if anything.
#[derive(Debug)]
pub struct DeleteReport {
    pub name: String,
    pub took: Duration,
    pub leftovers: Vec<String>,
}

/// Host-wide sysctls the kubelet sets when it starts (its `protectKernelDefaults: false`
/// behaviour), which a privileged node can reach: sandbox records what the host had before its
/// first cluster and puts it back once a cluster is ready and when the last one is deleted.
const KUBELET_SYSCTLS: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

fn saved_sysctls() -> PathBuf {
    clusters_root().join(".host-sysctls")
}

/// Records the host's values, unless a record from before an earlier cluster exists.
fn save_host_sysctls() -> Result<(), ClusterError> {
    let path = saved_sysctls();
    if path.exists() {
        return Ok(());
    }
    let text: String = KUBELET_SYSCTLS
        .iter()
        .filter_map(|k| {
            let v = std::fs::read_to_string(Path::new("/proc/sys").join(k)).ok()?;
            Some(format!("{k} {}\n", v.trim()))
        })
        .collect();
    std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))
}

/// Writes the recorded values back; returns what could not be restored.
fn restore_host_sysctls() -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(saved_sysctls()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| {
            let path = Path::new("/proc/sys").join(k);
            let now = std::fs::read_to_string(&path).unwrap_or_default();
            if now.trim() == v {
                return None;
            }
            std::fs::write(&path, v)
                .err()
                .map(|e| format!("sysctl {k} (restoring {v}): {e}"))
        })
        .collect()
}

/// Kills `kind` and `docker` processes still creating nodes of cluster `name` (their command
/// lines name it), left behind by a killed `cluster create`.
fn stop_creators(name: &str) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let label = format!("{KIND_LABEL}={name}");
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let program = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let docker_run = program == "docker" && args.contains(&label);
        let kind_create = program.starts_with("kind")
            && args
                .windows(2)
                .any(|w| w[0] == "create" && w[1] == "cluster")
            && args.windows(2).any(|w| w[0] == "--name" && w[1] == name);
        if docker_run || kind_create {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Removes one of sandbox's clusters: its node containers with their volumes, its network
/// and its directory (kubeconfig, rendered config). A cluster of the same name that sandbox
/// did not make is left alone.
pub fn delete(name: &str) -> DeleteReport {
    let started = Instant::now();
    let mut leftovers = Vec::new();
    // A killed `cluster create` may leave kind's `docker run` going: stop what still creates
    // this cluster's nodes, then sweep until two rounds in a row find none.
    stop_creators(name);
    let mut empty_rounds = 0;
    for _ in 0..10 {
        let nodes: Vec<Node> = kind_nodes()
            .into_iter()
            .filter(|n| n.ours && n.cluster == name)
            .collect();
        if nodes.is_empty() {
            empty_rounds += 1;
            if empty_rounds == 2 {
                break;
            }
        } else {
            empty_rounds = 0;
            let mut c = docker();
            c.args(["rm", "-f", "-v"]).args(nodes.iter().map(|n| &n.id));
            if let Err(e) = cmd::run(&mut c) {
                leftovers.push(format!("removing nodes: {e}"));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for (id, n) in our_networks() {
        if n == name
            && let Err(e) = cmd::run(docker().args(["network", "rm", &id]))
        {
            leftovers.push(format!("removing network {name}: {e}"));
        }
    }
    let dir = cluster_dir(name);
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        leftovers.push(format!("{}: {e}", dir.display()));
    }
    if ours().is_empty() {
        leftovers.extend(restore_host_sysctls());
        let _ = std::fs::remove_file(saved_sysctls());
    }
    leftovers.extend(
        kind_nodes()
            .into_iter()
            .filter(|n| n.ours && n.cluster == name)
            .map(|n| format!("node container {}", n.name)),
    );
    leftovers.extend(
        our_networks()
            .into_iter()
            .filter(|(_, n)| n == name)
            .map(|(id, _)| format!("network {name} ({id})")),
    );
    DeleteReport {
        name: name.into(),
        took: started.elapsed(),
        leftovers,
    }
}

/// Deletes every cluster sandbox made, including what a crash left.
pub fn delete_all() -> Vec<DeleteReport> {
    ours().iter().map(|n| delete(n)).collect()
}

/// A created cluster.
#[derive(Debug)]
pub struct Created {
    pub name: String,
    pub kubeconfig: PathBuf,
    /// Each stage of the readiness chain and how long it took.
    pub stages: Vec<(String, Duration)>,
}

/// Runs `c`, killed with this process: a `cluster create` that dies must not leave kind
/// creating nodes behind it.
fn run_tied(c: &mut Command) -> Result<String, CmdError> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child being started.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd::run(c)
}

struct Kubectl<'a> {
    bin: &'a Path,
    kubeconfig: &'a Path,
}

impl Kubectl<'_> {
    fn run(&self, args: &[&str]) -> Result<String, CmdError> {
        run_tied(
            Command::new(self.bin)
                .arg("--kubeconfig")
                .arg(self.kubeconfig)
                .args(args),
        )
    }

    fn json(&self, args: &[&str]) -> Result<serde_json::Value, CmdError> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.run(&all)?;
        Ok(serde_json::from_str(&out).unwrap_or(serde_json::Value::Null))
    }
}

/// Polls `check` until it returns Ok(true) or `limit` passes; its last error or state explains
/// a timeout.
fn wait_for(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<bool, String>,
) -> Result<Duration, ClusterError> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        match check() {
            Ok(true) => return Ok(started.elapsed()),
            Ok(false) => {}
            Err(e) => last = e,
        }
        if started.elapsed() > limit {
            return Err(ClusterError::NotReady {
                what: what.into(),
                secs: limit.as_secs(),
                detail: last,
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `(name, Ready condition status)` of every node.
fn node_readiness(k: &Kubectl) -> Result<Vec<(String, String)>, String> {
    let v = k.json(&["get", "nodes"]).map_err(|e| e.to_string())?;
    Ok(v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|n| {
                    let ready = n["status"]["conditions"]
                        .as_array()
                        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                        .and_then(|c| c["status"].as_str())
                        .unwrap_or("Unknown");
                    (
                        n["metadata"]["name"].as_str().unwrap_or("?").to_string(),
                        ready.to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Pods of a workload all running and ready.
fn workload_ready(k: &Kubectl, kind: &str, name: &str) -> Result<bool, String> {
    let v = k
        .json(&["-n", "kube-system", "get", kind, name])
        .map_err(|e| e.to_string())?;
    let s = &v["status"];
    let (want, have) = if kind == "daemonset" {
        (&s["desiredNumberScheduled"], &s["numberReady"])
    } else {
        (&v["spec"]["replicas"], &s["readyReplicas"])
    };
    let (want, have) = (want.as_u64().unwrap_or(0), have.as_u64().unwrap_or(0));
    if want > 0 && have == want {
        Ok(true)
    } else {
        Err(format!("{kind}/{name}: {have} of {want} ready"))
    }
}

/// Resolves `kubernetes.default` from a pod, through the pod network and CoreDNS.
fn dns_answers(k: &Kubectl, image: &str) -> Result<bool, String> {
    let pod = "sbx-dns-check";
    let phase = k
        .run(&[
            "-n",
            "kube-system",
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.status.phase}",
        ])
        .unwrap_or_default();
    match phase.as_str() {
        "" => {
            k.run(&[
                "-n",
                "kube-system",
                "run",
                pod,
                "--image",
                image,
                "--image-pull-policy=Never",
                "--restart=Never",
                "--command",
                "--",
                "/sandbox-cni",
                "lookup",
                "kubernetes.default.svc.cluster.local",
            ])
            .map_err(|e| e.to_string())?;
            Ok(false)
        }
        "Succeeded" => {
            let out = k
                .run(&["-n", "kube-system", "logs", pod])
                .map_err(|e| e.to_string())?;
            let _ = k.run(&["-n", "kube-system", "delete", "pod", pod, "--wait=false"]);
            if out.lines().any(|l| l.trim() == "10.96.0.1") {
                Ok(true)
            } else {
                Err(format!("kubernetes.default resolved to {out:?}"))
            }
        }
        "Failed" => {
            let out = k
                .run(&["-n", "kube-system", "logs", pod])
                .unwrap_or_default();
            let _ = k.run(&["-n", "kube-system", "delete", "pod", pod, "--wait=false"]);
            Err(format!("lookup failed: {}", out.trim()))
        }
        other => Err(format!("DNS check pod is {other}")),
    }
}

/// The FROM-scratch image of one Go service program, as loaded into clusters.
pub fn service_image(program: &str, key: &str) -> String {
    format!("sandbox.local/{program}:{key}")
}

/// The key naming the images made from one directory of built programs.
fn images_key(binaries: &Path) -> String {
    binaries
        .file_name()
        .map(|n| n.to_string_lossy().replace(['.', '_'], "-"))
        .unwrap_or_default()
}

/// An archive of the Go services' images, made from the programs in `binaries`.
fn services_archive(binaries: &Path) -> Result<(PathBuf, Vec<String>), ClusterError> {
    let key = images_key(binaries);
    let images: Vec<String> = crate::gobuild::PROGRAMS
        .iter()
        .map(|p| service_image(p, &key))
        .collect();
    let archive = cache_dir().join(format!("services-{key}.tar"));
    if archive.is_file() {
        return Ok((archive, images));
    }
    for (p, image) in crate::gobuild::PROGRAMS.iter().zip(&images) {
        let layer = cache_dir().join(format!(".{p}-{}.tar", std::process::id()));
        let made = cmd::run(
            Command::new("tar")
                .arg("-C")
                .arg(binaries)
                .arg("-cf")
                .arg(&layer)
                .arg(p),
        )
        .and_then(|_| {
            cmd::run(
                docker()
                    .args(["import", "--change", &format!("ENTRYPOINT [\"/{p}\"]")])
                    .arg(&layer)
                    .arg(image),
            )
        });
        let _ = std::fs::remove_file(&layer);
        made?;
    }
    let tmp = archive.with_extension("tmp");
    let mut save = docker();
    save.args(["save", "-o"]).arg(&tmp).args(&images);
    let saved = cmd::run(&mut save);
    let _ = cmd::run(docker().arg("rmi").args(&images));
    saved?;
    std::fs::rename(&tmp, &archive).map_err(io(format!("writing {}", archive.display())))?;
    Ok((archive, images))
}

fn load_services(name: &str, tools: &Tools, binaries: &Path) -> Result<(), ClusterError> {
    let (archive, _) = services_archive(binaries)?;
    run_tied(
        Command::new(&tools.kind)
            .args(["load", "image-archive"])
            .arg(&archive)
            .args(["--name", name])
            .env("KIND_EXPERIMENTAL_DOCKER_NETWORK", name),
    )?;
    Ok(())
}

/// Makes sure every node of cluster `name` has the images of the programs in `binaries`
/// (a lab may be built with another Go than the cluster's first images), and gives back the
/// key that names them.
pub fn ensure_service_images(name: &str, binaries: &Path) -> Result<String, ClusterError> {
    let key = images_key(binaries);
    let want: Vec<String> = crate::gobuild::PROGRAMS
        .iter()
        .map(|p| service_image(p, &key))
        .collect();
    let nodes: Vec<Node> = kind_nodes()
        .into_iter()
        .filter(|n| n.cluster == name)
        .collect();
    let missing = nodes.iter().any(|n| {
        let listed =
            cmd::run(docker().args(["exec", &n.name, "ctr", "-n", "k8s.io", "images", "ls", "-q"]))
                .unwrap_or_default();
        want.iter().any(|w| !listed.lines().any(|l| l.trim() == w))
    });
    if missing {
        load_services(name, &tools()?, binaries)?;
    }
    Ok(key)
}

/// The host pid of cluster `name`'s node `role` (`control-plane`, `worker`): its network
/// namespace forwards the node's pods' packets and routes to every pod.
pub fn node_pid(name: &str, role: &str) -> Result<u32, ClusterError> {
    let node = format!("{name}-{role}");
    let out = cmd::run(docker().args(["inspect", "--format", "{{.State.Pid}}", &node]))?;
    out.trim()
        .parse::<u32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ClusterError::NotReady {
            what: format!("node {node}"),
            secs: 0,
            detail: "it has no running process".into(),
        })
}

/// The host pids of cluster `name`'s running nodes.
pub fn node_pids(name: &str) -> Vec<u32> {
    let listed = cmd::run(docker().args([
        "ps",
        "--filter",
        &format!("label={KIND_LABEL}={name}"),
        "--format",
        "{{.Names}}",
    ]));
    let Ok(names) = listed else {
        return Vec::new();
    };
    names
        .split_whitespace()
        .filter_map(|node| {
            let role = node.strip_prefix(&format!("{name}-"))?;
            node_pid(name, role).ok()
        })
        .collect()
}

/// Creates cluster `name` with `layout`, waits for it to be ready and loads the service
/// images. On any failure what was made is removed again.
pub fn create(
    layout: &Layout,
    name: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Created, ClusterError> {
    check_docker()?;
    if ours().iter().any(|n| n == name) || kind_nodes().iter().any(|n| n.cluster == name) {
        return Err(ClusterError::Exists(name.into()));
    }
    let tools = tools()?;
    if !image_present(&tools.image) || !tools.kind.is_file() || !tools.kubectl.is_file() {
        return Err(ClusterError::NoImage(tools.image));
    }
    let result = create_inner(layout, name, &tools, progress);
    if result.is_err() {
        delete(name);
    }
    result
}

fn create_inner(
    layout: &Layout,
    name: &str,
    tools: &Tools,
    progress: &mut dyn FnMut(&str),
) -> Result<Created, ClusterError> {
    let mut stages = Vec::new();
    let dir = cluster_dir(name);
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    std::fs::write(dir.join("layout"), layout.name)
        .map_err(io(format!("writing {}", dir.display())))?;
    let config = layout.render(name, &tools.image, &dir)?;
    let config_path = dir.join("kind.yaml");
    std::fs::write(&config_path, &config)
        .map_err(io(format!("writing {}", config_path.display())))?;
    // A network of its own, labelled, so the cluster's traffic stays among its nodes and
    // removing it cannot affect another cluster.
    cmd::run(docker().args([
        "network",
        "create",
        "--label",
        &format!("{NET_LABEL}={name}"),
        "--label",
        &format!("{STATE_LABEL}={}", clusters_root().display()),
        name,
    ]))?;
    let kubeconfig = kubeconfig(name);
    save_host_sysctls()?;
    let started = Instant::now();
    progress(&format!(
        "creating kind cluster {name} (layout {}, {} node(s))",
        layout.name, layout.nodes
    ));
    run_tied(
        Command::new(&tools.kind)
            .args(["create", "cluster", "--name", name, "--config"])
            .arg(&config_path)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--wait", "0s", "--retain"])
            .env("KIND_EXPERIMENTAL_DOCKER_NETWORK", name)
            .env_remove("KUBECONFIG"),
    )?;
    stages.push(("kind create cluster".to_string(), started.elapsed()));
    progress(&format!(
        "  kind create cluster: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let k = Kubectl {
        bin: &tools.kubectl,
        kubeconfig: &kubeconfig,
    };
    let limit = Duration::from_secs(240);
    let mut stage = |what: &str, took: Duration, progress: &mut dyn FnMut(&str)| {
        progress(&format!("  {what}: {:.1} s", took.as_secs_f64()));
        stages.push((what.to_string(), took));
    };
    if layout.cni {
        let t = wait_for("nodes", limit, || {
            let nodes = node_readiness(&k)?;
            let ready = nodes.iter().filter(|(_, r)| r == "True").count();
            if nodes.len() == layout.nodes && ready == layout.nodes {
                Ok(true)
            } else {
                Err(format!(
                    "{ready} of {} node(s) Ready: {nodes:?}",
                    layout.nodes
                ))
            }
        })?;
        stage("nodes Ready", t, progress);
        let t = wait_for("the pod network (sandbox-cni)", limit, || {
            workload_ready(&k, "daemonset", "sandbox-cni")
        })?;
        stage("CNI pods ready", t, progress);
        let t = wait_for("CoreDNS", limit, || {
            workload_ready(&k, "deployment", "coredns")
        })?;
        stage("CoreDNS pods ready", t, progress);
        let t = wait_for("a DNS lookup from a pod", limit, || {
            dns_answers(&k, &tools.cni_image)
        })?;
        stage("CoreDNS answers a pod", t, progress);
    } else {
        // Without a CNI the kubelet reports NotReady ("network plugin not ready"): wait for
        // every node to register and check that none is Ready.
        let t = wait_for("nodes to register", limit, || {
            let nodes = node_readiness(&k)?;
            if nodes.len() == layout.nodes {
                Ok(true)
            } else {
                Err(format!(
                    "{} of {} node(s) registered",
                    nodes.len(),
                    layout.nodes
                ))
            }
        })?;
        stage("nodes registered (NotReady: no CNI)", t, progress);
    }
    let started = Instant::now();
    let tc = crate::gobuild::find()?;
    let built = crate::gobuild::build(&tc)?;
    load_services(name, tools, &built.dir)?;
    stage("service images loaded", started.elapsed(), progress);
    // The kubelets have set their sysctls by now; the host gets its own back.
    if let Some(e) = restore_host_sysctls().first() {
        progress(&format!("  warning: {e}"));
    }
    Ok(Created {
        name: name.into(),
        kubeconfig,
        stages,
    })
}

/// The doctor's view of what `cluster create` needs; each entry is (name, ok, detail, fix).
pub fn prerequisites() -> Vec<(&'static str, bool, String, &'static str)> {
    let mut out = Vec::new();
    let docker = docker_answers();
    out.push((
        "kind: docker",
        docker,
        if docker {
            "a Docker daemon answers".to_string()
        } else {
            "no Docker daemon answers".to_string()
        },
        "bash scripts/dockerd.sh start",
    ));
    if docker {
        let full = bounding_set_is_full();
        let rt = default_runtime().unwrap_or_default();
        let ok = full || rt == "sandbox-runc";
        out.push((
            "kind: privileged nodes",
            ok,
            if full {
                "the capability bounding set is full".to_string()
            } else {
                format!(
                    "the bounding set lacks capabilities; the daemon's default runtime is `{rt}`{}",
                    if ok { " (drops them)" } else { "" }
                )
            },
            "bash scripts/dockerd.sh restart",
        ));
    }
    let v1 = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v1 {
        let systemd = std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/cgroup/systemd"));
        out.push((
            "kind: cgroup v1 name=systemd",
            systemd,
            if systemd {
                "cgroup v1, with the name=systemd hierarchy the nodes' systemd needs".to_string()
            } else {
                "cgroup v1 without the name=systemd hierarchy: systemd in the nodes fails"
                    .to_string()
            },
            "mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd",
        ));
    }
    match tools() {
        Ok(t) => {
            let kind = t.kind.is_file();
            out.push((
                "kind: binary",
                kind,
                if kind {
                    t.kind.display().to_string()
                } else {
                    format!("{} is not built", t.kind.display())
                },
                "sudo scripts/setup.sh --kind",
            ));
            if docker {
                let img = image_present(&t.image);
                out.push((
                    "kind: node image",
                    img,
                    if img {
                        t.image.clone()
                    } else {
                        format!("{} is not built", t.image)
                    },
                    "sandbox cluster image",
                ));
            }
        }
        Err(e) => out.push((
            "kind: builder",
            false,
            e.to_string(),
            "install Go 1.24 or newer (scripts/setup.sh --kind)",
        )),
    }
    let deboot = cmd::run(Command::new("sh").args(["-c", "command -v debootstrap"])).is_ok();
    out.push((
        "kind: debootstrap",
        deboot,
        if deboot {
            "debootstrap builds the node image's root filesystem".to_string()
        } else {
            "debootstrap is missing (needed to build the node image)".to_string()
        },
        "apt-get install -y debootstrap",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(layout: &str) -> String {
        Layout::named(layout)
            .unwrap()
            .render(
                "sbx-test",
                "sandbox-kind-node:0123456789abcdef",
                Path::new("/run/sandbox/clusters/sbx-test"),
            )
            .unwrap()
    }

    #[test]
    fn every_layout_a_scenario_may_name_has_a_template() {
        assert_eq!(Layout::names(), crate::scenario::CLUSTER_LAYOUTS);
    }

    #[test]
    fn layouts_render_to_valid_kind_configs() {
        for l in Layout::names() {
            insta::assert_snapshot!(format!("layout_{l}"), rendered(l));
        }
    }

    #[test]
    fn layouts_have_their_shape() {
        let single = check_config(&rendered("single")).unwrap();
        assert_eq!(single.nodes.len(), 1);
        let pair = check_config(&rendered("pair")).unwrap();
        assert_eq!(
            pair.nodes
                .iter()
                .map(|n| n.role.as_str())
                .collect::<Vec<_>>(),
            ["control-plane", "worker"]
        );
        assert!(!pair.networking.disable_default_cni);
        let no_cni = check_config(&rendered("pair-no-cni")).unwrap();
        assert!(no_cni.networking.disable_default_cni);
        for c in [single, pair, no_cni] {
            assert_eq!(c.name, "sbx-test");
            assert!(c.nodes.iter().all(|n| n.extra_mounts.iter().any(|m| {
                m.host_path == "/run/sandbox/clusters/sbx-test"
                    && m.container_path == MARKER_IN_NODE
            })));
        }
    }

    #[test]
    fn shape_check_rejects_what_kind_would_misread() {
        let good = rendered("pair");
        let typo = good.replace("kubeProxyMode", "kubeProxyMod");
        assert!(check_config(&typo).unwrap_err().contains("kubeProxyMod"));
        let role = good.replace("role: worker", "role: wroker");
        assert!(check_config(&role).unwrap_err().contains("wroker"));
        let version = good.replace("v1alpha4", "v1alpha3");
        assert!(check_config(&version).unwrap_err().contains("v1alpha3"));
    }

    #[test]
    fn names_carry_the_prefix() {
        assert_eq!(cluster_name("pair").unwrap(), "sbx-pair");
        assert_eq!(cluster_name("sbx-mine").unwrap(), "sbx-mine");
        assert!(matches!(
            cluster_name("Bad_Name"),
            Err(ClusterError::BadName(_))
        ));
    }
}
