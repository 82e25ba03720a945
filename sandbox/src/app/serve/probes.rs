//! Probes a learner runs, from the page or from their terminal (`sandbox probe …` there talks
//! to the server over a socket only their user can open). The server runs the bundled probe
//! as root, scoped to that learner's lab: the learner names a probe, a service and a duration,
//! never a lab, so no request reaches another lab. The run is journalled in the lab as any
//! probe run is, and counts as evidence when grading.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::{ApiError, Server};
use crate::class;
use crate::probe::ProbeKind;

/// The longest probe run a learner may ask for.
pub const MAX_SECONDS: u64 = 30;
/// Probe runs one learner may make in one module.
pub const MAX_RUNS_PER_MODULE: u32 = 200;
/// The environment variable that tells `sandbox probe` in a learner's shell where to ask.
pub const SOCKET_ENV: &str = "SANDBOX_PROBE_SOCKET";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub probe: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub seconds: Option<u64>,
    #[serde(default)]
    pub json: bool,
}

/// The `sandbox probe` command line for a request, checked: a known probe, a bounded
/// duration, a target that is a plain name (it becomes one argument, never a shell word).
fn command(lab: &str, req: &ProbeRequest) -> Result<tokio::process::Command, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let kind = ProbeKind::ALL
        .into_iter()
        .find(|k| k.name() == req.probe)
        .ok_or_else(|| {
            bad(format!(
                "no probe named `{}`; the probes: {}",
                req.probe,
                ProbeKind::ALL.map(ProbeKind::name).join(", ")
            ))
        })?;
    let seconds = req.seconds.unwrap_or(5);
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return Err(bad(format!(
            "a probe runs 1 to {MAX_SECONDS} seconds, not {seconds}"
        )));
    }
    let exe = std::env::current_exe().map_err(|e| ApiError::internal(e.to_string()))?;
    let mut c = tokio::process::Command::new(exe);
    c.args(["probe", kind.name(), "--lab", lab, "--duration"])
        .arg(format!("{seconds}s"));
    if let Some(t) = &req.target {
        let plain = !t.is_empty()
            && t.len() <= 64
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !plain {
            return Err(bad(format!("`{t}` is not a service of your lab")));
        }
        c.args(["--target", t]);
    }
    if req.json {
        c.arg("--json");
    }
    c.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(c)
}

/// Counts the run against the learner's module, after checking the bound.
fn count_run(server: &Server, learner: &str, module: &str) -> Result<(), ApiError> {
    let mut progress = class::read_progress(&server.dir, learner);
    let p = progress.entry(module.to_string()).or_default();
    if p.probes >= MAX_RUNS_PER_MODULE {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_RUNS_PER_MODULE} probe runs is the most a module takes"),
        ));
    }
    p.probes += 1;
    class::write_progress(&server.dir, learner, &progress)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Runs a request for `learner` in `module`, writing what the probe prints to `out` as it
/// prints it; one probe at a time per learner.
async fn run(
    server: &Server,
    learner: &str,
    module: &str,
    req: &ProbeRequest,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<bool, ApiError> {
    let lock = server.probe_lock(learner);
    let Ok(_held) = lock.try_lock() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "one of your probes is already running; wait for it to finish",
        ));
    };
    let st = super::api::lab_of(server, learner, module)?;
    let mut cmd = command(st.id.as_str(), req)?;
    count_run(server, learner, module)?;
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("starting the probe: {e}")))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ApiError::internal("the probe's output is not connected"));
    };
    let copy = async {
        pump(stdout, out).await;
        pump(stderr, out).await;
    };
    let limit = Duration::from_secs(MAX_SECONDS + 30);
    if tokio::time::timeout(limit, copy).await.is_err() {
        let _ = child.start_kill();
    }
    let status = child
        .wait()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(status.success())
}

async fn pump(from: impl AsyncRead + Unpin, to: &mut (impl AsyncWrite + Unpin)) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if to.write_all(format!("{line}\n").as_bytes()).await.is_err() {
            return;
        }
        let _ = to.flush().await;
    }
}

/// `POST /api/modules/{module}/probe` from the page: the run's output once it ends.
pub(super) async fn probe(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    UrlPath(module): UrlPath<String>,
    Json(req): Json<ProbeRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (_, learner) = super::api::learner(&server, &headers)?;
    super::api::module_index(&server, &module)?;
    let mut out = Vec::new();
    let ok = run(&server, &learner, &module, &req, &mut out).await?;
    Ok(Json(serde_json::json!({
        "ok": ok,
        "output": String::from_utf8_lossy(&out),
    })))
}

/// A socket only the learner's user may open, for `sandbox probe` in their terminal; it
/// serves until dropped.
pub(super) struct LearnerSocket {
    pub path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LearnerSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the sockets of class `class` live: a directory others may pass through but not list.
fn socket_dir(class: &str) -> PathBuf {
    crate::ids::state_root().join("serve").join(class)
}

/// Removes the sockets a killed server left behind; called before it serves again.
pub(super) fn clear_sockets(class: &str) {
    let _ = std::fs::remove_dir_all(socket_dir(class));
}

pub(super) fn listen(
    server: Arc<Server>,
    learner: &str,
    module: &str,
    uid: u32,
) -> Result<LearnerSocket, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = socket_dir(&server.name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for d in [dir.parent().unwrap_or(&dir), dir.as_path()] {
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711));
    }
    // One socket per terminal session: a session ending never removes its successor's.
    let path = dir.join(format!("{learner}-{}.sock", crate::ids::LabId::random()));
    let listener =
        tokio::net::UnixListener::bind(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::os::unix::fs::chown(&path, Some(uid), Some(uid))
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (learner, module) = (learner.to_string(), module.to_string());
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (server, learner, module) = (server.clone(), learner.clone(), module.clone());
            tokio::spawn(async move { answer(stream, &server, &learner, &module).await });
        }
    });
    Ok(LearnerSocket { path, task })
}

/// One request on a learner's socket: a JSON line in; the probe's output, then a last line
/// `exit <code>`, out.
async fn answer(stream: tokio::net::UnixStream, server: &Server, learner: &str, module: &str) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, 4096));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let code = match serde_json::from_str::<ProbeRequest>(&line) {
        Err(e) => {
            let _ = write
                .write_all(format!("error: a bad request: {e}\n").as_bytes())
                .await;
            2
        }
        Ok(req) => match run(server, learner, module, &req, &mut write).await {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                let _ = write
                    .write_all(format!("error: {}\n", e.message).as_bytes())
                    .await;
                2
            }
        },
    };
    let _ = write.write_all(format!("exit {code}\n").as_bytes()).await;
}

/// `sandbox probe` in a learner's shell: asks the server over its socket and prints the
/// answer; returns the probe's exit code.
pub fn ask(socket: &Path, req: &ProbeRequest) -> std::io::Result<u8> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    let mut line = serde_json::to_string(req).unwrap_or_default();
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut code = 1;
    for l in std::io::BufReader::new(stream).lines() {
        let l = l?;
        match l.strip_prefix("exit ").and_then(|c| c.parse::<u8>().ok()) {
            Some(c) => code = c,
            None => println!("{l}"),
        }
    }
    Ok(code)
}
