//! The targets' Go processes, as the probes that put uprobes in Go functions (http, netpoll)
//! find them: each process with its binary, searched once per file for the probe points, and
//! the process as a report lists it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde_json::json;

use super::ProbeError;
use super::gosym::GoFunc;

/// A target's Go process and the probe points `P` located in its binary.
pub struct GoProcess<P> {
    pub instance: String,
    pub pid: u32,
    /// `/proc/PID/exe`, which reaches the binary even after it was deleted or replaced.
    pub exe: PathBuf,
    /// Where the binary is, for the report.
    pub binary: String,
    pub points: P,
}

impl<P> GoProcess<P> {
    /// The process as a probe's JSON summary lists it, with where `f` was found.
    pub fn json(&self, f: &GoFunc) -> serde_json::Value {
        json!({
            "instance": self.instance,
            "pid": self.pid,
            "binary": self.binary,
            "table": f.table.name(),
            "address": f.address,
            "rets": f.rets.len(),
        })
    }
}

/// Probe points by binary file: replicas run the same binary, read and searched once.
pub struct Binaries<P> {
    located: HashMap<(u64, u64), P>,
}

impl<P> Default for Binaries<P> {
    fn default() -> Self {
        Binaries {
            located: HashMap::new(),
        }
    }
}

impl<P: Clone> Binaries<P> {
    /// Process `pid` of `instance`, with the points `locate` finds in its binary (given the
    /// ELF and the binary's path, which names it in errors). The outer error says the process
    /// could not be read; the inner one is `locate` refusing the binary, which a probe may
    /// pass over.
    pub fn process(
        &mut self,
        instance: &str,
        pid: u32,
        locate: impl FnOnce(&[u8], &str) -> Result<P, ProbeError>,
    ) -> Result<Result<GoProcess<P>, ProbeError>, ProbeError> {
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let io = |source| ProbeError::Io {
            what: format!("{instance} (pid {pid})"),
            source,
        };
        let binary = std::fs::read_link(&exe)
            .map(|p| p.display().to_string())
            .map_err(io)?;
        let meta = std::fs::metadata(&exe).map_err(io)?;
        let points = match self.located.entry((meta.dev(), meta.ino())) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(v) => {
                let data = std::fs::read(&exe).map_err(io)?;
                match locate(&data, &binary) {
                    Ok(p) => v.insert(p).clone(),
                    Err(e) => return Ok(Err(e)),
                }
            }
        };
        Ok(Ok(GoProcess {
            instance: instance.to_string(),
            pid,
            exe,
            binary,
            points,
        }))
    }
}

/// Go services on loopback for the probes' kernel tests.
#[cfg(test)]
pub mod testing {
    use std::net::{TcpListener, TcpStream};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    /// A Go service on loopback and its admin port, killed when dropped.
    pub struct Service(pub Child, pub u16);

    impl Drop for Service {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    }

    /// Starts the service binary `bin` on free loopback ports, once its admin port listens.
    /// A port found free can be taken by a test running beside this one before the service
    /// binds it; the service then exits, and is started again on other ports.
    pub fn start(bin: &Path) -> Service {
        let mut last = String::new();
        for _ in 0..3 {
            let (data, admin) = (free_port(), free_port());
            let child = Command::new(bin)
                .args(["-listen", &format!("127.0.0.1:{data}")])
                .args(["-admin", &format!("127.0.0.1:{admin}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut s = Service(child, admin);
            for _ in 0..200 {
                if TcpStream::connect(("127.0.0.1", admin)).is_ok() {
                    return s;
                }
                if let Ok(Some(status)) = s.0.try_wait() {
                    last = format!("exited ({status}) before listening on {admin}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last.is_empty() {
                last = format!("did not listen on {admin} within 10 s");
            }
        }
        panic!("{}: {last}", bin.display());
    }
}
