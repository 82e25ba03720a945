//! Loading and attaching the kernel-side programs in `ebpf/`, and reading their maps. The one
//! place that talks to aya: faults and probes ask for what they need in their own terms.
//!
//! Programs are attached with what this kernel family offers without tracefs, kprobes or
//! fentry: raw tracepoints, uprobes at file offsets, perf events, tc (TCX) and socket
//! filters.

use std::num::NonZeroU32;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf, StackTraceMap};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::uprobe::UProbeScope;
use aya::programs::{
    PerfEvent, RawTracePoint, SchedClassifier, SocketFilter, TcAttachType, UProbe,
};
use aya::{Ebpf, EbpfLoader};

use crate::sys::netns::NsPath;

pub use aya::Pod;

/// The bundled kernel-side programs: built from `ebpf/*.bpf.c` by `ebpf/build.sh` and committed
/// beside their sources, so a build needs no clang. Aligned for the loader.
pub mod objects {
    /// One compiled object: its file name (for messages) and its bytes.
    pub struct Bundled {
        pub name: &'static str,
        pub bytes: &'static [u8],
    }

    macro_rules! object {
        ($name:literal) => {
            Bundled {
                name: $name,
                bytes: aya::include_bytes_aligned!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../ebpf/",
                    $name
                )),
            }
        };
    }
    pub static TCP: Bundled = object!("tcp.bpf.o");
    pub static NETPOLL: Bundled = object!("netpoll.bpf.o");
    pub static PROFILE: Bundled = object!("profile.bpf.o");
    pub static SCHED: Bundled = object!("sched.bpf.o");
    pub static CORRUPT: Bundled = object!("corrupt.bpf.o");
    pub static DNS: Bundled = object!("dns.bpf.o");
    pub static HTTP: Bundled = object!("http.bpf.o");
}

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("loading {object}: {reason}")]
    Load {
        object: &'static str,
        reason: String,
    },
    #[error("{object}: attaching {program} to {point}: {reason}")]
    Attach {
        object: &'static str,
        program: String,
        point: String,
        reason: String,
    },
    #[error("{object}: map {map}: {reason}")]
    Map {
        object: &'static str,
        map: String,
        reason: String,
    },
    /// The kernel lacks a hook a program attaches to.
    #[error(
        "this kernel has no tracepoint `{hook}` ({reason}). The probes need Linux 6.x with BTF \
         and the tcp, sock, skb and sched tracepoints; `sandbox doctor` checks"
    )]
    MissingHook { hook: String, reason: String },
}

/// The first lines of an error: verifier logs run to kilobytes.
fn brief(e: &dyn std::fmt::Debug) -> String {
    let s = format!("{e:?}");
    let mut lines: Vec<&str> = s.lines().take(6).collect();
    if s.lines().count() > 6 {
        lines.push("…");
    }
    lines.join("\n")
}

/// A global (`const volatile`) value to set before loading.
pub struct Global<'a> {
    name: &'a str,
    bytes: &'a [u8],
}

impl<'a> Global<'a> {
    pub fn new<T: Pod>(name: &'a str, value: &'a T) -> Global<'a> {
        // SAFETY: `T: Pod` is plain old data; viewing it as bytes is sound.
        let bytes =
            unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) };
        Global { name, bytes }
    }
}

/// A loaded object; dropping it detaches everything it attached and frees its maps.
pub struct Object {
    name: &'static str,
    bpf: Ebpf,
}

