//! Bandwidth limits with htb classes. At a router site, traffic into an instance is shaped on
//! the egress of its lab-side veth, and traffic out of an instance to anyone goes through an
//! ifb device fed from that veth's ingress. At instance sites, traffic out of an instance is
//! shaped on its own `eth0`, and traffic into it on an ifb fed from its `eth0`'s ingress. The
//! root htb has no default class, so traffic no fault classifies passes unshaped, and several
//! limits share one interface.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use super::selector::Selector;
use super::{FaultError, Sites};
use crate::ids::PREFIX;
use crate::sys::cmd;
use crate::sys::netns::NsPath;

/// Packets a shaped class may queue; the default (1000) would be seconds of queue at low
/// rates and hide the limit behind bufferbloat.
const LEAF_LIMIT: u32 = 50;

/// How many classes use each interface's root qdisc, so the last one removes it.
#[derive(Default)]
pub struct Shaper {
    users: BTreeMap<(NsPath, String), u32>,
    ifbs: BTreeMap<(NsPath, String), u32>,
}

pub type SharedShaper = Arc<Mutex<Shaper>>;

/// One shaping class on one interface.
struct Class {
    ns: NsPath,
    dev: String,
    /// The veth feeding this ifb, when `dev` is an ifb.
    ifb_of: Option<String>,
}

pub struct ShapeFault {
    shaper: SharedShaper,
    classid: u16,
    classes: Vec<Class>,
    removed: bool,
}

fn tc(ns: &NsPath, args: &[&str]) -> Result<(), FaultError> {
    let mut c = ns.command("tc")?;
    c.args(args);
    cmd::run(&mut c).map(|_| ()).map_err(FaultError::from)
}

fn ip(ns: &NsPath, args: &[&str]) -> Result<(), FaultError> {
    let mut c = ns.command("ip")?;
    c.args(args);
    cmd::run(&mut c).map(|_| ()).map_err(FaultError::from)
}

/// u32 matches for one address pair; `u32 match ip dport` assumes a 20-byte IP header, which
/// holds for the lab's traffic (no IP options).
fn u32_match(src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>, sel: &Selector) -> Vec<String> {
    let mut m = Vec::new();
    if let Some(s) = src {
        m.push(format!("match ip src {s}/32"));
    }
    if let Some(d) = dst {
        m.push(format!("match ip dst {d}/32"));
    }
    if let Some(p) = sel.dport {
        m.push(format!("match ip dport {p} 0xffff"));
    }
    if let Some(p) = sel.sport {
        m.push(format!("match ip sport {p} 0xffff"));
    }
    if m.is_empty() {
        m.push("match u32 0 0".into());
    }
    m
}

/// A shaping point: the device a class goes on, the device feeding it when it is an ifb,
/// and the filters that classify into it.
type Points = BTreeMap<(NsPath, String), (Option<String>, Vec<Vec<String>>)>;

pub fn install(
    sites: &Sites,
    lab: &str,
    shaper: &SharedShaper,
    classid: u16,
    bits_per_sec: u64,
    sels: &[Selector],
) -> Result<ShapeFault, FaultError> {
    let mut fault = ShapeFault {
        shaper: shaper.clone(),
        classid,
        classes: Vec::new(),
        removed: false,
    };
    let mut points: Points = BTreeMap::new();
    for sel in sels {
        if !sel.dst.is_empty() {
            for d in &sel.dst {
                let point = match sites {
                    Sites::Router { ns, links } => {
                        let Some(l) = links.get(d) else { continue };
                        (ns.clone(), l.veth.clone(), None)
                    }
                    Sites::Instances { by_ip } => {
                        let Some(ns) = by_ip.get(d) else { continue };
                        (
                            ns.clone(),
                            format!("{PREFIX}{lab}-ifb"),
                            Some("eth0".into()),
                        )
                    }
                };
                let entry = points
                    .entry((point.0, point.1))
                    .or_insert((point.2, Vec::new()));
                let srcs: Vec<Option<Ipv4Addr>> = if sel.src.is_empty() {
                    vec![None]
                } else {
                    sel.src.iter().copied().map(Some).collect()
                };
                for s in srcs {
                    entry.1.push(u32_match(s, Some(*d), sel));
                }
            }
        } else {
            for s in &sel.src {
                let point = match sites {
                    Sites::Router { ns, links } => {
                        let Some(l) = links.get(s) else { continue };
                        (ns.clone(), l.ifb.clone(), Some(l.veth.clone()))
                    }
                    Sites::Instances { by_ip } => {
                        let Some(ns) = by_ip.get(s) else { continue };
                        (ns.clone(), "eth0".to_string(), None)
                    }
                };
                let entry = points
                    .entry((point.0, point.1))
                    .or_insert((point.2, Vec::new()));
                entry.1.push(u32_match(Some(*s), None, sel));
            }
        }
    }
    let rate = format!("{bits_per_sec}bit");
    let burst = format!("{}b", (bits_per_sec / 8 / 100).max(3200));
    let class = format!("1:{classid:x}");
    for ((place, dev), (ifb_of, filters)) in points {
        let place = &place;
        fault.attach_root(place, &dev, ifb_of.as_deref())?;
        tc(
            place,
            &[
                "class", "add", "dev", &dev, "parent", "1:", "classid", &class, "htb", "rate",
                &rate, "ceil", &rate, "burst", &burst, "cburst", &burst, "quantum", "1514",
            ],
        )?;
        tc(
            place,
            &[
                "qdisc",
                "add",
                "dev",
                &dev,
                "parent",
                &class,
                "pfifo",
                "limit",
                &LEAF_LIMIT.to_string(),
            ],
        )?;
        for m in filters {
            let mut args = vec![
                "filter", "add", "dev", &dev, "parent", "1:", "protocol", "ip", "prio",
            ];
            let prio = classid.to_string();
            args.push(&prio);
            args.push("u32");
            let words: Vec<&str> = m.iter().flat_map(|s| s.split(' ')).collect();
            args.extend(words);
            args.extend(["flowid", &class]);
            tc(place, &args)?;
        }
    }
    Ok(fault)
}

