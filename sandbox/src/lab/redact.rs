//! The one rule for what a learner may read about a lab's faults, and where the rest is kept.
//!
//! A learner sees each fault as a number (`#1`), when it fires and whether it is active.
//! Its id (ids like `slow-profiles` are hints), kind, target, parameters, description, error
//! and packet counts would give the exercise away, so they never reach a learner's screen or a
//! file a learner's user can read. Every learner-facing surface takes the lab's state through
//! [`View`]: `status` (table, `--json`, `--watch`) does, and the `events` and `graph`
//! commands are to do the same rather than read faults on their own.
//!
//! The supervisor publishes with [`publish`]: `state.json` (world-readable, for `status` and
//! the probes) already as a learner sees it, and the fault details into the lab's private
//! directory (mode 0700, files 0600), which only root reads: the instructor's view
//! (`--reveal`, `verify`) merges them back in with [`read`].

use std::io::ErrorKind;

use super::{FaultDetail, LabDir, State};

/// The private file with each fault's [`FaultDetail`], in fault order.
const FAULTS: &str = "faults.json";

/// Who is looking at a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// A fault is its number, when it fires and whether it is active; nothing more.
    Learner,
    /// Everything: instructors, scenario authors (`--reveal`), `verify`.
    Instructor,
}

impl View {
    pub fn revealed(reveal: bool) -> View {
        if reveal {
            View::Instructor
        } else {
            View::Learner
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RevealError {
    #[error(
        "what the faults are is readable by root only ({path}); run it as root (sudo sandbox …)"
    )]
    NotRoot { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

/// How a fault is named where a learner may read it: its number, `#1`. Also for logs a
/// learner reads (`sandbox logs supervisor`).
pub fn learner_name(number: usize) -> String {
    format!("#{number}")
}

impl super::FaultState {
    /// The fault's name for whoever reads this state: its id if the details are there, else
    /// its number.
    pub fn name(&self) -> String {
        self.detail
            .as_ref()
            .map_or_else(|| learner_name(self.number), |d| d.id.clone())
    }
}

impl State {
    /// This state as `view` may see it.
    pub fn seen_by(mut self, view: View) -> State {
        if view == View::Learner {
            for f in &mut self.faults {
                f.detail = None;
            }
        }
        self
    }
}

/// Writes the lab's state: the details privately first, then `state.json` as a learner sees
/// it, so that a reader of `state.json` never finds a fault whose details are not yet kept.
pub fn publish(dir: &LabDir, state: &State) -> std::io::Result<()> {
    let details: Vec<Option<&FaultDetail>> =
        state.faults.iter().map(|f| f.detail.as_ref()).collect();
    dir.write_private(FAULTS, &serde_json::to_vec_pretty(&details)?)?;
    let public = state.clone().seen_by(View::Learner);
    super::write_atomic(&dir.state_file(), &serde_json::to_vec_pretty(&public)?)
}

/// The lab's state as `view` may see it; `None` when the lab has no state (any more). The
/// instructor's view needs root, since the details are readable by root only.
pub fn read(dir: &LabDir, view: View) -> Result<Option<State>, RevealError> {
    let Some(state) = dir.read_state() else {
        return Ok(None);
    };
    if view == View::Learner || state.faults.is_empty() {
        return Ok(Some(state.seen_by(view)));
    }
    let path = dir.private_file(FAULTS);
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(RevealError::NotRoot { path: shown });
        }
        Err(source) => {
            return Err(RevealError::Io {
                path: shown,
                source,
            });
        }
    };
    let details: Vec<Option<FaultDetail>> =
        serde_json::from_str(&text).map_err(|source| RevealError::Json {
            path: shown,
            source,
        })?;
    let mut state = state;
    for (f, d) in state.faults.iter_mut().zip(details) {
        f.detail = d;
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::lab::LabId;

    fn lab_with_a_fault() -> State {
        serde_json::from_value(serde_json::json!({
            "id": "k3f9q", "scenario_id": "packet-loss", "scenario_title": "t",
            "source": "bundled:packet-loss", "seed": 1, "backend": "netns", "phase": "ready",
            "step": "ready", "error": null, "created_ms": 1, "ready_ms": 2,
            "supervisor_pid": null, "slot": 0, "book": null, "instances": [],
            "faults": [{
                "number": 1, "start_ms": 3, "end_ms": null, "status": "active",
                "id": "lossy-ledger", "kind": "loss",
                "description": "12% packet loss on payments ↔ ledger",
                "error": null, "packets": 310
            }],
            "workload": "w", "briefing_title": "b", "briefing": "b", "time_limit_s": null
        }))
        .unwrap()
    }

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_learner_reads_a_number_and_root_reads_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LabDir {
            id: LabId::parse("k3f9q").unwrap(),
            path: tmp.path().to_path_buf(),
        };
        let state = lab_with_a_fault();
        publish(&dir, &state).unwrap();

        let public = std::fs::read_to_string(dir.state_file()).unwrap();
        for secret in ["lossy-ledger", "\"loss\"", "ledger", "12%", "310"] {
            assert!(!public.contains(secret), "state.json holds `{secret}`");
        }
        assert_eq!(mode(&dir.state_file()), 0o644);
        assert_eq!(mode(&dir.private()), 0o700);
        assert_eq!(mode(&dir.private_file(FAULTS)), 0o600);

        let learner = read(&dir, View::Learner).unwrap().unwrap();
        let f = &learner.faults[0];
        assert!(f.number == 1 && f.detail.is_none() && f.start_ms == Some(3));
        let json = serde_json::to_string(&learner).unwrap();
        assert!(!json.contains("ledger") && !json.contains("310"), "{json}");

        let revealed = read(&dir, View::Instructor).unwrap().unwrap();
        let d = revealed.faults[0].detail.as_ref().unwrap();
        assert_eq!((d.id.as_str(), d.packets), ("lossy-ledger", Some(310)));
        let json = serde_json::to_value(&revealed).unwrap();
        assert_eq!(json["faults"][0]["id"], "lossy-ledger", "{json}");
    }
}
