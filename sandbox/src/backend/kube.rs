//! The Kubernetes backend (kube-rs): a lab is a namespace labelled with its id; each service
//! instance a Pod named after the instance (`db-0`), so scenarios address replicas the way
//! they do on the other backends, behind a headless Service named after the service; the load
//! generator a Pod too. Images are the FROM-scratch service images `sandbox cluster` loads
//! into its kind clusters; nothing is pulled (`imagePullPolicy: Never`).
//!
//! Services find each other through cluster DNS. The Services are headless, so a name
//! resolves to the pods' own addresses and a connection is pod to pod: the fault engine's
//! selectors (addresses of the instances at each end) mean on a cluster what they mean on
//! Docker, and faults sit in each pod's network namespace (instance sites), which outlives
//! restarts of the pod's container.
//!
//! The supervisor runs on this machine and joins a node's network namespace, where every
//! pod address routes. A pod is resolved to its namespace through the host's `/proc`: a
//! container's processes are found by its container id in their cgroup path, and the pod's
//! namespace by its sandbox (`pause`) process. That needs the cluster's nodes on this
//! machine, as a kind cluster's are.
//!
//! Ready means every pod's Ready condition (a readiness probe on the service's control
//! port) and an address for every pod in cluster DNS's answer, not a pod's phase.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, Pod, ResourceQuota, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use super::{Backend, BackendError, BackendKind, Exit, Handle, LabSpec, Run, Started, Wire};
use crate::fault::{ApiChange, ClusterApi, FaultError, NodeSite, Sites};
use crate::ids::{LabId, PREFIX};
use crate::plan::Effect;
use crate::scenario::ADMIN_PORT;
use crate::sys::netns::NsPath;
use crate::topology::AddressBook;

/// Label naming the lab a namespace or pod belongs to.
const LAB: &str = "sandbox.io/lab";
/// Label selecting a service's pods.
const SERVICE: &str = "sandbox.io/service";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label with the release every pod runs. A `no-endpoints` fault makes a Service select the
/// next release, whose pods do not exist: the Service looks updated ahead of a rollout.
const VERSION: &str = "app.kubernetes.io/version";
const RUNNING_RELEASE: &str = "1";
const NEXT_RELEASE: &str = "2";
/// The user and group every pod runs as (Pod Security's `restricted` wants a non-root one).
const NOBODY: u32 = 65534;
/// The one container of every pod.
const CONTAINER: &str = "app";
/// Where a pod that writes into the lab directory (the load generator's figures) sees it.
const LAB_DIR_IN_POD: &str = "/lab";
/// The learner's account in a lab's namespace, its role and their binding.
const LEARNER: &str = "learner";
/// How long a learner's token lasts at most (the lab's namespace going ends it sooner).
const LEARNER_TOKEN_S: i64 = 24 * 3600;
/// The learner's kubeconfig, in the lab directory.
pub const KUBECONFIG: &str = "kubeconfig";
/// How long pods have to become ready.
const READY_LIMIT: Duration = Duration::from_secs(120);

/// The namespace of lab `id`: `<prefix>-<id>`, with sandbox's own prefix unless the lab was
/// given one (`--namespace-prefix`).
pub fn namespace(prefix: Option<&str>, id: &LabId) -> String {
    format!("{}-{id}", prefix.unwrap_or(PREFIX))
}

/// The DNS domain of the Services in `namespace`, the first of its pods' search domains.
pub fn service_domain(namespace: &str) -> String {
    format!("{namespace}.svc.cluster.local")
}

/// The longest prefix that leaves room for `-<lab id>` in a namespace name (63 characters).
const MAX_PREFIX: usize = 63 - 1 - 5;

/// A `--namespace-prefix` as Kubernetes accepts it in a namespace's name: lower-case letters,
/// digits and dashes, starting and ending with a letter or digit (an RFC 1123 label).
pub fn check_namespace_prefix(prefix: &str) -> Result<String, String> {
    let ok_chars = prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if ok_chars
        && prefix.starts_with(alnum)
        && prefix.ends_with(alnum)
        && prefix.len() <= MAX_PREFIX
    {
        Ok(prefix.to_string())
    } else {
        Err(format!(
            "expected lower-case letters, digits and dashes, starting and ending with a letter or digit, at most {MAX_PREFIX} characters (a lab's namespace is `<prefix>-<lab id>`)"
        ))
    }
}

fn kerr(what: &str) -> impl FnOnce(kube::Error) -> BackendError + '_ {
    move |e| match e {
        kube::Error::Api(s) => BackendError::Kube(format!("{what}: {} ({})", s.message, s.code)),
        e => BackendError::Kube(format!("{what}: {e}")),
    }
}

/// A runtime whose worker threads are made now, before the supervisor moves its thread into a
/// node's namespace: every API request runs on them, so it reaches the API server from the
/// host.
fn runtime() -> Result<tokio::runtime::Runtime, BackendError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kube")
        .enable_all()
        .build()
        .map_err(|e| BackendError::Io {
            what: "starting the Kubernetes client's runtime".into(),
            source: e,
        })
}

