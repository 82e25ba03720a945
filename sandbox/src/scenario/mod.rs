//! The scenario file format (v1): what a lab runs, what goes wrong in it, and what a learner
//! is told and expected to find. Reading is strict; see `validate` for the checks that need
//! the whole document, and `docs/scenario-format.md` for the annotated format.

mod catalog;
mod params;
mod probes;
mod schema;
mod template;
mod validate;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use catalog::{
    Bundled, bundled, bundled_courses, find_bundled, find_bundled_course, kind_configs,
    services_source,
};
pub use params::{ParamValue, Params, draw};
pub use probes::ProbeKind;
pub use schema::{json_schema, json_schema_of};
pub use template::{Renderer, render_document};
pub use validate::Diagnostic;
pub(crate) use validate::is_name;
pub(crate) use validate::names as names_of;
pub use value::{DnsAnswer, Dur, Rate, Scalar, Tpl};

use crate::yaml::{self, Pos, Spanned};

pub const API_VERSION: &str = "sandbox/v1";
pub const KIND: &str = "Scenario";
/// The kinds of document sandbox reads, with the command that checks each.
const DOCUMENT_KINDS: [(&str, &str); 2] = [
    (KIND, "sandbox validate"),
    ("Course", "sandbox course check"),
];
/// Limits on a parameter space, so validation can try every corner of it in well under a
/// second and every value stays small enough to render.
pub const MAX_PARAMS: usize = 10;
pub const MAX_ONE_OF: usize = 64;
pub const MAX_RANGE_VALUES: u64 = 1_000_000;
pub const MAX_PARAM_TEXT: usize = 256;

/// A scenario file as written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Always `sandbox/v1` for this version of the format.
    #[serde(rename = "apiVersion")]
    pub api_version: Spanned<String>,
    /// Always `Scenario`.
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    /// Named values drawn from the run's seed; templates refer to them by name.
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<ParamSpec>>,
    pub topology: Topology,
    pub workload: Workload,
    #[serde(default)]
    pub faults: Vec<Fault>,
    pub briefing: Briefing,
    #[serde(default)]
    pub hints: Vec<Hint>,
    #[serde(default)]
    pub expected_findings: Spanned<Vec<grader::expect::ExpectedFinding>>,
    /// Points out of 100 needed to pass.
    #[serde(default = "default_pass_mark")]
    pub pass_mark: Spanned<u32>,
    /// Points taken off for each submitted finding that matches no fault.
    #[serde(default = "default_extra_penalty")]
    pub extra_finding_penalty: u32,
    /// What the system's users feel once the faults fire; `sandbox verify` checks it shows in
    /// `status` after the first fault and not before.
    #[serde(default)]
    pub symptom: Vec<SymptomCheck>,
    #[serde(default)]
    pub solution: Option<Spanned<Solution>>,
}

fn default_extra_penalty() -> u32 {
    10
}

/// One load figure crossing a threshold.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SymptomCheck {
    pub metric: Spanned<SymptomMetric>,
    /// The figure is above this once the fault fires (and not before).
    #[serde(default)]
    pub above: Option<f64>,
    /// The figure is below this once the fault fires (and not before).
    #[serde(default)]
    pub below: Option<f64>,
}

/// A figure of the load generator's recent window, as `sandbox status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SymptomMetric {
    P50Ms,
    P90Ms,
    P99Ms,
    ErrorPct,
    Rate,
}

fn default_pass_mark() -> Spanned<u32> {
    Spanned::new(70, Pos::default())
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Lower-case letters, digits and dashes; how `sandbox run` names the scenario.
    pub id: Spanned<String>,
    pub title: String,
    pub summary: String,
    pub difficulty: Difficulty,
    #[serde(default)]
    pub tags: Vec<String>,
    /// How long a learner has; shown in the briefing and enforced in certification mode.
    #[serde(default)]
    pub time_limit: Option<Spanned<Dur>>,
    /// Backends the scenario is written for.
    #[serde(default = "default_backends")]
    pub backends: Vec<BackendKind>,
    /// The kind cluster layout the scenario runs on with the Kubernetes backend: `single`,
    /// `pair` or `pair-no-cni` (see kind-configs/README.md).
    #[serde(default)]
    pub cluster: Option<Spanned<String>>,
}

fn default_backends() -> Vec<BackendKind> {
    vec![BackendKind::Netns]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Difficulty {
    Beginner,
    Intermediate,
    Advanced,
    Expert,
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Difficulty::Beginner => "beginner",
            Difficulty::Intermediate => "intermediate",
            Difficulty::Advanced => "advanced",
            Difficulty::Expert => "expert",
        })
    }
}

