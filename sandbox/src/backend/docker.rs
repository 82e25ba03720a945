//! The Docker backend (bollard): a lab is one internal Docker network with its own subnet,
//! and each instance a pod of two containers, as Kubernetes runs them: a `pause` container
//! that holds the instance's network namespace and address for the lab's whole life, and the
//! service's container, which joins that namespace (so a restart keeps the address and every
//! fault installed there). Images are built here FROM scratch out of the cached Go binaries;
//! nothing is pulled.
//!
//! Containers reach their lab and nothing else: no published port, no default route, and a
//! guard table in each pod's namespace that lets a container reach the host (the network's
//! gateway, the supervisor's control address) only for the lab's name server and for answers
//! to the supervisor's own connections. The host's firewall, forwarding and routes are never
//! touched. Faults are installed at each pod's namespace (instance sites); names resolve
//! through the lab's name server on the gateway address, as on netns.
//!
//! Every container, network and image tag carries the labels below, so a lab whose supervisor
//! was killed is found and swept by label, and nothing sandbox did not create is touched.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{
    Backend, BackendError, BackendKind, Exit, Handle, LabSpec, Run, Started, Wire, resolv_conf,
};
use crate::fault::Sites;
use crate::ids::{LabId, PREFIX};
use crate::scenario::NameService;
use crate::sys::cmd;
use crate::sys::netns::NsPath;
use crate::topology::{AddressBook, Subnet};

/// Label on everything sandbox creates in Docker.
const OWNER: &str = "io.sandbox.owner";
/// Label naming the lab an object belongs to.
const LAB: &str = "io.sandbox.lab";
/// The image repository; tags are a content hash (the cache) and `lab-<id>` (one per lab).
const REPO: &str = "sandbox-services";
/// Docker's own runc: the lab's containers are never privileged, so they need no wrapper a
/// daemon may have as its default runtime (`scripts/runc-caps`, for kind's nodes).
const RUNTIME: &str = "runc";
/// The program the pod containers run: it holds the namespace and waits to be stopped.
const PAUSE: &str = "pause";

fn network_name(id: &LabId) -> String {
    format!("{PREFIX}-{id}")
}

/// The lab network's bridge in the host's namespace, named so probes and people find it.
pub fn bridge(id: &LabId) -> String {
    format!("{PREFIX}{id}-br")
}

fn pod_name(id: &LabId, instance: &str) -> String {
    format!("{PREFIX}-{id}-{instance}")
}

fn app_name(id: &LabId, instance: &str) -> String {
    format!("{PREFIX}-{id}-{instance}-app")
}

fn lab_tag(id: &LabId) -> String {
    format!("{REPO}:lab-{id}")
}

fn hosts_file(id: &LabId) -> PathBuf {
    crate::ids::lab_dir(id).join("hosts")
}

fn guard_table(id: &LabId) -> String {
    format!("{PREFIX}_{id}_guard")
}

fn labels(id: &LabId) -> HashMap<String, String> {
    HashMap::from([
        (OWNER.to_string(), "sandbox".to_string()),
        (LAB.to_string(), id.to_string()),
    ])
}

fn err(e: bollard::errors::Error) -> BackendError {
    BackendError::Docker(e.to_string())
}

/// Runs `fut` to completion on `rt` from any thread, async or not: a thread of its own has no
/// runtime context to collide with.
fn block<T: Send>(
    rt: &tokio::runtime::Runtime,
    fut: impl std::future::Future<Output = T> + Send,
) -> T {
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(fut))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, BackendError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("docker")
        .enable_all()
        .build()
        .map_err(|e| BackendError::Io {
            what: "starting the Docker client's runtime".into(),
            source: e,
        })
}

/// A client for the daemon at DOCKER_HOST or the default socket, speaking its API version.
async fn connect() -> Result<Docker, BackendError> {
    let unavailable = |e: bollard::errors::Error| {
        BackendError::Unavailable(format!(
            "no Docker daemon answers ({e}); start one with `sudo scripts/dockerd.sh start` \
             (or your distribution's service), or run the lab with `--backend netns`"
        ))
    };
    let docker = Docker::connect_with_local_defaults().map_err(unavailable)?;
    tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
        .await
        .map_err(|_| {
            BackendError::Unavailable("the Docker daemon did not answer within 5 s".into())
        })?
        .map_err(unavailable)
}

