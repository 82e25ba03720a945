//! `runq` and `offcpu`: how long a service's threads wait for a CPU once runnable, and how
//! long they stay off CPU, from the scheduler's tracepoints (ebpf/sched.bpf.c). Intervals are
//! timed and bucketed in the kernel; this side reads the histogram and per-thread totals.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use super::hist::Log2Hist;
use super::{Probe, ProbeError, ProbeKind, Report, Scope};
use crate::ebpf::{Global, Object, Pod, objects};

const BUCKETS: u32 = 32;
const TOP_THREADS: usize = 10;

/// The kernel's `struct thread_total`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ThreadTotal {
    tgid: u32,
    pad: u32,
    count: u64,
    total_ns: u64,
    max_ns: u64,
}

// SAFETY: integers only; the padding is an explicit field.
unsafe impl Pod for ThreadTotal {}

/// Intervals and their sum in ns, as last read.
#[derive(Clone, Copy, Default)]
struct Totals {
    count: u64,
    sum_ns: u64,
}

struct Sched {
    kind: ProbeKind,
    obj: Object,
    instances: HashMap<u32, String>,
    what: String,
    last: Totals,
}

pub fn attach(kind: ProbeKind, scope: &Scope) -> Result<Box<dyn Probe>, ProbeError> {
    let instances: HashMap<u32, String> = scope
        .running()?
        .into_iter()
        .map(|(m, pid)| (pid, m.name.clone()))
        .collect();
    let offcpu = u32::from(kind == ProbeKind::Offcpu);
    let mut obj = Object::load(&objects::SCHED, &[Global::new("offcpu_mode", &offcpu)])?;
    for pid in instances.keys() {
        obj.hash_insert("target_tgids", *pid, 1u8)?;
    }
    if kind == ProbeKind::Runq {
        obj.attach_raw_tracepoint("on_wakeup", "sched_wakeup")?;
        obj.attach_raw_tracepoint("on_wakeup_new", "sched_wakeup_new")?;
    }
    obj.attach_raw_tracepoint("on_switch", "sched_switch")?;
    Ok(Box::new(Sched {
        kind,
        obj,
        instances,
        what: scope.describe(),
        last: Totals::default(),
    }))
}

fn comm(pid: u32, tid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "(exited)".into())
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl Sched {
    fn totals(&self) -> Totals {
        Totals {
            count: self.obj.percpu_sum("totals", 0).unwrap_or(0),
            sum_ns: self.obj.percpu_sum("totals", 1).unwrap_or(0),
        }
    }

    fn runq(&self) -> bool {
        self.kind == ProbeKind::Runq
    }
}

impl Probe for Sched {
    fn poll(&mut self) {}

    fn tick(&mut self, _second: u64) -> Option<(String, serde_json::Value)> {
        let now = self.totals();
        let count = now.count.saturating_sub(self.last.count);
        let sum = now.sum_ns.saturating_sub(self.last.sum_ns);
        self.last = now;
        if count == 0 {
            return None;
        }
        let mean = us(sum) / count as f64;
        let ms = sum as f64 / 1e6;
        let line = if self.runq() {
            format!("{count:>6} waits   {ms:>8.1} ms waiting for a CPU   mean {mean:.0} µs")
        } else {
            format!("{count:>6} switches   {ms:>8.1} ms off CPU   mean {mean:.0} µs")
        };
        Some((
            line,
            json!({"intervals": count, "total_ms": ms, "mean_us": mean}),
        ))
    }

    fn finish(self: Box<Self>, elapsed: Duration) -> Report {
        let t = self.totals();
        let dropped = self.obj.percpu_sum("totals", 2).unwrap_or(0);
        let hist = Log2Hist {
            buckets: (0..BUCKETS)
                .map(|i| self.obj.percpu_sum("hist_us", i).unwrap_or(0))
                .collect(),
        };
        let secs = elapsed.as_secs_f64().max(0.001);
        let mean = if t.count == 0 {
            0.0
        } else {
            us(t.sum_ns) / t.count as f64
        };
        let ms_per_s = t.sum_ns as f64 / 1e6 / secs;
        let (p50, p90, p99) = (
            hist.quantile_bound(0.5),
            hist.quantile_bound(0.9),
            hist.quantile_bound(0.99),
        );

        let mut threads: Vec<(u32, ThreadTotal)> =
            self.obj.hash_entries("threads").unwrap_or_default();
        threads.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(&b.0)));
        threads.truncate(TOP_THREADS);
        let threads: Vec<serde_json::Value> = threads
            .iter()
            .map(|(tid, v)| {
                json!({
                    "tid": tid,
                    "pid": v.tgid,
                    "instance": self.instances.get(&v.tgid).cloned().unwrap_or_default(),
                    "comm": comm(v.tgid, *tid),
                    "intervals": v.count,
                    "total_ms": v.total_ns as f64 / 1e6,
                    "mean_us": if v.count == 0 { 0.0 } else { us(v.total_ns) / v.count as f64 },
                    "max_us": us(v.max_ns),
                })
            })
            .collect();

        let (noun, waiting) = if self.runq() {
            ("waits", "waiting for a CPU")
        } else {
            ("switches", "off CPU")
        };
        let mut text = format!(
            "{} of {} over {secs:.1} s: {} {noun}, {:.1} ms {waiting} in all ({ms_per_s:.1} ms per second)\n",
            if self.runq() {
                "Run-queue latency"
            } else {
                "Off-CPU time"
            },
            self.what,
            t.count,
            t.sum_ns as f64 / 1e6,
        );
        text.push_str(&format!(
            "mean {mean:.0} µs   p50 < {p50} µs   p90 < {p90} µs   p99 < {p99} µs\n\n"
        ));
        text.push_str(&hist.render("us"));
        if self.runq() {
            text.push_str(
                "\nThe median stays low even on a starved CPU (a thread that slept briefly is let in \
                 first); the mean, p90 and the waiting per second show starvation.\n",
            );
        } else {
            text.push_str(
                "\nOff CPU counts blocking (I/O, locks, sleeps, an idle Go scheduler) and waiting \
                 for a CPU; the runq probe shows the waiting alone.\n",
            );
        }
        if dropped > 0 {
            text.push_str(&format!(
                "{dropped} intervals of threads beyond the per-thread table's size are in the totals only.\n"
            ));
        }
        if !threads.is_empty() {
            text.push('\n');
            let rows = threads.iter().map(|v| {
                vec![
                    v["tid"].to_string(),
                    v["comm"].as_str().unwrap_or_default().to_string(),
                    v["instance"].as_str().unwrap_or_default().to_string(),
                    v["intervals"].to_string(),
                    format!("{:.1}", v["total_ms"].as_f64().unwrap_or_default()),
                    format!("{:.0}", v["mean_us"].as_f64().unwrap_or_default()),
                    format!("{:.0}", v["max_us"].as_f64().unwrap_or_default()),
                ]
            });
            text.push_str(&crate::report::grid(
                &[
                    "TID",
                    "COMM",
                    "INSTANCE",
                    &noun.to_uppercase(),
                    "TOTAL MS",
                    "MEAN µS",
                    "MAX µS",
                ],
                rows,
            ));
            text.push('\n');
        }

        let summary = json!({
            "intervals": t.count,
            "total_ms": t.sum_ns as f64 / 1e6,
            "ms_per_s": ms_per_s,
            "mean_us": mean,
            "p50_us_below": p50,
            "p90_us_below": p90,
            "p99_us_below": p99,
            "hist_us": hist.buckets,
            "threads": threads,
            "untracked_threads_intervals": dropped,
        });
        Report { text, summary }
    }
}
