//! The routes: the learner's (their own modules only) and the instructor's (the class).

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, COOKIE, MAX_STARTS_PER_MODULE, MAX_SUBMISSIONS_PER_MODULE, Server};
use crate::app::{self, AppError};
use crate::cert;
use crate::class::{self, Class, ModuleProgress};
use crate::course::{Mode, Resolved};
use crate::exercise;
use crate::ids::LabId;
use crate::lab::{self, LabDir, State as LabState, now_ms, redact::View};
use crate::plan::Plan;

type S = State<Arc<Server>>;

/// Runs blocking work (labs, files) off the request threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the request's work failed: {e}")))?
}

fn app_error(e: AppError) -> ApiError {
    let status = match e.exit_code() {
        2 => StatusCode::UNPROCESSABLE_ENTITY,
        4 => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// The learner a request is from.
pub(super) fn learner(server: &Server, headers: &HeaderMap) -> Result<(Class, String), ApiError> {
    let token = super::token_of(headers).ok_or_else(ApiError::unauthorized)?;
    let class = server.class()?;
    let name = class
        .learner_of(&token)
        .map(|l| l.name.clone())
        .ok_or_else(ApiError::unauthorized)?;
    server.heard_from(&name);
    Ok((class, name))
}

pub(super) fn instructor(server: &Server, headers: &HeaderMap) -> Result<Class, ApiError> {
    let token = super::token_of(headers).ok_or_else(ApiError::unauthorized)?;
    let class = server.class()?;
    if class.is_instructor(&token) {
        Ok(class)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this needs the instructor's token",
        ))
    }
}

pub(super) fn module_index(server: &Server, id: &str) -> Result<usize, ApiError> {
    server
        .course
        .modules
        .iter()
        .position(|m| m.module.id.as_str() == id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no module `{id}` in this course"),
            )
        })
}

/// A lab that still runs, as a learner may see it.
pub(super) fn running(id: Option<&str>) -> Option<LabState> {
    let id = LabId::parse(id?)?;
    lab::redact::read(&LabDir::new(&id), View::Learner)
        .ok()
        .flatten()
}

/// Progress as the learner may see it: in certification, never a score.
fn seen_by_learner(mode: Mode, mut p: ModuleProgress) -> ModuleProgress {
    if mode == Mode::Certification {
        p.score = None;
        p.max = None;
        p.passed = None;
    }
    p
}

fn module_json(server: &Server, class: &Class, learner: &str, index: usize) -> Value {
    let r = &server.course.modules[index];
    let progress = class::read_progress(&server.dir, learner);
    let p = progress
        .get(r.module.id.as_str())
        .cloned()
        .unwrap_or_default();
    let lab = running(p.lab.as_deref()).map(|st| lab_json(&st, r));
    json!({
        "id": r.module.id.as_str(),
        "title": r.scenario.metadata.title,
        "difficulty": r.scenario.metadata.difficulty,
        "pass_mark": r.pass_mark(),
        "time_limit_s": r.time_limit().map(|t| t.as_secs()),
        "hints": r.module.hints,
        "open": class::is_open(class, &server.course, &progress, index, now_ms()),
        "progress": seen_by_learner(class.mode, p),
        "lab": lab,
    })
}

fn lab_json(st: &LabState, r: &Resolved) -> Value {
    let now = now_ms();
    let secs = crate::symptoms::read(&LabDir::new(&st.id).load_stats());
    let sym = crate::report::symptoms_of(st, &secs, now);
    let time_left_s = match (st.ready_ms, r.time_limit()) {
        (Some(ready), Some(limit)) => {
            Some((ready + limit.as_millis() as u64).saturating_sub(now) / 1000)
        }
        _ => None,
    };
    json!({
        "id": st.id.as_str(),
        "phase": st.phase,
        "step": st.step,
        "briefing_title": st.briefing_title,
        "briefing": st.briefing,
        "workload": st.workload,
        "services": st.instances.iter().map(|i| &i.name).collect::<Vec<_>>(),
        "faults": st.faults,
        "time_left_s": time_left_s,
        "symptoms": {
            "recent": sym.recent,
            "baseline": sym.baseline,
            "p99_trend": sym.p99_trend,
            "error_trend": sym.error_trend,
        },
    })
}

pub async fn learner_page() -> Html<&'static str> {
    Html(include_str!("learner.html"))
}

/// xterm.js, embedded so the server needs nothing at run time (`assets/xterm.sha256` pins it).
pub async fn xterm_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/xterm.js"),
    )
}

