//! The lab's name server (unless the topology says `names: hosts`): it answers A queries for
//! every service and instance name on the lab's control address, as cluster DNS does, and it
//! is where `dns` faults act. Message parsing and building is hickory-proto's.
//!
//! It runs on one thread of the supervisor (inside the lab's bridge namespace), so nothing of
//! it outlives the supervisor and `down` has nothing to remove.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::RngExt;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::scenario::DnsAnswer;
use crate::topology::AddressBook;

/// Answers live as long as a lookup: clients must ask again for every new connection, so a
/// fault acts as soon as it is installed.
const TTL: u32 = 0;

/// Names and their addresses: each service name lists all its replicas (rotated on every
/// answer), each instance name its own address.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: BTreeMap<String, Vec<Ipv4Addr>>,
}

impl Zone {
    pub fn of(book: &AddressBook) -> Zone {
        let mut records: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        for (name, (service, ip)) in &book.instances {
            records.entry(service.clone()).or_default().push(*ip);
            if name != service {
                records.entry(name.clone()).or_default().push(*ip);
            }
        }
        Zone { records }
    }

    /// Names whose answer holds any of `ips`.
    pub fn names_of(&self, ips: &[Ipv4Addr]) -> BTreeSet<String> {
        self.records
            .iter()
            .filter(|(_, addrs)| addrs.iter().any(|a| ips.contains(a)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn lookup(&self, name: &str) -> Option<&[Ipv4Addr]> {
        self.records.get(name).map(Vec::as_slice)
    }
}

/// Lookups a rule catches: from any of `clients` (any client when `None`) for any of `names`
/// (any name when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catch {
    pub clients: Option<BTreeSet<Ipv4Addr>>,
    pub names: Option<BTreeSet<String>>,
}

impl Catch {
    fn catches(&self, client: Ipv4Addr, name: &str) -> bool {
        self.clients.as_ref().is_none_or(|c| c.contains(&client))
            && self.names.as_ref().is_none_or(|n| n.contains(name))
    }
}

/// What a `dns` fault does to the lookups it catches.
#[derive(Debug, Clone)]
pub struct Rule {
    pub catch: Vec<Catch>,
    /// `None` answers correctly (after `delay`).
    pub answer: Option<DnsAnswer>,
    pub delay: Option<Duration>,
    pub percent: f64,
}

struct Installed {
    id: u64,
    rule: Rule,
    hits: Arc<AtomicU64>,
}

/// The faults in force at a name server. Several may catch one lookup: their delays add up
/// and the first wrong answer wins, so faults compose as packet faults do.
#[derive(Clone, Default)]
pub struct Rules {
    inner: Arc<Mutex<(u64, Vec<Installed>)>>,
}

/// One installed rule; dropping it leaves the rule in force, `remove` takes it out.
pub struct RuleHandle {
    rules: Rules,
    id: u64,
    hits: Arc<AtomicU64>,
}

impl RuleHandle {
    /// Lookups the rule acted on so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn remove(self) {
        if let Ok(mut g) = self.rules.inner.lock() {
            g.1.retain(|r| r.id != self.id);
        }
    }
}

/// What happens to one query.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Verdict {
    answer: Option<DnsAnswer>,
    delay: Duration,
}

impl Rules {
    pub fn add(&self, rule: Rule) -> RuleHandle {
        let hits = Arc::new(AtomicU64::new(0));
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let id = g.0;
        g.1.push(Installed {
            id,
            rule,
            hits: hits.clone(),
        });
        RuleHandle {
            rules: self.clone(),
            id,
            hits,
        }
    }

    fn judge(&self, client: Ipv4Addr, name: &str, roll: &mut impl FnMut() -> f64) -> Verdict {
        let mut v = Verdict {
            answer: None,
            delay: Duration::ZERO,
        };
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for r in &g.1 {
            let rule = &r.rule;
            if !rule.catch.iter().any(|c| c.catches(client, name)) || roll() * 100.0 >= rule.percent
            {
                continue;
            }
            r.hits.fetch_add(1, Ordering::Relaxed);
            v.delay += rule.delay.unwrap_or_default();
            v.answer = v.answer.or(rule.answer);
        }
        v
    }
}

/// How an answer went, as a resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rcode {
    NoError,
    NxDomain,
    ServFail,
    Other(String),
}

/// The parts of a DNS message a probe reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub id: u16,
    pub response: bool,
    /// Lower-case, without the trailing dot.
    pub name: String,
    pub qtype: String,
    pub rcode: Rcode,
    pub answers: usize,
}

/// Reads a DNS message (a UDP payload); `None` for anything else.
pub fn decode(payload: &[u8]) -> Option<Decoded> {
    let m = Message::from_vec(payload).ok()?;
    let q = m.queries.first()?;
    Some(Decoded {
        id: m.metadata.id,
        response: m.metadata.message_type == MessageType::Response,
        name: q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase(),
        qtype: q.query_type().to_string(),
        rcode: match m.metadata.response_code {
            ResponseCode::NoError => Rcode::NoError,
            ResponseCode::NXDomain => Rcode::NxDomain,
            ResponseCode::ServFail => Rcode::ServFail,
            other => Rcode::Other(other.to_string()),
        },
        answers: m.answers.len(),
    })
}

