//! Whether a probe run recorded in a lab's evidence journal shows a fault: each probe's
//! summary is read for the flows, connections, peers or functions it names.

use regex::RegexBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::expect::{EvidenceRequirement, Shows};
use crate::value::{names_match, service_of};

/// One probe run, as the lab's evidence journal records it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ProbeRun {
    pub ts_ms: u64,
    pub probe: String,
    /// The service or instance probed; `None` for the whole lab.
    pub target: Option<String>,
    /// The instances the run looked at.
    pub instances: Vec<String>,
    pub seconds: f64,
    pub summary: Value,
}

fn svc(v: &Value, key: &str) -> String {
    service_of(v[key].as_str().unwrap_or("")).to_string()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

/// Pairs of services a run's summary names, each with a latency figure (µs) where it has one.
fn pairs(run: &ProbeRun) -> Vec<(String, String, f64)> {
    let s = &run.summary;
    let list = |key: &str| s[key].as_array().cloned().unwrap_or_default();
    match run.probe.as_str() {
        "tcp-retrans" => list("flows")
            .iter()
            .filter(|f| num(f, "segments") > 0.0)
            .map(|f| (svc(f, "from"), svc(f, "to"), 0.0))
            .collect(),
        "tcp-drop" => list("drops")
            .iter()
            .filter(|f| num(f, "packets") > 0.0)
            .map(|f| (svc(f, "from"), svc(f, "to"), 0.0))
            .collect(),
        "tcp-reset" => list("connections")
            .iter()
            .filter(|c| num(c, "client_received") + num(c, "server_received") > 0.0)
            .map(|c| (svc(c, "client"), svc(c, "server"), 0.0))
            .collect(),
        "tcp-connect" => list("destinations")
            .iter()
            .filter(|d| {
                d["failures"]
                    .as_object()
                    .is_some_and(|m| m.values().any(|v| v.as_u64().unwrap_or(0) > 0))
            })
            .map(|d| (svc(d, "from"), svc(d, "to"), num(d, "mean_us")))
            .collect(),
        "tcp-rtt" => list("flows")
            .iter()
            .map(|f| (svc(f, "from"), svc(f, "to"), num(f, "path_us")))
            .collect(),
        // Finished waits by their mean; goroutines still parked by how long the oldest has been.
        "netpoll" => list("peers")
            .iter()
            .map(|p| (svc(p, "instance"), svc(p, "peer"), num(p, "mean_us")))
            .chain(
                list("blocked")
                    .iter()
                    .map(|p| (svc(p, "instance"), svc(p, "peer"), num(p, "oldest_us"))),
            )
            .collect(),
        // A client's lookups of a name show trouble when some failed or the answers took
        // 10 ms or more: the lab's name server answers in well under one.
        "dns" => list("flows")
            .iter()
            .filter(|f| {
                ["nxdomain", "servfail", "other", "unanswered"]
                    .iter()
                    .any(|k| num(f, k) > 0.0)
                    || num(f, "mean_us") >= 10_000.0
            })
            .map(|f| (svc(f, "from"), svc(f, "name"), num(f, "mean_us")))
            .collect(),
        // Each route of each server with its p99; the second name is the route (URL path).
        "http" => list("routes")
            .iter()
            .map(|r| {
                let route = r["route"].as_str().unwrap_or("").to_string();
                (svc(r, "instance"), route, num(r, "p99_us"))
            })
            .collect(),
        "runq" | "offcpu" => run
            .instances
            .iter()
            .map(|i| (service_of(i).to_string(), String::new(), num(s, "mean_us")))
            .collect(),
        _ => Vec::new(),
    }
}

/// A goroutine dump shows a function when one of its five largest groups, holding at least a
/// tenth of the goroutines, has it on its stack: where goroutines pile up, not one that passes.
fn goroutines_show(run: &ProbeRun, re: &regex::Regex) -> bool {
    let total = num(&run.summary, "total");
    let groups = run.summary["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    groups.iter().take(5).any(|g| {
        num(g, "count") >= total / 10.0
            && g["stack"].as_array().is_some_and(|st| {
                st.iter()
                    .any(|f| f.as_str().is_some_and(|f| re.is_match(f)))
            })
    })
}

/// Whether `run` satisfies `shows`.
pub fn shows(run: &ProbeRun, shows: &Shows) -> bool {
    if let Some(pattern) = &shows.function {
        let Ok(re) = RegexBuilder::new(pattern)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
        else {
            return false;
        };
        let hit = if run.probe == "goroutines" {
            goroutines_show(run, &re)
        } else {
            let top = run.summary["top"].as_array().cloned().unwrap_or_default();
            top.iter().take(5).any(|t| {
                t["function"].as_str().is_some_and(|f| re.is_match(f))
                    && num(t, "inclusive_pct") >= 10.0
            })
        };
        if !hit {
            return false;
        }
    }
    if shows.between.is_none() && shows.involves.is_none() && shows.min_ms.is_none() {
        return true;
    }
    let min_us = shows.min_ms.map(|m| m * 1000.0);
    pairs(run).iter().any(|(a, b, latency)| {
        let between = shows.between.as_ref().is_none_or(|[x, y]| {
            (names_match(x, a) && names_match(y, b)) || (names_match(x, b) && names_match(y, a))
        });
        let involves = shows
            .involves
            .as_ref()
            .is_none_or(|x| names_match(x, a) || names_match(x, b));
        let slow = min_us.is_none_or(|m| *latency >= m);
        between && involves && slow
    })
}

