//! The probes side by side with bpftrace doing the same job, in the same lab run: how long
//! from start to attached, and what a running probe costs in CPU and in tail latency.
//!
//!     sudo cargo bench -p sandbox --bench probes            # 3 rounds, 8 s windows
//!     sudo cargo bench -p sandbox --bench probes -- 5 10    # 5 rounds, 10 s windows
//!     sudo cargo bench -p sandbox --bench probes -- 3 8 http  # only the named probes
//!
//! The lab (gateway → api → backend → store) is driven at a fixed rate well below what the
//! machine sustains, so a probe's cost shows as extra CPU (all cores, from /proc/stat, the
//! probe's own process included) and in the p99 latency, not as lost requests. Each round
//! measures, in turn, no probe, `sandbox probe`, and bpftrace; figures are medians over rounds.
//! bpftrace cannot probe a function's return instructions (and uretprobes crash Go), so its
//! netpoll stand-in only counts entries; it compiles its program at start, which is most of the
//! start-up difference. Its "attached" is when it prints `Attaching`, a little before it is.
//! For http, bpftrace does the probe's whole job (duration per path, keyed on the goroutine)
//! with two uprobes per request, ending each at the function net/http calls after the handler
//! instead of at the handler's RETs, which it cannot probe (see `http_bpftrace`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sandbox");

const LAB: &str = r#"
apiVersion: sandbox/v1
kind: Scenario
metadata: {id: probe-bench, title: probe bench, summary: s, difficulty: beginner}
topology:
  services:
    - {name: front, program: gateway, calls: [mid]}
    - {name: mid, program: api, calls: [back]}
    - {name: back, program: backend, calls: [db]}
    - {name: db, program: store}
workload: {target: front, rate: 1500, concurrency: 32, timeout: 2s}
briefing: {title: t, body: b}
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time the whole machine spent busy, in seconds (from the first line of /proc/stat).
fn busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|t| t.parse().unwrap())
        .collect();
    let idle = ticks[3] + ticks[4];
    (ticks.iter().sum::<f64>() - idle) / 100.0
}

/// What one window of load looked like.
struct Sample {
    /// Cores busy on average (2.0 is both cores of a 2-core machine).
    cores: f64,
    /// Median over the window's seconds of the per-second p99 latency, in ms.
    p99_ms: f64,
    /// Requests completed per second.
    ok: f64,
}

/// Lets `window` pass and reports the load generator's view of it and the machine's CPU.
fn measure(id: &str, window: Duration) -> Sample {
    let (t0, cpu0, wall) = (now_ms(), busy_seconds(), Instant::now());
    std::thread::sleep(window);
    let cores = (busy_seconds() - cpu0) / wall.elapsed().as_secs_f64();
    let text =
        std::fs::read_to_string(format!("/run/sandbox/labs/{id}/load.jsonl")).unwrap_or_default();
    let secs: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["ts_ms"].as_u64().is_some_and(|t| t >= t0 + 1000))
        .collect();
    let field = |f: &str| -> Vec<f64> { secs.iter().filter_map(|v| v[f].as_f64()).collect() };
    let ok = field("ok");
    Sample {
        cores,
        p99_ms: median(field("p99_ms")),
        ok: ok.iter().sum::<f64>() / ok.len().max(1) as f64,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Starts `cmd` and waits until a line of its output contains `marker`; returns the child,
/// the time that took, and the line.
fn start_until(mut cmd: Command, marker: &str) -> (Child, Duration, String) {
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let (took, line) = loop {
        match lines.next() {
            Some(Ok(l)) if l.contains(marker) => break (t.elapsed(), l),
            Some(_) => continue,
            None => panic!("{cmd:?} ended before printing `{marker}`"),
        }
    };
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, took, line)
}

fn stop(mut c: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = c.wait();
}

/// Takes the lab down however the bench ends, a failed assertion included.
struct Lab(String);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(BIN).args(["down", &self.0]).output();
    }
}

/// A bpftrace program doing the http probe's job on `pid`: the handler's duration per path,
/// keyed on the goroutine (R14). It ends a request at the entry of `(*response).finishRequest`,
/// which net/http calls right after the handler returns: Debian's bpftrace refuses uprobes at
/// `function+offset` ("compiled without (k|u)probe offset support", also with --unsafe), so it
/// cannot probe the RETs, and uretprobes crash Go.
fn http_bpftrace(pid: u64) -> String {
    let exe = format!("uprobe:/proc/{pid}/exe");
    // Go's ABI: the *Request in RDI; Request.URL at +16, url.URL.Path (pointer, length) at +56.
    let url = "*(uint64 *)(reg(\"di\") + 16)";
    format!(
        "{exe}:\"net/http.serverHandler.ServeHTTP\" /pid == {pid}/ {{ @s[reg(\"r14\")] = nsecs; \
         @p[reg(\"r14\")] = str(*(uint64 *)({url} + 56), *(uint64 *)({url} + 64)); }} \
         {exe}:\"net/http.(*response).finishRequest\" /pid == {pid} && @s[reg(\"r14\")]/ {{ \
         @us[@p[reg(\"r14\")]] = hist((nsecs - @s[reg(\"r14\")]) / 1000); \
         delete(@s[reg(\"r14\")]); delete(@p[reg(\"r14\")]); }}"
    )
}

