//! A lab as an exercise: the hints a learner can ask for (and has asked for), the findings they
//! hand in, the evidence their probe runs left, and what that is graded against.
//!
//! Files in the lab directory: `private/exercise.json` (every hint, and in practice mode what is
//! graded; readable by root only, so that a learner's user cannot read hints not yet paid for
//! or the answers), `private/grade.json` (the last grade), `hints.jsonl` (which hints were
//! shown and their cost, no text), `evidence.jsonl` (the probes' journal) and, in
//! certification mode, `sealed.age` (what was drawn, readable only with the instructor's key).

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::lab::{LabDir, now_ms};
use crate::plan::{Hint, Plan};
use crate::sys::capped;
use crate::yaml;
use grader::evidence::ProbeRun;
use grader::findings::Findings;
use grader::score::{Exercise, HintUse, Submission};

#[derive(Debug, thiserror::Error)]
pub enum ExerciseError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {field}{message}")]
    Findings {
        path: String,
        line: u32,
        column: u32,
        field: String,
        message: String,
    },
    /// Problems found after parsing, one a line, each with the file (and where known the line
    /// and column) in front.
    #[error("{0}")]
    Lint(String),
    #[error("lab {0} has no exercise file; it was started by an older sandbox")]
    Missing(String),
}

/// `exercise.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabExercise {
    pub hints: Vec<Hint>,
    /// What findings are graded against; absent in certification mode, where it is sealed.
    pub grading: Option<Exercise>,
    /// The candidate, in certification mode.
    pub candidate: Option<String>,
    /// In certification mode, SHA-256 of the scenario file the lab runs; the bundle records it.
    #[serde(default)]
    pub scenario_sha256: Option<String>,
}

impl LabExercise {
    pub fn of(plan: &Plan, candidate: Option<&str>) -> LabExercise {
        LabExercise {
            hints: plan.hints.clone(),
            grading: candidate.is_none().then(|| plan.exercise.clone()),
            candidate: candidate.map(str::to_string),
            scenario_sha256: None,
        }
    }
}

fn file(dir: &LabDir, name: &str) -> PathBuf {
    dir.path.join(name)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExerciseError + '_ {
    move |source| ExerciseError::Io {
        path: path.display().to_string(),
        source,
    }
}

const EXERCISE: &str = "exercise.json";

pub fn write(dir: &LabDir, ex: &LabExercise) -> Result<(), ExerciseError> {
    let path = dir.private_file(EXERCISE);
    let json = serde_json::to_vec_pretty(ex).map_err(|e| ExerciseError::Io {
        path: path.display().to_string(),
        source: e.into(),
    })?;
    dir.write_private(EXERCISE, &json).map_err(io(&path))
}

