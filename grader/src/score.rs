//! Scoring: pairs the learner's findings with the expected ones (the pairing that earns the
//! most), scores each check with partial credit, adds evidence points, takes off hint costs and
//! a penalty for findings that match no fault, and applies the pass mark and time limit.
//!
//! Explanations never contain expected values, so a report can be shown to a learner without
//! giving the answer away.

use std::time::Duration;

use regex::RegexBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evidence::{self, ProbeRun};
use crate::expect::{Check, ExpectedFinding, Matcher};
use crate::findings::{Finding, Findings};
use crate::value::{quantity, same};

/// What a scenario grades against, with templates already rendered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Exercise {
    pub expected: Vec<ExpectedFinding>,
    pub pass_mark: u32,
    /// Points taken off for each finding that matches no fault (guessing widely).
    pub extra_finding_penalty: u32,
    pub time_limit: Option<Duration>,
}

/// A hint the learner was shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HintUse {
    pub index: usize,
    pub cost: u32,
}

/// What a learner hands in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    pub findings: Findings,
    pub evidence: Vec<ProbeRun>,
    pub hints: Vec<HintUse>,
    /// From the lab being ready to the submission.
    pub time_taken: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Partial,
    Fail,
}

/// One scored line of a grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The expected finding's id.
    pub finding: String,
    /// The field checked, or `evidence: <probe>`, or `extra finding`.
    pub check: String,
    pub status: Status,
    pub points: u32,
    pub max: u32,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    pub items: Vec<Item>,
    pub earned: u64,
    pub hint_cost: u64,
    pub penalty: u64,
    pub score: u64,
    pub max: u64,
    pub percent: f64,
    pub pass_mark: u32,
    pub passed: bool,
    pub late: bool,
    pub time_taken_s: Option<f64>,
}

/// A field of a finding by its path (`root_cause`, `where.link`, `magnitude.percent`, …).
/// `where.services` is every service the location names.
pub fn field(f: &Finding, path: &str) -> Option<Value> {
    let l = &f.location;
    match path {
        "root_cause" => Some(Value::String(f.root_cause.clone())),
        "where.service" => l.service.clone().map(Value::String),
        // A service named alone stands for a link it is one end of, for partial credit.
        "where.link" => match (&l.link, &l.service) {
            (Some(k), _) => Some(Value::Array(vec![
                k.from.clone().into(),
                k.to.clone().into(),
            ])),
            (None, Some(svc)) => Some(Value::Array(vec![svc.clone().into()])),
            (None, None) => None,
        },
        "where.direction" => l.direction.clone().map(Value::String),
        "where.port" => l.port.map(Value::from),
        "where.services" => {
            let mut v: Vec<Value> = l.service.iter().cloned().map(Value::String).collect();
            if let Some(k) = &l.link {
                v.push(k.from.clone().into());
                v.push(k.to.clone().into());
            }
            (!v.is_empty()).then_some(Value::Array(v))
        }
        "evidence" => Some(Value::String(f.evidence.clone())),
        "notes" => Some(Value::String(f.notes.clone())),
        p => p
            .strip_prefix("magnitude.")
            .and_then(|q| f.magnitude.get(q).cloned()),
    }
}

fn elements(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn regex(pattern: &str) -> Option<regex::Regex> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .ok()
}

/// Whether a scenario's pattern compiles (as matchers compile it).
pub fn regex_ok(pattern: &str) -> bool {
    regex(pattern).is_some()
}

