//! The learner's terminal: a shell on a pseudo-terminal, carried over a WebSocket to xterm.js.
//!
//! The shell runs in the network namespace of one of the learner's lab's services (the lab's
//! own `sandbox shell` command), as the learner's own unprivileged user (`setpriv`: a uid and
//! gid of its own, no supplementary groups, every capability dropped from all sets and from
//! the bounding set, `no_new_privs`). So it sees that service's sockets and addresses (`ss`,
//! `ip`, `curl`) and nothing it could change: the lab's fault rules need CAP_NET_ADMIN, the
//! sealed draw and hints are root's files, other learners' shells run as other users. Every
//! session is recorded as an asciicast v2 file in the class's `recordings/`.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ApiError, Server};
use crate::lab::{LabDir, now_ms};

/// Learners' shells run as `UID_BASE + their place on the roster` (gid the same): users no
/// one else on the host is, one per learner.
pub const UID_BASE: u32 = 61000;
/// A terminal message larger than this is no keystroke.
const MAX_MESSAGE: usize = 64 * 1024;
/// Input a learner may type per second, averaged; a paste of a page is fine, a flood is not.
const INPUT_BYTES_PER_SECOND: f64 = 16.0 * 1024.0;

#[derive(serde::Deserialize)]
pub struct Where {
    /// The service (or instance) whose network namespace the shell runs in; the lab's first
    /// instance when absent.
    service: Option<String>,
}

/// Resizes arrive as text frames `{"cols":..,"rows":..}`; keystrokes as binary frames.
#[derive(serde::Deserialize)]
struct Resize {
    cols: u16,
    rows: u16,
}

pub async fn terminal(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(module): Path<String>,
    Query(at): Query<Where>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // A WebSocket is opened with a GET any page may send: only this server's pages may.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if origin.split_once("://").map(|(_, a)| a) != Some(host) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the terminal opens only from this server's own pages",
        ));
    }
    let (class, name) = super::api::learner(&server, &headers)?;
    super::api::module_index(&server, &module)?;
    let st = super::api::lab_of(&server, &name, &module)?;
    let inst = match &at.service {
        None => st.instances.first(),
        Some(s) => st
            .instances
            .iter()
            .find(|i| &i.name == s)
            .or_else(|| st.instances.iter().find(|i| &i.service == s)),
    }
    .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such service in your lab"))?
    .clone();
    let place = class
        .learners
        .iter()
        .position(|l| l.name == name)
        .ok_or_else(ApiError::unauthorized)? as u32;
    let uid = UID_BASE + place;
    let full = crate::lab::redact::read(&LabDir::new(&st.id), crate::lab::redact::View::Instructor)
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::internal("the lab's state is unreadable"))?;
    let netns = full
        .instances
        .iter()
        .find(|i| i.name == inst.name)
        .and_then(|i| i.netns.clone());
    let std_cmd =
        crate::backend::shell_command(st.backend, &st.id, &inst.name, netns.as_ref(), "setpriv")
            .map_err(|e| ApiError::internal(e.to_string()))?;
    let recording = server
        .dir
        .join("recordings")
        .join(format!("{name}-{module}-{}.cast", now_ms()));
    let prompt = format!("{name}@{}:\\w\\$ ", inst.name);
    let probes =
        super::probes::listen(server.clone(), &name, &module, uid).map_err(ApiError::internal)?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            if let Err(e) = session(socket, std_cmd, uid, &prompt, &probes.path, &recording).await {
                eprintln!("terminal of {name} ({module}): {e}");
            }
            drop(probes);
        }))
}

