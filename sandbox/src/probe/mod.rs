//! The bundled probes: precompiled eBPF programs scoped to one service of one lab (events of
//! other labs and of the host are filtered in the kernel), shown as tables, histograms and a
//! per-second view, and recorded in the lab's evidence journal for the grader.
//!
//! Every probe implements [`Probe`]; [`run`] drives it: attach (timed), collect until the
//! duration ends or Ctrl-C, print the summary, append to the journal.

mod cpu;
pub(crate) mod dns;
mod goproc;
mod gosym;
pub mod hist;
mod http;
pub mod journal;
mod netpoll;
mod sched;
pub mod scope;
mod tcp;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use scope::Scope;

use crate::ebpf::EbpfError;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probes load eBPF programs, which needs root; run it as root (sudo sandbox probe …)")]
    NotRoot,
    #[error(transparent)]
    Find(#[from] crate::lab::FindError),
    #[error("{0}")]
    Ebpf(#[from] EbpfError),
    /// The target's Go binary cannot be probed.
    #[error("{0}")]
    Binary(String),
    #[error("{0}")]
    Target(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

pub use crate::scenario::ProbeKind;

/// What a probe prints at the end, and the figures that go to `--json` and the journal.
pub struct Report {
    pub text: String,
    pub summary: serde_json::Value,
}

/// One probe run. `poll` is called several times a second to collect events, `tick` once a
/// second for the live view, `finish` at the end.
pub trait Probe {
    fn poll(&mut self);
    /// A line for the per-second view and its JSON form; `None` when nothing happened.
    fn tick(&mut self, second: u64) -> Option<(String, serde_json::Value)>;
    fn finish(self: Box<Self>, elapsed: Duration) -> Report;
}

pub struct Options {
    pub kind: ProbeKind,
    pub duration: Option<Duration>,
    pub json: bool,
    /// Where a probe that writes a file (the cpu probe's flame graph) puts it; a name in the
    /// lab's directory when absent.
    pub output: Option<std::path::PathBuf>,
}

fn attach(scope: &Scope, o: &Options) -> Result<Box<dyn Probe>, ProbeError> {
    match o.kind {
        ProbeKind::TcpRetrans
        | ProbeKind::TcpReset
        | ProbeKind::TcpDrop
        | ProbeKind::TcpConnect
        | ProbeKind::TcpRtt => tcp::attach(o.kind, scope),
        ProbeKind::Netpoll => netpoll::attach(scope),
        ProbeKind::Cpu => cpu::attach(scope, o),
        ProbeKind::Offcpu | ProbeKind::Runq => sched::attach(o.kind, scope),
        ProbeKind::Dns => dns::attach(scope),
        ProbeKind::Http => http::attach(scope),
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C (or SIGTERM) came since [`catch_interrupt`].
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Ctrl-C ends the probe and prints the summary so far, instead of killing the process.
pub(crate) fn catch_interrupt() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let _ = sigaction(Signal::SIGINT, &action);
        let _ = sigaction(Signal::SIGTERM, &action);
    }
}

/// `812 µs`, `61.2 ms`, `1.20 s`.
fn human_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// CLOCK_MONOTONIC now, in ns: the clock of the kernel side's timestamps.
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Everything a run produced, for callers that want more than the printed output.
pub struct Outcome {
    pub attach: Duration,
    pub elapsed: Duration,
    pub summary: serde_json::Value,
}

/// Probes load eBPF programs, which only root may do.
pub fn require_root() -> Result<(), ProbeError> {
    if crate::sys::is_root() {
        Ok(())
    } else {
        Err(ProbeError::NotRoot)
    }
}

/// Runs a probe against `scope`, printing to `out`.
pub fn run(scope: &Scope, o: &Options, out: &mut dyn Write) -> Result<Outcome, ProbeError> {
    require_root()?;
    let started = Instant::now();
    let mut probe = attach(scope, o)?;
    let attach_time = started.elapsed();
    let what = scope.describe();
    let until = o
        .duration
        .map(|d| format!("for {}", humantime::format_duration(d)))
        .unwrap_or_else(|| "until Ctrl-C".into());
    if o.json {
        let head = serde_json::json!({"event": "attached", "probe": o.kind.name(), "scope": what, "attach_ms": attach_time.as_secs_f64() * 1000.0});
        let _ = writeln!(out, "{head}");
    } else {
        let _ = writeln!(
            out,
            "{} on {what}: attached in {:.1} ms, running {until}.",
            o.kind.name(),
            attach_time.as_secs_f64() * 1000.0
        );
    }
    let _ = out.flush();
    catch_interrupt();
    let t0 = Instant::now();
    let mut second = 0u64;
    loop {
        if interrupted() || o.duration.is_some_and(|d| t0.elapsed() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        probe.poll();
        if t0.elapsed() >= Duration::from_secs(second + 1) {
            second += 1;
            if let Some((line, value)) = probe.tick(second) {
                if o.json {
                    let _ = writeln!(
                        out,
                        "{}",
                        serde_json::json!({"event": "second", "t": second, "data": value})
                    );
                } else {
                    let _ = writeln!(out, "{second:>4}s  {line}");
                }
                let _ = out.flush();
            }
        }
    }
    probe.poll();
    let elapsed = t0.elapsed();
    let report = probe.finish(elapsed);
    if o.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"event": "summary", "probe": o.kind.name(), "seconds": elapsed.as_secs_f64(), "summary": report.summary})
        );
    } else {
        let _ = writeln!(out, "\n{}", report.text.trim_end());
    }
    journal::append(scope, o.kind, started, elapsed, &report.summary);
    Ok(Outcome {
        attach: attach_time,
        elapsed,
        summary: report.summary,
    })
}