/// The kind cluster layouts a scenario may name in `metadata.cluster` (their templates are in
/// `kind-configs/`; the cluster module checks it has one for each).
pub const CLUSTER_LAYOUTS: [&str; 3] = ["single", "pair", "pair-no-cni"];

/// The nodes of a cluster layout, by role (kind names them `<cluster>-<role>`).
pub fn layout_nodes(layout: &str) -> &'static [&'static str] {
    match layout {
        "single" => &["control-plane"],
        "pair" | "pair-no-cni" => &["control-plane", "worker"],
        _ => &[],
    }
}

/// Where a lab runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// Network namespaces on this machine (built in; needs root).
    Netns,
    /// Docker containers on this machine, one internal network per lab.
    Docker,
    /// A Kubernetes cluster (a kind cluster here, or a shared one).
    #[serde(alias = "kind")]
    Kube,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Netns, BackendKind::Docker, BackendKind::Kube];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Netns => "netns",
            BackendKind::Docker => "docker",
            BackendKind::Kube => "kube",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("`{s}` is not a backend; one of: netns, docker, kube"))
    }
}

/// How a parameter is drawn: one of a list, or a number in a range.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(default)]
    pub one_of: Option<Vec<ParamValue>>,
    /// Inclusive bounds `[low, high]`.
    #[serde(default)]
    pub range: Option<[f64; 2]>,
    /// Granularity of a range; 1 for whole-number bounds, 0.1 otherwise.
    #[serde(default)]
    pub step: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub services: Vec<Service>,
    /// How instances find each other by name: `dns` (the lab's name server, asked on every new
    /// connection, as cluster DNS; the default, and what `dns` faults act on) or `hosts` (a
    /// hosts file in every instance; no lookups at all).
    #[serde(default)]
    pub names: Option<Spanned<NameService>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NameService {
    #[default]
    Dns,
    Hosts,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Lower-case letters, digits and dashes; other services reach it by this name.
    pub name: Spanned<String>,
    pub program: Spanned<Program>,
    #[serde(default = "one")]
    pub replicas: Spanned<u32>,
    /// Data-plane port; the program's default when absent.
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    /// Services this one sends requests to.
    #[serde(default)]
    pub calls: Vec<Spanned<String>>,
    /// Extra command-line flags for the program, e.g. `["-timeout", "500ms"]`.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The cluster node its pods run on (`control-plane`, `worker`), for scenarios about the
    /// network between nodes; Kubernetes only.
    #[serde(default)]
    pub node: Option<Spanned<String>>,
    /// How it names the services it calls; Kubernetes only for `qualified`.
    #[serde(default)]
    pub call_names: Option<Spanned<CallNames>>,
}

/// The host name a service dials its upstreams by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallNames {
    /// The service name (`posts`): the resolver's first search domain completes it.
    #[default]
    Short,
    /// The cluster DNS name without the final dot (`posts.<namespace>.svc.cluster.local`):
    /// fewer dots than `ndots:5`, so the resolver tries every search domain before it.
    Qualified,
}

fn one() -> Spanned<u32> {
    Spanned::new(1, Pos::default())
}

/// The bundled Go programs a service can run (see docs/services.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Program {
    Gateway,
    Api,
    Backend,
    Store,
}

impl Program {
    pub const ALL: [Program; 4] = [
        Program::Gateway,
        Program::Api,
        Program::Backend,
        Program::Store,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Program::Gateway => "gateway",
            Program::Api => "api",
            Program::Backend => "backend",
            Program::Store => "store",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Program::Store => 7070,
            _ => 8080,
        }
    }

    /// HTTP services answer `GET /health` on their data port; the store answers `PING`.
    pub fn speaks_http(self) -> bool {
        self != Program::Store
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every service's control plane (metrics, pprof, app-fault switch) listens here.
pub const ADMIN_PORT: u16 = 9090;
/// The load generator is addressed by this name in fault targets.
pub const LOADGEN: &str = "loadgen";

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The service the load generator sends requests to.
    pub target: Spanned<String>,
    #[serde(default = "root_path")]
    pub path: String,
    /// Requests per second, sent open-loop.
    pub rate: Spanned<u32>,
    /// Requests in flight at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: Spanned<u32>,
    #[serde(default = "default_timeout")]
    pub timeout: Spanned<Dur>,
}

