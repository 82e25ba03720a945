//! Loss, resets, blackholes, partitions and SYN drops as one nftables table per fault and
//! site: at a router's forward hook, or at an instance's input and output hooks, always ahead
//! of the delay queue so only surviving packets are delayed. Removing the fault is one atomic
//! `delete table` per site.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

use super::selector::Selector;
use super::{FaultError, Hook, Point};
use crate::plan::Effect;
use crate::sys::cmd;
use crate::sys::netns::NsPath;

/// Priority of the faults' chains: before iptables' filter table (0), where the delay queue
/// sits.
const PRIORITY: i32 = -10;

/// Whether nftables can express this effect.
pub fn handles(effect: &Effect) -> bool {
    matches!(
        effect,
        Effect::Loss { .. }
            | Effect::Reset { .. }
            | Effect::Blackhole
            | Effect::Partition
            | Effect::SynDrop { .. }
    )
}

/// The tables lab `lab`'s faults hold in `ns` (`inet sbx_<lab>_f<n>`).
pub fn tables_of(ns: &NsPath, lab: &str) -> Vec<String> {
    let prefix = format!("{}_{lab}_f", crate::ids::PREFIX);
    let listed = ns.command("nft").map(|mut c| {
        c.args(["list", "tables"]);
        cmd::run(&mut c)
    });
    let Ok(Ok(out)) = listed else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| l.strip_prefix("table "))
        .filter(|t| {
            t.split_whitespace()
                .nth(1)
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(str::to_string)
        .collect()
}

/// Deletes every table [`tables_of`] finds.
pub fn remove_tables(ns: &NsPath, lab: &str) -> Result<(), FaultError> {
    for table in tables_of(ns, lab) {
        let mut c = ns.command("nft")?;
        c.args(["delete", "table"]).args(table.split_whitespace());
        cmd::run(&mut c)?;
    }
    Ok(())
}

/// The fault's tables, one per site; dropping it removes them.
pub struct NftFault {
    sites: Vec<NsPath>,
    table: String,
    removed: bool,
}

pub fn install(
    points: &[Point],
    table: &str,
    comment: &str,
    effect: &Effect,
) -> Result<NftFault, FaultError> {
    let mut by_site: BTreeMap<&NsPath, Vec<(Hook, &[Selector])>> = BTreeMap::new();
    for p in points {
        by_site.entry(&p.ns).or_default().push((p.hook, &p.sels));
    }
    let mut fault = NftFault {
        sites: Vec::new(),
        table: table.to_string(),
        removed: false,
    };
    for (ns, chains) in by_site {
        let script = ruleset(table, comment, effect, &chains);
        let mut c = ns.command("nft")?;
        c.args(["-f", "-"]);
        cmd::run_with_input(&mut c, Some(&script))?;
        fault.sites.push(ns.clone());
    }
    Ok(fault)
}

impl NftFault {
    pub fn remove(mut self) -> Result<(), FaultError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), FaultError> {
        self.removed = true;
        let mut result = Ok(());
        for ns in std::mem::take(&mut self.sites) {
            // A site that is gone took the table with it.
            if ns.exists()
                && let Err(e) = delete_table(&ns, &self.table)
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        result
    }

    /// Packets the fault's rules have matched so far, at every site.
    pub fn packets(&self) -> Result<u64, FaultError> {
        let mut total = 0;
        for ns in &self.sites {
            let mut c = ns.command("nft")?;
            c.args(["list", "table", "inet", &self.table]);
            let out = cmd::run(&mut c)?;
            total += out
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| w[0] == "packets")
                .filter_map(|w| w[1].parse::<u64>().ok())
                .sum::<u64>();
        }
        Ok(total)
    }
}

impl Drop for NftFault {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.teardown();
        }
    }
}

fn delete_table(ns: &NsPath, table: &str) -> Result<(), FaultError> {
    let mut c = ns.command("nft")?;
    c.args(["delete", "table", "inet", table]);
    cmd::run(&mut c).map(|_| ()).map_err(FaultError::from)
}

