//! The TCP probes (ebpf/tcp.bpf.c): retransmissions, resets, drops, connects and RTT per flow,
//! named by the lab's instances. A flow is shown from the side that did something
//! (`sender → receiver:port`), with the server's port, never the ephemeral one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::json;

use super::hist::Log2Hist;
use super::{Probe, ProbeError, ProbeKind, Report, Scope};
use crate::ebpf::{self, Global, Object, Ring, objects};
use crate::report::grid;

const EV_RETRANS: u8 = 1;
const EV_SEND_RST: u8 = 2;
const EV_RECV_RST: u8 = 3;
const EV_CONNECT: u8 = 4;
const EV_DROP: u8 = 5;
const EV_RTT: u8 = 6;

/// `struct event` of tcp.bpf.c.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Event {
    ts_ns: u64,
    netns: u32,
    saddr: u32,
    daddr: u32,
    sport: u16,
    dport: u16,
    value: u32,
    err: i32,
    kind: u8,
    proto: u8,
    state: u8,
    pad: u8,
}

// SAFETY: plain old data laid out like `struct event`, padding explicit.
unsafe impl ebpf::Pod for Event {}

fn ip(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

/// The tracepoints each probe needs.
fn programs(kind: ProbeKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        ProbeKind::TcpRetrans => &[("tcp_retransmit", "tcp_retransmit_skb")],
        ProbeKind::TcpReset => &[
            ("tcp_send_reset", "tcp_send_reset"),
            ("tcp_receive_reset", "tcp_receive_reset"),
        ],
        ProbeKind::TcpDrop => &[("kfree_skb", "kfree_skb")],
        ProbeKind::TcpConnect => &[("inet_sock_set_state", "inet_sock_set_state")],
        _ => &[("tcp_probe", "tcp_probe")],
    }
}

pub fn attach(kind: ProbeKind, scope: &Scope) -> Result<Box<dyn Probe>, ProbeError> {
    let filter: u8 = u8::from(scope.target.is_some());
    let mut object = Object::load(&objects::TCP, &[Global::new("filter_ips", &filter)])?;
    for inode in scope.lab_inodes() {
        object.hash_insert("netns_allow", inode as u32, 1u8)?;
    }
    for a in scope.ips() {
        object.hash_insert("ip_allow", u32::from_ne_bytes(a.octets()), 1u8)?;
    }
    for (program, tracepoint) in programs(kind) {
        object.attach_raw_tracepoint(program, tracepoint)?;
    }
    let ring = object.ring("events")?;
    let reasons = if kind == ProbeKind::TcpDrop {
        drop_reasons()
    } else {
        BTreeMap::new()
    };
    Ok(Box::new(TcpProbe {
        kind,
        object,
        ring,
        view: View::new(scope),
        reasons,
        agg: Agg::default(),
        second: Vec::new(),
    }))
}

/// How the lab's addresses, ports and namespaces read to a person.
struct View {
    names: BTreeMap<Ipv4Addr, String>,
    places: BTreeMap<u32, String>,
    server_ports: BTreeSet<u16>,
}

impl View {
    fn new(scope: &Scope) -> View {
        let names = scope.all.iter().map(|m| (m.ip, m.name.clone())).collect();
        let mut places: BTreeMap<u32, String> = scope
            .all
            .iter()
            .map(|m| (m.netns_inode as u32, m.name.clone()))
            .collect();
        if let Some(router) = scope.router_inode {
            places.insert(router as u32, "network".into());
        }
        View {
            names,
            places,
            server_ports: scope.service_ports().into_iter().collect(),
        }
    }

    fn name(&self, raw: u32) -> String {
        let a = ip(raw);
        self.names.get(&a).cloned().unwrap_or_else(|| a.to_string())
    }

    fn place(&self, inode: u32) -> String {
        self.places
            .get(&inode)
            .cloned()
            .unwrap_or_else(|| format!("netns {inode}"))
    }

