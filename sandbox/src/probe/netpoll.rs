//! Placeholder: the netpoll probe is being written.

use super::{Probe, ProbeError, Scope};

pub fn attach(_scope: &Scope) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Target(
        "the netpoll probe is not built yet".into(),
    ))
}
