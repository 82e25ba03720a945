//! Placeholder for the TCP probes.

use super::{Probe, ProbeError, ProbeKind, Scope};

pub fn attach(_kind: ProbeKind, _scope: &Scope) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Target(
        "the tcp probes are not built yet".into(),
    ))
}