/// Runs `fut` on the runtime's workers and waits for it.
fn block<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, BackendError> {
    let task = rt.spawn(fut);
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(task))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
    .map_err(|e| BackendError::Kube(format!("a request's task failed: {e}")))
}

async fn connect(kubeconfig: PathBuf) -> Result<Client, BackendError> {
    let unavailable = |e: String| {
        BackendError::Unavailable(format!(
            "cannot use the cluster's kubeconfig {}: {e}",
            kubeconfig.display()
        ))
    };
    let kc = Kubeconfig::read_from(&kubeconfig).map_err(|e| unavailable(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Client::try_from(config).map_err(|e| unavailable(e.to_string()))
}

/// The cluster a lab runs on: the one asked for, else the only cluster sandbox made.
pub fn pick_cluster(asked: Option<&str>) -> Result<String, BackendError> {
    let ours = crate::cluster::ours();
    let name = match asked {
        Some(a) => {
            crate::cluster::cluster_name(a).map_err(|e| BackendError::Unavailable(e.to_string()))?
        }
        None => match ours.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(BackendError::Unavailable(
                    "no cluster to run on: `sudo sandbox cluster create --layout pair` makes one"
                        .into(),
                ));
            }
            many => {
                return Err(BackendError::Unavailable(format!(
                    "several clusters ({}); pick one with --cluster",
                    many.join(", ")
                )));
            }
        },
    };
    if !crate::cluster::kubeconfig(&name).is_file() {
        return Err(BackendError::Unavailable(format!(
            "no cluster `{name}` made by sandbox (`sandbox cluster list` shows them)"
        )));
    }
    Ok(name)
}

/// One instance's pod as this machine sees it.
#[derive(Clone)]
struct PodNs {
    netns: NsPath,
    inode: u64,
    /// The node it runs on, by role.
    node: Option<String>,
}

/// A pod's running container, and where it runs.
struct Running {
    cid: String,
    node: Option<String>,
}

