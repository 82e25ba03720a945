//! Starting a lab from the command line: reserve an id and a subnet, start the supervisor in
//! the background, and wait until it reports the lab ready (or why it is not).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::state::now_ms;
use super::supervisor::{Spec, tail};
use super::{LabDir, LabId, Phase, State, state_root, sweep};
use crate::backend::{self, BackendKind};
use crate::plan::Plan;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("all 256 lab subnets are in use; take a lab down first (`sandbox down --all`)")]
    NoSlot,
    #[error("lab {id} did not start: {error}")]
    Failed { id: LabId, error: String },
    #[error("lab {id}: the supervisor exited before the lab was ready. Its log:\n{log}")]
    Exited { id: LabId, log: String },
    #[error("lab {id} was not ready after {secs}s (last step: {step}); it has been taken down")]
    Timeout { id: LabId, secs: u64, step: String },
}

/// Writes what a lab needs besides its state (the exercise, sealed facts) once its id and
/// directory exist; an error takes the lab down again.
pub type Prepare<'a> = &'a dyn Fn(&LabDir, &State) -> Result<(), String>;

pub struct Request<'a> {
    pub plan: &'a Plan,
    pub backend: BackendKind,
    /// The cluster a `kube` lab runs on.
    pub cluster: Option<String>,
    /// The prefix of a `kube` lab's namespace, where not sandbox's own.
    pub namespace_prefix: Option<String>,
    pub binaries: &'a Path,
    /// The scenario file, or `bundled:<id>`.
    pub source: &'a str,
    pub ready_timeout: Duration,
    /// Certification mode: what is drawn is sealed to the instructor and kept out of the
    /// lab's files.
    pub certification: Option<Certification>,
    pub prepare: Prepare<'a>,
}

pub struct Certification {
    pub candidate: String,
    pub instructor: crate::cert::InstructorPublic,
    /// SHA-256 of the scenario file's text, which grading rebuilds the rubric from.
    pub scenario_sha256: String,
}

pub struct Launched {
    pub state: State,
    /// Seconds from the supervisor's start to the lab being ready.
    pub startup: Duration,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}

/// Reserves an id and subnet slot under a lock, so labs started at the same moment do not
/// collide, and writes the lab's first state.
fn reserve(req: &Request, candidate: Option<&str>) -> Result<(LabDir, State), LaunchError> {
    let (plan, source) = (req.plan, req.source);
    let labs = state_root().join("labs");
    std::fs::create_dir_all(&labs).map_err(io(format!("creating {}", labs.display())))?;
    let lock_path = labs.join(".lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(format!("opening {}", lock_path.display())))?;
    let _lock =
        Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| LaunchError::Io {
            what: format!("locking {}", lock_path.display()),
            source: e.into(),
        })?;
    let used: Vec<u8> = super::list().iter().map(|s| s.slot).collect();
    let slot = (0..=255u8)
        .find(|s| !used.contains(s))
        .ok_or(LaunchError::NoSlot)?;
    // Namespaces only: asking every backend would slow every start, and an id also names
    // its state directory, checked below.
    let present = backend::netns::lab_ids_present();
    let id = loop {
        let id = LabId::random();
        if !present.contains(&id) && !LabDir::new(&id).path.exists() {
            break id;
        }
    };
    let dir = LabDir::new(&id);
    std::fs::create_dir_all(dir.logs()).map_err(io(format!("creating {}", dir.path.display())))?;
    let w = &plan.workload;
    let state = State {
        id: id.clone(),
        scenario_id: plan.scenario.id.clone(),
        scenario_title: plan.scenario.title.clone(),
        source: source.to_string(),
        seed: candidate.is_none().then_some(plan.seed),
        candidate: candidate.map(str::to_string),
        backend: req.backend,
        phase: Phase::Starting,
        step: "starting the supervisor".into(),
        error: None,
        created_ms: now_ms(),
        ready_ms: None,
        supervisor_pid: None,
        slot,
        book: None,
        wire: None,
        instances: Vec::new(),
        faults: Vec::new(),
        workload: format!(
            "loadgen → {} at {} req/s, {} in flight at most",
            w.url, w.rate, w.concurrency
        ),
        briefing_title: plan.briefing.title.clone(),
        briefing: plan.briefing.body.clone(),
        time_limit_s: plan.scenario.time_limit.map(|t| t.as_secs()),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| LaunchError::Io {
        what: "encoding state".into(),
        source: e.into(),
    })?;
    super::write_atomic(&dir.state_file(), &json)
        .map_err(io(format!("writing {}", dir.state_file().display())))?;
    Ok((dir, state))
}

