//! `sandbox events`: the lab's timeline. What happened to the lab comes from its recorded
//! events ([`crate::lab::events`]); the timeline adds the learner's own doings from their
//! files: probe runs, profiles and goroutine dumps (the evidence journal), hints taken and
//! submissions. The instructor's view names each fault from the private details, through
//! [`crate::lab::redact::read`].

use serde::{Deserialize, Serialize};

use crate::lab::events::{Line, Recorded, Submitted, file, submissions};
use crate::lab::{FaultStatus, LabDir, State};

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub ts_ms: u64,
    /// `lab`, `fault`, `instance`, `probe`, `hint`, `submit`.
    pub kind: &'static str,
    pub text: String,
}

#[derive(Deserialize)]
struct HintLine {
    index: usize,
    cost: u32,
    ts_ms: u64,
}

fn lines<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// How a fault is named for the state's viewer: `#1`, or its id and what it is.
fn fault_name(state: &State, number: usize) -> String {
    match state.faults.iter().find(|f| f.number == number) {
        Some(f) => match &f.detail {
            Some(d) => format!("#{number} {} ({})", d.id, d.description),
            None => f.name(),
        },
        None => crate::lab::redact::learner_name(number),
    }
}

/// The lab's timeline, oldest first, for whoever `state` was read for.
pub fn timeline(dir: &LabDir, state: &State) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for l in lines::<Line>(&file(dir)) {
        let (kind, text) = match l.what {
            Recorded::Ready { instances } => (
                "lab",
                format!(
                    "lab ready ({}, {})",
                    state.scenario_id,
                    crate::report::count(instances, "instance")
                ),
            ),
            Recorded::Failed => ("lab", "lab failed to start".to_string()),
            Recorded::Stopping => ("lab", "lab going down".to_string()),
            Recorded::Fault { fault, status } => {
                let what = match status {
                    FaultStatus::Active => "installed",
                    FaultStatus::Ended => "removed",
                    FaultStatus::Failed => "failed",
                    FaultStatus::Pending => "pending",
                };
                (
                    "fault",
                    format!("fault {} {what}", fault_name(state, fault)),
                )
            }
            Recorded::Exited { instance, status } => ("instance", format!("{instance} {status}")),
            Recorded::Restarted { instance, restarts } => (
                "instance",
                format!("{instance} restarted (restart {restarts})"),
            ),
        };
        out.push(Event {
            ts_ms: l.ts_ms,
            kind,
            text,
        });
    }
    for r in crate::probe::journal::read(dir) {
        let target = r.target.as_deref().unwrap_or("the whole lab");
        let text = match r.probe.as_str() {
            "pprof" => format!(
                "{} profile of {target}",
                r.summary["kind"].as_str().unwrap_or("a")
            ),
            "goroutines" => format!(
                "goroutine dump of {target} ({} goroutines)",
                r.summary["total"]
            ),
            "debug" => format!(
                "debugger attached to {target} on {}",
                r.summary["listen"].as_str().unwrap_or("?")
            ),
            p => format!("probe {p} on {target} ({:.1}s)", r.seconds),
        };
        out.push(Event {
            ts_ms: r.ts_ms,
            kind: "probe",
            text,
        });
    }
    for h in lines::<HintLine>(&dir.path.join("hints.jsonl")) {
        out.push(Event {
            ts_ms: h.ts_ms,
            kind: "hint",
            text: format!("hint {} taken (costs {} points)", h.index + 1, h.cost),
        });
    }
    for s in lines::<Submitted>(&submissions(dir)) {
        let text = match (s.passed, s.score) {
            (Some(true), Some(n)) => format!("findings submitted: passed, {n} points"),
            (Some(false), Some(n)) => format!("findings submitted: not passed, {n} points"),
            _ => "findings submitted for the instructor".to_string(),
        };
        out.push(Event {
            ts_ms: s.ts_ms,
            kind: "submit",
            text,
        });
    }
    out.sort_by_key(|e| e.ts_ms);
    out
}

