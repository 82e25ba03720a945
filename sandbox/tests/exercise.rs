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
    assert_eq!(out.status.code(), Some(1));
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
