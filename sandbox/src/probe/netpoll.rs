//! `netpoll`: how long a Go service's goroutines block in the runtime's network poller
//! (`internal/poll.runtime_pollWait`), per remote peer, split into the service waiting on its
//! upstreams (client side) and waiting on its callers (server side). A slow upstream shows as
//! long client-side waits on the connections to it, whatever the protocol on top.
//!
//! A wait during which the service wrote on the same connection counts from that write: the
//! idle time of a pooled connection before a request is left out, so a client-side wait is
//! the upstream's response time, independent of request rate and pool size.
//!
//! Kernel side: ebpf/netpoll.bpf.c, uprobes at the function's entry and at each of its RETs
//! (found by [`super::gosym`]), and at the entry of `internal/poll.(*FD).Write`. The kernel
//! reports (process, fd, wait, result); the fd is named here through /proc/PID/fd and the
//! target's own view of /proc/PID/net/tcp{,6}.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde_json::json;

use super::goproc::{Binaries, GoProcess};
use super::gosym::{self, GoFunc};
use super::hist::Log2Hist;
use super::{Probe, ProbeError, Report, Scope, human_us, monotonic_ns};
use crate::ebpf::{self, Global, Object, Ring, objects};
use crate::report::grid;

const FUNC: &str = "internal/poll.runtime_pollWait";
const WRITE_FUNC: &str = "internal/poll.(*FD).Write";
/// Offsets of `pollDesc.fd` and `FD.Sysfd` in Go 1.19 to 1.27 (from their DWARF).
const FD_OFF: u64 = 8;
const SYSFD_OFF: u64 = 16;
/// Slots of the `np_stats` map.
const LOST: u32 = 0;
const UNMATCHED: u32 = 1;
/// The `mode` argument of a wait for writing (`'w'`; reads are `'r'`).
const MODE_WRITE: u32 = b'w' as u32;

/// One finished wait, laid out like `struct np_event`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Event {
    lat_ns: u64,
    idle_ns: u64,
    fd: i64,
    ret: i64,
    tgid: u32,
    mode: u32,
}

// SAFETY: plain old data without padding, as the kernel side writes it.
unsafe impl ebpf::Pod for Event {}

/// A wait in progress, as `np_starts` keys and holds it.
#[repr(C)]
#[derive(Clone, Copy)]
struct StartKey {
    tgid: u64,
    g: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct StartVal {
    ts: u64,
    fd: i64,
    mode: u64,
}

// SAFETY: plain old data without padding, laid out like `struct np_key` / `struct np_start`.
unsafe impl ebpf::Pod for StartKey {}
// SAFETY: as above.
unsafe impl ebpf::Pod for StartVal {}

/// The probe points of one binary.
#[derive(Clone)]
struct Points {
    wait: GoFunc,
    write: GoFunc,
}

/// A targeted process.
struct Target {
    instance: String,
    /// Ports it listens on: connections with one of them as the local port are server side.
    ports: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Role {
    /// The service waits on an upstream it called.
    Client,
    /// The service waits on a caller (or, on a listener, for new connections).
    Server,
    /// Not a TCP connection, or closed before it could be looked up.
    Other,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
            Role::Other => "other",
        }
    }
}

/// What a wait is attributed to. `port` is the listening port of the connection: the
/// upstream's on the client side, the service's own on the server side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct PeerKey {
    instance: String,
    role: Role,
    peer: String,
    port: u16,
}

/// Waits, each counted from the later of parking and the service's last write on the fd.
#[derive(Debug, Default, Clone)]
struct Stats {
    count: u64,
    total_ns: u64,
    max_ns: u64,
    hist_us: Log2Hist,
    /// Blocked time left out because it came before a write: idle pooled connections.
    idle_ns: u64,
    /// By result: ok, closing, timeout, anything else.
    results: [u64; 4],
    /// Waits for room to write (a full socket buffer) rather than for data.
    write_waits: u64,
}

/// How long `e` waited on its peer: blocked time after the service's last write.
fn wait_ns(e: &Event) -> u64 {
    e.lat_ns.saturating_sub(e.idle_ns)
}

