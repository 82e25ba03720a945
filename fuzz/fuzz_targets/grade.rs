//! Grading any findings against any rubric: JSON holding both, as a scenario and a
//! submission would give them.
#![no_main]

use grader::evidence::ProbeRun;
use grader::expect::ExpectedFinding;
use grader::findings::Findings;
use grader::score::{Exercise, HintUse, Submission};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    expected: Vec<ExpectedFinding>,
    findings: Findings,
    #[serde(default)]
    evidence: Vec<ProbeRun>,
    #[serde(default)]
    hints: Vec<HintUse>,
    #[serde(default)]
    pass_mark: u32,
    #[serde(default)]
    penalty: u32,
    #[serde(default)]
    time_limit_s: Option<u64>,
    #[serde(default)]
    taken_s: Option<u64>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(i) = serde_json::from_slice::<Input>(data) else {
        return;
    };
    // Validation allows at most this many expected findings.
    if i.expected.len() > 16 {
        return;
    }
    let ex = Exercise {
        expected: i.expected,
        pass_mark: i.pass_mark,
        extra_finding_penalty: i.penalty,
        time_limit: i.time_limit_s.map(std::time::Duration::from_secs),
    };
    let sub = Submission {
        findings: i.findings,
        evidence: i.evidence,
        hints: i.hints,
        time_taken: i.taken_s.map(std::time::Duration::from_secs),
    };
    let g = grader::score::grade(&ex, &sub);
    assert!(g.score <= g.max, "score above the maximum");
    assert!(!g.passed || g.percent >= f64::from(ex.pass_mark));
});
