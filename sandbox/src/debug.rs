//! Delve attached to a running service: `dlv attach --headless --accept-multiclient
//! --continue`, started inside the instance's own network namespace (from its published
//! handle, so the netns and Docker backends are the same here), listening on that namespace's
//! loopback by default. Only root, who can enter the namespace (`sandbox shell`), reaches
//! the debugger's API, which runs code in the service; nothing of it is on the host's
//! network nor beyond the machine.
//!
//! Each debugger carries its lab and instance in its environment ([`MARKER`]), so `down` and
//! the crash sweep find it by scanning `/proc` even when the lab directory is gone; the lab
//! directory also keeps a record of it (`debug/<instance>.json`, with its log). Ending a
//! debugger detaches it: SIGINT makes a headless Delve clear its breakpoints and detach
//! (the service runs on), and only if that fails is it killed, after which the service is
//! sent SIGCONT so no ptrace or group stop is left behind.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::lab::debuggers::{MARKER, dir_of, end, record_of, running, state_of};
use crate::lab::{InstanceState, LabDir, LabId, State, now_ms};
use crate::probe::journal::{self, Entry};

/// Where the debugger listens unless `--listen` says otherwise: Delve's usual port, on the
/// instance's loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2345";

/// How long Delve may take to load the binary's symbols and listen.
const START: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error("{instance} is not running (its status: {status})")]
    NotRunning { instance: String, status: String },
    #[error(
        "`dlv` (Delve) is not installed: install Debian's `delve` package (scripts/setup.sh does)"
    )]
    NoDelve,
    #[error(
        "--listen {addr}: the debugger listens inside {instance}'s network namespace, on its loopback or its own address {ip}; pick one of those (for example {DEFAULT_LISTEN})"
    )]
    Listen {
        addr: String,
        instance: String,
        ip: String,
    },
    #[error(
        "a debugger (pid {pid}) is attached to {instance} already, listening on {listen}; `sandbox debug --detach {instance}` removes it"
    )]
    Attached {
        instance: String,
        pid: i32,
        listen: String,
    },
    #[error("no debugger is attached to {instance}")]
    NotAttached { instance: String },
    #[error("Delve did not attach to {instance}: {reason}")]
    Start { instance: String, reason: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the debugger of {instance} (pid {pid}) did not detach: {reason}")]
    Detach {
        instance: String,
        pid: i32,
        reason: String,
    },
}

/// A debugger attached to an instance, as recorded in the lab directory.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attached {
    pub instance: String,
    /// Delve's pid, as the host sees it.
    pub pid: i32,
    /// The service's pid.
    pub tracee: u32,
    /// Where its API listens, inside the instance's network namespace.
    pub listen: SocketAddr,
    pub since_ms: u64,
    /// Delve's output.
    pub log: PathBuf,
}

/// The address `listen` names, if it stays inside the instance: its namespace's loopback or
/// its own address.
pub fn listen_addr(inst: &InstanceState, listen: &str) -> Result<SocketAddr, DebugError> {
    let refused = |addr: &str| DebugError::Listen {
        addr: addr.to_string(),
        instance: inst.name.clone(),
        ip: inst.ip.clone(),
    };
    let addr: SocketAddr = listen.parse().map_err(|_| refused(listen))?;
    let own: Option<IpAddr> = inst.ip.parse().ok();
    if addr.port() == 0 || !(addr.ip().is_loopback() || Some(addr.ip()) == own) {
        return Err(refused(listen));
    }
    Ok(addr)
}

/// Whether any thread of `pid` is in a ptrace stop.
fn stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .any(|tid| state_of(tid) == Some('t'))
}

