//! Lab start-up and teardown time, warm (Go binaries and, for Docker, the services' image
//! cached), side by side on each backend:
//!
//! - 4-service labs: the bundled `packet-loss` scenario (its fault fires later), and
//!   `all-faults.yaml` beside this file (a fault of every technique active from the start,
//!   taken down with them);
//! - with `--big`, one lab of 200 and one of 1,000 instances (a gateway in front of one
//!   service's replicas), once each.
//!
//! Run as:
//!
//!     sudo cargo bench -p sandbox --bench lifecycle                         # 20 rounds, both backends
//!     sudo cargo bench -p sandbox --bench lifecycle -- 5 --backends docker  # 5 rounds, Docker only
//!     sudo cargo bench -p sandbox --bench lifecycle -- 1 --big              # also 200 and 1,000 instances
//!     sudo cargo bench -p sandbox --bench lifecycle -- 10 --backends netns,docker,kube
//!
//! `kube` runs on sandbox's only cluster (`sandbox cluster create --layout pair`), warm: its
//! nodes hold the images. Big labs are not measured there: a kind node runs 110 pods at most.
//!
//! Reports, per round: wall time of `sandbox run <scenario> --detach` (process start to
//! return, all services healthy), the supervisor's own start-up time as printed by `run`,
//! wall time of `sandbox down` (until nothing of the lab is left), and for big labs the memory
//! the machine used for the lab (MemAvailable before and while it runs).

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sandbox");

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(backend: &str, name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!(
        "| {backend} | {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        v.len(),
        ms(v[0]),
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(v[v.len() - 1])
    );
}

fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A gateway in front of one service with `instances - 1` replicas.
fn wide(instances: u32, backend: &str) -> std::path::PathBuf {
    let yaml = format!(
        r#"apiVersion: sandbox/v1
kind: Scenario
metadata: {{id: wide-{instances}, title: t, summary: s, difficulty: beginner, backends: [{backend}]}}
topology:
  services:
    - {{name: front, program: gateway, calls: [leaf]}}
    - {{name: leaf, program: api, replicas: {}}}
workload: {{target: front, rate: 20}}
briefing: {{title: t, body: b}}
"#,
        instances - 1
    );
    let path = std::env::temp_dir().join(format!("sbx-bench-wide-{instances}-{backend}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `run --detach`, returning its wall time, the start-up it reports, and the lab id.
fn up(scenario: &str, backend: &str, timeout: &str) -> (Duration, Duration, String) {
    let t = Instant::now();
    let out = Command::new(BIN)
        .args([
            "run",
            scenario,
            "--detach",
            "--seed",
            "1",
            "--backend",
            backend,
        ])
        .args(["--timeout", timeout])
        .output()
        .unwrap();
    let wall = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = text
        .split("started in ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let id = text
        .lines()
        .find_map(|l| l.split("Lab ").nth(1)?.split_whitespace().next())
        .unwrap()
        .to_string();
    (wall, Duration::from_secs_f64(secs), id)
}

fn down(id: &str) -> Duration {
    let t = Instant::now();
    let out = Command::new(BIN).args(["down", id]).output().unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("nothing of it is left"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED lifecycle bench: labs need root");
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20);
    let big = args.iter().any(|a| a == "--big");
    let backends: Vec<String> = args
        .iter()
        .position(|a| a == "--backends")
        .and_then(|i| args.get(i + 1))
        .map(|b| b.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["netns".into(), "docker".into()]);
    let all_faults = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/all-faults.yaml");

    println!("| backend | measure | rounds | min ms | median ms | p90 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    for backend in &backends {
        // Warm the Go build cache and the backend's own (the Docker image) once.
        let (_, _, id) = up("packet-loss", backend, "60s");
        down(&id);
        for (label, scenario) in [("packet-loss", "packet-loss"), ("all-faults", all_faults)] {
            let (mut walls, mut readies, mut downs) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                let (wall, ready, id) = up(scenario, backend, "60s");
                walls.push(wall);
                readies.push(ready);
                if label == "all-faults" {
                    // Let every fault be installed before taking the lab down with them.
                    std::thread::sleep(Duration::from_millis(500));
                }
                downs.push(down(&id));
            }
            stats(
                backend,
                &format!("{label}: `run --detach` until every service is healthy (wall)"),
                walls,
            );
            stats(
                backend,
                &format!("{label}: supervisor start → ready (as `run` reports)"),
                readies,
            );
            stats(
                backend,
                &format!("{label}: `down` until nothing is left (wall)"),
                downs,
            );
        }
    }
    if !big {
        return;
    }
    println!();
    println!(
        "| backend | instances | `run --detach` s | supervisor → ready s | `down` s | memory used MiB |"
    );
    println!("|---|---|---|---|---|---|");
    for backend in backends.iter().filter(|b| *b != "kube") {
        for n in [200u32, 1000] {
            let file = wide(n, backend);
            let before = mem_available_kib();
            let (wall, ready, id) = up(file.to_str().unwrap(), backend, "600s");
            std::thread::sleep(Duration::from_secs(5));
            let used = before.saturating_sub(mem_available_kib()) / 1024;
            let took = down(&id);
            println!(
                "| {backend} | {n} | {:.1} | {:.1} | {:.1} | {used} |",
                wall.as_secs_f64(),
                ready.as_secs_f64(),
                took.as_secs_f64()
            );
        }
    }
}
