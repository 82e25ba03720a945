//! A lab: one running copy of a scenario. Its identity, where its files live, the state its
//! supervisor publishes, and how it is started, watched and taken down.

pub mod debuggers;
pub mod events;
mod launch;
pub mod redact;
mod state;
pub mod supervisor;
mod sweep;

use std::path::{Path, PathBuf};

pub use crate::ids::{LabId, PREFIX, state_root};
pub use launch::{Certification, LaunchError, Launched, Request, launch};
pub use redact::{RevealError, View};
pub use state::{FaultDetail, FaultState, FaultStatus, InstanceState, Phase, State, now_ms};
pub use supervisor::tail;
pub use sweep::{DownReport, down, down_all, down_clusters};

/// A lab's directory and the files in it.
#[derive(Debug, Clone)]
pub struct LabDir {
    pub id: LabId,
    pub path: PathBuf,
}

impl LabDir {
    pub fn new(id: &LabId) -> LabDir {
        LabDir {
            id: id.clone(),
            path: crate::ids::lab_dir(id),
        }
    }

    pub fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }
    pub fn logs(&self) -> PathBuf {
        self.path.join("logs")
    }
    pub fn log_of(&self, instance: &str) -> PathBuf {
        self.logs().join(format!("{instance}.log"))
    }
    pub fn load_stats(&self) -> PathBuf {
        self.path.join("load.jsonl")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.path.join("supervisor.log")
    }
    /// The evidence journal: one line per probe run.
    pub fn evidence(&self) -> PathBuf {
        self.path.join("evidence.jsonl")
    }

    /// Files only root may read: what grading, hints and the instructor's view need
    /// ([`redact`]). The directory is 0700 and each file in it 0600.
    pub fn private(&self) -> PathBuf {
        self.path.join("private")
    }
    pub fn private_file(&self, name: &str) -> PathBuf {
        self.private().join(name)
    }

    /// Writes a private file (creating the private directory), readable by root only
    /// whatever the umask.
    pub fn write_private(&self, name: &str, contents: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = self.private();
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        write_with_mode(&dir.join(name), contents, 0o600)
    }

    /// The state as a learner sees it (what `state.json` holds); [`redact::read`] gives the
    /// instructor's view.
    pub fn read_state(&self) -> Option<State> {
        let text =
            crate::sys::capped::read_to_string(&self.state_file(), crate::sys::capped::JOURNAL)
                .ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Labs that have a state directory, newest first.
pub fn list() -> Vec<State> {
    let Ok(dir) = std::fs::read_dir(state_root().join("labs")) else {
        return Vec::new();
    };
    let mut out: Vec<State> = dir
        .filter_map(|e| LabId::parse(e.ok()?.file_name().to_str()?))
        .filter_map(|id| LabDir::new(&id).read_state())
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
    out
}

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("no lab is running; start one with `sandbox run <scenario>`")]
    NoLab,
    #[error("no lab `{0}` is running; `sandbox status` lists the running labs")]
    NoSuchLab(String),
    #[error("{} labs are running ({}); name one with --lab", .0.len(), .0.join(", "))]
    Ambiguous(Vec<String>),
    #[error("no service or instance `{name}` in lab {lab}; it has: {known}")]
    NoSuchInstance {
        lab: String,
        name: String,
        known: String,
    },
}

/// The lab a command means: the one named, or the only one running.
pub fn find(id: Option<&str>) -> Result<State, FindError> {
    let labs = list();
    match id {
        Some(id) => labs
            .into_iter()
            .find(|l| l.id.as_str() == id)
            .ok_or_else(|| FindError::NoSuchLab(id.to_string())),
        None => match labs.len() {
            0 => Err(FindError::NoLab),
            1 => Ok(labs.into_iter().next().expect("one lab")),
            _ => Err(FindError::Ambiguous(
                labs.iter().map(|l| l.id.to_string()).collect(),
            )),
        },
    }
}

/// Writes a world-readable file so that a reader never sees half a file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, contents, 0o644)
}

/// Writes `contents` atomically with exactly `mode`, whatever the umask.
fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(contents)?;
    drop(f);
    std::fs::rename(&tmp, path)
}