impl Stats {
    fn add(&mut self, e: &Event) {
        let wait = wait_ns(e);
        self.count += 1;
        self.total_ns += wait;
        self.max_ns = self.max_ns.max(wait);
        self.hist_us.add(wait / 1000);
        self.idle_ns += e.idle_ns;
        self.results[usize::try_from(e.ret).map_or(3, |r| r.min(3))] += 1;
        if e.mode == MODE_WRITE {
            self.write_waits += 1;
        }
    }

    fn mean_us(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ns as f64 / self.count as f64 / 1000.0
        }
    }
}

/// A TCP socket as /proc/PID/net/tcp{,6} lists it.
#[derive(Debug, Clone, PartialEq)]
struct Sock {
    local_port: u16,
    remote: IpAddr,
    remote_port: u16,
    listening: bool,
}

/// Parses one line of /proc/net/tcp or tcp6 into (inode, socket).
fn parse_tcp_line(line: &str) -> Option<(u64, Sock)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (local, remote, state, inode) = (f.get(1)?, f.get(2)?, f.get(3)?, f.get(9)?);
    let addr = |s: &str| -> Option<(IpAddr, u16)> {
        let (ip, port) = s.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        // Addresses are 32-bit words in network byte order, each printed as a native integer.
        let mut bytes = Vec::with_capacity(16);
        for i in (0..ip.len()).step_by(8) {
            let w = u32::from_str_radix(ip.get(i..i + 8)?, 16).ok()?;
            bytes.extend_from_slice(&w.to_ne_bytes());
        }
        let ip = match bytes.len() {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
            16 => {
                let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
            }
            _ => return None,
        };
        Some((ip, port))
    };
    let (_, local_port) = addr(local)?;
    let (remote, remote_port) = addr(remote)?;
    Some((
        inode.parse().ok()?,
        Sock {
            local_port,
            remote,
            remote_port,
            listening: *state == "0A",
        },
    ))
}

/// The TCP sockets of `pid`'s network namespace, by inode.
fn tcp_sockets(pid: u32) -> HashMap<u64, Sock> {
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_tcp_line)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What fd `fd` of `pid` is: a socket inode, or a reason it is none.
fn socket_inode(pid: u32, fd: i64) -> Result<u64, &'static str> {
    let link =
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).map_err(|_| "(closed before lookup)")?;
    link.to_str()
        .and_then(|l| l.strip_prefix("socket:["))
        .and_then(|l| l.strip_suffix(']'))
        .and_then(|i| i.parse().ok())
        .ok_or("(not a socket)")
}

/// Names fds: socket inode → connection → peer, with each process's socket table re-read at
/// most once per batch of events.
#[derive(Default)]
struct Resolver {
    sockets: HashMap<u32, HashMap<u64, Sock>>,
}

impl Resolver {
    fn peer(
        &mut self,
        scope: &Scope,
        target: &Target,
        pid: u32,
        fd: i64,
        refreshed: &mut HashSet<u32>,
    ) -> PeerKey {
        let other = |peer: &str| PeerKey {
            instance: target.instance.clone(),
            role: Role::Other,
            peer: peer.into(),
            port: 0,
        };
        let inode = match socket_inode(pid, fd) {
            Ok(i) => i,
            Err(why) => return other(why),
        };
        if !self
            .sockets
            .get(&pid)
            .is_some_and(|s| s.contains_key(&inode))
            && refreshed.insert(pid)
        {
            self.sockets.insert(pid, tcp_sockets(pid));
        }
        let Some(s) = self.sockets.get(&pid).and_then(|s| s.get(&inode)) else {
            return other("(not TCP)");
        };
        let name = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => scope.name_of(v4),
            IpAddr::V6(v6) => v6.to_string(),
        };
        let (role, peer, port) = if s.listening {
            (Role::Server, "(new connections)".to_string(), s.local_port)
        } else if target.ports.contains(&s.local_port) {
            (Role::Server, name(s.remote), s.local_port)
        } else {
            (Role::Client, name(s.remote), s.remote_port)
        };
        PeerKey {
            instance: target.instance.clone(),
            role,
            peer,
            port,
        }
    }
}