fn set(ips: &[Ipv4Addr]) -> String {
    if ips.len() == 1 {
        ips[0].to_string()
    } else {
        format!(
            "{{ {} }}",
            ips.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The packet-matching part of a rule.
fn matches(sel: &Selector, tcp_only: bool) -> String {
    let mut m = String::new();
    if !sel.src.is_empty() {
        let _ = write!(m, "ip saddr {} ", set(&sel.src));
    }
    if !sel.dst.is_empty() {
        let _ = write!(m, "ip daddr {} ", set(&sel.dst));
    }
    let proto = if tcp_only {
        "meta l4proto tcp"
    } else {
        "meta l4proto { tcp, udp }"
    };
    match (sel.dport, sel.sport) {
        (Some(p), _) => {
            let _ = write!(m, "{proto} th dport {p} ");
        }
        (None, Some(p)) => {
            let _ = write!(m, "{proto} th sport {p} ");
        }
        (None, None) if tcp_only => {
            let _ = write!(m, "{proto} ");
        }
        (None, None) => {}
    }
    m
}

/// `numgen` draws per packet; basis points give 0.01 % resolution.
fn sample(percent: f64) -> String {
    if percent >= 100.0 {
        String::new()
    } else {
        format!(
            "numgen random mod 10000 < {} ",
            (percent * 100.0).round() as u32
        )
    }
}

/// A table with one chain per hook, each holding the rules for its selectors.
pub fn ruleset(
    table: &str,
    comment: &str,
    effect: &Effect,
    chains: &[(Hook, &[Selector])],
) -> String {
    let mut out = format!("table inet {table} {{\n  comment \"{comment}\"\n");
    for (hook, sels) in chains {
        let _ = write!(
            out,
            "  chain {name} {{\n    type filter hook {name} priority {PRIORITY}; policy accept;\n{}  }}\n",
            rules(comment, effect, sels),
            name = hook.nft(),
        );
    }
    out.push_str("}\n");
    out
}

fn rules(comment: &str, effect: &Effect, sels: &[Selector]) -> String {
    let mut rules = String::new();
    for sel in sels {
        let rule = match effect {
            Effect::Loss { percent } => {
                format!("{}{}counter drop", matches(sel, false), sample(*percent))
            }
            Effect::Blackhole | Effect::Partition | Effect::NodePartition => {
                format!("{}counter drop", matches(sel, false))
            }
            Effect::SynDrop { percent } => {
                format!(
                    "{}tcp flags & (syn | ack) == syn {}counter drop",
                    matches(sel, true),
                    sample(*percent)
                )
            }
            Effect::Reset { percent } => format!(
                "{}tcp flags & rst == 0 {}counter reject with tcp reset",
                matches(sel, true),
                sample(*percent)
            ),
            _ => continue,
        };
        let _ = writeln!(rules, "    {rule} comment \"{comment}\"");
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_on_a_port_matches_both_protocols_and_samples() {
        let sel = Selector {
            src: vec![Ipv4Addr::new(10, 66, 0, 10)],
            dst: vec![Ipv4Addr::new(10, 66, 0, 11), Ipv4Addr::new(10, 66, 0, 12)],
            dport: Some(7070),
            sport: None,
        };
        let r = ruleset(
            "sbx_ab12c_f0",
            "sandbox lab=ab12c fault=x",
            &Effect::Loss { percent: 12.5 },
            &[(Hook::Forward, &[sel])],
        );
        assert!(r.contains(
            "ip saddr 10.66.0.10 ip daddr { 10.66.0.11, 10.66.0.12 } meta l4proto { tcp, udp } th dport 7070 numgen random mod 10000 < 1250 counter drop"
        ), "{r}");
        assert!(r.contains("hook forward priority -10"));
    }

    #[test]
    fn syn_drop_and_reset_are_tcp_only() {
        let sel = Selector {
            src: vec![],
            dst: vec![Ipv4Addr::new(10, 66, 0, 11)],
            dport: None,
            sport: None,
        };
        let r = ruleset(
            "t",
            "c",
            &Effect::SynDrop { percent: 100.0 },
            &[(Hook::Input, std::slice::from_ref(&sel))],
        );
        assert!(
            r.contains(
                "ip daddr 10.66.0.11 meta l4proto tcp tcp flags & (syn | ack) == syn counter drop"
            ),
            "{r}"
        );
        assert!(r.contains("chain input {\n    type filter hook input priority -10"));
        let r = ruleset(
            "t",
            "c",
            &Effect::Reset { percent: 5.0 },
            &[(Hook::Output, &[sel])],
        );
        assert!(
            r.contains(
                "tcp flags & rst == 0 numgen random mod 10000 < 500 counter reject with tcp reset"
            ),
            "{r}"
        );
    }
}