pub async fn xterm_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/xterm.css"),
    )
}

pub async fn instructor_page() -> Html<&'static str> {
    Html(include_str!("instructor.html"))
}

/// Sets the cookie the pages authenticate with and leaves the token out of the address bar.
fn sign_in(token: &str, to: &'static str, https: bool) -> Response {
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}");
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

fn bad_link() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><title>sandbox</title><p>This link is not valid (or no longer is). Ask your instructor for yours.</p>"),
    )
        .into_response()
}

pub async fn learner_link(State(server): S, Path(token): Path<String>) -> Response {
    match server.class() {
        Ok(c) if c.learner_of(&token).is_some() => sign_in(&token, "/", server.https),
        _ => bad_link(),
    }
}

pub async fn instructor_link(State(server): S, Path(token): Path<String>) -> Response {
    match server.class() {
        Ok(c) if c.is_instructor(&token) => sign_in(&token, "/instructor", server.https),
        _ => bad_link(),
    }
}

pub async fn me(State(server): S, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let (class, name) = learner(&server, &headers)?;
    let modules: Vec<Value> = (0..server.course.modules.len())
        .map(|i| module_json(&server, &class, &name, i))
        .collect();
    Ok(Json(json!({
        "learner": name,
        "class": class.name,
        "course": server.course.course.metadata.title,
        "summary": server.course.course.metadata.summary,
        "mode": class.mode,
        "probes": crate::probe::ProbeKind::ALL.map(crate::probe::ProbeKind::name),
        "modules": modules,
    })))
}

pub async fn module(
    State(server): S,
    headers: HeaderMap,
    Path(module): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (class, name) = learner(&server, &headers)?;
    let i = module_index(&server, &module)?;
    Ok(Json(module_json(&server, &class, &name, i)))
}

/// Takes down a learner's other labs: a learner works in one lab at a time.
fn stop_others(progress: &mut class::Progress, keep: &str) {
    for (m, p) in progress.iter_mut() {
        if m == keep {
            continue;
        }
        if let Some(id) = p.lab.take().and_then(|l| LabId::parse(&l)) {
            let _ = lab::down(&id);
        }
    }
}

/// A learner's request about one of their modules, as the work behind it sees it.
struct Asked {
    server: Arc<Server>,
    class: Class,
    learner: String,
    module: String,
    index: usize,
}

impl Asked {
    fn progress(&self) -> class::Progress {
        class::read_progress(&self.server.dir, &self.learner)
    }

    fn save(&self, progress: &class::Progress) -> Result<(), ApiError> {
        class::write_progress(&self.server.dir, &self.learner, progress)
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// The module as the learner now sees it.
    fn view(&self) -> Result<Json<Value>, ApiError> {
        let class = self.server.class()?;
        Ok(Json(module_json(
            &self.server,
            &class,
            &self.learner,
            self.index,
        )))
    }
}

/// Runs `work` for a learner's request about `module` off the request threads, holding the
/// learner's lock: their starts, stops, hints and submissions happen one at a time.
async fn as_learner<T: Send + 'static>(
    server: &Arc<Server>,
    headers: &HeaderMap,
    module: String,
    work: impl FnOnce(&Asked) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let (class, learner) = learner(server, headers)?;
    let index = module_index(server, &module)?;
    let lock = server.learner_lock(&learner);
    let _held = lock.lock().await;
    let asked = Asked {
        server: server.clone(),
        class,
        learner,
        module,
        index,
    };
    blocking(move || work(&asked)).await
}

pub async fn start(
    State(server): S,
    headers: HeaderMap,
    Path(module): Path<String>,
) -> Result<Json<Value>, ApiError> {
    as_learner(&server, &headers, module, start_lab).await
}

