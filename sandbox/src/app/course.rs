//! The course commands: checking course files and listing the bundled courses.

use super::AppError;
use crate::course;
use crate::report;
use crate::term::safe;

/// `sandbox course check`: validates each course and the scenarios it names, and shows each
/// valid one's modules (a table, or with `json` one JSON array of the valid courses); reports
/// every problem of every file before failing.
pub fn course_check(args: &[String], json: bool, color: bool) -> Result<(), AppError> {
    let mut failed = 0;
    let mut valid = Vec::new();
    for arg in args {
        match course::resolve(arg).and_then(course::load) {
            Ok(c) if json => valid.push(course_json(&c)),
            Ok(c) => {
                if !valid.is_empty() {
                    println!();
                }
                print!("{}", safe(&report::course(&c)));
                valid.push(serde_json::Value::String(c.source.name));
            }
            Err(e) => {
                failed += 1;
                eprint!("{}", AppError::from(e).render(color));
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&valid).unwrap_or_default()
        );
    }
    if failed > 0 {
        return Err(AppError::Invalid(format!(
            "{failed} of {} course files are invalid",
            args.len()
        )));
    }
    Ok(())
}

/// A valid course as tools read it: every module with the rules in force (the scenario's pass
/// mark and time limit where the module sets none).
fn course_json(c: &course::Loaded) -> serde_json::Value {
    let modules: Vec<serde_json::Value> = c
        .modules
        .iter()
        .map(|r| {
            let m = &r.module;
            serde_json::json!({
                "id": m.id.as_str(),
                "scenario": m.scenario.as_str(),
                "scenario_id": r.scenario.id(),
                "scenario_source": r.source.name,
                "difficulty": r.scenario.metadata.difficulty,
                "pass_mark": r.pass_mark(),
                "time_limit_s": r.time_limit().map(|t| t.as_secs()),
                "unlock": *m.unlock,
                "opens_at": m.opens_at.as_ref().map(|t| t.to_string()),
                "hints": m.hints,
                "hint_points": r.hint_points(),
            })
        })
        .collect();
    serde_json::json!({
        "id": c.course.metadata.id.as_str(),
        "source": c.source.name,
        "title": c.course.metadata.title,
        "summary": c.course.metadata.summary,
        "mode": *c.course.mode,
        "backends": c.backends(),
        "modules": modules,
    })
}

/// `sandbox course list`: the bundled courses.
pub fn course_list() -> Result<(), AppError> {
    let items: Vec<_> = crate::scenario::bundled_courses()
        .into_iter()
        .map(|b| {
            let source = crate::scenario::Source {
                name: format!("bundled:{}", b.id),
                text: b.text.to_string(),
            };
            (b.id, course::load(source).map_err(|e| e.to_string()))
        })
        .collect();
    println!("{}", safe(&report::course_list(&items)));
    Ok(())
}
