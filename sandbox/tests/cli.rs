//! The command line on bad input and missing prerequisites: every error names the file, line,
//! column and field, says what was expected, and nothing is created.

mod common;

use common::*;

const GOOD: &str = r#"apiVersion: sandbox/v1
kind: Scenario
metadata:
  id: tiny
  title: Tiny
  summary: two services
  difficulty: beginner
topology:
  services:
    - name: front
      program: gateway
      calls: [db-api]
    - name: db-api
      program: backend
      calls: [db]
    - name: db
      program: store
workload:
  target: front
  rate: 20
faults:
  - id: lossy
    type: loss
    target:
      service: db
    params:
      percent: 10
briefing:
  title: t
  body: b
"#;

/// `validate` on `yaml`: its exit code and everything it printed.
fn validate(name: &str, yaml: &str) -> (i32, String, String) {
    let file = write_temp(name, yaml);
    let out = sandbox()
        .args(["validate", file.as_str()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(&out),
        file.path.display().to_string(),
    )
}

fn assert_error(name: &str, yaml: &str, location: &str, expected: &[&str]) {
    let (code, out, path) = validate(name, yaml);
    assert_eq!(code, 2, "{out}");
    let head = format!("error: {path}:{location}");
    assert!(out.contains(&head), "expected `{head}` in:\n{out}");
    for e in expected {
        assert!(out.contains(e), "expected `{e}` in:\n{out}");
    }
}

#[test]
fn a_good_scenario_validates() {
    let (code, out, _) = validate("good.yaml", GOOD);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok "), "{out}");
}

#[test]
fn unknown_fields_are_errors_with_position_and_the_fields_expected() {
    let bad = GOOD.replace(
        "      percent: 10\n",
        "      percent: 10\n      precent: 5\n",
    );
    assert_error(
        "unknown.yaml",
        &bad,
        "28:7: faults[0].params.precent:",
        &["unknown field `precent`", "expected one of"],
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let bad = GOOD.replace("rate: 20", "rate: fast");
    assert_error(
        "type.yaml",
        &bad,
        "20:9: workload.rate:",
        &["expected a whole number"],
    );
    let bad = GOOD.replace("program: store", "program: redis");
    assert_error(
        "variant.yaml",
        &bad,
        "17:16: topology.services[2].program:",
        &["unknown variant `redis`", "gateway, api, backend, store"],
    );
}

#[test]
fn a_fault_on_a_missing_service_names_the_services_there_are() {
    let bad = GOOD.replace("      service: db\n", "      service: dbb\n");
    assert_error(
        "missing.yaml",
        &bad,
        "25:16: faults[0].target.service:",
        &["unknown service `dbb`", "front, db-api, db"],
    );
}

#[test]
fn percentages_outside_zero_to_one_hundred_are_refused() {
    let bad = GOOD.replace("percent: 10", "percent: 140");
    assert_error(
        "percent.yaml",
        &bad,
        "27:16: faults[0].params.percent:",
        &["expected a percentage from 0 to 100, found 140"],
    );
    let bad = GOOD.replace("percent: 10", "percent: -1");
    assert_error(
        "negative.yaml",
        &bad,
        "27:16: faults[0].params.percent:",
        &["found -1"],
    );
}

#[test]
fn dns_faults_need_the_name_server_an_answer_and_no_port() {
    let dns = GOOD.replace("type: loss", "type: dns");
    assert_error(
        "answer.yaml",
        &dns.replace("percent: 10", "answer: refused"),
        "27:15: faults[0].params.answer:",
        &[
            "expected one of nxdomain, servfail, timeout",
            "found \"refused\"",
        ],
    );
    let nx = dns.replace("percent: 10", "answer: nxdomain");
    assert_error(
        "hosts.yaml",
        &nx.replace("topology:\n", "topology:\n  names: hosts\n"),
        "24:11: faults[0].type:",
        &["a lab with `topology.names: hosts` does not use; remove `names: hosts`"],
    );
    assert_error(
        "port.yaml",
        &nx.replace(
            "      service: db\n",
            "      service: db\n      port: 7070\n",
        ),
        "26:13: faults[0].target.port:",
        &["name lookups, which have no service port; remove `port`"],
    );
    assert_error(
        "nothing.yaml",
        &dns.replace("    params:\n      percent: 10\n", ""),
        "23:11: faults[0].params:",
        &["`dns` needs `params.answer` (nxdomain, servfail, timeout), `params.delay`, or both"],
    );
}

#[test]
fn probe_help_names_every_probe() {
    let out = sandbox().args(["probe", "--help"]).output().unwrap();
    let help = text(&out);
    let about = help
        .split("Usage:")
        .next()
        .unwrap_or_default()
        .replace('\n', " ");
    for p in sandbox::probe::ProbeKind::ALL {
        assert!(
            about.contains(p.name()),
            "`{}` missing from:\n{about}",
            p.name()
        );
    }
}

#[test]
fn drawn_values_are_checked_for_every_corner_of_the_range() {
    let bad = GOOD
        .replace(
            "topology:",
            "params:\n  p: {range: [50, 120]}\n  who: {one_of: [db, web]}\ntopology:",
        )
        .replace("percent: 10", "percent: \"{{ p }}\"")
        .replace("      service: db\n", "      service: \"{{ who }}\"\n");
    let (code, out, _) = validate("draws.yaml", &bad);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("found 120") && out.contains("when p = 120"),
        "{out}"
    );
    assert!(
        out.contains("unknown service `web`") && out.contains("who = web"),
        "{out}"
    );
}

#[test]
fn template_typos_are_errors() {
    let bad = GOOD.replace("percent: 10", "percent: \"{{ los }}\"");
    assert_error(
        "typo.yaml",
        &bad,
        "27:16: faults[0].params.percent:",
        &["not a param"],
    );
}

#[test]
fn several_problems_are_reported_together() {
    let bad = GOOD
        .replace("rate: 20", "rate: 0")
        .replace("percent: 10", "percent: 101")
        .replace("calls: [db]", "calls: [nope]");
    let (code, out, _) = validate("many.yaml", &bad);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("workload.rate") && out.contains("calls[0]"),
        "{out}"
    );
}