/// The daemon, when one answers quickly; `None` on a machine without Docker.
fn reachable(rt: &tokio::runtime::Runtime) -> Option<Docker> {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    if !socket.exists() {
        return None;
    }
    block(rt, connect()).ok()
}

/// One instance: its pod container's namespace and the address it holds.
struct Pod {
    netns: NsPath,
    inode: u64,
}

pub struct DockerBackend {
    id: LabId,
    book: AddressBook,
    rt: tokio::runtime::Runtime,
    docker: Docker,
    network: String,
    image: String,
    pods: BTreeMap<String, Pod>,
    /// Instances that write into the lab directory (the load generator's figures).
    dir: PathBuf,
    /// Log followers, one per started container, ended when the lab goes.
    followers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Instances whose service container exists (a restart replaces it).
    started: Mutex<std::collections::BTreeSet<String>>,
}

impl DockerBackend {
    /// Builds the image (or finds it cached), the network and every pod. On error, whatever
    /// was created is removed again.
    pub fn create(spec: &LabSpec) -> Result<DockerBackend, BackendError> {
        let book = AddressBook::plan(spec.subnet, &spec.instances).ok_or_else(|| {
            BackendError::Capacity(format!(
                "a lab holds at most {} instances; this one has {}",
                Subnet::MAX_INSTANCES,
                spec.instances.len()
            ))
        })?;
        let rt = runtime()?;
        let docker = block(&rt, connect())?;
        let mut b = DockerBackend {
            id: spec.id.clone(),
            book,
            rt,
            docker,
            network: String::new(),
            image: lab_tag(&spec.id),
            pods: BTreeMap::new(),
            dir: spec.dir.clone(),
            followers: Mutex::default(),
            started: Mutex::default(),
        };
        if let Err(e) = b.build(spec) {
            let _ = b.destroy();
            return Err(e);
        }
        Ok(b)
    }

    fn build(&mut self, spec: &LabSpec) -> Result<(), BackendError> {
        let io = |what: String| move |source| BackendError::Io { what, source };
        let resolv = resolv_conf(&self.id);
        std::fs::write(&resolv, self.book.resolv_conf())
            .map_err(io(format!("writing {}", resolv.display())))?;
        let hosts = hosts_file(&self.id);
        let hosts_text = match spec.names {
            NameService::Hosts => self.book.hosts_file(),
            NameService::Dns => "127.0.0.1\tlocalhost\n".to_string(),
        };
        std::fs::write(&hosts, hosts_text).map_err(io(format!("writing {}", hosts.display())))?;

        let (docker, id, book) = (&self.docker, &self.id, &self.book);
        let image = block(&self.rt, ensure_image(docker, &spec.binaries, id))?;
        self.image = image;
        let net = block(&self.rt, create_network(docker, id, book))?;
        self.network = net;
        let names: Vec<String> = spec.instances.iter().map(|(n, _)| n.clone()).collect();
        let pods = block(
            &self.rt,
            start_pods(docker, id, book, &self.network, &self.image, &names),
        )?;
        let this = &*self;
        let guarded: Vec<Result<(String, Pod), BackendError>> = std::thread::scope(|s| {
            let tasks: Vec<_> = pods
                .into_iter()
                .map(|(name, pid)| {
                    s.spawn(move || {
                        let netns = NsPath::of_pid(pid);
                        let inode = netns.inode().map_err(|source| BackendError::Io {
                            what: format!("reading {netns}"),
                            source,
                        })?;
                        this.guard(&netns)?;
                        Ok((name, Pod { netns, inode }))
                    })
                })
                .collect();
            tasks
                .into_iter()
                .map(|t| {
                    t.join().unwrap_or_else(|_| {
                        Err(BackendError::Docker("a pod's set-up panicked".into()))
                    })
                })
                .collect()
        });
        for g in guarded {
            let (name, pod) = g?;
            self.pods.insert(name, pod);
        }
        Ok(())
    }