fn root_path() -> String {
    "/".into()
}
fn default_concurrency() -> Spanned<u32> {
    Spanned::new(32, Pos::default())
}
fn default_timeout() -> Spanned<Dur> {
    Spanned::new(Dur(std::time::Duration::from_secs(2)), Pos::default())
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Lower-case letters, digits and dashes; unique in the scenario.
    pub id: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Spanned<FaultKind>,
    pub target: Spanned<Target>,
    #[serde(default)]
    pub params: FaultParams,
    /// When the fault starts, counted from the moment the lab is ready and load begins.
    #[serde(default)]
    pub start_after: Option<Spanned<Tpl<Dur>>>,
    /// How long it lasts; until the lab goes down when absent.
    #[serde(default)]
    pub duration: Option<Spanned<Tpl<Dur>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Drop a percentage of packets.
    Loss,
    /// Hold packets back for a fixed time, with optional jitter.
    Delay,
    /// Answer a percentage of TCP segments with a reset.
    Reset,
    /// Silently drop every packet in the given direction.
    Blackhole,
    /// Cut a service or link off in both directions.
    Partition,
    /// Drop a percentage of connection attempts (TCP SYNs).
    SynDrop,
    /// Limit throughput.
    Bandwidth,
    /// Flip a payload byte in a percentage of packets; the receiver's checksum drops them.
    Corrupt,
    /// App-level: the service's handler sleeps before answering.
    Slow,
    /// App-level: the service's handler never answers.
    Hang,
    /// App-level: every request leaks a goroutine blocked on an upstream call without timeout.
    Leak,
    /// App-level: goroutines burn CPU in the service.
    CpuBurn,
    /// A noisy neighbour: the service is pinned to one CPU and busy threads outside the lab
    /// compete for it, so its runnable threads wait for a CPU.
    CpuStarve,
    /// Name lookups fail (NXDOMAIN, SERVFAIL, no answer) or answer late at the lab's name
    /// server. Not in a lab with `topology.names: hosts`.
    Dns,
    /// Kubernetes: the pod network between one node and the others is cut, on that node
    /// (the lab's pods only); pods keep running and stay Ready.
    NodePartition,
    /// Kubernetes: the service's Service selects no pod (a selector changed ahead of a
    /// rollout), so it has no endpoints; its pods keep running and stay Ready.
    NoEndpoints,
    /// Kubernetes, app-level: the service's readiness endpoint fails, so its pods turn
    /// NotReady and leave the Service's endpoints while they keep serving.
    Unready,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Loss => "loss",
            FaultKind::Delay => "delay",
            FaultKind::Reset => "reset",
            FaultKind::Blackhole => "blackhole",
            FaultKind::Partition => "partition",
            FaultKind::SynDrop => "syn-drop",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::Corrupt => "corrupt",
            FaultKind::Slow => "slow",
            FaultKind::Hang => "hang",
            FaultKind::Leak => "leak",
            FaultKind::CpuBurn => "cpu-burn",
            FaultKind::CpuStarve => "cpu-starve",
            FaultKind::Dns => "dns",
            FaultKind::NodePartition => "node-partition",
            FaultKind::NoEndpoints => "no-endpoints",
            FaultKind::Unready => "unready",
        }
    }

    /// Faults that act on a service's processes rather than on packets: no link, direction
    /// or port.
    pub fn is_process(self) -> bool {
        self.is_app() || self == FaultKind::CpuStarve
    }

    /// Faults that take a whole service, never a link, a direction or a port.
    pub fn acts_on_whole_service(self) -> bool {
        self.is_process() || self == FaultKind::NoEndpoints
    }

    /// App-level faults are switched inside the Go service; the rest act on packets.
    pub fn is_app(self) -> bool {
        matches!(
            self,
            FaultKind::Slow
                | FaultKind::Hang
                | FaultKind::Leak
                | FaultKind::CpuBurn
                | FaultKind::Unready
        )
    }

    /// Faults that act on Kubernetes objects or signals: a scenario with one runs on `kube`
    /// alone.
    pub fn cluster_only(self) -> bool {
        matches!(self, FaultKind::NoEndpoints | FaultKind::Unready)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a fault acts on: a service (all replicas, or one) or a link between two services,
/// optionally narrowed to a direction and a port.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub service: Option<Spanned<Tpl<String>>>,
    #[serde(default)]
    pub link: Option<LinkSpec>,
    /// Only this replica of the service (0-based).
    #[serde(default)]
    pub replica: Option<Spanned<u32>>,
    /// For a service: `ingress`, `egress` or `both`. For a link: `forward` (from → to),
    /// `reverse` or `both`. Default `both`.
    #[serde(default)]
    pub direction: Option<Spanned<Direction>>,
    /// Only connections to this server port: for a service, its own listening port; for a
    /// link, the port `to` listens on.
    #[serde(default)]
    pub port: Option<Spanned<Tpl<u16>>>,
    /// A cluster node, for `node-partition`.
    #[serde(default)]
    pub node: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub from: Spanned<Tpl<String>>,
    pub to: Spanned<Tpl<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Ingress,
    Egress,
    Forward,
    Reverse,
    Both,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
            Direction::Both => "both",
        })
    }
}