/// Whether `got` satisfies `m`.
pub fn matches(m: &Matcher, got: &Value) -> bool {
    let got_all = elements(got);
    match m {
        Matcher::Equals(e) => got_all.iter().any(|g| same(e, g)),
        Matcher::OneOf(list) => got_all.iter().any(|g| list.iter().any(|e| same(e, g))),
        Matcher::Approx { value, tolerance } => {
            match (quantity(value), got_all.first().and_then(|g| quantity(g))) {
                (Some(e), Some(g)) if got_all.len() == 1 => (e - g).abs() <= *tolerance,
                _ => false,
            }
        }
        Matcher::Regex(pattern) => regex(pattern).is_some_and(|re| {
            got_all
                .iter()
                .any(|g| g.as_str().is_some_and(|s| re.is_match(s)))
        }),
        Matcher::Set(list) => {
            list.len() == got_all.len()
                && list.iter().all(|e| got_all.iter().any(|g| same(e, g)))
                && got_all.iter().all(|g| list.iter().any(|e| same(e, g)))
        }
    }
}

/// Points for one check on one finding, and how it went.
fn check(c: &Check, f: Option<&Finding>) -> (u32, Status, &'static str) {
    let Some(got) = f.and_then(|f| field(f, &c.field)) else {
        return (0, Status::Fail, "not given");
    };
    if matches(&c.expect, &got) {
        return (c.points, Status::Pass, "right");
    }
    match c
        .partial
        .iter()
        .filter(|p| matches(&p.expect, &got))
        .map(|p| p.points.min(c.points))
        .max()
    {
        Some(p) if p > 0 => (p, Status::Partial, "partly right"),
        _ => (0, Status::Fail, "wrong"),
    }
}

fn finding_points(e: &ExpectedFinding, f: &Finding) -> u64 {
    e.checks
        .iter()
        .map(|c| u64::from(check(c, Some(f)).0))
        .sum()
}

/// The pairing of expected findings (by index) to the learner's that earns the most check
/// points; `None` where an expected finding gets no learner finding. Among pairings that earn
/// the same, the first in order wins: each expected finding takes the lowest-numbered learner
/// finding it can, and goes unpaired only when it must. Only a finding that earns something
/// is paired.
///
/// Polynomial: the best total comes from an assignment solver, then each expected finding in
/// turn takes the first choice that still allows that total.
fn best_pairing(expected: &[ExpectedFinding], findings: &[Finding]) -> Vec<Option<usize>> {
    let table: Vec<Vec<u64>> = expected
        .iter()
        .map(|e| findings.iter().map(|f| finding_points(e, f)).collect())
        .collect();
    let all_rows: Vec<usize> = (0..expected.len()).collect();
    let mut free: Vec<usize> = (0..findings.len()).collect();
    let mut left = crate::assign::max_total(&table, &all_rows, &free);
    let mut out = Vec::with_capacity(expected.len());
    for i in 0..expected.len() {
        let rest = &all_rows[i + 1..];
        let pick = free
            .iter()
            .copied()
            .filter(|&j| table[i][j] > 0 && table[i][j] <= left)
            .find(|&j| {
                let others: Vec<usize> = free.iter().copied().filter(|&k| k != j).collect();
                table[i][j] + crate::assign::max_total(&table, rest, &others) == left
            });
        if let Some(j) = pick {
            left -= table[i][j];
            free.retain(|&k| k != j);
        }
        out.push(pick);
    }
    out
}

/// The most findings a submission may list; more is noise, not diagnosis.
pub const MAX_FINDINGS: usize = 20;

