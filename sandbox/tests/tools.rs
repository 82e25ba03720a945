//! `pprof` and `goroutines` on real labs: profiles fetched from inside each instance's network
//! namespace on both backends, readable by `go tool pprof`, and a goroutine dump that shows a
//! real leak, on Go 1.19 and the current Go.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Lab, backend_or_skip, root_or_skip, sandbox, text};
use sandbox::backend::BackendKind;
use sandbox::gobuild::Toolchain;

/// The evidence journal entries `tool` left in `lab`.
fn journal(lab: &Lab, tool: &str) -> Vec<serde_json::Value> {
    let dir = sandbox::lab::LabDir::new(&sandbox::lab::LabId::parse(&lab.id).unwrap());
    std::fs::read_to_string(dir.evidence())
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["probe"] == tool)
        .collect()
}

/// The file `sandbox pprof` said it saved, after checking `go tool pprof` reads it.
fn saved_profile(out: &std::process::Output) -> String {
    let all = text(out);
    assert!(out.status.success(), "pprof failed:\n{all}");
    let path = all
        .lines()
        .find_map(|l| l.trim().strip_prefix("go tool pprof -http=:0 "))
        .unwrap_or_else(|| panic!("no `go tool pprof` line in:\n{all}"))
        .to_string();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{path} is not gzip");
    let go = Toolchain::at(Path::new("go")).expect("go on PATH");
    let top = Command::new(&go.go)
        .args(["tool", "pprof", "-top", &path])
        .output()
        .unwrap();
    assert!(
        top.status.success(),
        "go tool pprof rejects {path}:\n{}",
        text(&top)
    );
    path
}

fn pprof_on(backend: BackendKind) {
    let lab = Lab::start_on("added-latency", 3, backend);
    let heap = sandbox()
        .args(["pprof", "search", "heap", "--lab", &lab.id])
        .output()
        .unwrap();
    let heap = saved_profile(&heap);
    assert!(
        heap.contains(&format!("/{}/profiles/search-0-heap-", lab.id)),
        "{heap}"
    );

    let cpu = sandbox()
        .args(["pprof", "web-0", "cpu", "--seconds", "2", "--lab", &lab.id])
        .output()
        .unwrap();
    let cpu = saved_profile(&cpu);
    let go = Toolchain::at(Path::new("go")).unwrap();
    let top = Command::new(&go.go)
        .args(["tool", "pprof", "-top", &cpu])
        .output()
        .unwrap();
    assert!(
        text(&top).contains("Duration: 2"),
        "a 2 s CPU profile:\n{}",
        text(&top)
    );

    let runs = journal(&lab, "pprof");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["target"], "search-0");
    assert_eq!(runs[0]["summary"]["kind"], "heap");
    assert_eq!(runs[1]["summary"]["kind"], "cpu");
    assert_eq!(runs[1]["summary"]["file"], cpu.as_str());

    let loadgen = sandbox()
        .args(["pprof", "loadgen", "--lab", &lab.id])
        .output()
        .unwrap();
    assert_eq!(loadgen.status.code(), Some(2), "{}", text(&loadgen));
    assert!(
        text(&loadgen).contains("no control plane"),
        "{}",
        text(&loadgen)
    );
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn pprof_saves_profiles_go_tool_pprof_reads_on_netns() {
    if backend_or_skip("pprof on netns", BackendKind::Netns) {
        pprof_on(BackendKind::Netns);
    }
}

#[test]
fn pprof_saves_profiles_go_tool_pprof_reads_on_docker() {
    if backend_or_skip("pprof on docker", BackendKind::Docker) {
        pprof_on(BackendKind::Docker);
    }
}

/// The largest group of a `goroutines --json` dump whose stack has `frame`.
fn group_with(dump: &serde_json::Value, frame: &str) -> u64 {
    dump["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| {
            g["stack"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f.as_str().unwrap().contains(frame))
        })
        .map(|g| g["count"].as_u64().unwrap())
        .max()
        .unwrap_or(0)
}