    /// Whether the source of a packet is the connection's server side.
    fn src_is_server(&self, sport: u16, dport: u16) -> bool {
        let (s, d) = (
            self.server_ports.contains(&sport),
            self.server_ports.contains(&dport),
        );
        match (s, d) {
            (true, false) => true,
            (false, true) => false,
            _ => sport < dport,
        }
    }

    /// The flow of `e` from its source's point of view.
    fn flow(&self, e: &Event) -> Flow {
        let server_src = self.src_is_server(e.sport, e.dport);
        Flow {
            from: self.name(e.saddr),
            to: self.name(e.daddr),
            port: if server_src { e.sport } else { e.dport },
            from_server: server_src,
        }
    }
}

/// One direction of a connection between two instances, keyed by the server's port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Flow {
    from: String,
    to: String,
    port: u16,
    /// The sender is the side listening on `port`.
    from_server: bool,
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from_server {
            write!(f, "{}:{} → {}", self.from, self.port, self.to)
        } else {
            write!(f, "{} → {}:{}", self.from, self.to, self.port)
        }
    }
}

impl Flow {
    fn json(&self) -> serde_json::Value {
        json!({"from": self.from, "to": self.to, "port": self.port, "from_server": self.from_server})
    }
}

#[derive(Default)]
struct Retrans {
    segs: u64,
    events: u64,
    failed: u64,
    per_second: BTreeMap<u64, u64>,
}

#[derive(Default)]
struct Resets {
    /// Resets the client of the connection received / the server received.
    client_got: u64,
    server_got: u64,
    client_sent: u64,
    server_sent: u64,
    /// Received while connecting (a refused connection).
    while_connecting: u64,
}

#[derive(Default)]
struct Connects {
    attempts: u64,
    ok: u64,
    failures: BTreeMap<&'static str, u64>,
    latency_us: Log2Hist,
    sum_us: u64,
    max_us: u64,
}

#[derive(Default)]
struct Rtt {
    samples: u64,
    /// Smoothed RTT: the path plus queueing plus the peer's delayed ACKs.
    sum_us: u64,
    max_us: u64,
    /// The lowest smoothed RTT seen in the run: close to the path's own RTT, since srtt dips
    /// whenever ACKs come back at once.
    path_us: u64,
    hist: Log2Hist,
}

#[derive(Default)]
struct Agg {
    retrans: BTreeMap<Flow, Retrans>,
    /// Keyed by (client, server, server port).
    resets: BTreeMap<(String, String, u16), Resets>,
    /// Keyed by (where, reason, flow, protocol).
    drops: BTreeMap<(String, u32, Flow, u8), u64>,
    connects: BTreeMap<Flow, Connects>,
    rtt: BTreeMap<Flow, Rtt>,
    rtt_all: Log2Hist,
}

fn connect_error(err: i32) -> &'static str {
    match err {
        -1 => "abandoned",
        110 => "timeout",
        111 => "refused",
        104 => "reset",
        113 | 101 => "unreachable",
        _ => "other",
    }
}

struct TcpProbe {
    kind: ProbeKind,
    /// Kept alive: dropping it detaches the programs.
    object: Object,
    ring: Ring,
    view: View,
    reasons: BTreeMap<u32, String>,
    agg: Agg,
    /// Events of the second in progress, for the live view.
    second: Vec<Event>,
}

impl TcpProbe {
    fn reason(&self, r: u32) -> String {
        self.reasons
            .get(&r)
            .cloned()
            .unwrap_or_else(|| format!("reason {r}"))
    }

