//! Network namespaces, named (`/run/netns/<name>`, as iproute2 keeps them) or held by a process
//! (`/proc/<pid>/ns/net`, as a container's or a pod's is). Everything that acts inside a
//! namespace goes through [`NsPath`], so entering one is written once.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{CloneFlags, setns};

pub const NETNS_DIR: &str = "/run/netns";

/// A network namespace by the path of a file that holds it.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct NsPath(PathBuf);

impl NsPath {
    /// A namespace iproute2 named.
    pub fn named(name: &str) -> NsPath {
        NsPath(PathBuf::from(NETNS_DIR).join(name))
    }

    /// The namespace process `pid` lives in.
    pub fn of_pid(pid: u32) -> NsPath {
        NsPath(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn exists(&self) -> bool {
        self.0.exists()
    }

    /// The namespace's inode, as the kernel reports `net->ns.inum`: what probes filter on.
    pub fn inode(&self) -> std::io::Result<u64> {
        std::fs::metadata(&self.0).map(|m| m.ino())
    }

    /// Moves the calling thread into the namespace. Threads and processes it starts afterwards
    /// are created there too, which is how a lab's supervisor lives inside its lab.
    pub fn enter(&self) -> std::io::Result<()> {
        let f = File::open(&self.0)?;
        setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
    }

    /// Runs `f` on a thread of its own inside the namespace (sockets it opens and interface
    /// names it resolves belong there); the caller's thread stays where it is.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter()
                    .map_err(|e| format!("entering {}: {e}", self))?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(format!("a thread inside {self} panicked")))
        })
    }

    /// A command that runs inside the namespace (and nowhere else), without the mount
    /// namespace `ip netns exec` sets up: for tools such as nft, tc and iptables.
    pub fn command(&self, program: &str) -> std::io::Result<Command> {
        let f = File::open(&self.0)?;
        let mut c = Command::new(program);
        // SAFETY: setns is async-signal-safe; `f` is moved into the closure and stays open
        // until the child has exec'd.
        unsafe {
            c.pre_exec(move || {
                setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
            });
        }
        Ok(c)
    }

    /// Pids of processes living in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        let Ok(ino) = self.inode() else {
            return Vec::new();
        };
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
}

impl std::fmt::Display for NsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.strip_prefix(NETNS_DIR) {
            Ok(name) => write!(f, "netns {}", name.display()),
            Err(_) => write!(f, "{}", self.0.display()),
        }
    }
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
    NsPath::named(name).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_namespace() {
        assert_eq!(
            NsPath::named("sbx-ab12c").path(),
            Path::new("/run/netns/sbx-ab12c")
        );
        assert_eq!(NsPath::named("sbx-ab12c").to_string(), "netns sbx-ab12c");
        assert_eq!(NsPath::of_pid(42).to_string(), "/proc/42/ns/net");
    }

    #[test]
    fn run_enters_and_leaves_the_caller_where_it_was() {
        let mine = NsPath::of_pid(std::process::id());
        let before = mine.inode().expect("own namespace");
        let inside = mine.run(|| Ok(NsPath(PathBuf::from("/proc/thread-self/ns/net")).inode()));
        assert_eq!(inside.expect("ran").expect("inode"), before);
        assert_eq!(mine.inode().expect("own namespace"), before);
    }
}
