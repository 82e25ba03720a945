//! Delay and jitter without netem: matching packets are queued to user space with an iptables
//! NFQUEUE rule (nftables' own `queue` statement is not built into every kernel) and released
//! by this engine when their time comes.
//!
//! One engine thread per lab serves every delay fault, one queue number each. It runs
//! SCHED_FIFO where allowed, because delay fidelity is a scheduling problem, not a CPU one.
//! Rules use `--queue-bypass`, so if the engine dies traffic flows undelayed instead of being
//! blackholed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rand::RngExt;

use super::selector::Selector;
use super::{FaultError, NEUTRAL_THREAD_NAME, Point};
use crate::sys::cmd;
use crate::sys::netns::NsPath;

/// Packets the kernel may hold for one queue; beyond it they pass undelayed (fail-open).
const QUEUE_MAX_LEN: u32 = 65536;

enum Command {
    Add {
        queue: u16,
        delay: Duration,
        jitter: Duration,
        done: mpsc::Sender<Result<(), String>>,
    },
    Remove {
        queue: u16,
        done: mpsc::Sender<()>,
    },
    Stop,
}

/// The lab's delay engine. Cloneable handle; the thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct DelayEngine {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Mutex<mpsc::Sender<Command>>,
    wake: UnixStream,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Packets released per queue, for status and tests.
    released: Arc<Mutex<HashMap<u16, u64>>>,
}