/// A recursive A query for `name`, as a stub resolver sends it.
pub fn query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).ok()?, RecordType::A));
    m.to_vec().ok()
}

/// A running name server. Dropping it stops the server thread.
pub struct NameServer {
    rules: Rules,
    /// Closing this end wakes the server thread, which then ends.
    stop: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl NameServer {
    /// Serves `book`'s names on `addr`:53 (UDP), in the calling thread's network namespace.
    pub fn start(addr: Ipv4Addr, book: &AddressBook) -> std::io::Result<NameServer> {
        let socket = UdpSocket::bind((addr, 53))?;
        let rules = Rules::default();
        let (stop, stopped) = UnixStream::pair()?;
        let server = Server {
            socket,
            zone: Zone::of(book),
            rules: rules.clone(),
            rotation: 0,
            late: BinaryHeap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("names".into())
            .spawn(move || server.serve(&stopped))?;
        Ok(NameServer {
            rules,
            stop,
            thread: Some(thread),
        })
    }

    /// Where faults are installed.
    pub fn rules(&self) -> Rules {
        self.rules.clone()
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        let _ = self.stop.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Server {
    socket: UdpSocket,
    zone: Zone,
    rules: Rules,
    rotation: usize,
    /// Answers held back by a delay, by when they go out.
    late: BinaryHeap<Reverse<(Instant, SocketAddr, Vec<u8>)>>,
}

impl Server {
    /// Polls rather than using a socket timeout, which the kernel rounds to whole jiffies
    /// and would make every delayed answer a few milliseconds late.
    fn serve(mut self, stopped: &UnixStream) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut buf = [0u8; 4096];
        let mut rng = rand::rng();
        let mut roll = move || rng.random::<f64>();
        if self.socket.set_nonblocking(true).is_err() {
            return;
        }
        loop {
            self.send_due();
            let timeout = match self.late.peek() {
                Some(Reverse((at, _, _))) => {
                    let ms = at
                        .saturating_duration_since(Instant::now())
                        .as_micros()
                        .div_ceil(1000);
                    PollTimeout::try_from(ms.min(1000) as i32).unwrap_or(PollTimeout::ZERO)
                }
                None => PollTimeout::NONE,
            };
            let mut fds = [
                PollFd::new(self.socket.as_fd(), PollFlags::POLLIN),
                PollFd::new(stopped.as_fd(), PollFlags::POLLIN),
            ];
            let _ = poll(&mut fds, timeout);
            if fds[1].any().unwrap_or(true) {
                return;
            }
            while let Ok((n, peer)) = self.socket.recv_from(&mut buf) {
                let SocketAddr::V4(v4) = peer else { continue };
                let Some((reply, delay)) = self.answer(&buf[..n], *v4.ip(), &mut roll) else {
                    continue;
                };
                if delay.is_zero() {
                    let _ = self.socket.send_to(&reply, peer);
                } else {
                    self.late
                        .push(Reverse((Instant::now() + delay, peer, reply)));
                }
            }
        }
    }

    fn send_due(&mut self) {
        let now = Instant::now();
        while self
            .late
            .peek()
            .is_some_and(|Reverse((at, _, _))| *at <= now)
        {
            if let Some(Reverse((_, peer, reply))) = self.late.pop() {
                let _ = self.socket.send_to(&reply, peer);
            }
        }
    }

    /// The reply to one datagram and how long to hold it; `None` when nothing goes back
    /// (not a query, or a fault swallows it).
    fn answer(
        &mut self,
        datagram: &[u8],
        client: Ipv4Addr,
        roll: &mut impl FnMut() -> f64,
    ) -> Option<(Vec<u8>, Duration)> {
        let query = Message::from_vec(datagram).ok()?;
        if query.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.metadata.authoritative = true;
        if query.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            reply.set_edns(edns);
        }
        let q = match (query.metadata.op_code, query.queries.as_slice()) {
            (OpCode::Query, [q]) => q.clone(),
            _ => {
                reply.metadata.response_code = ResponseCode::FormErr;
                return Some((reply.to_vec().ok()?, Duration::ZERO));
            }
        };
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        reply.add_query(q.clone());
        let verdict = self.rules.judge(client, &name, roll);
        match (verdict.answer, self.zone.lookup(&name)) {
            (Some(DnsAnswer::Timeout), _) => return None,
            (Some(DnsAnswer::Servfail), _) => reply.metadata.response_code = ResponseCode::ServFail,
            (Some(DnsAnswer::Nxdomain), _) | (None, None) => {
                reply.metadata.response_code = ResponseCode::NXDomain
            }
            (None, Some(addrs)) => {
                if q.query_type() == RecordType::A {
                    self.rotation = self.rotation.wrapping_add(1);
                    let start = self.rotation % addrs.len();
                    for ip in addrs[start..].iter().chain(&addrs[..start]) {
                        reply.add_answer(Record::from_rdata(
                            q.name().clone(),
                            TTL,
                            RData::A(A(*ip)),
                        ));
                    }
                }
            }
        }
        Some((reply.to_vec().ok()?, verdict.delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> AddressBook {
        AddressBook::sample()
    }

    fn server(rules: Rules) -> Server {
        Server {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            zone: Zone::of(&book()),
            rules,
            rotation: 0,
            late: BinaryHeap::new(),
        }
    }

    fn query_of(name: &str, kind: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m.to_vec().unwrap()
    }

    fn ask(s: &mut Server, client: [u8; 4], name: &str) -> Option<(Message, Duration)> {
        let (bytes, delay) =
            s.answer(&query_of(name, RecordType::A), client.into(), &mut || 0.0)?;
        Some((Message::from_vec(&bytes).unwrap(), delay))
    }

    fn addrs(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(A(ip)) => Some(ip),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn services_resolve_to_every_replica_and_instances_to_themselves() {
        let mut s = server(Rules::default());
        let (m, _) = ask(&mut s, [10, 9, 0, 12], "api.").unwrap();
        let mut got = addrs(&m);
        got.sort();
        assert_eq!(
            got,
            [Ipv4Addr::new(10, 9, 0, 10), Ipv4Addr::new(10, 9, 0, 11)]
        );
        let (m, _) = ask(&mut s, [10, 9, 0, 12], "API-1").unwrap();
        assert_eq!(addrs(&m), [Ipv4Addr::new(10, 9, 0, 11)]);
        let (m, _) = ask(&mut s, [10, 9, 0, 12], "nosuch.").unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let (b, _) = s
            .answer(
                &query_of("api.", RecordType::AAAA),
                [10, 9, 0, 12].into(),
                &mut || 0.0,
            )
            .unwrap();
        let m = Message::from_vec(&b).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(
            m.answers.is_empty(),
            "no IPv6 addresses, and no error either"
        );
    }

    #[test]
    fn a_rule_catches_only_its_clients_and_names_and_comes_off() {
        let rules = Rules::default();
        let mut s = server(rules.clone());
        let handle = rules.add(Rule {
            catch: vec![Catch {
                clients: Some([Ipv4Addr::new(10, 9, 0, 12)].into()),
                names: Some(s.zone.names_of(&[Ipv4Addr::new(10, 9, 0, 11)])),
            }],
            answer: Some(DnsAnswer::Nxdomain),
            delay: Some(Duration::from_millis(40)),
            percent: 100.0,
        });
        let (m, delay) = ask(&mut s, [10, 9, 0, 12], "api").unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(delay, Duration::from_millis(40));
        let (m, _) = ask(&mut s, [10, 9, 0, 10], "api").unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "another client"
        );
        let (m, _) = ask(&mut s, [10, 9, 0, 12], "web").unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "another name"
        );
        assert_eq!(handle.hits(), 1);
        handle.remove();
        let (m, _) = ask(&mut s, [10, 9, 0, 12], "api").unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }

    #[test]
    fn rules_compose_and_a_timeout_sends_nothing() {
        let rules = Rules::default();
        let mut s = server(rules.clone());
        let any = || {
            vec![Catch {
                clients: None,
                names: None,
            }]
        };
        let _slow = rules.add(Rule {
            catch: any(),
            answer: None,
            delay: Some(Duration::from_millis(30)),
            percent: 100.0,
        });
        let slower = rules.add(Rule {
            catch: any(),
            answer: Some(DnsAnswer::Servfail),
            delay: Some(Duration::from_millis(20)),
            percent: 100.0,
        });
        let (m, delay) = ask(&mut s, [10, 9, 0, 12], "web").unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(delay, Duration::from_millis(50));
        slower.remove();
        let _gone = rules.add(Rule {
            catch: any(),
            answer: Some(DnsAnswer::Timeout),
            delay: None,
            percent: 100.0,
        });
        assert!(ask(&mut s, [10, 9, 0, 12], "web").is_none());
        assert!(
            s.answer(b"not dns", [10, 9, 0, 12].into(), &mut || 0.0)
                .is_none()
        );
    }

    #[test]
    fn decode_reads_queries_and_answers() {
        let q = decode(&query(7, "Inventory").unwrap()).unwrap();
        assert_eq!(
            (q.id, q.response, q.name.as_str(), q.qtype.as_str()),
            (7, false, "inventory", "A")
        );
        let mut s = server(Rules::default());
        let (bytes, _) = s
            .answer(
                &query(8, "api").unwrap(),
                [10, 9, 0, 12].into(),
                &mut || 0.0,
            )
            .unwrap();
        let a = decode(&bytes).unwrap();
        assert_eq!(
            (a.id, a.response, a.rcode, a.answers),
            (8, true, Rcode::NoError, 2)
        );
        assert_eq!(decode(b"\x00\x01garbage"), None);
    }
}
