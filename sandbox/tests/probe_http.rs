//! The http probe measures what the load generator feels: web (the edge) calls search, a
//! 60 ms delay is added on web → search, and `sandbox probe http` must report web's route `/`
//! with a p99 within 10% of the load generator's own p99 over the same seconds, with the
//! services built by Go 1.19 and by the current Go. Rows per route and per instance and the
//! slowest requests must be there, and no probed Go process may crash.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use sandbox::gobuild::Toolchain;
use sandbox::ids::LabId;
use sandbox::lab::LabDir;
use sandbox::symptoms;
use serde_json::Value;

const SCENARIO: &str = r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {id: http-edge, title: t, summary: s, difficulty: beginner}
topology:
  services:
    - {name: web, program: gateway, calls: [search]}
    - {name: search, program: api, calls: [index]}
    - {name: index, program: backend, calls: [index-db]}
    - {name: index-db, program: store}
workload: {target: web, rate: 100}
faults:
  - id: slow
    type: delay
    target: {link: {from: web, to: search}, direction: forward}
    params: {delay: 60ms}
    start_after: 1s
briefing: {title: t, body: b}
"#;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn row<'a>(summary: &'a Value, list: &str, instance: &str, route: Option<&str>) -> &'a Value {
    summary[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instance"] == instance && route.is_none_or(|p| r["route"] == p))
        .unwrap_or_else(|| panic!("no {list} row {instance} {route:?} in {summary:#}"))
}

fn edge_p99_matches_the_load_generator(tc: &Toolchain) {
    let _g = serial();
    let lab = Lab::start_yaml_go("http-edge", SCENARIO, 1, tc);
    lab.wait_fault("slow", "active", Duration::from_secs(15));
    // The requests queued while the delay was put in place have drained by then.
    std::thread::sleep(Duration::from_secs(3));
    let start = now_ms();
    let out = sandbox()
        .args([
            "probe",
            "http",
            "--lab",
            &lab.id,
            "--duration",
            "8s",
            "--json",
        ])
        .output()
        .unwrap();
    let end = now_ms();
    let run = probe_run(&out);
    let s = &run.summary;
    // Let the load generator write the second that ended with the probe.
    std::thread::sleep(Duration::from_millis(1500));
    let dir = LabDir::new(&LabId::parse(&lab.id).unwrap());
    // Seconds the load generator closed while the probe ran (each record covers the second
    // before its timestamp), attach time excluded.
    let from = start + (run.attach_ms as u64) + 1000;
    let load = symptoms::window(&symptoms::read(&dir.load_stats()), from, end + 1)
        .expect("load generator records in the probe's window");
    let web = row(s, "routes", "web-0", Some("/"));
    // The load generator's p99 is each second's p99, averaged weighted by requests: the
    // probe's per-second rows for web's route, averaged alike, are the same statistic.
    let seconds: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "second")
        .filter_map(|e| {
            e["data"]["routes"]
                .as_array()?
                .iter()
                .find(|r| r["instance"] == "web-0" && r["route"] == "/")
                .cloned()
        })
        .collect();
    let n: f64 = seconds.iter().map(|r| r["count"].as_f64().unwrap()).sum();
    let probe_p99_ms = seconds
        .iter()
        .map(|r| r["p99_us"].as_f64().unwrap() * r["count"].as_f64().unwrap())
        .sum::<f64>()
        / n
        / 1000.0;
    eprintln!(
        "{} lab {}: attach {:.1} ms, {} requests, lost {}, unmatched {}; web-0 / p50 {} µs, p99 {} µs over the run, per-second p99 {probe_p99_ms:.1} ms ({} requests); load generator over {} s: p50 {:.1} ms p99 {:.1} ms",
        tc.version,
        lab.id,
        run.attach_ms,
        s["requests"],
        s["lost"],
        s["unmatched"],
        web["p50_us"],
        web["p99_us"],
        web["count"],
        load.seconds,
        load.p50_ms,
        load.p99_ms
    );
    assert!(
        (probe_p99_ms - load.p99_ms).abs() <= 0.1 * load.p99_ms,
        "probe p99 {probe_p99_ms:.1} ms vs load generator p99 {:.1} ms: {s:#}",
        load.p99_ms
    );
    assert!(
        probe_p99_ms >= 60.0,
        "the delayed hop is inside web's handler"
    );
    assert!(web["count"].as_u64().unwrap() >= 600, "{web}");
    assert_eq!(web["status"]["2xx"], web["count"], "{web}");
    // search's own handling is fast: the delay is on the way to it, not in it.
    let search = row(s, "instances", "search-0", None);
    assert!(search["p50_us"].as_f64().unwrap() < 20_000.0, "{search}");
    assert_eq!(s["lost"], 0, "{s:#}");
    let slowest = s["slowest"].as_array().unwrap();
    assert_eq!(slowest.len(), 10, "{s:#}");
    assert!(
        slowest[0]["duration_us"].as_u64().unwrap() >= (probe_p99_ms * 1000.0) as u64,
        "{s:#}"
    );
    let procs = s["processes"].as_array().unwrap();
    assert_eq!(
        procs.len(),
        4,
        "the four servers, not the load generator: {s:#}"
    );
    for p in procs {
        assert_eq!(p["go"].as_str(), Some(tc.version.as_str()), "{p}");
    }
    lab.assert_all_running();
    lab.down_clean();
}

#[test]
fn http_edge_p99_matches_the_load_generator_with_go_1_19() {
    if !root_or_skip("http_edge_p99_matches_the_load_generator_with_go_1_19") {
        return;
    }
    let Some(tc) = go_1_19_or_skip() else {
        return;
    };
    edge_p99_matches_the_load_generator(&tc);
}

#[test]
fn http_edge_p99_matches_the_load_generator_with_current_go() {
    if !root_or_skip("http_edge_p99_matches_the_load_generator_with_current_go") {
        return;
    }
    let Some(tc) = current_go_or_skip() else {
        return;
    };
    edge_p99_matches_the_load_generator(&tc);
}
