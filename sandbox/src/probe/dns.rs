//! `dns`: every name lookup in the lab, paired with its answer: per client and name, how many
//! were answered, how many failed (NXDOMAIN, SERVFAIL, no answer at all) and how long the
//! answers took.
//!
//! An eBPF socket filter (ebpf/dns.bpf.c) on a packet socket at the lab's bridge, where the
//! lab's name server listens (on a cluster: at each pod's `eth0`, where its lookups to cluster
//! DNS leave), keeps only DNS datagrams in the kernel; the kernel stamps each one as it passes. A lab that resolves names from hosts files makes no lookups, and the
//! probe says so.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, setsockopt, socket,
    sockopt,
};
use serde_json::json;

use super::hist::Log2Hist;
use super::{Probe, ProbeError, Report, Scope};
use crate::ebpf::{Object, objects};
use crate::names::{Rcode, decode};
use crate::report::grid;
use crate::sys::netns::NsPath;

/// Go's and glibc's resolvers give up after a second here (`timeout:1` in the lab's
/// resolv.conf); a query still unanswered after twice that never will be.
const GIVE_UP: Duration = Duration::from_secs(2);

pub fn attach(scope: &Scope) -> Result<Box<dyn Probe>, ProbeError> {
    let wire = scope.state.wire.clone().ok_or_else(|| {
        ProbeError::Target(format!(
            "lab {} has not published its network yet; is it up (sandbox status)?",
            scope.state.id
        ))
    })?;
    // Where the lookups pass: the lab's wire, where its name server listens; on a cluster,
    // whose pods ask cluster DNS from their own namespaces, each pod's `eth0` in scope.
    let places: Vec<(Option<NsPath>, String)> = if wire.device.is_empty() {
        scope
            .members
            .iter()
            .map(|m| {
                let ns = m.netns.clone().ok_or_else(|| {
                    ProbeError::Target(format!(
                        "{} has not started yet (no network namespace published)",
                        m.name
                    ))
                })?;
                Ok((Some(ns), POD_DEVICE.to_string()))
            })
            .collect::<Result<_, ProbeError>>()?
    } else {
        vec![(wire.netns.clone(), wire.device.clone())]
    };
    let mut object = Object::load(&objects::DNS, &[])?;
    let mut sockets = Vec::new();
    for (ns, dev) in &places {
        let (socket, ifindex) = open_in(ns.as_ref(), dev)?;
        object.attach_socket_filter("dns_only", socket.as_fd())?;
        let at = ns
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "the host's namespace".into());
        let io = |what: &str| {
            let what = format!("{what} on {dev} in {at}");
            move |e: nix::Error| ProbeError::Io {
                what,
                source: e.into(),
            }
        };
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(io("timestamping"))?;
        bind_to(&socket, ifindex).map_err(io("binding a packet socket"))?;
        sockets.push(socket);
    }
    Ok(Box::new(DnsProbe {
        sockets,
        _object: object,
        clients: scope.ips(),
        names: scope.all.iter().map(|m| (m.ip, m.name.clone())).collect(),
        pending: HashMap::new(),
        flows: BTreeMap::new(),
        second: Second::default(),
    }))
}

/// A pod's end of its network, in its own namespace.
const POD_DEVICE: &str = "eth0";

/// A packet socket that receives nothing yet (protocol 0), created in the namespace holding
/// the lab's bridge (`None`: this one), and the bridge's interface index there. The filter
/// goes on before `bind_to` lets packets in.
fn open_in(ns: Option<&NsPath>, dev: &str) -> Result<(OwnedFd, u32), ProbeError> {
    let open = || -> Result<(OwnedFd, u32), String> {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| format!("opening a packet socket: {e}"))?;
        let index = nix::net::if_::if_nametoindex(dev).map_err(|_| {
            format!("the lab's bridge {dev} is missing; is the lab up (sandbox status)?")
        })?;
        Ok((fd, index))
    };
    match ns {
        Some(ns) => ns.run(open),
        None => open(),
    }
    .map_err(ProbeError::Target)
}