/// The whole exercise, for the hint and grading logic only: it holds every hint and the
/// answers. Needs root.
pub fn read(dir: &LabDir) -> Result<LabExercise, ExerciseError> {
    let path = dir.private_file(EXERCISE);
    let text = capped::read_to_string(&path, capped::JOURNAL).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ExerciseError::Missing(dir.id.to_string()),
        _ => ExerciseError::Io {
            path: path.display().to_string(),
            source: e,
        },
    })?;
    serde_json::from_str(&text).map_err(|e| ExerciseError::Io {
        path: path.display().to_string(),
        source: e.into(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shown {
    index: usize,
    cost: u32,
    ts_ms: u64,
}

/// Keeps the grade of a practice lab where only root reads it: it names the expected causes.
pub fn write_grade(dir: &LabDir, grade: &grader::score::Grade) -> Result<(), ExerciseError> {
    let path = dir.private_file("grade.json");
    let json = serde_json::to_vec_pretty(grade).map_err(|e| ExerciseError::Io {
        path: path.display().to_string(),
        source: e.into(),
    })?;
    dir.write_private("grade.json", &json).map_err(io(&path))
}

/// Hints shown so far, in order.
pub fn hints_used(dir: &LabDir) -> Vec<HintUse> {
    capped::read_to_string(&file(dir, "hints.jsonl"), capped::JOURNAL)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Shown>(l).ok())
        .map(|s| HintUse {
            index: s.index,
            cost: s.cost,
        })
        .collect()
}

/// The probe runs recorded in the lab's evidence journal.
pub fn evidence(dir: &LabDir) -> Vec<ProbeRun> {
    capped::read_to_string(&dir.evidence(), capped::JOURNAL)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether a hint's condition holds for the probes run so far.
fn applies(h: &Hint, ran: &[ProbeRun]) -> bool {
    let Some(w) = &h.when else { return true };
    let has = |p: &String| ran.iter().any(|r| &r.probe == p);
    w.ran.iter().all(has) && !w.not_ran.iter().any(has)
}

/// The next hint that applies and has not been shown, recorded as shown (its cost counts from
/// now on). `None` when no hint is left that fits.
pub fn next_hint(dir: &LabDir) -> Result<Option<(usize, Hint)>, ExerciseError> {
    let ex = read(dir)?;
    let used: Vec<usize> = hints_used(dir).iter().map(|h| h.index).collect();
    let ran = evidence(dir);
    let Some((index, hint)) = ex
        .hints
        .iter()
        .enumerate()
        .find(|(i, h)| !used.contains(i) && applies(h, &ran))
    else {
        return Ok(None);
    };
    let line = serde_json::to_string(&Shown {
        index,
        cost: hint.cost,
        ts_ms: now_ms(),
    })
    .unwrap_or_default();
    let path = file(dir, "hints.jsonl");
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    writeln!(f, "{line}").map_err(io(&path))?;
    Ok(Some((index, hint.clone())))
}

/// The largest findings file accepted; a findings file is a page of YAML.
pub const MAX_FINDINGS_BYTES: u64 = 256 * 1024;

/// Reads a learner's findings: strict YAML, root causes from the taxonomy, at most
/// [`MAX_FINDINGS_BYTES`] (counted while reading). Learner text is data, never rendered as a
/// template. Attachments are checked against a lab by [`check_attachments`].
pub fn read_findings(path: &Path) -> Result<Findings, ExerciseError> {
    let name = path.display().to_string();
    let at_start = |message: String| ExerciseError::Findings {
        path: name.clone(),
        line: 1,
        column: 1,
        field: String::new(),
        message,
    };
    let bytes = capped::read_named(path, MAX_FINDINGS_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::IsADirectory => at_start("a directory, not a findings file".into()),
        std::io::ErrorKind::FileTooLarge => at_start(format!(
            "the file is larger than {MAX_FINDINGS_BYTES} bytes; a findings file may be at most {MAX_FINDINGS_BYTES}"
        )),
        _ => io(path)(e),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() as u32 + 1;
        let column = valid.iter().rev().take_while(|b| **b != b'\n').count() as u32 + 1;
        ExerciseError::Findings {
            path: name.clone(),
            line,
            column,
            field: String::new(),
            message: "not UTF-8 text".into(),
        }
    })?;
    parse_findings(&name, &text)
}

/// Findings from text a learner handed in (a file's, or a form's), `name` naming it in
/// errors: strict YAML, root causes from the taxonomy, at most [`MAX_FINDINGS_BYTES`].
pub fn parse_findings(name: &str, text: &str) -> Result<Findings, ExerciseError> {
    let name = name.to_string();
    if text.len() as u64 > MAX_FINDINGS_BYTES {
        return Err(ExerciseError::Findings {
            path: name,
            line: 1,
            column: 1,
            field: String::new(),
            message: format!(
                "larger than {MAX_FINDINGS_BYTES} bytes; findings may be at most {MAX_FINDINGS_BYTES}"
            ),
        });
    }
    let text = text.to_string();
    let findings: Findings = yaml::from_str(
        &text,
        yaml::Limits {
            max_bytes: MAX_FINDINGS_BYTES as usize,
        },
    )
    .map_err(|e| ExerciseError::Findings {
        path: name.clone(),
        line: e.pos.line,
        column: e.pos.column,
        field: if e.path.is_empty() {
            String::new()
        } else {
            format!("{}: ", e.path)
        },
        message: e.message,
    })?;
    let problems = grader::score::lint(&findings);
    if problems.is_empty() {
        return Ok(findings);
    }
    let positions: Option<Positions> = yaml::from_str(&text, Default::default()).ok();
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let field = p.split(": ").next().unwrap_or("");
            match positions.as_ref().and_then(|at| at.of(field)) {
                Some(pos) => format!("{name}:{}:{}: {p}", pos.line, pos.column),
                None => format!("{name}: {p}"),
            }
        })
        .collect();
    Err(ExerciseError::Lint(lines.join("\n")))
}

