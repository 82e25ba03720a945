//! The supervisor: one detached process per lab (`sandbox supervise`, started by `run`). It
//! builds the lab, keeps its services running, fires faults on schedule, publishes the lab's
//! state, and on SIGTERM undoes everything in reverse order. It lives inside the lab's
//! network, so its health checks and app-fault switches reach instances directly.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::state::now_ms;
use super::{FaultDetail, FaultState, FaultStatus, InstanceState, LabDir, LabId, Phase, State};
use crate::backend::{self, BackendKind, LabSpec, Network};
use crate::fault::{Active, Injector};
use crate::http;
use crate::names::NameServer;
use crate::plan::{Instance, Plan};
use crate::scenario::{ADMIN_PORT, LOADGEN, NameService, Program};

/// Everything the supervisor needs, passed on its standard input so that nothing of the plan
/// has to be written to disk.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    pub id: LabId,
    pub slot: u8,
    pub backend: BackendKind,
    /// The cluster a `kube` lab runs on.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The prefix of a `kube` lab's namespace, where not sandbox's own.
    #[serde(default)]
    pub namespace_prefix: Option<String>,
    pub plan: Plan,
    /// Directory with the compiled Go programs.
    pub binaries: PathBuf,
    /// Certification mode: faults are published without saying what they are.
    pub certification: bool,
}

/// How long services get to answer their first health check.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);

