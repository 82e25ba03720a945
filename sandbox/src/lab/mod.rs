//! A lab: one running copy of a scenario. Its identity, where its files live, the state its
//! supervisor publishes, and how it is started, watched and taken down.

mod launch;
mod state;
pub mod supervisor;
mod sweep;

use std::path::{Path, PathBuf};

pub use crate::ids::{LabId, PREFIX, state_root};
pub use launch::{Certification, LaunchError, Launched, Request, launch};
pub use state::{FaultState, FaultStatus, InstanceState, Phase, State, now_ms};
pub use supervisor::tail;
pub use sweep::{DownReport, down, down_all};

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

/// Writes `contents` so that a reader never sees half a file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}