    /// No route out of the lab, and the host reachable only for what the lab needs from it.
    fn guard(&self, ns: &NsPath) -> Result<(), BackendError> {
        let control = self.book.control;
        let net = format!("{}/{}", self.book.subnet, self.book.prefix);
        let script = format!(
            "table inet {table} {{\n  chain output {{\n    type filter hook output priority -20; policy accept;\n    oifname \"lo\" accept\n    meta nfproto ipv6 drop\n    ip daddr {control} udp dport 53 accept\n    ip daddr {control} ct state established,related accept\n    ip daddr {control} drop\n    ip daddr != {net} drop\n  }}\n}}\n",
            table = guard_table(&self.id)
        );
        let mut c = ns.command("nft")?;
        c.args(["-f", "-"]);
        cmd::run_with_input(&mut c, Some(&script))?;
        let mut c = ns.command("ip")?;
        c.args(["route", "del", "default"]);
        // Docker adds a default route via the gateway; without it nothing leaves the subnet.
        let _ = cmd::run(&mut c);
        Ok(())
    }

    fn pod(&self, instance: &str) -> Result<&Pod, BackendError> {
        self.pods
            .get(instance)
            .ok_or_else(|| BackendError::NoInstance {
                lab: self.id.clone(),
                instance: instance.to_string(),
            })
    }
}

/// A FROM-scratch image holding every Go program, tagged with the key of the build that made
/// them (a hash of the services' sources and the Go version, which names the binaries'
/// directory): a second lab finds it and builds nothing. The lab gets a tag of its own.
async fn ensure_image(
    docker: &Docker,
    binaries: &Path,
    id: &LabId,
) -> Result<String, BackendError> {
    let key = binaries
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digest = Sha256::digest(key.as_bytes());
    let content: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let cached = format!("{REPO}:{content}");
    if docker.inspect_image(&cached).await.is_err() {
        let mut programs: Vec<(String, Vec<u8>)> = Vec::new();
        for name in crate::gobuild::PROGRAMS {
            let path = binaries.join(name);
            let bytes = std::fs::read(&path).map_err(|source| BackendError::Io {
                what: format!("reading {}", path.display()),
                source,
            })?;
            programs.push((name.to_string(), bytes));
        }
        let tar = image_context(&programs).map_err(|source| BackendError::Io {
            what: "packing the image".into(),
            source,
        })?;
        let owner = HashMap::from([(OWNER.to_string(), "sandbox".to_string())]);
        let opts = BuildImageOptionsBuilder::default()
            .t(&cached)
            .rm(true)
            .forcerm(true)
            .labels(&owner)
            .build();
        let mut stream = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
        while let Some(step) = stream.next().await {
            step.map_err(|e| BackendError::Docker(format!("building {cached}: {e}")))?;
        }
    }
    let tag = TagImageOptionsBuilder::default()
        .repo(REPO)
        .tag(&format!("lab-{id}"))
        .build();
    docker.tag_image(&cached, Some(tag)).await.map_err(err)?;
    Ok(lab_tag(id))
}

/// The build context: a Dockerfile and the programs at `/`. Fixed modes and times keep the
/// layers, and so Docker's build cache, identical from one build to the next.
fn image_context(programs: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let dockerfile = b"FROM scratch\nCOPY . /\n";
    let mut add = |name: &str, mode: u32, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes)
    };
    add("Dockerfile", 0o644, dockerfile)?;
    for (name, bytes) in programs {
        add(name, 0o755, bytes)?;
    }
    tar.into_inner()
}

