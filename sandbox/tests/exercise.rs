//! Exercises end to end with the real binary: hints that follow what the learner did,
//! submitting findings (table, JSON, JUnit), bad findings, and certification (sealed draw,
//! bundle, grading with the instructor's key, signed results).

mod common;

use std::time::Duration;

use common::*;

/// A practice lab of `packet-loss` whose fault fires at once.
fn loss_lab() -> (Lab, TempFile) {
    let text = sandbox::scenario::find_bundled("packet-loss")
        .unwrap()
        .text
        .replace("start_after: 20s", "start_after: 1s");
    let file = write_temp("loss.yaml", &text);
    let lab = Lab::start(file.as_str(), 5);
    (lab, file)
}

fn run_probe(lab: &Lab, probe: &str) {
    let out = sandbox()
        .args(["probe", probe, "--lab", &lab.id, "--duration", "3s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

fn submit(lab: &Lab, yaml: &str, extra: &[&str]) -> std::process::Output {
    let f = write_temp("findings.yaml", yaml);
    let mut args = vec!["submit", f.as_str(), "--lab", &lab.id];
    args.extend(extra);
    sandbox().args(&args).output().unwrap()
}

const RIGHT: &str = "findings:\n  - root_cause: packet-loss\n    where:\n      link: {from: payments, to: ledger}\n    magnitude: {percent: 12}\n";

#[test]
fn hints_follow_the_journal_and_cost_points() {
    if !root_or_skip("hints_follow_the_journal_and_cost_points") {
        return;
    }
    let _g = serial();
    let (lab, _f) = loss_lab();
    let hint = || text(&sandbox().args(["hint", "--lab", &lab.id]).output().unwrap());
    let first = hint();
    assert!(first.contains("Hint 1 (costs 10 points)"), "{first}");
    let second = hint();
    assert!(
        second.contains("shows retransmissions per flow"),
        "the learner has not run tcp-retrans yet: {second}"
    );
    // The third hint is for learners who have run tcp-retrans.
    let none = hint();
    assert!(none.contains("No more hints"), "{none}");
    lab.wait_fault("lossy-ledger", "active", Duration::from_secs(10));
    run_probe(&lab, "tcp-retrans");
    let third = hint();
    assert!(third.contains("Only one hop retransmits"), "{third}");

    let out = submit(&lab, RIGHT, &["--json"]);
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["hint_cost"], 10 + 15 + 20, "{g}");
    assert_eq!(
        g["earned"], 100,
        "the right answer with tcp-retrans evidence: {g}"
    );
    assert_eq!(g["score"], 55);
    assert_eq!(out.status.code(), Some(1), "55 is below the pass mark");
}

#[test]
fn submitting_grades_with_partial_credit_in_every_format() {
    if !root_or_skip("submitting_grades_with_partial_credit_in_every_format") {
        return;
    }
    let _g = serial();
    let (lab, _f) = loss_lab();
    let template = sandbox()
        .args(["findings", "template", "--lab", &lab.id])
        .output()
        .unwrap();
    let t = text(&template);
    assert!(
        t.contains("packet-loss")
            && t.contains("services in this lab: edge, checkout, payments, ledger"),
        "{t}"
    );
    let parsed: grader::findings::Findings =
        sandbox::yaml::from_str(&t, Default::default()).unwrap();
    assert_eq!(parsed.findings.len(), 1, "the template itself parses");

    // Right cause, one end of the link, no magnitude, no evidence.
    let partial = "findings:\n  - root_cause: packet-loss\n    where: {service: ledger}\n";
    let out = submit(&lab, partial, &[]);
    let page = text(&out);
    assert!(
        page.contains("where.link") && page.contains("partial") && page.contains("15/30"),
        "{page}"
    );
    assert!(page.contains("NOT PASSED"), "{page}");
    assert!(
        !page.contains("payments ↔ ledger") && !page.contains("% packet loss between"),
        "no answer in the report: {page}"
    );

    let out = submit(&lab, partial, &["--junit"]);
    let xml = String::from_utf8(out.stdout).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let suite = doc.root_element();
    assert_eq!(suite.tag_name().name(), "testsuite");
    assert_eq!(suite.attribute("tests"), Some("4"));
    assert_eq!(suite.attribute("failures"), Some("3"));

    lab.wait_fault("lossy-ledger", "active", Duration::from_secs(10));
    run_probe(&lab, "tcp-retrans");
    let out = submit(&lab, RIGHT, &["--reveal"]);
    let page = text(&out);
    assert!(
        out.status.success() && page.contains("PASSED") && page.contains("100/100"),
        "{page}"
    );
    assert!(page.contains("The faults were:"), "{page}");
}

#[test]
fn bad_findings_are_clear_errors_and_never_leak_the_answer() {
    if !root_or_skip("bad_findings_are_clear_errors_and_never_leak_the_answer") {
        return;
    }
    let _g = serial();
    let (lab, _f) = loss_lab();
    let answer = "packet loss between payments and ledger";
    let check = |yaml: &str, expect: &[&str]| {
        let out = submit(&lab, yaml, &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        for e in expect {
            assert!(t.contains(e), "expected `{e}` in:\n{t}");
        }
        assert!(!t.contains(answer), "answer leaked:\n{t}");
    };
    check(
        "findings:\n  - root_cause: packet-loss\n    where: {port: eighty}\n",
        &["findings.yaml:3:", "where.port", "expected a whole number"],
    );
    check(
        "findings:\n  - root_cause: gremlins\n",
        &["`gremlins` is not a known root cause"],
    );
    check(
        "findings:\n  - root_cause: packet-loss\n    attachments: [../../../etc/passwd]\n",
        &["attachments[0]", "outside the lab directory"],
    );
    check(
        "findings:\n  - root_cause: packet-loss\n    wher: {service: x}\n",
        &["unknown field `wher`"],
    );
    let huge = format!(
        "findings:\n  - root_cause: packet-loss\n    notes: \"{}\"\n",
        "x".repeat(100 << 20)
    );
    check(&huge, &["may be at most"]);

    // Template syntax in learner text is text: it is not rendered, and grading goes on.
    let sneaky = "findings:\n  - root_cause: blackhole\n    where: {service: edge}\n    notes: \"{{ loss_pct }} {% for x in range(9) %}{{ x }}{% endfor %}\"\n    evidence: \"{{ params }}\"\n";
    let out = submit(&lab, sneaky, &["--json"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "graded, not passed: {t}");
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["score"], 0, "{g}");
    assert!(!t.contains(answer) && !t.contains("012345678"), "{t}");
}

#[test]
fn certification_seals_the_draw_and_signs_the_grade() {
    if !root_or_skip("certification_seals_the_draw_and_signs_the_grade") {
        return;
    }
    let _g = serial();
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("instructor");
    let out = sandbox()
        .args(["keys", "generate", prefix.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let public = prefix.with_extension("pub");
    let secret = prefix.with_extension("key");

    let scenario = sandbox::scenario::find_bundled("packet-loss")
        .unwrap()
        .text
        .replace("start_after: 20s", "start_after: 1s");
    let file = write_temp("cert.yaml", &scenario);
    let out = sandbox()
        .args([
            "run",
            file.as_str(),
            "--detach",
            "--certify",
            "alice",
            "--instructor",
            public.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("Certification lab") && !t.contains("seed"),
        "{t}"
    );
    let id = t
        .split("Certification lab ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let lab = Lab::adopt(&id);
    lab.wait_fault("f1", "active", Duration::from_secs(10));

    // Nothing in the lab's files gives the answer away.
    let dir = std::path::Path::new("/run/sandbox/labs").join(&id);
    let mut all = String::new();
    for e in walk(&dir) {
        all.push_str(&String::from_utf8_lossy(&std::fs::read(e).unwrap()));
    }
    for secret_word in [
        "loss_pct",
        "lossy-ledger",
        "packet loss",
        "% packet",
        "payments ↔ ledger",
        "\"seed\": 5",
        "approx",
    ] {
        assert!(
            !all.contains(secret_word),
            "`{secret_word}` is readable in the lab's files"
        );
    }
    assert!(
        all.contains("BEGIN AGE ENCRYPTED FILE"),
        "the draw is sealed into the lab directory"
    );
    let page = text(
        &sandbox()
            .args(["status", &id, "--reveal"])
            .output()
            .unwrap(),
    );
    assert!(
        page.contains("sealed") && !page.contains("packet loss"),
        "{page}"
    );

    run_probe(&lab, "tcp-retrans");
    let findings = write_temp("f.yaml", RIGHT);
    let bundle = keys.path().join("alice.json");
    let out = sandbox()
        .args([
            "submit",
            findings.as_str(),
            "--lab",
            &id,
            "--output",
            bundle.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("Hand") && !t.contains("100"),
        "no score for the candidate: {t}"
    );
    let bundle_text = std::fs::read_to_string(&bundle).unwrap();
    assert!(
        !bundle_text.contains("loss_pct") && !bundle_text.contains("lossy-ledger"),
        "the bundle carries the draw sealed"
    );

    let results = keys.path().join("results");
    let csv = keys.path().join("grades.csv");
    let out = sandbox()
        .args([
            "grade",
            bundle.to_str().unwrap(),
            "--key",
            secret.to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the lab ran an edited scenario, which grading must be given: {t}"
    );
    assert!(t.contains("--scenario FILE"), "{t}");
    assert!(!results.exists(), "nothing written for a refused bundle");
    let out = sandbox()
        .args([
            "grade",
            bundle.to_str().unwrap(),
            "--key",
            secret.to_str().unwrap(),
            "--scenario",
            file.as_str(),
            "--out",
            results.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("alice") && t.contains("100/100") && t.contains("passed"),
        "{t}"
    );
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        csv_text.starts_with("candidate,scenario") && csv_text.contains("alice,packet-loss"),
        "{csv_text}"
    );

    let result = std::fs::read_dir(&results)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = sandbox()
        .args([
            "grade",
            "--verify",
            result.to_str().unwrap(),
            "--public",
            public.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out).contains("valid: alice scored 100/100"),
        "{}",
        text(&out)
    );

    // Any edit breaks the signature.
    let edited = std::fs::read_to_string(&result)
        .unwrap()
        .replace("\"score\": 100", "\"score\": 99");
    assert_ne!(edited, std::fs::read_to_string(&result).unwrap());
    std::fs::write(&result, edited).unwrap();
    let out = sandbox()
        .args([
            "grade",
            "--verify",
            result.to_str().unwrap(),
            "--public",
            public.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("INVALID"), "{}", text(&out));

    // Another instructor's key opens nothing.
    let other = keys.path().join("other");
    sandbox()
        .args(["keys", "generate", other.to_str().unwrap()])
        .output()
        .unwrap();
    let out = sandbox()
        .args([
            "grade",
            bundle.to_str().unwrap(),
            "--key",
            other.with_extension("key").to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out).contains("not sealed to this key"),
        "{}",
        text(&out)
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A forger who holds only `instructor.pub`: writes certification bundles for the bundled
/// `packet-loss` as a lab would, and edits them before (the sealed facts) or after sealing.
struct Forger {
    dir: tempfile::TempDir,
    public: sandbox::cert::InstructorPublic,
    secret: std::path::PathBuf,
    public_path: std::path::PathBuf,
    n: std::cell::Cell<usize>,
}

const SEED: u64 = 7;
const WRONG: &str = "findings:\n  - root_cause: packet-loss\n    where:\n      link: {from: edge, to: checkout}\n    magnitude: {percent: 50}\n";

impl Forger {
    fn new() -> Forger {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("instructor");
        let out = sandbox()
            .args(["keys", "generate", prefix.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let public_path = prefix.with_extension("pub");
        Forger {
            public: sandbox::cert::InstructorPublic::load(&public_path).unwrap(),
            secret: prefix.with_extension("key"),
            public_path,
            dir,
            n: Default::default(),
        }
    }

    /// The draw's right answer: the reference findings for `SEED`.
    fn right(&self) -> String {
        let s = sandbox::scenario::Source::resolve("packet-loss")
            .unwrap()
            .load()
            .unwrap();
        let plan = sandbox::plan::Plan::build(&s, SEED).unwrap();
        sandbox::yaml::to_string(&plan.solution.unwrap().findings).unwrap()
    }

    /// The facts a lab of `packet-loss` sealed for `SEED`.
    fn facts(&self) -> serde_json::Value {
        let text = sandbox::scenario::find_bundled("packet-loss").unwrap().text;
        let s = sandbox::scenario::Source::resolve("packet-loss")
            .unwrap()
            .load()
            .unwrap();
        let plan = sandbox::plan::Plan::build(&s, SEED).unwrap();
        let params: serde_json::Map<_, _> = plan
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        serde_json::json!({
            "candidate": "alice", "scenario_id": "packet-loss", "lab_id": "k3f9q",
            "scenario_sha256": sandbox::cert::sha256_hex(text.as_bytes()),
            "seed": SEED, "params": params, "faults": [], "ready_ms": 1_000_000,
        })
    }

    /// Writes a bundle with `findings`, the facts edited by `facts` and then sealed, the
    /// bundle edited by `bundle`.
    fn bundle(
        &self,
        findings: &str,
        facts: impl FnOnce(&mut serde_json::Value),
        bundle: impl FnOnce(&mut serde_json::Value),
    ) -> std::path::PathBuf {
        let mut f = self.facts();
        facts(&mut f);
        let armored = age_seal(&self.public, &f);
        let findings: serde_json::Value =
            sandbox::yaml::from_str(findings, Default::default()).unwrap();
        let mut b = serde_json::json!({
            "format": sandbox::cert::BUNDLE_FORMAT,
            "candidate": "alice", "scenario_id": "packet-loss", "lab_id": "k3f9q",
            "scenario_sha256": f["scenario_sha256"],
            "submitted_ms": 1_600_000, "findings": findings, "evidence": [],
            "hints": [], "attachments": {}, "sealed": armored,
        });
        bundle(&mut b);
        self.n.set(self.n.get() + 1);
        let path = self
            .dir
            .path()
            .join(format!("bundle-{}.json", self.n.get()));
        std::fs::write(&path, serde_json::to_vec_pretty(&b).unwrap()).unwrap();
        path
    }

    /// `sandbox grade` on one bundle into a fresh results directory: its output, and the
    /// signed result when one was written.
    fn grade(&self, bundle: &std::path::Path) -> (std::process::Output, Option<serde_json::Value>) {
        let results = self.dir.path().join(format!("results-{}", self.n.get()));
        let out = sandbox()
            .arg("grade")
            .arg(bundle)
            .arg("--key")
            .arg(&self.secret)
            .arg("--out")
            .arg(&results)
            .output()
            .unwrap();
        let result = std::fs::read_dir(&results).ok().map(|mut d| {
            let p = d.next().unwrap().unwrap().path();
            let out = sandbox()
                .arg("grade")
                .arg("--verify")
                .arg(&p)
                .arg("--public")
                .arg(&self.public_path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            assert!(text(&out).contains("self-reported by the candidate's machine"));
            serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
        });
        (out, result)
    }

    /// Grading `bundle` is refused (exit 2, nothing signed) with `why` in the message.
    fn refused(&self, bundle: &std::path::Path, why: &str) {
        let (out, result) = self.grade(bundle);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains(why), "expected `{why}` in:\n{t}");
        assert!(
            result.is_none(),
            "nothing is signed for a refused bundle: {t}"
        );
    }
}

/// Seals JSON the way a lab does, with only the public key.
fn age_seal(to: &sandbox::cert::InstructorPublic, facts: &serde_json::Value) -> String {
    sandbox::cert::seal_json(to, facts).unwrap()
}

#[test]
fn forged_bundles_never_earn_a_signed_pass() {
    let f = Forger::new();
    let right = f.right();

    // The honest bundle with the right answer passes; with a wrong one it is a signed fail.
    let (out, r) = f.grade(&f.bundle(&right, |_| {}, |_| {}));
    assert!(out.status.success(), "{}", text(&out));
    let r = r.unwrap();
    assert_eq!(r["grade"]["passed"], true, "{r}");
    let (out, r) = f.grade(&f.bundle(WRONG, |_| {}, |_| {}));
    assert_eq!(out.status.code(), Some(0), "graded: {}", text(&out));
    assert_eq!(r.unwrap()["grade"]["passed"], false);

    // A rubric of the forger's own, sealed with the facts, is refused.
    let own_rubric = serde_json::json!({"expected": [], "pass_mark": 0, "extra_finding_penalty": 0, "time_limit": null});
    f.refused(
        &f.bundle(WRONG, |x| x["exercise"] = own_rubric, |_| {}),
        "unknown field `exercise`",
    );
    // So is a scenario of their own (its expected findings are the wrong answer).
    let own = sandbox::scenario::find_bundled("packet-loss")
        .unwrap()
        .text
        .replace(
            "link: {from: payments, to: ledger}",
            "link: {from: edge, to: checkout}",
        );
    let own_sha = sandbox::cert::sha256_hex(own.as_bytes());
    f.refused(
        &f.bundle(
            WRONG,
            |x| x["scenario_sha256"] = own_sha.clone().into(),
            |b| b["scenario_sha256"] = own_sha.clone().into(),
        ),
        "the bundled `packet-loss` is a different file",
    );
    // A draw the seed does not give (the loss the wrong answer names) is refused, and so is
    // one of another parameter.
    f.refused(
        &f.bundle(WRONG, |x| x["params"]["loss_pct"] = 50.into(), |_| {}),
        "the sealed draw is not one bundled:packet-loss can produce",
    );
    f.refused(
        &f.bundle(WRONG, |x| x["params"]["delay_ms"] = 5.into(), |_| {}),
        "the sealed draw",
    );
    // Facts from another candidate's lab, or a bundle that names another scenario.
    f.refused(
        &f.bundle(&right, |_| {}, |b| b["candidate"] = "mallory".into()),
        "differ from what its lab sealed",
    );
    f.refused(
        &f.bundle(&right, |_| {}, |b| b["scenario_sha256"] = "00".into()),
        "differ from what its lab sealed",
    );

    // Hints: their costs are the scenario's, whatever the bundle says; an unknown hint is
    // refused; stripped hints cannot be detected offline and are marked self-reported.
    let (_, r) = f.grade(&f.bundle(
        &right,
        |_| {},
        |b| b["hints"] = serde_json::json!([{"index": 0, "cost": 0}, {"index": 1, "cost": 0}]),
    ));
    let r = r.unwrap();
    assert_eq!(r["grade"]["hint_cost"], 25, "{r}");
    assert_eq!(r["self_reported"]["hints"], serde_json::json!([0, 1]));
    f.refused(
        &f.bundle(
            &right,
            |_| {},
            |b| b["hints"] = serde_json::json!([{"index": 9, "cost": 0}]),
        ),
        "it lists hint 10 but the scenario has 3",
    );

    // Times: a backdated submission is graded on the times reported, and marked so; one
    // before its lab was ready is refused.
    let (_, r) = f.grade(&f.bundle(&right, |_| {}, |b| b["submitted_ms"] = 1_000_001.into()));
    let r = r.unwrap();
    assert_eq!(r["self_reported"]["submitted_ms"], 1_000_001);
    assert_eq!(r["self_reported"]["lab_ready_ms"], 1_000_000);
    f.refused(
        &f.bundle(&right, |_| {}, |b| b["submitted_ms"] = 5.into()),
        "submitted before its lab was ready",
    );

    // Evidence made up for a wrong answer earns no pass; the runs are marked self-reported.
    let run = serde_json::json!({"ts_ms": 1_100_000, "probe": "tcp-retrans", "target": null,
        "instances": ["payments-0", "ledger-0", "edge-0", "checkout-0"], "seconds": 5.0,
        "summary": {"flows": [{"from": "edge-0", "to": "checkout-0", "segments": 90},
                              {"from": "payments-0", "to": "ledger-0", "segments": 90}]}});
    let (_, r) = f.grade(&f.bundle(WRONG, |_| {}, |b| b["evidence"] = serde_json::json!([run])));
    let r = r.unwrap();
    assert_eq!(r["grade"]["passed"], false, "{r}");
    assert_eq!(r["self_reported"]["evidence_runs"], 1);
}

#[test]
fn two_results_for_one_candidate_and_lab_never_overwrite_each_other() {
    let f = Forger::new();
    let first = f.bundle(&f.right(), |_| {}, |_| {});
    let second = f.bundle(WRONG, |_| {}, |_| {});
    let results = f.dir.path().join("same");
    let grade = |bundles: &[&std::path::Path]| {
        sandbox()
            .arg("grade")
            .args(bundles)
            .arg("--key")
            .arg(&f.secret)
            .arg("--out")
            .arg(&results)
            .output()
            .unwrap()
    };
    let out = grade(&[&first, &second]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("already exists; results are never written over"),
        "{t}"
    );
    let only = results.join("result-alice-k3f9q.json");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&only).unwrap()).unwrap();
    assert_eq!(kept["grade"]["passed"], true, "the first result stands");
    let out = grade(&[&second]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(&only).unwrap()).unwrap();
    assert_eq!(again, kept);
}

#[test]
fn grade_output_is_safe_for_spreadsheets_and_terminals() {
    let f = Forger::new();
    let right = f.right();
    let names = [
        "=HYPERLINK(\"http://x\")",
        "+1",
        "-2+3",
        "@SUM(A1)",
        "\tx",
        "\u{1b}[2J\u{1b}]0;pwned\u{7}",
    ];
    let bundles: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let lab = format!("lab{i}");
            f.bundle(
                &right,
                |x| {
                    x["candidate"] = (*name).into();
                    x["lab_id"] = lab.clone().into();
                },
                |b| {
                    b["candidate"] = (*name).into();
                    b["lab_id"] = lab.clone().into();
                },
            )
        })
        .collect();
    let csv = f.dir.path().join("grades.csv");
    let out = sandbox()
        .arg("grade")
        .args(&bundles)
        .arg("--key")
        .arg(&f.secret)
        .arg("--out")
        .arg(f.dir.path().join("results"))
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        !t.contains('\u{1b}') && !t.contains('\u{7}') && t.contains("?[2J?]0;pwned?"),
        "escape sequences are shown, not run: {t}"
    );
    let cells: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.trim_start_matches('"').to_string())
        .collect();
    assert_eq!(cells.len(), names.len());
    for (cell, name) in cells.iter().zip(names) {
        if name.starts_with(['=', '+', '-', '@', '\t']) {
            assert!(
                cell.starts_with('\''),
                "`{name}` reaches the spreadsheet as `{cell}`"
            );
        }
    }
    let out = sandbox()
        .arg("grade")
        .args(&bundles[..1])
        .arg("--key")
        .arg(&f.secret)
        .arg("--out")
        .arg(f.dir.path().join("more"))
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an existing CSV is not written over"
    );
    assert!(
        text(&out).contains("grades.csv: already exists"),
        "{}",
        text(&out)
    );
}

#[test]
fn escape_sequences_in_a_scenario_never_reach_the_terminal() {
    if !root_or_skip("escape_sequences_in_a_scenario_never_reach_the_terminal") {
        return;
    }
    let _g = serial();
    let text_of = sandbox::scenario::find_bundled("packet-loss")
        .unwrap()
        .text
        .replace("start_after: 20s", "start_after: 1s")
        .replace(
            "title: \"INC-2291 · Checkout latency spikes (sev-3)\"",
            "title: \"INC-2291 \\e]0;pwned\\a\\e[2J spikes\"",
        )
        .replace(
            "- text: \"Only one hop",
            "- text: \"\\e[31m\\x9b2JOnly one hop",
        );
    assert!(text_of.contains("\\e[31m"));
    let file = write_temp("esc.yaml", &text_of);
    let out = sandbox()
        .args(["run", file.as_str(), "--detach", "--seed", "5"])
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let id = shown
        .lines()
        .find_map(|l| {
            l.strip_prefix("Lab ")
                .and_then(|r| r.split_whitespace().next())
        })
        .unwrap()
        .to_string();
    let lab = Lab::adopt(&id);
    let clean = |what: &str, out: &str| {
        assert!(
            !out.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{what} printed a control character: {out:?}"
        );
    };
    clean("run", &shown);
    assert!(shown.contains("INC-2291 ?]0;pwned??[2J spikes"), "{shown}");
    lab.wait_fault("lossy-ledger", "active", Duration::from_secs(10));
    run_probe(&lab, "tcp-retrans");
    for _ in 0..3 {
        let out = text(&sandbox().args(["hint", "--lab", &id]).output().unwrap());
        clean("hint", &out);
    }
    let out = text(
        &sandbox()
            .args(["status", &id, "--reveal"])
            .output()
            .unwrap(),
    );
    clean("status", &out);
    let out = submit(
        &lab,
        "findings:\n  - root_cause: \"\\e[2Jpacket-loss\"\n",
        &[],
    );
    clean("submit", &text(&out));
    assert_eq!(out.status.code(), Some(2));
}
