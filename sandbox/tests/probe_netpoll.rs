//! The netpoll probe points at a slow upstream: search (api) fans out to index and profiles,
//! a 60 ms delay is added on search → profiles, and `sandbox probe netpoll --target search`
//! must show search waiting about that long on profiles and far less on index, with the
//! services built by Go 1.19 and by the current Go. A twin lab running the same binary must
//! not leak into the probe, and no probed Go process may crash.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use sandbox::gobuild::Toolchain;
use serde_json::Value;

const SCENARIO: &str = r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {id: netpoll-fanout, title: t, summary: s, difficulty: beginner}
topology:
  services:
    - {name: web, program: gateway, calls: [search]}
    - {name: search, program: api, calls: [index, profiles]}
    - {name: index, program: backend, calls: [index-db]}
    - {name: profiles, program: backend, calls: [profiles-db]}
    - {name: index-db, program: store}
    - {name: profiles-db, program: store}
workload: {target: web, rate: 100}
faults:
  - id: slow
    type: delay
    target: {link: {from: search, to: profiles}, direction: forward}
    params: {delay: 60ms}
    start_after: 2s
briefing: {title: t, body: b}
"#;

fn probe_command(lab: &Lab, target: &str, secs: u64) -> std::process::Command {
    let mut c = sandbox();
    c.args(["probe", "netpoll", "--lab", &lab.id, "--target", target])
        .args(["--duration", &format!("{secs}s"), "--json"]);
    c
}

fn peer<'a>(summary: &'a Value, role: &str, name: &str) -> &'a Value {
    summary["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == role && p["peer"] == name)
        .unwrap_or_else(|| panic!("no {role} peer {name} in {summary:#}"))
}

/// Every instance still running, never restarted, and search's log free of Go crashes.
fn assert_no_crash(lab: &Lab) {
    lab.assert_all_running();
    let log = sandbox()
        .args(["logs", "search", "--lab", &lab.id, "-n", "500"])
        .output()
        .unwrap();
    let log = text(&log);
    for bad in ["SIGILL", "fatal error", "panic:", "unexpected return pc"] {
        assert!(
            !log.contains(bad),
            "search's log shows a crash ({bad}):\n{log}"
        );
    }
}

fn lab_with(tc: &Toolchain, seed: u64) -> Lab {
    Lab::start_yaml_go("netpoll-fanout", SCENARIO, seed, tc)
}

/// The probe on `lab`'s search names profiles as the slow upstream and index as a fast one,
/// and saw only `lab`'s own search process.
fn assert_points_at_profiles(lab: &Lab, tc: &Toolchain, run: &ProbeRun) {
    let s = &run.summary;
    let slow = peer(s, "client", "profiles-0");
    let fast = peer(s, "client", "index-0");
    let us = |p: &Value, k: &str| p[k].as_f64().unwrap();
    eprintln!(
        "{} lab {}: attach {:.1} ms, {} waits ({}/s), lost {}; profiles-0 mean {:.0} µs p99≤{} max {} ({} waits); index-0 mean {:.0} µs p99≤{} max {} ({} waits)",
        tc.version,
        lab.id,
        run.attach_ms,
        s["events"],
        s["events_per_s"],
        s["lost"],
        us(slow, "mean_us"),
        slow["p99_us"],
        slow["max_us"],
        slow["count"],
        us(fast, "mean_us"),
        fast["p99_us"],
        fast["max_us"],
        fast["count"],
    );
    assert!(
        us(slow, "mean_us") >= 40_000.0 && us(slow, "p99_us") >= 32_768.0,
        "the delayed upstream waits about 60 ms: {slow}"
    );
    assert!(
        us(fast, "mean_us") < 10_000.0,
        "the healthy upstream answers in well under 10 ms: {fast}"
    );
    assert!(slow["count"].as_u64().unwrap() > 100, "{slow}");
    assert!(fast["count"].as_u64().unwrap() > 100, "{fast}");
    assert_eq!(s["slowest_upstream"]["peer"], "profiles-0", "{s:#}");
    assert_eq!(s["lost"], 0, "{s:#}");
    let procs = s["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{s:#}");
    assert_eq!(
        procs[0]["pid"].as_u64(),
        Some(u64::from(lab.pid_of("search-0")))
    );
    assert_eq!(procs[0]["table"], ".symtab");
    let binary = procs[0]["binary"].as_str().unwrap();
    assert!(
        binary.contains(&tc.version),
        "search runs a {} build: {binary}",
        tc.version
    );
}

#[test]
fn netpoll_points_at_the_delayed_upstream_with_go_1_19() {
    if !root_or_skip("netpoll_points_at_the_delayed_upstream_with_go_1_19") {
        return;
    }
    let Some(tc) = go_1_19_or_skip() else {
        return;
    };
    let _g = serial();
    let lab = lab_with(&tc, 1);
    lab.wait_fault("slow", "active", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    let run = probe_run(&probe_command(&lab, "search", 5).output().unwrap());
    assert_points_at_profiles(&lab, &tc, &run);
    assert_no_crash(&lab);
    lab.down_clean();
}

#[test]
fn netpoll_points_at_the_delayed_upstream_with_current_go_and_ignores_a_twin_lab() {
    if !root_or_skip("netpoll_points_at_the_delayed_upstream_with_current_go") {
        return;
    }
    let Some(tc) = current_go_or_skip() else {
        return;
    };
    let _g = serial();
    let lab = lab_with(&tc, 1);
    let twin = lab_with(&tc, 2);
    let exe = |l: &Lab| std::fs::read_link(format!("/proc/{}/exe", l.pid_of("search-0"))).unwrap();
    assert_eq!(
        exe(&lab),
        exe(&twin),
        "both labs run the same search binary"
    );
    lab.wait_fault("slow", "active", Duration::from_secs(15));
    twin.wait_fault("slow", "active", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));

    // Both probed at once: each must see its own lab only, though the uprobes sit in the
    // same file and both searches are busy.
    let other = probe_command(&twin, "search", 5)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = probe_run(&probe_command(&lab, "search", 5).output().unwrap());
    let twin_run = probe_run(&other.wait_with_output().unwrap());
    assert_points_at_profiles(&lab, &tc, &run);
    assert_points_at_profiles(&twin, &tc, &twin_run);
    for (probed, other, r) in [(&lab, &twin, &run), (&twin, &lab, &twin_run)] {
        let foreign: HashSet<String> = other.status()["lab"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["ip"].as_str().map(str::to_string))
            .collect();
        for p in r.summary["peers"].as_array().unwrap() {
            let name = p["peer"].as_str().unwrap();
            assert!(
                !foreign.contains(name),
                "lab {}'s probe saw lab {}'s traffic: {p}",
                probed.id,
                other.id
            );
        }
    }
    assert_no_crash(&lab);
    assert_no_crash(&twin);
    lab.down_clean();
    twin.down_clean();
}