fn goroutines(lab: &Lab, json: bool) -> (serde_json::Value, String) {
    let mut args = vec!["goroutines", "orders", "--lab", &lab.id];
    if json {
        args.push("--json");
    }
    let out = sandbox().args(&args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = if json {
        serde_json::from_str(&stdout).unwrap()
    } else {
        serde_json::Value::Null
    };
    (v, stdout)
}

fn leak_shows_with(prefix: &str) {
    let Some(tc) = Toolchain::all()
        .into_iter()
        .find(|t| t.version.starts_with(prefix))
    else {
        eprintln!("SKIPPED goroutines with {prefix}: no such Go toolchain here");
        return;
    };
    let lab = Lab::start_env(
        "goroutine-leak",
        5,
        &[("SANDBOX_GO", tc.go.to_str().unwrap())],
    );
    let (before, _) = goroutines(&lab, true);
    lab.wait_fault("fire-and-forget", "active", Duration::from_secs(40));
    std::thread::sleep(Duration::from_secs(15));
    let (after, _) = goroutines(&lab, true);
    let (_, page) = goroutines(&lab, false);
    let waiting_before = group_with(&before, "runtime_pollWait");
    let waiting_after = group_with(&after, "runtime_pollWait");
    eprintln!(
        "{}: orders had {} goroutines ({waiting_before} in the largest poller group) before the leak, {} ({waiting_after}) 15 s into it",
        tc.version, before["total"], after["total"]
    );
    assert!(
        after["total"].as_u64().unwrap() > before["total"].as_u64().unwrap() + 50,
        "the leak should pile goroutines up: before {before}, after {after}"
    );
    assert!(waiting_after > waiting_before + 50, "{after}");
    assert!(
        page.contains("runtime_pollWait") && page.contains("goroutines in"),
        "{page}"
    );
    assert_eq!(journal(&lab, "goroutines").len(), 3);
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn goroutines_show_a_leak_with_go_1_19() {
    if root_or_skip("goroutines with go1.19") {
        leak_shows_with("go1.19");
    }
}

#[test]
fn goroutines_show_a_leak_with_current_go() {
    if root_or_skip("goroutines with the current Go") {
        let current = Toolchain::at(Path::new("go")).expect("go on PATH");
        leak_shows_with(&current.version);
    }
}

fn out_of(args: &[&str]) -> String {
    let out = sandbox().args(args).output().unwrap();
    assert!(out.status.success(), "sandbox {args:?}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `graph` and `events` on a lab with two faults on links: the learner's view draws the calls
/// and numbers the faults, and names none of them; the instructor's view places each fault;
/// `events -f` prints what happens while it runs.
#[test]
fn graph_and_events_draw_and_tell_the_lab_without_giving_it_away() {
    if !root_or_skip("graph and events") {
        return;
    }
    let lab = Lab::start("two-faults", 4);
    let id = lab.id.as_str();
    let mut follow = sandbox()
        .args(["events", id, "-f", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    lab.wait_fault("far-pricing", "active", Duration::from_secs(40));
    lab.wait_fault("lossy-stock", "active", Duration::from_secs(10));
    let revealed = lab.status();
    let faults = revealed["lab"]["faults"].as_array().unwrap().clone();
    let secrets: Vec<String> = faults
        .iter()
        .flat_map(|f| {
            [
                f["id"].as_str().unwrap(),
                f["description"].as_str().unwrap(),
            ]
        })
        .map(String::from)
        .collect();

    let tree = out_of(&["graph", id]);
    for call in ["└─▶ cart", "pricing", "stock-db"] {
        assert!(tree.contains(call), "no `{call}` in:\n{tree}");
    }
    let mermaid = out_of(&["graph", id, "--mermaid"]);
    assert!(mermaid.contains("cart --> pricing"), "{mermaid}");
    let dot = out_of(&["graph", id, "--dot"]);
    assert!(dot.contains("\"cart\" -> \"pricing\";"), "{dot}");
    let learner = out_of(&["events", id, "--json"]);
    let lines: Vec<serde_json::Value> = learner
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["text"].as_str().unwrap().split(" (").next(),
        Some("lab ready"),
        "{learner}"
    );
    for n in [1, 2] {
        let installed = format!("fault #{n} installed");
        assert!(
            lines.iter().any(|e| e["text"] == installed.as_str()),
            "{learner}"
        );
    }
    for page in [&tree, &mermaid, &dot, &learner, &out_of(&["events", id])] {
        for s in &secrets {
            assert!(
                !page.contains(s.as_str()),
                "a learner's page names `{s}`:\n{page}"
            );
        }
        assert!(!page.contains("⚡"), "{page}");
    }

    let tree = out_of(&["graph", id, "--reveal"]);
    let events = out_of(&["events", id, "--reveal"]);
    for s in &secrets {
        assert!(
            tree.contains(s.as_str()),
            "graph --reveal lacks `{s}`:\n{tree}"
        );
        assert!(
            events.contains(s.as_str()),
            "events --reveal lacks `{s}`:\n{events}"
        );
    }
    let dot = out_of(&["graph", id, "--dot", "--reveal"]);
    assert!(
        dot.lines()
            .any(|l| l.starts_with("  \"cart\" -> \"pricing\" [label=\"⚡ #1 far-pricing")),
        "the delay sits on cart → pricing:\n{dot}"
    );

    out_of(&["pprof", "cart", "heap", "--lab", id]);
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = String::new();
    while !seen.contains("heap profile of cart-0") {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => seen.push_str(&format!("{line}\n")),
            Err(_) => panic!("events -f did not show the profile:\n{seen}"),
        }
    }
    assert!(seen.contains("fault #2 installed"), "{seen}");

    out_of(&["hint", "--lab", id]);
    let findings = common::write_temp(
        "findings.yaml",
        "findings:\n  - root_cause: blackhole\n    where: {service: shop}\n",
    );
    let submitted = sandbox()
        .args(["submit", findings.as_str(), "--lab", id])
        .output()
        .unwrap();
    assert_eq!(
        submitted.status.code(),
        Some(1),
        "a wrong finding does not pass: {}",
        text(&submitted)
    );
    let events = out_of(&["events", id]);
    assert!(events.contains("hint 1 taken"), "{events}");
    assert!(
        events.contains("findings submitted: not passed"),
        "{events}"
    );
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
    let status = follow.wait().unwrap();
    assert!(status.success(), "events -f ends with its lab");
}