struct Netpoll {
    object: Object,
    ring: Ring,
    scope: Scope,
    targets: HashMap<u32, Target>,
    resolver: Resolver,
    peers: HashMap<PeerKey, Stats>,
    hists: BTreeMap<Role, Log2Hist>,
    events: u64,
    this_second: HashMap<PeerKey, Stats>,
    /// How each process was probed, for the report.
    probed: Vec<GoProcess<Points>>,
}

impl Netpoll {
    /// Waits that had not returned when the probe ended, per peer: the goroutines parked in the
    /// poller right now, and for how long the oldest has been (a leak's signature: the count
    /// grows and the age exceeds every timeout).
    fn still_blocked(&mut self) -> Vec<(PeerKey, (u64, u64))> {
        let now = monotonic_ns();
        let entries: Vec<(StartKey, StartVal)> =
            self.object.hash_entries("np_starts").unwrap_or_default();
        let mut by_peer: HashMap<PeerKey, (u64, u64)> = HashMap::new();
        let mut refreshed = HashSet::new();
        for (k, v) in entries {
            let Ok(pid) = u32::try_from(k.tgid) else {
                continue;
            };
            let Some(target) = self.targets.get(&pid) else {
                continue;
            };
            let peer = self
                .resolver
                .peer(&self.scope, target, pid, v.fd, &mut refreshed);
            let e = by_peer.entry(peer).or_default();
            e.0 += 1;
            e.1 = e.1.max(now.saturating_sub(v.ts));
        }
        let mut out: Vec<_> = by_peer.into_iter().collect();
        out.sort_by_key(|(_, (n, _))| std::cmp::Reverse(*n));
        out
    }
}

pub fn attach(scope: &Scope) -> Result<Box<dyn Probe>, ProbeError> {
    let running = scope.running()?;
    let globals = [
        Global::new("fd_off", &FD_OFF),
        Global::new("sysfd_off", &SYSFD_OFF),
    ];
    let mut object = Object::load(&objects::NETPOLL, &globals)?;
    for (_, pid) in &running {
        object.hash_insert("np_targets", *pid, 1u8)?;
    }
    let mut binaries = Binaries::default();
    let mut targets = HashMap::new();
    let mut probed = Vec::new();
    for (m, pid) in running {
        let p = binaries.process(&m.name, pid, |data, shown| {
            Ok(Points {
                wait: gosym::locate(data, shown, FUNC)?,
                write: gosym::locate(data, shown, WRITE_FUNC)?,
            })
        })??;
        let (wait, write, only) = (&p.points.wait, &p.points.write, Some(pid));
        object.attach_uprobe("sbx_np_write", &p.exe, &[write.entry_offset()], only)?;
        object.attach_uprobe("sbx_np_entry", &p.exe, &[wait.entry_offset()], only)?;
        object.attach_uprobe("sbx_np_ret", &p.exe, &wait.ret_offsets(), only)?;
        probed.push(p);
        let ports = scope
            .state
            .instances
            .iter()
            .find(|i| i.name == m.name)
            .map(|i| i.ports.clone())
            .unwrap_or_default();
        targets.insert(
            pid,
            Target {
                instance: m.name.clone(),
                ports,
            },
        );
    }
    let ring = object.ring("np_events")?;
    Ok(Box::new(Netpoll {
        object,
        ring,
        scope: scope.clone(),
        targets,
        resolver: Resolver::default(),
        peers: HashMap::new(),
        hists: BTreeMap::new(),
        events: 0,
        this_second: HashMap::new(),
        probed,
    }))
}

/// The peer whose waits were longest on average: an upstream if there was any client-side
/// wait, else a caller.
fn slowest(stats: &HashMap<PeerKey, Stats>) -> Option<(&PeerKey, &Stats)> {
    let by_mean = |role: Role| {
        stats
            .iter()
            .filter(|(k, _)| k.role == role && k.peer != "(new connections)")
            .max_by(|a, b| a.1.mean_us().total_cmp(&b.1.mean_us()))
    };
    by_mean(Role::Client).or_else(|| by_mean(Role::Server))
}

