//! What the system's users feel, from the load generator's per-second records: request rate,
//! errors by kind, latency percentiles. This is how a learner sees the symptom appear.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ErrKinds {
    pub timeout: u64,
    pub refused: u64,
    pub reset: u64,
    pub http_5xx: u64,
    pub other: u64,
}

/// One second of load, as `loadgen` writes it (docs/services.md).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Second {
    pub ts_ms: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub skipped: u64,
    pub err_kinds: ErrKinds,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub inflight: u64,
}

/// The records in `path`; lines that do not parse (a record being written) are skipped.
pub fn read(path: &Path) -> Vec<Second> {
    let Ok(text) = crate::sys::capped::read_to_string(path, crate::sys::capped::JOURNAL) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Load over a span of seconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Window {
    pub seconds: usize,
    pub rate: f64,
    /// Completed requests that failed, in percent.
    pub error_pct: f64,
    pub skipped: u64,
    pub err_kinds: ErrKinds,
    /// Per-second percentiles, averaged over the window weighted by completed requests.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Summarises the records whose time falls in `[from_ms, to_ms)`.
pub fn window(secs: &[Second], from_ms: u64, to_ms: u64) -> Option<Window> {
    let sel: Vec<&Second> = secs
        .iter()
        .filter(|s| s.ts_ms >= from_ms && s.ts_ms < to_ms)
        .collect();
    if sel.is_empty() {
        return None;
    }
    let done: u64 = sel.iter().map(|s| s.ok + s.errors).sum();
    let errors: u64 = sel.iter().map(|s| s.errors).sum();
    let weighted = |f: fn(&Second) -> f64| {
        if done == 0 {
            return 0.0;
        }
        sel.iter()
            .map(|s| f(s) * (s.ok + s.errors) as f64)
            .sum::<f64>()
            / done as f64
    };
    let mut kinds = ErrKinds::default();
    for s in &sel {
        kinds.timeout += s.err_kinds.timeout;
        kinds.refused += s.err_kinds.refused;
        kinds.reset += s.err_kinds.reset;
        kinds.http_5xx += s.err_kinds.http_5xx;
        kinds.other += s.err_kinds.other;
    }
    Some(Window {
        seconds: sel.len(),
        rate: sel.iter().map(|s| s.sent).sum::<u64>() as f64 / sel.len() as f64,
        error_pct: if done == 0 {
            0.0
        } else {
            100.0 * errors as f64 / done as f64
        },
        skipped: sel.iter().map(|s| s.skipped).sum(),
        err_kinds: kinds,
        p50_ms: weighted(|s| s.p50_ms),
        p90_ms: weighted(|s| s.p90_ms),
        p99_ms: weighted(|s| s.p99_ms),
        max_ms: sel.iter().map(|s| s.max_ms).fold(0.0, f64::max),
    })
}

/// A one-line chart of `values`, scaled to their maximum.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().fold(0.0, f64::max);
    values
        .iter()
        .map(|v| {
            if max <= 0.0 {
                BARS[0]
            } else {
                BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(ts: u64, ok: u64, errors: u64, p99: f64) -> Second {
        Second {
            ts_ms: ts,
            sent: ok + errors,
            ok,
            errors,
            skipped: 0,
            err_kinds: ErrKinds {
                timeout: errors,
                ..Default::default()
            },
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms: p99,
            max_ms: p99 * 2.0,
            inflight: 0,
        }
    }

    #[test]
    fn window_weights_by_completed_requests() {
        let s = vec![
            sec(1000, 100, 0, 4.0),
            sec(2000, 90, 10, 404.0),
            sec(3000, 100, 0, 4.0),
        ];
        let w = window(&s, 2000, 3000).unwrap();
        assert_eq!(w.seconds, 1);
        assert_eq!(w.error_pct, 10.0);
        assert_eq!(w.err_kinds.timeout, 10);
        let all = window(&s, 0, 10_000).unwrap();
        assert_eq!(all.rate, 100.0);
        assert!((all.p99_ms - 137.333).abs() < 0.01, "{}", all.p99_ms);
        assert_eq!(all.max_ms, 808.0);
        assert!(window(&s, 5000, 6000).is_none());
    }

    #[test]
    fn sparkline_scales_to_the_peak() {
        assert_eq!(sparkline(&[0.0, 5.0, 10.0]), "▁▅█");
        assert_eq!(sparkline(&[0.0, 0.0]), "▁▁");
    }

    #[test]
    fn partial_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("sbx-symptoms-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("load.jsonl");
        let line = serde_json::to_string(&sec(1, 1, 0, 1.0)).unwrap();
        std::fs::write(&f, format!("{line}\n{{\"ts_ms\":2,\"se")).unwrap();
        assert_eq!(read(&f).len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
