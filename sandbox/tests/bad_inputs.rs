//! The golden bad-input suite: every directory `tests/bad-inputs/<group>/<case>/` is one bad
//! input (its files and a `case.yaml` saying how to run it and what must come out). Each case
//! runs the real binary and must exit with the code given, say what is given in stderr, never
//! panic or write a control character to the terminal, create nothing (no file in or under its
//! directory, its $HOME, $TMPDIR or lab state directory, no lab network namespace left at the
//! end of the suite), and finish within 1 s and 256 MiB of address space. Adding a case is adding a directory; see tests/bad-inputs/README.md.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// What `case.yaml` holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Arguments; `{dir}` is the case's directory (a copy), `{tmp}` an empty directory.
    args: Vec<String>,
    exit: i32,
    /// Substrings stderr must contain.
    #[serde(default)]
    stderr: Vec<String>,
    /// Substrings stderr must not contain (content of the input that must not be echoed).
    #[serde(default)]
    stderr_absent: Vec<String>,
}

const WALL: Duration = Duration::from_secs(1);
const MEMORY: u64 = 256 << 20;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-inputs");
    let mut out = Vec::new();
    for group in std::fs::read_dir(&root).unwrap().flatten() {
        if !group.path().is_dir() {
            continue;
        }
        for case in std::fs::read_dir(group.path()).unwrap().flatten() {
            if case.path().join("case.yaml").is_file() {
                out.push(case.path());
            }
        }
    }
    out.sort();
    out
}

/// Copies a case's files (symbolic links as links) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Every entry under `dir` with what identifies its content (links by target).
fn snapshot(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(kind) = e.file_type() else { continue };
        let what = if kind.is_symlink() {
            format!("link {:?}", std::fs::read_link(&p).ok())
        } else if kind.is_dir() {
            snapshot(&p, out);
            "dir".to_string()
        } else {
            let bytes = std::fs::read(&p).unwrap_or_default();
            format!("file {} {:x}", bytes.len(), fnv(&bytes))
        };
        out.insert(p, what);
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Network namespaces of labs (`sbx-<lab>…`).
fn lab_namespaces() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("sbx-"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Of `names`, the lab namespaces that exist and belong to no lab: those of labs that other
/// processes on this machine run have a live supervisor (`sandbox supervise --lab <id>`) or a
/// directory under /run/sandbox/labs, or go away when the test that made them ends; what a
/// case registered itself is in its snapshot (its state directory).
fn unclaimed(names: &[String]) -> Vec<String> {
    let new: Vec<String> = lab_namespaces()
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    if new.is_empty() {
        return new;
    }
    let supervised: Vec<String> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .filter(|c| c.contains("supervise"))
                .collect()
        })
        .unwrap_or_default();
    new.into_iter()
        .filter(|n| {
            let id = n.trim_start_matches("sbx-").split('-').next().unwrap_or("");
            sandbox::lab::LabId::parse(id).is_some()
                && !Path::new("/run/sandbox/labs").join(id).exists()
                && !supervised
                    .iter()
                    .any(|c| c.contains(&format!("--lab {id}")))
        })
        .collect()
}

