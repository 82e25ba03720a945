//! Real kind clusters from the offline node image: a two-node cluster whose pods resolve names
//! through CoreDNS and reach a pod on the other node through a Service; a cluster without a CNI
//! whose nodes stay NotReady until one is applied; deletion that leaves nothing; a killed
//! `cluster create` swept by `down --all`; and a kind cluster sandbox did not make, untouched.
//!
//! Needs root, a Docker daemon with scripts/runc-caps (`bash scripts/dockerd.sh start`) and the
//! node image (`sudo scripts/setup.sh --kind`); skips saying which is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Tools {
    image: String,
    kind: PathBuf,
    kubectl: PathBuf,
    cni_image: String,
}

fn tools() -> Tools {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kind-configs/build-node-image.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("--paths")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            .to_string()
    };
    Tools {
        image: get("image"),
        kind: get("kind").into(),
        kubectl: get("kubectl").into(),
        cni_image: get("cni_image"),
    }
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn succeeds(c: &mut Command) -> bool {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Root, Docker and the node image, or a message saying what is missing.
fn ready_or_skip(test: &str) -> Option<Tools> {
    if !root_or_skip(test) {
        return None;
    }
    if !succeeds(Command::new("docker").arg("version")) {
        eprintln!("SKIPPED {test}: no Docker daemon answers (bash scripts/dockerd.sh start)");
        return None;
    }
    let t = tools();
    if !t.kind.is_file()
        || !t.kubectl.is_file()
        || !succeeds(Command::new("docker").args(["image", "inspect", &t.image]))
    {
        eprintln!(
            "SKIPPED {test}: kind or the node image {} is not built (sudo scripts/setup.sh --kind)",
            t.image
        );
        return None;
    }
    Some(t)
}

fn state_root() -> PathBuf {
    std::env::var_os("SANDBOX_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/sandbox"))
}

struct Kube<'a> {
    tools: &'a Tools,
    kubeconfig: PathBuf,
}