impl DelayEngine {
    /// Starts the engine thread inside `ns`, where its queues are.
    pub fn start(ns: &NsPath) -> Result<DelayEngine, FaultError> {
        let (tx, rx) = mpsc::channel();
        let (wake, wake_rx) = UnixStream::pair().map_err(|e| FaultError::Engine(e.to_string()))?;
        wake_rx
            .set_nonblocking(true)
            .map_err(|e| FaultError::Engine(e.to_string()))?;
        let released = Arc::new(Mutex::new(HashMap::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let netns = ns.clone();
        let counts = released.clone();
        let thread = std::thread::Builder::new()
            .name(NEUTRAL_THREAD_NAME.into())
            .spawn(move || {
                let setup = || -> Result<(nfq::Queue, RawFd), String> {
                    netns
                        .enter()
                        .map_err(|e| format!("entering {netns}: {e}"))?;
                    realtime_priority();
                    let (mut q, fd) = open_queue()?;
                    q.set_nonblocking(true);
                    Ok((q, fd))
                };
                match setup() {
                    Ok((q, fd)) => {
                        let _ = ready_tx.send(Ok(()));
                        run(q, fd, rx, wake_rx, counts);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| FaultError::Engine(e.to_string()))?;
        ready_rx
            .recv()
            .map_err(|_| FaultError::Engine("delay engine thread died while starting".into()))?
            .map_err(FaultError::Engine)?;
        Ok(DelayEngine {
            inner: Arc::new(Inner {
                tx: Mutex::new(tx),
                wake,
                thread: Mutex::new(Some(thread)),
                released,
            }),
        })
    }

    fn send(&self, c: Command) -> Result<(), FaultError> {
        self.inner
            .tx
            .lock()
            .map_err(|_| FaultError::Engine("delay engine lock poisoned".into()))?
            .send(c)
            .map_err(|_| FaultError::Engine("delay engine is not running".into()))?;
        use std::io::Write;
        let _ = (&self.inner.wake).write(&[1]);
        Ok(())
    }

    /// Binds `queue` with this delay; packets are held once a rule sends them there.
    fn bind(&self, queue: u16, delay: Duration, jitter: Duration) -> Result<(), FaultError> {
        let (done, wait) = mpsc::channel();
        self.send(Command::Add {
            queue,
            delay,
            jitter,
            done,
        })?;
        wait.recv()
            .map_err(|_| FaultError::Engine("delay engine stopped".into()))?
            .map_err(FaultError::Engine)
    }

    /// Releases everything held for `queue` and unbinds it.
    fn unbind(&self, queue: u16) -> Result<(), FaultError> {
        let (done, wait) = mpsc::channel();
        self.send(Command::Remove { queue, done })?;
        wait.recv()
            .map_err(|_| FaultError::Engine("delay engine stopped".into()))
    }

    pub fn released(&self, queue: u16) -> u64 {
        self.inner
            .released
            .lock()
            .map(|m| m.get(&queue).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Command::Stop);
        }
        use std::io::Write;
        let _ = (&self.wake).write(&[1]);
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }
}

fn realtime_priority() {
    let param = libc::sched_param { sched_priority: 50 };
    // SAFETY: plain syscall on the calling thread (tid 0) with a valid parameter struct.
    // Failure (no CAP_SYS_NICE, RT throttling) only costs fidelity under load.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
    }
}

/// Opens a queue socket and finds its fd, which the nfq crate keeps private: the
/// NETLINK_NETFILTER socket that was not there before. The lock keeps two engines in one
/// process from opening at the same time.
fn open_queue() -> Result<(nfq::Queue, RawFd), String> {
    static OPEN: Mutex<()> = Mutex::new(());
    let _guard = OPEN.lock().map_err(|_| "queue lock poisoned".to_string())?;
    let before = netfilter_fds();
    let q = nfq::Queue::open().map_err(|e| format!("opening NFQUEUE socket: {e}"))?;
    let mut new: Vec<RawFd> = netfilter_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    match (new.pop(), new.is_empty()) {
        (Some(fd), true) => Ok((q, fd)),
        _ => Err("could not identify the NFQUEUE socket".into()),
    }
}

fn netfilter_fds() -> Vec<RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.into_iter()
        .filter(|&fd| {
            let mut proto: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt on an fd number with a correctly sized out-parameter; a
            // non-socket or closed fd just returns an error.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_PROTOCOL,
                    (&mut proto as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            let mut domain: libc::c_int = 0;
            let mut dlen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: as above.
            let rc2 = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_DOMAIN,
                    (&mut domain as *mut libc::c_int).cast(),
                    &mut dlen,
                )
            };
            rc == 0 && rc2 == 0 && domain == libc::AF_NETLINK && proto == libc::NETLINK_NETFILTER
        })
        .collect()
}

struct Binding {
    delay: Duration,
    jitter: Duration,
    /// Release time of the last packet, so jitter never reorders a queue's packets.
    last: Instant,
}

struct Held {
    at: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

fn run(
    mut q: nfq::Queue,
    fd: RawFd,
    rx: mpsc::Receiver<Command>,
    wake: UnixStream,
    released: Arc<Mutex<HashMap<u16, u64>>>,
) {
    let mut bindings: HashMap<u16, Binding> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut rng = rand::rng();
    let release =
        |q: &mut nfq::Queue, mut msg: nfq::Message, released: &Mutex<HashMap<u16, u64>>| {
            let queue = msg.get_queue_num();
            msg.set_verdict(nfq::Verdict::Accept);
            if q.verdict(msg).is_ok()
                && let Ok(mut m) = released.lock()
            {
                *m.entry(queue).or_default() += 1;
            }
        };
    loop {
        for _ in 0..256 {
            match q.recv() {
                Ok(msg) => {
                    let now = Instant::now();
                    match bindings.get_mut(&msg.get_queue_num()) {
                        Some(b) => {
                            let j = if b.jitter.is_zero() {
                                0i128
                            } else {
                                let span = b.jitter.as_nanos() as i128;
                                rng.random_range(-span..=span)
                            };
                            let d = (b.delay.as_nanos() as i128 + j).max(0) as u64;
                            let at = (now + Duration::from_nanos(d)).max(b.last);
                            b.last = at;
                            seq += 1;
                            heap.push(Reverse(Held { at, seq, msg }));
                        }
                        None => release(&mut q, msg, &released),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(h)| h.at <= now) {
            if let Some(Reverse(h)) = heap.pop() {
                release(&mut q, h.msg, &released);
            }
        }
        let mut buf = [0u8; 64];
        while matches!((&wake).read(&mut buf), Ok(n) if n > 0) {}
        while let Ok(c) = rx.try_recv() {
            match c {
                Command::Add {
                    queue,
                    delay,
                    jitter,
                    done,
                } => {
                    let r = q
                        .bind(queue)
                        .and_then(|_| q.set_copy_range(queue, 0))
                        .and_then(|_| q.set_recv_gso(queue, true))
                        .and_then(|_| q.set_queue_max_len(queue, QUEUE_MAX_LEN))
                        .and_then(|_| q.set_fail_open(queue, true))
                        .map_err(|e| format!("binding NFQUEUE {queue}: {e}"));
                    if r.is_ok() {
                        bindings.insert(
                            queue,
                            Binding {
                                delay,
                                jitter,
                                last: Instant::now(),
                            },
                        );
                    }
                    let _ = done.send(r);
                }
                Command::Remove { queue, done } => {
                    bindings.remove(&queue);
                    let keep: Vec<Reverse<Held>> = std::mem::take(&mut heap).into_vec();
                    for Reverse(h) in keep {
                        if h.msg.get_queue_num() == queue {
                            release(&mut q, h.msg, &released);
                        } else {
                            heap.push(Reverse(h));
                        }
                    }
                    let _ = q.unbind(queue);
                    let _ = done.send(());
                }
                Command::Stop => {
                    for Reverse(h) in std::mem::take(&mut heap).into_vec() {
                        release(&mut q, h.msg, &released);
                    }
                    for queue in bindings.keys() {
                        let _ = q.unbind(*queue);
                    }
                    return;
                }
            }
        }
        let timeout = match heap.peek() {
            Some(Reverse(h)) => {
                let ms =
                    h.at.saturating_duration_since(Instant::now())
                        .as_micros()
                        .div_ceil(1000);
                PollTimeout::try_from(ms.min(1000) as i32).unwrap_or(PollTimeout::ZERO)
            }
            None => PollTimeout::try_from(1000).unwrap_or(PollTimeout::MAX),
        };
        // SAFETY: `fd` is the queue's socket, open for as long as `q` lives (this function).
        let qfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut fds = [
            PollFd::new(qfd, PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, timeout);
    }
}

/// An installed delay fault: its iptables chain at each site and its queue binding there.
/// Dropping it removes the rules first, then releases what the queues still hold.
pub struct DelayFault {
    parts: Vec<Part>,
    chain: String,
    comment: String,
    queue: u16,
    removed: bool,
}

/// The fault at one site: the namespace, the hook its chain is called from, and the engine
/// that holds its packets there.
struct Part {
    ns: NsPath,
    hook: super::Hook,
    engine: DelayEngine,
}

/// Which queue a delay fault uses and how long packets wait in it.
pub struct Hold {
    pub queue: u16,
    pub delay: Duration,
    pub jitter: Duration,
}

pub fn install(
    points: impl IntoIterator<Item = (Point, DelayEngine)>,
    chain: &str,
    comment: &str,
    hold: Hold,
) -> Result<DelayFault, FaultError> {
    let queue = hold.queue;
    let mut fault = DelayFault {
        parts: Vec::new(),
        chain: chain.to_string(),
        comment: comment.to_string(),
        queue,
        removed: false,
    };
    for (point, engine) in points {
        engine.bind(queue, hold.delay, hold.jitter)?;
        let mut lines = vec![format!("-N {chain}")];
        for sel in &point.sels {
            for rule in rules(sel) {
                lines.push(format!(
                    "-A {chain} {rule} -j NFQUEUE --queue-num {queue} --queue-bypass"
                ));
            }
        }
        lines.push(format!(
            "-I {} -m comment --comment \"{comment}\" -j {chain}",
            point.hook.iptables()
        ));
        let applied = restore(&point.ns, &lines);
        fault.parts.push(Part {
            ns: point.ns,
            hook: point.hook,
            engine,
        });
        if let Err(e) = applied {
            let _ = fault.parts.pop().map(|p| p.engine.unbind(queue));
            return Err(e);
        }
    }
    Ok(fault)
}

/// iptables matches for a selector; one line per address pair and protocol.
fn rules(sel: &Selector) -> Vec<String> {
    let list = |ips: &[std::net::Ipv4Addr]| {
        ips.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut base = String::new();
    if !sel.src.is_empty() {
        base.push_str(&format!("-s {} ", list(&sel.src)));
    }
    if !sel.dst.is_empty() {
        base.push_str(&format!("-d {} ", list(&sel.dst)));
    }
    match (sel.dport, sel.sport) {
        (Some(p), _) => vec![
            format!("{base}-p tcp --dport {p}"),
            format!("{base}-p udp --dport {p}"),
        ],
        (None, Some(p)) => vec![
            format!("{base}-p tcp --sport {p}"),
            format!("{base}-p udp --sport {p}"),
        ],
        (None, None) => vec![base.trim_end().to_string()],
    }
}

/// Lab `lab`'s delay chains in `ns` (`SBX-<LAB>-F<n>`) and the rules that jump to them, as
/// `iptables-save` prints them.
fn saved(ns: &NsPath, lab: &str) -> (Vec<String>, Vec<String>) {
    let prefix = format!("{}-{lab}-F", crate::ids::PREFIX).to_uppercase();
    let listed = ns.command("iptables-save").map(|mut c| {
        c.args(["-t", "filter"]);
        cmd::run(&mut c)
    });
    let Ok(Ok(out)) = listed else {
        return (Vec::new(), Vec::new());
    };
    let chains: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix(':')?.split_whitespace().next())
        .filter(|c| c.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    let jumps = out
        .lines()
        .filter(|l| {
            l.starts_with("-A ")
                && l.rsplit_once(" -j ")
                    .is_some_and(|(_, to)| chains.iter().any(|c| c == to.trim()))
        })
        .map(str::to_string)
        .collect();
    (chains, jumps)
}

/// Lab `lab`'s delay chains in `ns`.
pub fn chains_of(ns: &NsPath, lab: &str) -> Vec<String> {
    saved(ns, lab).0
}

/// Removes lab `lab`'s delay chains from `ns`, and the rules that jump to them, at once.
pub fn remove_chains(ns: &NsPath, lab: &str) -> Result<(), FaultError> {
    let (chains, jumps) = saved(ns, lab);
    if chains.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = jumps
        .iter()
        .filter_map(|j| j.strip_prefix("-A ").map(|rest| format!("-D {rest}")))
        .collect();
    lines.extend(chains.iter().map(|c| format!("-F {c}")));
    lines.extend(chains.iter().map(|c| format!("-X {c}")));
    restore(ns, &lines)
}

/// Applies rules atomically with `iptables-restore --noflush`.
fn restore(ns: &NsPath, lines: &[String]) -> Result<(), FaultError> {
    let input = format!("*filter\n{}\nCOMMIT\n", lines.join("\n"));
    let mut c = ns.command("iptables-restore")?;
    c.args(["--noflush", "-w"]);
    cmd::run_with_input(&mut c, Some(&input))?;
    Ok(())
}

impl DelayFault {
    pub fn queue(&self) -> u16 {
        self.queue
    }

    pub fn released(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.engine.released(self.queue))
            .sum()
    }

    fn teardown(&mut self) -> Result<(), FaultError> {
        self.removed = true;
        let mut result = Ok(());
        for p in std::mem::take(&mut self.parts) {
            let lines = vec![
                format!(
                    "-D {} -m comment --comment \"{}\" -j {}",
                    p.hook.iptables(),
                    self.comment,
                    self.chain
                ),
                format!("-F {}", self.chain),
                format!("-X {}", self.chain),
            ];
            // A site that is gone took its rules with it.
            let rules = if p.ns.exists() {
                restore(&p.ns, &lines)
            } else {
                Ok(())
            };
            let unbind = p.engine.unbind(self.queue);
            if let Err(e) = rules.and(unbind)
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

impl Drop for DelayFault {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.teardown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn rules_cover_tcp_and_udp_on_a_port() {
        let sel = Selector {
            src: vec![Ipv4Addr::new(10, 66, 0, 10)],
            dst: vec![Ipv4Addr::new(10, 66, 0, 11), Ipv4Addr::new(10, 66, 0, 12)],
            dport: Some(8080),
            sport: None,
        };
        assert_eq!(
            rules(&sel),
            vec![
                "-s 10.66.0.10 -d 10.66.0.11,10.66.0.12 -p tcp --dport 8080",
                "-s 10.66.0.10 -d 10.66.0.11,10.66.0.12 -p udp --dport 8080"
            ]
        );
        let any = Selector {
            src: vec![],
            dst: vec![Ipv4Addr::new(10, 66, 0, 11)],
            dport: None,
            sport: None,
        };
        assert_eq!(rules(&any), vec!["-d 10.66.0.11"]);
    }
}
