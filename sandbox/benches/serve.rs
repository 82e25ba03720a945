//! How many learners' labs one machine hosts under `sandbox serve`, and what the server and
//! the labs feel as they are added. A class of N learners on a one-module course (the bundled
//! `packet-loss` scenario with its fault moved two hours on: a healthy 4-service lab with its
//! default load, 150 req/s); learners start their labs one after another through the API.
//!
//!     sudo cargo bench -p sandbox --bench serve              # up to 30 labs
//!     sudo cargo bench -p sandbox --bench serve -- 40        # up to 40
//!     sudo cargo bench -p sandbox --bench serve -- 30 --rate 20   # each lab's load at 20 req/s
//!
//! Reports: the first lab's p99 alone and after every 5 labs (the load generator's own,
//! averaged over 10 s), the machine's memory per lab (MemAvailable), the time to start all of
//! them, the server's p50/p99 for the learner page and two API routes (200 requests each)
//! under that load, and then the crash rules: `serve` killed with SIGKILL, `down --all`
//! leaves no lab namespace, and a restarted `serve` finds every learner's progress.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sandbox");

/// One request without a body: status and body.
fn request(method: &str, port: u16, path: &str, token: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(port: u16, path: &str, token: &str) -> (u16, String) {
    request("GET", port, path, token)
}

fn post(port: u16, path: &str, token: &str) -> (u16, String) {
    request("POST", port, path, token)
}

fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The lab's p99 as its load generator measured it, averaged over `secs` seconds.
fn p99_ms(lab: &str, secs: u64) -> f64 {
    let mut v = Vec::new();
    for _ in 0..secs {
        std::thread::sleep(Duration::from_secs(1));
        let out = Command::new(BIN)
            .args(["status", lab, "--json"])
            .output()
            .unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(p) = j["symptoms"]["recent"]["p99_ms"].as_f64() {
            v.push(p);
        }
    }
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn serve(class: &str, port: u16, dir: &std::path::Path) -> Child {
    let child = Command::new(BIN)
        .args(["serve", class, "--listen", &format!("127.0.0.1:{port}")])
        .env("SANDBOX_CLASS_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// p50 and p99 of `n` requests, in ms.
fn latency(n: usize, mut f: impl FnMut() -> u16) -> (f64, f64) {
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let status = f();
            assert_eq!(status, 200);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    v.sort_by(f64::total_cmp);
    (v[n / 2], v[(n * 99 / 100).min(n - 1)])
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the serve benchmark starts labs, which needs root");
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .iter()
        .take_while(|a| *a != "--rate")
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let rate: u32 = args
        .iter()
        .skip_while(|a| *a != "--rate")
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(150);
    let home = tempfile::tempdir().unwrap();
    let classes = home.path().join("classes");
    let healthy = sandbox::scenario::find_bundled("packet-loss")
        .unwrap()
        .text
        .replace("start_after: 20s", "start_after: 2h")
        .replace("rate: 150", &format!("rate: {rate}"));
    std::fs::write(home.path().join("healthy.yaml"), healthy).unwrap();
    std::fs::write(
        home.path().join("course.yaml"),
        "apiVersion: sandbox/v1\nkind: Course\nmetadata: {id: bench, title: Bench, summary: One healthy lab each.}\nmode: practice\nmodules:\n  - id: healthy\n    scenario: healthy.yaml\n",
    )
    .unwrap();
    let roster: String = std::iter::once("name".to_string())
        .chain((1..=n).map(|i| format!("learner{i:02}")))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(home.path().join("roster.csv"), roster).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args(["class", "create"])
        .arg(home.path().join("course.yaml"))
        .arg("--roster")
        .arg(home.path().join("roster.csv"))
        .args(["--name", "bench", "--links"])
        .arg(home.path().join("links.csv"))
        .env("SANDBOX_CLASS_DIR", &classes)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens: Vec<String> = std::fs::read_to_string(home.path().join("links.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.rsplit_once("/l/").map(|(_, t)| t.to_string()))
        .collect();
    let mut server = serve("bench", port, &classes);
    let mem_before = mem_available_kib();
    let mut starting = Duration::ZERO;
    let mut labs = Vec::new();
    let mut alone = 0.0;
    println!(
        "| labs | first lab's p99 (10 s) | × alone | memory per lab | page p50/p99 | /api/me p50/p99 | module p50/p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, token) in tokens.iter().enumerate() {
        let t = Instant::now();
        let (status, body) = post(port, "/api/modules/healthy/start", token);
        starting += t.elapsed();
        assert_eq!(status, 200, "lab {}: {body}", i + 1);
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        labs.push(j["lab"]["id"].as_str().unwrap().to_string());
        let count = i + 1;
        if count == 1 || count % 5 == 0 || count == n {
            let p99 = p99_ms(&labs[0], 10);
            if count == 1 {
                alone = p99;
            }
            let per_lab =
                (mem_before.saturating_sub(mem_available_kib())) as f64 / count as f64 / 1024.0;
            let page = latency(200, || get(port, "/", token).0);
            let me = latency(200, || get(port, "/api/me", token).0);
            let module = latency(200, || get(port, "/api/modules/healthy", token).0);
            println!(
                "| {count} | {p99:.1} ms | {:.2} | {per_lab:.0} MiB | {:.1}/{:.1} ms | {:.1}/{:.1} ms | {:.1}/{:.1} ms |",
                p99 / alone,
                page.0,
                page.1,
                me.0,
                me.1,
                module.0,
                module.1
            );
            if count == n {
                println!(
                    "\nstarting {n} labs ({rate} req/s each) one after another through the API: {:.1} s in all, {:.2} s per lab",
                    starting.as_secs_f64(),
                    starting.as_secs_f64() / n as f64
                );
            }
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let t = Instant::now();
    let down = Command::new(BIN).args(["down", "--all"]).output().unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stdout)
    );
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout)
        .lines()
        .filter(|l| l.starts_with("sbx-"))
        .count();
    println!(
        "serve killed (SIGKILL) with {n} labs running; `down --all` took {:.1} s and left {left} lab namespaces",
        t.elapsed().as_secs_f64()
    );
    let mut again = serve("bench", port, &classes);
    let intact = tokens
        .iter()
        .filter(|t| {
            let (s, body) = get(port, "/api/me", t);
            s == 200
                && serde_json::from_str::<serde_json::Value>(&body)
                    .is_ok_and(|j| j["modules"][0]["progress"]["starts"] == 1)
        })
        .count();
    println!("a restarted serve finds {intact} of {n} learners' progress");
    let _ = again.kill();
    let _ = again.wait();
}