impl Object {
    /// Loads `object` (CO-RE relocated against the running kernel) with `globals` set.
    pub fn load(object: &objects::Bundled, globals: &[Global<'_>]) -> Result<Object, EbpfError> {
        let name = object.name;
        let mut loader = EbpfLoader::new();
        for g in globals {
            loader.override_global(g.name, g.bytes, true);
        }
        let bpf = loader.load(object.bytes).map_err(|e| EbpfError::Load {
            object: name,
            reason: brief(&e),
        })?;
        Ok(Object { name, bpf })
    }

    fn attach_err(
        &self,
        program: &str,
        point: impl Into<String>,
        e: impl std::fmt::Debug,
    ) -> EbpfError {
        EbpfError::Attach {
            object: self.name,
            program: program.into(),
            point: point.into(),
            reason: brief(&e),
        }
    }

    fn map_err(&self, map: &str, e: impl std::fmt::Debug) -> EbpfError {
        EbpfError::Map {
            object: self.name,
            map: map.into(),
            reason: brief(&e),
        }
    }

    fn program<'p, P>(&'p mut self, program: &str) -> Result<&'p mut P, EbpfError>
    where
        &'p mut P: TryFrom<&'p mut aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let name = self.name;
        let p = self
            .bpf
            .program_mut(program)
            .ok_or_else(|| EbpfError::Attach {
                object: name,
                program: program.into(),
                point: String::new(),
                reason: "no such program in the object".into(),
            })?;
        p.try_into().map_err(|e| EbpfError::Attach {
            object: name,
            program: program.into(),
            point: String::new(),
            reason: brief(&e),
        })
    }

    /// Attaches `program` (a `SEC("raw_tp")` program) to the kernel tracepoint `tracepoint`,
    /// e.g. `tcp_retransmit_skb`. Needs no tracefs.
    pub fn attach_raw_tracepoint(
        &mut self,
        program: &str,
        tracepoint: &str,
    ) -> Result<(), EbpfError> {
        let p: &mut RawTracePoint = self.program(program)?;
        let loaded = p.load();
        let attached = loaded.and_then(|_| p.attach(tracepoint).map(|_| ()));
        attached.map_err(|e| match self.attach_err(program, tracepoint, e) {
            EbpfError::Attach { reason, .. }
                if reason.contains("No such file") || reason.contains("os error 2") =>
            {
                EbpfError::MissingHook {
                    hook: tracepoint.to_string(),
                    reason,
                }
            }
            other => other,
        })
    }

    /// Attaches a tc classifier at the ingress or egress of `devs` in namespace `netns` (TCX,
    /// so the link goes away with this process).
    pub fn attach_tc(
        &mut self,
        program: &str,
        netns: &NsPath,
        devs: &[String],
        egress: bool,
    ) -> Result<(), EbpfError> {
        let p: &mut SchedClassifier = self.program(program)?;
        if p.fd().is_err()
            && let Err(e) = p.load()
        {
            return Err(self.attach_err(program, "tc", e));
        }
        let kind = if egress {
            TcAttachType::Egress
        } else {
            TcAttachType::Ingress
        };
        // Interface names resolve in the calling thread's namespace: attach from inside.
        let result = netns.run(|| {
            for dev in devs {
                p.attach(dev, kind)
                    .map_err(|e| format!("{dev}: {}", brief(&e)))?;
            }
            Ok(())
        });
        result.map_err(|reason| EbpfError::Attach {
            object: self.name,
            program: program.into(),
            point: format!("tc in {netns}"),
            reason,
        })
    }

    /// Attaches a socket filter program to `socket`: the kernel runs it on every packet
    /// before the socket sees it, and the socket only receives what it keeps. The program is
    /// loaded the first time; later calls add more sockets.
    pub fn attach_socket_filter(
        &mut self,
        program: &str,
        socket: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), EbpfError> {
        let p: &mut SocketFilter = self.program(program)?;
        let loaded = if p.fd().is_err() { p.load() } else { Ok(()) };
        let attached = loaded.and_then(|_| p.attach(socket).map(|_| ()));
        attached.map_err(|e| self.attach_err(program, "socket", e))
    }

    /// Attaches a uprobe program at each file offset of `binary`, in process `pid` only (or
    /// every process running the binary). The program is loaded the first time; later calls
    /// add more processes or binaries.
    pub fn attach_uprobe(
        &mut self,
        program: &str,
        binary: &Path,
        offsets: &[u64],
        pid: Option<u32>,
    ) -> Result<(), EbpfError> {
        let scope = match pid.and_then(NonZeroU32::new) {
            Some(p) => UProbeScope::OneProcess(p),
            None => UProbeScope::AllProcesses,
        };
        let p: &mut UProbe = self.program(program)?;
        let mut result = if p.fd().is_err() {
            p.load().map_err(|e| (String::from("load"), brief(&e)))
        } else {
            Ok(())
        };
        for off in offsets {
            if result.is_err() {
                break;
            }
            result = p
                .attach(*off, binary, scope)
                .map(|_| ())
                .map_err(|e| (format!("{}+{off:#x}", binary.display()), brief(&e)));
        }
        result.map_err(|(point, reason)| EbpfError::Attach {
            object: self.name,
            program: program.into(),
            point,
            reason,
        })
    }

    /// Attaches a perf_event program to the software CPU clock at `hz` on every online CPU.
    /// Filtering by process happens in the program.
    pub fn attach_cpu_clock(&mut self, program: &str, hz: u64) -> Result<(), EbpfError> {
        let cpus = aya::util::online_cpus()
            .map_err(|(what, e)| self.attach_err(program, "cpu-clock", format!("{what}: {e}")))?;
        let p: &mut PerfEvent = self.program(program)?;
        let mut result = p.load().map_err(|e| brief(&e));
        for cpu in cpus {
            if result.is_err() {
                break;
            }
            result = p
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                )
                .map(|_| ())
                .map_err(|e| format!("cpu {cpu}: {}", brief(&e)));
        }
        result.map_err(|reason| EbpfError::Attach {
            object: self.name,
            program: program.into(),
            point: "cpu-clock".into(),
            reason,
        })
    }

    fn map_data(&mut self, map: &str) -> Result<&mut aya::maps::Map, EbpfError> {
        let name = self.name;
        self.bpf.map_mut(map).ok_or_else(|| EbpfError::Map {
            object: name,
            map: map.into(),
            reason: "no such map".into(),
        })
    }

    /// Sets element `index` of an array map.
    pub fn array_set<T: Pod>(&mut self, map: &str, index: u32, value: T) -> Result<(), EbpfError> {
        let object = self.name;
        let err = |e: &dyn std::fmt::Debug| EbpfError::Map {
            object,
            map: map.into(),
            reason: brief(&e),
        };
        let mut a: Array<&mut MapData, T> =
            Array::try_from(self.map_data(map)?).map_err(|e| err(&e))?;
        a.set(index, value, 0).map_err(|e| err(&e))
    }

    /// Inserts into a hash map.
    pub fn hash_insert<K: Pod, V: Pod>(
        &mut self,
        map: &str,
        key: K,
        value: V,
    ) -> Result<(), EbpfError> {
        let object = self.name;
        let err = |e: &dyn std::fmt::Debug| EbpfError::Map {
            object,
            map: map.into(),
            reason: brief(&e),
        };
        let mut h: HashMap<&mut MapData, K, V> =
            HashMap::try_from(self.map_data(map)?).map_err(|e| err(&e))?;
        h.insert(key, value, 0).map_err(|e| err(&e))
    }

    /// Every entry of a hash map (or LRU hash map).
    pub fn hash_entries<K: Pod, V: Pod>(&self, map: &str) -> Result<Vec<(K, V)>, EbpfError> {
        let m = self
            .bpf
            .map(map)
            .ok_or_else(|| self.map_err(map, "no such map"))?;
        let h: HashMap<&MapData, K, V> = HashMap::try_from(m).map_err(|e| self.map_err(map, e))?;
        Ok(h.iter().filter_map(Result::ok).collect())
    }

    /// Element `index` of a per-CPU array of counters, summed over CPUs.
    pub fn percpu_sum(&self, map: &str, index: u32) -> Result<u64, EbpfError> {
        let m = self
            .bpf
            .map(map)
            .ok_or_else(|| self.map_err(map, "no such map"))?;
        let a: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(m).map_err(|e| self.map_err(map, e))?;
        let v = a.get(&index, 0).map_err(|e| self.map_err(map, e))?;
        Ok(v.iter().sum())
    }

    /// The instruction pointers of stack `id`, leaf first.
    pub fn stack(&self, map: &str, id: u32) -> Result<Vec<u64>, EbpfError> {
        let m = self
            .bpf
            .map(map)
            .ok_or_else(|| self.map_err(map, "no such map"))?;
        let s: StackTraceMap<&MapData> =
            StackTraceMap::try_from(m).map_err(|e| self.map_err(map, e))?;
        let trace = s.get(&id, 0).map_err(|e| self.map_err(map, e))?;
        Ok(trace.frames().iter().map(|f| f.ip).collect())
    }

    /// Takes a ring buffer map out of the object, to read events from.
    pub fn ring(&mut self, map: &str) -> Result<Ring, EbpfError> {
        let m = self
            .bpf
            .take_map(map)
            .ok_or_else(|| self.map_err(map, "no such map"))?;
        let rb = RingBuf::try_from(m).map_err(|e| self.map_err(map, e))?;
        Ok(Ring { rb })
    }
}