pub fn grade(ex: &Exercise, sub: &Submission) -> Grade {
    let findings: Vec<Finding> = sub
        .findings
        .findings
        .iter()
        .take(MAX_FINDINGS)
        .cloned()
        .collect();
    let pairing = best_pairing(&ex.expected, &findings);
    let mut items = Vec::new();
    for (e, pick) in ex.expected.iter().zip(&pairing) {
        let f = pick.map(|j| &findings[j]);
        // Evidence counts for a finding that puts the fault in the right place: some points, and
        // every location check fully right.
        let mut matched = false;
        let mut misplaced = false;
        for c in &e.checks {
            let (points, status, why) = check(c, f);
            matched |= points > 0;
            misplaced |= c.field.starts_with("where.") && status != Status::Pass;
            let why = match f {
                None => "no finding matches this fault".to_string(),
                Some(_) => why.to_string(),
            };
            items.push(Item {
                finding: e.id.clone(),
                check: c.field.clone(),
                status,
                points,
                max: c.points,
                why,
            });
        }
        for req in &e.evidence {
            let run = evidence::satisfying(req, &sub.evidence);
            let (points, status, why) = match (run, matched && !misplaced) {
                (Some(r), true) => (
                    req.points,
                    Status::Pass,
                    format!(
                        "shown by the {} run at +{:.0}s",
                        r.probe,
                        run_offset(r, &sub.evidence)
                    ),
                ),
                (Some(_), false) => (
                    0,
                    Status::Fail,
                    "the probe showed it, but no finding puts this fault in the right place".into(),
                ),
                (None, _) => (
                    0,
                    Status::Fail,
                    format!("no {} run that shows this fault", req.probe),
                ),
            };
            items.push(Item {
                finding: e.id.clone(),
                check: format!("evidence: {}", req.probe),
                status,
                points,
                max: req.points,
                why,
            });
        }
    }
    // Sums are taken in u64 over u32 parts, so they cannot wrap for any input.
    let mut penalty = 0u64;
    for (j, f) in findings.iter().enumerate() {
        if !pairing.contains(&Some(j)) {
            penalty += u64::from(ex.extra_finding_penalty);
            items.push(Item {
                finding: format!("#{}", j + 1),
                check: "extra finding".into(),
                status: Status::Fail,
                points: 0,
                max: 0,
                why: format!(
                    "`{}` matches no fault (−{})",
                    f.root_cause.chars().take(40).collect::<String>(),
                    ex.extra_finding_penalty
                ),
            });
        }
    }
    let earned: u64 = items.iter().map(|i| u64::from(i.points)).sum();
    let max: u64 = items.iter().map(|i| u64::from(i.max)).sum();
    let hint_cost: u64 = sub.hints.iter().map(|h| u64::from(h.cost)).sum();
    let score = earned.saturating_sub(hint_cost).saturating_sub(penalty);
    let percent = if max == 0 {
        0.0
    } else {
        100.0 * score as f64 / max as f64
    };
    let late =
        matches!((ex.time_limit, sub.time_taken), (Some(limit), Some(taken)) if taken > limit);
    Grade {
        items,
        earned,
        hint_cost,
        penalty,
        score,
        max,
        percent,
        pass_mark: ex.pass_mark,
        passed: !late && percent >= ex.pass_mark as f64,
        late,
        time_taken_s: sub.time_taken.map(|t| t.as_secs_f64()),
    }
}

/// Seconds from the first recorded probe run to `r`, for a readable reference.
fn run_offset(r: &ProbeRun, all: &[ProbeRun]) -> f64 {
    let first = all.iter().map(|x| x.ts_ms).min().unwrap_or(r.ts_ms);
    (r.ts_ms - first) as f64 / 1000.0
}

