//! The commands behind the CLI. Each takes plain options, prints what a person reads, and
//! returns an error that knows its exit code; `main.rs` only parses arguments.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::doctor;
use crate::gobuild::{self, GoError};
use crate::lab::{self, FindError, LabDir, LabId, LaunchError, State, View};
use crate::plan::{self, Plan};
use crate::report;
use crate::scenario::{self, BackendKind, ScenarioError, Source};
use crate::symptoms;
use crate::term::safe;

mod class;
mod cluster;
mod course;
mod exercise;
pub mod serve;
mod tools;
pub use class::{ClassCreateOptions, class_create, class_list, class_revoke, class_status, serve};
pub use cluster::{cluster_create, cluster_delete, cluster_image, cluster_list};
pub use course::{course_check, course_list};
pub use exercise::{
    GradeOptions, SubmitOptions, bundle_of, findings_template, grade, grade_bundle, hint,
    keys_generate, record_submitted, submit, verify_result,
};
pub use tools::{DebugOptions, debug, events, goroutines, graph, pprof};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Course(#[from] crate::course::CourseError),
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Go(#[from] GoError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Find(#[from] FindError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Input that was reported in detail already (several files, several problems).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

impl AppError {
    /// 2: the input is wrong; 3: the machine lacks something; 4: no such lab or service;
    /// 1: anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Scenario(_) | AppError::Course(_) | AppError::Invalid(_) => 2,
            AppError::Missing(_) | AppError::Go(_) => 3,
            AppError::Find(_) => 4,
            AppError::Launch(_) | AppError::Failed(_) => 1,
            AppError::Cluster(e) => {
                use crate::cluster::ClusterError as C;
                match e {
                    C::UnknownLayout(_) | C::BadName(_) | C::Exists(_) => 2,
                    C::NoDocker | C::Runtime(_) | C::NoImage(_) | C::Go(_) => 3,
                    C::NotFound(_) => 4,
                    _ => 1,
                }
            }
        }
    }

    /// The error as shown on the terminal, with quoted source lines for scenario and course
    /// problems.
    pub fn render(&self, color: bool) -> String {
        use crate::course::CourseError;
        match self {
            AppError::Scenario(e) | AppError::Course(CourseError::File(e)) => {
                render_scenario_error(e, color)
            }
            AppError::Course(CourseError::Invalid { course, scenarios }) => std::iter::once(course)
                .chain(scenarios)
                .map(|e| render_scenario_error(e, color))
                .collect(),
            other => format!("error: {}\n", safe(&other.to_string())),
        }
    }
}

/// A file's problems, each quoting its line, and how many there are; other errors on a line.
fn render_scenario_error(e: &ScenarioError, color: bool) -> String {
    let ScenarioError::Invalid {
        source_name,
        text,
        diagnostics,
    } = e
    else {
        return format!("error: {}\n", safe(&e.to_string()));
    };
    // The file's text and what the messages quote of it are made safe before the renderer
    // adds its own colours.
    let (name, text) = (safe(source_name), safe(text));
    let mut out: String = diagnostics
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.message = safe(&d.message).into_owned();
            d.path = safe(&d.path).into_owned();
            report::diagnostic(&name, &text, &d, color)
        })
        .collect();
    out.push_str(&format!(
        "{} problem{} in {name}\n",
        diagnostics.len(),
        if diagnostics.len() == 1 { "" } else { "s" }
    ));
    out
}

fn require_root(what: &str) -> Result<(), AppError> {
    require_root_because(
        what,
        "labs are network namespaces, nftables rules and eBPF programs",
    )
}

fn require_root_because(what: &str, why: &str) -> Result<(), AppError> {
    if crate::sys::is_root() {
        Ok(())
    } else {
        Err(AppError::Missing(format!(
            "`sandbox {what}` needs root: {why}. \
             Run it as root (sudo sandbox {what} …); nothing was changed"
        )))
    }
}

/// Reads, parses and validates a scenario, including every value its parameters can draw.
pub fn load(arg: &str) -> Result<(Source, scenario::Scenario), AppError> {
    let source = Source::resolve(arg)?;
    let s = plan::load_checked(&source)?;
    Ok((source, s))
}

