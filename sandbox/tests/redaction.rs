//! A practice lab keeps its answer to itself: for every bundled scenario, with its faults
//! active, nothing a learner can run or read names a fault (its id, kind, target, parameters,
//! description) or shows a hint not paid for, while `--reveal` shows what the faults are.
//! Learner commands run as root (a learner with sudo) and as an unprivileged user; every file
//! in the lab directory is read as the unprivileged user.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sandbox::backend::BackendKind;
use sandbox::plan::{FaultTarget, Plan};
use sandbox::scenario::Source;

/// `nobody`: a learner's user on a shared host.
const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];

/// The scenario with every fault starting after 2 s instead of 20 s, so that all thirteen
/// labs can be checked with their faults active in a few minutes.
fn firing_early(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once("start_after:") {
            Some((indent, _)) => format!("{indent}start_after: 2s"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What would give a lab's answer away, from the plan the lab was built from.
struct Secrets {
    /// Never anywhere (as a whole word): fault ids, descriptions, parameter values in their
    /// effect, targets, the expected findings' summaries, parameter names.
    anywhere: Vec<String>,
    /// Never on a line about a fault (the status page's fault rows, any line saying "fault"):
    /// kinds, target services, the expected findings' ids (`loss`, `resolver`).
    fault_words: Vec<String>,
    hints: Vec<String>,
}

impl Secrets {
    /// What the scenario itself shows every learner (its id, title and briefing: a lab called
    /// `blackhole` may say so) is no secret anywhere, only on a line about a fault.
    fn of(plan: &Plan) -> Secrets {
        let public = format!(
            "{} {} {} {}",
            plan.scenario.id, plan.scenario.title, plan.briefing.title, plan.briefing.body
        );
        let mut anywhere = Vec::new();
        let mut fault_words = Vec::new();
        for f in &plan.faults {
            for s in [
                format!("{} on {}", f.effect, f.target),
                f.effect.to_string(),
                f.target.to_string(),
            ] {
                // Values and links are telling anywhere; a bare word (`leak`, `orders`) only
                // when it is said of a fault.
                if s.chars()
                    .any(|c| c.is_ascii_digit() || c == ' ' || c == '→' || c == '↔')
                {
                    anywhere.push(s);
                } else {
                    fault_words.push(s);
                }
            }
            fault_words.push(f.kind.to_string());
            match &f.target {
                FaultTarget::Service { service, .. } => fault_words.push(service.clone()),
                FaultTarget::Link { from, to, .. } => {
                    fault_words.push(from.clone());
                    fault_words.push(to.clone());
                }
                FaultTarget::Node { node } => fault_words.push(node.clone()),
            }
        }
        for e in &plan.exercise.expected {
            anywhere.push(e.summary.clone());
            fault_words.push(e.id.clone());
        }
        anywhere.extend(plan.faults.iter().map(|f| f.id.clone()));
        anywhere.extend(plan.params.keys().cloned());
        let secret = |w: &String| {
            let open = !has_word(&public, w);
            if !open {
                eprintln!("{}: `{w}` is in the briefing, no secret", plan.scenario.id);
            }
            open
        };
        anywhere.retain(secret);
        anywhere.sort();
        anywhere.dedup();
        fault_words.sort();
        fault_words.dedup();
        Secrets {
            anywhere,
            fault_words,
            hints: plan
                .hints
                .iter()
                .map(|h| h.text.trim().to_string())
                .collect(),
        }
    }

    /// Every secret `text` shows, except the hint that was paid for.
    fn found_in(&self, text: &str, paid: Option<usize>) -> Vec<String> {
        let mut out: Vec<String> = self
            .anywhere
            .iter()
            .filter(|s| has_word(text, s))
            .map(|s| format!("`{s}`"))
            .collect();
        out.extend(
            self.hints
                .iter()
                .enumerate()
                .filter(|(i, h)| Some(*i) != paid && text.contains(h.as_str()))
                .map(|(i, _)| format!("unpaid hint {}", i + 1)),
        );
        for line in text
            .lines()
            .filter(|l| l.to_lowercase().contains("fault") || is_fault_row(l))
        {
            for w in self.fault_words.iter().filter(|w| has_word(line, w)) {
                out.push(format!("`{w}` on the line `{}`", line.trim()));
            }
        }
        out
    }
}

/// A row of the status page's fault table: `#1 …`.
fn is_fault_row(line: &str) -> bool {
    line.trim_start()
        .strip_prefix('#')
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// Whether `word` appears in `text` on its own (names such as `slow-lookups` do not count as
/// `slow`).
fn has_word(text: &str, word: &str) -> bool {
    let part = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(part)
            && !text[i + word.len()..].chars().next().is_some_and(part)
    })
}

fn as_nobody(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(NOBODY).arg(program);
    c
}

/// `sandbox args…`, its output, panicking if it fails.
fn run(mut c: Command, what: &str) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{what} failed:\n{}", text(&out));
    text(&out)
}

fn learner(args: &[&str]) -> String {
    let mut c = sandbox();
    c.args(args);
    run(c, &format!("sandbox {}", args.join(" ")))
}

/// A second of `sandbox status --watch`.
fn watched(id: &str) -> String {
    let child = sandbox()
        .args(["status", id, "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    text(&child.wait_with_output().unwrap())
}

/// Waits until every fault of the lab is active (or over), from the instructor's view.
fn wait_for_faults(lab: &Lab, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let st = lab.status();
        let faults = st["lab"]["faults"].as_array().unwrap();
        for f in faults {
            assert_ne!(
                f["status"], "failed",
                "fault {} failed: {}",
                f["id"], f["error"]
            );
        }
        if faults
            .iter()
            .all(|f| f["status"] == "active" || f["status"] == "ended")
        {
            return st;
        }
        assert!(Instant::now() < deadline, "faults not active: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Checks one scenario's lab; returns what leaked, surface by surface.
fn check(id: &str, text_of_scenario: &str, seed: u64, backend: BackendKind) -> Vec<String> {
    let yaml = firing_early(text_of_scenario);
    let scenario = Source {
        name: format!("{id}.yaml"),
        text: yaml.clone(),
    }
    .load()
    .unwrap_or_else(|e| panic!("{id}: {e}"));
    let plan = Plan::build(&scenario, seed).unwrap();
    let secrets = Secrets::of(&plan);
    let lab = Lab::start_yaml_on(id, &yaml, seed, backend);
    let revealed = wait_for_faults(&lab, Duration::from_secs(30));
    let lab_name = lab.id.clone();
    let lab_id = lab_name.as_str();
    let mut leaks = Vec::new();
    let mut surfaces: Vec<(String, String)> = Vec::new();

    // What the hint command shows: one hint, the one paid for.
    let hint = learner(&["hint", "--lab", lab_id]);
    let paid = hint
        .strip_prefix("Hint ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n - 1);
    if let Some(i) = paid {
        assert!(
            hint.contains(&secrets.hints[i]),
            "{id}: hint {} is not what was paid for:\n{hint}",
            i + 1
        );
    }
    leaks.extend(
        secrets
            .found_in(&hint, paid)
            .into_iter()
            .map(|l| format!("sandbox hint: {l}")),
    );

    for args in [
        vec!["status", lab_id],
        vec!["status", lab_id, "--json"],
        vec!["logs", "supervisor", "--lab", lab_id],
        vec!["logs", "loadgen", "--lab", lab_id],
        vec!["findings", "template", "--lab", lab_id],
        vec!["graph", lab_id],
        vec!["graph", lab_id, "--mermaid"],
        vec!["graph", lab_id, "--dot"],
        vec!["events", lab_id],
        vec!["events", lab_id, "--json"],
    ] {
        surfaces.push((format!("sandbox {}", args.join(" ")), learner(&args)));
    }
    let mut services: Vec<&str> = plan.instances.iter().map(|i| i.service.as_str()).collect();
    services.dedup();
    for s in services {
        let args = ["logs", s, "--lab", lab_id];
        surfaces.push((format!("sandbox {}", args.join(" ")), learner(&args)));
    }
    surfaces.push((format!("sandbox status {lab_id} --watch"), watched(lab_id)));
    let exe = env!("CARGO_BIN_EXE_sandbox");
    let mut c = as_nobody(exe);
    c.args(["status", lab_id, "--json"]);
    surfaces.push((
        "sandbox status --json (unprivileged)".into(),
        run(c, "unprivileged status"),
    ));

    // A learner's JSON has each fault as a number, its times and its status, nothing more.
    let json: serde_json::Value = serde_json::from_str(&learner(&["status", lab_id, "--json"]))
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    for (i, f) in json["lab"]["faults"].as_array().unwrap().iter().enumerate() {
        let mut keys: Vec<&str> = f.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        if keys != ["end_ms", "number", "start_ms", "status"] {
            leaks.push(format!("status --json: fault {} is {f}", i + 1));
        }
        assert_eq!(f["number"], i + 1);
        assert_eq!(f["status"], revealed["lab"]["faults"][i]["status"]);
    }

    // The supervisor's thread names, which every user can list (`ps -L`): none says what a
    // fault does.
    let pid = revealed["lab"]["supervisor_pid"].as_u64().unwrap();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let out = as_nobody("cat")
            .arg(task.path().join("comm"))
            .output()
            .unwrap();
        if !task.path().exists() {
            continue; // a worker thread that has ended since
        }
        assert!(
            out.status.success(),
            "reading a thread name: {}",
            text(&out)
        );
        let comm = String::from_utf8_lossy(&out.stdout);
        for f in &plan.faults {
            let kind = f.kind.to_string();
            for part in kind.split('-').filter(|p| p.len() >= 3) {
                if comm.contains(part) {
                    leaks.push(format!("supervisor thread `{}`: `{part}`", comm.trim()));
                }
            }
        }
    }

    // Every file of the lab directory, as a user without privileges reads it.
    let dir = sandbox::ids::state_root().join("labs").join(lab_id);
    let mut files = Vec::new();
    files_under(&dir, &mut files);
    let mut private = 0;
    for f in &files {
        let rel = f.strip_prefix(&dir).unwrap().display().to_string();
        let out = as_nobody("cat").arg(f).output().unwrap();
        if rel.starts_with("private/") {
            assert!(
                !out.status.success(),
                "{id}: {rel} is readable by an unprivileged user"
            );
            private += 1;
        } else if out.status.success() {
            surfaces.push((rel, String::from_utf8_lossy(&out.stdout).into_owned()));
        }
    }
    assert!(
        dir.join("private/exercise.json").is_file() && private >= 2,
        "{id}: the hints, answers and fault details are kept privately: {files:?}"
    );
    assert!(
        surfaces.iter().any(|(n, _)| n == "state.json"),
        "{id}: state.json is readable, for status"
    );
    for (name, text) in &surfaces {
        leaks.extend(
            secrets
                .found_in(text, None)
                .into_iter()
                .map(|l| format!("{name}: {l}")),
        );
    }

    // The instructor's view shows what the learner's does not; a learner's user cannot ask.
    let page = learner(&["status", lab_id, "--reveal"]);
    let json = learner(&["status", lab_id, "--json", "--reveal"]);
    for f in &plan.faults {
        let what = format!("{} on {}", f.effect, f.target);
        assert!(page.contains(&f.id) && page.contains(&what), "{id}: {page}");
        assert!(
            json.contains(&format!("\"kind\": \"{}\"", f.kind)),
            "{id}: {json}"
        );
    }
    let graph = learner(&["graph", lab_id, "--reveal"]);
    let events = learner(&["events", lab_id, "--reveal"]);
    for f in &plan.faults {
        assert!(graph.contains(&f.id), "{id}: graph --reveal: {graph}");
        assert!(events.contains(&f.id), "{id}: events --reveal: {events}");
    }
    for command in ["status", "graph", "events"] {
        let mut c = as_nobody(exe);
        c.args([command, lab_id, "--reveal"]);
        let out = c.output().unwrap();
        assert!(
            !out.status.success() && text(&out).contains("root only"),
            "{id}: an unprivileged user asked for {command} --reveal: {}",
            text(&out)
        );
    }

    let out = lab.down();
    assert!(out.status.success(), "{id}: {}", text(&out));
    leaks
        .into_iter()
        .map(|l| format!("{id} (lab {}): {l}", lab_id))
        .collect()
}

#[test]
fn no_learner_surface_of_any_bundled_scenario_gives_a_fault_away() {
    if !root_or_skip("no_learner_surface_of_any_bundled_scenario_gives_a_fault_away") {
        return;
    }
    let bundled = sandbox::scenario::bundled();
    assert!(bundled.len() >= 13, "{} bundled scenarios", bundled.len());
    check_all(&bundled, BackendKind::Netns);
}

/// Scenarios written for a cluster alone run there (scripts/test's cluster step).
#[test]
fn no_learner_surface_of_a_kube_only_scenario_gives_a_fault_away() {
    if !backend_or_skip(
        "no_learner_surface_of_a_kube_only_scenario_gives_a_fault_away",
        BackendKind::Kube,
    ) {
        return;
    }
    check_all(&sandbox::scenario::bundled(), BackendKind::Kube);
}

/// Checks every bundled scenario that runs on `backend` and on no backend before it in
/// [`BackendKind::ALL`] (so each scenario is checked once, where it runs first).
fn check_all(bundled: &[sandbox::scenario::Bundled], backend: BackendKind) {
    let _g = serial();
    let started = Instant::now();
    let mut leaks = Vec::new();
    let mut checked = 0;
    for b in bundled {
        let listed = Source {
            name: b.id.to_string(),
            text: b.text.to_string(),
        }
        .load()
        .unwrap_or_else(|e| panic!("{}: {e}", b.id))
        .metadata
        .backends;
        if listed.iter().min() != Some(&backend) {
            continue;
        }
        let t = Instant::now();
        leaks.extend(check(b.id, b.text, 7, backend));
        checked += 1;
        eprintln!("{}: checked in {:.1}s", b.id, t.elapsed().as_secs_f64());
    }
    eprintln!(
        "{checked} scenarios checked on {backend} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        leaks.is_empty(),
        "learners can read the answer:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn words_count_only_on_their_own() {
    assert!(has_word("kind=slow delay_ms=80", "slow"));
    assert!(has_word("fault #1 (slow)", "slow"));
    assert!(!has_word("lab k3f9q · slow-lookups", "slow"));
    assert!(!has_word("slowly", "slow"));
}
