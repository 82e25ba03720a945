//! CPU starvation by a noisy neighbour: the target's processes are pinned to one CPU and busy
//! threads (in this process, outside the lab, so nothing inside the lab shows them) are pinned
//! to the same CPU. The target keeps running, but its runnable threads wait in the run queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use super::FaultError;

/// The CPU everything is pinned to: the last online one, so CPU 0 stays for the rest.
fn victim_cpu() -> Result<usize, FaultError> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map_err(|e| FaultError::Unsupported(format!("reading the online CPUs: {e}")))?;
    let last = online
        .trim()
        .rsplit([',', '-'])
        .next()
        .and_then(|n| n.parse().ok());
    last.ok_or_else(|| {
        FaultError::Unsupported(format!(
            "cannot read the online CPUs from `{}`",
            online.trim()
        ))
    })
}

fn threads_of(pid: i32) -> Vec<Pid> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .map(Pid::from_raw)
                .collect()
        })
        .unwrap_or_default()
}

pub struct StarveFault {
    stop: Arc<AtomicBool>,
    hogs: Vec<std::thread::JoinHandle<()>>,
    /// Threads pinned, with the affinity they had.
    pinned: Vec<(Pid, CpuSet)>,
    removed: bool,
}

/// Pins every thread of `pids` to one CPU and starts `hogs` busy threads there.
pub fn install(pids: &[i32], hogs: u32) -> Result<StarveFault, FaultError> {
    let cpu = victim_cpu()?;
    let mut only = CpuSet::new();
    only.set(cpu)
        .map_err(|e| FaultError::Unsupported(format!("CPU {cpu}: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut fault = StarveFault {
        stop: stop.clone(),
        hogs: Vec::new(),
        pinned: Vec::new(),
        removed: false,
    };
    if pids.is_empty() {
        return Err(FaultError::Unsupported(
            "no running process to starve".into(),
        ));
    }
    for pid in pids {
        // Go starts threads from pinned threads, so threads created later stay on the CPU too.
        for tid in threads_of(*pid) {
            if let Ok(old) = sched_getaffinity(tid)
                && sched_setaffinity(tid, &only).is_ok()
            {
                fault.pinned.push((tid, old));
            }
        }
    }
    // A target in a CPU cgroup of its own (a container) competes for the CPU as one group
    // against the busy threads' group, whatever their number: each busy thread joins a
    // target's group, so the neighbours are as noisy as they are on a shared host.
    let groups = busy_groups(pids);
    let own = cpu_cgroup_tasks(std::process::id() as i32);
    for i in 0..hogs {
        let stop = stop.clone();
        let join = groups
            .get(i as usize % groups.len().max(1))
            .filter(|g| Some(*g) != own.as_ref())
            .cloned();
        let hog = std::thread::Builder::new()
            .name(super::NEUTRAL_THREAD_NAME.into())
            .spawn(move || {
                let _ = sched_setaffinity(Pid::from_raw(0), &only);
                if let Some(tasks) = join {
                    let _ = std::fs::write(tasks, nix::unistd::gettid().to_string());
                }
                let mut x: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
            })
            .map_err(|e| FaultError::Unsupported(format!("starting a busy thread: {e}")))?;
        fault.hogs.push(hog);
    }
    Ok(fault)
}

/// The CPU cgroups of the targets that do the work: an instance's namespace may also hold an
/// idle process in a group of its own (a pod's `pause`), which busy threads must not join.
fn busy_groups(pids: &[i32]) -> Vec<std::path::PathBuf> {
    let cpu_ticks = |pid: i32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    let used: Vec<(i32, u64)> = pids.iter().map(|p| (*p, cpu_ticks(*p))).collect();
    let most = used.iter().map(|(_, t)| *t).max().unwrap_or(0);
    let mut groups: Vec<std::path::PathBuf> = used
        .iter()
        .filter(|(_, t)| *t * 10 >= most)
        .filter_map(|(p, _)| cpu_cgroup_tasks(*p))
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// The `tasks` file of the cgroup v1 CPU controller process `pid` is in (writing a thread id
/// there moves that thread into the group).
fn cpu_cgroup_tasks(pid: i32) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers.split(',').any(|c| c == "cpu").then(|| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(controllers)
                .join(path.trim_start_matches('/'))
                .join("tasks")
        })
    })
}

impl StarveFault {
    fn teardown(&mut self) {
        self.removed = true;
        self.stop.store(true, Ordering::Relaxed);
        for h in self.hogs.drain(..) {
            let _ = h.join();
        }
        for (tid, old) in self.pinned.drain(..) {
            let _ = sched_setaffinity(tid, &old);
        }
    }

    pub fn remove(mut self) -> Result<(), FaultError> {
        self.teardown();
        Ok(())
    }
}

impl Drop for StarveFault {
    fn drop(&mut self) {
        if !self.removed {
            self.teardown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_threads_join_the_group_of_a_process_that_works() {
        let me = std::process::id() as i32;
        let Some(mine) = cpu_cgroup_tasks(me) else {
            eprintln!("SKIPPED: this machine has no cgroup v1 cpu controller");
            return;
        };
        assert!(mine.ends_with("tasks"), "{}", mine.display());
        // This process has used CPU; an exited one counts as idle and adds no group.
        assert_eq!(busy_groups(&[me, i32::MAX]), vec![mine]);
    }

    #[test]
    fn the_last_online_cpu_is_chosen() {
        let cpu = victim_cpu().unwrap();
        assert!(cpu < 4096);
    }
}
