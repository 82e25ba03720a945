//! The course commands: checking course files and listing the bundled courses.

use super::AppError;
use crate::course;
use crate::report;
use crate::term::safe;

/// `sandbox course check`: validates each course and the scenarios it names, and shows each
/// valid one's modules; reports every problem of every file before failing.
pub fn course_check(args: &[String], color: bool) -> Result<(), AppError> {
    let mut failed = 0;
    for (n, arg) in args.iter().enumerate() {
        match course::resolve(arg).and_then(course::load) {
            Ok(c) => {
                if n > 0 {
                    println!();
                }
                print!("{}", safe(&report::course(&c)));
            }
            Err(e) => {
                failed += 1;
                eprint!("{}", AppError::from(e).render(color));
            }
        }
    }
    if failed > 0 {
        return Err(AppError::Invalid(format!(
            "{failed} of {} course files are invalid",
            args.len()
        )));
    }
    Ok(())
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