    fn add(&mut self, e: Event, second: u64) {
        let view = &self.view;
        match e.kind {
            EV_RETRANS => {
                let r = self.agg.retrans.entry(view.flow(&e)).or_default();
                r.events += 1;
                if e.err == 0 {
                    r.segs += u64::from(e.value);
                    *r.per_second.entry(second).or_default() += u64::from(e.value);
                } else {
                    r.failed += 1;
                }
            }
            EV_SEND_RST | EV_RECV_RST => {
                // The socket's view: s = local, d = remote.
                let local_is_server = view.src_is_server(e.sport, e.dport);
                let (local, remote) = (view.name(e.saddr), view.name(e.daddr));
                let port = if local_is_server { e.sport } else { e.dport };
                let key = if local_is_server {
                    (remote, local, port)
                } else {
                    (local, remote, port)
                };
                let r = self.agg.resets.entry(key).or_default();
                match (e.kind, local_is_server) {
                    (EV_SEND_RST, true) => r.server_sent += 1,
                    (EV_SEND_RST, false) => r.client_sent += 1,
                    (_, true) => r.server_got += 1,
                    (_, false) => {
                        r.client_got += 1;
                        if e.state == 2 {
                            r.while_connecting += 1;
                        }
                    }
                }
            }
            EV_CONNECT => {
                let c = self.agg.connects.entry(view.flow(&e)).or_default();
                c.attempts += 1;
                if e.err == 0 {
                    c.ok += 1;
                    c.latency_us.add(u64::from(e.value));
                    c.sum_us += u64::from(e.value);
                    c.max_us = c.max_us.max(u64::from(e.value));
                } else {
                    *c.failures.entry(connect_error(e.err)).or_default() += 1;
                }
            }
            EV_DROP => {
                let key = (view.place(e.netns), e.value, view.flow(&e), e.proto);
                *self.agg.drops.entry(key).or_default() += 1;
            }
            EV_RTT => {
                let v = u64::from(e.value);
                let r = self.agg.rtt.entry(view.flow(&e)).or_default();
                r.path_us = if r.samples == 0 { v } else { r.path_us.min(v) };
                r.samples += 1;
                r.sum_us += v;
                r.max_us = r.max_us.max(v);
                r.hist.add(v);
                self.agg.rtt_all.add(v);
            }
            _ => {}
        }
    }

    fn lost(&self) -> u64 {
        self.object.percpu_sum("lost", 0).unwrap_or(0)
    }
}

impl Probe for TcpProbe {
    fn poll(&mut self) {
        let mut got = Vec::new();
        self.ring.drain(|b| {
            if let Some(e) = ebpf::read_event::<Event>(b) {
                got.push(e);
            }
        });
        self.second.extend(got);
    }

