//! A class: a course taken by a roster of learners, each with a secret access token, and what
//! each learner has done in each module (their lab, hints, submissions, score). `sandbox class`
//! creates and reads classes; `sandbox serve` runs one. A class outlives its server and its labs:
//! its files live under [`root`], written whole (a new file renamed over the old one), so a
//! server killed at any moment leaves either the old record or the new one.

mod roster;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::cert;
use crate::course::{self, Loaded, Mode, Unlock};
use crate::lab::now_ms;
use crate::scenario::BackendKind;

pub use roster::{Learner, RosterError, read_roster};

/// The class record as a file: never the tokens, only their hashes.
const CLASS_FILE: &str = "class.json";
const PROGRESS_DIR: &str = "progress";
/// The class's certification key: it seals each candidate's draw and signs results.
pub const KEY_PREFIX: &str = "instructor";

/// Where classes are kept: they must survive a reboot, unlike labs (`/run`).
pub fn root() -> PathBuf {
    std::env::var_os("SANDBOX_CLASS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/sandbox/classes"))
}

#[derive(Debug, thiserror::Error)]
pub enum ClassError {
    #[error(transparent)]
    Course(#[from] course::CourseError),
    #[error(transparent)]
    Roster(#[from] RosterError),
    #[error(
        "class `{0}` already exists ({1}); pick another --name or delete it with `sandbox class delete {0}`"
    )]
    Exists(String, String),
    #[error("no class named `{0}` (see `sandbox class list`)")]
    NotFound(String),
    #[error(
        "`{0}` is not a class name: expected 1–48 lower-case letters, digits and dashes, starting with a letter"
    )]
    BadName(String),
    #[error("course `{course}` cannot run on {backend}: its modules run on {supported}")]
    Backend {
        course: String,
        backend: BackendKind,
        supported: String,
    },
    #[error("no learner named `{0}` in this class")]
    NoLearner(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Key(#[from] cert::CertError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClassError + '_ {
    move |source| ClassError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A class as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Class {
    pub name: String,
    /// How `course::resolve` finds the course again: a bundled id or an absolute path.
    pub course: String,
    pub course_id: String,
    pub mode: Mode,
    pub backend: BackendKind,
    pub created_ms: u64,
    /// SHA-256 of the instructor's token (hex).
    pub instructor_token_sha256: String,
    pub learners: Vec<LearnerRecord>,
    /// Modules with `unlock: instructor` the instructor has opened, with when.
    #[serde(default)]
    pub opened: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnerRecord {
    pub name: String,
    pub token_sha256: String,
    #[serde(default)]
    pub revoked_ms: Option<u64>,
}

/// What one learner has done in one module.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ModuleProgress {
    /// The lab of the latest start, while it may still run.
    pub lab: Option<String>,
    pub starts: u32,
    pub started_ms: Option<u64>,
    pub hints: u32,
    /// Probe runs through the server (the page or the learner's terminal).
    pub probes: u32,
    pub submissions: u32,
    /// Labs the server took down because the learner had gone quiet.
    pub idle_stops: u32,
    pub submitted_ms: Option<u64>,
    /// The best score so far (practice), or the certification result's.
    pub score: Option<u64>,
    pub max: Option<u64>,
    pub passed: Option<bool>,
}

/// A learner's progress over the course, by module id.
pub type Progress = BTreeMap<String, ModuleProgress>;

/// A fresh secret token and its hash.
fn new_token() -> (String, String) {
    let bytes: [u8; 24] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = cert::sha256_hex(token.as_bytes());
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    cert::sha256_hex(token.as_bytes())
}

fn check_name(name: &str) -> Result<(), ClassError> {
    let ok = (1..=48).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ClassError::BadName(name.to_string()))
    }
}

/// A class just created, with the secrets shown once.
pub struct Created {
    pub class: Class,
    pub dir: PathBuf,
    pub instructor_token: String,
    /// Each learner's name and token, in roster order.
    pub tokens: Vec<(String, String)>,
    /// The public half of the class's certification key, for `sandbox grade --verify`.
    pub public_key: PathBuf,
}

