//! The exercise commands: hints, the findings template, submitting, and the instructor's side
//! of certification (keys, grading bundles, verifying signed results).

use std::path::{Path, PathBuf};

use base64::Engine;

use super::AppError;
use crate::cert::{self, Bundle, InstructorKey, InstructorPublic, SignedResult};
use crate::exercise::{self, ExerciseError};
use crate::lab::{self, LabDir, now_ms};
use crate::report;
use crate::sys::capped;

fn failed(e: impl std::fmt::Display) -> AppError {
    AppError::Failed(e.to_string())
}

fn invalid(e: ExerciseError) -> AppError {
    match e {
        e @ (ExerciseError::Findings { .. } | ExerciseError::Lint { .. }) => {
            AppError::Invalid(e.to_string())
        }
        e => AppError::Failed(e.to_string()),
    }
}

/// `sandbox hint`: the next hint that fits what the learner has done, with its cost.
pub fn hint(lab_id: Option<&str>) -> Result<(), AppError> {
    let state = lab::find(lab_id)?;
    let dir = LabDir::new(&state.id);
    match exercise::next_hint(&dir).map_err(invalid)? {
        Some((i, h)) => {
            let cost = if h.cost == 0 {
                "free".to_string()
            } else {
                format!("costs {} points", h.cost)
            };
            println!("Hint {} ({cost}):\n{}", i + 1, h.text.trim_end());
        }
        None => println!(
            "No more hints for what you have done so far. Try another probe, then ask again."
        ),
    }
    Ok(())
}

/// `sandbox findings template`: a findings file to fill in, with the lab's services and the
/// root causes it can name.
pub fn findings_template(lab_id: Option<&str>) -> Result<(), AppError> {
    let state = lab::find(lab_id).ok();
    let mut services: Vec<String> = state
        .iter()
        .flat_map(|s| s.instances.iter().map(|i| i.service.clone()))
        .collect();
    services.dedup();
    print!(
        "{}",
        report::findings_template(
            state
                .as_ref()
                .map(|s| (s.id.as_str(), s.scenario_id.as_str())),
            &services
        )
    );
    Ok(())
}

pub struct SubmitOptions {
    pub lab: Option<String>,
    pub file: PathBuf,
    pub json: bool,
    pub junit: bool,
    /// Show the expected answers after grading (practice labs only).
    pub reveal: bool,
    /// Where a certification bundle is written.
    pub out: Option<PathBuf>,
}

/// `sandbox submit`: grades a practice lab on the spot, or writes a certification bundle for
/// the instructor.
pub fn submit(o: SubmitOptions) -> Result<(), AppError> {
    let state = lab::find(o.lab.as_deref())?;
    let dir = LabDir::new(&state.id);
    let findings = exercise::read_findings(&o.file, &dir).map_err(invalid)?;
    let ex = exercise::read(&dir).map_err(invalid)?;
    if let Some(candidate) = &ex.candidate {
        return submit_bundle(&dir, &state, candidate, findings, o.out);
    }
    let Some(grading) = ex.grading else {
        return Err(failed("this lab has nothing to grade against"));
    };
    let taken = state
        .ready_ms
        .map(|r| std::time::Duration::from_millis(now_ms().saturating_sub(r)));
    let sub = exercise::submission(&dir, findings, taken);
    let grade = grader::score::grade(&grading, &sub);
    let _ = std::fs::write(
        dir.path.join("grade.json"),
        serde_json::to_vec_pretty(&grade).unwrap_or_default(),
    );
    let title = format!("{} (lab {})", state.scenario_id, state.id);
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&grade).unwrap_or_default()
        );
    } else if o.junit {
        print!("{}", report::junit(&title, &grade));
    } else {
        print!("{}", report::grade(&title, &grade));
        if o.reveal {
            println!("\nThe faults were:");
            for e in &grading.expected {
                println!("  {}: {}", e.id, e.summary);
            }
        }
    }
    if grade.passed {
        Ok(())
    } else {
        Err(AppError::Failed("not passed".into()))
    }
}