    fn tick(&mut self, second: u64) -> Option<(String, serde_json::Value)> {
        let events = std::mem::take(&mut self.second);
        for e in &events {
            self.add(*e, second);
        }
        let count_by = |f: &dyn Fn(&Event) -> Option<String>| {
            let mut m: BTreeMap<String, u64> = BTreeMap::new();
            for e in &events {
                if let Some(k) = f(e) {
                    *m.entry(k).or_default() += 1;
                }
            }
            let mut v: Vec<(String, u64)> = m.into_iter().collect();
            v.sort_by_key(|e| std::cmp::Reverse(e.1));
            v
        };
        let view = &self.view;
        let (line, top) = match self.kind {
            ProbeKind::TcpRetrans => {
                let mut segs: BTreeMap<String, u64> = BTreeMap::new();
                for e in events.iter().filter(|e| e.err == 0) {
                    *segs.entry(view.flow(e).to_string()).or_default() += u64::from(e.value);
                }
                let mut v: Vec<(String, u64)> = segs.into_iter().collect();
                v.sort_by_key(|e| std::cmp::Reverse(e.1));
                let total: u64 = v.iter().map(|x| x.1).sum();
                (format!("{total} segments retransmitted"), v)
            }
            ProbeKind::TcpReset => {
                let v = count_by(&|e| {
                    let verb = if e.kind == EV_SEND_RST {
                        "sent by"
                    } else {
                        "received by"
                    };
                    Some(format!(
                        "{verb} {} ({} ↔ {})",
                        view.name(e.saddr),
                        view.name(e.saddr),
                        view.name(e.daddr)
                    ))
                });
                (format!("{} resets", events.len()), v)
            }
            ProbeKind::TcpDrop => {
                let v = count_by(&|e| Some(format!("{} {}", self.reason(e.value), view.flow(e))));
                (format!("{} packets dropped", events.len()), v)
            }
            ProbeKind::TcpConnect => {
                let failed = events.iter().filter(|e| e.err != 0).count();
                let v = count_by(&|e| {
                    (e.err != 0).then(|| format!("{} {}", connect_error(e.err), view.flow(e)))
                });
                (format!("{} connects, {failed} failed", events.len()), v)
            }
            _ => {
                let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
                for e in &events {
                    let s = per.entry(view.flow(e).to_string()).or_default();
                    s.0 += u64::from(e.value);
                    s.1 += 1;
                }
                let mut v: Vec<(String, u64)> = per
                    .into_iter()
                    .map(|(k, (sum, n))| (k, sum / n.max(1)))
                    .collect();
                v.sort_by_key(|e| std::cmp::Reverse(e.1));
                (format!("{} RTT samples", events.len()), v)
            }
        };
        if events.is_empty() {
            return None;
        }
        let unit = if self.kind == ProbeKind::TcpRtt {
            " µs"
        } else {
            ""
        };
        let detail: Vec<String> = top
            .iter()
            .take(3)
            .map(|(k, n)| format!("{k}: {n}{unit}"))
            .collect();
        let value = json!({"events": events.len(), "top": top.iter().take(10).map(|(k, n)| json!({"what": k, "n": n})).collect::<Vec<_>>()});
        Some((format!("{line}  {}", detail.join("; ")), value))
    }

    fn finish(mut self: Box<Self>, elapsed: Duration) -> Report {
        // Events after the last full second count towards it.
        let second = elapsed.as_secs().max(1);
        let _ = self.tick(second);
        let lost = self.lost();
        let mut report = match self.kind {
            ProbeKind::TcpRetrans => self.report_retrans(second),
            ProbeKind::TcpReset => self.report_resets(),
            ProbeKind::TcpDrop => self.report_drops(),
            ProbeKind::TcpConnect => self.report_connects(),
            _ => self.report_rtt(),
        };
        if lost > 0 {
            report.text.push_str(&format!(
                "\n{lost} events were lost (ring buffer full); counts are low.\n"
            ));
        }
        if let Some(m) = report.summary.as_object_mut() {
            m.insert("lost_events".into(), json!(lost));
            m.insert("seconds".into(), json!(elapsed.as_secs_f64()));
        }
        report
    }
}

/// A heat map cell for `n` against the busiest cell `max`.
fn shade(n: u64, max: u64) -> char {
    const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];
    if n == 0 || max == 0 {
        return '·';
    }
    SHADES[(1 + (n * 3).div_ceil(max) as usize).min(4)]
}

