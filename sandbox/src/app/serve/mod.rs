//! `sandbox serve`: runs a class over HTTP. Learners open their link and work from a browser;
//! the instructor watches the class table and scrapes `/metrics`. Each learner's token reaches
//! only that learner's labs: every route finds the lab from the learner and the module, never
//! from an id the client sends. The class's files are read on every request, so a token
//! revoked with `sandbox class revoke` stops working at once, and a restarted server carries on
//! where the last one stopped; labs run under their own supervisors and outlive the server.

mod api;
mod metrics;
pub mod probes;
mod terminal;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::class::{self, Class, ClassError};
use crate::course::Loaded;

/// Lab starts one learner may make in one module: a learner restarting a lab in a loop
/// would take the machine from the class.
pub const MAX_STARTS_PER_MODULE: u32 = 10;
/// Submissions one learner may make in one module.
pub const MAX_SUBMISSIONS_PER_MODULE: u32 = 20;
/// The largest request body: a findings file.
const MAX_BODY: usize = crate::exercise::MAX_FINDINGS_BYTES as usize;
const COOKIE: &str = "sandbox_token";

pub struct Options {
    pub class: String,
    pub listen: SocketAddr,
    /// How long a lab may take to become healthy.
    pub ready_timeout: Duration,
    /// A learner's lab is taken down after this long without a request from them (their
    /// page polls while it is open); their progress stays. Zero keeps labs up.
    pub idle_stop: Duration,
    /// HTTPS: a PEM certificate chain and its PEM private key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Class(#[from] ClassError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(String),
    #[error("TLS: {0}")]
    Tls(String),
}

/// What every request handler shares.
struct Server {
    name: String,
    dir: PathBuf,
    course: Loaded,
    ready_timeout: Duration,
    /// Served over HTTPS: the sign-in cookie is then `Secure`.
    https: bool,
    /// One lock per learner: their starts, stops, hints and submissions happen one at a time.
    learners: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each learner was last heard from.
    seen: Mutex<HashMap<String, std::time::Instant>>,
    started: std::time::Instant,
    /// One probe run at a time per learner.
    probes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Serialises changes to `class.json` made by the server.
    class_write: Mutex<()>,
}

impl Server {
    fn class(&self) -> Result<Class, ApiError> {
        class::load(&self.name)
            .map(|(_, c)| c)
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    fn learner_lock(&self, learner: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.learners.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(learner.to_string()).or_default().clone()
    }

    fn heard_from(&self, learner: &str) {
        let mut map = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(learner.to_string(), std::time::Instant::now());
    }

    /// How long since the learner's last request (or since the server started).
    fn quiet_for(&self, learner: &str) -> Duration {
        let map = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        map.get(learner).unwrap_or(&self.started).elapsed()
    }

    fn probe_lock(&self, learner: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.probes.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(learner.to_string()).or_default().clone()
    }

    /// Changes the class file under the server's lock.
    fn update_class(
        &self,
        change: impl FnOnce(&mut Class) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        let _held = self.class_write.lock().unwrap_or_else(|p| p.into_inner());
        let mut c = self.class()?;
        change(&mut c)?;
        class::save(&self.dir, &c).map_err(|e| ApiError::internal(e.to_string()))
    }
}

/// An error as the API answers it: a status and a sentence, as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a valid access token is needed: open your class link again, or ask your instructor",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// The token a request carries: `Authorization: Bearer …` (tools, Prometheus) or the cookie
/// the access link set (the browser).
fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// A request that changes something must come from this server's own pages (or carry no
/// `Origin`, as tools do): another site cannot act with a learner's cookie.
async fn check_origin(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let headers = req.headers();
        if let Some(origin) = headers.get(header::ORIGIN) {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let origin = origin.to_str().unwrap_or("");
            let same = origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority == host);
            if !same {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("requests from {origin} are refused: use this server's own pages"),
                ));
            }
        }
    }
    Ok(next.run(req).await)
}

fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/", get(api::learner_page))
        .route("/instructor", get(api::instructor_page))
        .route("/l/{token}", get(api::learner_link))
        .route("/i/{token}", get(api::instructor_link))
        .route("/api/me", get(api::me))
        .route("/api/modules/{module}", get(api::module))
        .route("/api/modules/{module}/start", post(api::start))
        .route("/api/modules/{module}/stop", post(api::stop))
        .route("/api/modules/{module}/hint", post(api::hint))
        .route(
            "/api/modules/{module}/findings-template",
            get(api::findings_template),
        )
        .route("/api/modules/{module}/submit", post(api::submit))
        .route("/api/modules/{module}/terminal", get(terminal::terminal))
        .route("/api/modules/{module}/probe", post(probes::probe))
        .route("/assets/xterm.js", get(api::xterm_js))
        .route("/assets/xterm.css", get(api::xterm_css))
        .route("/api/class", get(api::class_status))
        .route("/api/class.csv", get(api::class_csv))
        .route("/api/class/learners/{learner}/revoke", post(api::revoke))
        .route("/api/class/modules/{module}/open", post(api::open_module))
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn(check_origin))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(server)
}

/// Serves class `o.class` until SIGINT or SIGTERM; the labs keep running.
pub fn serve(o: Options) -> Result<(), ServeError> {
    let (dir, class) = class::load(&o.class)?;
    probes::clear_sockets(&class.name);
    let acceptor = match &o.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key).map_err(ServeError::Tls)?),
        None => None,
    };
    let course = class.loaded_course()?;
    let server = Arc::new(Server {
        name: class.name.clone(),
        dir,
        course,
        ready_timeout: o.ready_timeout,
        https: o.tls.is_some(),
        learners: Mutex::default(),
        probes: Mutex::default(),
        seen: Mutex::default(),
        started: std::time::Instant::now(),
        class_write: Mutex::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Runtime(format!("starting the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(o.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: o.listen,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(o.listen);
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        println!(
            "Serving class {} ({}, {} learners) on {scheme}://{addr}",
            class.name,
            class.course_id,
            class.learners.len()
        );
        println!(
            "Learners open their links; the instructor's dashboard is at /i/<instructor token>."
        );
        if !o.idle_stop.is_zero() {
            tokio::spawn(stop_idle_labs(server.clone(), o.idle_stop));
        }
        let app = router(server);
        match acceptor {
            Some(acceptor) => {
                let listener = tls::TlsListener::new(listener, acceptor)
                    .map_err(|e| ServeError::Runtime(e.to_string()))?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown())
                    .await
            }
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown())
                    .await
            }
        }
        .map_err(|e| ServeError::Runtime(e.to_string()))
    })
}

/// Takes down the labs of learners not heard from for `idle`; their progress is kept, and
/// opening the module again starts a fresh lab.
async fn stop_idle_labs(server: Arc<Server>, idle: Duration) {
    let mut tick =
        tokio::time::interval((idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)));
    loop {
        tick.tick().await;
        let Ok(class) = server.class() else { continue };
        for learner in class.learners.iter().map(|l| l.name.clone()) {
            if server.quiet_for(&learner) < idle {
                continue;
            }
            let lock = server.learner_lock(&learner);
            let _held = lock.lock().await;
            let s = server.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut progress = class::read_progress(&s.dir, &learner);
                let mut stopped = false;
                for p in progress.values_mut() {
                    if let Some(id) = p.lab.take().and_then(|l| crate::ids::LabId::parse(&l)) {
                        let _ = crate::lab::down(&id);
                        p.idle_stops += 1;
                        stopped = true;
                    }
                }
                if stopped {
                    let _ = class::write_progress(&s.dir, &learner, &progress);
                }
            })
            .await;
        }
    }
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

use api::{instructor as api_instructor, running as api_running};