struct Case {
    probe: &'static str,
    target: Option<&'static str>,
    bpftrace: String,
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED probes bench: probes and labs need root");
        return;
    }
    let nums: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.parse::<u64>().is_err() && !a.starts_with('-'))
        .collect();
    let rounds = nums.first().copied().unwrap_or(3) as usize;
    let window = Duration::from_secs(nums.get(1).copied().unwrap_or(8));
    let have_bpftrace = Command::new("bpftrace")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.yaml");
    std::fs::write(&file, LAB).unwrap();
    let out = Command::new(BIN)
        .args(["run", file.to_str().unwrap(), "--detach", "--seed", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lab = Lab(text.split_whitespace().nth(1).unwrap().to_string());
    let id = lab.0.clone();
    let status: serde_json::Value = serde_json::from_slice(
        &Command::new(BIN)
            .args(["status", &id, "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let pid = status["lab"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "mid-0")
        .unwrap()["pid"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));

    let cases = vec![
        Case { probe: "tcp-retrans", target: None, bpftrace: "tracepoint:tcp:tcp_retransmit_skb { @[ntop(args->saddr), ntop(args->daddr)] = count(); }".into() },
        Case { probe: "tcp-rtt", target: None, bpftrace: "tracepoint:tcp:tcp_probe { @[args->sport, args->dport] = hist(args->srtt); }".into() },
        Case { probe: "tcp-drop", target: None, bpftrace: "tracepoint:skb:kfree_skb { @[args->reason] = count(); }".into() },
        Case { probe: "tcp-connect", target: None, bpftrace: "tracepoint:sock:inet_sock_set_state { @[args->oldstate, args->newstate] = count(); }".into() },
        Case { probe: "tcp-reset", target: None, bpftrace: "tracepoint:tcp:tcp_send_reset { @s = count(); } tracepoint:tcp:tcp_receive_reset { @r = count(); }".into() },
        Case { probe: "netpoll", target: Some("mid"), bpftrace: format!("uprobe:/proc/{pid}/exe:\"internal/poll.runtime_pollWait\" /pid == {pid}/ {{ @ = count(); }}") },
        Case { probe: "http", target: Some("mid"), bpftrace: http_bpftrace(pid) },
        Case { probe: "cpu", target: Some("mid"), bpftrace: format!("profile:hz:99 /pid == {pid}/ {{ @[ustack] = count(); }}") },
        Case { probe: "runq", target: Some("mid"), bpftrace: format!("tracepoint:sched:sched_wakeup /args->pid == {pid}/ {{ @w = count(); }} tracepoint:sched:sched_switch /args->prev_pid == {pid} || args->next_pid == {pid}/ {{ @s = count(); }}") },
    ];
    println!(
        "Lab {id}: 4 services at 1500 req/s; {rounds} rounds of {}s windows. CPU is cores busy \
         machine-wide (of {}); Δ is the probe's cost.\n",
        window.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| probe | sandbox start→attached (wall) | sandbox attach (reported) | bpftrace start→attached | CPU without | with sandbox probe | Δ | with bpftrace | Δ | p99 without | p99 with sandbox | p99 with bpftrace |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for c in cases
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| o == c.probe))
    {
        let (mut wall, mut reported, mut bt_wall) = (vec![], vec![], vec![]);
        let (mut none, mut ours, mut theirs) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            none.push(measure(&id, window));

            let mut cmd = Command::new(BIN);
            cmd.args([
                "probe",
                c.probe,
                "--lab",
                &id,
                "--json",
                "--output",
                dir.path().join("cpu.svg").to_str().unwrap(),
            ]);
            if let Some(t) = c.target {
                cmd.args(["--target", t]);
            }
            let (child, took, line) = start_until(cmd, "\"attached\"");
            wall.push(took.as_secs_f64() * 1000.0);
            let attached: serde_json::Value = serde_json::from_str(&line).unwrap();
            reported.push(attached["attach_ms"].as_f64().unwrap());
            ours.push(measure(&id, window));
            stop(child);

            if have_bpftrace {
                let mut cmd = Command::new("bpftrace");
                cmd.args(["-e", &c.bpftrace]);
                let (child, took, _) = start_until(cmd, "Attaching");
                bt_wall.push(took.as_secs_f64() * 1000.0);
                theirs.push(measure(&id, window));
                stop(child);
            }
        }
        for s in none.iter().chain(&ours).chain(&theirs) {
            assert!(
                s.ok > 1400.0,
                "the lab kept up with its load: {} req/s",
                s.ok
            );
        }
        let cores = |v: &[Sample]| median(v.iter().map(|s| s.cores).collect());
        let p99 = |v: &[Sample]| median(v.iter().map(|s| s.p99_ms).collect());
        let base = cores(&none);
        let delta = |x: f64| format!("{:+.3}", x - base);
        let (bt_start, bt_cores, bt_delta, bt_p99) = if have_bpftrace {
            (
                format!("{:.0} ms", median(bt_wall)),
                format!("{:.3}", cores(&theirs)),
                delta(cores(&theirs)),
                format!("{:.1} ms", p99(&theirs)),
            )
        } else {
            let none = || "(no bpftrace)".to_string();
            (none(), none(), none(), none())
        };
        println!(
            "| {} | {:.0} ms | {:.0} ms | {bt_start} | {base:.3} | {:.3} | {} | {bt_cores} | {bt_delta} | {:.1} ms | {:.1} ms | {bt_p99} |",
            c.probe,
            median(wall),
            median(reported),
            cores(&ours),
            delta(cores(&ours)),
            p99(&none),
            p99(&ours),
        );
    }
    drop(lab);
}