impl Kube<'_> {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.tools.kubectl);
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        ok(self.cmd().args(args))
    }

    fn apply(&self, yaml: &str) {
        let mut child = self
            .cmd()
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kubectl apply: {}", text(&out));
    }

    /// Ready condition of each node.
    fn readiness(&self) -> Vec<String> {
        self.run(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// Waits for pod `name` to finish and returns its phase and log.
    fn finished(&self, name: &str, limit: Duration) -> (String, String) {
        let started = Instant::now();
        loop {
            let phase = self.run(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]);
            if phase == "Succeeded" || phase == "Failed" {
                return (phase, self.run(&["logs", name]));
            }
            assert!(
                started.elapsed() < limit,
                "pod {name} still {phase} after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn create(layout: &str, name: &str) -> Output {
    sandbox()
        .args(["cluster", "create", "--layout", layout, "--name", name])
        .output()
        .unwrap()
}

/// Containers, networks and the state directory of cluster `full`.
fn traces(full: &str) -> Vec<String> {
    let mut out = Vec::new();
    let containers = ok(Command::new("docker").args([
        "ps",
        "-a",
        "--filter",
        &format!("label=io.x-k8s.kind.cluster={full}"),
        "--format",
        "{{.Names}}",
    ]));
    out.extend(containers.lines().map(|l| format!("container {l}")));
    let networks = ok(Command::new("docker").args(["network", "ls", "--format", "{{.Name}}"]));
    out.extend(
        networks
            .lines()
            .filter(|n| *n == full)
            .map(|n| format!("network {n}")),
    );
    let dir = state_root().join("clusters").join(full);
    if dir.exists() {
        out.push(format!("directory {}", dir.display()));
    }
    out
}

/// Host-wide sysctls a kubelet sets when it starts.
fn host_sysctls() -> Vec<(String, String)> {
    [
        "vm/overcommit_memory",
        "vm/panic_on_oom",
        "kernel/panic",
        "kernel/panic_on_oops",
        "kernel/keys/root_maxkeys",
        "kernel/keys/root_maxbytes",
    ]
    .iter()
    .map(|k| {
        let v = std::fs::read_to_string(Path::new("/proc/sys").join(k)).unwrap();
        (k.to_string(), v.trim().to_string())
    })
    .collect()
}

/// The image of a Go service program as loaded into a node.
fn service_image(node: &str, program: &str) -> String {
    let list =
        ok(Command::new("docker")
            .args(["exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q"]));
    list.lines()
        .find(|l| l.starts_with(&format!("sandbox.local/{program}:")))
        .unwrap_or_else(|| panic!("no {program} image in {node}:\n{list}"))
        .to_string()
}

#[test]
fn pair_cluster_resolves_names_and_routes_between_nodes_then_deletes_cleanly() {
    let Some(t) = ready_or_skip("pair_cluster") else {
        return;
    };
    let _one = serial();
    let full = "sbx-t-pair";
    let before = host_sysctls();
    let out = create("pair", "t-pair");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        host_sysctls(),
        before,
        "the kubelets' sysctls were not put back"
    );
    let k = Kube {
        tools: &t,
        kubeconfig: state_root().join("clusters").join(full).join("kubeconfig"),
    };
    assert!(k.kubeconfig.is_file());
    assert_eq!(k.readiness(), ["True", "True"], "both nodes Ready");

    // A server on the control plane (the store's HTTP control plane on :9090), a client on the
    // worker, a Service between them.
    let cp = format!("{full}-control-plane");
    let worker = format!("{full}-worker");
    let store = service_image(&worker, "store");
    let loadgen = service_image(&worker, "loadgen");
    k.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{ name: echo, labels: {{ app: echo }} }}
spec:
  nodeName: {cp}
  containers:
    - name: store
      image: {store}
      imagePullPolicy: Never
---
apiVersion: v1
kind: Service
metadata: {{ name: echo }}
spec:
  selector: {{ app: echo }}
  ports: [{{ port: 80, targetPort: 9090 }}]
"#
    ));
    k.run(&["wait", "--for=condition=Ready", "pod/echo", "--timeout=60s"]);

    // CoreDNS answers a pod on the worker with the Service's address.
    let cluster_ip = k.run(&["get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}"]);
    k.run(&[
        "run",
        "lookup",
        "--image",
        &t.cni_image,
        "--image-pull-policy=Never",
        "--restart=Never",
        "--overrides",
        &format!(r#"{{"spec":{{"nodeName":"{worker}"}}}}"#),
        "--command",
        "--",
        "/sandbox-cni",
        "lookup",
        "echo.default.svc.cluster.local",
    ]);
    let (phase, log) = k.finished("lookup", Duration::from_secs(60));
    assert_eq!(phase, "Succeeded", "{log}");
    assert_eq!(log.trim(), cluster_ip, "CoreDNS gave the Service's address");

    // The load generator on the worker reaches the backend through the Service.
    k.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{ name: client }}
spec:
  nodeName: {worker}
  containers:
    - name: loadgen
      image: {loadgen}
      imagePullPolicy: Never
      args: ["-target", "http://echo.default.svc.cluster.local/health", "-rate", "20"]
