//! Placeholder: the offcpu and runq probes are being written.

use super::{Probe, ProbeError, ProbeKind, Scope};

pub fn attach(_kind: ProbeKind, _scope: &Scope) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Target(
        "the scheduler probes are not built yet".into(),
    ))
}