pub fn list(json: bool) -> Result<(), AppError> {
    let items: Vec<_> = scenario::bundled()
        .into_iter()
        .map(|b| {
            let s = Source {
                name: format!("bundled:{}", b.id),
                text: b.text.to_string(),
            };
            (b, s.load().map_err(|e| e.to_string()))
        })
        .collect();
    if json {
        let v: Vec<_> = items
            .iter()
            .filter_map(|(b, s)| s.as_ref().ok().map(|s| (b, s)))
            .map(|(b, s)| {
                serde_json::json!({
                    "id": b.id, "title": s.metadata.title, "summary": s.metadata.summary,
                    "difficulty": s.metadata.difficulty, "tags": s.metadata.tags,
                    "faults": s.faults.iter().map(|f| f.kind.name()).collect::<Vec<_>>(),
                    "time_limit": s.metadata.time_limit.as_ref().map(|t| t.to_string()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", safe(&report::scenario_list(&items)));
        println!();
    }
    Ok(())
}

/// Validates each file; reports every problem of every file before failing.
pub fn validate(args: &[String], color: bool) -> Result<(), AppError> {
    let mut failed = 0;
    for arg in args {
        match load(arg) {
            Ok((src, s)) => println!(
                "ok  {} ({}, {}, {})",
                src.name,
                report::count(s.topology.services.len(), "service"),
                report::count(s.faults.len(), "fault"),
                report::count(s.params.len(), "param")
            ),
            Err(e) => {
                failed += 1;
                eprint!("{}", e.render(color));
            }
        }
    }
    if failed > 0 {
        return Err(AppError::Invalid(format!(
            "{failed} of {} scenario files are invalid",
            args.len()
        )));
    }
    Ok(())
}

pub struct RunOptions {
    pub scenario: String,
    pub seed: Option<u64>,
    pub detach: bool,
    pub ready_timeout: Duration,
    /// Certification: the candidate, and the instructor's public key file.
    pub certify: Option<(String, std::path::PathBuf)>,
    pub backend: BackendKind,
    /// The cluster a `kube` lab runs on.
    pub cluster: Option<String>,
    /// The prefix of a `kube` lab's namespace, where not sandbox's own.
    pub namespace_prefix: Option<String>,
}

/// Refuses a backend the scenario does not list in `metadata.backends`.
fn check_backend(s: &scenario::Scenario, backend: BackendKind) -> Result<(), AppError> {
    if s.metadata.backends.contains(&backend) {
        return Ok(());
    }
    let listed: Vec<String> = s.metadata.backends.iter().map(|b| b.to_string()).collect();
    Err(AppError::Invalid(format!(
        "scenario `{}` runs on {} (its metadata.backends), not on {backend}; pick one of those with --backend",
        s.id(),
        listed.join(", ")
    )))
}

/// A spinner on a terminal, plain lines otherwise.
struct Progress(Option<ProgressBar>);

impl Progress {
    fn new() -> Progress {
        if std::io::stderr().is_terminal() {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.enable_steady_tick(Duration::from_millis(100));
            Progress(Some(pb))
        } else {
            Progress(None)
        }
    }

    fn step(&self, msg: &str) {
        match &self.0 {
            Some(pb) => pb.set_message(msg.to_string()),
            None => eprintln!("· {msg}"),
        }
    }

    fn done(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

pub fn run(o: RunOptions, color: bool) -> Result<(), AppError> {
    let (source, s) = load(&o.scenario)?;
    if o.namespace_prefix.is_some() && o.backend != BackendKind::Kube {
        return Err(AppError::Invalid(format!(
            "--namespace-prefix names a Kubernetes namespace: use it with --backend kube, not {}",
            o.backend
        )));
    }
    require_root("run")?;
    check_backend(&s, o.backend)?;
    let certification = match &o.certify {
        Some((candidate, key)) => Some(lab::Certification {
            candidate: candidate.clone(),
            instructor: crate::cert::InstructorPublic::load(key)
                .map_err(|e| AppError::Invalid(e.to_string()))?,
            scenario_sha256: crate::cert::sha256_hex(source.text.as_bytes()),
        }),
        None => None,
    };
    // A candidate never chooses (or sees) the seed: it would let them draw the answer.
    let seed = if certification.is_some() {
        rand::random()
    } else {
        o.seed.unwrap_or_else(rand::random)
    };
    let plan = Plan::build(&s, seed).map_err(|diagnostics| source.invalid(diagnostics))?;
    let launched = start(
        &plan,
        &source.name,
        o.ready_timeout,
        certification,
        o.backend,
        Placement {
            cluster: o.cluster.as_deref(),
            namespace_prefix: o.namespace_prefix.as_deref(),
        },
    )?;
    let st = &launched.state;
    let what = match &st.candidate {
        Some(c) => format!("Certification lab {} for {c}", st.id),
        None => format!("Lab {}", st.id),
    };
    let seed_note = st.seed.map(|s| format!(", seed {s}")).unwrap_or_default();
    println!(
        "{what} is ready ({} services{seed_note}, started in {:.3}s).",
        plan.instances.len(),
        launched.startup.as_secs_f64()
    );
    println!();
    print!("{}", safe(&briefing(st)));
    if let Some(t) = st.time_limit_s {
        println!();
        println!("Time limit: {}.", report::short_duration_ms(t * 1000));
    }
    println!();
    let kubeconfig = LabDir::new(&st.id)
        .path
        .join(crate::backend::kube::KUBECONFIG);
    if kubeconfig.exists() {
        // The kubectl sandbox built for its clusters, where the learner may have none.
        let kubectl = crate::cluster::tools()
            .map(|t| t.kubectl.display().to_string())
            .unwrap_or_else(|_| "kubectl".into());
        println!(
            "Read the lab's Kubernetes objects (its namespace, read only) with\n  {} --kubeconfig {}",
            safe(&kubectl),
            safe(&kubeconfig.display().to_string())
        );
        println!();
    }
    if o.detach {
        println!("Watch it with `sandbox status`, read logs with `sandbox logs <service>`,");
        println!("open a shell with `sandbox shell <service>`, and stop it with `sandbox down`.");
        return Ok(());
    }
    println!("Showing status every second; Ctrl-C takes the lab down.");
    watch_until_interrupt(&st.id, color)
}

/// Where on a cluster a `kube` lab goes; nothing for the other backends.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement<'a> {
    /// sandbox's only cluster when absent.
    pub cluster: Option<&'a str>,
    /// sandbox's own (`sbx`) when absent.
    pub namespace_prefix: Option<&'a str>,
}

/// Builds the Go services and brings a plan up, with progress on the terminal.
pub fn start(
    plan: &Plan,
    source: &str,
    ready_timeout: Duration,
    certification: Option<lab::Certification>,
    backend: BackendKind,
    placement: Placement,
) -> Result<lab::Launched, AppError> {
    let progress = Progress::new();
    let tc = gobuild::find()?;
    progress.step(&format!("building the Go services with {}", tc.version));
    let built = gobuild::build(&tc).inspect_err(|_| progress.done())?;
    let prepare =
        |dir: &LabDir, state: &State| write_exercise(dir, state, plan, certification.as_ref());
    let req = lab::Request {
        plan,
        backend,
        cluster: placement.cluster.map(str::to_string),
        namespace_prefix: placement.namespace_prefix.map(str::to_string),
        binaries: &built.dir,
        source,
        ready_timeout,
        certification: certification.as_ref().map(|c| lab::Certification {
            candidate: c.candidate.clone(),
            instructor: c.instructor.clone(),
            scenario_sha256: c.scenario_sha256.clone(),
        }),
        prepare: &prepare,
    };
    let launched =
        lab::launch(&req, |step| progress.step(step)).inspect_err(|_| progress.done())?;
    progress.done();
    Ok(launched)
}

/// The exercise file, and in certification mode the sealed facts.
fn write_exercise(
    dir: &LabDir,
    state: &State,
    plan: &Plan,
    certification: Option<&lab::Certification>,
) -> Result<(), String> {
    let candidate = certification.map(|c| c.candidate.as_str());
    let exercise = crate::exercise::LabExercise {
        scenario_sha256: certification.map(|c| c.scenario_sha256.clone()),
        ..crate::exercise::LabExercise::of(plan, candidate)
    };
    crate::exercise::write(dir, &exercise).map_err(|e| e.to_string())?;
    let Some(cert) = certification else {
        return Ok(());
    };
    let facts = crate::cert::SealedFacts {
        candidate: cert.candidate.clone(),
        scenario_id: plan.scenario.id.clone(),
        lab_id: state.id.to_string(),
        scenario_sha256: cert.scenario_sha256.clone(),
        seed: plan.seed,
        params: plan
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
        faults: plan
            .faults
            .iter()
            .map(|f| format!("{} on {}", f.effect, f.target))
            .collect(),
        ready_ms: state.created_ms,
    };
    let sealed =
        crate::cert::seal(&cert.instructor, &facts).map_err(|e| format!("sealing: {e}"))?;
    let path = dir.path.join("sealed.age");
    std::fs::write(&path, sealed).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Redraws the lab's status once a second until Ctrl-C, then takes the lab down.
fn watch_until_interrupt(id: &LabId, color: bool) -> Result<(), AppError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Failed(format!("starting the runtime: {e}")))?;
    let interrupted = rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return true,
                _ = tick.tick() => {
                    match LabDir::new(id).read_state() {
                        Some(state) => {
                            if std::io::stdout().is_terminal() {
                                print!("\x1b[2J\x1b[H{}\n{}", safe(&briefing(&state)), safe(&status_page(&state)));
                            } else {
                                print!("{}", safe(&status_page(&state)));
                            }
                            let _ = std::io::stdout().flush();
                        }
                        None => return false,
                    }
                }
            }
        }
    });
    if interrupted {
        println!();
    }
    down(Some(id.as_str()), false, color)
}

/// The status page of a state already read for its viewer ([`lab::redact::read`]).
fn status_page(state: &State) -> String {
    let now = lab::now_ms();
    let secs = symptoms::read(&LabDir::new(&state.id).load_stats());
    let sym = report::symptoms_of(state, &secs, now);
    report::status(state, &sym, now)
}

/// A lab's state as `view` may see it; `None` once the lab is gone.
fn state_for(id: &LabId, view: View) -> Result<Option<State>, AppError> {
    lab::redact::read(&LabDir::new(id), view).map_err(|e| match e {
        e @ lab::RevealError::NotRoot { .. } => AppError::Missing(e.to_string()),
        e => AppError::Failed(e.to_string()),
    })
}

fn briefing(state: &State) -> String {
    let rule = "─".repeat(state.briefing_title.chars().count().min(78));
    format!(
        "{}\n{rule}\n{}\n",
        state.briefing_title,
        state.briefing.trim_end()
    )
}

pub struct StatusOptions {
    pub json: bool,
    pub watch: bool,
    /// Show what each fault is and where; for instructors and scenario authors.
    pub reveal: bool,
}

pub fn status(id: Option<&str>, o: StatusOptions) -> Result<(), AppError> {
    let StatusOptions {
        json,
        watch,
        reveal,
    } = o;
    let labs = lab::list();
    if id.is_none() && labs.len() > 1 && !json {
        println!("{}", safe(&report::lab_list(&labs, lab::now_ms())));
        println!("Several labs are running; `sandbox status <lab>` shows one.");
        return Ok(());
    }
    let view = View::revealed(reveal);
    let Some(state) = state_for(&lab::find(id)?.id, view)? else {
        return Err(FindError::NoSuchLab(id.unwrap_or_default().to_string()).into());
    };
    if json {
        let now = lab::now_ms();
        let secs = symptoms::read(&LabDir::new(&state.id).load_stats());
        let sym = report::symptoms_of(&state, &secs, now);
        let v = serde_json::json!({
            "lab": state,
            "now_ms": now,
            "symptoms": { "recent": sym.recent, "baseline": sym.baseline, "p99_trend": sym.p99_trend },
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    if !watch {
        print!("{}", safe(&status_page(&state)));
        return Ok(());
    }
    loop {
        let Some(state) = state_for(&state.id, view)? else {
            return Ok(());
        };
        print!("\x1b[2J\x1b[H{}", safe(&status_page(&state)));
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// An instance name from what a person typed: `api-1`, or `api` for its first replica (all
/// replicas when `all` is set).
fn instances_named(state: &State, name: &str, all: bool) -> Result<Vec<String>, AppError> {
    if state.instances.iter().any(|i| i.name == name) {
        return Ok(vec![name.to_string()]);
    }
    let of: Vec<String> = state
        .instances
        .iter()
        .filter(|i| i.service == name)
        .map(|i| i.name.clone())
        .collect();
    if of.is_empty() {
        let known: Vec<&str> = state.instances.iter().map(|i| i.name.as_str()).collect();
        return Err(FindError::NoSuchInstance {
            lab: state.id.to_string(),
            name: name.to_string(),
            known: known.join(", "),
        }
        .into());
    }
    Ok(if all {
        of
    } else {
        of.into_iter().take(1).collect()
    })
}

pub fn logs(lab_id: Option<&str>, name: &str, follow: bool, lines: usize) -> Result<(), AppError> {
    let state = lab::find(lab_id)?;
    let dir = LabDir::new(&state.id);
    let files: Vec<(String, std::path::PathBuf)> = if name == "supervisor" {
        vec![(name.to_string(), dir.supervisor_log())]
    } else {
        instances_named(&state, name, true)?
            .into_iter()
            .map(|i| (i.clone(), dir.log_of(&i)))
            .collect()
    };
    let prefix = files.len() > 1;
    let mut offsets = Vec::new();
    for (inst, path) in &files {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        for l in &all[all.len().saturating_sub(lines)..] {
            if prefix {
                println!("{inst}: {}", safe(l));
            } else {
                println!("{}", safe(l));
            }
        }
        offsets.push(text.len() as u64);
    }
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if LabDir::new(&state.id).read_state().is_none() {
            return Ok(());
        }
        for ((inst, path), off) in files.iter().zip(offsets.iter_mut()) {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            if (bytes.len() as u64) > *off {
                let new = String::from_utf8_lossy(&bytes[*off as usize..]).into_owned();
                *off = bytes.len() as u64;
                for l in new.lines() {
                    if prefix {
                        println!("{inst}: {}", safe(l));
                    } else {
                        println!("{}", safe(l));
                    }
                }
            }
        }
    }
}

/// Replaces this process with a shell (or `command`) inside an instance's namespace.
pub fn shell(lab_id: Option<&str>, name: &str, command: &[String]) -> Result<(), AppError> {
    require_root("shell")?;
    let state = lab::find(lab_id)?;
    let inst = instances_named(&state, name, false)?.remove(0);
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/bash".into());
    let program = command.first().cloned().unwrap_or(shell);
    let netns = state
        .instances
        .iter()
        .find(|i| i.name == inst)
        .and_then(|i| i.netns.as_ref());
    let mut c = crate::backend::shell_command(state.backend, &state.id, &inst, netns, &program)
        .map_err(|e| AppError::Failed(e.to_string()))?;
    c.args(command.iter().skip(1));
    c.env("SANDBOX_LAB", state.id.as_str())
        .env("SANDBOX_INSTANCE", &inst);
    if command.is_empty() {
        eprintln!(
            "Shell in {inst} of lab {} ({}); `exit` leaves it.",
            state.id,
            state
                .instances
                .iter()
                .find(|i| i.name == inst)
                .map(|i| i.ip.as_str())
                .unwrap_or("")
        );
    }
    use std::os::unix::process::CommandExt;
    Err(AppError::Failed(format!(
        "starting {program}: {}",
        c.exec()
    )))
}

pub fn down(id: Option<&str>, all: bool, _color: bool) -> Result<(), AppError> {
    require_root("down")?;
    let reports = if all {
        lab::down_all()
    } else {
        let target = match id {
            Some(i) => LabId::parse(i).ok_or_else(|| FindError::NoSuchLab(i.to_string()))?,
            None => lab::find(None)?.id,
        };
        if id.is_some()
            && !lab::list().iter().any(|s| s.id == target)
            && crate::backend::leftovers(&target, None).is_empty()
        {
            return Err(FindError::NoSuchLab(target.to_string()).into());
        }
        vec![lab::down(&target)]
    };
    let clusters = if all {
        lab::down_clusters()
    } else {
        Vec::new()
    };
    if reports.is_empty() && clusters.is_empty() {
        println!("No labs to take down.");
    }
    let mut bad = 0;
    for c in &clusters {
        if c.leftovers.is_empty() {
            println!(
                "Cluster {} is deleted ({:.2}s); nothing of it is left.",
                c.name,
                c.took.as_secs_f64()
            );
        } else {
            bad += 1;
            println!("Cluster {} is deleted but these remain:", c.name);
            for l in &c.leftovers {
                println!("  {l}");
            }
        }
    }
    for r in &reports {
        if r.leftovers.is_empty() {
            println!(
                "Lab {} is down ({:.2}s); nothing of it is left.",
                r.id,
                r.took.as_secs_f64()
            );
        } else {
            bad += 1;
            println!(
                "Lab {} is down ({:.2}s) but these remain:",
                r.id,
                r.took.as_secs_f64()
            );
            for l in &r.leftovers {
                println!("  {l}");
            }
        }
    }
    if bad > 0 {
        return Err(AppError::Failed(format!(
            "{bad} lab(s) left objects behind"
        )));
    }
    Ok(())
}

pub fn doctor(json: bool) -> Result<(), AppError> {
    let checks = doctor::run();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).unwrap_or_default()
        );
    } else {
        print!("{}", report::doctor(&checks));
        println!();
    }
    let missing = checks
        .iter()
        .filter(|c| c.status == doctor::Status::Fail)
        .count();
    if missing > 0 {
        return Err(AppError::Missing(format!(
            "{missing} thing(s) labs need are missing; the FIX column says how to add them"
        )));
    }
    Ok(())
}

/// Which file format `sandbox schema` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    Scenario,
    Course,
}

pub fn schema(kind: SchemaKind) -> Result<(), AppError> {
    let schema = match kind {
        SchemaKind::Scenario => scenario::json_schema(),
        SchemaKind::Course => crate::course::json_schema(),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    );
    Ok(())
}

/// `sandbox supervise`: runs in the background, started by `run`.
pub fn supervise(id: &str) -> u8 {
    match LabId::parse(id) {
        Some(id) => lab::supervisor::main(&id).clamp(0, 255) as u8,
        None => 2,
    }
}

pub struct ProbeOptions {
    pub kind: crate::probe::ProbeKind,
    pub lab: Option<String>,
    pub target: Option<String>,
    pub duration: Option<Duration>,
    pub json: bool,
    pub output: Option<std::path::PathBuf>,
}

/// `sandbox probe`: one probe run against a service of a lab (or the whole lab).
pub fn probe(o: ProbeOptions) -> Result<(), AppError> {
    use crate::ebpf::EbpfError;
    use crate::probe::{self, ProbeError, Scope};
    if let Some(socket) = std::env::var_os(crate::app::serve::probes::SOCKET_ENV)
        && !crate::sys::is_root()
    {
        return probe_through_server(std::path::Path::new(&socket), o);
    }
    // Root first: a lab that cannot be probed anyway is not worth looking up.
    let root = probe::require_root();
    let result = root
        .and_then(|()| Scope::resolve(o.lab.as_deref(), o.target.as_deref()))
        .and_then(|scope| {
            let opts = probe::Options {
                kind: o.kind,
                duration: o.duration,
                json: o.json,
                output: o.output,
            };
            probe::run(&scope, &opts, &mut std::io::stdout())
        });
    match result {
        Ok(_) => Ok(()),
        Err(ProbeError::Find(e)) => Err(AppError::Find(e)),
        Err(e @ (ProbeError::NotRoot | ProbeError::Ebpf(EbpfError::MissingHook { .. }))) => {
            Err(AppError::Missing(e.to_string()))
        }
        Err(e) => Err(AppError::Failed(e.to_string())),
    }
}

/// `sandbox probe` in a learner's terminal of `sandbox serve`: the server runs it on the
/// learner's lab.
fn probe_through_server(socket: &std::path::Path, o: ProbeOptions) -> Result<(), AppError> {
    if o.output.is_some() || o.lab.is_some() {
        return Err(AppError::Invalid(
            "in a class terminal, a probe runs on your lab and prints here: leave out --lab and --output".into(),
        ));
    }
    let req = crate::app::serve::probes::ProbeRequest {
        probe: o.kind.name().to_string(),
        target: o.target,
        seconds: o.duration.map(|d| d.as_secs().max(1)),
        json: o.json,
    };
    match crate::app::serve::probes::ask(socket, &req) {
        Ok(0) => Ok(()),
        Ok(_) => Err(AppError::Failed("the probe did not finish".into())),
        Err(e) => Err(AppError::Failed(format!(
            "asking the class server to run the probe ({}): {e}",
            socket.display()
        ))),
    }
}

/// Which draws of a scenario's parameters `verify` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draws {
    /// The one a seed gives, as `run --seed` would.
    Seed(u64),
    /// Every corner of the parameter space (`plan::corners`), each in a lab of its own.
    Corners,
}