/// The run that satisfies a requirement, if any.
pub fn satisfying<'a>(req: &EvidenceRequirement, runs: &'a [ProbeRun]) -> Option<&'a ProbeRun> {
    runs.iter().find(|r| {
        r.probe == req.probe
            && req
                .target
                .as_ref()
                .is_none_or(|t| r.target.is_none() || r.instances.iter().any(|i| names_match(t, i)))
            && req.shows.as_ref().is_none_or(|s| shows(r, s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(probe: &str, target: Option<&str>, summary: Value) -> ProbeRun {
        ProbeRun {
            ts_ms: 0,
            probe: probe.into(),
            target: target.map(str::to_string),
            instances: vec![target.unwrap_or("x").to_string() + "-0"],
            seconds: 5.0,
            summary,
        }
    }

    #[test]
    fn a_goroutine_dump_shows_where_goroutines_pile_up() {
        let dump = run(
            "goroutines",
            Some("orders"),
            json!({"total": 100, "groups": [
                {"count": 90, "state": "select", "waits_min": [],
                 "stack": ["net/http.(*persistConn).roundTrip", "svc.(*App).audit"]},
                {"count": 2, "state": "IO wait", "waits_min": [],
                 "stack": ["internal/poll.runtime_pollWait", "svc.(*App).stock"]},
            ]}),
        );
        let by = |f: &str| Shows {
            function: Some(f.into()),
            ..Shows::default()
        };
        assert!(shows(&dump, &by("App\\)\\.audit$")));
        assert!(
            !shows(&dump, &by("stock")),
            "two goroutines of a hundred are no pile"
        );
    }

    #[test]
    fn retransmissions_between_two_services_show_the_link() {
        let r = run(
            "tcp-retrans",
            None,
            json!({"flows": [{"from": "payments-0", "to": "ledger-0", "segments": 40}, {"from": "edge-0", "to": "checkout-0", "segments": 0}]}),
        );
        let between = Shows {
            between: Some(["ledger".into(), "payments".into()]),
            ..Default::default()
        };
        assert!(shows(&r, &between));
        let wrong = Shows {
            between: Some(["edge".into(), "checkout".into()]),
            ..Default::default()
        };
        assert!(
            !shows(&r, &wrong),
            "a flow with no retransmissions shows nothing"
        );
    }

    #[test]
    fn http_evidence_is_a_slow_route_of_a_service() {
        let r = run(
            "http",
            None,
            json!({"routes": [{"instance": "payments-0", "route": "/pay", "p99_us": 2_300_000.0}, {"instance": "orders-0", "route": "/", "p99_us": 900.0}]}),
        );
        let slow = |svc: &str| Shows {
            involves: Some(svc.into()),
            min_ms: Some(2000.0),
            ..Default::default()
        };
        assert!(shows(&r, &slow("payments")));
        assert!(!shows(&r, &slow("orders")));
    }

    #[test]
    fn latency_evidence_needs_the_threshold() {
        let r = run(
            "netpoll",
            Some("search"),
            json!({"peers": [{"instance": "search-0", "peer": "profiles-0", "mean_us": 80000.0}, {"instance": "search-0", "peer": "index-0", "mean_us": 300.0}]}),
        );
        let slow = |peer: &str| Shows {
            between: Some(["search".into(), peer.into()]),
            min_ms: Some(40.0),
            ..Default::default()
        };
        assert!(shows(&r, &slow("profiles")));
        assert!(!shows(&r, &slow("index")));
    }

    #[test]
    fn dns_evidence_needs_failed_or_slow_lookups() {
        let r = run(
            "dns",
            Some("orders"),
            json!({"flows": [
                {"from": "orders-0", "name": "inventory", "lookups": 50, "ok": 20, "unanswered": 30, "mean_us": 90.0},
                {"from": "orders-0", "name": "pricing", "lookups": 50, "ok": 50, "mean_us": 80.0},
                {"from": "web-0", "name": "orders", "lookups": 40, "ok": 40, "mean_us": 25000.0}
            ]}),
        );
        let between = |a: &str, b: &str| Shows {
            between: Some([a.into(), b.into()]),
            ..Default::default()
        };
        assert!(shows(&r, &between("orders", "inventory")));
        assert!(
            !shows(&r, &between("orders", "pricing")),
            "healthy lookups show nothing"
        );
        assert!(shows(&r, &between("web", "orders")), "slow answers show");
    }

    #[test]
    fn cpu_evidence_names_the_function() {
        let r = run(
            "cpu",
            Some("api"),
            json!({"top": [{"function": "main.burnCPU", "inclusive_pct": 91.0}]}),
        );
        let f = |p: &str| Shows {
            function: Some(p.into()),
            ..Default::default()
        };
        assert!(shows(&r, &f("burnCPU")));
        assert!(!shows(&r, &f("runtime\\.gc")));
        assert!(
            !shows(&r, &f("(")),
            "a bad pattern shows nothing rather than failing"
        );
    }

    #[test]
    fn the_target_must_match_unless_the_run_covered_the_lab() {
        let req = EvidenceRequirement {
            probe: "runq".into(),
            target: Some("api".into()),
            shows: None,
            points: 10,
        };
        let on_api = run("runq", Some("api"), json!({"mean_us": 3000.0}));
        let on_db = run("runq", Some("db"), json!({"mean_us": 3000.0}));
        assert!(satisfying(&req, std::slice::from_ref(&on_db)).is_none());
        assert!(satisfying(&req, &[on_db, on_api]).is_some());
    }
}
