//! Profiles and goroutine dumps from a running Go service, through its `net/http/pprof`
//! endpoint on the control plane (port 9090). The CLI is not in the lab's network, so each
//! request is made from a thread inside the instance's own network namespace to
//! `127.0.0.1:9090`: the same on the netns and the Docker backend, and nothing leaves the lab.
//!
//! Profiles are saved under `<labdir>/profiles/`, world-readable like the logs: a profile
//! shows the service's own code and stacks, never how a fault was set up (faults live in the
//! kernel and the supervisor, not in the service's memory). Each fetch is recorded in the
//! evidence journal like a probe run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::lab::{InstanceState, LabDir, State, now_ms};
use crate::probe::journal::{self, Entry};
use crate::scenario::ADMIN_PORT;

/// Downloads larger than this are refused: a goroutine dump of a leaking service is a few MiB.
const LIMIT: u64 = 64 << 20;

/// The profiles `net/http/pprof` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Goroutine,
    Cpu,
    Heap,
    Block,
    Mutex,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Goroutine,
        Kind::Cpu,
        Kind::Heap,
        Kind::Block,
        Kind::Mutex,
    ];

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Goroutine => "goroutine",
            Kind::Cpu => "cpu",
            Kind::Heap => "heap",
            Kind::Block => "block",
            Kind::Mutex => "mutex",
        }
    }

    /// The endpoint; the CPU profile samples for `seconds`, the others are a snapshot.
    fn path(self, seconds: u64) -> String {
        match self {
            Kind::Cpu => format!("/debug/pprof/profile?seconds={seconds}"),
            k => format!("/debug/pprof/{}", k.name()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "{instance} has no control plane to profile (it is not a Go service); pick a service instance"
    )]
    NoControlPlane { instance: String },
    #[error("{instance} is not running (its status: {status})")]
    NotRunning { instance: String, status: String },
    #[error("fetching {what} from {instance}: {reason}")]
    Fetch {
        instance: String,
        what: String,
        reason: String,
    },
    #[error("{instance} answered {what} with HTTP {status}: {body}")]
    Status {
        instance: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Fetches `path` from the instance's control plane, from inside its network namespace.
fn fetch(inst: &InstanceState, path: &str, timeout: Duration) -> Result<Vec<u8>, ProfileError> {
    if !inst.ports.contains(&ADMIN_PORT) {
        return Err(ProfileError::NoControlPlane {
            instance: inst.name.clone(),
        });
    }
    let Some(ns) = inst.netns.as_ref().filter(|_| inst.pid.is_some()) else {
        return Err(ProfileError::NotRunning {
            instance: inst.name.clone(),
            status: inst.status.clone(),
        });
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT));
    let (status, body) = ns
        .run(|| crate::http::get_bytes(addr, path, LIMIT, timeout).map_err(|e| e.to_string()))
        .map_err(|reason| ProfileError::Fetch {
            instance: inst.name.clone(),
            what: path.to_string(),
            reason,
        })?;
    if status != 200 {
        return Err(ProfileError::Status {
            instance: inst.name.clone(),
            what: path.to_string(),
            status,
            body: String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(200)
                .collect(),
        });
    }
    Ok(body)
}

/// Where a lab keeps the profiles taken from it.
pub fn dir_of(lab: &LabDir) -> PathBuf {
    lab.path.join("profiles")
}

fn save(lab: &LabDir, name: &str, bytes: &[u8]) -> Result<PathBuf, ProfileError> {
    let dir = dir_of(lab);
    let path = dir.join(name);
    let write = |source| ProfileError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(write)?;
    std::fs::write(&path, bytes).map_err(write)?;
    Ok(path)
}

/// A saved profile.
pub struct Saved {
    pub path: PathBuf,
    pub bytes: usize,
    pub took: Duration,
}

/// Takes one profile of `inst`, saves it in the lab directory and records it in the journal.
pub fn take(
    state: &State,
    inst: &InstanceState,
    kind: Kind,
    seconds: u64,
) -> Result<Saved, ProfileError> {
    let started = Instant::now();
    let timeout = Duration::from_secs(seconds + 15);
    let bytes = fetch(inst, &kind.path(seconds), timeout)?;
    let lab = LabDir::new(&state.id);
    let ts = now_ms();
    let path = save(
        &lab,
        &format!("{}-{}-{ts}.pb.gz", inst.name, kind.name()),
        &bytes,
    )?;
    let took = started.elapsed();
    journal::record(
        &lab,
        &Entry {
            ts_ms: ts.saturating_sub(took.as_millis() as u64),
            probe: "pprof".into(),
            target: Some(inst.name.clone()),
            instances: vec![inst.name.clone()],
            seconds: took.as_secs_f64(),
            summary: serde_json::json!({
                "kind": kind.name(),
                "file": path.display().to_string(),
                "bytes": bytes.len(),
            }),
        },
    );
    Ok(Saved {
        path,
        bytes: bytes.len(),
        took,
    })
}

/// Goroutines that share a state and a stack.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Group {
    pub count: usize,
    /// `IO wait`, `select`, `chan receive`, `running`…
    pub state: String,
    /// How many minutes its goroutines have waited, for those the runtime says (it reports
    /// waits of a minute or more).
    pub waits_min: Vec<u64>,
    /// Function names, innermost first, then `created by …`.
    pub stack: Vec<String>,
}