impl ShapeFault {
    /// Adds (or reuses) the root htb on `dev`, creating the ifb and its redirect first when
    /// `dev` is an ifb fed by `ifb_of`. Records the class so `remove` undoes exactly this.
    fn attach_root(
        &mut self,
        place: &NsPath,
        dev: &str,
        ifb_of: Option<&str>,
    ) -> Result<(), FaultError> {
        let mut sh = self
            .shaper
            .lock()
            .map_err(|_| FaultError::Engine("shaper lock poisoned".into()))?;
        let key = (place.clone(), dev.to_string());
        if let Some(veth) = ifb_of {
            if !sh.ifbs.contains_key(&key) {
                ip(place, &["link", "add", dev, "type", "ifb"])?;
                ip(place, &["link", "set", dev, "up"])?;
                tc(
                    place,
                    &["qdisc", "add", "dev", veth, "handle", "ffff:", "ingress"],
                )?;
                tc(
                    place,
                    &[
                        "filter", "add", "dev", veth, "parent", "ffff:", "protocol", "ip", "prio",
                        "1", "u32", "match", "u32", "0", "0", "action", "mirred", "egress",
                        "redirect", "dev", dev,
                    ],
                )?;
            }
            *sh.ifbs.entry(key.clone()).or_default() += 1;
        }
        if !sh.users.contains_key(&key) {
            tc(
                place,
                &[
                    "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "r2q", "1",
                ],
            )?;
        }
        *sh.users.entry(key).or_default() += 1;
        self.classes.push(Class {
            ns: place.clone(),
            dev: dev.to_string(),
            ifb_of: ifb_of.map(str::to_string),
        });
        Ok(())
    }

    fn teardown(&mut self) -> Result<(), FaultError> {
        self.removed = true;
        let mut first_err = None;
        let mut keep = |r: Result<(), FaultError>| {
            if let Err(e) = r
                && first_err.is_none()
            {
                first_err = Some(e);
            }
        };
        let class = format!("1:{:x}", self.classid);
        let prio = self.classid.to_string();
        let mut sh = match self.shaper.lock() {
            Ok(s) => s,
            Err(_) => return Err(FaultError::Engine("shaper lock poisoned".into())),
        };
        for c in std::mem::take(&mut self.classes) {
            let key = (c.ns.clone(), c.dev.clone());
            // A site that is gone took its qdiscs and devices with it.
            let here = c.ns.exists();
            let users = sh.users.entry(key.clone()).or_default();
            *users = users.saturating_sub(1);
            if *users == 0 {
                sh.users.remove(&key);
                if here {
                    keep(tc(&c.ns, &["qdisc", "del", "dev", &c.dev, "root"]));
                }
            } else if here {
                keep(tc(
                    &c.ns,
                    &[
                        "filter", "del", "dev", &c.dev, "parent", "1:", "prio", &prio,
                    ],
                ));
                keep(tc(
                    &c.ns,
                    &["class", "del", "dev", &c.dev, "classid", &class],
                ));
            }
            if let Some(veth) = c.ifb_of {
                let n = sh.ifbs.entry(key.clone()).or_default();
                *n = n.saturating_sub(1);
                if *n == 0 {
                    sh.ifbs.remove(&key);
                    if here {
                        keep(tc(&c.ns, &["qdisc", "del", "dev", &veth, "ingress"]));
                        keep(ip(&c.ns, &["link", "del", &c.dev]));
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    pub fn remove(mut self) -> Result<(), FaultError> {
        self.teardown()
    }
}

impl Drop for ShapeFault {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.teardown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u32_matches_name_addresses_and_ports() {
        let sel = Selector {
            src: vec![],
            dst: vec![],
            dport: Some(7070),
            sport: None,
        };
        assert_eq!(
            u32_match(
                Some(Ipv4Addr::new(10, 66, 0, 10)),
                Some(Ipv4Addr::new(10, 66, 0, 11)),
                &sel
            ),
            vec![
                "match ip src 10.66.0.10/32",
                "match ip dst 10.66.0.11/32",
                "match ip dport 7070 0xffff"
            ]
        );
        let any = Selector {
            src: vec![],
            dst: vec![],
            dport: None,
            sport: None,
        };
        assert_eq!(u32_match(None, None, &any), vec!["match u32 0 0"]);
    }
}
