//! Lab lifecycle against the real kernel: a scenario comes up, its symptom appears when the
//! fault fires, and `down` (also after a SIGKILL of the supervisor) leaves nothing behind.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sandbox::backend::BackendKind;

/// A lab with one fault of every kernel technique, active at once.
const EVERY_TECHNIQUE: &str = r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {id: every-technique, title: t, summary: s, difficulty: beginner}
topology:
  services:
    - {name: front, program: gateway, calls: [mid]}
    - {name: mid, program: backend, calls: [db]}
    - {name: db, program: store}
workload: {target: front, rate: 50}
faults:
  - {id: l, type: loss, target: {link: {from: front, to: mid}}, params: {percent: 1}}
  - {id: d, type: delay, target: {service: db, direction: ingress}, params: {delay: 5ms}}
  - {id: b, type: bandwidth, target: {service: mid, direction: egress}, params: {rate: 50mbit}}
  - {id: c, type: corrupt, target: {link: {from: mid, to: db}}, params: {percent: 1}}
  - {id: s, type: slow, target: {service: db}, params: {delay: 1ms, percent: 5}}
briefing: {title: t, body: b}
"#;

fn assert_gone(id: &str) {
    let left = leftovers(id);
    assert!(left.is_empty(), "lab {id} left: {left:#?}");
    let root = root_ns_objects();
    assert!(root.is_empty(), "objects in the host namespace: {root:#?}");
}

#[test]
fn loss_scenario_shows_its_symptom_when_the_fault_fires_and_down_leaves_nothing() {
    if !root_or_skip("loss_scenario_shows_its_symptom") {
        return;
    }
    let _g = serial();
    let lab = Lab::start("packet-loss", 3);
    let st = lab.status();
    assert_eq!(st["lab"]["phase"], "ready");
    assert_eq!(
        st["lab"]["faults"][0]["status"], "pending",
        "the fault waits 20 s"
    );
    for i in st["lab"]["instances"].as_array().unwrap() {
        assert_eq!(i["status"], "running", "{i}");
    }

    // Before the fault: a few seconds of healthy load.
    std::thread::sleep(Duration::from_secs(6));
    let before = lab.status();
    let p99_before = before["symptoms"]["recent"]["p99_ms"].as_f64().unwrap();
    assert!(
        p99_before < 50.0,
        "healthy p99 should be milliseconds, is {p99_before}"
    );
    assert!(before["symptoms"]["recent"]["rate"].as_f64().unwrap() > 100.0);

    lab.wait_fault("lossy-ledger", "active", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(7));
    let after = lab.status();
    let p99_after = after["symptoms"]["recent"]["p99_ms"].as_f64().unwrap();
    assert!(
        p99_after > 150.0,
        "with packet loss p99 should show retransmission timeouts, is {p99_after} ms"
    );
    let p50_after = after["symptoms"]["recent"]["p50_ms"].as_f64().unwrap();
    assert!(p50_after < 50.0, "the median stays fast, is {p50_after} ms");
    assert!(
        after["lab"]["faults"][0]["packets"].as_u64().unwrap() > 0,
        "the fault's rules dropped packets"
    );

    // The human page says the same, and keeps what the fault is to itself unless asked.
    let page = text(&sandbox().args(["status", &lab.id]).output().unwrap());
    assert!(
        page.contains("#1") && page.contains("active") && page.contains("before faults"),
        "{page}"
    );
    assert!(
        !page.contains("lossy-ledger") && !page.contains("packet loss"),
        "status gives the answer away:\n{page}"
    );
    let revealed = text(
        &sandbox()
            .args(["status", &lab.id, "--reveal"])
            .output()
            .unwrap(),
    );
    assert!(
        revealed.contains("lossy-ledger") && revealed.contains("packet loss on payments ↔ ledger"),
        "{revealed}"
    );

    let id = lab.id.clone();
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("nothing of it is left"),
        "{}",
        text(&out)
    );
    assert_gone(&id);
}