/// One event as a line: time since the lab was created, kind, what.
pub fn render(state: &State, e: &Event) -> String {
    let since = e.ts_ms.saturating_sub(state.created_ms) / 100;
    let (tenths, secs) = (since % 10, since / 10);
    format!(
        "+{:02}:{:02}.{tenths}  {:<8}  {}\n",
        secs / 60,
        secs % 60,
        e.kind,
        e.text
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::LabId;
    use crate::lab::events::{append, changes, record_submission};
    use crate::lab::{Phase, View};

    fn state() -> State {
        serde_json::from_value(serde_json::json!({
            "id": "k3f9q", "scenario_id": "checkout-hangs", "scenario_title": "t",
            "source": "checkout-hangs.yaml", "seed": 1, "backend": "netns", "phase": "starting",
            "step": "starting", "error": null, "created_ms": 1_000_000, "ready_ms": null,
            "supervisor_pid": null, "slot": 0, "book": null,
            "instances": [{
                "name": "api-0", "service": "api", "program": "api", "ip": "10.66.0.2",
                "ports": [8080, 9090], "pid": 1, "restarts": 0, "status": "running"
            }],
            "faults": [{
                "number": 1, "start_ms": null, "end_ms": null, "status": "pending",
                "id": "lossy-ledger", "kind": "loss",
                "description": "12% packet loss on payments ↔ ledger",
                "error": null, "packets": 310
            }],
            "workload": "w", "briefing_title": "b", "briefing": "b", "time_limit_s": null
        }))
        .unwrap()
    }

    /// A lab's life as the supervisor and the learner write it, with fixed times.
    fn lab_dir(tmp: &tempfile::TempDir) -> LabDir {
        let dir = LabDir {
            id: LabId::parse("k3f9q").unwrap(),
            path: tmp.path().to_path_buf(),
        };
        let starting = state();
        let mut ready = starting.clone();
        ready.phase = Phase::Ready;
        let mut active = ready.clone();
        active.faults[0].status = FaultStatus::Active;
        let mut exited = active.clone();
        exited.instances[0].status = "exited (status 2); restarting".into();
        let mut restarted = exited.clone();
        restarted.instances[0].status = "running".into();
        restarted.instances[0].restarts = 1;
        let mut ended = restarted.clone();
        ended.faults[0].status = FaultStatus::Ended;
        let steps = [
            (&starting, &ready, 1_002_000),
            (&ready, &active, 1_022_000),
            (&active, &exited, 1_030_000),
            (&exited, &restarted, 1_030_250),
            (&restarted, &ended, 1_082_000),
        ];
        for (a, b, ts) in steps {
            for what in changes(
                &a.clone().seen_by(View::Learner),
                &b.clone().seen_by(View::Learner),
            ) {
                append(&file(&dir), &Line { ts_ms: ts, what }).unwrap();
            }
        }
        crate::probe::journal::record(
            &dir,
            &crate::probe::journal::Entry {
                ts_ms: 1_040_000,
                probe: "tcp-retrans".into(),
                target: Some("payments".into()),
                instances: vec!["payments-0".into()],
                seconds: 10.0,
                summary: serde_json::json!({}),
            },
        );
        std::fs::write(
            dir.path.join("hints.jsonl"),
            "{\"index\":0,\"cost\":10,\"ts_ms\":1035000}\n",
        )
        .unwrap();
        record_submission(
            &dir,
            &Submitted {
                ts_ms: 1_090_000,
                passed: Some(true),
                score: Some(85),
            },
        )
        .unwrap();
        dir
    }

    #[test]
    fn the_timeline_reads_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = lab_dir(&tmp);
        let learner = state().seen_by(View::Learner);
        let page: String = timeline(&dir, &learner)
            .iter()
            .map(|e| render(&learner, e))
            .collect();
        insta::assert_snapshot!(page);
        let revealed: String = timeline(&dir, &state())
            .iter()
            .map(|e| render(&state(), e))
            .collect();
        assert!(
            revealed
                .contains("fault #1 lossy-ledger (12% packet loss on payments ↔ ledger) installed"),
            "{revealed}"
        );
    }

    #[test]
    fn what_a_learner_reads_names_no_fault() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = lab_dir(&tmp);
        let learner = state().seen_by(View::Learner);
        let json = serde_json::to_string(&timeline(&dir, &learner)).unwrap();
        let file = std::fs::read_to_string(file(&dir)).unwrap();
        for secret in ["lossy-ledger", "loss", "ledger", "12%", "310"] {
            assert!(
                !json.contains(secret),
                "the timeline holds `{secret}`: {json}"
            );
            assert!(
                !file.contains(secret),
                "events.jsonl holds `{secret}`: {file}"
            );
        }
        assert!(json.contains("fault #1 installed"), "{json}");
    }
}
