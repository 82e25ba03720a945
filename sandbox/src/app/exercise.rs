//! The exercise commands: hints, the findings template, submitting, and the instructor's side
//! of certification (keys, grading bundles, verifying signed results).

use std::path::{Path, PathBuf};

use base64::Engine;

use super::AppError;
use crate::cert::{self, Bundle, CertError, InstructorKey, InstructorPublic, SignedResult};
use crate::exercise::{self, ExerciseError};
use crate::lab::{self, LabDir, now_ms};
use crate::report;
use crate::sys::capped;
use crate::term::safe;

/// Why the hint and grading commands need root.
const SECRET: &str = "hints not yet shown and the answers are readable by root only";

fn failed(e: impl std::fmt::Display) -> AppError {
    AppError::Failed(e.to_string())
}

fn invalid(e: ExerciseError) -> AppError {
    match e {
        e @ (ExerciseError::Findings { .. } | ExerciseError::Lint(_)) => {
            AppError::Invalid(e.to_string())
        }
        e => AppError::Failed(e.to_string()),
    }
}

/// 2 for a file the user gave that cannot be used (a bundle, a key, a signed result, a key
/// prefix, whatever the reason: missing, unreadable, malformed, forged); 1 when sealing fails.
fn cert_error(e: CertError) -> AppError {
    match e {
        CertError::Seal(_) => AppError::Failed(e.to_string()),
        e => AppError::Invalid(e.to_string()),
    }
}

/// `sandbox hint`: the next hint that fits what the learner has done, with its cost.
pub fn hint(lab_id: Option<&str>) -> Result<(), AppError> {
    super::require_root_because("hint", SECRET)?;
    let state = lab::find(lab_id)?;
    let dir = LabDir::new(&state.id);
    match exercise::next_hint(&dir).map_err(invalid)? {
        Some((i, h)) => {
            let cost = if h.cost == 0 {
                "free".to_string()
            } else {
                format!("costs {} points", h.cost)
            };
            println!("Hint {} ({cost}):\n{}", i + 1, safe(h.text.trim_end()));
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
        safe(&report::findings_template(
            state
                .as_ref()
                .map(|s| (s.id.as_str(), s.scenario_id.as_str())),
            &services
        ))
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
    // A findings file that cannot be graded anywhere is reported before looking for a lab.
    let findings =
        exercise::read_findings(&o.file).map_err(|e| AppError::Invalid(e.to_string()))?;
    super::require_root_because("submit", SECRET)?;
    let state = lab::find(o.lab.as_deref())?;
    let dir = LabDir::new(&state.id);
    exercise::check_attachments(&o.file, &findings, &dir).map_err(invalid)?;
    let ex = exercise::read(&dir).map_err(invalid)?;
    if let Some(candidate) = &ex.candidate {
        let Some(sha) = &ex.scenario_sha256 else {
            return Err(failed(
                "this certification lab was started by an older sandbox; its scenario is not recorded",
            ));
        };
        return submit_bundle(&dir, &state, (candidate, sha), findings, o.out);
    }
    let Some(grading) = ex.grading else {
        return Err(failed("this lab has nothing to grade against"));
    };
    let taken = state
        .ready_ms
        .map(|r| std::time::Duration::from_millis(now_ms().saturating_sub(r)));
    let sub = exercise::submission(&dir, findings, taken);
    let grade = grader::score::grade(&grading, &sub);
    exercise::write_grade(&dir, &grade).map_err(invalid)?;
    record_submitted(&dir, Some(&grade));
    let title = format!("{} (lab {})", state.scenario_id, state.id);
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&grade).unwrap_or_default()
        );
    } else if o.junit {
        print!("{}", safe(&report::junit(&title, &grade)));
    } else {
        print!("{}", safe(&report::grade(&title, &grade)));
        if o.reveal {
            println!("\nThe faults were:");
            for e in &grading.expected {
                println!("  {}: {}", safe(&e.id), safe(&e.summary));
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
    (candidate, scenario_sha256): (&str, &str),
    findings: grader::findings::Findings,
    out: Option<PathBuf>,
) -> Result<(), AppError> {
    let bundle = bundle_of(dir, state, (candidate, scenario_sha256), findings)?;
    let path =
        out.unwrap_or_else(|| PathBuf::from(format!("submission-{candidate}-{}.json", state.id)));
    let json = serde_json::to_vec_pretty(&bundle).map_err(failed)?;
    std::fs::write(&path, json).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    record_submitted(dir, None);
    println!(
        "Submitted. Hand {} to your instructor; it is graded with their key.",
        path.display()
    );
    Ok(())
}

/// Journals a submission in the lab's events; the score only where the learner may see it.
pub fn record_submitted(dir: &LabDir, grade: Option<&grader::score::Grade>) {
    let _ = crate::lab::events::record_submission(
        dir,
        &crate::lab::events::Submitted {
            ts_ms: now_ms(),
            passed: grade.map(|g| g.passed),
            score: grade.map(|g| g.score),
        },
    );
}

/// A certification lab's submission: the findings with the lab's journal, hints, attachments
/// and the sealed draw, for the instructor's key to grade.
pub fn bundle_of(
    dir: &LabDir,
    state: &lab::State,
    (candidate, scenario_sha256): (&str, &str),
    findings: grader::findings::Findings,
) -> Result<Bundle, AppError> {
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
    Ok(Bundle {
        format: cert::BUNDLE_FORMAT.into(),
        candidate: candidate.to_string(),
        scenario_id: state.scenario_id.clone(),
        lab_id: state.id.to_string(),
        scenario_sha256: scenario_sha256.to_string(),
        submitted_ms: now_ms(),
        findings,
        evidence: exercise::evidence(dir),
        hints: exercise::hints_used(dir),
        attachments,
        sealed,
    })
}

/// `sandbox keys generate`.
pub fn keys_generate(prefix: &Path) -> Result<(), AppError> {
    let (k, p) = cert::generate(prefix).map_err(cert_error)?;
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
    /// Scenario files labs ran that are not the bundled ones.
    pub scenarios: Vec<PathBuf>,
    pub csv: Option<PathBuf>,
    pub json: bool,
    /// Where signed results are written, one per bundle.
    pub out: PathBuf,
}

/// `sandbox grade`: grades certification bundles with the instructor's key against rubrics
/// rebuilt from their scenarios, writes one signed result per bundle (never over another),
/// and prints a table (and CSV). Exits 2 when any bundle is invalid or refused.
pub fn grade(o: GradeOptions) -> Result<(), AppError> {
    let key = InstructorKey::load(&o.key).map_err(cert_error)?;
    let catalog = cert::Catalog::new(&o.scenarios).map_err(cert_error)?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut invalid = 0;
    for path in &o.bundles {
        match grade_one(&key, &catalog, path, &o.out) {
            Ok(r) => rows.push(r),
            Err(e) => {
                invalid += usize::from(e.exit_code() == 2);
                problems.push(e.to_string());
            }
        }
    }
    let results: Vec<&SignedResult> = rows.iter().collect();
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
    } else if !results.is_empty() {
        print!("{}", safe(&report::grade_batch(&results)));
        println!("\nHints, evidence runs and times are as each candidate's machine reported them.");
        println!("Signed results in {}.", o.out.display());
    }
    if let Some(csv) = &o.csv
        && !results.is_empty()
    {
        write_new(csv, report::grade_csv(&results).as_bytes())?;
    }
    for p in &problems {
        eprintln!("error: {}", safe(p));
    }
    let summary = format!("{} submission(s) could not be graded", problems.len());
    match (problems.is_empty(), invalid > 0) {
        (true, _) => Ok(()),
        (false, true) => Err(AppError::Invalid(summary)),
        (false, false) => Err(AppError::Failed(summary)),
    }
}

/// Writes a new file; an existing one is an error, never overwritten.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), AppError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => failed(format!(
                "{}: already exists; results are never written over (move it away, or grade into another --out)",
                path.display()
            )),
            _ => failed(format!("{}: {e}", path.display())),
        })?;
    f.write_all(bytes)
        .map_err(|e| failed(format!("{}: {e}", path.display())))
}

