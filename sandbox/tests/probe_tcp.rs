//! The TCP probes point at the fault: for each network fault type, a lab runs with it, the
//! probe a learner would use runs against it, and the fault's link or service must stand out
//! while healthy ones stay quiet. Retransmit counts are checked against the kernel's own
//! counters (TcpRetransSegs) on the same run.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use sandbox::backend::BackendKind;
use serde_json::Value;

/// front (gateway) → mid (api) → back (backend) → db (store), load on front, and `faults`.
fn scenario(id: &str, extra_args: &str, faults: &str) -> String {
    format!(
        r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {{id: {id}, title: t, summary: s, difficulty: beginner, backends: [netns, docker, kube]}}
topology:
  services:
    - {{name: front, program: gateway, calls: [mid]}}
    - {{name: mid, program: api, calls: [back]{extra_args}}}
    - {{name: back, program: backend, calls: [db]}}
    - {{name: db, program: store}}
workload: {{target: front, rate: 100, concurrency: 16, timeout: 3s}}
faults:
{faults}
briefing: {{title: t, body: b}}
"#
    )
}

/// Runs `sandbox probe <probe>` for `secs` seconds and returns its summary; `during` runs
/// once the probe is attached and again when it has finished, and its two results are returned.
fn probe_with<T>(
    lab: &Lab,
    probe: &str,
    target: Option<&str>,
    secs: u64,
    during: impl Fn() -> T,
) -> (Value, T, T) {
    let mut args = vec![
        "probe".to_string(),
        probe.into(),
        "--lab".into(),
        lab.id.clone(),
        "--json".into(),
        "--duration".into(),
        format!("{secs}s"),
    ];
    if let Some(t) = target {
        args.extend(["--target".into(), t.into()]);
    }
    let mut child = sandbox()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value =
        serde_json::from_str(&lines.next().expect("probe printed nothing").unwrap()).unwrap();
    assert_eq!(first["event"], "attached", "{first}");
    let before = during();
    let mut summary = Value::Null;
    for l in lines {
        let v: Value = serde_json::from_str(&l.unwrap()).unwrap();
        if v["event"] == "summary" {
            summary = v["summary"].clone();
        }
    }
    let status = child.wait().unwrap();
    let after = during();
    assert!(status.success(), "probe {probe} failed");
    assert!(!summary.is_null(), "probe {probe} printed no summary");
    (summary, before, after)
}

fn probe(lab: &Lab, probe: &str, target: Option<&str>, secs: u64) -> Value {
    probe_with(lab, probe, target, secs, || ()).0
}

fn involves(v: &Value, a: &str, b: &str) -> bool {
    let (from, to) = (
        v["from"].as_str().unwrap_or(""),
        v["to"].as_str().unwrap_or(""),
    );
    (from.starts_with(a) && to.starts_with(b)) || (from.starts_with(b) && to.starts_with(a))
}

/// Sums `field` over the entries of `list` that are (or are not) between `a` and `b`.
fn split_sum(list: &Value, field: &str, a: &str, b: &str) -> (u64, u64) {
    let mut on = 0;
    let mut off = 0;
    for v in list.as_array().unwrap() {
        let n = v[field].as_u64().unwrap_or(0);
        if involves(v, a, b) { on += n } else { off += n }
    }
    (on, off)
}

/// TcpRetransSegs of every instance namespace of the lab, summed.
fn kernel_retrans(lab: &Lab, instances: &[&str]) -> u64 {
    instances
        .iter()
        .map(|i| {
            lab.in_ns(i, || {
                let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
                let tcp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Tcp:")).collect();
                let names: Vec<&str> = tcp[0].split_whitespace().collect();
                let vals: Vec<&str> = tcp[1].split_whitespace().collect();
                vals[names.iter().position(|n| *n == "RetransSegs").unwrap()]
                    .parse::<u64>()
                    .unwrap()
            })
        })
        .sum()
}

const INSTANCES: [&str; 5] = ["front-0", "mid-0", "back-0", "db-0", "loadgen"];