/// Where the fields lint checks were written in a findings file, to point its problems there.
#[derive(Deserialize)]
struct Positions {
    findings: yaml::Spanned<Vec<FindingPositions>>,
}

#[derive(Deserialize)]
struct FindingPositions {
    root_cause: Option<yaml::Spanned<IgnoredAny>>,
    #[serde(rename = "where")]
    location: Option<LocationPositions>,
    magnitude: Option<BTreeMap<String, yaml::Spanned<IgnoredAny>>>,
}

#[derive(Deserialize)]
struct LocationPositions {
    service: Option<yaml::Spanned<IgnoredAny>>,
    direction: Option<yaml::Spanned<IgnoredAny>>,
}

impl Positions {
    /// Where `field` (a path as lint names it: `findings[0].root_cause`) was written.
    fn of(&self, field: &str) -> Option<yaml::Pos> {
        if field == "findings" {
            return Some(self.findings.pos);
        }
        let (i, rest) = field.strip_prefix("findings[")?.split_once("].")?;
        let f = self.findings.value.get(i.parse::<usize>().ok()?)?;
        let at = match rest {
            "root_cause" => f.root_cause.as_ref(),
            "where.service" => f.location.as_ref()?.service.as_ref(),
            "where.direction" => f.location.as_ref()?.direction.as_ref(),
            m => f.magnitude.as_ref()?.get(m.strip_prefix("magnitude.")?),
        };
        at.map(|s| s.pos)
    }
}

/// Checks that every attachment of `findings` is a file inside the lab directory.
pub fn check_attachments(
    path: &Path,
    findings: &Findings,
    lab: &LabDir,
) -> Result<(), ExerciseError> {
    let mut problems = Vec::new();
    for (i, f) in findings.findings.iter().enumerate() {
        for (j, a) in f.attachments.iter().enumerate() {
            if let Err(why) = attachment_path(lab, a) {
                problems.push(format!("findings[{i}].attachments[{j}]: {why}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let path = path.display();
        let lines: Vec<String> = problems.iter().map(|p| format!("{path}: {p}")).collect();
        Err(ExerciseError::Lint(lines.join("\n")))
    }
}

/// An attachment's file, which must lie inside the lab directory (also after following
/// symbolic links).
pub fn attachment_path(lab: &LabDir, rel: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    let outside =
        || format!("`{rel}` is outside the lab directory; attach files the probes wrote there");
    let mut depth = 0i32;
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => depth -= 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
        if depth < 0 {
            return Err(outside());
        }
    }
    let root = lab
        .path
        .canonicalize()
        .map_err(|e| format!("the lab directory: {e}"))?;
    let full = root
        .join(rel)
        .canonicalize()
        .map_err(|_| format!("`{rel}` does not exist in the lab directory"))?;
    if !full.starts_with(&root) {
        return Err(outside());
    }
    if !full.is_file() {
        return Err(format!("`{rel}` is not a file"));
    }
    Ok(full)
}

/// What the learner hands in for `findings`, with the lab's journal and hints.
pub fn submission(
    dir: &LabDir,
    findings: Findings,
    time_taken: Option<std::time::Duration>,
) -> Submission {
    Submission {
        findings,
        evidence: evidence(dir),
        hints: hints_used(dir),
        time_taken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::HintWhen;

    fn run(probe: &str) -> ProbeRun {
        ProbeRun {
            ts_ms: 0,
            probe: probe.into(),
            target: None,
            instances: vec![],
            seconds: 1.0,
            summary: serde_json::Value::Null,
        }
    }

    #[test]
    fn hints_follow_what_the_learner_did() {
        let h = Hint {
            text: "look at TCP".into(),
            cost: 5,
            when: Some(HintWhen {
                ran: vec![],
                not_ran: vec!["tcp-retrans".into()],
            }),
        };
        assert!(applies(&h, &[run("tcp-rtt")]));
        assert!(!applies(&h, &[run("tcp-retrans")]));
        let after = Hint {
            when: Some(HintWhen {
                ran: vec!["cpu".into()],
                not_ran: vec![],
            }),
            ..h
        };
        assert!(!applies(&after, &[]));
        assert!(applies(&after, &[run("cpu")]));
    }
}
