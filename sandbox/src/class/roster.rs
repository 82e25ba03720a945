//! The roster: a CSV file with a header row and a `name` column (other columns, such as an
//! email address, are the instructor's own and ignored).

use std::collections::HashSet;
use std::path::Path;

/// A class this size is several machines' worth of labs; a larger roster is a mistake.
pub const MAX_LEARNERS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learner {
    pub name: String,
}

/// A roster problem, located in the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct RosterError {
    pub path: String,
    pub line: u64,
    pub message: String,
}

/// A learner's name is how the dashboard, the results and the lab's files name them.
fn check_learner(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "field `name`: `{name}` is not a learner name: expected 1–64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        ))
    }
}

pub fn read_roster(path: &Path) -> Result<Vec<Learner>, RosterError> {
    let shown = path.display().to_string();
    let at = |line: u64, message: String| RosterError {
        path: shown.clone(),
        line,
        message,
    };
    let bytes = crate::sys::capped::read_named(path, 1 << 20).map_err(|e| at(1, e.to_string()))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .map_err(|e| at(1, format!("not CSV: {e}")))?
        .clone();
    let Some(column) = headers.iter().position(|h| h.eq_ignore_ascii_case("name")) else {
        return Err(at(
            1,
            format!(
                "the header row has no `name` column (it has: {}); expected a header such as `name,email`",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let mut seen = HashSet::new();
    let mut learners = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(1, |p| p.line());
            at(line, format!("not CSV: {e}"))
        })?;
        let line = record.position().map_or(1, |p| p.line());
        let name = record.get(column).unwrap_or("").to_string();
        check_learner(&name).map_err(|m| at(line, m))?;
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(at(
                line,
                format!(
                    "field `name`: `{name}` is listed twice; every learner needs their own name"
                ),
            ));
        }
        learners.push(Learner { name });
        if learners.len() > MAX_LEARNERS {
            return Err(at(
                line,
                format!("more than {MAX_LEARNERS} learners; split the class"),
            ));
        }
    }
    if learners.is_empty() {
        return Err(at(
            1,
            "no learners: expected a row per learner after the header".into(),
        ));
    }
    Ok(learners)
}