#[test]
fn down_all_cleans_up_after_the_supervisor_is_killed() {
    if !root_or_skip("down_all_cleans_up_after_the_supervisor_is_killed") {
        return;
    }
    let _g = serial();
    let lab = Lab::start_yaml("every-technique", EVERY_TECHNIQUE, 1);
    for f in ["l", "d", "b", "c", "s"] {
        lab.wait_fault(f, "active", Duration::from_secs(10));
    }
    let ns = lab.netns("");
    let lab_ns = ns.trim_end_matches('-').to_string();
    let tables = std::process::Command::new("ip")
        .args(["netns", "exec", &lab_ns, "nft", "list", "tables"])
        .output()
        .unwrap();
    assert!(
        text(&tables).contains(&format!("sbx_{}_f0", lab.id)),
        "{}",
        text(&tables)
    );
    let qdiscs = std::process::Command::new("tc")
        .args(["-n", &lab_ns, "qdisc", "show"])
        .output()
        .unwrap();
    assert!(text(&qdiscs).contains("htb"), "{}", text(&qdiscs));
    let progs = std::process::Command::new("bpftool")
        .args(["prog", "show", "name", "sbx_corrupt"])
        .output()
        .unwrap();
    assert!(
        text(&progs).contains("sbx_corrupt"),
        "the corruption program is loaded: {}",
        text(&progs)
    );

    let pid = lab.supervisor_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| !c.is_empty())
            .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "supervisor survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !leftovers(&lab.id).is_empty(),
        "services and namespaces outlive a killed supervisor"
    );

    let out = sandbox().args(["down", "--all"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("Lab {} is down", lab.id)),
        "{}",
        text(&out)
    );
    assert_gone(&lab.id);
    let progs = std::process::Command::new("bpftool")
        .args(["prog", "show", "name", "sbx_corrupt"])
        .output()
        .unwrap();
    assert!(
        !text(&progs).contains("sbx_corrupt"),
        "eBPF program left loaded: {}",
        text(&progs)
    );
}

#[test]
fn two_labs_of_one_scenario_do_not_see_each_other() {
    two_labs_side_by_side(BackendKind::Netns);
}

#[test]
fn two_docker_labs_of_one_scenario_do_not_see_each_other() {
    two_labs_side_by_side(BackendKind::Docker);
}

fn two_labs_side_by_side(kind: BackendKind) {
    if !backend_or_skip("two_labs_of_one_scenario_do_not_see_each_other", kind) {
        return;
    }
    let _g = serial();
    let broken = r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {id: twins, title: t, summary: s, difficulty: beginner, backends: [netns, docker]}
params:
  cut: {one_of: [true, false]}
topology:
  services:
    - {name: front, program: gateway, calls: [db-api]}
    - {name: db-api, program: backend, calls: [db]}
    - {name: db, program: store}
workload: {target: front, rate: 50, timeout: 500ms}
faults:
  - id: cut
    type: blackhole
    target: {service: db, port: "{{ 7070 if cut else 9090 }}"}
briefing: {title: t, body: b}
"#;
    let file = write_temp("twins.yaml", broken);
    let path = &file.path;
    // One seed that blackholes the store, one that only touches an unused port.
    let scenario = sandbox::scenario::Source::from_path(path)
        .unwrap()
        .load()
        .unwrap();
    let cuts = |seed: u64| {
        let plan = sandbox::plan::Plan::build(&scenario, seed).unwrap();
        matches!(
            &plan.faults[0].target,
            sandbox::plan::FaultTarget::Service {
                port: Some(7070),
                ..
            }
        )
    };
    let cut_seed = (0..64).find(|s| cuts(*s)).unwrap();
    let fine_seed = (0..64).find(|s| !cuts(*s)).unwrap();
    let a = Lab::start_on(path.to_str().unwrap(), cut_seed, kind);
    let b = Lab::start_on(path.to_str().unwrap(), fine_seed, kind);
    assert_ne!(a.id, b.id);
    let (ipa, ipb) = (a.ip("db-0"), b.ip("db-0"));
    assert_ne!(
        ipa.octets()[2],
        ipb.octets()[2],
        "each lab has its own subnet: {ipa} vs {ipb}"
    );
    a.wait_fault("cut", "active", Duration::from_secs(5));
    b.wait_fault("cut", "active", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(5));
    let sa = a.status();
    let sb = b.status();
    let err_a = sa["symptoms"]["recent"]["error_pct"].as_f64().unwrap();
    let err_b = sb["symptoms"]["recent"]["error_pct"].as_f64().unwrap();
    assert!(
        err_a > 50.0,
        "lab {} has its store cut off: {err_a}% errors",
        a.id
    );
    assert!(
        err_b < 1.0,
        "lab {} is untouched by the other lab's fault: {err_b}% errors",
        b.id
    );
    // An instance of one lab cannot reach the other lab at all.
    let reach = a.in_ns("front-0", || {
        std::net::TcpStream::connect_timeout(&(ipb, 9090).into(), Duration::from_millis(500))
    });
    assert!(
        reach.is_err(),
        "lab {} reached lab {}'s db at {ipb}",
        a.id,
        b.id
    );
    let ids = (a.id.clone(), b.id.clone());
    assert!(a.down().status.success());
    assert!(b.down().status.success());
    assert_gone(&ids.0);
    assert_gone(&ids.1);
}
