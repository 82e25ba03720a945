//! The Docker backend on a real daemon: a lab reaches its own instances and nothing else, the
//! host's firewall, forwarding and routes stay as they were, and `down --all` sweeps a lab
//! whose supervisor was killed at any step without touching what sandbox did not create.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Lab, backend_or_skip, sandbox, serial, text};
use sandbox::backend::BackendKind;

/// Three services, faults of four techniques that fire at once.
const LAB: &str = r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {id: docker-lab, title: t, summary: s, difficulty: beginner, backends: [docker]}
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
briefing: {title: t, body: b}
"#;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a lab must never change on the host: firewall rules, routes, forwarding and the
/// other sysctls Docker is known to flip, and the links outside the lab.
fn host_snapshot() -> String {
    let run = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let sysctls = [
        "net/ipv4/ip_forward",
        "net/ipv4/conf/all/forwarding",
        "net/ipv4/conf/all/accept_redirects",
        "net/bridge/bridge-nf-call-iptables",
    ]
    .iter()
    .map(|s| {
        format!(
            "{s}={}",
            std::fs::read_to_string(format!("/proc/sys/{s}")).unwrap_or_default()
        )
    })
    .collect::<String>();
    let links: String = run("ip", &["-o", "link", "show"])
        .lines()
        .filter(|l| !l.contains(" sbx") && !l.contains(" veth"))
        .map(|l| format!("{}\n", l.split_whitespace().nth(1).unwrap_or("")))
        .collect();
    let routes: String = run("ip", &["route", "show"])
        .lines()
        .filter(|l| !l.contains("sbx"))
        .map(|l| format!("{l}\n"))
        .collect();
    format!(
        "{}\n{}\n{}\n{sysctls}\n{links}\n{routes}",
        run("iptables-save", &[])
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
        run("ip6tables-save", &[])
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
        run("nft", &["list", "ruleset"]),
    )
}

#[test]
fn a_docker_lab_reaches_its_own_instances_and_nothing_else() {
    if !backend_or_skip(
        "a_docker_lab_reaches_its_own_instances_and_nothing_else",
        BackendKind::Docker,
    ) {
        return;
    }
    let _g = serial();
    let before = host_snapshot();
    // A service on the host, listening everywhere: no container may reach it.
    let host = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let lab = Lab::start_yaml_on("docker-lab", LAB, 1, BackendKind::Docker);
    for f in ["l", "d", "b", "c"] {
        lab.wait_fault(f, "active", Duration::from_secs(15));
    }
    assert_eq!(host_snapshot(), before, "a running lab changed the host");
    let st = lab.status();
    let control: std::net::Ipv4Addr = st["lab"]["book"]["control"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mid = lab.ip("mid-0");
    let (to_host, to_mid, route) = lab.in_ns("front-0", || {
        let connect = |addr: SocketAddr| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map(|_| ())
        };
        let route = Command::new("ip")
            .args(["route", "get", "192.0.2.2"])
            .output()
            .unwrap();
        (
            connect(SocketAddr::from((control, port))),
            connect(SocketAddr::from((mid, 8080))),
            text(&route),
        )
    });
    assert!(to_host.is_err(), "a container reached a host service");
    assert!(to_mid.is_ok(), "front cannot reach mid: {to_mid:?}");
    assert!(
        route.contains("unreachable"),
        "a container has a route out of its lab: {route}"
    );
    let down = lab.down();
    assert!(
        text(&down).contains("nothing of it is left"),
        "{}",
        text(&down)
    );
    assert_eq!(host_snapshot(), before, "the lab left the host changed");
}

/// Whether a lab's published state has reached a lifecycle step.
type StepReached = fn(&serde_json::Value) -> bool;

/// Polls the lab's published step until `pred` holds, then SIGKILLs its supervisor.
fn kill_supervisor_when(id: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let state = format!("/run/sandbox/labs/{id}/state.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "lab {id} never reached the step");
        let st: Option<serde_json::Value> = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(st) = st
            && pred(&st)
            && let Some(pid) = st["supervisor_pid"].as_i64()
        {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn docker_objects_of(id: &str) -> Vec<String> {
    let label = format!("label=io.sandbox.lab={id}");
    let mut out: Vec<String> = docker(&["ps", "-a", "--filter", &label, "--format", "{{.Names}}"])
        .lines()
        .map(|l| format!("container {l}"))
        .collect();
    out.extend(
        docker(&["network", "ls", "--filter", &label, "--format", "{{.Name}}"])
            .lines()
            .map(|l| format!("network {l}")),
    );
    out.extend(
        docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .filter(|l| l.ends_with(&format!(":lab-{id}")))
            .map(|l| format!("image {l}")),
    );
    out
}

#[test]
fn down_all_sweeps_docker_labs_killed_at_each_step_and_spares_the_rest() {
    if !backend_or_skip(
        "down_all_sweeps_docker_labs_killed_at_each_step_and_spares_the_rest",
        BackendKind::Docker,
    ) {
        return;
    }
    let _g = serial();
    // Things sandbox did not create, and must not touch: an image, a container, a network.
    let imported = Command::new("sh")
        .args([
            "-c",
            "tar cf - --files-from /dev/null | docker import - not-a-lab:1",
        ])
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", text(&imported));
    docker(&["network", "create", "--internal", "not-a-lab"]);
    docker(&[
        "create",
        "--name",
        "not-a-lab",
        "--network",
        "none",
        "--entrypoint",
        "/none",
        "not-a-lab:1",
    ]);
    let file = common::write_temp("docker-lab.yaml", LAB);
    let steps: [(&str, StepReached); 3] = [
        ("creating the network", |st| {
            st["step"] == "creating the network"
        }),
        ("starting containers", |st| {
            st["step"]
                .as_str()
                .is_some_and(|s| s.starts_with("waiting for services"))
        }),
        ("faults installed", |st| {
            st["faults"]
                .as_array()
                .is_some_and(|f| !f.is_empty() && f.iter().all(|f| f["status"] == "active"))
        }),
    ];
    for (step, pred) in steps {
        let before = common::lab_ids();
        let mut run = sandbox()
            .args(["run", file.as_str(), "--detach", "--backend", "docker"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let id = {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let new: Vec<String> = common::lab_ids()
                    .into_iter()
                    .filter(|i| !before.contains(i))
                    .collect();
                if let Some(id) = new.into_iter().next() {
                    break id;
                }
                assert!(Instant::now() < deadline, "no lab appeared");
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        kill_supervisor_when(&id, pred);
        let _ = run.wait();
        std::thread::sleep(Duration::from_millis(300));
        let out = sandbox().args(["down", "--all"]).output().unwrap();
        assert!(
            out.status.success(),
            "down --all after a kill while {step}: {}",
            text(&out)
        );
        let left = docker_objects_of(&id);
        assert!(
            left.is_empty(),
            "killed while {step}, lab {id} left {left:?}"
        );
        let netns_left = common::leftovers(&id);
        assert!(netns_left.is_empty(), "killed while {step}: {netns_left:?}");
    }
    assert!(
        docker(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|n| n == "not-a-lab"),
        "down --all removed a network sandbox did not create"
    );
    assert!(
        docker(&["ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .any(|n| n == "not-a-lab"),
        "down --all removed a container sandbox did not create"
    );
    assert!(
        docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .any(|n| n == "not-a-lab:1"),
        "down --all removed an image sandbox did not create"
    );
    docker(&["rm", "-f", "not-a-lab"]);
    docker(&["network", "rm", "not-a-lab"]);
    docker(&["rmi", "not-a-lab:1"]);
}