/// The shell: `setpriv` drops to the learner's user before bash starts.
fn shell(
    std_cmd: std::process::Command,
    uid: u32,
    prompt: &str,
    probe_socket: &std::path::Path,
) -> pty_process::Command {
    // `sandbox probe` in the shell is this binary, asking the server over the socket.
    let own_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_default();
    let mut c = pty_process::Command::new(std_cmd.get_program())
        .args(std_cmd.get_args())
        .args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
            "--inh-caps=-all".into(),
            "--ambient-caps=-all".into(),
            "--bounding-set=-all".into(),
            "--no-new-privs".into(),
            "--".into(),
            "bash".into(),
            "--noprofile".into(),
            "--norc".into(),
            "-i".into(),
        ])
        .env_clear()
        .env(
            "PATH",
            format!("{own_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        )
        .env(super::probes::SOCKET_ENV, probe_socket)
        .env("TERM", "xterm-256color")
        .env("HOME", "/tmp")
        .env("PS1", prompt)
        .current_dir("/tmp")
        .kill_on_drop(true);
    for (k, v) in std_cmd.get_envs() {
        if let Some(v) = v {
            c = c.env(k, v);
        }
    }
    c
}

/// An asciicast v2 recording: a header line, then `[seconds, "o", text]` per output chunk.
struct Recording {
    file: std::fs::File,
    started: Instant,
}

impl Recording {
    fn create(path: &std::path::Path, cols: u16, rows: u16) -> std::io::Result<Recording> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let header = serde_json::json!({
            "version": 2, "width": cols, "height": rows,
            "timestamp": now_ms() / 1000,
            "env": { "TERM": "xterm-256color" },
        });
        writeln!(file, "{header}")?;
        Ok(Recording {
            file,
            started: Instant::now(),
        })
    }

    fn output(&mut self, bytes: &[u8]) {
        let event = serde_json::json!([
            self.started.elapsed().as_secs_f64(),
            "o",
            String::from_utf8_lossy(bytes)
        ]);
        let _ = writeln!(self.file, "{event}");
    }
}

async fn session(
    mut socket: WebSocket,
    std_cmd: std::process::Command,
    uid: u32,
    prompt: &str,
    probe_socket: &std::path::Path,
    recording: &std::path::Path,
) -> Result<(), String> {
    end_processes_of(uid);
    let (pty, pts) = pty_process::open().map_err(|e| format!("a pseudo-terminal: {e}"))?;
    let (cols, rows) = (100, 30);
    pty.resize(pty_process::Size::new(rows, cols))
        .map_err(|e| e.to_string())?;
    let mut child = shell(std_cmd, uid, prompt, probe_socket)
        .spawn(pts)
        .map_err(|e| format!("starting the shell: {e}"))?;
    let mut rec = Recording::create(recording, cols, rows)
        .map_err(|e| format!("{}: {e}", recording.display()))?;
    let (mut out, mut input) = pty.into_split();
    let mut buf = vec![0u8; 16 * 1024];
    let mut budget = INPUT_BYTES_PER_SECOND;
    let mut last = Instant::now();
    loop {
        tokio::select! {
            n = out.read(&mut buf) => {
                let n = match n { Ok(0) | Err(_) => break, Ok(n) => n };
                rec.output(&buf[..n]);
                if socket.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                match msg {
                    Message::Binary(bytes) => {
                        let now = Instant::now();
                        budget = (budget + now.duration_since(last).as_secs_f64() * INPUT_BYTES_PER_SECOND)
                            .min(4.0 * INPUT_BYTES_PER_SECOND);
                        last = now;
                        budget -= bytes.len() as f64;
                        if budget < 0.0 {
                            let _ = socket.send(Message::Text("input too fast: the terminal is closed".into())).await;
                            break;
                        }
                        if input.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Message::Text(text) => {
                        if let Ok(r) = serde_json::from_str::<Resize>(&text) {
                            let _ = input.resize(pty_process::Size::new(r.rows.clamp(5, 200), r.cols.clamp(20, 400)));
                        }
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    end_processes_of(uid);
    Ok(())
}

/// Ends every process of the learner's user: a terminal leaves nothing running behind it,
/// and a learner has one terminal at a time.
fn end_processes_of(uid: u32) {
    for pid in crate::sys::procs::pids_of_user(uid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