/// Attaches Delve to `inst` as a headless server on `listen`, in the background, and
/// records it in the lab directory and the evidence journal.
pub fn attach(
    state: &State,
    inst: &InstanceState,
    listen: SocketAddr,
) -> Result<Attached, DebugError> {
    let (Some(tracee), Some(ns)) = (inst.pid, inst.netns.as_ref()) else {
        return Err(DebugError::NotRunning {
            instance: inst.name.clone(),
            status: inst.status.clone(),
        });
    };
    if let Some((pid, _)) = running(&state.id)
        .into_iter()
        .find(|(_, i)| *i == inst.name)
    {
        let lab = LabDir::new(&state.id);
        let listen = read_record(&lab, &inst.name)
            .map(|a| a.listen.to_string())
            .unwrap_or_else(|| "an unknown address".into());
        return Err(DebugError::Attached {
            instance: inst.name.clone(),
            pid,
            listen,
        });
    }
    let started = Instant::now();
    let lab = LabDir::new(&state.id);
    let dir = dir_of(&lab);
    let io = |what, path: &PathBuf| {
        let path = path.display().to_string();
        move |source| DebugError::Io { what, path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let log = dir.join(format!("{}.log", inst.name));
    let out = std::fs::File::create(&log).map_err(io("creating", &log))?;
    let err = out.try_clone().map_err(io("opening", &log))?;
    let mut c = ns.command("dlv").map_err(|e| DebugError::Start {
        instance: inst.name.clone(),
        reason: format!("entering {ns}: {e}"),
    })?;
    c.arg("attach")
        .arg(tracee.to_string())
        .args([
            "--headless",
            "--accept-multiclient",
            "--api-version=2",
            "--continue",
        ])
        .arg(format!("--listen={listen}"))
        .env(MARKER, format!("{}/{}", state.id.as_str(), inst.name))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // Its own process group: Ctrl-C in the terminal reaches `sandbox debug`, which detaches.
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = c.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DebugError::NoDelve,
        _ => DebugError::Start {
            instance: inst.name.clone(),
            reason: e.to_string(),
        },
    })?;
    let pid = child.id() as i32;
    let failed = |reason: String| DebugError::Start {
        instance: inst.name.clone(),
        reason,
    };
    // Delve listens before `--continue` resumes the service: wait for both, so no client
    // halts it before that continue (which would resume it under the client's feet).
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("API server listening at:") && !stopped(tracee) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(failed(format!("dlv ended ({status}):\n{}", text.trim())));
        }
        if started.elapsed() > START {
            let _ = end(pid);
            let _ = child.wait();
            return Err(failed(format!(
                "dlv was not listening after {}s:\n{}",
                START.as_secs(),
                text.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let attached = Attached {
        instance: inst.name.clone(),
        pid,
        tracee,
        listen,
        since_ms: now_ms(),
        log,
    };
    let record = record_of(&lab, &inst.name);
    let json = serde_json::to_vec_pretty(&attached).unwrap_or_default();
    if let Err(e) = std::fs::write(&record, json) {
        let _ = end(pid);
        let _ = child.wait();
        return Err(io("writing", &record)(e));
    }
    let took = started.elapsed();
    journal::record(
        &lab,
        &Entry {
            ts_ms: attached.since_ms.saturating_sub(took.as_millis() as u64),
            probe: "debug".into(),
            target: Some(inst.name.clone()),
            instances: vec![inst.name.clone()],
            seconds: took.as_secs_f64(),
            summary: serde_json::json!({
                "listen": listen.to_string(),
                "debugger_pid": pid,
                "pid": tracee,
            }),
        },
    );
    Ok(attached)
}

fn read_record(lab: &LabDir, instance: &str) -> Option<Attached> {
    let text = std::fs::read_to_string(record_of(lab, instance)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Detaches the debugger of `instance` in lab `id`; the service keeps running.
pub fn detach(id: &LabId, instance: &str) -> Result<(), DebugError> {
    let _ = std::fs::remove_file(record_of(&LabDir::new(id), instance));
    let pids: Vec<i32> = running(id)
        .into_iter()
        .filter(|(_, i)| i == instance)
        .map(|(p, _)| p)
        .collect();
    if pids.is_empty() {
        return Err(DebugError::NotAttached {
            instance: instance.to_string(),
        });
    }
    for pid in pids {
        end(pid).map_err(|reason| DebugError::Detach {
            instance: instance.to_string(),
            pid,
            reason,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst() -> InstanceState {
        serde_json::from_value(serde_json::json!({
            "name": "api-0", "service": "api", "program": "api", "ip": "10.77.0.5",
            "ports": [8080, 9090], "pid": 42, "restarts": 0, "status": "running"
        }))
        .unwrap()
    }

    #[test]
    fn the_debugger_listens_only_inside_the_instance() {
        let i = inst();
        assert_eq!(
            listen_addr(&i, DEFAULT_LISTEN).unwrap(),
            "127.0.0.1:2345".parse().unwrap()
        );
        assert_eq!(listen_addr(&i, "10.77.0.5:4000").unwrap().port(), 4000);
        assert!(listen_addr(&i, "[::1]:4000").is_ok());
        for bad in ["0.0.0.0:2345", "10.77.0.6:2345", "127.0.0.1:0", "localhost"] {
            let e = listen_addr(&i, bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("10.77.0.5"), "{e}");
        }
    }
}
