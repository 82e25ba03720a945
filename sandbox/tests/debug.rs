//! `debug` on real labs: Delve attached to a running service inside its network namespace and
//! reached through its JSON-RPC API as `dlv connect` reaches it (goroutines parked in
//! `net/http.(*conn).serve`); `--detach` and Ctrl-C leave the service running and untraced,
//! also when a client left it halted; `down` removes a debugger still attached and leaves no
//! stopped service, also after the lab's supervisor was killed. On Go 1.19 and the current Go, on the netns and Docker backends.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Lab, backend_or_skip, sandbox, text};
use sandbox::backend::BackendKind;
use sandbox::gobuild::Toolchain;

/// A client of Delve's JSON-RPC API (version 2), the protocol `dlv connect` speaks.
struct Rpc {
    read: BufReader<TcpStream>,
    write: TcpStream,
    id: u64,
}

impl Rpc {
    fn connect(addr: SocketAddr) -> Rpc {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connecting to the debugger on {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(180))).unwrap();
        Rpc {
            read: BufReader::new(s.try_clone().unwrap()),
            write: s,
            id: 0,
        }
    }

    fn call(
        &mut self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        self.id += 1;
        let req = serde_json::json!({
            "method": format!("RPCServer.{method}"),
            "params": [params],
            "id": self.id,
        });
        writeln!(self.write, "{req}").unwrap();
        let mut line = String::new();
        self.read
            .read_line(&mut line)
            .map_err(|e| format!("{method}: no reply: {e}"))?;
        let reply: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{method}: not JSON ({e}): {line}"));
        match reply["error"].as_str() {
            Some(e) => Err(e.to_string()),
            None => Ok(reply["result"].clone()),
        }
    }
}

/// Halts `instance` through its debugger and returns the stack (function names) of one
/// goroutine that `net/http.(*conn).serve` started, with how many such goroutines there are.
fn halt_and_find_a_connection(lab: &Lab, instance: &str) -> (usize, Vec<String>) {
    let log = sandbox::lab::debuggers::dir_of(&sandbox::lab::LabDir::new(
        &sandbox::lab::LabId::parse(&lab.id).unwrap(),
    ))
    .join(format!("{instance}.log"));
    let failed = |what: &str, e: String| -> ! {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("{what} of {instance}: {e}; Delve's log:\n{log}")
    };
    lab.in_ns(instance, || {
        let mut rpc = Rpc::connect("127.0.0.1:2345".parse().unwrap());
        // Delve can miss a halt that races with the continue in progress (then every later
        // request waits for that continue): ask again until it reports the target stopped.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            rpc.call("Command", serde_json::json!({"name": "halt"}))
                .unwrap_or_else(|e| failed("halting", e));
            std::thread::sleep(Duration::from_millis(500));
            let state = rpc
                .call("State", serde_json::json!({"NonBlocking": true}))
                .unwrap_or_else(|e| failed("the state", e));
            if state["State"]["Running"] == false {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{instance} does not halt: {state}"
            );
        }
        let list = rpc
            .call(
                "ListGoroutines",
                serde_json::json!({"Start": 0, "Count": 0}),
            )
            .unwrap_or_else(|e| failed("listing the goroutines", e));
        let serving: Vec<&serde_json::Value> = list["Goroutines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["startLoc"]["function"]["name"] == "net/http.(*conn).serve")
            .collect();
        // One that has run: a goroutine not yet scheduled shows only its entry trampoline.
        // Debian's Delve (1.20) fails on the odd stack of a Go newer than it (an internal
        // error): such goroutines are passed over, as a learner would.
        let mut errors = Vec::new();
        let stack = serving
            .iter()
            .take(20)
            .filter_map(|g| {
                match rpc.call(
                    "Stacktrace",
                    serde_json::json!({"Id": g["id"], "Depth": 50}),
                ) {
                    Ok(frames) => Some(
                        frames["Locations"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter_map(|l| l["function"]["name"].as_str().map(String::from))
                            .collect::<Vec<String>>(),
                    ),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            })
            .find(|s| s.iter().any(|f| f == "net/http.(*conn).serve"))
            .unwrap_or_else(|| {
                failed(
                    "a stack at net/http.(*conn).serve",
                    format!(
                        "none among {} goroutines; errors: {errors:?}",
                        serving.len()
                    ),
                )
            });
        (serving.len(), stack)
    })
}

/// Delve processes tracing `pid`, found by their command line, not by sandbox's own marker.
fn debuggers_of(pid: u32) -> Vec<i32> {
    let want = format!("dlv\0attach\0{pid}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with(want.as_bytes()))
                && sandbox::lab::debuggers::state_of(*p as u32) != Some('Z')
        })
        .collect()
}

/// The thread tracing `pid` (0: none).
fn tracer_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The service runs untraced, with no thread stopped, and answers on its control plane.
fn runs_untraced(lab: &Lab, instance: &str, pid: u32) {
    assert_eq!(tracer_of(pid), 0, "{instance} is still traced");
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid: u32 = task.unwrap().file_name().to_str().unwrap().parse().unwrap();
        let state = sandbox::lab::debuggers::state_of(tid);
        assert!(
            !matches!(state, Some('t' | 'T')),
            "{instance}'s thread {tid} is stopped ({state:?})"
        );
    }
    let (status, _) = lab.in_ns(instance, || {
        sandbox::http::get_bytes(
            SocketAddr::from(([127, 0, 0, 1], sandbox::scenario::ADMIN_PORT)),
            "/debug/pprof/goroutine?debug=1",
            1 << 24,
            Duration::from_secs(5),
        )
        .unwrap()
    });
    assert_eq!(status, 200, "{instance} does not answer after detaching");
}

