//! What a learner submits: one entry per root cause they found.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A learner's findings file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Findings {
    pub findings: Vec<Finding>,
}

/// One root cause and where and how strongly it shows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// An id from the root-cause taxonomy, such as `packet-loss`.
    pub root_cause: String,
    #[serde(default, rename = "where")]
    pub location: Location,
    /// Measured size of the fault, keyed by quantity: `percent`, `delay`, `rate`, …
    #[serde(default)]
    pub magnitude: BTreeMap<String, serde_json::Value>,
    /// What the learner saw that supports this finding.
    #[serde(default)]
    pub evidence: String,
    #[serde(default)]
    pub notes: String,
    /// Files from the lab directory that back the finding (a flame graph, say), relative to it;
    /// they travel with a certification submission.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

/// Where a fault sits: a service, or a link between two services, optionally narrowed to a
/// direction and a port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub from: String,
    pub to: String,
}
