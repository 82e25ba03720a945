//! Loss, resets, blackholes, partitions and SYN drops as one nftables table per fault, in the
//! lab's bridge namespace (forward hook, ahead of the delay queue so only surviving packets
//! are delayed). Removing the fault is one atomic `delete table`.

use std::fmt::Write;
use std::net::Ipv4Addr;

use super::selector::Selector;
use super::{FaultError, Place};
use crate::plan::Effect;
use crate::sys::cmd;

/// Priority of the faults' forward chains: before iptables' filter table (0), where the delay
/// queue sits.
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

/// An installed table; dropping it removes the table.
pub struct NftFault {
    place: Place,
    table: String,
    removed: bool,
}

pub fn install(
    place: &Place,
    table: &str,
    comment: &str,
    effect: &Effect,
    sels: &[Selector],
) -> Result<NftFault, FaultError> {
    let script = ruleset(table, comment, effect, sels);
    let mut c = place.command("nft")?;
    c.args(["-f", "-"]);
    cmd::run_with_input(&mut c, Some(&script))?;
    Ok(NftFault {
        place: place.clone(),
        table: table.to_string(),
        removed: false,
    })
}

impl NftFault {
    pub fn remove(mut self) -> Result<(), FaultError> {
        self.removed = true;
        delete_table(&self.place, &self.table)
    }

    /// Packets the fault's rules have matched so far.
    pub fn packets(&self) -> Result<u64, FaultError> {
        let mut c = self.place.command("nft")?;
        c.args(["list", "table", "inet", &self.table]);
        let out = cmd::run(&mut c)?;
        Ok(out
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "packets")
            .filter_map(|w| w[1].parse::<u64>().ok())
            .sum())
    }
}

impl Drop for NftFault {
    fn drop(&mut self) {
        if !self.removed {
            let _ = delete_table(&self.place, &self.table);
        }
    }
}

fn delete_table(place: &Place, table: &str) -> Result<(), FaultError> {
    let mut c = place.command("nft")?;
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

pub fn ruleset(table: &str, comment: &str, effect: &Effect, sels: &[Selector]) -> String {
    let mut rules = String::new();
    for sel in sels {
        let rule = match effect {
            Effect::Loss { percent } => {
                format!("{}{}counter drop", matches(sel, false), sample(*percent))
            }
            Effect::Blackhole | Effect::Partition => format!("{}counter drop", matches(sel, false)),
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
    format!(
        "table inet {table} {{\n  comment \"{comment}\"\n  chain forward {{\n    type filter hook forward priority {PRIORITY}; policy accept;\n{rules}  }}\n}}\n"
    )
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
            &[sel],
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
            std::slice::from_ref(&sel),
        );
        assert!(
            r.contains(
                "ip daddr 10.66.0.11 meta l4proto tcp tcp flags & (syn | ack) == syn counter drop"
            ),
            "{r}"
        );
        let r = ruleset("t", "c", &Effect::Reset { percent: 5.0 }, &[sel]);
        assert!(
            r.contains(
                "tcp flags & rst == 0 numgen random mod 10000 < 500 counter reject with tcp reset"
            ),
            "{r}"
        );
    }
}
