//! `sandbox verify`: proof that a scenario can be solved with the bundled tools before a
//! learner sees it. Brings the scenario up; checks its symptom is absent before the first
//! fault and visible once the faults fire; runs the reference solution's probe steps; checks
//! their evidence; grades the reference findings (full marks required) and the decoys (each
//! must fail); takes the lab down.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::lab::{self, LabDir, LabId, State};
use crate::plan::Plan;
use crate::probe::{self, ProbeKind, Scope};
use crate::scenario::{Scenario, SymptomCheck, SymptomMetric};
use crate::symptoms::{self, Window};

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// The seed that drew the parameters; none for a corner, which no seed need draw.
    pub seed: Option<u64>,
    /// The parameters the lab was built with (`name = value, …`).
    pub draw: String,
    pub steps: Vec<Step>,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok)
    }

    fn push(&mut self, check: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
        self.steps.push(Step {
            check: check.into(),
            ok,
            detail: detail.into(),
        });
        ok
    }
}

/// Seconds of load the symptom windows need.
const WINDOW_S: u64 = 5;

/// What must be in a scenario before it can be verified.
pub fn missing_parts(s: &Scenario) -> Vec<&'static str> {
    let mut out = Vec::new();
    if s.symptom.is_empty() {
        out.push("`symptom`: what status shows once the faults fire");
    }
    if s.expected_findings.is_empty() {
        out.push("`expected_findings`");
    }
    if s.solution.is_none() {
        out.push("`solution`: the probe steps and reference findings");
    }
    if s.faults.is_empty() {
        out.push("`faults`");
    }
    out
}

fn value(w: &Window, m: SymptomMetric) -> f64 {
    match m {
        SymptomMetric::P50Ms => w.p50_ms,
        SymptomMetric::P90Ms => w.p90_ms,
        SymptomMetric::P99Ms => w.p99_ms,
        SymptomMetric::ErrorPct => w.error_pct,
        SymptomMetric::Rate => w.rate,
    }
}

fn holds(c: &SymptomCheck, w: &Window) -> bool {
    let v = value(w, *c.metric);
    c.above.is_some_and(|a| v > a) || c.below.is_some_and(|b| v < b)
}

