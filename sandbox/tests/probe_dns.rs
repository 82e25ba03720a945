//! The dns probe points at the lookups a DNS fault breaks, and the lab's name server serves
//! real Go resolvers: a lab resolves through it by default, a `dns` fault fails the lookups
//! of its link only, and the probe shows exactly those.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// front (gateway) → mid (api, a new connection per call) → back and side (backends) → db.
fn scenario(id: &str, names: &str, faults: &str) -> String {
    format!(
        r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {{id: {id}, title: t, summary: s, difficulty: beginner}}
topology:
  names: {names}
  services:
    - {{name: front, program: gateway, calls: [mid], args: ["-retries", "0"]}}
    - {{name: mid, program: api, calls: [back, side], args: ["-pool", "0"]}}
    - {{name: back, program: backend, calls: [db]}}
    - {{name: side, program: backend, calls: [db]}}
    - {{name: db, program: store}}
workload: {{target: front, rate: 50, concurrency: 16, timeout: 3s}}
faults:
{faults}
briefing: {{title: t, body: b}}
"#
    )
}

/// The dns probe's summary (one `--json` run) and the table it prints (another run).
fn probe_dns(lab: &Lab, target: Option<&str>, secs: u64) -> (Value, String) {
    let duration = format!("{secs}s");
    let mut args = vec!["dns", "--duration", &duration];
    if let Some(t) = target {
        args.extend(["--target", t]);
    }
    let table = sandbox()
        .arg("probe")
        .args(&args)
        .args(["--lab", &lab.id])
        .output()
        .unwrap();
    assert!(table.status.success(), "{}", text(&table));
    (lab.probe(&args).summary, text(&table))
}

fn flow<'a>(s: &'a Value, from: &str, name: &str) -> &'a Value {
    s["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["from"] == from && f["name"] == name)
        .unwrap_or_else(|| panic!("no lookups of {name} by {from}: {s}"))
}

fn failed(f: &Value) -> u64 {
    ["nxdomain", "servfail", "other", "unanswered"]
        .iter()
        .map(|k| f[k].as_u64().unwrap())
        .sum()
}