/// One peer's figures for the JSON summary; `p50_us` and `p99_us` are upper bounds (the edge
/// of the log2 bucket holding the quantile), not values.
fn peer_json(k: &PeerKey, s: &Stats) -> serde_json::Value {
    json!({
        "instance": k.instance,
        "role": k.role.name(),
        "peer": k.peer,
        "port": k.port,
        "count": s.count,
        "total_us": s.total_ns / 1000,
        "mean_us": (s.mean_us() * 10.0).round() / 10.0,
        "max_us": s.max_ns / 1000,
        "p50_us": s.hist_us.quantile_bound(0.5),
        "p99_us": s.hist_us.quantile_bound(0.99),
        "ok": s.results[0],
        "closing": s.results[1],
        "timeout": s.results[2],
        "other": s.results[3],
        "write_waits": s.write_waits,
        "idle_us": s.idle_ns / 1000,
    })
}

impl Probe for Netpoll {
    fn poll(&mut self) {
        let mut batch = Vec::new();
        self.ring.drain(|b| {
            if let Some(e) = ebpf::read_event::<Event>(b) {
                batch.push(e);
            }
        });
        let mut named: HashMap<(u32, i64), PeerKey> = HashMap::new();
        let mut refreshed = HashSet::new();
        for e in batch {
            let Some(target) = self.targets.get(&e.tgid) else {
                continue;
            };
            let key = match named.get(&(e.tgid, e.fd)) {
                Some(k) => k.clone(),
                None => {
                    let k = self
                        .resolver
                        .peer(&self.scope, target, e.tgid, e.fd, &mut refreshed);
                    named.insert((e.tgid, e.fd), k.clone());
                    k
                }
            };
            self.events += 1;
            self.hists
                .entry(key.role)
                .or_default()
                .add(wait_ns(&e) / 1000);
            self.this_second.entry(key.clone()).or_default().add(&e);
            self.peers.entry(key).or_default().add(&e);
        }
    }

    fn tick(&mut self, _second: u64) -> Option<(String, serde_json::Value)> {
        let stats = std::mem::take(&mut self.this_second);
        let events: u64 = stats.values().map(|s| s.count).sum();
        if events == 0 {
            return None;
        }
        let mut line = format!("{events:>6} waits");
        let mut value = json!({"events": events});
        if let Some((k, s)) = slowest(&stats) {
            let who = if k.role == Role::Client {
                "upstream"
            } else {
                "caller"
            };
            line.push_str(&format!(
                "   slowest {who} {}:{} of {}: mean {}, max {} ({} waits)",
                k.peer,
                k.port,
                k.instance,
                human_us(s.mean_us()),
                human_us(s.max_ns as f64 / 1000.0),
                s.count
            ));
            value["slowest"] = peer_json(k, s);
        }
        Some((line, value))
    }