async fn create_network(
    docker: &Docker,
    id: &LabId,
    book: &AddressBook,
) -> Result<String, BackendError> {
    let req = NetworkCreateRequest {
        name: network_name(id),
        driver: Some("bridge".into()),
        internal: Some(true),
        labels: Some(labels(id)),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(format!("{}/{}", book.subnet, book.prefix)),
                gateway: Some(book.control.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        options: Some(HashMap::from([(
            "com.docker.network.bridge.name".to_string(),
            bridge(id),
        )])),
        ..Default::default()
    };
    let created = docker.create_network(req).await.map_err(err)?;
    Ok(created.id)
}

/// Starts every pod container in parallel and gives back each one's pid.
async fn start_pods(
    docker: &Docker,
    id: &LabId,
    book: &AddressBook,
    network: &str,
    image: &str,
    names: &[String],
) -> Result<Vec<(String, u32)>, BackendError> {
    let start = |name: String| async move {
        let ip = book.ip_of(&name).ok_or_else(|| BackendError::NoInstance {
            lab: id.clone(),
            instance: name.clone(),
        })?;
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec![format!("/{PAUSE}")]),
            hostname: Some(name.clone()),
            labels: Some(labels(id)),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_string()),
                runtime: Some(RUNTIME.into()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_string(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(ip.to_string()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let pid = run_container(docker, &pod_name(id, &name), body).await?;
        Ok::<_, BackendError>((name, pid))
    };
    let started = futures_util::future::join_all(names.iter().cloned().map(start)).await;
    started.into_iter().collect()
}

/// Creates and starts a container named `name`, and gives back its main process's host pid.
async fn run_container(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
) -> Result<u32, BackendError> {
    let opts = CreateContainerOptionsBuilder::default().name(name).build();
    docker
        .create_container(Some(opts), body)
        .await
        .map_err(err)?;
    docker.start_container(name, None).await.map_err(err)?;
    pid_of(docker, name).await
}

async fn pid_of(docker: &Docker, container: &str) -> Result<u32, BackendError> {
    let info = docker
        .inspect_container(container, None)
        .await
        .map_err(err)?;
    info.state
        .and_then(|s| s.pid)
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| BackendError::Docker(format!("{container} has no running process")))
}

/// Appends a container's output to its log file until the container ends.
async fn follow(docker: Docker, container: String, log: PathBuf) {
    use tokio::io::AsyncWriteExt;
    let Ok(mut file) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .await
    else {
        return;
    };
    let opts = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = docker.logs(&container, Some(opts));
    while let Some(Ok(out)) = stream.next().await {
        if file.write_all(&out.into_bytes()).await.is_err() {
            return;
        }
    }
}

struct ContainerExit {
    rt: tokio::runtime::Handle,
    docker: Docker,
    container: String,
}

impl Exit for ContainerExit {
    fn wait(self: Box<Self>) -> String {
        let ContainerExit {
            rt,
            docker,
            container,
        } = *self;
        let ended = std::thread::spawn(move || {
            rt.block_on(async {
                let mut waits = docker.wait_container(&container, None);
                match waits.next().await {
                    Some(Ok(r)) => format!("exit status: {}", r.status_code),
                    Some(Err(bollard::errors::Error::DockerContainerWaitError {
                        code, ..
                    })) => {
                        format!("exit status: {code}")
                    }
                    Some(Err(e)) => format!("unknown status ({e})"),
                    None => "unknown status".to_string(),
                }
            })
        });
        ended
            .join()
            .unwrap_or_else(|_| "unknown status (waiter panicked)".into())
    }
}

impl Backend for DockerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    fn book(&self) -> &AddressBook {
        &self.book
    }

    /// The host holds the network's gateway address, so the supervisor reaches every
    /// container from where it is.
    fn join(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn start(&self, run: &Run) -> Result<Started, BackendError> {
        let pod = self.pod(&run.instance)?;
        let container = app_name(&self.id, &run.instance);
        let mut binds = vec![
            format!("{}:/etc/resolv.conf:ro", resolv_conf(&self.id).display()),
            format!("{}:/etc/hosts:ro", hosts_file(&self.id).display()),
        ];
        if run
            .args
            .iter()
            .any(|a| a.starts_with(&*self.dir.to_string_lossy()))
        {
            binds.push(format!("{0}:{0}", self.dir.display()));
        }
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: Some(vec![format!("/{}", run.program)]),
            cmd: Some(run.args.clone()),
            env: Some(run.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels(&self.id)),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{}", pod_name(&self.id, &run.instance))),
                binds: Some(binds),
                runtime: Some(RUNTIME.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let docker = self.docker.clone();
        let restart = self
            .started
            .lock()
            .map(|mut s| !s.insert(run.instance.clone()))
            .unwrap_or(true);
        let pid = block(&self.rt, async {
            if restart {
                let gone = RemoveContainerOptionsBuilder::default().force(true).build();
                let _ = docker.remove_container(&container, Some(gone)).await;
            }
            run_container(&docker, &container, body).await
        })?;
        let follower = self.rt.spawn(follow(
            self.docker.clone(),
            container.clone(),
            run.log.clone(),
        ));
        if let Ok(mut f) = self.followers.lock() {
            f.push(follower);
        }
        Ok(Started {
            handle: Handle {
                pid,
                netns: pod.netns.clone(),
                netns_inode: pod.inode,
                node: None,
            },
            exit: Box::new(ContainerExit {
                rt: self.rt.handle().clone(),
                docker: self.docker.clone(),
                container,
            }),
        })
    }

    fn stop(&self, instance: &str, _handle: &Handle) -> Result<(), BackendError> {
        let container = app_name(&self.id, instance);
        let docker = self.docker.clone();
        block(&self.rt, async {
            let term = KillContainerOptionsBuilder::default()
                .signal("SIGTERM")
                .build();
            if docker.kill_container(&container, Some(term)).await.is_err() {
                return Ok(());
            }
            let mut waits = docker.wait_container(&container, None);
            if tokio::time::timeout(Duration::from_millis(250), waits.next())
                .await
                .is_err()
            {
                let kill = KillContainerOptionsBuilder::default()
                    .signal("SIGKILL")
                    .build();
                let _ = docker.kill_container(&container, Some(kill)).await;
            }
            Ok(())
        })
    }

    fn sites(&self) -> Result<Sites, BackendError> {
        let mut by_ip = BTreeMap::new();
        for (name, pod) in &self.pods {
            if let Some(ip) = self.book.ip_of(name) {
                by_ip.insert(ip, pod.netns.clone());
            }
        }
        Ok(Sites::Instances { by_ip })
    }

    fn wire(&self) -> Wire {
        Wire {
            netns: None,
            device: bridge(&self.id),
            router_inode: None,
        }
    }

    fn destroy(&mut self) -> Result<(), BackendError> {
        if let Ok(mut f) = self.followers.lock() {
            for t in f.drain(..) {
                t.abort();
            }
        }
        let docker = self.docker.clone();
        let result = block(&self.rt, remove_by_label(&docker, &self.id));
        for f in [resolv_conf(&self.id), hosts_file(&self.id)] {
            let _ = std::fs::remove_file(f);
        }
        self.pods.clear();
        result
    }
}

fn label_filter(id: Option<&LabId>) -> HashMap<String, Vec<String>> {
    let mut want = vec![format!("{OWNER}=sandbox")];
    if let Some(id) = id {
        want.push(format!("{LAB}={id}"));
    }
    HashMap::from([("label".to_string(), want)])
}

/// Removes every container, network and image tag carrying lab `id`'s label: the containers
/// at once, then the network, then the lab's image tag (the content-hashed image stays, as a
/// cache).
async fn remove_by_label(docker: &Docker, id: &LabId) -> Result<(), BackendError> {
    let list = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&label_filter(Some(id)))
        .build();
    let containers = docker.list_containers(Some(list)).await.map_err(err)?;
    let remove = |cid: String| async move {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(&cid, Some(opts)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(err(e)),
        }
    };
    let removed =
        futures_util::future::join_all(containers.into_iter().filter_map(|c| c.id).map(remove))
            .await;
    removed.into_iter().collect::<Result<Vec<()>, _>>()?;
    let nets = ListNetworksOptionsBuilder::default()
        .filters(&label_filter(Some(id)))
        .build();
    for n in docker.list_networks(Some(nets)).await.map_err(err)? {
        if let Some(nid) = n.id {
            docker.remove_network(&nid).await.map_err(err)?;
        }
    }
    let untag = RemoveImageOptionsBuilder::default().noprune(true).build();
    match docker.remove_image(&lab_tag(id), Some(untag), None).await {
        Ok(_)
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// What `doctor` reports about the Docker daemon.
pub struct Daemon {
    pub version: String,
    pub api: String,
    pub storage_driver: String,
}

/// The daemon's version, API version and storage driver, or why there is none.
pub fn daemon() -> Result<Daemon, BackendError> {
    let rt = runtime()?;
    block(&rt, async {
        let docker = connect().await?;
        let v = docker.version().await.map_err(err)?;
        let info = docker.info().await.map_err(err)?;
        Ok(Daemon {
            version: v.version.unwrap_or_default(),
            api: v.api_version.unwrap_or_default(),
            storage_driver: info.driver.unwrap_or_default(),
        })
    })
}

/// Sweeps lab `id` from Docker, if a daemon runs here.
pub fn remove_lab(id: &LabId) -> Result<(), BackendError> {
    let rt = runtime()?;
    let Some(docker) = reachable(&rt) else {
        return Ok(());
    };
    block(&rt, remove_by_label(&docker, id))
}

/// Lab ids that have a container, a network or an image tag in Docker.
pub fn lab_ids_present() -> Vec<LabId> {
    let Ok(rt) = runtime() else {
        return Vec::new();
    };
    let Some(docker) = reachable(&rt) else {
        return Vec::new();
    };
    block(&rt, async {
        let mut ids = Vec::new();
        let all = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&label_filter(None))
            .build();
        for c in docker.list_containers(Some(all)).await.unwrap_or_default() {
            ids.extend(c.labels.and_then(|l| LabId::parse(l.get(LAB)?)));
        }
        let nets = ListNetworksOptionsBuilder::default()
            .filters(&label_filter(None))
            .build();
        for n in docker.list_networks(Some(nets)).await.unwrap_or_default() {
            ids.extend(n.labels.and_then(|l| LabId::parse(l.get(LAB)?)));
        }
        let images = ListImagesOptionsBuilder::default().build();
        for i in docker.list_images(Some(images)).await.unwrap_or_default() {
            for tag in i.repo_tags {
                ids.extend(
                    tag.strip_prefix(&format!("{REPO}:lab-"))
                        .and_then(LabId::parse),
                );
            }
        }
        ids.sort();
        ids.dedup();
        ids
    })
}

/// Containers, networks and the image tag of lab `id` still in Docker.
pub fn leftovers(id: &LabId) -> Vec<String> {
    let Ok(rt) = runtime() else {
        return Vec::new();
    };
    let Some(docker) = reachable(&rt) else {
        return Vec::new();
    };
    block(&rt, async {
        let mut out = Vec::new();
        let all = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&label_filter(Some(id)))
            .build();
        for c in docker.list_containers(Some(all)).await.unwrap_or_default() {
            out.push(format!(
                "container {}",
                c.names.unwrap_or_default().join(",")
            ));
        }
        let nets = ListNetworksOptionsBuilder::default()
            .filters(&label_filter(Some(id)))
            .build();
        for n in docker.list_networks(Some(nets)).await.unwrap_or_default() {
            out.push(format!("docker network {}", n.name.unwrap_or_default()));
        }
        if docker.inspect_image(&lab_tag(id)).await.is_ok() {
            out.push(format!("image tag {}", lab_tag(id)));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_context_is_the_same_bytes_every_time() {
        let programs = vec![("pause".to_string(), b"\x7fELF".to_vec())];
        let a = image_context(&programs).expect("packed");
        let b = image_context(&programs).expect("packed");
        assert_eq!(a, b);
        let mut names = Vec::new();
        let mut archive = tar::Archive::new(a.as_slice());
        for e in archive.entries().expect("entries") {
            let e = e.expect("entry");
            names.push((
                e.path().expect("path").display().to_string(),
                e.header().mode().expect("mode"),
            ));
        }
        assert_eq!(
            names,
            vec![("Dockerfile".into(), 0o644), ("pause".into(), 0o755)]
        );
    }

    #[test]
    fn object_names_carry_the_lab_id_and_fit_interface_limits() {
        let id = LabId::parse("k3f9q").expect("id");
        assert_eq!(network_name(&id), "sbx-k3f9q");
        assert_eq!(pod_name(&id, "api-0"), "sbx-k3f9q-api-0");
        assert_eq!(app_name(&id, "api-0"), "sbx-k3f9q-api-0-app");
        assert!(bridge(&id).len() <= 15);
        assert_eq!(guard_table(&id), "sbx_k3f9q_guard");
    }
}