/// Events from a ring buffer map.
pub struct Ring {
    rb: RingBuf<MapData>,
}

impl Ring {
    /// Calls `f` with every event waiting; returns how many there were.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while let Some(item) = self.rb.next() {
            f(&item);
            n += 1;
        }
        n
    }

    /// Waits until events are waiting or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as i32)
            .unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(self.rb.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, ms);
    }
}

/// Reads a `#[repr(C)]` event out of a ring buffer record.
pub fn read_event<T: Pod>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= size_of::<T>()).then(|| {
        // SAFETY: the record holds at least size_of::<T>() bytes and T is plain old data;
        // read_unaligned copes with the ring's 8-byte alignment.
        unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
    })
}

/// Kernel symbols (/proc/kallsyms), for kernel stacks.
pub fn kernel_symbols() -> std::collections::BTreeMap<u64, String> {
    aya::util::kernel_symbols().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracepoint_the_kernel_lacks_is_named_as_missing() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED a_tracepoint_the_kernel_lacks_is_named_as_missing: needs root");
            return;
        }
        let mut object = Object::load(&objects::TCP, &[]).expect("tcp.bpf.o loads");
        match object.attach_raw_tracepoint("tcp_retransmit", "tcp_no_such_tracepoint") {
            Err(e @ EbpfError::MissingHook { .. }) => {
                let text = e.to_string();
                assert!(text.contains("`tcp_no_such_tracepoint`"), "{text}");
                assert!(text.contains("sandbox doctor"), "{text}");
            }
            other => panic!("expected MissingHook, got {other:?}"),
        }
    }
}