    fn finish(mut self: Box<Self>, elapsed: Duration) -> Report {
        let blocked = self.still_blocked();
        let lost = self.object.percpu_sum("np_stats", LOST).unwrap_or(0);
        let unmatched = self.object.percpu_sum("np_stats", UNMATCHED).unwrap_or(0);
        let secs = elapsed.as_secs_f64().max(1e-3);
        let rate = self.events as f64 / secs;
        let many = self.targets.len() > 1;
        let mut out = format!(
            "{} waits in the network poller in {secs:.1} s ({rate:.0}/s); {lost} lost (ring full), \
             {unmatched} already waiting when the probe attached.\n",
            self.events
        );
        for p in &self.probed {
            let (wait, write) = (&p.points.wait, &p.points.write);
            out.push_str(&format!(
                "  {} (pid {}): {}, {FUNC} at {:#x} ({} B, from {}, {} RETs probed), \
                 {WRITE_FUNC} at {:#x}\n",
                p.instance,
                p.pid,
                p.binary,
                wait.address,
                wait.size,
                wait.table.name(),
                wait.rets.len(),
                write.address,
            ));
        }
        let mut rows: Vec<(&PeerKey, &Stats)> = self.peers.iter().collect();
        rows.sort_by(|a, b| {
            (a.0.role, b.1.mean_us())
                .partial_cmp(&(b.0.role, a.1.mean_us()))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let sections = [
            (Role::Client, "Client side: waiting on upstreams it called"),
            (Role::Server, "Server side: waiting on its callers"),
            (Role::Other, "Other fds"),
        ];
        for (role, title) in sections {
            let mine: Vec<_> = rows.iter().filter(|(k, _)| k.role == role).collect();
            if mine.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{title} (wait, µs)\n"));
            if let Some(h) = self.hists.get(&role) {
                out.push_str(&h.render("µs"));
            }
            let mut headers = vec![
                "PEER",
                "PORT",
                "WAITS",
                "TOTAL",
                "MEAN",
                "MAX",
                "P50≤",
                "P99≤",
                "OK",
                "CLOSING",
                "TIMEOUT",
                "FOR WRITE",
                "IDLE",
            ];
            if many {
                headers.insert(0, "INSTANCE");
            }
            let table = mine.iter().map(|(k, s)| {
                let mut r = vec![
                    k.peer.clone(),
                    k.port.to_string(),
                    s.count.to_string(),
                    human_us(s.total_ns as f64 / 1000.0),
                    human_us(s.mean_us()),
                    human_us(s.max_ns as f64 / 1000.0),
                    human_us(s.hist_us.quantile_bound(0.5) as f64),
                    human_us(s.hist_us.quantile_bound(0.99) as f64),
                    s.results[0].to_string(),
                    s.results[1].to_string(),
                    s.results[2].to_string(),
                    s.write_waits.to_string(),
                    human_us(s.idle_ns as f64 / 1000.0),
                ];
                if many {
                    r.insert(0, k.instance.clone());
                }
                r
            });
            out.push_str(&grid(&headers, table));
            out.push('\n');
        }
        if !blocked.is_empty() {
            out.push_str("\nStill waiting when the probe ended (parked since the probe attached, or longer)\n");
            out.push_str(&grid(
                &["INSTANCE", "SIDE", "PEER", "PORT", "GOROUTINES", "LONGEST"],
                blocked.iter().map(|(k, (n, oldest))| {
                    vec![
                        k.instance.clone(),
                        k.role.name().into(),
                        k.peer.clone(),
                        k.port.to_string(),
                        n.to_string(),
                        human_us(*oldest as f64 / 1000.0),
                    ]
                }),
            ));
            out.push('\n');
        }
        if self.events == 0 {
            out.push_str(
                "\nNo goroutine blocked on the network: is the service getting traffic?\n",
            );
        } else {
            out.push_str(
                "\nA wait runs from the goroutine parking, or from the service's last write on \
                 that connection if it wrote meanwhile, until data arrived; the blocked time \
                 before that write (an idle pooled connection) is IDLE. So a client-side wait is \
                 the upstream's response time, a server-side one the time until the caller's \
                 next bytes (on keep-alive connections, its next request). Server-side timeouts \
                 are mostly net/http ending its background read, not timeouts a user saw.\n",
            );
        }
        let slowest_upstream = slowest(&self.peers)
            .filter(|(k, _)| k.role == Role::Client)
            .map(|(k, s)| peer_json(k, s));
        let hist = |r: Role| {
            self.hists
                .get(&r)
                .map(|h| h.buckets.clone())
                .unwrap_or_default()
        };
        let summary = json!({
            "events": self.events,
            "events_per_s": (rate * 10.0).round() / 10.0,
            "lost": lost,
            "unmatched": unmatched,
            "processes": self.probed.iter().map(|p| p.json(&p.points.wait)).collect::<Vec<_>>(),
            "peers": rows.iter().map(|(k, s)| peer_json(k, s)).collect::<Vec<_>>(),
            "slowest_upstream": slowest_upstream,
            "blocked": blocked.iter().map(|(k, (n, oldest))| json!({
                "instance": k.instance, "role": k.role.name(), "peer": k.peer, "port": k.port,
                "goroutines": n, "oldest_us": oldest / 1000,
            })).collect::<Vec<_>>(),
            "hist_us": {"client": hist(Role::Client), "server": hist(Role::Server)},
        });
        Report { text: out, summary }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_parse() {
        let v4 = "   3: 0A00420A:1F90 0B00420A:B4C2 01 00000000:00000000 02:000A1B2C 00000000     0        0 123456 2 0000000000000000 20 4 30 10 -1";
        let (inode, s) = parse_tcp_line(v4).unwrap();
        assert_eq!(inode, 123456);
        assert_eq!(
            s,
            Sock {
                local_port: 8080,
                remote: IpAddr::V4(Ipv4Addr::new(10, 66, 0, 11)),
                remote_port: 0xb4c2,
                listening: false
            }
        );
        let v6 = "   0: 0000000000000000FFFF00000A00420A:1F90 0000000000000000FFFF00000C00420A:D431 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 30 10 -1";
        let (inode, s) = parse_tcp_line(v6).unwrap();
        assert_eq!(inode, 777);
        assert_eq!(s.remote, IpAddr::V4(Ipv4Addr::new(10, 66, 0, 12)));
        let listen = "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 42 1 0000000000000000 100 0 0 10 0";
        assert!(parse_tcp_line(listen).unwrap().1.listening);
        assert!(parse_tcp_line("  sl  local_address rem_address   st").is_none());
    }

    #[test]
    fn stats_count_results_and_writes() {
        let mut s = Stats::default();
        // The second waited 12 ms, of which 9 ms idle before the service wrote a request.
        let waits = [
            (1_000_000, 0, 0, b'r'),
            (12_000_000, 9_000_000, 2, b'r'),
            (2_000, 0, 1, b'w'),
        ];
        for (lat, idle, ret, mode) in waits {
            s.add(&Event {
                lat_ns: lat,
                idle_ns: idle,
                fd: 7,
                ret,
                tgid: 1,
                mode: u32::from(mode),
            });
        }
        assert_eq!(s.results, [1, 1, 1, 0]);
        assert_eq!(s.write_waits, 1);
        assert_eq!(s.max_ns, 3_000_000);
        assert_eq!(s.idle_ns, 9_000_000);
        assert!((s.mean_us() - 1334.0).abs() < 1.0);
        assert_eq!(human_us(61_234.0), "61.2 ms");
    }
}

/// Needs root (eBPF) and a Go toolchain; talks to two Go processes on loopback only.
#[cfg(test)]
mod kernel_tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;
    use crate::gobuild::{self, Toolchain};
    use crate::probe::goproc::testing::start;

    fn health(port: u16) {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        assert!(reply.starts_with(b"HTTP/1."));
    }

    #[test]
    fn the_kernel_drops_waits_of_processes_not_targeted() {
        if !crate::sys::is_root() {
            eprintln!("SKIPPED the_kernel_drops_waits_of_processes_not_targeted: needs root");
            return;
        }
        let tc = Toolchain::all().pop().expect("a Go toolchain");
        let bin = gobuild::build(&tc).unwrap().dir.join("store");
        let (target, other) = (start(&bin), start(&bin));
        let wait = gosym::locate(&std::fs::read(&bin).unwrap(), "store", FUNC).unwrap();
        let globals = [
            Global::new("fd_off", &FD_OFF),
            Global::new("sysfd_off", &SYSFD_OFF),
        ];
        let mut object = Object::load(&objects::NETPOLL, &globals).unwrap();
        object
            .hash_insert("np_targets", target.0.id(), 1u8)
            .unwrap();
        // Attached in every process running the binary: only the map keeps `other` out.
        let entry = [wait.entry_offset()];
        object
            .attach_uprobe("sbx_np_entry", &bin, &entry, None)
            .unwrap();
        object
            .attach_uprobe("sbx_np_ret", &bin, &wait.ret_offsets(), None)
            .unwrap();
        let mut ring = object.ring("np_events").unwrap();
        for _ in 0..20 {
            health(target.1);
            health(other.1);
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut pids = Vec::new();
        ring.drain(|b| pids.extend(ebpf::read_event::<Event>(b).map(|e| e.tgid)));
        assert!(
            pids.len() >= 19,
            "one accept per request at least: {pids:?}"
        );
        assert!(
            pids.iter().all(|p| *p == target.0.id()),
            "waits of pid {} leaked: {pids:?}",
            other.0.id()
        );
    }
}