"#
    ));
    k.run(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=60s",
    ]);
    let started = Instant::now();
    let ok_count = loop {
        let log = k.run(&["logs", "client"]);
        let n: i64 = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["ok"].as_i64())
            .sum();
        if n >= 20 || started.elapsed() > Duration::from_secs(30) {
            break n;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        ok_count >= 20,
        "only {ok_count} requests from the worker reached the control plane's pod"
    );
    let pod_node = k.run(&["get", "pod", "echo", "-o", "jsonpath={.spec.nodeName}"]);
    assert_eq!(pod_node, cp);

    let out = sandbox()
        .args(["cluster", "delete", "t-pair"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(traces(full), Vec::<String>::new(), "{}", text(&out));
    assert!(!k.kubeconfig.exists());
}

#[test]
fn pair_without_cni_stays_not_ready_until_a_cni_is_applied() {
    let Some(t) = ready_or_skip("pair_without_cni") else {
        return;
    };
    let _one = serial();
    let full = "sbx-t-nocni";
    let out = create("pair-no-cni", "t-nocni");
    assert!(out.status.success(), "{}", text(&out));
    let k = Kube {
        tools: &t,
        kubeconfig: state_root().join("clusters").join(full).join("kubeconfig"),
    };
    // Given time to become Ready, neither node does: no pod network.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(k.readiness(), ["False", "False"]);
    let reason = k.run(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].message}",
    ]);
    assert!(reason.contains("network"), "{reason}");

    // Applying the CNI the other layouts get makes them Ready.
    let manifest = ok(Command::new("docker").args([
        "exec",
        &format!("{full}-control-plane"),
        "cat",
        "/kind/manifests/default-cni.yaml",
    ]));
    k.apply(&manifest);
    k.run(&[
        "wait",
        "--for=condition=Ready",
        "nodes",
        "--all",
        "--timeout=120s",
    ]);

    let out = sandbox()
        .args(["cluster", "delete", "t-nocni"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(traces(full), Vec::<String>::new());
}

#[test]
fn sweeps_remove_a_killed_create_and_spare_a_cluster_sandbox_did_not_make() {
    let Some(t) = ready_or_skip("sweeps") else {
        return;
    };
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let user_kubeconfig = dir.path().join("kubeconfig");
    // The user's cluster is made here with kind alone, whose kubelet changes these.
    let host_before = host_sysctls();
    let kind_net_existed = succeeds(Command::new("docker").args(["network", "inspect", "kind"]));
    ok(Command::new(&t.kind)
        .args([
            "create",
            "cluster",
            "--name",
            "user-made",
            "--image",
            &t.image,
        ])
        .arg("--kubeconfig")
        .arg(&user_kubeconfig)
        .args(["--wait", "0s"]));

    // A create killed once its node container exists.
    let full = "sbx-t-kill";
    let mut child = sandbox()
        .args([
            "cluster", "create", "--layout", "single", "--name", "t-kill",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its node runs: kind is then bootstrapping Kubernetes in it.
    let started = Instant::now();
    let node = format!("{full}-control-plane");
    let running = |name: &str| {
        Command::new("docker")
            .args(["inspect", "-f", "{{.State.Running}}", name])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
    };
    while !running(&node) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no node started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!traces(full).is_empty());

    // A cluster network of sandbox run with another state directory (another user's).
    let theirs = "sbx-t-other-state";
    ok(Command::new("docker").args([
        "network",
        "create",
        "--label",
        &format!("sandbox.cluster={theirs}"),
        "--label",
        "sandbox.state=/elsewhere/clusters",
        theirs,
    ]));

    let out = sandbox()
        .args(["cluster", "delete", "--all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = sandbox().args(["down", "--all"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(traces(full), Vec::<String>::new(), "{}", text(&out));
    assert!(
        succeeds(Command::new("docker").args(["network", "inspect", theirs])),
        "another state directory's cluster network was swept"
    );
    ok(Command::new("docker").args(["network", "rm", theirs]));

    let user = traces("user-made");
    assert!(
        user.contains(&"container user-made-control-plane".to_string()),
        "the user's cluster was touched: {user:?}"
    );
    let user_running = ok(Command::new("docker").args([
        "inspect",
        "-f",
        "{{.State.Running}}",
        "user-made-control-plane",
    ]));
    assert_eq!(user_running.trim(), "true");
    ok(Command::new(&t.kind)
        .args(["delete", "cluster", "--name", "user-made"])
        .arg("--kubeconfig")
        .arg(&user_kubeconfig));
    if !kind_net_existed {
        ok(Command::new("docker").args(["network", "rm", "kind"]));
    }
    for (k, v) in host_before {
        std::fs::write(Path::new("/proc/sys").join(k), v).unwrap();
    }
}