/// Checks a learner's findings before grading: root causes must be in the taxonomy, names
/// short, the count bounded. Returns every problem found.
pub fn lint(f: &Findings) -> Vec<String> {
    let mut out = Vec::new();
    if f.findings.is_empty() {
        out.push("findings: expected at least one finding".into());
    }
    if f.findings.len() > MAX_FINDINGS {
        out.push(format!(
            "findings: at most {MAX_FINDINGS} findings are graded, found {}",
            f.findings.len()
        ));
    }
    for (i, x) in f.findings.iter().enumerate() {
        if crate::taxonomy::find(&x.root_cause).is_none() {
            out.push(format!(
                "findings[{i}].root_cause: `{}` is not a known root cause; expected one of: {}",
                x.root_cause.chars().take(60).collect::<String>(),
                crate::taxonomy::ids().collect::<Vec<_>>().join(", ")
            ));
        }
        let l = &x.location;
        for (name, v) in [
            ("where.service", l.service.as_deref()),
            ("where.direction", l.direction.as_deref()),
        ] {
            if v.is_some_and(|s| s.len() > 64) {
                out.push(format!("findings[{i}].{name}: longer than 64 characters"));
            }
        }
        if let Some(d) = &l.direction
            && !["ingress", "egress", "forward", "reverse", "both"].contains(&d.as_str())
        {
            out.push(format!(
                "findings[{i}].where.direction: expected ingress, egress, forward, reverse or both"
            ));
        }
        for (q, v) in &x.magnitude {
            if quantity(v).is_none() {
                out.push(format!("findings[{i}].magnitude.{q}: expected a number or a quantity such as 12, 100ms, 1mbit"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::{EvidenceRequirement, Partial, Shows};
    use crate::findings::{Link, Location};
    use serde_json::json;

    fn loss_exercise() -> Exercise {
        Exercise {
            expected: vec![ExpectedFinding {
                id: "loss".into(),
                summary: "12% loss between payments and ledger".into(),
                checks: vec![
                    Check {
                        field: "root_cause".into(),
                        points: 40,
                        expect: Matcher::Equals(json!("packet-loss")),
                        partial: vec![],
                    },
                    Check {
                        field: "where.link".into(),
                        points: 30,
                        expect: Matcher::Set(vec![json!("payments"), json!("ledger")]),
                        partial: vec![Partial {
                            points: 15,
                            expect: Matcher::OneOf(vec![json!("payments"), json!("ledger")]),
                        }],
                    },
                    Check {
                        field: "magnitude.percent".into(),
                        points: 20,
                        expect: Matcher::Approx {
                            value: json!(12),
                            tolerance: 4.0,
                        },
                        partial: vec![],
                    },
                ],
                evidence: vec![EvidenceRequirement {
                    probe: "tcp-retrans".into(),
                    target: None,
                    shows: Some(Shows {
                        between: Some(["payments".into(), "ledger".into()]),
                        ..Default::default()
                    }),
                    points: 10,
                }],
            }],
            pass_mark: 70,
            extra_finding_penalty: 10,
            time_limit: Some(Duration::from_secs(1800)),
        }
    }

    fn finding(cause: &str, from: &str, to: &str, pct: Option<f64>) -> Finding {
        Finding {
            root_cause: cause.into(),
            location: Location {
                link: Some(Link {
                    from: from.into(),
                    to: to.into(),
                }),
                ..Default::default()
            },
            magnitude: pct
                .map(|p| [("percent".to_string(), json!(p))].into_iter().collect())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    fn retrans_run() -> ProbeRun {
        ProbeRun {
            ts_ms: 1,
            probe: "tcp-retrans".into(),
            target: Some("payments".into()),
            instances: vec!["payments-0".into()],
            seconds: 5.0,
            summary: json!({"flows": [{"from": "payments-0", "to": "ledger-0", "segments": 90}]}),
        }
    }

    fn submit(findings: Vec<Finding>, evidence: Vec<ProbeRun>, hints: Vec<HintUse>) -> Submission {
        Submission {
            findings: Findings { findings },
            evidence,
            hints,
            time_taken: Some(Duration::from_secs(600)),
        }
    }

    #[test]
    fn a_full_answer_with_evidence_scores_everything() {
        let g = grade(
            &loss_exercise(),
            &submit(
                vec![finding("packet-loss", "ledger-0", "payments", Some(11.0))],
                vec![retrans_run()],
                vec![],
            ),
        );
        assert_eq!((g.score, g.max), (100, 100));
        assert!(g.passed);
    }

    #[test]
    fn partial_credit_and_missing_evidence() {
        let g = grade(
            &loss_exercise(),
            &submit(
                vec![finding("packet-loss", "payments", "checkout", Some(30.0))],
                vec![],
                vec![],
            ),
        );
        assert_eq!(g.score, 40 + 15);
        let link = g.items.iter().find(|i| i.check == "where.link").unwrap();
        assert_eq!(link.status, Status::Partial);
        let ev = g
            .items
            .iter()
            .find(|i| i.check.starts_with("evidence"))
            .unwrap();
        assert_eq!(ev.status, Status::Fail);
        assert!(!g.passed);
    }

    #[test]
    fn a_lucky_guess_without_investigation_loses_the_evidence_points() {
        let g = grade(
            &loss_exercise(),
            &submit(
                vec![finding("packet-loss", "payments", "ledger", Some(12.0))],
                vec![],
                vec![],
            ),
        );
        assert_eq!(g.score, 90);
    }

    #[test]
    fn hints_and_shotgun_answers_cost_points() {
        let shotgun = vec![
            finding("added-latency", "edge", "checkout", None),
            finding("packet-loss", "payments", "ledger", Some(12.0)),
            finding("corruption", "edge", "checkout", None),
        ];
        let g = grade(
            &loss_exercise(),
            &submit(
                shotgun,
                vec![retrans_run()],
                vec![HintUse { index: 0, cost: 5 }],
            ),
        );
        assert_eq!(g.earned, 100, "the right finding is picked out of the list");
        assert_eq!(g.penalty, 20);
        assert_eq!(g.hint_cost, 5);
        assert_eq!(g.score, 75);
    }

    #[test]
    fn evidence_counts_only_where_the_finding_puts_the_fault() {
        // The probe showed payments ↔ ledger, but the finding names another link.
        let g = grade(
            &loss_exercise(),
            &submit(
                vec![finding("packet-loss", "payments", "checkout", Some(12.0))],
                vec![retrans_run()],
                vec![],
            ),
        );
        let ev = g
            .items
            .iter()
            .find(|i| i.check.starts_with("evidence"))
            .unwrap();
        assert_eq!(ev.status, Status::Fail);
        assert!(ev.why.contains("right place"), "{}", ev.why);
    }

    #[test]
    fn a_service_alone_is_one_end_of_a_link() {
        let mut f = finding("packet-loss", "x", "y", Some(12.0));
        f.location = Location {
            service: Some("ledger-0".into()),
            ..Default::default()
        };
        let g = grade(
            &loss_exercise(),
            &submit(vec![f], vec![retrans_run()], vec![]),
        );
        let link = g.items.iter().find(|i| i.check == "where.link").unwrap();
        assert_eq!((link.status, link.points), (Status::Partial, 15));
    }

    #[test]
    fn late_submissions_fail() {
        let mut sub = submit(
            vec![finding("packet-loss", "payments", "ledger", Some(12.0))],
            vec![retrans_run()],
            vec![],
        );
        sub.time_taken = Some(Duration::from_secs(3600));
        let g = grade(&loss_exercise(), &sub);
        assert!(g.late && !g.passed);
    }

    #[test]
    fn explanations_never_contain_the_answer() {
        let g = grade(
            &loss_exercise(),
            &submit(
                vec![finding("blackhole", "edge", "checkout", Some(99.0))],
                vec![],
                vec![],
            ),
        );
        let text = serde_json::to_string(&g.items).unwrap();
        for secret in ["packet-loss", "ledger", "payments", "12"] {
            assert!(!text.contains(secret), "`{secret}` leaked: {text}");
        }
    }

    #[test]
    fn lint_names_unknown_root_causes_and_bad_quantities() {
        let mut f = finding("gremlins", "a", "b", None);
        f.magnitude.insert("delay".into(), json!("soon"));
        let problems = lint(&Findings { findings: vec![f] });
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`gremlins` is not a known root cause"))
        );
        assert!(problems.iter().any(|p| p.contains("magnitude.delay")));
    }

    /// The search `best_pairing` replaced: every pairing, in order, keeping the first best.
    fn exhaustive(table: &[Vec<u64>], m: usize) -> Vec<Option<usize>> {
        fn go(
            i: usize,
            table: &[Vec<u64>],
            used: &mut Vec<bool>,
            cur: &mut Vec<Option<usize>>,
            best: &mut (u64, Vec<Option<usize>>),
            sum: u64,
        ) {
            if i == table.len() {
                if sum > best.0 || best.1.is_empty() {
                    *best = (sum, cur.clone());
                }
                return;
            }
            for j in 0..used.len() {
                if !used[j] && table[i][j] > 0 {
                    used[j] = true;
                    cur.push(Some(j));
                    go(i + 1, table, used, cur, best, sum + table[i][j]);
                    cur.pop();
                    used[j] = false;
                }
            }
            cur.push(None);
            go(i + 1, table, used, cur, best, sum);
            cur.pop();
        }
        let mut best = (0, Vec::new());
        go(0, table, &mut vec![false; m], &mut Vec::new(), &mut best, 0);
        best.1
    }

    /// Expected findings whose only check is `root_cause` ∈ a set, each worth its own points,
    /// so a random table of points can be built from findings.
    fn instance(rng: &mut u64, n: usize, m: usize) -> (Vec<ExpectedFinding>, Vec<Finding>) {
        fn next(rng: &mut u64, k: u64) -> u64 {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng % k
        }
        let causes = ["packet-loss", "added-latency", "corruption", "blackhole"];
        let mut findings = Vec::new();
        for _ in 0..m {
            findings.push(finding(causes[next(rng, 4) as usize], "a", "b", None));
        }
        let mut expected = Vec::new();
        for i in 0..n {
            let mut checks = Vec::new();
            for cause in causes {
                if next(rng, 2) == 0 {
                    checks.push(Check {
                        field: "root_cause".into(),
                        points: next(rng, 3) as u32,
                        expect: Matcher::Equals(json!(cause)),
                        partial: vec![],
                    });
                }
            }
            expected.push(ExpectedFinding {
                id: format!("e{i}"),
                summary: String::new(),
                checks,
                evidence: vec![],
            });
        }
        (expected, findings)
    }

    #[test]
    fn the_assignment_solver_pairs_as_the_exhaustive_search_did() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..3000 {
            let n = 1 + round % 5;
            let m = round / 5 % 6;
            let (expected, findings) = instance(&mut rng, n, m);
            let table: Vec<Vec<u64>> = expected
                .iter()
                .map(|e| findings.iter().map(|f| finding_points(e, f)).collect())
                .collect();
            assert_eq!(
                best_pairing(&expected, &findings),
                exhaustive(&table, m),
                "table {table:?}"
            );
        }
    }

    #[test]
    fn eight_expected_and_forty_submitted_findings_pair_in_milliseconds() {
        let mut rng = 42u64;
        let (expected, findings) = instance(&mut rng, 8, 40);
        let start = std::time::Instant::now();
        let pairing = best_pairing(&expected, &findings);
        let ex = Exercise {
            expected,
            pass_mark: 70,
            extra_finding_penalty: 1,
            time_limit: None,
        };
        grade(&ex, &submit(findings, vec![], vec![]));
        assert_eq!(pairing.len(), 8);
        eprintln!("8 x 40 findings paired and graded in {:?}", start.elapsed());
        assert!(
            start.elapsed() < Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn points_beyond_u32_do_not_wrap_into_a_pass() {
        let mut ex = loss_exercise();
        for c in &mut ex.expected[0].checks {
            c.points = u32::MAX;
        }
        ex.extra_finding_penalty = u32::MAX;
        let g = grade(
            &ex,
            &submit(
                vec![
                    finding("blackhole", "edge", "checkout", None),
                    finding("corruption", "edge", "checkout", None),
                ],
                vec![],
                vec![HintUse {
                    index: 0,
                    cost: u32::MAX,
                }],
            ),
        );
        assert_eq!(g.score, 0);
        assert!(g.max > u64::from(u32::MAX));
        assert!(!g.passed);
    }
}
