//! Named network namespaces (`/run/netns/<name>`, as iproute2 keeps them).

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use nix::sched::{CloneFlags, setns};

pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Names of all named namespaces on the host.
pub fn list() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Moves the calling thread into `name`. Threads and processes it starts afterwards are
/// created there too, which is how a lab's supervisor lives inside its lab.
pub fn enter(name: &str) -> std::io::Result<()> {
    let f = File::open(path(name))?;
    setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
}

/// A command that runs inside namespace `name` (and nowhere else), without the mount
/// namespace `ip netns exec` sets up: for tools such as nft, tc and iptables.
pub fn command(name: &str, program: &str) -> std::io::Result<Command> {
    let f = File::open(path(name))?;
    let mut c = Command::new(program);
    // SAFETY: setns is async-signal-safe; `f` is moved into the closure and stays open until
    // the child has exec'd.
    unsafe {
        c.pre_exec(move || {
            setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    Ok(c)
}

/// Pids of processes whose network namespace is `name`.
pub fn pids(name: &str) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(path(name)) else {
        return Vec::new();
    };
    use std::os::unix::fs::MetadataExt;
    let ino = target.ino();
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| m.ino() == ino)
                .unwrap_or(false)
        })
        .collect()
}