#[test]
fn tcp_retrans_points_at_the_lossy_link_and_agrees_with_the_kernel() {
    retrans_agrees_with_the_kernel(BackendKind::Netns);
}

#[test]
fn tcp_retrans_in_docker_containers_agrees_with_the_kernel() {
    retrans_agrees_with_the_kernel(BackendKind::Docker);
}

#[test]
fn tcp_retrans_on_kube_pods_agrees_with_the_kernel() {
    retrans_agrees_with_the_kernel(BackendKind::Kube);
}

fn retrans_agrees_with_the_kernel(kind: BackendKind) {
    if !backend_or_skip("tcp_retrans_points_at_the_lossy_link", kind) {
        return;
    }
    let _g = serial();
    let yaml = scenario(
        "retrans",
        "",
        "  - {id: loss, type: loss, target: {link: {from: back, to: db}}, params: {percent: 10}}",
    );
    let lab = Lab::start_yaml_on("retrans", &yaml, 1, kind);
    lab.wait_fault("loss", "active", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    let (s, before, after) = probe_with(&lab, "tcp-retrans", None, 6, || {
        kernel_retrans(&lab, &INSTANCES)
    });
    let (faulty, healthy) = split_sum(&s["flows"], "segments", "back", "db");
    eprintln!(
        "tcp-retrans: back↔db {faulty} segments, elsewhere {healthy}; kernel counted {}",
        after - before
    );
    assert!(faulty > 30, "the lossy link retransmits: {s}");
    assert!(
        healthy * 50 <= faulty,
        "healthy links are quiet: {healthy} vs {faulty}"
    );
    let kernel = (after - before) as f64;
    let probe_total = s["total_segments"].as_u64().unwrap() as f64;
    assert!(
        (probe_total - kernel).abs() <= 0.10 * kernel,
        "probe {probe_total} vs TcpRetransSegs {kernel}: more than 10% apart"
    );

    // Targeting a healthy service shows nothing of the lossy link.
    let s = probe(&lab, "tcp-retrans", Some("front"), 3);
    assert_eq!(s["total_segments"], 0, "front sees no retransmissions: {s}");

    // A target the lab does not have is named, with the ones it does.
    let out = sandbox()
        .args([
            "probe",
            "tcp-retrans",
            "--lab",
            &lab.id,
            "--target",
            "nosuch",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("nosuch"), "{}", text(&out));
    assert!(text(&out).contains("front-0"), "{}", text(&out));
}

#[test]
fn tcp_rtt_points_at_the_delayed_link() {
    if !root_or_skip("tcp_rtt_points_at_the_delayed_link") {
        return;
    }
    let _g = serial();
    let yaml = scenario(
        "rtt",
        "",
        "  - {id: slow, type: delay, target: {link: {from: mid, to: back}, direction: forward}, params: {delay: 40ms}}",
    );
    let lab = Lab::start_yaml("rtt", &yaml, 1);
    lab.wait_fault("slow", "active", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    let s = probe(&lab, "tcp-rtt", None, 4);
    for f in s["flows"].as_array().unwrap() {
        let path = f["path_us"].as_u64().unwrap();
        // The floor of a healthy flow's RTT is the network's (µs) or, for a server answering
        // requests, its peer's delayed ACK (a few ms): either way far below the delay.
        if involves(f, "mid", "back") {
            assert!(
                (38_000..60_000).contains(&path),
                "mid ↔ back carries the 40 ms delay: {f}"
            );
        } else {
            assert!(path < 20_000, "{f} is healthy");
        }
    }
    assert!(
        s["flows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| involves(f, "mid", "back")),
        "{s}"
    );
}

#[test]
fn tcp_reset_says_the_network_sent_the_resets() {
    resets_come_from_the_network(BackendKind::Netns);
}

#[test]
fn tcp_reset_in_docker_containers_says_the_network_sent_the_resets() {
    resets_come_from_the_network(BackendKind::Docker);
}

#[test]
fn tcp_reset_on_kube_pods_says_the_network_sent_the_resets() {
    resets_come_from_the_network(BackendKind::Kube);
}

fn resets_come_from_the_network(kind: BackendKind) {
    if !backend_or_skip("tcp_reset_says_the_network_sent_the_resets", kind) {
        return;
    }
    let _g = serial();
    let yaml = scenario(
        "reset",
        "",
        "  - {id: rst, type: reset, target: {link: {from: mid, to: back}, port: 8080}, params: {percent: 20}}",
    );
    let lab = Lab::start_yaml_on("reset", &yaml, 1, kind);
    lab.wait_fault("rst", "active", Duration::from_secs(5));
    let s = probe(&lab, "tcp-reset", None, 4);
    let conns = s["connections"].as_array().unwrap();
    let mut on_link = 0;
    let mut forged_elsewhere = 0;
    for c in conns {
        let link = c["client"].as_str().unwrap().starts_with("mid")
            && c["server"].as_str().unwrap().starts_with("back");
        let got = c["client_received"].as_u64().unwrap() + c["server_received"].as_u64().unwrap();
        if link {
            on_link += got;
            assert_eq!(
                c["client_resets_from"], "network",
                "back never sent them: {c}"
            );
            assert_eq!(c["server_sent"], 0, "{c}");
        } else {
            // Elsewhere only knock-on effects: an end closing a connection on its peer. A
            // reset the peer's kernel sends from a path without the tracepoint may show as
            // forged now and then; the faulty link must stand out by far.
            for (side, got) in [
                ("client_resets_from", "client_received"),
                ("server_resets_from", "server_received"),
            ] {
                if c[side] == "network" {
                    forged_elsewhere += c[got].as_u64().unwrap();
                }
            }
        }
    }
    assert!(
        forged_elsewhere * 20 <= on_link,
        "forged resets only on mid → back: {forged_elsewhere} elsewhere vs {on_link}: {s}"
    );
    assert!(
        on_link > 5,
        "mid received resets from back's direction: {s}"
    );
}

#[test]
fn tcp_drop_points_at_a_blackhole() {
    drops_at_a_blackhole(BackendKind::Netns);
}

#[test]
fn tcp_drop_points_at_a_blackhole_in_docker_containers() {
    drops_at_a_blackhole(BackendKind::Docker);
}

#[test]
fn tcp_drop_points_at_a_blackhole_on_kube_pods() {
    drops_at_a_blackhole(BackendKind::Kube);
}

fn drops_at_a_blackhole(kind: BackendKind) {
    if !backend_or_skip("tcp_drop_points_at_a_blackhole", kind) {
        return;
    }
    let _g = serial();
    let faults =
        "  - {id: hole, type: blackhole, target: {service: db, direction: ingress, port: 7070}}";
    let lab = Lab::start_yaml_on("hole", &scenario("hole", "", faults), 1, kind);
    lab.wait_fault("hole", "active", Duration::from_secs(5));
    let s = probe(&lab, "tcp-drop", None, 3);
    // Where the fault sits: the router namespace on netns, the receiver's own on Docker.
    let site = match kind {
        BackendKind::Netns => "network",
        _ => "db-0",
    };
    for d in s["drops"].as_array().unwrap() {
        assert_eq!(d["where"], site, "the fault drops at its site: {d}");
        assert_eq!(d["reason"], "NETFILTER_DROP", "{d}");
        assert!(
            d["to"].as_str().unwrap().starts_with("db") && d["port"] == 7070,
            "only traffic into db:7070 is dropped: {d}"
        );
    }
    assert!(s["total"].as_u64().unwrap() > 0, "{s}");
}

#[test]
fn tcp_drop_points_at_a_partition() {
    if !root_or_skip("tcp_drop_points_at_a_partition") {
        return;
    }
    let _g = serial();
    let faults =
        "  - {id: cut, type: partition, target: {link: {from: front, to: mid}}, start_after: 1s}";
    let lab = Lab::start_yaml("cut", &scenario("cut", "", faults), 1);
    lab.wait_fault("cut", "active", Duration::from_secs(5));
    let s = probe(&lab, "tcp-drop", Some("mid"), 3);
    let (cut, other) = split_sum(&s["drops"], "packets", "front", "mid");
    assert!(
        cut > 0 && other == 0,
        "targeting mid shows the partition with front, and nothing else: {s}"
    );
    let s = probe(&lab, "tcp-drop", Some("db"), 2);
    assert_eq!(s["total"], 0, "db is not cut off: {s}");
}

#[test]
fn tcp_connect_points_at_syn_drops() {
    if !root_or_skip("tcp_connect_points_at_syn_drops") {
        return;
    }
    let _g = serial();
    // mid opens a new connection per call, as clients without pooling do.
    let yaml = scenario(
        "syn",
        ", args: [\"-pool\", \"0\"]",
        "  - {id: syn, type: syn-drop, target: {service: back, direction: ingress, port: 8080}, start_after: 2s}",
    );
    let lab = Lab::start_yaml("syn", &yaml, 1);
    lab.wait_fault("syn", "active", Duration::from_secs(6));
    let s = probe(&lab, "tcp-connect", None, 4);
    let mut failed_to_back = 0;
    for d in s["destinations"].as_array().unwrap() {
        let failures: u64 = d["failures"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        if d["to"].as_str().unwrap().starts_with("back") {
            failed_to_back += failures;
            assert_eq!(d["ok"], 0, "no connection to back gets through: {d}");
        } else {
            assert_eq!(failures, 0, "connections elsewhere succeed: {d}");
        }
    }
    assert!(failed_to_back > 0, "connects to back fail: {s}");
}

#[test]
fn bandwidth_limits_show_as_queueing_on_the_limited_link() {
    if !root_or_skip("bandwidth_limits_show_as_queueing_on_the_limited_link") {
        return;
    }
    let _g = serial();
    let yaml = scenario(
        "bw",
        "",
        "  - {id: thin, type: bandwidth, target: {service: back, direction: egress}, params: {rate: 100kbit}}",
    );
    let lab = Lab::start_yaml("bw", &yaml, 1);
    lab.wait_fault("thin", "active", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    let s = probe(&lab, "tcp-rtt", None, 4);
    let mut limited = 0u64;
    let mut healthy = 0u64;
    for f in s["flows"].as_array().unwrap() {
        // Data from back and ACKs from back wait in the same queue.
        let mean = f["mean_us"].as_u64().unwrap();
        if involves(f, "back", "") {
            limited = limited.max(mean);
        } else {
            healthy = healthy.max(mean);
        }
    }
    eprintln!("bandwidth: RTT across back's limit {limited} µs, elsewhere at most {healthy} µs");
    assert!(
        limited > 100_000 && limited > 5 * healthy,
        "what back sends queues: {s}"
    );
}

#[test]
fn corruption_shows_as_checksum_drops_at_the_receiver() {
    if !root_or_skip("corruption_shows_as_checksum_drops_at_the_receiver") {
        return;
    }
    let _g = serial();
    let yaml = scenario(
        "csum",
        "",
        "  - {id: bits, type: corrupt, target: {link: {from: back, to: db}, direction: forward}, params: {percent: 20}}",
    );
    let lab = Lab::start_yaml("csum", &yaml, 1);
    lab.wait_fault("bits", "active", Duration::from_secs(5));
    let s = probe(&lab, "tcp-drop", None, 4);
    let drops = s["drops"].as_array().unwrap();
    assert!(!drops.is_empty(), "{s}");
    for d in drops {
        assert_eq!(d["where"], "db-0", "the receiver drops them: {d}");
        assert!(
            d["reason"].as_str().unwrap().contains("CSUM"),
            "a checksum drop: {d}"
        );
        assert!(d["from"].as_str().unwrap().starts_with("back"), "{d}");
    }
}