/// Runs one case: every way it is wrong, and the namespaces that appeared meanwhile.
fn run(case_dir: &Path) -> (Vec<String>, Vec<String>) {
    let spec: Case =
        match serde_saphyr::from_str(&std::fs::read_to_string(case_dir.join("case.yaml")).unwrap())
        {
            Ok(c) => c,
            Err(e) => return (vec![format!("case.yaml: {e}")], Vec::new()),
        };
    let root = tempfile::tempdir().unwrap();
    let (dir, tmp, home, tmpdir, state) = (
        root.path().join("case"),
        root.path().join("tmp"),
        root.path().join("home"),
        root.path().join("tmpdir"),
        root.path().join("state"),
    );
    copy_dir(case_dir, &dir);
    for d in [&tmp, &home, &tmpdir, &state] {
        std::fs::create_dir(d).unwrap();
    }
    let outputs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (outputs.path().join("stdout"), outputs.path().join("stderr"));
    let args: Vec<String> = spec
        .args
        .iter()
        .map(|a| {
            a.replace("{dir}", dir.to_str().unwrap())
                .replace("{tmp}", tmp.to_str().unwrap())
        })
        .collect();
    let mut before = BTreeMap::new();
    snapshot(root.path(), &mut before);
    let namespaces_before = lab_namespaces();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandbox"));
    cmd.args(&args)
        .current_dir(&dir)
        .env("HOME", &home)
        .env("TMPDIR", &tmpdir)
        .env("SANDBOX_STATE_DIR", &state)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY,
                rlim_max: MEMORY,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > WALL * 5 {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned();
    let stdout = String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned();

    let mut wrong = Vec::new();
    match status.map(|s| s.code()) {
        None => wrong.push(format!("still running after {:?}; killed", WALL * 5)),
        Some(None) => wrong.push(format!("killed by a signal ({status:?})")),
        Some(Some(code)) if code != spec.exit => {
            wrong.push(format!("exit {code}, expected {}", spec.exit))
        }
        Some(Some(_)) => {}
    }
    if took > WALL {
        wrong.push(format!("took {took:?}, more than {WALL:?}"));
    }
    for s in &spec.stderr {
        if !stderr.contains(s.as_str()) {
            wrong.push(format!("stderr lacks `{s}`"));
        }
    }
    for s in &spec.stderr_absent {
        if stderr.contains(s.as_str()) || stdout.contains(s.as_str()) {
            wrong.push(format!("the output echoes `{s}`"));
        }
    }
    if stderr.contains("panicked") {
        wrong.push("it panicked".into());
    }
    if let Some(c) = format!("{stdout}{stderr}")
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        wrong.push(format!("a control character ({c:?}) reached the terminal"));
    }
    let mut after = BTreeMap::new();
    snapshot(root.path(), &mut after);
    for (p, what) in &after {
        if before.get(p) != Some(what) {
            wrong.push(format!("created or changed {}", p.display()));
        }
    }
    for p in before.keys().filter(|p| !after.contains_key(*p)) {
        wrong.push(format!("removed {}", p.display()));
    }
    let appeared: Vec<String> = lab_namespaces()
        .into_iter()
        .filter(|n| !namespaces_before.contains(n))
        .collect();
    if !wrong.is_empty() {
        wrong.push(format!("args: {args:?}\nstderr:\n{stderr}"));
    }
    (wrong, unclaimed(&appeared))
}

#[test]
fn every_bad_input_is_refused_cleanly() {
    let cases = cases();
    assert!(!cases.is_empty(), "no cases under tests/bad-inputs");
    let mut failures = Vec::new();
    let mut suspects = Vec::new();
    let mut slowest = (Duration::ZERO, PathBuf::new());
    for case in &cases {
        let t = Instant::now();
        let (wrong, appeared) = run(case);
        suspects.extend(appeared.into_iter().map(|n| (n, case.clone())));
        if t.elapsed() > slowest.0 {
            slowest = (t.elapsed(), case.clone());
        }
        if !wrong.is_empty() {
            failures.push(format!("{}:\n  {}", case.display(), wrong.join("\n  ")));
        }
    }
    // Other tests on this machine make namespaces too; one a case left stays, unclaimed.
    let names: Vec<String> = suspects.iter().map(|(n, _)| n.clone()).collect();
    for left in unclaimed(&names) {
        let case = &suspects.iter().find(|(n, _)| *n == left).unwrap().1;
        failures.push(format!(
            "{}:\n  left network namespace {left}",
            case.display()
        ));
    }
    eprintln!(
        "{} bad inputs; slowest {} ({:?})",
        cases.len(),
        slowest.1.display(),
        slowest.0
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
