//! App-level faults, switched inside the Go services through their control plane
//! (`POST /admin/fault`, see docs/services.md).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::FaultError;
use crate::http;
use crate::plan::Effect;
use crate::scenario::ADMIN_PORT;

const TIMEOUT: Duration = Duration::from_secs(2);

/// The switch's JSON body for an effect.
pub fn body(effect: &Effect) -> Option<String> {
    let v = match effect {
        Effect::Slow { delay, percent } => {
            serde_json::json!({"kind": "slow", "delay_ms": delay.as_millis() as u64, "percent": percent.round() as u32})
        }
        Effect::Hang { percent } => {
            serde_json::json!({"kind": "hang", "percent": percent.round() as u32})
        }
        Effect::Leak => serde_json::json!({"kind": "leak"}),
        Effect::Unready => serde_json::json!({"kind": "unready"}),
        Effect::CpuBurn { goroutines } => {
            serde_json::json!({"kind": "cpu-burn", "goroutines": goroutines})
        }
        _ => return None,
    };
    Some(v.to_string())
}

fn switch(ip: Ipv4Addr, body: &str) -> Result<(), FaultError> {
    let addr = SocketAddr::from((ip, ADMIN_PORT));
    let (status, text) = http::request(addr, "POST", "/admin/fault", Some(body), TIMEOUT)
        .map_err(|e| FaultError::App(e.to_string()))?;
    if status == 200 {
        Ok(())
    } else {
        Err(FaultError::App(format!(
            "{addr} answered {status}: {}",
            text.trim()
        )))
    }
}

/// An app fault switched on in some instances; dropping it switches them back.
pub struct AppFault {
    ips: Vec<Ipv4Addr>,
    removed: bool,
}

pub fn install(effect: &Effect, ips: &[Ipv4Addr]) -> Result<AppFault, FaultError> {
    let body = body(effect)
        .ok_or_else(|| FaultError::Unsupported(format!("{effect} is not an app-level fault")))?;
    let mut fault = AppFault {
        ips: Vec::new(),
        removed: false,
    };
    for ip in ips {
        switch(*ip, &body)?;
        fault.ips.push(*ip);
    }
    Ok(fault)
}

impl AppFault {
    fn teardown(&mut self) -> Result<(), FaultError> {
        self.removed = true;
        let mut result = Ok(());
        for ip in std::mem::take(&mut self.ips) {
            if let Err(e) = switch(ip, r#"{"kind":"none"}"#)
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        result
    }

    pub fn remove(mut self) -> Result<(), FaultError> {
        self.teardown()
    }
}

impl Drop for AppFault {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.teardown();
        }
    }
}
