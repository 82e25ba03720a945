//! What happens to a lab, recorded as it happens: the supervisor appends the lab's own events
//! (ready, each fault installed and removed, instances exiting and restarting) to
//! `events.jsonl`, and `submit` appends to `submissions.jsonl`. A learner may read both: a
//! fault appears there only as its number, since the lines are derived from the state as a
//! learner sees it ([`super::redact`]). `sandbox events` reads them back (the timeline module).

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{FaultStatus, LabDir, Phase, State, View, now_ms};

/// What the supervisor records: nothing a learner may not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Recorded {
    Ready {
        instances: usize,
    },
    Failed,
    Stopping,
    /// A fault changed status; `fault` is its number.
    Fault {
        fault: usize,
        status: FaultStatus,
    },
    Exited {
        instance: String,
        status: String,
    },
    Restarted {
        instance: String,
        restarts: u32,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    pub ts_ms: u64,
    #[serde(flatten)]
    pub what: Recorded,
}

pub fn file(dir: &LabDir) -> PathBuf {
    dir.path.join("events.jsonl")
}

pub fn submissions(dir: &LabDir) -> PathBuf {
    dir.path.join("submissions.jsonl")
}

/// What changed between two states, as events a learner may read.
pub fn changes(before: &State, after: &State) -> Vec<Recorded> {
    let mut out = Vec::new();
    if before.phase != after.phase {
        match after.phase {
            Phase::Ready => out.push(Recorded::Ready {
                instances: after.instances.len(),
            }),
            Phase::Failed => out.push(Recorded::Failed),
            Phase::Stopping => out.push(Recorded::Stopping),
            Phase::Starting => {}
        }
    }
    for f in &after.faults {
        let was = before.faults.iter().find(|b| b.number == f.number);
        if was.is_some_and(|b| b.status != f.status) && f.status != FaultStatus::Pending {
            out.push(Recorded::Fault {
                fault: f.number,
                status: f.status,
            });
        }
    }
    for i in &after.instances {
        let Some(was) = before.instances.iter().find(|b| b.name == i.name) else {
            continue;
        };
        if i.status.starts_with("exited") && !was.status.starts_with("exited") {
            out.push(Recorded::Exited {
                instance: i.name.clone(),
                status: i.status.clone(),
            });
        }
        if i.restarts > was.restarts {
            out.push(Recorded::Restarted {
                instance: i.name.clone(),
                restarts: i.restarts,
            });
        }
    }
    out
}

pub fn append(path: &std::path::Path, line: &impl Serialize) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_string(line)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)?;
    writeln!(f, "{text}")
}

/// Appends what changed between two states; called by the supervisor on every update. Both
/// states are taken as a learner sees them, so a fault's details cannot slip in.
pub fn record(dir: &LabDir, before: &State, after: &State) -> std::io::Result<()> {
    let before = before.clone().seen_by(View::Learner);
    let after = after.clone().seen_by(View::Learner);
    let ts_ms = now_ms();
    for what in changes(&before, &after) {
        append(&file(dir), &Line { ts_ms, what })?;
    }
    Ok(())
}

/// What `submit` leaves in the timeline: when, and the outcome the learner was shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submitted {
    pub ts_ms: u64,
    /// `None` for a certification bundle, which is graded later by the instructor.
    pub passed: Option<bool>,
    pub score: Option<u64>,
}

pub fn record_submission(dir: &LabDir, s: &Submitted) -> std::io::Result<()> {
    append(&submissions(dir), s)
}