pub struct KubeBackend {
    id: LabId,
    cluster: String,
    namespace: String,
    book: AddressBook,
    rt: tokio::runtime::Runtime,
    client: Client,
    key: String,
    dir: PathBuf,
    runs: BTreeMap<String, Run>,
    services: BTreeMap<String, String>,
    ports: BTreeMap<String, u16>,
    pods: Mutex<BTreeMap<String, PodNs>>,
    /// The container each instance last ran: starting it again waits for another one.
    containers: Mutex<BTreeMap<String, String>>,
    followers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl KubeBackend {
    /// Creates the lab's namespace, Services and every service's pod, and waits until they
    /// are ready. On error the namespace (and so everything in it) is removed again.
    pub fn create(spec: &LabSpec) -> Result<KubeBackend, BackendError> {
        let cluster = pick_cluster(spec.cluster.as_deref())?;
        let key = crate::cluster::ensure_service_images(&cluster, &spec.binaries)
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        let rt = runtime()?;
        let client = block(rt.handle(), connect(crate::cluster::kubeconfig(&cluster)))??;
        let mut b = KubeBackend {
            id: spec.id.clone(),
            cluster,
            namespace: namespace(spec.namespace_prefix.as_deref(), &spec.id),
            book: AddressBook {
                subnet: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                control: Ipv4Addr::UNSPECIFIED,
                instances: BTreeMap::new(),
            },
            rt,
            client,
            key,
            dir: spec.dir.clone(),
            runs: spec
                .runs
                .iter()
                .map(|r| (r.instance.clone(), r.clone()))
                .collect(),
            services: spec.instances.iter().cloned().collect(),
            ports: spec.ports.clone(),
            pods: Mutex::default(),
            containers: Mutex::default(),
            followers: Mutex::default(),
        };
        if let Err(e) = b.build(spec) {
            let _ = b.destroy();
            return Err(e);
        }
        Ok(b)
    }

    fn build(&mut self, spec: &LabSpec) -> Result<(), BackendError> {
        let client = self.client.clone();
        let ns = self.namespace.clone();
        let id = self.id.to_string();
        block(self.rt.handle(), async move {
            // Pod Security's `restricted` profile: on a shared cluster no pod in a lab's
            // namespace runs privileged, as root, or with host namespaces.
            let namespace: Namespace = from_json(json!({
                "metadata": {"name": ns, "labels": {
                    LAB: id,
                    MANAGED_BY: "sandbox",
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest"
                }}
            }))?;
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &namespace)
                .await
                .map_err(kerr("creating the lab's namespace"))?;
            // Pods are refused until the namespace's controller has made its default
            // ServiceAccount.
            let accounts = Api::<ServiceAccount>::namespaced(client, &ns);
            let deadline = Instant::now() + Duration::from_secs(30);
            while accounts
                .get_opt("default")
                .await
                .map_err(kerr("reading the namespace's ServiceAccount"))?
                .is_none()
            {
                if Instant::now() > deadline {
                    return Err(BackendError::Kube(format!(
                        "namespace {ns} has no default ServiceAccount after 30 s"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, BackendError>(())
        })??;
        self.write_resolv_conf()?;
        self.confine(spec.runs.len())?;
        let services: Vec<Service> = spec
            .ports
            .iter()
            .map(|(name, port)| self.service(name, *port))
            .collect::<Result<_, _>>()?;
        // Services first; the load generator once they are ready, as on the other backends.
        let (serving, clients): (Vec<&Run>, Vec<&Run>) =
            self.runs.values().partition(|r| self.serves(&r.instance));
        let serving: Vec<Pod> = serving
            .into_iter()
            .map(|r| self.pod(r))
            .collect::<Result<_, _>>()?;
        let clients: Vec<Pod> = clients
            .into_iter()
            .map(|r| self.pod(r))
            .collect::<Result<_, _>>()?;
        let (client, ns) = (self.client.clone(), self.namespace.clone());
        block(self.rt.handle(), async move {
            let post = PostParams::default();
            let sapi = Api::<Service>::namespaced(client.clone(), &ns);
            for s in &services {
                sapi.create(&post, s)
                    .await
                    .map_err(kerr("creating a Service"))?;
            }
            create_pods(Api::namespaced(client, &ns), serving).await
        })??;
        let services: Vec<String> = self
            .runs
            .keys()
            .filter(|n| self.serves(n))
            .cloned()
            .collect();
        self.add_ready(&services)?;
        self.wait_endpoints(spec.ports.keys().cloned().collect())?;
        let names: Vec<String> = clients
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let (client, ns) = (self.client.clone(), self.namespace.clone());
        block(self.rt.handle(), async move {
            create_pods(Api::namespaced(client, &ns), clients).await
        })??;
        self.add_ready(&names)?;
        self.write_learner_kubeconfig()
    }

    /// What keeps a lab to its namespace on a shared cluster: a read-only role for the
    /// learner's account, a quota on pods and default limits (so one lab cannot starve the
    /// others), and a policy that lets only the lab's own pods connect to its pods (enforced
    /// where the cluster's CNI enforces NetworkPolicy).
    fn confine(&self, instances: usize) -> Result<(), BackendError> {
        let read = ["get", "list", "watch"];
        let role: Role = from_json(json!({
            "metadata": {"name": LEARNER, "labels": self.labels(LEARNER)},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "pods/log", "services", "endpoints", "events"], "verbs": read},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": read}
            ]
        }))?;
        let binding: RoleBinding = from_json(json!({
            "metadata": {"name": LEARNER, "labels": self.labels(LEARNER)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LEARNER},
            "subjects": [{"kind": "ServiceAccount", "name": LEARNER, "namespace": self.namespace}]
        }))?;
        let account: ServiceAccount = from_json(json!({
            "metadata": {"name": LEARNER, "labels": self.labels(LEARNER)},
            "automountServiceAccountToken": false
        }))?;
        let quota: ResourceQuota = from_json(json!({
            "metadata": {"name": "lab", "labels": self.labels("lab")},
            "spec": {"hard": {"pods": (instances + 2).to_string()}}
        }))?;
        let limits: LimitRange = from_json(json!({
            "metadata": {"name": "lab", "labels": self.labels("lab")},
            "spec": {"limits": [{
                "type": "Container",
                "default": {"memory": "512Mi"},
                "defaultRequest": {"cpu": "10m", "memory": "32Mi"}
            }]}
        }))?;
        let policy: NetworkPolicy = from_json(json!({
            "metadata": {"name": "lab-only", "labels": self.labels("lab")},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {}}]}]
            }
        }))?;
        let (client, ns) = (self.client.clone(), self.namespace.clone());
        block(self.rt.handle(), async move {
            let post = PostParams::default();
            let what = "confining the lab to its namespace";
            Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                .create(&post, &account)
                .await
                .map_err(kerr(what))?;
            Api::<Role>::namespaced(client.clone(), &ns)
                .create(&post, &role)
                .await
                .map_err(kerr(what))?;
            Api::<RoleBinding>::namespaced(client.clone(), &ns)
                .create(&post, &binding)
                .await
                .map_err(kerr(what))?;
            Api::<ResourceQuota>::namespaced(client.clone(), &ns)
                .create(&post, &quota)
                .await
                .map_err(kerr(what))?;
            Api::<LimitRange>::namespaced(client.clone(), &ns)
                .create(&post, &limits)
                .await
                .map_err(kerr(what))?;
            Api::<NetworkPolicy>::namespaced(client, &ns)
                .create(&post, &policy)
                .await
                .map_err(kerr(what))?;
            Ok::<_, BackendError>(())
        })?
    }

    /// A kubeconfig in the lab directory for the learner's account: the cluster as the
    /// admin's kubeconfig names it, the lab's namespace, and a token that ends with the
    /// namespace (or after a day).
    fn write_learner_kubeconfig(&self) -> Result<(), BackendError> {
        let admin_path = crate::cluster::kubeconfig(&self.cluster);
        let admin = Kubeconfig::read_from(&admin_path)
            .map_err(|e| BackendError::Kube(format!("reading {}: {e}", admin_path.display())))?;
        let cluster = admin
            .clusters
            .first()
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| {
                BackendError::Kube(format!("{} names no cluster", admin_path.display()))
            })?;
        let request: TokenRequest = from_json(json!({
            "spec": {"audiences": [], "expirationSeconds": LEARNER_TOKEN_S}
        }))?;
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), &self.namespace);
        let token = block(self.rt.handle(), async move {
            api.create_token_request(LEARNER, &PostParams::default(), &request)
                .await
        })?
        .map_err(kerr("issuing the learner's token"))?
        .status
        .map(|s| s.token)
        .unwrap_or_default();
        let name = format!("{}-learner", self.namespace);
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.cluster, "cluster": {
                "server": cluster.server,
                "certificate-authority-data": cluster.certificate_authority_data
            }}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {
                "cluster": self.cluster, "user": name, "namespace": self.namespace
            }}],
            "current-context": name
        });
        let path = self.dir.join(KUBECONFIG);
        let text = serde_json::to_string_pretty(&config).unwrap_or_default();
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        written.map_err(|source| BackendError::Io {
            what: format!("writing {}", path.display()),
            source,
        })
    }

    /// `sandbox shell` resolves names as the lab's pods do: through cluster DNS, with the
    /// lab's namespace first in the search list.
    fn write_resolv_conf(&self) -> Result<(), BackendError> {
        let api = Api::<Service>::namespaced(self.client.clone(), "kube-system");
        let dns = block(self.rt.handle(), async move { api.get("kube-dns").await })?
            .map_err(kerr("finding cluster DNS (Service kube-system/kube-dns)"))?;
        let ip = dns.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
        let text = format!(
            "nameserver {ip}\nsearch {} svc.cluster.local cluster.local\noptions ndots:5\n",
            service_domain(&self.namespace)
        );
        let path = super::resolv_conf(&self.id);
        std::fs::write(&path, text).map_err(|source| BackendError::Io {
            what: format!("writing {}", path.display()),
            source,
        })
    }

    /// Whether an instance belongs to a service with a data port (not the load generator).
    fn serves(&self, instance: &str) -> bool {
        self.services
            .get(instance)
            .is_some_and(|s| self.ports.contains_key(s))
    }

    /// Waits for pods `names` to be ready and writes their addresses into the book.
    fn add_ready(&mut self, names: &[String]) -> Result<(), BackendError> {
        for (name, ip, running) in self.wait_ready(names)? {
            self.pod_ns(&name, &running)?;
            let service = self
                .services
                .get(&name)
                .cloned()
                .unwrap_or_else(|| name.clone());
            self.book.instances.insert(name, (service, ip));
        }
        Ok(())
    }

    fn labels(&self, service: &str) -> serde_json::Value {
        json!({LAB: self.id.as_str(), SERVICE: service, MANAGED_BY: "sandbox"})
    }

    fn service(&self, name: &str, port: u16) -> Result<Service, BackendError> {
        from_json(json!({
            "metadata": {"name": name, "labels": self.labels(name)},
            "spec": {
                "clusterIP": "None",
                "selector": {LAB: self.id.as_str(), SERVICE: name},
                "ports": [{"name": "data", "port": port, "protocol": "TCP"}]
            }
        }))
    }

    /// The pod of one instance. A pod that writes into the lab directory writes into a
    /// volume of its own instead, which [`KubeBackend::link_lab_files`] shows in the lab
    /// directory.
    fn pod(&self, run: &Run) -> Result<Pod, BackendError> {
        let service = self
            .services
            .get(&run.instance)
            .cloned()
            .unwrap_or_else(|| run.instance.clone());
        let lab_dir = self.dir.to_string_lossy().into_owned();
        let writes_lab_dir = run.args.iter().any(|a| a.starts_with(&lab_dir));
        let args: Vec<String> = run
            .args
            .iter()
            .map(|a| match a.strip_prefix(&lab_dir) {
                Some(rest) => format!("{LAB_DIR_IN_POD}{rest}"),
                None => a.clone(),
            })
            .collect();
        let env: Vec<serde_json::Value> = run
            .env
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let mut container = json!({
            "name": CONTAINER,
            "image": crate::cluster::service_image(&run.program, &self.key),
            "imagePullPolicy": "Never",
            "command": [format!("/{}", run.program)],
            "args": args,
            "env": env,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]}
            }
        });
        if self.serves(&run.instance) {
            container["readinessProbe"] = json!({
                "httpGet": {"path": "/health", "port": ADMIN_PORT},
                "periodSeconds": 1,
                "timeoutSeconds": 1,
                "failureThreshold": 1
            });
        }
        let mut spec = json!({
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": NOBODY,
                "runAsGroup": NOBODY,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "hostname": run.instance,
            "subdomain": service,
            "enableServiceLinks": false,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "restartPolicy": "Always",
            // Instances spread over every node, the control plane's too.
            "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
            "containers": [container]
        });
        if let Some(node) = &run.node {
            spec["nodeSelector"] =
                json!({"kubernetes.io/hostname": format!("{}-{node}", self.cluster)});
        }
        if writes_lab_dir {
            spec["containers"][0]["volumeMounts"] =
                json!([{"name": "lab", "mountPath": LAB_DIR_IN_POD}]);
            spec["volumes"] = json!([{"name": "lab", "emptyDir": {}}]);
        }
        let mut labels = self.labels(&service);
        labels[VERSION] = json!(RUNNING_RELEASE);
        from_json(json!({
            "metadata": {"name": run.instance, "labels": labels},
            "spec": spec
        }))
    }

    /// Waits until each pod in `names` is Ready, and gives back their addresses and
    /// containers.
    fn wait_ready(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, Ipv4Addr, Running)>, BackendError> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        let names = names.to_vec();
        block(self.rt.handle(), async move {
            let deadline = Instant::now() + READY_LIMIT;
            let mut out = Vec::new();
            for name in names {
                loop {
                    let pod = api.get(&name).await.map_err(kerr("reading a pod"))?;
                    if let (Some(ip), Some(cid)) = (ready_ip(&pod), running_id(&pod)) {
                        out.push((
                            name,
                            ip,
                            Running {
                                cid,
                                node: node_of(&pod),
                            },
                        ));
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(BackendError::Kube(format!(
                            "pod {name} not ready after {} s: {}",
                            READY_LIMIT.as_secs(),
                            why_not_ready(&pod)
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Ok(out)
        })?
    }

    /// Waits until every Service's EndpointSlices list an address for each of its pods.
    fn wait_endpoints(&self, services: Vec<String>) -> Result<(), BackendError> {
        let api = Api::<EndpointSlice>::namespaced(self.client.clone(), &self.namespace);
        let want: BTreeMap<String, usize> = services
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    self.services.values().filter(|v| *v == s).count(),
                )
            })
            .collect();
        block(self.rt.handle(), async move {
            let deadline = Instant::now() + READY_LIMIT;
            loop {
                let slices = api
                    .list(&ListParams::default())
                    .await
                    .map_err(kerr("listing endpoints"))?;
                let mut ready: BTreeMap<String, usize> = BTreeMap::new();
                for s in slices {
                    let Some(svc) = s
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                        .cloned()
                    else {
                        continue;
                    };
                    let n = s
                        .endpoints
                        .iter()
                        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
                        .count();
                    *ready.entry(svc).or_default() += n;
                }
                let missing: Vec<String> = want
                    .iter()
                    .filter(|(s, n)| ready.get(*s).copied().unwrap_or(0) < **n)
                    .map(|(s, n)| format!("{s} ({} of {n})", ready.get(s).copied().unwrap_or(0)))
                    .collect();
                if missing.is_empty() {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(BackendError::Kube(format!(
                        "Services without ready endpoints after {} s: {}",
                        READY_LIMIT.as_secs(),
                        missing.join(", ")
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })?
    }

    /// The running container of pod `name`, once its id differs from `previous`.
    fn running_container(
        &self,
        name: &str,
        previous: Option<&str>,
    ) -> Result<Running, BackendError> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        let (name, previous) = (name.to_string(), previous.map(str::to_string));
        block(self.rt.handle(), async move {
            let deadline = Instant::now() + READY_LIMIT;
            loop {
                let pod = api.get(&name).await.map_err(kerr("reading a pod"))?;
                if let Some(cid) = running_id(&pod).filter(|c| Some(c) != previous.as_ref()) {
                    return Ok(Running {
                        cid,
                        node: node_of(&pod),
                    });
                }
                if Instant::now() > deadline {
                    return Err(BackendError::Kube(format!(
                        "pod {name}'s container not running after {} s: {}",
                        READY_LIMIT.as_secs(),
                        why_not_ready(&pod)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })?
    }

    /// Makes the instance's pod again if it is gone (deleted by a fault, or by hand).
    fn ensure_pod(&self, run: &Run) -> Result<(), BackendError> {
        let pod = self.pod(run)?;
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        block(self.rt.handle(), async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if api
                .get_opt(&name)
                .await
                .map_err(kerr("reading a pod"))?
                .is_some()
            {
                return Ok(());
            }
            api.create(&PostParams::default(), &pod)
                .await
                .map(|_| ())
                .map_err(kerr("creating a pod"))
        })?
    }

    fn follow(&self, instance: &str, log: &Path) {
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        let (name, log) = (instance.to_string(), log.to_path_buf());
        let task = self.rt.spawn(async move {
            use tokio::io::AsyncWriteExt;
            let Ok(mut file) = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .await
            else {
                return;
            };
            let lp = LogParams {
                follow: true,
                ..Default::default()
            };
            let Ok(stream) = api.log_stream(&name, &lp).await else {
                return;
            };
            let mut lines = stream.lines();
            while let Some(Ok(line)) = lines.next().await {
                if file
                    .write_all(format!("{line}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        if let Ok(mut f) = self.followers.lock() {
            f.push(task);
        }
    }

    /// Each lab-directory file a run names becomes a link to that file in the pod's volume,
    /// through the container's root as this machine sees it (`/proc/<pid>/root`).
    fn link_lab_files(&self, run: &Run, pid: u32) -> Result<(), BackendError> {
        let lab_dir = self.dir.to_string_lossy().into_owned();
        for arg in &run.args {
            let Some(rest) = arg.strip_prefix(&lab_dir) else {
                continue;
            };
            let target = format!("/proc/{pid}/root{LAB_DIR_IN_POD}{rest}");
            let link = PathBuf::from(arg);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link).map_err(|source| BackendError::Io {
                what: format!("linking {} to {target}", link.display()),
                source,
            })?;
        }
        Ok(())
    }

    fn pod_ns(&self, instance: &str, running: &Running) -> Result<(u32, PodNs), BackendError> {
        let cid = &running.cid;
        let pid = crate::sys::procs::pids_in_container(cid).into_iter().min().ok_or_else(|| {
            BackendError::Kube(format!("no process of pod {instance}'s container {cid} on this machine (is the cluster's node here?)"))
        })?;
        let app_ns = NsPath::of_pid(pid);
        let inode = app_ns.inode().map_err(|source| BackendError::Io {
            what: format!("reading {app_ns}"),
            source,
        })?;
        if let Some(known) = self
            .pods
            .lock()
            .ok()
            .and_then(|p| p.get(instance).cloned())
            .filter(|p| p.inode == inode && p.netns.exists())
        {
            return Ok((pid, known));
        }
        // The pod's sandbox process holds the namespace across restarts of the container.
        let holder = crate::sys::procs::holder_of_netns(inode, pid).unwrap_or(pid);
        let prefix = format!("{}-", self.cluster);
        let pod = PodNs {
            netns: NsPath::of_pid(holder),
            inode,
            node: running
                .node
                .as_deref()
                .map(|n| n.strip_prefix(&prefix).unwrap_or(n).to_string()),
        };
        if let Ok(mut p) = self.pods.lock() {
            p.insert(instance.to_string(), pod.clone());
        }
        Ok((pid, pod))
    }
}

async fn create_pods(api: Api<Pod>, pods: Vec<Pod>) -> Result<(), BackendError> {
    let post = PostParams::default();
    let made = futures_util::future::join_all(pods.iter().map(|p| api.create(&post, p))).await;
    for m in made {
        m.map_err(kerr("creating a pod"))?;
    }
    Ok(())
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, BackendError> {
    serde_json::from_value(v).map_err(|e| BackendError::Kube(format!("building an object: {e}")))
}

fn container_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == CONTAINER)
}

/// The node the scheduler put a pod on.
fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone()
}

/// The pod's address once its Ready condition is true.
fn ready_ip(pod: &Pod) -> Option<Ipv4Addr> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .as_ref()?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    status.pod_ip.as_deref()?.parse().ok()
}

/// The container's id (without the runtime's `containerd://`) while it runs.
fn running_id(pod: &Pod) -> Option<String> {
    let c = container_status(pod)?;
    c.state.as_ref()?.running.as_ref()?;
    let id = c.container_id.as_deref()?;
    Some(id.rsplit("://").next().unwrap_or(id).to_string())
}

/// What a pod is waiting on, for an error message.
fn why_not_ready(pod: &Pod) -> String {
    if let Some(w) = container_status(pod).and_then(|c| c.state.as_ref()?.waiting.as_ref()) {
        return format!(
            "{} {}",
            w.reason.as_deref().unwrap_or("waiting"),
            w.message.as_deref().unwrap_or("")
        );
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let unready: Vec<String> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.status != "True")
        .map(|c| format!("{} ({})", c.type_, c.message.unwrap_or_default()))
        .collect();
    format!("phase {phase}; not {}", unready.join(", "))
}

/// Waits for the container a pod ran to end: its restart count grows, or the pod goes.
struct ContainerExit {
    rt: tokio::runtime::Handle,
    api: Api<Pod>,
    pod: String,
    cid: String,
}

impl Exit for ContainerExit {
    fn wait(self: Box<Self>) -> String {
        let ContainerExit { rt, api, pod, cid } = *self;
        let waiter = rt.spawn(async move {
            loop {
                match api.get_opt(&pod).await {
                    Ok(None) => return "pod deleted".to_string(),
                    Ok(Some(p)) => {
                        if running_id(&p).as_deref() != Some(cid.as_str()) {
                            let last = container_status(&p)
                                .and_then(|c| c.last_state.as_ref()?.terminated.as_ref())
                                .map(|t| format!("exit status: {}", t.exit_code));
                            return last.unwrap_or_else(|| "container ended".into());
                        }
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        std::thread::spawn(move || rt.block_on(waiter))
            .join()
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| "unknown status".into())
    }
}

impl Backend for KubeBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Kube
    }

    fn book(&self) -> &AddressBook {
        &self.book
    }

    /// Moves into the control-plane node's namespace, where every pod address routes.
    fn join(&self) -> Result<(), BackendError> {
        let pid = crate::cluster::node_pid(&self.cluster, "control-plane")
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        let ns = NsPath::of_pid(pid);
        ns.enter().map_err(|source| BackendError::Io {
            what: format!("entering {ns} (cluster {}'s node)", self.cluster),
            source,
        })
    }

    /// The services' pods exist since `create`: the first start finds the running container,
    /// a later one the container the kubelet restarted. The load generator's pod is made here.
    fn start(&self, run: &Run) -> Result<Started, BackendError> {
        self.ensure_pod(run)?;
        let previous = self
            .containers
            .lock()
            .ok()
            .and_then(|c| c.get(&run.instance).cloned());
        let running = self.running_container(&run.instance, previous.as_deref())?;
        let cid = running.cid.clone();
        if let Ok(mut c) = self.containers.lock() {
            c.insert(run.instance.clone(), cid.clone());
        }
        let (pid, pod) = self.pod_ns(&run.instance, &running)?;
        self.link_lab_files(run, pid)?;
        self.follow(&run.instance, &run.log);
        Ok(Started {
            handle: Handle {
                pid,
                netns: pod.netns,
                netns_inode: pod.inode,
                node: pod.node,
            },
            exit: Box::new(ContainerExit {
                rt: self.rt.handle().clone(),
                api: Api::namespaced(self.client.clone(), &self.namespace),
                pod: run.instance.clone(),
                cid,
            }),
        })
    }

    /// Deletes the instance's pod, with a second's grace.
    fn stop(&self, instance: &str, _handle: &Handle) -> Result<(), BackendError> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        let name = instance.to_string();
        block(self.rt.handle(), async move {
            let dp = DeleteParams {
                grace_period_seconds: Some(1),
                ..Default::default()
            };
            let _ = api.delete(&name, &dp).await;
        })
    }

    fn sites(&self) -> Result<Sites, BackendError> {
        let pods = self.pods.lock().map(|p| p.clone()).unwrap_or_default();
        let by_ip = pods
            .iter()
            .filter_map(|(name, pod)| Some((self.book.ip_of(name)?, pod.netns.clone())))
            .collect();
        Ok(Sites::Instances { by_ip })
    }

    /// No one device carries a cluster lab's packets: the probes that watch the wire say so.
    fn wire(&self) -> Wire {
        Wire {
            netns: None,
            device: String::new(),
            router_inode: None,
        }
    }

    fn runs_name_server(&self) -> bool {
        false
    }

    fn cluster_api(&self) -> Option<Arc<dyn ClusterApi>> {
        Some(Arc::new(Selectors {
            rt: self.rt.handle().clone(),
            client: self.client.clone(),
            namespace: self.namespace.clone(),
        }))
    }

    /// Each node the lab's pods run on: its network namespace (the node container's) and
    /// the instances there.
    fn nodes(&self) -> Result<BTreeMap<String, NodeSite>, BackendError> {
        let pods = self.pods.lock().map(|p| p.clone()).unwrap_or_default();
        let mut out: BTreeMap<String, NodeSite> = BTreeMap::new();
        for (instance, pod) in pods {
            let Some(node) = pod.node else { continue };
            if !out.contains_key(&node) {
                let pid = crate::cluster::node_pid(&self.cluster, &node)
                    .map_err(|e| BackendError::Unavailable(e.to_string()))?;
                out.insert(
                    node.clone(),
                    NodeSite {
                        netns: NsPath::of_pid(pid),
                        instances: Vec::new(),
                    },
                );
            }
            if let Some(site) = out.get_mut(&node) {
                site.instances.push(instance);
            }
        }
        Ok(out)
    }

    fn destroy(&mut self) -> Result<(), BackendError> {
        if let Ok(mut f) = self.followers.lock() {
            for t in f.drain(..) {
                t.abort();
            }
        }
        let client = self.client.clone();
        let result = block(
            self.rt.handle(),
            remove_namespaces(client, self.id.to_string()),
        )?;
        let _ = std::fs::remove_file(super::resolv_conf(&self.id));
        let _ = std::fs::remove_file(self.dir.join(KUBECONFIG));
        result
    }
}

/// The lab's Services, as `no-endpoints` faults change them.
struct Selectors {
    rt: tokio::runtime::Handle,
    client: Client,
    namespace: String,
}

impl ClusterApi for Selectors {
    fn install(&self, effect: &Effect, service: &str) -> Result<Box<dyn ApiChange>, FaultError> {
        if *effect != Effect::NoEndpoints {
            return Err(FaultError::Unsupported(format!(
                "no cluster API technique for {effect}"
            )));
        }
        let change = SelectorChange {
            rt: self.rt.clone(),
            api: Api::namespaced(self.client.clone(), &self.namespace),
            service: service.to_string(),
            removed: false,
        };
        change.select(Some(NEXT_RELEASE))?;
        Ok(Box::new(change))
    }
}

/// A Service selecting the next release; removing (or dropping) it selects any release again.
struct SelectorChange {
    rt: tokio::runtime::Handle,
    api: Api<Service>,
    service: String,
    removed: bool,
}

impl SelectorChange {
    fn select(&self, release: Option<&str>) -> Result<(), FaultError> {
        let patch = Patch::Merge(json!({"spec": {"selector": {VERSION: release}}}));
        let (api, name) = (self.api.clone(), self.service.clone());
        block(&self.rt, async move {
            api.patch(&name, &PatchParams::default(), &patch).await
        })
        .map_err(|e| FaultError::Api(e.to_string()))?
        .map_err(|e| {
            FaultError::Api(format!("changing Service {}'s selector: {e}", self.service))
        })?;
        Ok(())
    }
}

impl ApiChange for SelectorChange {
    fn remove(mut self: Box<Self>) -> Result<(), FaultError> {
        self.removed = true;
        self.select(None)
    }
}

impl Drop for SelectorChange {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.select(None);
        }
    }
}

/// Deletes every namespace labelled with lab `id` and waits until they are gone.
async fn remove_namespaces(client: Client, id: String) -> Result<(), BackendError> {
    let api = Api::<Namespace>::all(client);
    let lp = ListParams::default().labels(&format!("{LAB}={id}"));
    let list = api
        .list(&lp)
        .await
        .map_err(kerr("listing the lab's namespaces"))?;
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for ns in &list {
        if let Some(name) = &ns.metadata.name {
            match api.delete(name, &dp).await {
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(kerr("deleting the lab's namespace")(e)),
                Ok(_) => {}
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = api
            .list(&lp)
            .await
            .map_err(kerr("listing the lab's namespaces"))?;
        if left.items.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BackendError::Kube(format!(
                "namespace {} still terminating after 90 s",
                left.items
                    .iter()
                    .filter_map(|n| n.metadata.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Clients of every sandbox cluster whose API server answers.
fn clusters() -> Vec<(String, tokio::runtime::Runtime, Client)> {
    crate::cluster::ours()
        .into_iter()
        .filter(|c| crate::cluster::kubeconfig(c).is_file())
        .filter_map(|c| {
            let rt = runtime().ok()?;
            let client = block(rt.handle(), connect(crate::cluster::kubeconfig(&c)))
                .ok()?
                .ok()?;
            Some((c, rt, client))
        })
        .collect()
}

/// Lab ids with a namespace on any of sandbox's clusters.
pub fn lab_ids_present() -> Vec<LabId> {
    let mut ids = Vec::new();
    for (_, rt, client) in clusters() {
        let listed = block(rt.handle(), async move {
            let lp = ListParams::default().labels(&format!("{MANAGED_BY}=sandbox"));
            Api::<Namespace>::all(client).list(&lp).await
        });
        if let Ok(Ok(list)) = listed {
            ids.extend(
                list.items
                    .iter()
                    .filter_map(|n| LabId::parse(n.metadata.labels.as_ref()?.get(LAB)?)),
            );
        }
    }
    ids
}

/// Removes lab `id`'s namespaces from every sandbox cluster.
pub fn remove_lab(id: &LabId) -> Result<(), BackendError> {
    for (_, rt, client) in clusters() {
        block(rt.handle(), remove_namespaces(client, id.to_string()))??;
    }
    // Faults that act at a node (node-partition, dns) leave their rules in the node's
    // namespace, which outlives the lab.
    for ns in node_namespaces() {
        crate::fault::sweep_shared(&ns, id.as_str())
            .map_err(|e| BackendError::Kube(format!("removing the lab's rules in {ns}: {e}")))?;
    }
    Ok(())
}

/// The network namespaces of the nodes of every cluster sandbox made.
fn node_namespaces() -> Vec<NsPath> {
    crate::cluster::ours()
        .iter()
        .flat_map(|c| crate::cluster::node_pids(c))
        .map(NsPath::of_pid)
        .collect()
}

/// What is left of lab `id` on sandbox's clusters.
pub fn leftovers(id: &LabId) -> Vec<String> {
    let mut out = Vec::new();
    for (cluster, rt, client) in clusters() {
        let want = id.to_string();
        let listed = block(rt.handle(), async move {
            let lp = ListParams::default().labels(&format!("{LAB}={want}"));
            Api::<Namespace>::all(client).list(&lp).await
        });
        if let Ok(Ok(list)) = listed {
            out.extend(list.items.iter().filter_map(|n| {
                Some(format!(
                    "namespace {} on cluster {cluster}",
                    n.metadata.name.as_ref()?
                ))
            }));
        }
    }
    for ns in node_namespaces() {
        out.extend(crate::fault::left_in_shared(&ns, id.as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_prefix_is_a_dns_label_with_room_for_the_lab_id() {
        for good in ["class-b", "a", "2026-ws", &"a".repeat(57)] {
            assert_eq!(check_namespace_prefix(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "Class",
            "class_b",
            "-class",
            "class-",
            "class.b",
            &"a".repeat(58),
        ] {
            assert!(check_namespace_prefix(bad).is_err(), "{bad:?}");
        }
        let id = LabId::parse("k3f9q").unwrap();
        assert_eq!(namespace(None, &id), "sbx-k3f9q");
        assert_eq!(namespace(Some("class-b"), &id), "class-b-k3f9q");
        assert_eq!(namespace(Some(&"a".repeat(57)), &id).len(), 63);
    }
}
