//! The root causes a finding can name. One list for scenario authors (expected findings), for
//! learners (the findings template) and for the docs.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RootCause {
    pub id: &'static str,
    pub title: &'static str,
    /// What it looks like from the outside, for the findings template.
    pub signs: &'static str,
    /// The magnitude a finding should give, if any (`magnitude.<quantity>`).
    pub quantity: Option<&'static str>,
}

pub const ROOT_CAUSES: &[RootCause] = &[
    RootCause {
        id: "packet-loss",
        title: "Packet loss",
        signs: "retransmissions on one path; tail latency up by RTO multiples, median flat",
        quantity: Some("percent"),
    },
    RootCause {
        id: "added-latency",
        title: "Added network latency",
        signs: "every request on one path slower by the same amount; higher RTT, no errors",
        quantity: Some("delay"),
    },
    RootCause {
        id: "connection-reset",
        title: "Connection resets",
        signs: "'connection reset by peer' errors; RSTs the far end never sent",
        quantity: Some("percent"),
    },
    RootCause {
        id: "blackhole",
        title: "Blackhole",
        signs: "requests to one destination time out; packets vanish without an answer",
        quantity: None,
    },
    RootCause {
        id: "partition",
        title: "Network partition",
        signs: "two parts of the system cannot reach each other in either direction",
        quantity: None,
    },
    RootCause {
        id: "node-partition",
        title: "Node network partition",
        signs: "pods on one node cannot reach pods on another; calls within a node work; every pod Running and Ready",
        quantity: None,
    },
    RootCause {
        id: "no-endpoints",
        title: "Service with no endpoints",
        signs: "calls to one service fail at once ('no such host' or 'connection refused'); its pods Running and Ready; nothing retransmits",
        quantity: None,
    },
    RootCause {
        id: "not-ready",
        title: "Pods not Ready",
        signs: "a service's pods Running but not Ready (their readiness probe fails), so its Service has no ready endpoints; the service itself answers anyone who dials it",
        quantity: None,
    },
    RootCause {
        id: "syn-drop",
        title: "Connection attempts dropped",
        signs: "new connections time out while established ones keep working",
        quantity: Some("percent"),
    },
    RootCause {
        id: "bandwidth-limit",
        title: "Bandwidth limit",
        signs: "throughput capped on one path; queueing delay grows with load",
        quantity: Some("rate"),
    },
    RootCause {
        id: "corruption",
        title: "Packet corruption",
        signs: "checksum drops at the receiver and retransmissions, data intact",
        quantity: Some("percent"),
    },
    RootCause {
        id: "dns-failure",
        title: "DNS failure",
        signs: "name lookups fail or hang; connections never start",
        quantity: None,
    },
    RootCause {
        id: "dns-search-path",
        title: "Lookups walking the search list",
        signs: "each name is first asked for under every search domain and answered NXDOMAIN, then as itself: one lookup costs several round trips to the resolver",
        quantity: None,
    },
    RootCause {
        id: "slow-handler",
        title: "Slow handler",
        signs: "one service takes long to answer while the network is healthy",
        quantity: Some("delay"),
    },
    RootCause {
        id: "hung-handler",
        title: "Hung handler",
        signs: "one service never answers some requests; callers time out",
        quantity: Some("percent"),
    },
    RootCause {
        id: "goroutine-leak",
        title: "Goroutine leak",
        signs: "goroutine count grows without bound; goroutines parked in the network poller",
        quantity: None,
    },
    RootCause {
        id: "cpu-saturation",
        title: "CPU saturation in the service",
        signs: "the service's own code burns CPU; one function dominates CPU profiles",
        quantity: None,
    },
    RootCause {
        id: "cpu-starvation",
        title: "CPU starvation",
        signs: "the service waits in the run queue; CPU taken by something else",
        quantity: None,
    },
];

pub fn find(id: &str) -> Option<&'static RootCause> {
    ROOT_CAUSES.iter().find(|r| r.id == id)
}

pub fn ids() -> impl Iterator<Item = &'static str> {
    ROOT_CAUSES.iter().map(|r| r.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<&str> = ids().collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
        assert!(find("packet-loss").is_some());
        assert!(find("gremlins").is_none());
    }

    #[test]
    fn the_scenario_format_names_every_root_cause() {
        let doc = include_str!("../../docs/scenario-format.md");
        for id in ids() {
            assert!(
                doc.contains(&format!("`{id}`")),
                "docs/scenario-format.md does not name root cause `{id}`"
            );
        }
    }
}
