//! Lab start-up and teardown time, warm (Go binaries cached), for 4-service labs on the netns
//! backend: the bundled `packet-loss` scenario (its fault fires later), and `all-faults.yaml`
//! beside this file (a fault of every technique active from the start, taken down with them).
//!
//!     sudo cargo bench -p sandbox --bench lifecycle            # 20 rounds
//!     sudo cargo bench -p sandbox --bench lifecycle -- 50      # 50 rounds
//!
//! Reports, per round: wall time of `sandbox run <scenario> --detach` (process start to
//! return, all services healthy), the supervisor's own start-up time as printed by `run`, and
//! wall time of `sandbox down` (until nothing of the lab is left).

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sandbox");

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        v.len(),
        ms(v[0]),
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(v[v.len() - 1])
    );
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED lifecycle bench: labs need root");
        return;
    }
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    // Warm the Go build cache once.
    let warm = Command::new(BIN)
        .args(["run", "packet-loss", "--detach"])
        .output()
        .unwrap();
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
    assert!(Command::new(BIN).arg("down").status().unwrap().success());

    println!(
        "| measure (4 services + load generator) | rounds | min ms | median ms | p90 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|");
    let all_faults = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/all-faults.yaml");
    for (label, scenario) in [("packet-loss", "packet-loss"), ("all-faults", all_faults)] {
        let (mut up, mut ready, mut down) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            let out = Command::new(BIN)
                .args(["run", scenario, "--detach", "--seed", "1"])
                .output()
                .unwrap();
            up.push(t.elapsed());
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
            ready.push(Duration::from_secs_f64(secs));
            if label == "all-faults" {
                // Let every fault be installed before taking the lab down with them.
                std::thread::sleep(Duration::from_millis(500));
            }
            let t = Instant::now();
            let out = Command::new(BIN).arg("down").output().unwrap();
            down.push(t.elapsed());
            assert!(
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).contains("nothing of it is left")
            );
        }
        stats(
            &format!("{label}: `run --detach` until every service is healthy (wall)"),
            up,
        );
        stats(
            &format!("{label}: supervisor start → ready (as `run` reports)"),
            ready,
        );
        stats(
            &format!("{label}: `down` until nothing is left (wall)"),
            down,
        );
    }
}