/// A goroutine dump grouped by state and stack, largest group first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dump {
    pub total: usize,
    pub groups: Vec<Group>,
}

/// Groups a `debug=2` dump (`goroutine 7 [IO wait, 5 minutes]:` then frames): the grouping
/// `debug=1` does, with the states and wait times only `debug=2` has.
pub fn group(text: &str) -> Dump {
    let mut groups: BTreeMap<(String, Vec<String>), Vec<Option<u64>>> = BTreeMap::new();
    let mut total = 0;
    for block in text.split("\n\n") {
        let mut lines = block.lines().filter(|l| !l.trim().is_empty());
        let Some(header) = lines.next() else { continue };
        let Some(inside) = header
            .strip_prefix("goroutine ")
            .and_then(|h| h.split_once('['))
            .and_then(|(_, r)| r.rsplit_once(']'))
            .map(|(i, _)| i)
        else {
            continue;
        };
        total += 1;
        let mut parts = inside.split(", ");
        let state = parts.next().unwrap_or_default().to_string();
        let wait = parts.find_map(|p| {
            p.strip_suffix(" minutes")
                .or_else(|| p.strip_suffix(" minute"))
                .and_then(|n| n.parse().ok())
        });
        let stack: Vec<String> = lines
            .filter(|l| !l.starts_with('\t'))
            .map(|l| match l.strip_prefix("created by ") {
                Some(rest) => format!("created by {}", function(rest)),
                None => function(l),
            })
            .collect();
        groups.entry((state, stack)).or_default().push(wait);
    }
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|((state, stack), waits)| {
            let mut waits_min: Vec<u64> = waits.iter().flatten().copied().collect();
            waits_min.sort_unstable();
            Group {
                count: waits.len(),
                state,
                waits_min,
                stack,
            }
        })
        .collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.stack.cmp(&b.stack)));
    Dump { total, groups }
}

/// `net/http.(*conn).serve(0xc000…)` → `net/http.(*conn).serve`; `… in goroutine 6` dropped.
fn function(frame: &str) -> String {
    let frame = frame.split(" in goroutine ").next().unwrap_or(frame);
    match frame.rfind('(') {
        Some(i) if frame.ends_with(')') && i > 0 && !frame[..i].ends_with('.') => {
            frame[..i].to_string()
        }
        _ => frame.to_string(),
    }
}