#[test]
fn bad_input_to_run_creates_nothing() {
    if !root_or_skip("bad_input_to_run_creates_nothing") {
        return;
    }
    let before = namespaces();
    let labs_before = std::fs::read_dir("/run/sandbox/labs")
        .map(|d| d.count())
        .unwrap_or(0);
    let file = write_temp("badrun.yaml", &GOOD.replace("percent: 10", "percent: 140"));
    let out = sandbox()
        .args(["run", file.as_str(), "--detach"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("expected a percentage"),
        "{}",
        text(&out)
    );
    assert_eq!(
        namespaces_made_since(&before),
        Vec::<String>::new(),
        "no namespace was created"
    );
    let labs_after = std::fs::read_dir("/run/sandbox/labs")
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(labs_before, labs_after, "no lab directory was created");
}

#[test]
fn run_without_root_says_so_before_touching_anything() {
    if !root_or_skip("run_without_root_says_so (needs root to drop to an unprivileged user)") {
        return;
    }
    let before = namespaces();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_sandbox"),
            "run",
            "packet-loss",
            "--detach",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("needs root"), "{}", text(&out));
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    assert_eq!(namespaces_made_since(&before), Vec::<String>::new());
}

#[test]
fn a_missing_go_toolchain_is_reported_with_the_command_that_installs_it() {
    if !root_or_skip("a_missing_go_toolchain_is_reported") {
        return;
    }
    let before = namespaces();
    let out = sandbox()
        .args(["run", "packet-loss", "--detach"])
        .env("SANDBOX_GO", "/nonexistent/go")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("no Go toolchain found"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("apt-get install -y golang-go"),
        "{}",
        text(&out)
    );
    assert_eq!(namespaces_made_since(&before), Vec::<String>::new());
}

