//! The lab's evidence journal: one JSON line per probe run, profile or goroutine dump (what, on which target, when, for
//! how long, the figures it found). The grader reads it to tell investigation from a guess.

use std::io::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{ProbeKind, Scope};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub ts_ms: u64,
    pub probe: String,
    /// The service or instance probed; `None` for the whole lab.
    pub target: Option<String>,
    pub instances: Vec<String>,
    pub seconds: f64,
    pub summary: serde_json::Value,
}

pub fn append(
    scope: &Scope,
    kind: ProbeKind,
    started: Instant,
    elapsed: Duration,
    summary: &serde_json::Value,
) {
    let ts_ms = crate::lab::now_ms().saturating_sub(started.elapsed().as_millis() as u64);
    let entry = Entry {
        ts_ms,
        probe: kind.name().to_string(),
        target: scope.target.clone(),
        instances: scope.members.iter().map(|m| m.name.clone()).collect(),
        seconds: elapsed.as_secs_f64(),
        summary: summary.clone(),
    };
    record(&scope.lab_dir(), &entry);
}

/// Appends one entry: a probe run, or a profile or goroutine dump taken from a service.
pub fn record(dir: &crate::lab::LabDir, entry: &Entry) {
    let path = dir.evidence();
    if let Ok(line) = serde_json::to_string(entry)
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Every entry of a lab's journal, oldest first.
pub fn read(dir: &crate::lab::LabDir) -> Vec<Entry> {
    crate::sys::capped::read_to_string(&dir.evidence(), crate::sys::capped::JOURNAL)
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}