fn bind_to(socket: &OwnedFd, ifindex: u32) -> nix::Result<()> {
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: bind on a live socket with a correctly sized, initialised sockaddr_ll.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    nix::errno::Errno::result(rc).map(|_| ())
}

/// Lookups by one client of one name.
#[derive(Default)]
struct Flow {
    queries: u64,
    ok: u64,
    nxdomain: u64,
    servfail: u64,
    other: u64,
    unanswered: u64,
    sum_us: u64,
    max_us: u64,
    latency_us: Log2Hist,
}

impl Flow {
    fn failed(&self) -> u64 {
        self.nxdomain + self.servfail + self.other + self.unanswered
    }

    fn answered(&self) -> u64 {
        self.ok + self.nxdomain + self.servfail + self.other
    }

    fn mean_us(&self) -> u64 {
        self.sum_us.checked_div(self.answered()).unwrap_or(0)
    }
}

#[derive(Default)]
struct Second {
    queries: u64,
    failed: u64,
    max_us: u64,
}

struct Asked {
    at: SystemTime,
    flow: (String, String),
}

struct DnsProbe {
    sockets: Vec<OwnedFd>,
    /// Keeps the filter loaded for as long as the socket reads.
    _object: Object,
    /// Clients in scope.
    clients: Vec<Ipv4Addr>,
    names: BTreeMap<Ipv4Addr, String>,
    /// Queries waiting for their answer, by client address, client port and query id.
    pending: HashMap<(Ipv4Addr, u16, u16), Asked>,
    flows: BTreeMap<(String, String), Flow>,
    second: Second,
}

/// The addresses, ports and UDP payload of an IPv4 datagram in an Ethernet frame.
pub(crate) fn udp_of(frame: &[u8]) -> Option<(Ipv4Addr, u16, Ipv4Addr, u16, &[u8])> {
    let ip = frame.get(14..)?;
    let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    let udp = ip.get(ihl..total.min(ip.len()))?;
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    Some((src, sport, dst, dport, udp.get(8..)?))
}

impl DnsProbe {
    fn name_of(&self, ip: Ipv4Addr) -> String {
        self.names
            .get(&ip)
            .cloned()
            .unwrap_or_else(|| ip.to_string())
    }

    fn seen(&mut self, at: SystemTime, frame: &[u8]) {
        let Some((src, sport, dst, dport, payload)) = udp_of(frame) else {
            return;
        };
        let Some(m) = decode(payload) else { return };
        if !m.response && dport == 53 && self.clients.contains(&src) {
            let flow = (self.name_of(src), m.name);
            self.flows.entry(flow.clone()).or_default().queries += 1;
            self.second.queries += 1;
            self.pending.insert((src, sport, m.id), Asked { at, flow });
        } else if m.response
            && sport == 53
            && let Some(asked) = self.pending.remove(&(dst, dport, m.id))
        {
            let us = at.duration_since(asked.at).unwrap_or_default().as_micros() as u64;
            let f = self.flows.entry(asked.flow).or_default();
            match m.rcode {
                Rcode::NoError => f.ok += 1,
                Rcode::NxDomain => f.nxdomain += 1,
                Rcode::ServFail => f.servfail += 1,
                Rcode::Other(_) => f.other += 1,
            }
            if m.rcode != Rcode::NoError {
                self.second.failed += 1;
            }
            f.sum_us += us;
            f.max_us = f.max_us.max(us);
            f.latency_us.add(us);
            self.second.max_us = self.second.max_us.max(us);
        }
    }