impl TcpProbe {
    fn report_retrans(&self, seconds: u64) -> Report {
        let mut flows: Vec<(&Flow, &Retrans)> = self.agg.retrans.iter().collect();
        flows.sort_by_key(|e| std::cmp::Reverse(e.1.segs));
        let total: u64 = flows.iter().map(|f| f.1.segs).sum();
        let mut text = format!("Retransmitted segments: {total}\n");
        if flows.is_empty() {
            text.push_str(
                "No retransmissions: every segment in scope was delivered the first time.\n",
            );
        } else {
            let rows = flows.iter().map(|(f, r)| {
                let share = if total == 0 {
                    0.0
                } else {
                    100.0 * r.segs as f64 / total as f64
                };
                vec![
                    f.to_string(),
                    r.segs.to_string(),
                    format!("{share:.0}%"),
                    r.events.to_string(),
                    r.failed.to_string(),
                ]
            });
            text.push_str(&grid(
                &[
                    "FLOW (sender → receiver)",
                    "SEGMENTS",
                    "SHARE",
                    "EVENTS",
                    "FAILED",
                ],
                rows,
            ));
            text.push_str(
                "\n\nPer second (each column is one second; darker = more retransmissions):\n",
            );
            let max = flows
                .iter()
                .flat_map(|f| f.1.per_second.values())
                .copied()
                .max()
                .unwrap_or(0);
            let width = flows
                .iter()
                .map(|f| f.0.to_string().chars().count())
                .max()
                .unwrap_or(0);
            for (f, r) in flows.iter().take(12) {
                let cells: String = (1..=seconds.min(120))
                    .map(|s| shade(r.per_second.get(&s).copied().unwrap_or(0), max))
                    .collect();
                text.push_str(&format!("  {:<width$}  |{cells}|\n", f.to_string()));
            }
        }
        let summary = json!({
            "total_segments": total,
            "flows": flows.iter().map(|(f, r)| {
                let mut v = f.json();
                v["segments"] = json!(r.segs);
                v["events"] = json!(r.events);
                v["per_second"] = json!((1..=seconds).map(|s| r.per_second.get(&s).copied().unwrap_or(0)).collect::<Vec<_>>());
                v
            }).collect::<Vec<_>>(),
        });
        Report { text, summary }
    }

