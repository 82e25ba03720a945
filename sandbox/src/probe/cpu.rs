//! Placeholder: the cpu probe is being written.

use super::{Options, Probe, ProbeError, Scope};

pub fn attach(_scope: &Scope, _o: &Options) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Target("the cpu probe is not built yet".into()))
}