#[test]
fn unknown_scenarios_and_labs_are_clear_errors() {
    let out = sandbox()
        .args(["validate", "no-such-scenario"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("no scenario named `no-such-scenario`"),
        "{}",
        text(&out)
    );
    let out = sandbox().args(["status", "zzzzz"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("no lab `zzzzz`"), "{}", text(&out));
}

#[test]
fn every_bundled_scenario_is_valid_and_listed() {
    let out = sandbox().args(["list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let bundled = sandbox::scenario::bundled();
    assert_eq!(
        ids.len(),
        bundled.len(),
        "every bundled scenario parses: {ids:?}"
    );
    for b in bundled {
        let out = sandbox().args(["validate", b.id]).output().unwrap();
        assert!(out.status.success(), "{}: {}", b.id, text(&out));
        let s = sandbox::scenario::Source::resolve(b.id)
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(s.id(), b.id, "file name and metadata.id agree");
    }
}

#[test]
fn the_committed_json_schema_is_current() {
    let out = sandbox().arg("schema").output().unwrap();
    assert!(out.status.success());
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenario.schema.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        generated == committed,
        "docs/scenario.schema.json is stale: run `sandbox schema > docs/scenario.schema.json`"
    );
    assert!(generated["properties"]["faults"].is_object());
    let out = sandbox().args(["schema", "course"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/course.schema.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        generated == committed,
        "docs/course.schema.json is stale: run `sandbox schema course > docs/course.schema.json`"
    );
    assert!(generated["properties"]["modules"].is_object());
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        "list",
        "validate",
        "run",
        "status",
        "logs",
        "shell",
        "down",
        "doctor",
        "schema",
        "course",
        "completions",
        "probe",
        "pprof",
        "goroutines",
        "debug",
        "graph",
        "events",
        "hint",
        "findings",
        "submit",
        "grade",
        "keys",
        "verify",
    ] {
        let out = sandbox().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", text(&out));
        assert!(
            text(&out).contains("Example"),
            "`sandbox {cmd} --help` shows an example:\n{}",
            text(&out)
        );
    }
    for sub in ["check", "list"] {
        let out = sandbox().args(["course", sub, "--help"]).output().unwrap();
        assert!(
            out.status.success() && text(&out).contains("Example"),
            "`sandbox course {sub} --help` shows an example:\n{}",
            text(&out)
        );
    }
    let out = sandbox().args(["completions", "bash"]).output().unwrap();
    assert!(text(&out).contains("sandbox"), "bash completions");
}

#[test]
fn the_documented_example_is_a_valid_scenario() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenario-format.md"),
    )
    .unwrap();
    let start = doc
        .find("```yaml\napiVersion")
        .expect("an example in docs/scenario-format.md")
        + "```yaml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let (code, out, _) = validate("documented.yaml", &doc[start..end]);
    assert_eq!(
        code, 0,
        "the example in docs/scenario-format.md must validate:\n{out}"
    );
}

#[test]
fn probe_errors_say_what_is_missing() {
    let out = sandbox()
        .args(["probe", "tcp-retrans", "--lab", "zzzzz"])
        .output()
        .unwrap();
    if !root_or_skip(
        "probe_errors_say_what_is_missing (needs root to drop to an unprivileged user)",
    ) {
        return;
    }
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("no lab `zzzzz`"), "{}", text(&out));

    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_sandbox"),
            "probe",
            "tcp-retrans",
            "--lab",
            "zzzzz",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("needs root"), "{}", text(&out));
}

#[test]
fn doctor_tries_every_kernel_feature_and_leaves_nothing_behind() {
    if !root_or_skip("doctor_tries_every_kernel_feature (the kernel checks need root)") {
        return;
    }
    let _g = serial();
    let before_ns = namespaces();
    let before_objects = root_ns_objects();
    let out = sandbox().args(["doctor", "--json"]).output().unwrap();
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("doctor checks {name}: {checks:?}"))["status"]
            .clone()
    };
    for name in [
        "network namespaces",
        "nftables (loss, reset, partition)",
        "NFQUEUE (delay)",
        "eBPF TCP probes",
        "eBPF scheduler probes",
        "eBPF CPU profiler",
        "eBPF tc (corruption)",
        "eBPF socket filter (dns probe)",
        "uprobes (netpoll probe)",
    ] {
        assert_eq!(
            status(name),
            "ok",
            "{name} works on this machine: {checks:?}"
        );
    }
    assert_eq!(namespaces(), before_ns, "the doctor's namespace is gone");
    assert_eq!(
        root_ns_objects(),
        before_objects,
        "no eBPF program or rule is left"
    );
}

#[test]
fn a_cluster_layout_must_be_one_sandbox_knows() {
    let good = GOOD.replace(
        "  difficulty: beginner\n",
        "  difficulty: beginner\n  cluster: pair\n",
    );
    let (code, out, _) = validate("layout-ok.yaml", &good);
    assert_eq!(code, 0, "{out}");
    let bad = GOOD.replace(
        "  difficulty: beginner\n",
        "  difficulty: beginner\n  cluster: triple\n",
    );
    assert_error(
        "layout.yaml",
        &bad,
        "8:12: metadata.cluster:",
        &["no cluster layout `triple`", "single, pair, pair-no-cni"],
    );
}

#[test]
fn a_closed_pipe_ends_a_listing_quietly() {
    // The reader is gone before the first write, as `sandbox list --json | head -c0` leaves it.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = sandbox()
        .args(["list", "--json"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "ends as `ls | head` does: {:?} {stderr}",
        out.status
    );
}
