//! Taking labs down: detach the lab's debuggers, ask the supervisor to undo its lab, then have every backend present
//! remove whatever still carries the lab's name or label (namespaces and the processes in
//! them, name files, containers, networks, image tags), remove the state directory, and check
//! that nothing is left. `down --all` works from names and labels alone, so it also cleans up
//! after a supervisor that was killed or a state directory that was deleted.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{LabDir, LabId};
use crate::backend;

#[derive(Debug)]
pub struct DownReport {
    pub id: LabId,
    pub took: Duration,
    /// Objects still present after the sweep; empty when the lab is gone.
    pub leftovers: Vec<String>,
}

/// Supervisors of lab `id` still running, found by their command line.
fn supervisors_of(id: &LabId) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            args.windows(3)
                .any(|w| w[0] == b"supervise" && w[1] == b"--lab" && w[2] == id.as_str().as_bytes())
        })
        .collect()
}

/// Lab ids whose supervisor runs, from command lines.
fn supervised_ids() -> Vec<LabId> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let i = args.iter().position(|a| a == "supervise")?;
            (args.get(i + 1)? == "--lab")
                .then(|| LabId::parse(args.get(i + 2)?))
                .flatten()
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
}

/// Asks the lab's supervisor to take the lab down and waits for it; kills it if it does not
/// finish in time.
fn stop_supervisor(id: &LabId, grace: Duration) {
    let pids = supervisors_of(id);
    for p in &pids {
        let _ = kill(Pid::from_raw(*p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for p in pids.iter().filter(|p| alive(**p)) {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
}

/// Removes what is left of lab `id` by name and reports anything that would not go.
pub fn remove(id: &LabId) -> DownReport {
    let started = Instant::now();
    let kind = LabDir::new(id).read_state().map(|s| s.backend);
    // Debuggers first: one holds its instance's namespace and may hold the service stopped.
    super::debuggers::remove_all(id);
    let mut leftovers = Vec::new();
    leftovers.extend(
        backend::sweep(id, kind)
            .into_iter()
            .map(|e| format!("removing: {e}")),
    );
    let dir = LabDir::new(id);
    if dir.path.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir.path)
    {
        leftovers.push(format!("{}: {e}", dir.path.display()));
    }
    leftovers.extend(backend::leftovers(id, kind));
    leftovers.extend(
        supervisors_of(id)
            .into_iter()
            .map(|p| format!("supervisor process {p}")),
    );
    leftovers.extend(
        super::debuggers::running(id)
            .into_iter()
            .map(|(p, i)| format!("debugger process {p} of {i}")),
    );
    DownReport {
        id: id.clone(),
        took: started.elapsed(),
        leftovers,
    }
}

/// Takes one lab down.
pub fn down(id: &LabId) -> DownReport {
    let started = Instant::now();
    // Detached before the supervisor stops the services, so they stop as they would untraced.
    super::debuggers::remove_all(id);
    stop_supervisor(id, Duration::from_secs(15));
    let mut report = remove(id);
    report.took = started.elapsed();
    report
}

/// Takes down every lab on this machine: those with state, those with namespaces, and those
/// whose supervisor still runs.
pub fn down_all() -> Vec<DownReport> {
    let mut ids: Vec<LabId> = super::list().into_iter().map(|s| s.id).collect();
    ids.extend(backend::labs_present());
    ids.extend(supervised_ids());
    if let Ok(dir) = std::fs::read_dir(super::state_root().join("labs")) {
        ids.extend(dir.filter_map(|e| LabId::parse(e.ok()?.file_name().to_str()?)));
    }
    ids.sort();
    ids.dedup();
    ids.iter().map(down).collect()
}

/// Deletes the kind clusters sandbox made, found by their marker mount even after a crash;
/// clusters anyone else made are left alone.
pub fn down_clusters() -> Vec<crate::cluster::DeleteReport> {
    crate::cluster::delete_all()
}