/// Takes a goroutine dump of `inst`, keeps the full text in the lab directory, records the
/// groups in the journal, and returns them with the file's path.
pub fn goroutines(state: &State, inst: &InstanceState) -> Result<(Dump, PathBuf), ProfileError> {
    let started = Instant::now();
    let bytes = fetch(
        inst,
        "/debug/pprof/goroutine?debug=2",
        Duration::from_secs(15),
    )?;
    let text = String::from_utf8_lossy(&bytes);
    let dump = group(&text);
    let lab = LabDir::new(&state.id);
    let ts = now_ms();
    let path = save(&lab, &format!("{}-goroutines-{ts}.txt", inst.name), &bytes)?;
    let took = started.elapsed();
    journal::record(
        &lab,
        &Entry {
            ts_ms: ts.saturating_sub(took.as_millis() as u64),
            probe: "goroutines".into(),
            target: Some(inst.name.clone()),
            instances: vec![inst.name.clone()],
            seconds: took.as_secs_f64(),
            summary: serde_json::to_value(&dump).unwrap_or_default(),
        },
    );
    Ok((dump, path))
}

/// The dump as a person reads it: each group's count, state, waits and stack.
pub fn render(instance: &str, dump: &Dump) -> String {
    let mut out = format!(
        "{instance}: {} goroutines in {} groups\n",
        dump.total,
        dump.groups.len()
    );
    for g in &dump.groups {
        let waits = match (g.waits_min.first(), g.waits_min.last()) {
            (Some(lo), Some(hi)) if lo == hi => {
                format!(", {} waiting {lo} min", g.waits_min.len())
            }
            (Some(lo), Some(hi)) => format!(", {} waiting {lo}–{hi} min", g.waits_min.len()),
            _ => String::new(),
        };
        out.push_str(&format!("\n{:>6}  [{}{waits}]\n", g.count, g.state));
        for f in &g.stack {
            out.push_str(&format!("        {f}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "goroutine 1 [IO wait, 5 minutes]:
internal/poll.runtime_pollWait(0x7f, 0x72)
\t/usr/lib/go/src/runtime/netpoll.go:343 +0x85
net/http.(*conn).serve(0xc000120000, {0x8a5e68, 0xc0000a4000})
\t/usr/lib/go/src/net/http/server.go:2009 +0x5f4
created by net/http.(*Server).Serve in goroutine 6
\t/usr/lib/go/src/net/http/server.go:3086 +0x5cb

goroutine 9 [IO wait, 7 minutes]:
internal/poll.runtime_pollWait(0x7f, 0x72)
\t/usr/lib/go/src/runtime/netpoll.go:343 +0x85
net/http.(*conn).serve(0xc000120000, {0x8a5e68, 0xc0000a4000})
\t/usr/lib/go/src/net/http/server.go:2009 +0x5f4
created by net/http.(*Server).Serve in goroutine 6
\t/usr/lib/go/src/net/http/server.go:3086 +0x5cb

goroutine 12 [IO wait]:
internal/poll.runtime_pollWait(0x7f, 0x72)
\t/usr/lib/go/src/runtime/netpoll.go:343 +0x85
net/http.(*conn).serve(0xc000120000, {0x8a5e68, 0xc0000a4000})
\t/usr/lib/go/src/net/http/server.go:2009 +0x5f4
created by net/http.(*Server).Serve in goroutine 6
\t/usr/lib/go/src/net/http/server.go:3086 +0x5cb

goroutine 3 [running]:
runtime/pprof.writeGoroutineStacks({0x8a1c40, 0xc0000a2000})
\t/usr/lib/go/src/runtime/pprof/pprof.go:703 +0x6a
main.main()
\t/x/main.go:10 +0x1
";

    #[test]
    fn identical_stacks_group_with_their_waits() {
        let d = group(DUMP);
        assert_eq!(d.total, 4);
        assert_eq!(d.groups.len(), 2, "{d:#?}");
        let io = &d.groups[0];
        assert_eq!((io.count, io.state.as_str()), (3, "IO wait"));
        assert_eq!(io.waits_min, vec![5, 7]);
        assert_eq!(
            io.stack,
            vec![
                "internal/poll.runtime_pollWait",
                "net/http.(*conn).serve",
                "created by net/http.(*Server).Serve"
            ]
        );
        assert_eq!(
            d.groups[1].stack,
            vec!["runtime/pprof.writeGoroutineStacks", "main.main"]
        );
        insta::assert_snapshot!(render("api-0", &d));
    }
}