fn grade_one(
    key: &InstructorKey,
    catalog: &cert::Catalog,
    path: &Path,
    out: &Path,
) -> Result<SignedResult, AppError> {
    let (bundle, bundle_sha256) = Bundle::read(path).map_err(cert_error)?;
    let result = grade_bundle(key, catalog, &bundle, bundle_sha256, path)?;
    std::fs::create_dir_all(out).map_err(|e| failed(format!("{}: {e}", out.display())))?;
    let file = out.join(format!(
        "result-{}-{}.json",
        safe_name(&result.candidate),
        safe_name(&result.lab_id)
    ));
    write_new(
        &file,
        &serde_json::to_vec_pretty(&result).unwrap_or_default(),
    )?;
    Ok(result)
}

/// Grades a bundle (read from `path`, which names it in errors) with the instructor's key
/// and signs the result.
pub fn grade_bundle(
    key: &InstructorKey,
    catalog: &cert::Catalog,
    bundle: &Bundle,
    bundle_sha256: String,
    path: &Path,
) -> Result<SignedResult, AppError> {
    let facts = cert::unseal(key, &bundle.sealed)
        .map_err(|e| AppError::Invalid(format!("{}: {e}", path.display())))?;
    cert::check_facts(bundle, &facts, path).map_err(cert_error)?;
    let (plan, _) = catalog.rubric(path, &facts).map_err(cert_error)?;
    let (grade, self_reported) =
        cert::grade_bundle(bundle, &facts, &plan, path).map_err(cert_error)?;
    Ok(cert::sign(
        key,
        SignedResult {
            format: cert::RESULT_FORMAT.into(),
            candidate: facts.candidate.clone(),
            scenario_id: plan.scenario.id.clone(),
            lab_id: facts.lab_id.clone(),
            scenario_sha256: facts.scenario_sha256.clone(),
            bundle_sha256,
            graded_ms: now_ms(),
            grade,
            self_reported,
            signature: String::new(),
        },
    ))
}

/// A name that is safe as part of a file name.
fn safe_name(s: &str) -> String {
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
    let public = InstructorPublic::load(public).map_err(cert_error)?;
    let r = cert::verify_file(&public, result).map_err(cert_error)?;
    let s = &r.self_reported;
    println!(
        "valid: {} scored {}/{} on {} (lab {}), {}",
        safe(&r.candidate),
        r.grade.score,
        r.grade.max,
        safe(&r.scenario_id),
        safe(&r.lab_id),
        if r.grade.passed {
            "passed"
        } else {
            "not passed"
        }
    );
    println!(
        "self-reported by the candidate's machine: {} hint(s), {} probe run(s), {} from the lab being ready to the submission",
        s.hints.len(),
        s.evidence_runs,
        report::short_duration_ms(s.submitted_ms.saturating_sub(s.lab_ready_ms))
    );
    Ok(())
}
