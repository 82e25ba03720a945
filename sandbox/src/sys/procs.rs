//! Finding a container's processes on this machine through `/proc`, for pods whose runtime
//! sandbox cannot ask directly (a kind node's containerd lives inside a container). Every
//! container runtime puts a container's processes in cgroups whose path holds its id.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Pids (as this machine sees them) of the processes in container `id`.
pub fn pids_in_container(id: &str) -> Vec<u32> {
    if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Vec::new();
    }
    processes()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.lines().any(|l| l.contains(id)))
        })
        .collect()
}

/// The oldest process other than `besides` in the network namespace with inode `inode`: a
/// pod's sandbox process, which holds the namespace while containers come and go.
pub fn holder_of_netns(inode: u64, besides: u32) -> Option<u32> {
    processes()
        .filter(|pid| *pid != besides)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == inode)
        })
        .min_by_key(|pid| start_time(*pid).unwrap_or(u64::MAX))
}

/// Pids of the processes whose real user is `uid`: a learner's shells and what they started.
pub fn pids_of_user(uid: u32) -> Vec<u32> {
    processes()
        .filter(|pid| std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid))
        .collect()
}

fn processes() -> impl Iterator<Item = u32> {
    std::fs::read_dir(Path::new("/proc"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_starts_after_init() {
        let me = std::process::id();
        assert!(start_time(me).unwrap() >= start_time(1).unwrap());
    }

    #[test]
    fn a_short_or_odd_id_matches_nothing() {
        assert!(pids_in_container("").is_empty());
        assert!(pids_in_container("abc").is_empty());
        assert!(pids_in_container("../../etc/passwd0000").is_empty());
    }
}
