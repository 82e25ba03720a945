//! The names of the bundled probes: scenarios refer to them (hints, evidence checks), and
//! the probe module implements them.

use serde::Serialize;

/// The probes, by the name `sandbox probe <name>` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// Retransmissions per flow, with a per-second timeline.
    TcpRetrans,
    /// RSTs sent and received per flow, and which side sent them.
    TcpReset,
    /// Packets the kernel dropped, by reason, per flow.
    TcpDrop,
    /// Connect latency and failures (timeout, refused, reset) per destination.
    TcpConnect,
    /// Smoothed RTT per flow.
    TcpRtt,
    /// How long a Go service's goroutines block in the network poller, per remote peer.
    Netpoll,
    /// On-CPU samples of a service's threads: top functions, folded stacks, a flame graph.
    Cpu,
    /// Time a service's threads spend off CPU (blocked or waiting to run).
    Offcpu,
    /// Run-queue latency: how long a service's runnable threads wait for a CPU.
    Runq,
    /// Name lookups per client and name: answers, failures and answer time.
    Dns,
    /// Server-side latency of a Go HTTP service per route and instance, with status classes
    /// and the slowest requests.
    Http,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 11] = [
        ProbeKind::TcpRetrans,
        ProbeKind::TcpReset,
        ProbeKind::TcpDrop,
        ProbeKind::TcpConnect,
        ProbeKind::TcpRtt,
        ProbeKind::Netpoll,
        ProbeKind::Cpu,
        ProbeKind::Offcpu,
        ProbeKind::Runq,
        ProbeKind::Dns,
        ProbeKind::Http,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::TcpRetrans => "tcp-retrans",
            ProbeKind::TcpReset => "tcp-reset",
            ProbeKind::TcpDrop => "tcp-drop",
            ProbeKind::TcpConnect => "tcp-connect",
            ProbeKind::TcpRtt => "tcp-rtt",
            ProbeKind::Netpoll => "netpoll",
            ProbeKind::Cpu => "cpu",
            ProbeKind::Offcpu => "offcpu",
            ProbeKind::Runq => "runq",
            ProbeKind::Dns => "dns",
            ProbeKind::Http => "http",
        }
    }

    pub fn from_name(name: &str) -> Option<ProbeKind> {
        ProbeKind::ALL.into_iter().find(|k| k.name() == name)
    }
}