    fn report_resets(&self) -> Report {
        let mut text = String::new();
        let total: u64 = self
            .agg
            .resets
            .values()
            .map(|r| r.client_got + r.server_got)
            .sum();
        text.push_str(&format!("Resets received: {total}\n"));
        let mut flows: Vec<_> = self.agg.resets.iter().collect();
        flows.sort_by(|a, b| {
            (b.1.client_got + b.1.server_got).cmp(&(a.1.client_got + a.1.server_got))
        });
        // Resets one side received that the other never sent came from the network between.
        let who = |got: u64, peer_sent: u64| -> &'static str {
            if got == 0 {
                "-"
            } else if peer_sent == 0 {
                "network"
            } else if peer_sent >= got {
                "peer"
            } else {
                "peer and network"
            }
        };
        if flows.is_empty() {
            text.push_str("No resets in scope.\n");
        } else {
            let rows = flows.iter().map(|((client, server, port), r)| {
                vec![
                    format!("{client} → {server}:{port}"),
                    r.client_got.to_string(),
                    r.server_got.to_string(),
                    r.client_sent.to_string(),
                    r.server_sent.to_string(),
                    r.while_connecting.to_string(),
                    who(r.client_got, r.server_sent).to_string(),
                    who(r.server_got, r.client_sent).to_string(),
                ]
            });
            text.push_str(&grid(
                &[
                    "CONNECTION (client → server)",
                    "CLIENT GOT",
                    "SERVER GOT",
                    "CLIENT SENT",
                    "SERVER SENT",
                    "REFUSED",
                    "CLIENT'S FROM",
                    "SERVER'S FROM",
                ],
                rows,
            ));
            text.push_str(
                "\n(FROM: `peer` = the other end sent them; `network` = neither end did, something in between forged them)\n",
            );
        }
        let summary = json!({
            "received": total,
            "connections": flows.iter().map(|((client, server, port), r)| json!({
                "client": client, "server": server, "port": port,
                "client_received": r.client_got, "server_received": r.server_got,
                "client_sent": r.client_sent, "server_sent": r.server_sent,
                "refused": r.while_connecting,
                "client_resets_from": who(r.client_got, r.server_sent),
                "server_resets_from": who(r.server_got, r.client_sent),
            })).collect::<Vec<_>>(),
        });
        Report { text, summary }
    }

    fn report_drops(&self) -> Report {
        let total: u64 = self.agg.drops.values().sum();
        let mut text = format!("Packets dropped by the kernel: {total}\n");
        let mut by_reason: BTreeMap<u32, u64> = BTreeMap::new();
        for ((_, reason, _, _), n) in &self.agg.drops {
            *by_reason.entry(*reason).or_default() += n;
        }
        let mut rows: Vec<_> = self.agg.drops.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1));
        if rows.is_empty() {
            text.push_str("No drops in scope.\n");
        } else {
            let mut reasons: Vec<_> = by_reason.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1));
            text.push_str(&grid(
                &["REASON", "PACKETS"],
                reasons
                    .iter()
                    .map(|(r, n)| vec![self.reason(**r), n.to_string()]),
            ));
            text.push_str("\n\n");
            let proto = |p: u8| match p {
                6 => "tcp".to_string(),
                17 => "udp".to_string(),
                1 => "icmp".to_string(),
                p => format!("proto {p}"),
            };
            text.push_str(&grid(
                &["WHERE", "REASON", "FLOW", "PROTO", "PACKETS"],
                rows.iter().map(|((place, reason, flow, p), n)| {
                    vec![
                        place.clone(),
                        self.reason(*reason),
                        flow.to_string(),
                        proto(*p),
                        n.to_string(),
                    ]
                }),
            ));
            text.push('\n');
        }
        let summary = json!({
            "total": total,
            "by_reason": by_reason.iter().map(|(r, n)| json!({"reason": self.reason(*r), "packets": n})).collect::<Vec<_>>(),
            "drops": rows.iter().map(|((place, reason, flow, p), n)| {
                let mut v = flow.json();
                v["where"] = json!(place);
                v["reason"] = json!(self.reason(*reason));
                v["proto"] = json!(p);
                v["packets"] = json!(n);
                v
            }).collect::<Vec<_>>(),
        });
        Report { text, summary }
    }

    fn report_connects(&self) -> Report {
        let attempts: u64 = self.agg.connects.values().map(|c| c.attempts).sum();
        let failed: u64 = self.agg.connects.values().map(|c| c.attempts - c.ok).sum();
        let mut text = format!("Connection attempts: {attempts}, failed: {failed}\n");
        let mut all = Log2Hist::default();
        for c in self.agg.connects.values() {
            for (i, n) in c.latency_us.buckets.iter().enumerate() {
                all.add_n(i, *n);
            }
        }
        let failures = |c: &Connects| {
            if c.failures.is_empty() {
                "-".to_string()
            } else {
                c.failures
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        if self.agg.connects.is_empty() {
            text.push_str(
                "No connections were attempted in scope (pooled connections are reused).\n",
            );
        } else {
            let rows = self.agg.connects.iter().map(|(f, c)| {
                let mean = c
                    .sum_us
                    .checked_div(c.ok)
                    .map_or_else(|| "-".to_string(), |m| m.to_string());
                vec![
                    f.to_string(),
                    c.attempts.to_string(),
                    c.ok.to_string(),
                    failures(c),
                    mean,
                    format!("≤{}", c.latency_us.quantile_bound(0.99)),
                ]
            });
            text.push_str(&grid(
                &[
                    "DESTINATION (client → server)",
                    "ATTEMPTS",
                    "OK",
                    "FAILED",
                    "MEAN µs",
                    "P99 µs",
                ],
                rows,
            ));
            text.push_str("\n\nConnect latency of successful connects (µs):\n");
            text.push_str(&all.render("µs"));
        }
        let summary = json!({
            "attempts": attempts,
            "failed": failed,
            "destinations": self.agg.connects.iter().map(|(f, c)| {
                let mut v = f.json();
                v["attempts"] = json!(c.attempts);
                v["ok"] = json!(c.ok);
                v["failures"] = json!(c.failures);
                v["mean_us"] = json!(c.sum_us.checked_div(c.ok).unwrap_or(0));
                v["max_us"] = json!(c.max_us);
                v
            }).collect::<Vec<_>>(),
        });
        Report { text, summary }
    }

    fn report_rtt(&self) -> Report {
        let mut flows: Vec<_> = self.agg.rtt.iter().collect();
        flows.sort_by_key(|e| std::cmp::Reverse(e.1.path_us));
        let mut text = String::from(
            "RTT per connection side (the kernel's smoothed RTT, sampled on received segments).\n\
             PATH is the lowest it got during the run, close to the network's own RTT; the mean adds\n\
             queueing and the peer's delayed ACKs.\n",
        );
        let mean = |r: &Rtt| r.sum_us / r.samples.max(1);
        if flows.is_empty() {
            text.push_str("No established connections carried traffic in scope.\n");
        } else {
            let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
            let rows = flows.iter().map(|(f, r)| {
                vec![
                    f.to_string(),
                    r.samples.to_string(),
                    ms(r.path_us),
                    ms(mean(r)),
                    ms(r.max_us),
                ]
            });
            text.push_str(&grid(
                &[
                    "FLOW (measured by → peer)",
                    "SAMPLES",
                    "PATH ms",
                    "SRTT ms",
                    "SRTT MAX ms",
                ],
                rows,
            ));
            text.push_str("\n\nAll SRTT samples (µs):\n");
            text.push_str(&self.agg.rtt_all.render("µs"));
        }
        let summary = json!({
            "flows": flows.iter().map(|(f, r)| {
                let mut v = f.json();
                v["samples"] = json!(r.samples);
                v["path_us"] = json!(r.path_us);
                v["mean_us"] = json!(mean(r));
                v["max_us"] = json!(r.max_us);
                v
            }).collect::<Vec<_>>(),
        });
        Report { text, summary }
    }
}

/// The kernel's names for its drop reasons, from the kfree_skb tracepoint's format (tracefs is
/// mounted if it is not). Numbers alone when that is not possible.
fn drop_reasons() -> BTreeMap<u32, String> {
    let dir = std::path::Path::new("/sys/kernel/tracing");
    let format = dir.join("events/skb/kfree_skb/format");
    if !format.exists() {
        let _ = crate::sys::cmd::run(
            std::process::Command::new("mount")
                .args(["-t", "tracefs", "tracefs"])
                .arg(dir),
        );
    }
    std::fs::read_to_string(&format)
        .map(|t| parse_reasons(&t))
        .unwrap_or_default()
}

/// `{ 2, "NOT_SPECIFIED" }` pairs of a `__print_symbolic` list.
fn parse_reasons(format: &str) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    let mut rest = format;
    while let Some(i) = rest.find('{') {
        rest = &rest[i + 1..];
        let Some(j) = rest.find('}') else { break };
        let inner = &rest[..j];
        if let Some((num, name)) = inner.split_once(',') {
            let name = name.trim().trim_matches('"');
            if let Ok(n) = num.trim().parse::<u32>()
                && !name.is_empty()
            {
                out.insert(n, name.to_string());
            }
        }
        rest = &rest[j..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_names_come_from_the_tracepoint_format() {
        let fmt = r#"print fmt: "skbaddr=%p reason: %s", REC->skbaddr, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 6, "NETFILTER_DROP" })"#;
        let r = parse_reasons(fmt);
        assert_eq!(r.get(&6).map(String::as_str), Some("NETFILTER_DROP"));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn server_side_is_the_service_port() {
        let view = View {
            names: BTreeMap::new(),
            places: BTreeMap::new(),
            server_ports: [7070u16, 8080, 9090].into_iter().collect(),
        };
        assert!(view.src_is_server(7070, 43512));
        assert!(!view.src_is_server(43512, 8080));
        assert!(
            view.src_is_server(5201, 43512),
            "unknown ports: the lower is the server"
        );
    }

    #[test]
    fn heat_map_shades_scale_with_the_peak() {
        assert_eq!(shade(0, 10), '·');
        assert_eq!(shade(10, 10), '█');
        assert_eq!(shade(1, 10), '▒');
    }
}