/// Where class `name` lives.
pub fn dir_of(name: &str) -> PathBuf {
    root().join(name)
}

/// Creates a class of `course` for the learners in `roster`. Nothing is left behind when it
/// fails.
pub fn create(
    course_arg: &str,
    roster: &Path,
    name: Option<&str>,
    backend: BackendKind,
) -> Result<Created, ClassError> {
    let source = course::resolve(course_arg)?;
    let loaded = course::load(source)?;
    if !loaded.backends().contains(&backend) {
        return Err(ClassError::Backend {
            course: loaded.course.metadata.id.to_string(),
            backend,
            supported: loaded
                .backends()
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let learners = read_roster(roster)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => format!(
            "{}-{}",
            loaded.course.metadata.id.as_str(),
            crate::ids::LabId::random()
        ),
    };
    check_name(&name)?;
    let dir = dir_of(&name);
    if dir.exists() {
        return Err(ClassError::Exists(name, dir.display().to_string()));
    }
    let course_ref = if course::is_path(course_arg) || Path::new(course_arg).is_file() {
        std::fs::canonicalize(course_arg)
            .map_err(io(Path::new(course_arg)))?
            .display()
            .to_string()
    } else {
        course_arg.to_string()
    };
    let (instructor_token, instructor_hash) = new_token();
    let mut tokens = Vec::new();
    let records = learners
        .into_iter()
        .map(|l| {
            let (token, hash) = new_token();
            tokens.push((l.name.clone(), token));
            LearnerRecord {
                name: l.name,
                token_sha256: hash,
                revoked_ms: None,
            }
        })
        .collect();
    let class = Class {
        name: name.clone(),
        course: course_ref,
        course_id: loaded.course.metadata.id.to_string(),
        mode: *loaded.course.mode,
        backend,
        created_ms: now_ms(),
        instructor_token_sha256: instructor_hash,
        learners: records,
        opened: BTreeMap::new(),
    };
    std::fs::create_dir_all(root()).map_err(io(&root()))?;
    std::fs::create_dir(&dir).map_err(io(&dir))?;
    let made = (|| {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
        std::fs::create_dir(dir.join(PROGRESS_DIR)).map_err(io(&dir))?;
        let (_, public_key) = cert::generate(&dir.join(KEY_PREFIX))?;
        save(&dir, &class)?;
        Ok(public_key)
    })();
    match made {
        Ok(public_key) => Ok(Created {
            class,
            dir,
            instructor_token,
            tokens,
            public_key,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// Writes `bytes` to `path` whole: a reader sees the old file or the new one.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), ClassError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ClassError> {
    let bytes =
        crate::sys::capped::read(path, crate::sys::capped::SIGNED_RESULT).map_err(io(path))?;
    serde_json::from_slice(&bytes).map_err(|source| ClassError::Json {
        path: path.display().to_string(),
        source,
    })
}

pub fn save(dir: &Path, class: &Class) -> Result<(), ClassError> {
    let bytes = serde_json::to_vec_pretty(class).unwrap_or_default();
    write_whole(&dir.join(CLASS_FILE), &bytes)
}

pub fn load(name: &str) -> Result<(PathBuf, Class), ClassError> {
    check_name(name).map_err(|_| ClassError::NotFound(name.to_string()))?;
    let dir = dir_of(name);
    let file = dir.join(CLASS_FILE);
    if !file.exists() {
        return Err(ClassError::NotFound(name.to_string()));
    }
    Ok((dir.clone(), read_json(&file)?))
}

/// Every class, by name.
pub fn list() -> Vec<Class> {
    let mut out: Vec<Class> = std::fs::read_dir(root())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| read_json(&e.path().join(CLASS_FILE)).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn progress_file(dir: &Path, learner: &str) -> PathBuf {
    dir.join(PROGRESS_DIR).join(format!("{learner}.json"))
}

pub fn read_progress(dir: &Path, learner: &str) -> Progress {
    read_json(&progress_file(dir, learner)).unwrap_or_default()
}

pub fn write_progress(dir: &Path, learner: &str, p: &Progress) -> Result<(), ClassError> {
    let bytes = serde_json::to_vec_pretty(p).unwrap_or_default();
    write_whole(&progress_file(dir, learner), &bytes)
}

impl Class {
    /// The learner a token belongs to, unless it is unknown or revoked.
    pub fn learner_of(&self, token: &str) -> Option<&LearnerRecord> {
        let hash = token_hash(token);
        self.learners
            .iter()
            .find(|l| l.token_sha256 == hash && l.revoked_ms.is_none())
    }

    pub fn is_instructor(&self, token: &str) -> bool {
        token_hash(token) == self.instructor_token_sha256
    }

    pub fn revoke(&mut self, learner: &str) -> Result<(), ClassError> {
        let l = self
            .learners
            .iter_mut()
            .find(|l| l.name == learner)
            .ok_or_else(|| ClassError::NoLearner(learner.to_string()))?;
        l.revoked_ms.get_or_insert_with(now_ms);
        Ok(())
    }

    pub fn loaded_course(&self) -> Result<Loaded, ClassError> {
        Ok(course::load(course::resolve(&self.course)?)?)
    }
}

/// Whether a learner may open module `index`: the first module always; an `after-previous`
/// module once the previous one is passed (submitted, in certification, where the learner
/// never sees a score); an `instructor` module once opened or at its `opens_at`.
pub fn is_open(
    class: &Class,
    course: &Loaded,
    progress: &Progress,
    index: usize,
    now: u64,
) -> bool {
    let Some(m) = course.modules.get(index) else {
        return false;
    };
    match *m.module.unlock {
        Unlock::Instructor => {
            class.opened.contains_key(m.module.id.as_str())
                || m.module
                    .opens_at
                    .as_ref()
                    .is_some_and(|t| t.unix_ms() <= now as i64)
        }
        Unlock::AfterPrevious if index == 0 => true,
        Unlock::AfterPrevious => {
            let prev = &course.modules[index - 1];
            progress
                .get(prev.module.id.as_str())
                .is_some_and(|p| match class.mode {
                    Mode::Practice => p.passed == Some(true),
                    Mode::Certification => p.submitted_ms.is_some(),
                })
        }
    }
}

/// One learner's row of the class table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub learner: String,
    pub revoked: bool,
    pub modules: Vec<Cell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub module: String,
    pub open: bool,
    #[serde(flatten)]
    pub progress: ModuleProgress,
}

/// The class table: every learner × every module, as `class status` and the dashboard show it.
pub fn table(dir: &Path, class: &Class, course: &Loaded) -> Vec<Row> {
    let now = now_ms();
    class
        .learners
        .iter()
        .map(|l| {
            let progress = read_progress(dir, &l.name);
            let modules = course
                .modules
                .iter()
                .enumerate()
                .map(|(i, m)| Cell {
                    module: m.module.id.to_string(),
                    open: is_open(class, course, &progress, i, now),
                    progress: progress
                        .get(m.module.id.as_str())
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect();
            Row {
                learner: l.name.clone(),
                revoked: l.revoked_ms.is_some(),
                modules,
            }
        })
        .collect()
}

/// The class as `class status --json` and the dashboard's API give it.
pub fn status_json(dir: &Path, class: &Class, course: &Loaded) -> serde_json::Value {
    serde_json::json!({
        "class": class.name,
        "course": class.course_id,
        "title": course.course.metadata.title,
        "mode": class.mode,
        "backend": class.backend,
        "modules": course.modules.iter().map(|m| m.module.id.as_str()).collect::<Vec<_>>(),
        "learners": table(dir, class, course),
    })
}

#[cfg(test)]
mod tests;