fn start_lab(a: &Asked) -> Result<Json<Value>, ApiError> {
    let (s, module) = (&a.server, &a.module);
    let mut progress = a.progress();
    if !class::is_open(&a.class, &s.course, &progress, a.index, now_ms()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("module `{module}` is not open yet"),
        ));
    }
    let current = progress.get(module).cloned().unwrap_or_default();
    if running(current.lab.as_deref()).is_some() {
        return a.view();
    }
    if current.starts >= MAX_STARTS_PER_MODULE {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this module's lab was started {MAX_STARTS_PER_MODULE} times already; ask your instructor"
            ),
        ));
    }
    stop_others(&mut progress, module);
    let r = &s.course.modules[a.index];
    let certification = match a.class.mode {
        Mode::Practice => None,
        Mode::Certification => Some(lab::Certification {
            candidate: a.learner.clone(),
            instructor: cert::InstructorPublic::load(
                &s.dir.join(format!("{}.pub", class::KEY_PREFIX)),
            )
            .map_err(|e| ApiError::internal(e.to_string()))?,
            scenario_sha256: cert::sha256_hex(r.source.text.as_bytes()),
        }),
    };
    let plan = Plan::build(&r.scenario, rand::random())
        .map_err(|_| ApiError::internal("the module's scenario draws an invalid lab"))?;
    let launched = app::start(
        &plan,
        &r.source.name,
        s.ready_timeout,
        certification,
        a.class.backend,
        app::Placement::default(),
    )
    .map_err(app_error)?;
    let p = progress.entry(module.clone()).or_default();
    p.lab = Some(launched.state.id.to_string());
    p.starts += 1;
    p.started_ms = Some(now_ms());
    a.save(&progress)?;
    a.view()
}

pub async fn stop(
    State(server): S,
    headers: HeaderMap,
    Path(module): Path<String>,
) -> Result<Json<Value>, ApiError> {
    as_learner(&server, &headers, module, |a| {
        let mut progress = a.progress();
        if let Some(id) = progress
            .get_mut(&a.module)
            .and_then(|p| p.lab.take())
            .and_then(|l| LabId::parse(&l))
        {
            let _ = lab::down(&id);
        }
        a.save(&progress)?;
        a.view()
    })
    .await
}

/// The learner's running lab of `module`, or why there is none.
pub(super) fn lab_of(server: &Server, learner: &str, module: &str) -> Result<LabState, ApiError> {
    let progress = class::read_progress(&server.dir, learner);
    running(progress.get(module).and_then(|p| p.lab.as_deref())).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("module `{module}` has no running lab: start it first"),
        )
    })
}

pub async fn hint(
    State(server): S,
    headers: HeaderMap,
    Path(module): Path<String>,
) -> Result<Json<Value>, ApiError> {
    as_learner(&server, &headers, module, |a| {
        if !a.server.course.modules[a.index].module.hints {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this module is taken without hints",
            ));
        }
        let st = lab_of(&a.server, &a.learner, &a.module)?;
        let dir = LabDir::new(&st.id);
        let next = exercise::next_hint(&dir).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut progress = a.progress();
        progress.entry(a.module.clone()).or_default().hints =
            exercise::hints_used(&dir).len() as u32;
        a.save(&progress)?;
        Ok(Json(match next {
            Some((index, h)) => json!({ "number": index + 1, "text": h.text, "cost": h.cost }),
            None => json!({ "number": null, "text": "No more hints for what you have done so far. Try another probe, then ask again.", "cost": 0 }),
        }))
    })
    .await
}

pub async fn findings_template(
    State(server): S,
    headers: HeaderMap,
    Path(module): Path<String>,
) -> Result<String, ApiError> {
    let (_, name) = learner(&server, &headers)?;
    module_index(&server, &module)?;
    let st = lab_of(&server, &name, &module)?;
    let mut services: Vec<String> = st.instances.iter().map(|i| i.service.clone()).collect();
    services.dedup();
    Ok(crate::report::findings_template(
        Some((st.id.as_str(), st.scenario_id.as_str())),
        &services,
    ))
}

pub async fn submit(
    State(server): S,
    headers: HeaderMap,
    Path(module): Path<String>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    as_learner(&server, &headers, module, move |a| {
        submit_blocking(&a.server, &a.class, &a.learner, a.index, &body)
    })
    .await
}