    /// Takes every frame waiting on socket `i`.
    fn read(&mut self, i: usize) {
        let mut frame = [0u8; 2048];
        loop {
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let mut iov = [std::io::IoSliceMut::new(&mut frame)];
            let Ok(msg) = recvmsg::<()>(
                self.sockets[i].as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) else {
                break;
            };
            let len = msg.bytes;
            let at = msg
                .cmsgs()
                .ok()
                .and_then(|mut c| {
                    c.find_map(|m| match m {
                        ControlMessageOwned::ScmTimestampns(ts) => Some(
                            UNIX_EPOCH + Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32),
                        ),
                        _ => None,
                    })
                })
                .unwrap_or_else(SystemTime::now);
            self.seen(at, &frame[..len.min(frame.len())]);
        }
    }

    /// Counts queries older than `age` as unanswered.
    fn expire(&mut self, age: Duration) {
        let now = SystemTime::now();
        let old: Vec<(Ipv4Addr, u16, u16)> = self
            .pending
            .iter()
            .filter(|(_, a)| now.duration_since(a.at).unwrap_or_default() > age)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            if let Some(a) = self.pending.remove(&k) {
                self.flows.entry(a.flow).or_default().unanswered += 1;
                self.second.failed += 1;
            }
        }
    }
}

impl Probe for DnsProbe {
    fn poll(&mut self) {
        for i in 0..self.sockets.len() {
            self.read(i);
        }
        self.expire(GIVE_UP);
    }

    fn tick(&mut self, _second: u64) -> Option<(String, serde_json::Value)> {
        let s = std::mem::take(&mut self.second);
        if s.queries == 0 && s.failed == 0 {
            return None;
        }
        let line = format!(
            "{} lookups, {} failed, slowest answer {:.1} ms",
            s.queries,
            s.failed,
            s.max_us as f64 / 1000.0
        );
        Some((
            line,
            json!({"lookups": s.queries, "failed": s.failed, "max_us": s.max_us}),
        ))
    }

    fn finish(mut self: Box<Self>, _elapsed: Duration) -> Report {
        self.expire(Duration::from_secs(1));
        let lookups: u64 = self.flows.values().map(|f| f.queries).sum();
        let failed: u64 = self.flows.values().map(Flow::failed).sum();
        let mut text = format!("Name lookups: {lookups}, failed: {failed}\n");
        if self.flows.is_empty() {
            text.push_str(
                "No lookups in scope: names resolve from each instance's hosts file, or nothing \
                 looked a name up.\n",
            );
        } else {
            let rows = self.flows.iter().map(|((from, name), f)| {
                vec![
                    from.clone(),
                    name.clone(),
                    f.queries.to_string(),
                    f.ok.to_string(),
                    f.nxdomain.to_string(),
                    f.servfail.to_string(),
                    f.unanswered.to_string(),
                    if f.answered() == 0 {
                        "-".into()
                    } else {
                        f.mean_us().to_string()
                    },
                    if f.answered() == 0 {
                        "-".into()
                    } else {
                        format!("≤{}", f.latency_us.quantile_bound(0.99))
                    },
                ]
            });
            text.push_str(&grid(
                &[
                    "CLIENT",
                    "NAME",
                    "LOOKUPS",
                    "OK",
                    "NXDOMAIN",
                    "SERVFAIL",
                    "NO ANSWER",
                    "MEAN µs",
                    "P99 µs",
                ],
                rows,
            ));
            text.push('\n');
        }
        let summary = json!({
            "lookups": lookups,
            "failed": failed,
            "flows": self.flows.iter().map(|((from, name), f)| json!({
                "from": from,
                "name": name,
                "lookups": f.queries,
                "ok": f.ok,
                "nxdomain": f.nxdomain,
                "servfail": f.servfail,
                "other": f.other,
                "unanswered": f.unanswered,
                "mean_us": f.mean_us(),
                "max_us": f.max_us,
            })).collect::<Vec<_>>(),
        });
        Report { text, summary }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_of_reads_an_ethernet_ipv4_frame() {
        let mut f = vec![0u8; 14];
        f.extend([
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 10, 10, 0, 0, 1,
        ]);
        f.extend([0x9c, 0x40, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
        let (src, sport, dst, dport, payload) = udp_of(&f).unwrap();
        assert_eq!(
            (src, sport, dst, dport),
            (
                "10.0.0.10".parse().unwrap(),
                40000,
                "10.0.0.1".parse().unwrap(),
                53
            )
        );
        assert_eq!(payload, [1, 2, 3, 4]);
        assert!(udp_of(&f[..20]).is_none(), "a cut frame is skipped");
    }
}