fn submit_bundle(
    dir: &LabDir,
    state: &lab::State,
    candidate: &str,
    findings: grader::findings::Findings,
    out: Option<PathBuf>,
) -> Result<(), AppError> {
    let sealed = capped::read_to_string(&dir.path.join("sealed.age"), capped::KEY)
        .map_err(|e| failed(format!("reading the sealed facts: {e}")))?;
    let mut attachments = std::collections::BTreeMap::new();
    for rel in findings.findings.iter().flat_map(|f| &f.attachments) {
        let path = exercise::attachment_path(dir, rel).map_err(AppError::Invalid)?;
        let bytes = capped::read(&path, capped::BUNDLE)
            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
        attachments.insert(
            rel.clone(),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    }
    let bundle = Bundle {
        format: cert::BUNDLE_FORMAT.into(),
        candidate: candidate.to_string(),
        scenario_id: state.scenario_id.clone(),
        lab_id: state.id.to_string(),
        submitted_ms: now_ms(),
        findings,
        evidence: exercise::evidence(dir),
        hints: exercise::hints_used(dir),
        attachments,
        sealed,
    };
    let path =
        out.unwrap_or_else(|| PathBuf::from(format!("submission-{candidate}-{}.json", state.id)));
    let json = serde_json::to_vec_pretty(&bundle).map_err(failed)?;
    std::fs::write(&path, json).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    println!(
        "Submitted. Hand {} to your instructor; it is graded with their key.",
        path.display()
    );
    Ok(())
}

/// `sandbox keys generate`.
pub fn keys_generate(prefix: &Path) -> Result<(), AppError> {
    let (k, p) = cert::generate(prefix).map_err(failed)?;
    println!(
        "Wrote {} (secret: decrypts and signs; keep it) and {} (give it to labs: run --certify … --instructor {}).",
        k.display(),
        p.display(),
        p.display()
    );
    Ok(())
}

pub struct GradeOptions {
    pub bundles: Vec<PathBuf>,
    pub key: PathBuf,
    pub csv: Option<PathBuf>,
    pub json: bool,
    /// Where signed results are written, one per bundle.
    pub out: PathBuf,
}

/// `sandbox grade`: grades certification bundles with the instructor's key, writes one signed
/// result per bundle, and prints a table (and CSV).
pub fn grade(o: GradeOptions) -> Result<(), AppError> {
    let key = InstructorKey::load(&o.key).map_err(|e| AppError::Invalid(e.to_string()))?;
    std::fs::create_dir_all(&o.out).map_err(|e| failed(format!("{}: {e}", o.out.display())))?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for path in &o.bundles {
        match grade_one(&key, path, &o.out) {
            Ok((r, written)) => rows.push((r, written)),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    let results: Vec<&SignedResult> = rows.iter().map(|(r, _)| r).collect();
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
    } else {
        print!("{}", report::grade_batch(&results));
        println!("\nSigned results in {}.", o.out.display());
    }
    if let Some(csv) = &o.csv {
        std::fs::write(csv, report::grade_csv(&results))
            .map_err(|e| failed(format!("{}: {e}", csv.display())))?;
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AppError::Failed(format!(
            "{} submission(s) could not be graded",
            problems.len()
        )))
    }
}

fn grade_one(
    key: &InstructorKey,
    path: &Path,
    out: &Path,
) -> Result<(SignedResult, PathBuf), AppError> {
    let bundle = Bundle::read(path).map_err(failed)?;
    let facts = cert::unseal(key, &bundle.sealed).map_err(failed)?;
    if facts.candidate != bundle.candidate || facts.lab_id != bundle.lab_id {
        return Err(failed(format!(
            "the sealed facts belong to {} (lab {}), not {} (lab {})",
            facts.candidate, facts.lab_id, bundle.candidate, bundle.lab_id
        )));
    }
    let problems = grader::score::lint(&bundle.findings);
    let taken =
        std::time::Duration::from_millis(bundle.submitted_ms.saturating_sub(facts.ready_ms));
    let sub = grader::score::Submission {
        findings: if problems.is_empty() {
            bundle.findings.clone()
        } else {
            Default::default()
        },
        evidence: bundle.evidence.clone(),
        hints: bundle.hints.clone(),
        time_taken: Some(taken),
    };
    let grade = grader::score::grade(&facts.exercise, &sub);
    let result = cert::sign(
        key,
        SignedResult {
            format: cert::RESULT_FORMAT.into(),
            candidate: bundle.candidate.clone(),
            scenario_id: facts.scenario_id.clone(),
            lab_id: facts.lab_id.clone(),
            bundle_sha256: Bundle::digest(path).map_err(failed)?,
            graded_ms: now_ms(),
            grade,
            signature: String::new(),
        },
    );
    let file = out.join(format!(
        "result-{}-{}.json",
        safe(&result.candidate),
        safe(&result.lab_id)
    ));
    std::fs::write(
        &file,
        serde_json::to_vec_pretty(&result).unwrap_or_default(),
    )
    .map_err(|e| failed(format!("{}: {e}", file.display())))?;
    Ok((result, file))
}

/// A name that is safe as part of a file name.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// `sandbox grade --verify`: whether a signed result is exactly as graded.
pub fn verify_result(result: &Path, public: &Path) -> Result<(), AppError> {
    let public = InstructorPublic::load(public).map_err(|e| AppError::Invalid(e.to_string()))?;
    let text = capped::read_to_string(result, capped::SIGNED_RESULT)
        .map_err(|e| failed(format!("{}: {e}", result.display())))?;
    let r: SignedResult = serde_json::from_str(&text).map_err(|e| {
        AppError::Invalid(format!("{}: not a signed result ({e})", result.display()))
    })?;
    if cert::verify(&public, &r) {
        println!(
            "valid: {} scored {}/{} on {} (lab {}), {}",
            r.candidate,
            r.grade.score,
            r.grade.max,
            r.scenario_id,
            r.lab_id,
            if r.grade.passed {
                "passed"
            } else {
                "not passed"
            }
        );
        Ok(())
    } else {
        Err(AppError::Failed(format!(
            "{}: INVALID: the result was changed after it was signed, or another key signed it",
            result.display()
        )))
    }
}
