//! Grading throughput: 1,000 submissions against the `packet-loss` exercise.
//!
//!     cargo bench -p sandbox --bench grading
//!
//! Reports (1) the grader alone on 1,000 in-memory submissions, and (2) `sandbox grade` end to
//! end on 1,000 certification bundles: reading each, unsealing its facts with the
//! instructor's key, rebuilding the rubric from the scenario and the sealed seed, grading,
//! signing and writing a result, plus the table and CSV. Target:
//! under 1 s for 1,000.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use grader::evidence::ProbeRun;
use grader::findings::{Finding, Findings, Link, Location};
use grader::score::{HintUse, Submission, grade};
use sandbox::cert::{self, Bundle, InstructorKey, SealedFacts};
use sandbox::plan::Plan;
use sandbox::scenario::Source;

const N: usize = 1000;

fn submission(i: usize) -> Submission {
    let (cause, from, to) = match i % 4 {
        0 => ("packet-loss", "payments", "ledger"),
        1 => ("packet-loss", "edge", "checkout"),
        2 => ("corruption", "payments", "ledger"),
        _ => ("added-latency", "ledger-0", "payments"),
    };
    let finding = Finding {
        root_cause: cause.into(),
        location: Location {
            link: Some(Link {
                from: from.into(),
                to: to.into(),
            }),
            ..Default::default()
        },
        magnitude: BTreeMap::from([("percent".to_string(), serde_json::json!(5 + i % 15))]),
        evidence: format!("candidate {i} saw retransmissions"),
        notes: "x".repeat(i % 200),
        attachments: vec![],
    };
    let run = ProbeRun {
        ts_ms: 1_000 + i as u64,
        probe: "tcp-retrans".into(),
        target: None,
        instances: vec!["payments-0".into(), "ledger-0".into()],
        seconds: 5.0,
        summary: serde_json::json!({"flows": [{"from": "payments-0", "to": "ledger-0", "segments": 40 + i % 9}, {"from": "edge-0", "to": "checkout-0", "segments": 0}]}),
    };
    Submission {
        findings: Findings {
            findings: vec![finding],
        },
        evidence: vec![run; 1 + i % 5],
        hints: (0..i % 3).map(|h| HintUse { index: h, cost: 10 }).collect(),
        time_taken: Some(std::time::Duration::from_secs(600 + i as u64)),
    }
}

fn main() {
    let source = Source::resolve("packet-loss").unwrap();
    let scenario = source.load().unwrap();
    let plan = Plan::build(&scenario, 1).unwrap();
    let subs: Vec<Submission> = (0..N).map(submission).collect();

    let t = Instant::now();
    let mut passed = 0;
    for s in &subs {
        passed += usize::from(grade(&plan.exercise, s).passed);
    }
    let lib = t.elapsed();

    let dir = tempfile::tempdir().unwrap();
    let key = InstructorKey::generate();
    let key_path = dir.path().join("instructor");
    let (secret, _) = cert::generate(&key_path).unwrap();
    let key = InstructorKey::load(&secret).unwrap_or(key);
    let bundles = dir.path().join("bundles");
    std::fs::create_dir_all(&bundles).unwrap();
    let scenario_sha256 = cert::sha256_hex(source.text.as_bytes());
    for (i, s) in subs.iter().enumerate() {
        let drawn = Plan::build(&scenario, i as u64).unwrap();
        let facts = SealedFacts {
            candidate: format!("c{i:04}"),
            scenario_id: "packet-loss".into(),
            lab_id: format!("l{i:04}"),
            scenario_sha256: scenario_sha256.clone(),
            seed: i as u64,
            params: drawn
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
            faults: vec![],
            ready_ms: 0,
        };
        let b = Bundle {
            format: cert::BUNDLE_FORMAT.into(),
            candidate: facts.candidate.clone(),
            scenario_id: facts.scenario_id.clone(),
            lab_id: facts.lab_id.clone(),
            scenario_sha256: scenario_sha256.clone(),
            submitted_ms: 600_000,
            findings: s.findings.clone(),
            evidence: s.evidence.clone(),
            hints: s
                .hints
                .iter()
                .filter(|h| h.index < drawn.hints.len())
                .cloned()
                .collect(),
            attachments: BTreeMap::new(),
            sealed: cert::seal(&key.public(), &facts).unwrap(),
        };
        std::fs::write(
            bundles.join(format!("b{i:04}.json")),
            serde_json::to_vec(&b).unwrap(),
        )
        .unwrap();
    }
    let files: Vec<String> = (0..N)
        .map(|i| bundles.join(format!("b{i:04}.json")).display().to_string())
        .collect();
    let out_dir = dir.path().join("results");
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .arg("grade")
        .args(&files)
        .args([
            "--key",
            secret.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--csv",
        ])
        .arg(dir.path().join("grades.csv"))
        .output()
        .unwrap();
    let cli = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), N);

    println!("| measure ({N} submissions) | time | per submission |");
    println!("|---|---|---|");
    println!(
        "| grader library: grade() | {:.1} ms | {:.1} µs |",
        lib.as_secs_f64() * 1e3,
        lib.as_secs_f64() * 1e6 / N as f64
    );
    println!(
        "| `sandbox grade` on bundles: read, unseal, rebuild the rubric, grade, sign, write | {:.0} ms | {:.0} µs |",
        cli.as_secs_f64() * 1e3,
        cli.as_secs_f64() * 1e6 / N as f64
    );
    println!("({passed} of {N} passed)");
}