/// Parameters of a fault; which ones apply depends on its type (see `validate`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultParams {
    /// Percentage (0–100) of packets, segments or requests affected.
    #[serde(default)]
    pub percent: Option<Spanned<Tpl<f64>>>,
    /// Added one-way delay (`delay`), or handler sleep (`slow`).
    #[serde(default)]
    pub delay: Option<Spanned<Tpl<Dur>>>,
    /// Delay varies uniformly by up to this much either way.
    #[serde(default)]
    pub jitter: Option<Spanned<Tpl<Dur>>>,
    /// Bandwidth limit.
    #[serde(default)]
    pub rate: Option<Spanned<Tpl<Rate>>>,
    /// Goroutines that burn CPU (`cpu-burn`).
    #[serde(default)]
    pub goroutines: Option<Spanned<Tpl<u32>>>,
    /// Busy threads competing for the service's CPU (`cpu-starve`).
    #[serde(default)]
    pub hogs: Option<Spanned<Tpl<u32>>>,
    /// How a caught lookup is answered (`dns`): `nxdomain`, `servfail` or `timeout`.
    #[serde(default)]
    pub answer: Option<Spanned<Tpl<DnsAnswer>>>,
}

/// What the learner is told: symptoms only, written like an incident report.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Briefing {
    pub title: String,
    /// Markdown; may use templates over the params.
    pub body: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hint {
    pub text: String,
    /// Points taken off the score when the hint is shown.
    #[serde(default)]
    pub cost: Spanned<u32>,
    /// Show this hint only when the learner's probe runs so far fit.
    #[serde(default)]
    pub when: Option<HintWhen>,
}

/// A condition on the lab's evidence journal.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HintWhen {
    /// Every one of these probes has been run.
    #[serde(default)]
    pub ran: Vec<String>,
    /// None of these probes has been run yet.
    #[serde(default)]
    pub not_ran: Vec<String>,
}

/// How the scenario is solved with the bundled tools, and answers that must not pass.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Solution {
    pub steps: Vec<SolutionStep>,
    pub findings: grader::findings::Findings,
    /// Plausible wrong answers; each must fail.
    #[serde(default)]
    pub decoys: Vec<grader::findings::Findings>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SolutionStep {
    /// The command a learner runs, e.g. `sandbox probe tcp-retrans --target backend`.
    pub run: String,
    /// What its output shows.
    pub shows: String,
}

/// A scenario file read from disk or from the bundled catalog, with its text kept for error
/// reports that quote it.
#[derive(Debug, Clone)]
pub struct Source {
    /// Path as the user gave it, or `bundled:<id>`.
    pub name: String,
    pub text: String,
}

/// Why a scenario could not be used; always says where.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{name}: {source}")]
    Read {
        name: String,
        source: std::io::Error,
    },
    #[error("no scenario named `{0}`: not a file, and not a bundled scenario (see `sandbox list`)")]
    NotFound(String),
    #[error("{}", format_diagnostics(.source_name, .diagnostics))]
    Invalid {
        source_name: String,
        text: String,
        diagnostics: Vec<Diagnostic>,
    },
}