fn submit_blocking(
    s: &Server,
    class: &Class,
    name: &str,
    i: usize,
    body: &str,
) -> Result<Json<Value>, ApiError> {
    let r = &s.course.modules[i];
    let module = r.module.id.as_str();
    let st = lab_of(s, name, module)?;
    let mut progress = class::read_progress(&s.dir, name);
    let p = progress.entry(module.to_string()).or_default();
    if p.submissions >= MAX_SUBMISSIONS_PER_MODULE {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_SUBMISSIONS_PER_MODULE} submissions is the most a module takes"),
        ));
    }
    let now = now_ms();
    if let (Some(ready), Some(limit)) = (st.ready_ms, r.time_limit())
        && now > ready + limit.as_millis() as u64
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the time for this module ({}) is up; submissions are closed",
                crate::report::short_duration_ms(limit.as_millis() as u64)
            ),
        ));
    }
    let findings = exercise::parse_findings("findings", body)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let dir = LabDir::new(&st.id);
    exercise::check_attachments(FsPath::new("findings"), &findings, &dir)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let ex = exercise::read(&dir).map_err(|e| ApiError::internal(e.to_string()))?;
    let pass_mark = r.pass_mark();
    let response;
    let grade = match (&ex.grading, &ex.candidate) {
        (Some(grading), None) => {
            let mut grading = grading.clone();
            grading.pass_mark = pass_mark;
            grading.time_limit = r.time_limit();
            let taken = st
                .ready_ms
                .map(|ready| std::time::Duration::from_millis(now.saturating_sub(ready)));
            let grade =
                grader::score::grade(&grading, &exercise::submission(&dir, findings, taken));
            exercise::write_grade(&dir, &grade).map_err(|e| ApiError::internal(e.to_string()))?;
            app::record_submitted(&dir, Some(&grade));
            response = serde_json::to_value(&grade).unwrap_or_default();
            grade
        }
        (_, Some(candidate)) => {
            let sha = ex
                .scenario_sha256
                .as_deref()
                .ok_or_else(|| ApiError::internal("the lab does not record its scenario"))?;
            let bundle =
                app::bundle_of(&dir, &st, (candidate, sha), findings).map_err(app_error)?;
            let bytes = serde_json::to_vec_pretty(&bundle).unwrap_or_default();
            let key = cert::InstructorKey::load(&s.dir.join(format!("{}.key", class::KEY_PREFIX)))
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let named: Vec<std::path::PathBuf> = if r.source.name.starts_with("bundled:") {
                Vec::new()
            } else {
                vec![r.source.name.clone().into()]
            };
            let catalog =
                cert::Catalog::new(&named).map_err(|e| ApiError::internal(e.to_string()))?;
            let result = app::grade_bundle(
                &key,
                &catalog,
                &bundle,
                cert::sha256_hex(&bytes),
                FsPath::new("submission"),
            )
            .map_err(app_error)?;
            let results = s.dir.join("results");
            std::fs::create_dir_all(&results).map_err(|e| ApiError::internal(e.to_string()))?;
            let file = results.join(format!("{name}-{module}-{}.json", p.submissions + 1));
            std::fs::write(
                &file,
                serde_json::to_vec_pretty(&result).unwrap_or_default(),
            )
            .map_err(|e| ApiError::internal(format!("{}: {e}", file.display())))?;
            app::record_submitted(&dir, None);
            response = json!({ "submitted": true });
            result.grade
        }
        (None, None) => return Err(ApiError::internal("this lab has nothing to grade against")),
    };
    p.submissions += 1;
    p.submitted_ms = Some(now);
    let passed = grade.percent >= f64::from(pass_mark);
    if class.mode == Mode::Certification || p.score.is_none_or(|best| grade.score >= best) {
        p.score = Some(grade.score);
        p.max = Some(grade.max);
    }
    p.passed = Some(p.passed == Some(true) || passed);
    class::write_progress(&s.dir, name, &progress)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut response = response;
    if class.mode == Mode::Practice
        && let Some(o) = response.as_object_mut()
    {
        o.insert("module_passed".into(), json!(passed));
    }
    Ok(Json(response))
}

pub async fn class_status(State(server): S, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let class = instructor(&server, &headers)?;
    Ok(Json(class::status_json(
        &server.dir,
        &class,
        &server.course,
    )))
}

pub async fn class_csv(State(server): S, headers: HeaderMap) -> Result<Response, ApiError> {
    let class = instructor(&server, &headers)?;
    let csv = crate::report::class_csv(&class::table(&server.dir, &class, &server.course));
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

pub async fn revoke(
    State(server): S,
    headers: HeaderMap,
    Path(learner_name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    instructor(&server, &headers)?;
    server.update_class(|c| {
        c.revoke(&learner_name)
            .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))
    })?;
    Ok(Json(json!({ "revoked": learner_name })))
}

pub async fn open_module(
    State(server): S,
    headers: HeaderMap,
    Path(module): Path<String>,
) -> Result<Json<Value>, ApiError> {
    instructor(&server, &headers)?;
    module_index(&server, &module)?;
    server.update_class(|c| {
        c.opened.entry(module.clone()).or_insert_with(now_ms);
        Ok(())
    })?;
    Ok(Json(json!({ "opened": module })))
}