#[test]
fn dns_probe_points_at_the_failing_lookups_and_ignores_a_twin_lab() {
    if !root_or_skip("dns_probe_points_at_the_failing_lookups_and_ignores_a_twin_lab") {
        return;
    }
    let _g = serial();
    let faulty = Lab::start_yaml(
        "dnsnx",
        &scenario(
            "dnsnx",
            "dns",
            "  - {id: nx, type: dns, target: {link: {from: mid, to: back}}, params: {answer: nxdomain, percent: 50}}",
        ),
        1,
    );
    let twin = Lab::start_yaml("dnsok", &scenario("dnsok", "dns", "  []"), 1);
    faulty.wait_fault("nx", "active", Duration::from_secs(5));

    let (s, table) = probe_dns(&faulty, Some("mid"), 4);
    let bad = flow(&s, "mid-0", "back");
    let good = flow(&s, "mid-0", "side");
    let share = bad["nxdomain"].as_u64().unwrap() as f64 / bad["lookups"].as_u64().unwrap() as f64;
    assert!(
        (0.35..=0.65).contains(&share),
        "about half of mid's lookups of back get NXDOMAIN: {bad}"
    );
    eprintln!(
        "dns probe: {:.1}% of mid's lookups of back shown as NXDOMAIN (50% set), {} failed of side",
        share * 100.0,
        failed(good)
    );
    assert_eq!(failed(good), 0, "mid's lookups of side all answer: {good}");
    assert!(good["ok"].as_u64().unwrap() > 50, "{good}");
    assert!(
        s["flows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["from"] == "mid-0"),
        "--target mid shows mid's lookups only: {s}"
    );
    assert!(
        table.contains("NXDOMAIN") && table.contains("mid-0"),
        "{table}"
    );

    let st = faulty.status();
    let fault = &st["lab"]["faults"][0];
    assert!(
        fault["packets"].as_u64().unwrap() > 0,
        "status counts caught lookups: {fault}"
    );
    let logs = sandbox()
        .args(["logs", "mid", "--lab", &faulty.id])
        .output()
        .unwrap();
    assert!(
        text(&logs).contains("no such host"),
        "the Go resolver reports the NXDOMAIN: {}",
        text(&logs)
    );

    let (t, _) = probe_dns(&twin, None, 3);
    assert!(
        t["lookups"].as_u64().unwrap() > 50,
        "the twin resolves through its own server: {t}"
    );
    assert_eq!(t["failed"], 0, "the twin lab sees none of the fault: {t}");

    let id = faulty.id.clone();
    assert!(faulty.down().status.success());
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn dns_probe_says_a_hosts_file_lab_makes_no_lookups() {
    if !root_or_skip("dns_probe_says_a_hosts_file_lab_makes_no_lookups") {
        return;
    }
    let _g = serial();
    let lab = Lab::start_yaml("dnshosts", &scenario("dnshosts", "hosts", "  []"), 1);
    let (s, table) = probe_dns(&lab, None, 2);
    assert_eq!(s["lookups"], 0, "{s}");
    assert!(table.contains("hosts file"), "{table}");
}

/// On a cluster the pods ask cluster DNS from their own namespaces: the probe watches each
/// pod's `eth0`, and a `dns` fault acts on a service's own query packets: mid's are answered
/// late, half of front's not at all, and front's answered ones stay fast.
#[test]
fn dns_probe_times_cluster_dns_answers_on_kube_pods() {
    if !backend_or_skip(
        "dns_probe_times_cluster_dns_answers_on_kube_pods",
        sandbox::backend::BackendKind::Kube,
    ) {
        return;
    }
    let _g = serial();
    let yaml = r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {id: kube-dns, title: t, summary: s, difficulty: beginner, backends: [kube]}
topology:
  services:
    - {name: front, program: gateway, calls: [mid], args: ["-retries", "0", "-pool", "0"]}
    - {name: mid, program: api, calls: [back, side], args: ["-pool", "0"]}
    - {name: back, program: backend, calls: [db]}
    - {name: side, program: backend, calls: [db]}
    - {name: db, program: store}
workload: {target: front, rate: 30, concurrency: 16, timeout: 3s}
faults:
  - {id: late, type: dns, target: {service: mid, direction: egress}, params: {delay: 150ms}}
  - {id: gone, type: dns, target: {service: front, direction: egress}, params: {answer: timeout, percent: 50}}
briefing: {title: t, body: b}
"#;
    let lab = Lab::start_yaml_on("kube-dns", yaml, 1, sandbox::backend::BackendKind::Kube);
    lab.wait_fault("late", "active", Duration::from_secs(30));
    lab.wait_fault("gone", "active", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let (s, table) = probe_dns(&lab, None, 6);
    let of = |from: &str, service: &str| -> Vec<Value> {
        let prefix = format!("{service}.");
        s["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["from"] == from && f["name"].as_str().unwrap().starts_with(&prefix))
            .cloned()
            .collect()
    };
    let sum = |flows: &[Value], k: &str| flows.iter().map(|f| f[k].as_u64().unwrap()).sum::<u64>();
    let mean = |flows: &[Value]| {
        flows
            .iter()
            .filter(|f| f["ok"].as_u64().unwrap() > 0)
            .map(|f| f["mean_us"].as_u64().unwrap())
            .max()
            .unwrap_or(0)
    };
    let late = of("mid-0", "back");
    assert!(
        sum(&late, "ok") > 0,
        "mid's lookups of back are answered: {table}"
    );
    assert!(
        mean(&late) >= 140_000,
        "mid's lookups are held 150 ms:\n{table}"
    );
    let front = of("front-0", "mid");
    assert!(
        sum(&front, "unanswered") > 0,
        "some of front's lookups go unanswered: {table}"
    );
    assert!(
        sum(&front, "ok") > 0,
        "half of front's lookups are answered: {table}"
    );
    assert!(
        mean(&front) < 50_000,
        "front's answers are not held:\n{table}"
    );
    assert!(lab.down().status.success());
}