/// Starts a lab and waits until it is ready; `on_step` hears each start-up step.
pub fn launch(req: &Request, mut on_step: impl FnMut(&str)) -> Result<Launched, LaunchError> {
    let candidate = req.certification.as_ref().map(|c| c.candidate.as_str());
    let (dir, state) = reserve(req, candidate)?;
    let id = state.id.clone();
    let cleanup = |dir: &LabDir| {
        let _ = sweep::remove(&dir.id);
    };
    if let Err(e) = (req.prepare)(&dir, &state) {
        cleanup(&dir);
        return Err(LaunchError::Io {
            what: "writing the exercise".into(),
            source: std::io::Error::other(e),
        });
    }
    let mut plan = req.plan.clone();
    if req.certification.is_some() {
        // Fault ids name the fault; the kernel objects and state carry neutral ones instead.
        for (i, f) in plan.faults.iter_mut().enumerate() {
            f.id = format!("f{}", i + 1);
        }
    }
    let spec = Spec {
        id: id.clone(),
        slot: state.slot,
        backend: req.backend,
        cluster: req.cluster.clone(),
        namespace_prefix: req.namespace_prefix.clone(),
        plan,
        binaries: req.binaries.to_path_buf(),
        certification: req.certification.is_some(),
    };
    let log =
        std::fs::File::create(dir.supervisor_log()).map_err(io("creating the supervisor log"))?;
    let log_err = log.try_clone().map_err(io("opening the supervisor log"))?;
    let exe = std::env::current_exe().map_err(io("finding the sandbox binary"))?;
    let mut c = Command::new(exe);
    c.args(["supervise", "--lab", id.as_str()])
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: setsid is async-signal-safe. A session of its own keeps the supervisor alive
    // when the terminal that ran `sandbox run` goes away or gets Ctrl-C.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let started = Instant::now();
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            cleanup(&dir);
            return Err(LaunchError::Io {
                what: "starting the supervisor".into(),
                source: e,
            });
        }
    };
    let sent = child.stdin.take().map(|mut pipe| {
        let json = serde_json::to_vec(&spec).unwrap_or_default();
        pipe.write_all(&json)
    });
    if let Some(Err(e)) = sent {
        let _ = child.kill();
        let _ = child.wait();
        cleanup(&dir);
        return Err(LaunchError::Io {
            what: "handing the plan to the supervisor".into(),
            source: e,
        });
    }
    let mut last_step = String::new();
    loop {
        if let Some(s) = dir.read_state() {
            if s.step != last_step {
                on_step(&s.step);
                last_step = s.step.clone();
            }
            match s.phase {
                Phase::Ready => {
                    return Ok(Launched {
                        state: s,
                        startup: started.elapsed(),
                    });
                }
                Phase::Failed => {
                    let _ = child.wait();
                    let error = s.error.unwrap_or_else(|| "unknown error".into());
                    cleanup(&dir);
                    return Err(LaunchError::Failed { id, error });
                }
                _ => {}
            }
        }
        if let Ok(Some(_)) = child.try_wait() {
            // It may have published its last state just before exiting.
            if let Some(s) = dir.read_state().filter(|s| s.phase == Phase::Ready) {
                return Ok(Launched {
                    state: s,
                    startup: started.elapsed(),
                });
            }
            let log = tail(&dir.supervisor_log(), 20);
            cleanup(&dir);
            return Err(LaunchError::Exited { id, log });
        }
        if started.elapsed() > req.ready_timeout {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            cleanup(&dir);
            return Err(LaunchError::Timeout {
                id,
                secs: req.ready_timeout.as_secs(),
                step: last_step,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
