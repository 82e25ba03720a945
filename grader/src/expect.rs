//! What a scenario expects a learner to find, and how many points each part is worth.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One fault the learner should find, as a list of checks on a single finding.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFinding {
    pub id: String,
    /// One line naming the fault, shown in graded reports.
    pub summary: String,
    pub checks: Vec<Check>,
    /// Probe runs the learner must have made for the finding to earn its evidence points.
    #[serde(default)]
    pub evidence: Vec<EvidenceRequirement>,
}

/// A field of the learner's finding, what it must match, and partial credit for near misses.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// A path into a finding: `root_cause`, `where.service`, `where.link`, `where.direction`,
    /// `where.port`, `magnitude.<quantity>`.
    pub field: String,
    pub points: u32,
    pub expect: Matcher,
    #[serde(default)]
    pub partial: Vec<Partial>,
}

/// Fewer points for an answer that is close but not right.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    pub points: u32,
    pub expect: Matcher,
}

/// How a learner's value is compared. String values may be templates over the scenario's
/// drawn parameters; they are rendered before grading.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Matcher {
    Equals(serde_json::Value),
    OneOf(Vec<serde_json::Value>),
    Approx {
        value: serde_json::Value,
        tolerance: f64,
    },
    Regex(String),
    /// The learner's list must hold exactly these values, in any order.
    Set(Vec<serde_json::Value>),
}

/// A probe the learner must have run, on a target, with output that shows the fault, for the
/// evidence points: a right answer without investigation does not earn them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRequirement {
    /// A probe name, as `sandbox probe` takes it (`tcp-retrans`, `netpoll`, …).
    pub probe: String,
    /// The run must have targeted this service (a whole-lab run counts too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What the run's figures must show; any run of the probe counts when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shows: Option<Shows>,
    pub points: u32,
}

/// What a probe run must have found.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shows {
    /// A flow, connection or peer between these two services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between: Option<[String; 2]>,
    /// A flow, connection or peer involving this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub involves: Option<String>,
    /// `cpu`: a function matching this regular expression among the top functions;
    /// `goroutines`: on the stack of one of the largest groups (a tenth of the goroutines or
    /// more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Latency probes (`tcp-rtt`, `netpoll`, `runq`, `offcpu`, `dns`): at least this many
    /// milliseconds on the flow, peer or service in question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<f64>,
}
