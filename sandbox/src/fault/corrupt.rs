//! Packet corruption: the `sbx_corrupt` tc program (ebpf/corrupt.bpf.c), attached with TCX at
//! the egress of the lab-side veths towards the receivers. TCX links go away with the process
//! that holds them, so a crashed supervisor leaves no corruption behind.
//!
//! Checksum offload is turned off on the involved interfaces while the fault is active; with it
//! on, veth passes packets whose checksum was never computed and a flipped byte would reach the
//! application instead of being dropped and retransmitted.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use super::selector::Selector;
use super::{FaultError, Sites};
use crate::ebpf::{self, Object, objects};
use crate::sys::cmd;
use crate::sys::netns::NsPath;

const MAX_ADDRS: usize = 8;
const MAX_SELECTORS: usize = 2;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CorruptSel {
    src: [u32; MAX_ADDRS],
    dst: [u32; MAX_ADDRS],
    nsrc: u8,
    ndst: u8,
    port: u16,
    port_is_dst: u8,
    pad: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CorruptCfg {
    basis_points: u32,
    nsel: u32,
    sel: [CorruptSel; MAX_SELECTORS],
}

// SAFETY: plain-old-data with explicit padding, laid out exactly like `struct corrupt_cfg`.
unsafe impl ebpf::Pod for CorruptCfg {}

/// Interfaces with checksum offload turned off, and by how many faults.
pub type Offloads = Arc<Mutex<BTreeMap<(NsPath, String), u32>>>;

pub struct CorruptFault {
    offloads: Offloads,
    object: Option<Object>,
    /// (namespace, interface) pairs whose offloads this fault turned off.
    touched: Vec<(NsPath, String)>,
    removed: bool,
}

fn config(percent: f64, sels: &[Selector]) -> Result<CorruptCfg, FaultError> {
    let mut cfg = CorruptCfg {
        basis_points: (percent * 100.0).round() as u32,
        ..Default::default()
    };
    if sels.len() > MAX_SELECTORS {
        return Err(FaultError::Unsupported(format!(
            "corruption takes at most {MAX_SELECTORS} directions"
        )));
    }
    for (i, s) in sels.iter().enumerate() {
        if s.src.len() > MAX_ADDRS || s.dst.len() > MAX_ADDRS {
            return Err(FaultError::Unsupported(format!(
                "corruption matches at most {MAX_ADDRS} addresses per side"
            )));
        }
        let sel = &mut cfg.sel[i];
        for (j, a) in s.src.iter().enumerate() {
            sel.src[j] = u32::from_ne_bytes(a.octets());
        }
        for (j, a) in s.dst.iter().enumerate() {
            sel.dst[j] = u32::from_ne_bytes(a.octets());
        }
        sel.nsrc = s.src.len() as u8;
        sel.ndst = s.dst.len() as u8;
        sel.port = s.port().unwrap_or(0);
        sel.port_is_dst = u8::from(s.dport.is_some());
    }
    cfg.nsel = sels.len() as u32;
    Ok(cfg)
}

pub fn install(
    sites: &Sites,
    offloads: &Offloads,
    percent: f64,
    sels: &[Selector],
) -> Result<CorruptFault, FaultError> {
    let cfg = config(percent, sels)?;
    let mut fault = CorruptFault {
        offloads: offloads.clone(),
        object: None,
        touched: Vec::new(),
        removed: false,
    };

    // Receivers: the instances a selector sends to, or every instance when it names none.
    let all = sites.instance_ips();
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for s in sels {
        receivers.extend(if s.dst.is_empty() {
            all.clone()
        } else {
            s.dst.clone()
        });
        senders.extend(if s.src.is_empty() {
            all.clone()
        } else {
            s.src.clone()
        });
    }
    receivers.sort();
    receivers.dedup();
    let mut involved: Vec<Ipv4Addr> = senders
        .into_iter()
        .chain(receivers.iter().copied())
        .collect();
    involved.sort();
    involved.dedup();
    for ip in &involved {
        let Some(ns) = sites.instance_ns(*ip) else {
            continue;
        };
        fault.offload_off(ns, "eth0")?;
        if let Sites::Router { ns, links } = sites
            && let Some(l) = links.get(ip)
        {
            fault.offload_off(ns, &l.veth)?;
        }
    }

    let mut object =
        Object::load(&objects::CORRUPT, &[]).map_err(|e| FaultError::Ebpf(e.to_string()))?;
    object
        .array_set("corrupt_config", 0, cfg)
        .map_err(|e| FaultError::Ebpf(e.to_string()))?;
    // Corrupted where packets reach their receiver: on the router's link towards it, or on
    // its own `eth0` as they arrive.
    match sites {
        Sites::Router { ns, links } => {
            let devs: Vec<String> = receivers
                .iter()
                .filter_map(|ip| links.get(ip).map(|l| l.veth.clone()))
                .collect();
            object.attach_tc("sbx_corrupt", ns, &devs, true)
        }
        Sites::Instances { by_ip } => receivers
            .iter()
            .filter_map(|ip| by_ip.get(ip))
            .try_for_each(|ns| object.attach_tc("sbx_corrupt", ns, &["eth0".into()], false)),
    }
    .map_err(|e| FaultError::Ebpf(e.to_string()))?;
    fault.object = Some(object);
    Ok(fault)
}

fn ethtool(ns: &NsPath, dev: &str, state: &str) -> Result<(), FaultError> {
    let mut c = ns.command("ethtool")?;
    c.args(["-K", dev, "tx", state, "rx", state]);
    cmd::run(&mut c).map(|_| ()).map_err(FaultError::from)
}

impl CorruptFault {
    fn offload_off(&mut self, ns: &NsPath, dev: &str) -> Result<(), FaultError> {
        let key = (ns.clone(), dev.to_string());
        let mut table = self
            .offloads
            .lock()
            .map_err(|_| FaultError::Engine("offload lock poisoned".into()))?;
        if !table.contains_key(&key) {
            ethtool(ns, dev, "off")?;
        }
        *table.entry(key.clone()).or_default() += 1;
        self.touched.push(key);
        Ok(())
    }

    /// Packets that matched, and packets corrupted, so far.
    pub fn counts(&self) -> (u64, u64) {
        let Some(object) = &self.object else {
            return (0, 0);
        };
        let sum = |i| object.percpu_sum("corrupt_stats", i).unwrap_or(0);
        (sum(0), sum(1))
    }

    fn teardown(&mut self) -> Result<(), FaultError> {
        self.removed = true;
        // Dropping the object closes the TCX links, which detaches the program.
        self.object = None;
        let mut result = Ok(());
        let mut table = self
            .offloads
            .lock()
            .map_err(|_| FaultError::Engine("offload lock poisoned".into()))?;
        for key in std::mem::take(&mut self.touched) {
            let n = table.entry(key.clone()).or_default();
            *n = n.saturating_sub(1);
            if *n == 0 {
                table.remove(&key);
                // The namespace may already be gone when the lab is coming down.
                if key.0.exists()
                    && let Err(e) = ethtool(&key.0, &key.1, "on")
                    && result.is_ok()
                {
                    result = Err(e);
                }
            }
        }
        result
    }

    pub fn remove(mut self) -> Result<(), FaultError> {
        self.teardown()
    }
}

impl Drop for CorruptFault {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.teardown();
        }
    }
}
