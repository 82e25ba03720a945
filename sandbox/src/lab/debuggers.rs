//! The debuggers `sandbox debug` attaches, as a lab's lifecycle sees them: each carries its
//! lab and instance in its environment ([`MARKER`]), so `down` and the crash sweep find it by
//! scanning `/proc` even when the lab directory is gone, and end it by detaching it (SIGINT
//! makes a headless Delve clear its breakpoints and detach; only if that fails is it killed,
//! after which the service is sent SIGCONT so no ptrace or group stop is left behind).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{LabDir, LabId};

/// Environment variable naming a debugger's `<lab>/<instance>`.
pub const MARKER: &str = "SANDBOX_DEBUGGER";

/// How long a debugger may take to detach after SIGINT before it is killed.
const DETACH: Duration = Duration::from_secs(10);

/// Where a lab keeps its debuggers' records and logs.
pub fn dir_of(lab: &LabDir) -> PathBuf {
    lab.path.join("debug")
}

pub fn record_of(lab: &LabDir, instance: &str) -> PathBuf {
    dir_of(lab).join(format!("{instance}.json"))
}

/// Debuggers of lab `id` still running (pid, instance), found by their environment.
pub fn running(id: &LabId) -> Vec<(i32, String)> {
    let prefix = format!("{MARKER}={}/", id.as_str());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive(*pid))
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let instance = env
                .split(|b| *b == 0)
                .find_map(|v| v.strip_prefix(prefix.as_bytes()))?;
            Some((pid, String::from_utf8_lossy(instance).into_owned()))
        })
        .collect()
}

pub fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok() && !matches!(state_of(pid as u32), Some('Z') | None)
}

/// The one-letter state `/proc/<pid>/stat` gives (`S`, `t` for a ptrace stop, `T`…).
pub fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Ends every debugger of lab `id`, for `down` and the crash sweep, whose final check
/// ([`running`]) reports any that would not go.
pub fn remove_all(id: &LabId) {
    let lab = LabDir::new(id);
    for (pid, instance) in running(id) {
        let _ = std::fs::remove_file(record_of(&lab, &instance));
        let _ = end(pid);
    }
}

/// The pid a debugger traces, from its command line (`dlv attach <pid> …`).
fn tracee_of(pid: i32) -> Option<i32> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    let i = args.iter().position(|a| *a == b"attach")?;
    std::str::from_utf8(args.get(i + 1)?).ok()?.parse().ok()
}

/// Ends debugger `pid`: SIGINT, on which headless Delve detaches (clearing its breakpoints)
/// and exits; SIGKILL if it has not within [`DETACH`]. Then the service gets SIGCONT: a
/// stop signal Delve sent to halt it can still be pending when it detaches (or it is killed),
/// and would leave the service stopped.
pub fn end(pid: i32) -> Result<(), String> {
    let tracee = tracee_of(pid);
    let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
    let gone = |grace: Duration| {
        let deadline = Instant::now() + grace;
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        reap(pid);
        !alive(pid)
    };
    let result = if gone(DETACH) {
        Ok(())
    } else {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        if gone(Duration::from_secs(5)) {
            Err(format!(
                "it did not detach within {}s and was killed",
                DETACH.as_secs()
            ))
        } else {
            Err("it survived SIGKILL".into())
        }
    };
    if let Some(t) = tracee {
        let _ = kill(Pid::from_raw(t), Signal::SIGCONT);
    }
    result
}

/// Collects `pid`'s exit status if it is this process's child (the foreground `debug`).
fn reap(pid: i32) {
    let _ = nix::sys::wait::waitpid(
        Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}
