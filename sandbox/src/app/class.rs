//! The class commands and `sandbox serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::AppError;
use crate::class::{self, ClassError};
use crate::report;
use crate::scenario::BackendKind;
use crate::term::safe;

impl From<ClassError> for AppError {
    fn from(e: ClassError) -> AppError {
        match e {
            ClassError::Course(e) => AppError::Course(e),
            e @ (ClassError::Roster(_)
            | ClassError::Exists(..)
            | ClassError::BadName(_)
            | ClassError::Backend { .. }
            | ClassError::NotFound(_)
            | ClassError::NoLearner(_)) => AppError::Invalid(e.to_string()),
            e => AppError::Failed(e.to_string()),
        }
    }
}

pub struct ClassCreateOptions {
    pub course: String,
    pub roster: PathBuf,
    pub name: Option<String>,
    pub backend: BackendKind,
    /// The address learners reach the server at, for their links.
    pub url: String,
    /// Where the learners' links are written (CSV) instead of the terminal.
    pub links: Option<PathBuf>,
}

/// `sandbox class create`: the class, and each learner's link, shown once.
pub fn class_create(o: ClassCreateOptions) -> Result<(), AppError> {
    let created = class::create(&o.course, &o.roster, o.name.as_deref(), o.backend)?;
    let url = o.url.trim_end_matches('/');
    let c = &created.class;
    println!(
        "Class {} is created: course {} ({}), {} learners, labs on {}.",
        c.name,
        c.course_id,
        c.mode,
        c.learners.len(),
        c.backend
    );
    println!(
        "Serve it with `sudo sandbox serve {}`; results are kept in {}.",
        c.name,
        created.dir.display()
    );
    println!(
        "Certification results verify with `sandbox grade --verify <result> {}`.",
        created.public_key.display()
    );
    println!(
        "\nThe instructor's dashboard (keep it secret):\n  {url}/i/{}",
        created.instructor_token
    );
    let rows: Vec<Vec<String>> = created
        .tokens
        .iter()
        .map(|(name, token)| vec![name.clone(), format!("{url}/l/{token}")])
        .collect();
    match &o.links {
        Some(path) => {
            let mut csv = String::from("name,link\n");
            for r in &rows {
                csv.push_str(&format!(
                    "{},{}\n",
                    report::csv_cell(&r[0]),
                    report::csv_cell(&r[1])
                ));
            }
            write_private(path, csv.as_bytes())?;
            println!(
                "\nEach learner's link is in {} (one per learner; each is their password).",
                path.display()
            );
        }
        None => {
            println!("\nEach learner's link (one per learner; each is their password):");
            println!("{}", safe(&report::grid(&["LEARNER", "LINK"], rows)));
        }
    }
    Ok(())
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), AppError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AppError::Failed(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| AppError::Failed(format!("{}: {e}", path.display())))
}

/// `sandbox class list`.
pub fn class_list() -> Result<(), AppError> {
    let classes = class::list();
    if classes.is_empty() {
        println!("No classes (create one with `sandbox class create <course> --roster <file>`).");
        return Ok(());
    }
    let rows = classes.iter().map(|c| {
        vec![
            c.name.clone(),
            c.course_id.clone(),
            c.mode.to_string(),
            c.backend.to_string(),
            c.learners.len().to_string(),
        ]
    });
    println!(
        "{}",
        safe(&report::grid(
            &["CLASS", "COURSE", "MODE", "BACKEND", "LEARNERS"],
            rows
        ))
    );
    Ok(())
}

/// `sandbox class status`: learners × modules, or the same as JSON (what the dashboard reads).
pub fn class_status(name: &str, json: bool) -> Result<(), AppError> {
    let (dir, c) = class::load(name)?;
    let course = c.loaded_course()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&class::status_json(&dir, &c, &course))
                .unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{}",
        safe(&report::class_table(&class::table(&dir, &c, &course)))
    );
    Ok(())
}

/// `sandbox class revoke`: the learner's link stops working at once, served or not.
pub fn class_revoke(name: &str, learner: &str) -> Result<(), AppError> {
    let (dir, mut c) = class::load(name)?;
    c.revoke(learner)?;
    class::save(&dir, &c)?;
    println!("{learner}'s link no longer works in class {name}.");
    Ok(())
}

/// `sandbox serve`.
pub fn serve(
    name: &str,
    listen: SocketAddr,
    ready_timeout: Duration,
    idle_stop: Duration,
    tls: Option<(PathBuf, PathBuf)>,
) -> Result<(), AppError> {
    super::require_root("serve")?;
    crate::app::serve::serve(crate::app::serve::Options {
        class: name.to_string(),
        listen,
        ready_timeout,
        idle_stop,
        tls,
    })
    .map_err(|e| match e {
        crate::app::serve::ServeError::Class(e) => e.into(),
        e @ crate::app::serve::ServeError::Tls(_) => AppError::Invalid(e.to_string()),
        e => AppError::Failed(e.to_string()),
    })
}