/// The pid of `instance` once it runs.
fn pid_when_running(lab: &Lab, instance: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = lab.status();
        let pid = st["lab"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == instance && i["status"] == "running")
            .and_then(|i| i["pid"].as_u64());
        if let Some(pid) = pid {
            return pid as u32;
        }
        assert!(Instant::now() < deadline, "{instance} is not running: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn debug(lab: &Lab, args: &[&str]) -> std::process::Output {
    sandbox()
        .arg("debug")
        .args(args)
        .args(["--lab", &lab.id])
        .output()
        .unwrap()
}

/// With `crash`, the lab's supervisor is killed before `down`, which then finds the debugger
/// as the crash sweep does.
fn debug_on(backend: BackendKind, go: &Toolchain, crash: bool) {
    let lab = Lab::start_with(
        "added-latency",
        3,
        &[("SANDBOX_GO", go.go.to_str().unwrap())],
        backend,
    );
    let search = pid_when_running(&lab, "search-0");
    let t0 = Instant::now();
    let out = debug(&lab, &["search-0", "--background"]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!(
        "{} on {}: attached in {:?}",
        go.version,
        backend.name(),
        t0.elapsed()
    );
    assert!(
        text(&out).contains("listens on 127.0.0.1:2345"),
        "{}",
        text(&out)
    );
    let dlv = debuggers_of(search);
    assert_eq!(dlv.len(), 1, "one Delve traces search-0");
    let tracer = tracer_of(search);
    assert!(
        Path::new(&format!("/proc/{}/task/{tracer}", dlv[0])).exists(),
        "search-0 is traced by {tracer}, not by a thread of Delve {}",
        dlv[0]
    );

    let again = debug(&lab, &["search-0", "--background"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("attached to search-0 already"),
        "{}",
        text(&again)
    );

    let (serving, stack) = halt_and_find_a_connection(&lab, "search-0");
    eprintln!("search-0: {serving} goroutines serve connections, one at {stack:?}");
    assert!(
        stack.iter().any(|f| f == "net/http.(*conn).serve"),
        "{stack:?}"
    );
    assert_eq!(
        sandbox::lab::debuggers::state_of(search),
        Some('t'),
        "the halted service is in a tracing stop"
    );

    let out = debug(&lab, &["--detach", "search-0"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(debuggers_of(search).is_empty(), "Delve outlived --detach");
    runs_untraced(&lab, "search-0", search);
    let out = debug(&lab, &["--detach", "search-0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let dir = sandbox::lab::LabDir::new(&sandbox::lab::LabId::parse(&lab.id).unwrap());
    let runs: Vec<serde_json::Value> = std::fs::read_to_string(dir.evidence())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["probe"] == "debug")
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["target"], "search-0");
    assert_eq!(runs[0]["summary"]["pid"], search);

    // In the foreground, Ctrl-C detaches.
    let web = pid_when_running(&lab, "web-0");
    let mut fg = sandbox()
        .args(["debug", "web-0", "--lab", &lab.id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(fg.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    while !seen.contains("Ctrl-C here detaches") {
        match lines.next() {
            Some(Ok(l)) => seen.push_str(&format!("{l}\n")),
            _ => panic!("debug ended before attaching:\n{seen}"),
        }
    }
    assert_eq!(debuggers_of(web).len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fg.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = fg.wait().unwrap();
    assert!(status.success(), "{seen}{}", rest.join("\n"));
    assert!(
        rest.iter().any(|l| l.starts_with("Detached from web-0")),
        "{rest:?}"
    );
    assert!(debuggers_of(web).is_empty(), "Delve outlived Ctrl-C");
    runs_untraced(&lab, "web-0", web);

    // A debugger still attached, holding its service halted, goes down with the lab.
    let index = pid_when_running(&lab, "index-0");
    let out = debug(&lab, &["index-0", "--background"]);
    assert!(out.status.success(), "{}", text(&out));
    halt_and_find_a_connection(&lab, "index-0");
    assert_eq!(sandbox::lab::debuggers::state_of(index), Some('t'));
    let dlv = debuggers_of(index);
    assert_eq!(dlv.len(), 1);
    let id = lab.id.clone();
    if crash {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(lab.supervisor_pid()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
    assert!(debuggers_of(index).is_empty(), "Delve outlived down");
    assert!(
        matches!(
            sandbox::lab::debuggers::state_of(dlv[0] as u32),
            None | Some('Z')
        ),
        "Delve {} outlived down",
        dlv[0]
    );
    assert!(
        !matches!(sandbox::lab::debuggers::state_of(index), Some('t' | 'T')),
        "a stopped index-0 outlived down"
    );
    let left = common::leftovers(&id);
    assert!(left.is_empty(), "{left:?}");
}

fn toolchain(prefix: &str) -> Option<Toolchain> {
    let found = Toolchain::all()
        .into_iter()
        .find(|t| t.version.starts_with(prefix));
    if found.is_none() {
        eprintln!("SKIPPED debug with {prefix}: no such Go toolchain here");
    }
    found
}

fn current() -> Toolchain {
    Toolchain::at(Path::new("go")).expect("go on PATH")
}

#[test]
fn debug_attaches_detaches_and_goes_down_after_a_crash_with_go_1_19_on_netns() {
    if backend_or_skip("debug with go1.19", BackendKind::Netns)
        && let Some(go) = toolchain("go1.19")
    {
        debug_on(BackendKind::Netns, &go, true);
    }
}

#[test]
fn debug_attaches_detaches_and_goes_down_with_current_go_on_netns() {
    if backend_or_skip("debug with the current Go", BackendKind::Netns) {
        debug_on(BackendKind::Netns, &current(), false);
    }
}

#[test]
fn debug_attaches_detaches_and_goes_down_with_current_go_on_docker() {
    if backend_or_skip("debug on docker", BackendKind::Docker) {
        debug_on(BackendKind::Docker, &current(), false);
    }
}