fn describe(checks: &[SymptomCheck], w: &Window) -> String {
    checks
        .iter()
        .map(|c| {
            let bound = c
                .above
                .map(|a| format!("> {a}"))
                .or(c.below.map(|b| format!("< {b}")))
                .unwrap_or_default();
            format!(
                "{:?} {:.1} (wanted {bound})",
                *c.metric,
                value(w, *c.metric)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn window(dir: &LabDir, from_ms: u64, to_ms: u64) -> Option<Window> {
    symptoms::window(&symptoms::read(&dir.load_stats()), from_ms, to_ms)
}

fn state(id: &LabId) -> Option<State> {
    LabDir::new(id).read_state()
}

/// A solution step's probe invocation: `sandbox probe <name> [--target T] [--duration D]`.
fn parse_probe(run: &str) -> Option<(ProbeKind, Option<String>, Duration)> {
    let words: Vec<&str> = run.split_whitespace().collect();
    let ["sandbox", "probe", name, rest @ ..] = words.as_slice() else {
        return None;
    };
    let kind = ProbeKind::from_name(name)?;
    let mut target = None;
    let mut duration = Duration::from_secs(5);
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        match *w {
            "--target" | "-t" => target = it.next().map(|s| s.to_string()),
            "--duration" | "-d" => {
                duration = it
                    .next()
                    .and_then(|d| humantime::parse_duration(d).ok())
                    .unwrap_or(duration)
            }
            _ => {}
        }
    }
    Some((kind, target, duration))
}

/// Runs the checks against a lab that is up; the caller takes it down.
pub fn check_running(
    plan: &Plan,
    s: &Scenario,
    id: &LabId,
    mut progress: impl FnMut(&str),
) -> Report {
    let mut r = Report {
        scenario: plan.scenario.id.clone(),
        seed: Some(plan.seed),
        draw: crate::plan::draw_label(&plan.params),
        steps: Vec::new(),
    };
    let Some(st) = state(id) else {
        r.push("lab", false, "the lab has no state");
        return r;
    };
    let dir = LabDir::new(id);
    let ready = st.ready_ms.unwrap_or(st.created_ms);
    let first = plan
        .faults
        .iter()
        .map(|f| f.start_after)
        .min()
        .unwrap_or_default();
    let last = plan
        .faults
        .iter()
        .map(|f| f.start_after)
        .max()
        .unwrap_or_default();

    // Before the first fault: the symptom must not show.
    if first < Duration::from_secs(WINDOW_S + 2) {
        r.push(
            "symptom absent before the faults",
            false,
            format!(
                "the first fault starts after {}s; verify needs at least {}s of healthy load first",
                first.as_secs(),
                WINDOW_S + 2
            ),
        );
    } else {
        progress("measuring the healthy baseline");
        let until = ready + first.as_millis() as u64;
        std::thread::sleep(Duration::from_millis(until.saturating_sub(lab::now_ms())));
        match window(&dir, until - WINDOW_S * 1000, until) {
            Some(w) if !s.symptom.iter().all(|c| holds(c, &w)) => r.push(
                "symptom absent before the faults",
                true,
                describe(&s.symptom, &w),
            ),
            Some(w) => r.push(
                "symptom absent before the faults",
                false,
                describe(&s.symptom, &w),
            ),
            None => r.push(
                "symptom absent before the faults",
                false,
                "no load was measured",
            ),
        };
    }

    // Once every fault has fired: the symptom must show (allow it a few windows to build up).
    progress("waiting for the faults to fire");
    let fired = ready + last.as_millis() as u64;
    let deadline = Instant::now()
        + Duration::from_millis(fired.saturating_sub(lab::now_ms()))
        + Duration::from_secs(25);
    std::thread::sleep(Duration::from_millis(
        (fired + (WINDOW_S + 1) * 1000).saturating_sub(lab::now_ms()),
    ));
    let mut seen = None;
    while Instant::now() < deadline {
        let now = lab::now_ms();
        if let Some(w) = window(&dir, now.saturating_sub(WINDOW_S * 1000), now) {
            let ok = s.symptom.iter().all(|c| holds(c, &w));
            seen = Some((ok, describe(&s.symptom, &w)));
            if ok {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let faults_ok = state(id).is_some_and(|st| {
        st.faults
            .iter()
            .all(|f| f.status == lab::FaultStatus::Active || f.status == lab::FaultStatus::Ended)
    });
    r.push(
        "faults installed",
        faults_ok,
        if faults_ok {
            "every fault fired"
        } else {
            "a fault failed or never fired (see `sandbox status --reveal`)"
        },
    );
    match seen {
        Some((ok, detail)) => r.push("symptom visible once the faults fire", ok, detail),
        None => r.push(
            "symptom visible once the faults fire",
            false,
            "no load was measured",
        ),
    };

    // The reference solution's probe steps, recorded in the journal like a learner's.
    let Some(sol) = &plan.solution else {
        r.push("solution", false, "the scenario has no solution");
        return r;
    };
    for step in &sol.steps {
        let Some((kind, target, duration)) = parse_probe(&step.run) else {
            continue;
        };
        progress(&format!("running `{}`", step.run));
        let result = Scope::resolve(Some(id.as_str()), target.as_deref()).and_then(|scope| {
            let opts = probe::Options {
                kind,
                duration: Some(duration),
                json: true,
                output: Some(dir.path.join(format!("verify-{}.svg", kind.name()))),
            };
            probe::run(&scope, &opts, &mut std::io::sink())
        });
        match result {
            Ok(o) => r.push(
                format!("step: {}", step.run),
                true,
                format!("attached in {:.0} ms", o.attach.as_secs_f64() * 1000.0),
            ),
            Err(e) => r.push(format!("step: {}", step.run), false, e.to_string()),
        };
    }
    let evidence = crate::exercise::evidence(&dir);
    for e in &plan.exercise.expected {
        for req in &e.evidence {
            let found = grader::evidence::satisfying(req, &evidence);
            r.push(
                format!("evidence: {} for {}", req.probe, e.id),
                found.is_some(),
                if found.is_some() {
                    "a solution step's output shows it"
                } else {
                    "no solution step's output shows it"
                },
            );
        }
    }
    let reference = grader::score::Submission {
        findings: sol.findings.clone(),
        evidence: evidence.clone(),
        hints: vec![],
        time_taken: None,
    };
    let g = grader::score::grade(&plan.exercise, &reference);
    let weak: Vec<String> = g
        .items
        .iter()
        .filter(|i| i.points < i.max)
        .map(|i| format!("{} {} ({})", i.finding, i.check, i.why))
        .collect();
    r.push(
        "reference findings score full marks",
        g.score == g.max && g.max > 0,
        format!("{}/{} {}", g.score, g.max, weak.join("; ")),
    );
    for (i, d) in sol.decoys.iter().enumerate() {
        let decoy = grader::score::Submission {
            findings: d.clone(),
            evidence: evidence.clone(),
            hints: vec![],
            time_taken: None,
        };
        let g = grader::score::grade(&plan.exercise, &decoy);
        r.push(
            format!("decoy {} fails", i + 1),
            !g.passed,
            format!("{}/{}", g.score, g.max),
        );
    }
    r
}

/// A `sandbox verify` report.
pub fn render(r: &Report) -> String {
    let draw = match (r.seed, r.draw.as_str()) {
        (Some(seed), "") => format!(" (seed {seed})"),
        (Some(seed), draw) => format!(" (seed {seed}: {draw})"),
        (None, "") => String::new(),
        (None, draw) => format!(" ({draw})"),
    };
    let mut out = format!(
        "{}{draw}: {}\n",
        r.scenario,
        if r.passed() {
            "VERIFIED"
        } else {
            "NOT VERIFIED"
        }
    );
    out.push_str(&crate::report::grid(
        &["CHECK", "", "DETAIL"],
        r.steps.iter().map(|s| {
            vec![
                s.check.clone(),
                (if s.ok { "ok" } else { "FAIL" }).into(),
                s.detail.clone(),
            ]
        }),
    ));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_steps_parse_like_the_command_line() {
        let (k, t, d) =
            parse_probe("sandbox probe tcp-retrans --target payments --duration 8s").unwrap();
        assert_eq!(k, ProbeKind::TcpRetrans);
        assert_eq!(t.as_deref(), Some("payments"));
        assert_eq!(d, Duration::from_secs(8));
        assert!(parse_probe("sandbox status").is_none());
        assert!(parse_probe("sandbox probe nonsense").is_none());
    }
}