/// `sandbox verify`: proves scenarios solvable with the bundled tools, one lab at a time.
pub fn verify(
    scenarios: &[String],
    all: bool,
    draws: Draws,
    json: bool,
    backend: BackendKind,
    cluster: Option<&str>,
) -> Result<(), AppError> {
    require_root("verify")?;
    let names: Vec<String> = if all {
        let bundled = scenario::bundled();
        let (runs, skipped): (Vec<&scenario::Bundled>, Vec<&scenario::Bundled>) =
            bundled.iter().partition(|b| {
                let source = Source {
                    name: b.id.to_string(),
                    text: b.text.to_string(),
                };
                source
                    .load()
                    .is_ok_and(|s| s.metadata.backends.contains(&backend))
            });
        for b in skipped {
            eprintln!("skipping {}: it does not run on {backend}", b.id);
        }
        runs.iter().map(|b| b.id.to_string()).collect()
    } else {
        scenarios.to_vec()
    };
    let mut failed = Vec::new();
    let mut reports = Vec::new();
    for name in &names {
        for report in verify_one(name, draws, backend, cluster)? {
            if !json {
                print!("{}", safe(&crate::verify::render(&report)));
                println!();
            }
            if !report.passed() {
                failed.push(match report.draw.as_str() {
                    "" => name.clone(),
                    draw => format!("{name} ({draw})"),
                });
            }
            reports.push(report);
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    }
    if failed.is_empty() {
        println!("verified: {}", names.join(", "));
        Ok(())
    } else {
        Err(AppError::Failed(format!(
            "not verified: {}",
            failed.join(", ")
        )))
    }
}

/// Verifies one scenario in a lab per draw, one after the other.
fn verify_one(
    name: &str,
    draws: Draws,
    backend: BackendKind,
    cluster: Option<&str>,
) -> Result<Vec<crate::verify::Report>, AppError> {
    let (source, s) = load(name)?;
    check_backend(&s, backend)?;
    let missing = crate::verify::missing_parts(&s);
    if !missing.is_empty() {
        return Err(AppError::Invalid(format!(
            "{}: cannot be verified without {}",
            source.name,
            missing.join(", ")
        )));
    }
    let plans = match draws {
        Draws::Seed(seed) => vec![Plan::build(&s, seed)],
        Draws::Corners => crate::plan::corners(&s)
            .into_iter()
            .map(|params| Plan::build_with(&s, params, 0))
            .collect(),
    };
    let mut reports = Vec::new();
    for plan in plans {
        let plan = plan.map_err(|diagnostics| source.invalid(diagnostics))?;
        let draw = match draws {
            Draws::Seed(seed) => format!("seed {seed}"),
            Draws::Corners => "corner".to_string(),
        };
        let params = crate::plan::draw_label(&plan.params);
        eprintln!(
            "verifying {} ({draw}{}{params}, {backend} backend)",
            source.name,
            if params.is_empty() { "" } else { ": " }
        );
        let launched = start(
            &plan,
            &source.name,
            Duration::from_secs(60),
            None,
            backend,
            Placement {
                cluster,
                namespace_prefix: None,
            },
        )?;
        let id = launched.state.id.clone();
        let mut report = crate::verify::check_running(&plan, &s, &id, |step| eprintln!("· {step}"));
        if draws == Draws::Corners {
            report.seed = None;
        }
        let down = lab::down(&id);
        if !down.leftovers.is_empty() {
            return Err(AppError::Failed(format!(
                "lab {id} left: {}",
                down.leftovers.join(", ")
            )));
        }
        reports.push(report);
    }
    Ok(reports)
}