fn format_diagnostics(name: &str, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("{name}:{d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The largest scenario file accepted.
const MAX_SCENARIO_BYTES: usize = crate::sys::capped::SCENARIO as usize;

impl Source {
    /// A file path, or the id of a bundled scenario.
    pub fn resolve(arg: &str) -> Result<Source, ScenarioError> {
        let path = Path::new(arg);
        if path.is_file() {
            return Source::from_path(path);
        }
        match find_bundled(arg) {
            Some(b) => Ok(Source {
                name: format!("bundled:{}", b.id),
                text: b.text.to_string(),
            }),
            None => Err(ScenarioError::NotFound(arg.to_string())),
        }
    }

    pub fn from_path(path: &Path) -> Result<Source, ScenarioError> {
        Source::read(path, "scenario")
    }

    /// A YAML file a person wrote (`what` names it in messages: a scenario, a course), read
    /// within the size cap and checked to be UTF-8, with problems located in it.
    pub fn read(path: &Path, what: &str) -> Result<Source, ScenarioError> {
        let name = path.display().to_string();
        let invalid = |line, column, message: String| ScenarioError::Invalid {
            source_name: name.clone(),
            text: String::new(),
            diagnostics: vec![Diagnostic::at(
                Pos {
                    line,
                    column,
                    offset: 0,
                    len: 0,
                },
                "",
                message,
            )],
        };
        let bytes =
            crate::sys::capped::read_named(path, MAX_SCENARIO_BYTES as u64).map_err(|e| {
                if e.kind() == std::io::ErrorKind::FileTooLarge {
                    invalid(
                        1,
                        1,
                        format!("a {what} may be at most {MAX_SCENARIO_BYTES} bytes"),
                    )
                } else {
                    ScenarioError::Read {
                        name: name.clone(),
                        source: e,
                    }
                }
            })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let (line, column) = crate::sys::capped::not_utf8_at(e.as_bytes(), at);
            invalid(
                line,
                column,
                format!("not UTF-8 text (byte {at}); a {what} is UTF-8 YAML"),
            )
        })?;
        Ok(Source { name, text })
    }

    /// Parses and validates; every problem found is reported, not just the first.
    pub fn load(&self) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = self.parse(KIND)?;
        let diagnostics = validate::check(&scenario);
        if diagnostics.is_empty() {
            Ok(scenario)
        } else {
            Err(self.invalid(diagnostics))
        }
    }

    /// Reads the text strictly into `T`, a document of `kind` (`Scenario`, `Course`): unknown
    /// fields, wrong types and bad syntax are one problem, located in the file. A document of
    /// another kind is told so, with the command that checks it.
    pub fn parse<T: serde::de::DeserializeOwned>(&self, kind: &str) -> Result<T, ScenarioError> {
        yaml::from_str(
            &self.text,
            yaml::Limits {
                max_bytes: MAX_SCENARIO_BYTES,
            },
        )
        .map_err(|e| {
            // A missing field is reported where the mapping that lacks it starts (the
            // document's first line for a top-level field), not where the parser stopped.
            let pos = if e.message.starts_with("missing field") {
                yaml::Positions::of(&self.text).get(&e.path).unwrap_or(Pos {
                    line: 1,
                    column: 1,
                    offset: 0,
                    len: 0,
                })
            } else {
                e.pos
            };
            if let Some((other, check)) = self.other_kind(kind) {
                return ScenarioError::Invalid {
                    source_name: self.name.clone(),
                    text: self.text.clone(),
                    diagnostics: vec![Diagnostic::at(
                        other.pos,
                        "kind",
                        format!(
                            "this is a `{}` file, not a `{kind}`: check it with `{check}`",
                            *other
                        ),
                    )],
                };
            }
            ScenarioError::Invalid {
                source_name: self.name.clone(),
                text: self.text.clone(),
                diagnostics: vec![Diagnostic::at(pos, &e.path, e.message)],
            }
        })
    }

    /// The document's `kind` and the command that checks it, when it is another kind sandbox
    /// reads than `kind`.
    fn other_kind(&self, kind: &str) -> Option<(Spanned<String>, &'static str)> {
        #[derive(Deserialize)]
        struct Head {
            kind: Spanned<String>,
        }
        let head: Head = yaml::from_str(&self.text, yaml::Limits::default()).ok()?;
        let check = DOCUMENT_KINDS
            .iter()
            .find(|(k, _)| *k == head.kind.as_str() && *k != kind)?
            .1;
        Some((head.kind, check))
    }

    /// The error for problems found after parsing, each moved to the node its path names when
    /// the document has it (a check may only know an ancestor's position, such as the start of
    /// `expected_findings` or a template field without a span), otherwise left where it was.
    pub fn invalid(&self, mut diagnostics: Vec<Diagnostic>) -> ScenarioError {
        let positions = yaml::Positions::of(&self.text);
        for d in &mut diagnostics {
            let found = positions.get(&d.path).or_else(|| {
                ((d.line, d.column) == (1, 1))
                    .then(|| positions.nearest(&d.path))
                    .flatten()
            });
            if let Some(pos) = found {
                let moved = Diagnostic::at(pos, &d.path, std::mem::take(&mut d.message));
                *d = moved;
            }
        }
        diagnostics.sort();
        diagnostics.dedup();
        ScenarioError::Invalid {
            source_name: self.name.clone(),
            text: self.text.clone(),
            diagnostics,
        }
    }
}

impl Scenario {
    pub fn id(&self) -> &str {
        &self.metadata.id
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.topology.services.iter().find(|s| *s.name == name)
    }
}