/// Entry point of `sandbox supervise`. Returns the process exit code.
pub fn main(id: &LabId) -> i32 {
    let dir = LabDir::new(id);
    let spec: Spec = match serde_json::from_reader(std::io::stdin().lock()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("supervisor {id}: reading the lab spec from stdin: {e}");
            return 2;
        }
    };
    // SIGTERM/SIGINT wait until the runtime can handle them; until then `down` must not kill
    // the supervisor half-way through building the network.
    let mut mask = nix::sys::signal::SigSet::empty();
    mask.add(nix::sys::signal::Signal::SIGTERM);
    mask.add(nix::sys::signal::Signal::SIGINT);
    mask.add(nix::sys::signal::Signal::SIGHUP);
    let _ = mask.thread_block();

    let Some(mut state) = dir.read_state() else {
        eprintln!(
            "supervisor {id}: no initial state in {}",
            dir.path.display()
        );
        return 2;
    };
    state.supervisor_pid = Some(std::process::id());
    let shared = Shared::new(dir.clone(), state);

    let mut instances: Vec<(String, String)> = spec
        .plan
        .instances
        .iter()
        .map(|i| (i.name.clone(), i.service.clone()))
        .collect();
    instances.push((LOADGEN.to_string(), LOADGEN.to_string()));
    let lab = LabSpec {
        id: spec.id.clone(),
        subnet: crate::topology::Subnet::of_slot(spec.slot),
        instances,
        names: spec.plan.names,
        binaries: spec.binaries.clone(),
        dir: dir.path.clone(),
        runs: runs(&spec, &dir),
        ports: spec
            .plan
            .instances
            .iter()
            .map(|i| (i.service.clone(), i.port))
            .collect(),
        cluster: spec.cluster.clone(),
        namespace_prefix: spec.namespace_prefix.clone(),
    };
    shared.step("creating the network");
    let backend = match backend::create(spec.backend, &lab) {
        Ok(b) => Arc::new(b),
        Err(e) => return shared.fail(format!("creating the network: {e}")),
    };
    if let Err(e) = backend.join() {
        return shared.fail(format!("{e}"));
    }
    let names = match spec.plan.names {
        NameService::Dns if !backend.runs_name_server() => None,
        NameService::Dns => match NameServer::start(backend.book().control, backend.book()) {
            Ok(server) => Some(server),
            Err(e) => return shared.fail(format!("starting the lab's name server: {e}")),
        },
        NameService::Hosts => None,
    };
    shared.update(|s| {
        s.book = Some(backend.book().clone());
        s.wire = Some(backend.wire());
        s.instances = spec
            .plan
            .instances
            .iter()
            .map(|i| InstanceState {
                name: i.name.clone(),
                service: i.service.clone(),
                program: i.program.to_string(),
                ip: backend
                    .book()
                    .ip_of(&i.name)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                ports: vec![i.port, ADMIN_PORT],
                pid: None,
                netns: None,
                netns_inode: None,
                node: None,
                restarts: 0,
                calls: i.upstreams.iter().map(|u| host_of(u)).collect(),
                status: "starting".into(),
            })
            .chain(std::iter::once(InstanceState {
                name: LOADGEN.into(),
                service: LOADGEN.into(),
                program: LOADGEN.into(),
                ip: backend
                    .book()
                    .ip_of(LOADGEN)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                ports: vec![],
                pid: None,
                netns: None,
                netns_inode: None,
                node: None,
                restarts: 0,
                calls: vec![spec.plan.workload.target.clone()],
                status: "waiting".into(),
            }))
            .collect();
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return shared.fail(format!("starting the runtime: {e}")),
    };
    let code = runtime.block_on(async {
        let mut lab = Lab {
            spec: &spec,
            backend: Some(backend),
            names,
            shared: shared.clone(),
            children: BTreeMap::new(),
        };
        lab.run(mask).await
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// The published state, shared by the supervisor's tasks.
#[derive(Clone)]
struct Shared {
    dir: LabDir,
    state: Arc<Mutex<State>>,
}

impl Shared {
    fn new(dir: LabDir, state: State) -> Shared {
        let s = Shared {
            dir,
            state: Arc::new(Mutex::new(state)),
        };
        s.publish();
        s
    }

    /// Changes the state, publishes it, and adds what changed to the lab's timeline.
    fn update(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut s) = self.state.lock() {
            let before = s.clone();
            f(&mut s);
            if let Err(e) = crate::lab::events::record(&self.dir, &before, &s) {
                eprintln!("supervisor: recording the lab's events: {e}");
            }
        }
        self.publish();
    }

    /// Publishes the state through the redaction rule: fault details privately, the rest in
    /// `state.json`.
    fn publish(&self) {
        let Ok(s) = self.state.lock() else { return };
        if let Err(e) = super::redact::publish(&self.dir, &s) {
            eprintln!("supervisor: publishing the lab's state: {e}");
        }
    }

    fn step(&self, step: &str) {
        self.update(|s| s.step = step.to_string());
    }

    fn fail(&self, error: String) -> i32 {
        eprintln!("supervisor: {error}");
        self.update(|s| {
            s.phase = Phase::Failed;
            s.error = Some(error);
        });
        1
    }
}

struct Lab<'a> {
    spec: &'a Spec,
    /// The lab's network; taken out (and removed) last, when the lab goes down.
    backend: Option<Arc<Network>>,
    /// The lab's name server, stopped before the network goes.
    names: Option<NameServer>,
    shared: Shared,
    children: BTreeMap<String, tokio::task::JoinHandle<()>>,
}

impl Lab<'_> {
    async fn run(&mut self, mask: nix::sys::signal::SigSet) -> i32 {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            return self.shared.fail("installing signal handlers failed".into());
        };
        let _ = mask.thread_unblock();
        let (stop_tx, stop_rx) = watch::channel(false);

        let started = tokio::select! {
            r = self.start(stop_rx.clone()) => r,
            _ = term.recv() => Err("stopped while starting".to_string()),
            _ = int.recv() => Err("stopped while starting".to_string()),
            _ = hup.recv() => Err("stopped while starting".to_string()),
        };
        let injector = match self.injector() {
            Ok(i) => Arc::new(i),
            Err(e) => {
                let _ = stop_tx.send(true);
                self.stop_children().await;
                return self.shared.fail(e);
            }
        };
        let active: Arc<Mutex<BTreeMap<usize, Active>>> = Arc::default();
        match started {
            Ok(()) => {
                let ready = now_ms();
                self.shared.update(|s| {
                    s.phase = Phase::Ready;
                    s.step = "ready".into();
                    s.ready_ms = Some(ready);
                    for (f, plan) in s.faults.iter_mut().zip(&self.spec.plan.faults) {
                        let start = ready + plan.start_after.as_millis() as u64;
                        f.start_ms = Some(start);
                        f.end_ms = plan.duration.map(|d| start + d.as_millis() as u64);
                    }
                });
                let mut tasks = Vec::new();
                for (i, f) in self.spec.plan.faults.iter().enumerate() {
                    tasks.push(tokio::spawn(schedule_fault(
                        i,
                        f.clone(),
                        injector.clone(),
                        active.clone(),
                        self.shared.clone(),
                    )));
                }
                tasks.push(tokio::spawn(count_packets(
                    active.clone(),
                    self.shared.clone(),
                )));
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
                for t in &tasks {
                    t.abort();
                }
                self.shared.update(|s| {
                    s.phase = Phase::Stopping;
                    s.step = "stopping".into();
                });
            }
            Err(e) => {
                let _ = stop_tx.send(true);
                self.stop_children().await;
                drop(injector);
                let _ = tokio::task::spawn_blocking({
                    let (active, shared) = (active.clone(), self.shared.clone());
                    move || remove_all(&active, &shared)
                })
                .await;
                self.names = None;
                let _ = self.take_down().await;
                return self.shared.fail(e);
            }
        }
        let _ = stop_tx.send(true);
        let _ = tokio::task::spawn_blocking({
            let (active, shared) = (active.clone(), self.shared.clone());
            move || remove_all(&active, &shared)
        })
        .await;
        drop(injector);
        self.stop_children().await;
        self.names = None;
        match self.take_down().await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("supervisor: removing the lab: {e}");
                1
            }
        }
    }

    fn network(&self) -> Result<Arc<Network>, String> {
        self.backend
            .clone()
            .ok_or_else(|| "the lab's network is gone".to_string())
    }

    fn injector(&self) -> Result<Injector, String> {
        let net = self.network()?;
        let sites = net
            .sites()
            .map_err(|e| format!("finding fault sites: {e}"))?;
        let nodes = net
            .nodes()
            .map_err(|e| format!("finding the cluster's nodes: {e}"))?;
        let injector = Injector::new(sites, self.spec.id.as_str(), net.book().clone())
            .with_nodes(nodes)
            .with_api(net.cluster_api());
        Ok(match &self.names {
            Some(server) => injector.with_names(server.rules()),
            None => injector,
        })
    }

    /// Removes the network and everything in it (off the async threads: it blocks).
    async fn take_down(&mut self) -> Result<(), String> {
        let Some(net) = self.backend.take() else {
            return Ok(());
        };
        let removed = tokio::task::spawn_blocking(move || match Arc::try_unwrap(net) {
            Ok(n) => n.remove().map_err(|e| e.to_string()),
            // A task still holds it; the last one to let go removes it.
            Err(_) => Ok(()),
        })
        .await;
        removed.unwrap_or_else(|e| Err(e.to_string()))
    }

    async fn start(&mut self, stop: watch::Receiver<bool>) -> Result<(), String> {
        let plan = &self.spec.plan;
        let sealed = self.spec.certification;
        self.shared.update(|s| {
            s.faults = plan
                .faults
                .iter()
                .enumerate()
                .map(|(i, f)| FaultState {
                    number: i + 1,
                    start_ms: None,
                    end_ms: None,
                    status: FaultStatus::Pending,
                    detail: Some(FaultDetail {
                        id: f.id.clone(),
                        kind: if sealed {
                            "sealed".into()
                        } else {
                            f.kind.to_string()
                        },
                        description: if sealed {
                            "sealed".into()
                        } else {
                            format!("{} on {}", f.effect, f.target)
                        },
                        error: None,
                        packets: None,
                        target: (!sealed).then(|| f.target.clone()),
                    }),
                })
                .collect();
        });
        std::fs::create_dir_all(self.shared.dir.logs())
            .map_err(|e| format!("creating the log directory: {e}"))?;
        self.shared.step("starting services");
        let (load, services): (Vec<backend::Run>, Vec<backend::Run>) =
            runs(self.spec, &self.shared.dir)
                .into_iter()
                .partition(|r| r.instance == LOADGEN);
        for run in services {
            self.spawn_supervised(run, stop.clone())?;
        }
        self.wait_healthy().await?;
        for run in load {
            self.spawn_supervised(run, stop.clone())?;
        }
        // Ready means the load runs too: probes of the whole lab need its handle.
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        while !self.published(LOADGEN) {
            if self.exited(LOADGEN) || Instant::now() > deadline {
                return Err(format!(
                    "the load generator did not start:\n{}",
                    tail(&self.shared.dir.log_of(LOADGEN), 15)
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Starts an instance and keeps it running: when it exits it is started again, with a
    /// growing pause, until the lab stops.
    fn spawn_supervised(
        &mut self,
        run: backend::Run,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), String> {
        let net = self.network()?;
        let shared = self.shared.clone();
        let name = run.instance.clone();
        let run_name = name.clone();
        let task = tokio::spawn(async move {
            let mut restarts = 0u32;
            loop {
                let (n, r) = (net.clone(), run.clone());
                let started = tokio::task::spawn_blocking(move || n.start(&r)).await;
                let started = match started {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return mark(&shared, &name, format!("cannot start: {e}")),
                    Err(e) => return mark(&shared, &name, format!("cannot start: {e}")),
                };
                let handle = started.handle.clone();
                shared.update(|s| {
                    set_instance(s, &name, |i| {
                        i.pid = Some(handle.pid);
                        i.netns = Some(handle.netns.clone());
                        i.netns_inode = Some(handle.netns_inode);
                        i.node = handle.node.clone();
                        i.restarts = restarts;
                        i.status = "running".into();
                    })
                });
                let exit = started.exit;
                let mut waiting = tokio::task::spawn_blocking(move || exit.wait());
                let what = tokio::select! {
                    st = &mut waiting => st.unwrap_or_else(|e| format!("unknown status ({e})")),
                    _ = stop.changed() => {
                        let (n, who, h) = (net.clone(), name.clone(), handle.clone());
                        let _ = tokio::task::spawn_blocking(move || n.stop(&who, &h)).await;
                        let _ = tokio::time::timeout(Duration::from_secs(2), waiting).await;
                        shared.update(|s| set_instance(s, &name, |i| { i.status = "stopped".into(); i.pid = None; }));
                        return;
                    }
                };
                shared.update(|s| {
                    set_instance(s, &name, |i| {
                        i.status = format!("exited ({what}); restarting");
                        i.pid = None;
                    })
                });
                let pause = Duration::from_millis(250 * 2u64.pow(restarts.min(5)));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
                restarts += 1;
            }
        });
        self.children.insert(run_name, task);
        Ok(())
    }

    async fn stop_children(&mut self) {
        for (_, t) in std::mem::take(&mut self.children) {
            let _ = tokio::time::timeout(Duration::from_secs(4), t).await;
        }
    }

    /// Waits until every service answers on its data port and its control plane.
    async fn wait_healthy(&self) -> Result<(), String> {
        let book = self.network()?.book().clone();
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        let mut pending: Vec<&Instance> = self.spec.plan.instances.iter().collect();
        let total = pending.len();
        while !pending.is_empty() {
            let mut still = Vec::new();
            let checks = pending.iter().map(|inst| {
                let ip = book.ip_of(&inst.name).unwrap_or(Ipv4Addr::UNSPECIFIED);
                let (program, port) = (inst.program, inst.port);
                tokio::task::spawn_blocking(move || healthy(ip, program, port))
            });
            let results = futures_join(checks.collect()).await;
            for (inst, ok) in pending.iter().zip(results) {
                // Ready also means the backend has published the instance (its namespace
                // and pid), which probes and `shell` read: a cluster's pods may answer before.
                if !ok || !self.published(&inst.name) {
                    still.push(*inst);
                }
            }
            pending = still;
            let healthy_count = total - pending.len();
            self.shared.step(&format!(
                "waiting for services to answer ({healthy_count}/{total} healthy)"
            ));
            if pending.is_empty() {
                break;
            }
            if let Some(dead) = pending.iter().find(|i| self.exited(&i.name)) {
                return Err(format!(
                    "{} exited during start-up:\n{}",
                    dead.name,
                    tail(&self.shared.dir.log_of(&dead.name), 15)
                ));
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = pending.iter().map(|i| i.name.as_str()).collect();
                let first = &pending[0].name;
                return Err(format!(
                    "no health answer within {}s from: {}\nlast lines of {first}'s log:\n{}",
                    HEALTH_TIMEOUT.as_secs(),
                    names.join(", "),
                    tail(&self.shared.dir.log_of(first), 15)
                ));
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        Ok(())
    }

    fn published(&self, name: &str) -> bool {
        self.instance_is(name, |i| i.netns.is_some())
    }

    fn exited(&self, name: &str) -> bool {
        self.instance_is(name, |i| i.status.starts_with("exited"))
    }

    fn instance_is(&self, name: &str, what: impl Fn(&InstanceState) -> bool) -> bool {
        self.shared
            .state
            .lock()
            .map(|s| s.instances.iter().any(|i| i.name == name && what(i)))
            .unwrap_or(false)
    }
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<bool>>) -> Vec<bool> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap_or(false));
    }
    out
}

fn set_instance(s: &mut State, name: &str, f: impl FnOnce(&mut InstanceState)) {
    if let Some(i) = s.instances.iter_mut().find(|i| i.name == name) {
        f(i);
    }
}

fn mark(shared: &Shared, name: &str, status: String) {
    shared.update(|s| set_instance(s, name, |i| i.status = status));
}

/// Every instance's run: the services', then the load generator's.
fn runs(spec: &Spec, dir: &LabDir) -> Vec<backend::Run> {
    let domain = backend::service_domain(spec.backend, &spec.id, spec.namespace_prefix.as_deref());
    let w = &spec.plan.workload;
    let load = vec![
        "-target".into(),
        w.url.clone(),
        "-rate".into(),
        w.rate.to_string(),
        "-concurrency".into(),
        w.concurrency.to_string(),
        "-timeout".into(),
        format!("{}ms", w.timeout.as_millis()),
        "-stats".into(),
        dir.load_stats().display().to_string(),
    ];
    spec.plan
        .instances
        .iter()
        .map(|inst| backend::Run {
            instance: inst.name.clone(),
            program: inst.program.name().to_string(),
            args: service_args(inst, domain.as_deref()),
            env: inst.env.clone(),
            log: dir.log_of(&inst.name),
            node: inst.node.clone(),
        })
        .chain(std::iter::once(backend::Run {
            instance: LOADGEN.into(),
            program: LOADGEN.into(),
            args: load,
            env: BTreeMap::new(),
            log: dir.log_of(LOADGEN),
            node: None,
        }))
        .collect()
}

/// A service's command line; `domain` qualifies the names of its upstreams when it calls them
/// by their full names.
fn service_args(inst: &Instance, domain: Option<&str>) -> Vec<String> {
    let mut argv = vec![
        "-name".to_string(),
        inst.name.clone(),
        "-listen".into(),
        format!(":{}", inst.port),
        "-admin".into(),
        format!(":{ADMIN_PORT}"),
    ];
    for u in &inst.upstreams {
        argv.push("-upstream".into());
        argv.push(match domain {
            Some(d) if inst.qualified_calls => qualified(u, d),
            _ => u.clone(),
        });
    }
    argv.extend(inst.args.iter().cloned());
    argv
}

const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// One health check: the data port answers (`GET /health`, or `PING` for the store) and so
/// does the control plane.
fn healthy(ip: Ipv4Addr, program: Program, port: u16) -> bool {
    let data = SocketAddr::from((ip, port));
    let data_ok = if program.speaks_http() {
        matches!(
            http::request(data, "GET", "/health", None, PROBE_TIMEOUT),
            Ok((200, _))
        )
    } else {
        ping_store(data)
    };
    data_ok
        && matches!(
            http::request(
                SocketAddr::from((ip, ADMIN_PORT)),
                "GET",
                "/health",
                None,
                PROBE_TIMEOUT
            ),
            Ok((200, _))
        )
}

fn ping_store(addr: SocketAddr) -> bool {
    use std::io::{BufRead, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    if s.write_all(b"PING\n").is_err() {
        return false;
    }
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).is_ok() && line.trim() == "PONG"
}

/// An upstream URL with its host name in `domain`: `http://api:8080` → `http://api.<domain>:8080`.
fn qualified(url: &str, domain: &str) -> String {
    let host = host_of(url);
    url.replacen(&format!("//{host}:"), &format!("//{host}.{domain}:"), 1)
}

/// The service an upstream URL names: `http://api:8080` → `api`.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split([':', '/']).next().unwrap_or(rest).to_string()
}

/// The last `n` lines of a log file, indented, for error messages.
pub fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    if lines.is_empty() {
        return "  (no output)".into();
    }
    lines[start..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn schedule_fault(
    index: usize,
    f: crate::plan::FaultPlan,
    injector: Arc<Injector>,
    active: Arc<Mutex<BTreeMap<usize, Active>>>,
    shared: Shared,
) {
    tokio::time::sleep(f.start_after).await;
    let inj = injector.clone();
    let plan = f.clone();
    let result = tokio::task::spawn_blocking(move || inj.inject(index, &plan)).await;
    let set = |status: FaultStatus, error: Option<String>| {
        shared.update(|s| {
            if let Some(fs) = s.faults.get_mut(index) {
                fs.status = status;
                if let Some(d) = &mut fs.detail {
                    d.error = error;
                }
                if status == FaultStatus::Active {
                    fs.start_ms = Some(now_ms());
                }
            }
        })
    };
    match result {
        Ok(Ok(a)) => {
            if let Ok(mut m) = active.lock() {
                m.insert(index, a);
            }
            set(FaultStatus::Active, None);
        }
        Ok(Err(e)) => return set(FaultStatus::Failed, Some(e.to_string())),
        Err(e) => return set(FaultStatus::Failed, Some(e.to_string())),
    }
    let Some(d) = f.duration else { return };
    tokio::time::sleep(d).await;
    let taken = active.lock().ok().and_then(|mut m| m.remove(&index));
    if let Some(a) = taken {
        let r = tokio::task::spawn_blocking(move || a.remove()).await;
        match r {
            Ok(Ok(())) => shared.update(|s| {
                if let Some(fs) = s.faults.get_mut(index) {
                    fs.status = FaultStatus::Ended;
                    fs.end_ms = Some(now_ms());
                }
            }),
            Ok(Err(e)) => set(FaultStatus::Failed, Some(format!("removing: {e}"))),
            Err(e) => set(FaultStatus::Failed, Some(format!("removing: {e}"))),
        }
    }
}

/// Refreshes the faults' packet counters in the published state every two seconds.
async fn count_packets(active: Arc<Mutex<BTreeMap<usize, Active>>>, shared: Shared) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let a = active.clone();
        let counts = tokio::task::spawn_blocking(move || {
            a.lock()
                .map(|m| m.iter().map(|(i, f)| (*i, f.packets())).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        shared.update(|s| {
            for (i, p) in counts {
                if let Some(d) = s.faults.get_mut(i).and_then(|f| f.detail.as_mut()) {
                    d.packets = p;
                }
            }
        });
    }
}

/// Removes every installed fault, newest first. The log says which number failed and the
/// private state why: a learner reads the log (`sandbox logs supervisor`), and the error names
/// the fault's target.
fn remove_all(active: &Mutex<BTreeMap<usize, Active>>, shared: &Shared) {
    let taken: Vec<(usize, Active)> = match active.lock() {
        Ok(mut m) => std::mem::take(&mut *m).into_iter().rev().collect(),
        Err(_) => return,
    };
    for (i, a) in taken {
        if let Err(e) = a.remove() {
            eprintln!(
                "supervisor: removing fault {} failed",
                super::redact::learner_name(i + 1)
            );
            shared.update(|s| {
                if let Some(f) = s.faults.get_mut(i) {
                    f.status = FaultStatus::Failed;
                    if let Some(d) = &mut f.detail {
                        d.error = Some(format!("removing: {e}"));
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qualified_upstream_keeps_its_scheme_and_port() {
        let d = "sbx-k3f9q.svc.cluster.local";
        assert_eq!(
            qualified("http://posts:8080", d),
            "http://posts.sbx-k3f9q.svc.cluster.local:8080"
        );
        assert_eq!(
            qualified("tcp://posts-db:7000", d),
            "tcp://posts-db.sbx-k3f9q.svc.cluster.local:7000"
        );
    }
}
