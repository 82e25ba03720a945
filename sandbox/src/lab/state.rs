//! What a lab's supervisor publishes about the lab, for `status`, `down` and the probes.

use serde::{Deserialize, Serialize};

use super::LabId;
use crate::backend::{BackendKind, Wire};
use crate::sys::netns::NsPath;
use crate::topology::AddressBook;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Building the network and starting services; `step` says which.
    Starting,
    /// Every service answered its health check and load is running.
    Ready,
    Stopping,
    /// Start-up failed; `error` says why. Everything created was removed again.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: LabId,
    pub scenario_id: String,
    pub scenario_title: String,
    /// The scenario file or `bundled:<id>`.
    pub source: String,
    /// The seed the parameters were drawn with; sealed (absent) in certification mode.
    pub seed: Option<u64>,
    /// The candidate, in certification mode.
    #[serde(default)]
    pub candidate: Option<String>,
    pub backend: BackendKind,
    pub phase: Phase,
    pub step: String,
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub ready_ms: Option<u64>,
    pub supervisor_pid: Option<u32>,
    pub slot: u8,
    pub book: Option<AddressBook>,
    /// Where the lab's traffic can be watched as a whole; known once the network is up.
    #[serde(default)]
    pub wire: Option<Wire>,
    pub instances: Vec<InstanceState>,
    pub faults: Vec<FaultState>,
    /// `loadgen → gateway:8080/ at 200 req/s` style description.
    pub workload: String,
    pub briefing_title: String,
    pub briefing: String,
    pub time_limit_s: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceState {
    pub name: String,
    pub service: String,
    pub program: String,
    pub ip: String,
    pub ports: Vec<u16>,
    pub pid: Option<u32>,
    /// The instance's network namespace and its inode, published by the backend so probes
    /// and `shell` never recompute them.
    #[serde(default)]
    pub netns: Option<NsPath>,
    #[serde(default)]
    pub netns_inode: Option<u64>,
    /// The cluster node it runs on (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub restarts: u32,
    /// The services this instance calls (the load generator: the workload's target), for
    /// `graph`.
    #[serde(default)]
    pub calls: Vec<String>,
    /// `starting`, `running`, `exited (status 2)`, `stopped`.
    pub status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultStatus {
    Pending,
    Active,
    Ended,
    Failed,
}

/// A fault as the lab's files carry it. What a learner may read is only its number, when it
/// fires and its status; `detail` is kept in the lab's private directory and merged in for the
/// instructor's view (see [`super::redact`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultState {
    /// Its place in the scenario, from 1: the only name a learner gets (`#1`).
    pub number: usize,
    /// When it starts and ends, in milliseconds since the Unix epoch; known once the lab is
    /// ready.
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub status: FaultStatus,
    /// What the fault is; `None` in every learner's view.
    #[serde(flatten)]
    pub detail: Option<FaultDetail>,
}

/// Everything about a fault that would give the exercise away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultDetail {
    pub id: String,
    pub kind: String,
    /// What and where, e.g. `12% packet loss on backend → store`.
    pub description: String,
    pub error: Option<String>,
    /// Packets the fault acted on, where the technique counts them.
    pub packets: Option<u64>,
    /// Where the fault sits, for `graph --reveal`; sealed (absent) in certification mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<crate::plan::FaultTarget>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
