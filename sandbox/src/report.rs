//! Everything a person reads on the terminal: tables, the lab status, and error reports that
//! quote the offending line of a scenario.

use std::fmt::Write;

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::doctor::{Check, Status};
use crate::lab::{FaultDetail, FaultStatus, State};
use crate::scenario::{Bundled, Diagnostic, Scenario};
use crate::symptoms::{self, Second, Window};

fn table<T: Tabled>(rows: impl IntoIterator<Item = T>) -> String {
    let t = Table::new(rows).with(Style::blank()).to_string();
    t.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// `1 fault`, `3 faults`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A table from plain strings, for callers that build rows at run time (the probes).
pub fn grid(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut b = tabled::builder::Builder::default();
    b.push_record(headers.iter().map(|h| h.to_string()));
    for r in rows {
        b.push_record(r);
    }
    let t = b.build().with(Style::blank()).to_string();
    t.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// A class: a row per learner, a column per module, each cell what the learner has done.
pub fn class_table(rows: &[crate::class::Row]) -> String {
    let Some(first) = rows.first() else {
        return "No learners.".into();
    };
    let upper: Vec<String> = std::iter::once("LEARNER".to_string())
        .chain(first.modules.iter().map(|m| m.module.to_uppercase()))
        .collect();
    let headers: Vec<&str> = upper.iter().map(String::as_str).collect();
    let body = rows.iter().map(|r| {
        let name = if r.revoked {
            format!("{} (revoked)", r.learner)
        } else {
            r.learner.clone()
        };
        std::iter::once(name)
            .chain(r.modules.iter().map(|m| {
                let p = &m.progress;
                match (p.passed, p.score, p.max) {
                    (Some(true), Some(s), Some(max)) => format!("passed {s}/{max}"),
                    (Some(false), Some(s), Some(max)) => format!("{s}/{max}"),
                    _ if p.lab.is_some() => format!("lab {}", p.lab.as_deref().unwrap_or("")),
                    _ if m.open => "open".into(),
                    _ => "-".into(),
                }
            }))
            .collect()
    });
    grid(&headers, body)
}

/// The class table as CSV: a row per learner and module.
pub fn class_csv(rows: &[crate::class::Row]) -> String {
    let cell = csv_cell;
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out =
        String::from("learner,revoked,module,open,starts,hints,submissions,score,max,passed\n");
    for r in rows {
        for m in &r.modules {
            let p = &m.progress;
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                cell(&r.learner),
                r.revoked,
                cell(&m.module),
                m.open,
                p.starts,
                p.hints,
                p.submissions,
                opt(p.score),
                opt(p.max),
                p.passed.map(|b| b.to_string()).unwrap_or_default(),
            ));
        }
    }
    out
}

#[derive(Tabled)]
struct ScenarioRow {
    #[tabled(rename = "SCENARIO")]
    id: String,
    #[tabled(rename = "LEVEL")]
    level: String,
    #[tabled(rename = "FAULTS")]
    faults: String,
    #[tabled(rename = "TIME")]
    time: String,
    #[tabled(rename = "TITLE")]
    title: String,
}

/// The bundled scenarios (`sandbox list`). In a catalog the fault types are no secret: the
/// briefing never names them, but an instructor choosing a scenario needs to know.
pub fn scenario_list(items: &[(Bundled, Result<Scenario, String>)]) -> String {
    let rows = items.iter().map(|(b, s)| match s {
        Ok(s) => {
            let mut kinds: Vec<&str> = s.faults.iter().map(|f| f.kind.name()).collect();
            kinds.dedup();
            ScenarioRow {
                id: b.id.to_string(),
                level: s.metadata.difficulty.to_string(),
                faults: kinds.join(", "),
                time: s
                    .metadata
                    .time_limit
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".into()),
                title: s.metadata.title.clone(),
            }
        }
        Err(e) => ScenarioRow {
            id: b.id.to_string(),
            level: "-".into(),
            faults: "-".into(),
            time: "-".into(),
            title: format!("invalid: {}", e.lines().next().unwrap_or("")),
        },
    });
    table(rows)
}

#[derive(Tabled)]
struct ModuleRow {
    #[tabled(rename = "#")]
    n: usize,
    #[tabled(rename = "MODULE")]
    id: String,
    #[tabled(rename = "SCENARIO")]
    scenario: String,
    #[tabled(rename = "LEVEL")]
    level: String,
    #[tabled(rename = "PASS")]
    pass: String,
    #[tabled(rename = "TIME")]
    time: String,
    #[tabled(rename = "HINTS")]
    hints: String,
    #[tabled(rename = "UNLOCK")]
    unlock: String,
}

/// A valid course (`sandbox course check`): what it is, where it can run, and each module
/// with the rules it is taken under (the scenario's own pass mark and time limit where the
/// module sets none).
pub fn course(c: &crate::course::Loaded) -> String {
    use crate::course::Unlock;
    let backends: Vec<&str> = c.backends().iter().map(|b| b.name()).collect();
    let rows = c.modules.iter().enumerate().map(|(i, r)| {
        let m = &r.module;
        ModuleRow {
            n: i + 1,
            id: m.id.to_string(),
            scenario: m.scenario.to_string(),
            level: r.scenario.metadata.difficulty.to_string(),
            pass: r.pass_mark().to_string(),
            time: r
                .time_limit()
                .map(|t| crate::scenario::Dur(t).to_string())
                .unwrap_or_else(|| "-".into()),
            hints: if !m.hints {
                "off".into()
            } else if r.scenario.hints.is_empty() {
                "-".into()
            } else {
                format!("{} (−{} pts)", r.scenario.hints.len(), r.hint_points())
            },
            unlock: match (*m.unlock, &m.opens_at) {
                (Unlock::AfterPrevious, _) if i == 0 => "open".into(),
                (Unlock::AfterPrevious, _) => "after previous".into(),
                (Unlock::Instructor, None) => "instructor".into(),
                (Unlock::Instructor, Some(t)) => format!("instructor, or at {}", **t),
            },
        }
    });
    // The time a learner may spend in all, when every module has a limit.
    let total: Option<std::time::Duration> = c.modules.iter().map(|r| r.time_limit()).sum();
    let total = total
        .map(|t| format!(" ({} in all)", crate::scenario::Dur(t)))
        .unwrap_or_default();
    format!(
        "ok  {}: {}\n    {} course, {}{total}, runs on {}\n\n{}\n",
        c.source.name,
        c.course.metadata.title,
        *c.course.mode,
        count(c.modules.len(), "module"),
        backends.join(", "),
        table(rows)
    )
}

#[derive(Tabled)]
struct CourseRow {
    #[tabled(rename = "COURSE")]
    id: String,
    #[tabled(rename = "MODE")]
    mode: String,
    #[tabled(rename = "MODULES")]
    modules: String,
    #[tabled(rename = "TITLE")]
    title: String,
}

/// The bundled courses (`sandbox course list`).
pub fn course_list(items: &[(&str, Result<crate::course::Loaded, String>)]) -> String {
    table(items.iter().map(|(id, c)| match c {
        Ok(c) => CourseRow {
            id: id.to_string(),
            mode: c.course.mode.to_string(),
            modules: c.modules.len().to_string(),
            title: c.course.metadata.title.clone(),
        },
        Err(e) => CourseRow {
            id: id.to_string(),
            mode: "-".into(),
            modules: "-".into(),
            title: format!("invalid: {}", e.lines().next().unwrap_or("")),
        },
    }))
}

/// `1.5s`, `320ms`, `2m05s`.
pub fn short_duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

fn latency(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

#[derive(Tabled)]
struct FaultRow {
    #[tabled(rename = "FAULT")]
    id: String,
    #[tabled(rename = "WHAT")]
    what: String,
    #[tabled(rename = "WHEN")]
    when: String,
    #[tabled(rename = "STATE")]
    status: String,
}

#[derive(Tabled)]
struct LoadRow {
    #[tabled(rename = "WINDOW")]
    window: String,
    #[tabled(rename = "REQ/S")]
    rate: String,
    #[tabled(rename = "ERRORS")]
    errors: String,
    #[tabled(rename = "P50")]
    p50: String,
    #[tabled(rename = "P90")]
    p90: String,
    #[tabled(rename = "P99")]
    p99: String,
    #[tabled(rename = "MAX")]
    max: String,
}

fn load_row(name: &str, w: &Window) -> LoadRow {
    let mut kinds = Vec::new();
    let k = &w.err_kinds;
    for (n, v) in [
        ("timeout", k.timeout),
        ("refused", k.refused),
        ("reset", k.reset),
        ("5xx", k.http_5xx),
        ("other", k.other),
    ] {
        if v > 0 {
            kinds.push(format!("{n} {v}"));
        }
    }
    if w.skipped > 0 {
        kinds.push(format!("skipped {}", w.skipped));
    }
    let errors = if kinds.is_empty() {
        format!("{:.1}%", w.error_pct)
    } else {
        format!("{:.1}% ({})", w.error_pct, kinds.join(", "))
    };
    LoadRow {
        window: name.to_string(),
        rate: format!("{:.0}", w.rate),
        errors,
        p50: latency(w.p50_ms),
        p90: latency(w.p90_ms),
        p99: latency(w.p99_ms),
        max: latency(w.max_ms),
    }
}

/// Symptom windows for status: the last few seconds against the time before any fault.
pub struct Symptoms {
    pub recent: Option<Window>,
    pub baseline: Option<Window>,
    /// Per-second p99 over the last minute, oldest first.
    pub p99_trend: Vec<f64>,
    pub error_trend: Vec<f64>,
}

pub const RECENT_SECONDS: u64 = 5;

pub fn symptoms_of(state: &State, secs: &[Second], now_ms: u64) -> Symptoms {
    let first_fault = state
        .faults
        .iter()
        .filter_map(|f| f.start_ms)
        .min()
        .unwrap_or(u64::MAX);
    let ready = state.ready_ms.unwrap_or(0);
    let recent = symptoms::window(
        secs,
        now_ms.saturating_sub((RECENT_SECONDS + 1) * 1000),
        now_ms,
    );
    let baseline = symptoms::window(secs, ready, first_fault.min(now_ms));
    let last: Vec<&Second> = secs.iter().filter(|s| s.ts_ms + 60_000 >= now_ms).collect();
    Symptoms {
        recent,
        baseline,
        p99_trend: last.iter().map(|s| s.p99_ms).collect(),
        error_trend: last.iter().map(|s| s.errors as f64).collect(),
    }
}

fn when(start: Option<u64>, end: Option<u64>, now: u64) -> String {
    match (start, end) {
        (None, _) => "after start-up".into(),
        (Some(s), _) if s > now => format!("in {}", short_duration_ms(s - now)),
        (Some(s), Some(e)) if e <= now => format!(
            "{} ago, for {}",
            short_duration_ms(now - s),
            short_duration_ms(e - s)
        ),
        (Some(s), Some(e)) => format!(
            "{} ago, ends in {}",
            short_duration_ms(now - s),
            short_duration_ms(e - now)
        ),
        (Some(s), None) => format!("{} ago", short_duration_ms(now - s)),
    }
}

/// The whole `sandbox status` page for one lab. Faults show when they fire; what they are and
/// where only if `state` carries their details, i.e. was read for the instructor's view
/// ([`crate::lab::View`]), since finding that out is the learner's job.
pub fn status(state: &State, sym: &Symptoms, now_ms: u64) -> String {
    let mut out = String::new();
    let up = state
        .ready_ms
        .map(|r| short_duration_ms(now_ms.saturating_sub(r)))
        .unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "Lab {} · {} · {} · {} backend · up {}",
        state.id,
        state.scenario_id,
        match (&state.candidate, state.seed) {
            (Some(c), _) => format!("certification of {c}"),
            (None, Some(s)) => format!("seed {s}"),
            (None, None) => "seed sealed".into(),
        },
        state.backend,
        up
    );
    let _ = writeln!(out, "{}", state.scenario_title);
    if state.phase != crate::lab::Phase::Ready {
        let _ = writeln!(out, "phase: {:?} — {}", state.phase, state.step);
    }
    let _ = writeln!(out);
    // Where instances run on cluster nodes, which node is part of the picture.
    let nodes = state.instances.iter().any(|i| i.node.is_some());
    let mut headers = vec!["INSTANCE", "PROGRAM", "ADDRESS"];
    if nodes {
        headers.push("NODE");
    }
    headers.extend(["PORTS", "PID", "RESTARTS", "STATE"]);
    let rows = state.instances.iter().map(|i| {
        let mut row = vec![i.name.clone(), i.program.clone(), i.ip.clone()];
        if nodes {
            row.push(i.node.clone().unwrap_or_else(|| "-".into()));
        }
        row.extend([
            i.ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            i.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            i.restarts.to_string(),
            i.status.clone(),
        ]);
        row
    });
    let _ = writeln!(out, "{}", grid(&headers, rows));
    if !state.faults.is_empty() {
        let _ = writeln!(out);
        let rows = state.faults.iter().map(|f| {
            let d = f.detail.as_ref();
            FaultRow {
                id: f.name(),
                what: d.map_or_else(
                    || "(hidden: finding it is the exercise)".into(),
                    |d| d.description.clone(),
                ),
                when: when(f.start_ms, f.end_ms, now_ms),
                status: match (f.status, d) {
                    (FaultStatus::Failed, Some(FaultDetail { error: Some(e), .. })) => {
                        format!("failed: {e}")
                    }
                    (
                        FaultStatus::Active,
                        Some(FaultDetail {
                            packets: Some(p),
                            kind,
                            ..
                        }),
                    ) => {
                        let unit = if kind == "dns" { "lookup" } else { "packet" };
                        format!("active ({})", count(*p as usize, unit))
                    }
                    (s, _) => format!("{s:?}").to_lowercase(),
                },
            }
        });
        let _ = writeln!(out, "{}", table(rows));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Symptoms: {}", state.workload);
    let mut rows = Vec::new();
    if let Some(w) = &sym.recent {
        rows.push(load_row(&format!("last {RECENT_SECONDS}s"), w));
    }
    if let Some(w) = &sym.baseline {
        rows.push(load_row("before faults", w));
    }
    if rows.is_empty() {
        let _ = writeln!(out, "  no load measured yet");
    } else {
        let _ = writeln!(out, "{}", table(rows));
    }
    if !sym.p99_trend.is_empty() {
        let peak = sym.p99_trend.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "  p99, last {}s:    {}  (peak {})",
            sym.p99_trend.len(),
            symptoms::sparkline(&sym.p99_trend),
            latency(peak)
        );
        let errs: f64 = sym.error_trend.iter().sum();
        let _ = writeln!(
            out,
            "  errors, last {}s: {}  ({} in all)",
            sym.error_trend.len(),
            symptoms::sparkline(&sym.error_trend),
            errs
        );
    }
    out
}

#[derive(Tabled)]
struct LabRow {
    #[tabled(rename = "LAB")]
    id: String,
    #[tabled(rename = "SCENARIO")]
    scenario: String,
    #[tabled(rename = "SEED")]
    seed: String,
    #[tabled(rename = "PHASE")]
    phase: String,
    #[tabled(rename = "UP")]
    up: String,
}

/// One line per lab, when several run.
pub fn lab_list(labs: &[State], now_ms: u64) -> String {
    table(labs.iter().map(|s| {
        LabRow {
            id: s.id.to_string(),
            scenario: s.scenario_id.clone(),
            seed: s
                .seed
                .map(|x| x.to_string())
                .unwrap_or_else(|| "sealed".into()),
            phase: format!("{:?}", s.phase).to_lowercase(),
            up: s
                .ready_ms
                .map(|r| short_duration_ms(now_ms.saturating_sub(r)))
                .unwrap_or_else(|| "-".into()),
        }
    }))
}

#[derive(Tabled)]
struct CheckRow {
    #[tabled(rename = "CHECK")]
    name: String,
    #[tabled(rename = "")]
    mark: String,
    #[tabled(rename = "DETAIL")]
    detail: String,
    #[tabled(rename = "FIX")]
    fix: String,
}

pub fn doctor(checks: &[Check]) -> String {
    table(checks.iter().map(|c| CheckRow {
        name: c.name.clone(),
        mark: match c.status {
            Status::Ok => "ok".into(),
            Status::Warn => "warn".into(),
            Status::Fail => "MISSING".into(),
        },
        detail: c.detail.clone(),
        fix: c.fix.clone().unwrap_or_default(),
    }))
}

/// A scenario problem as the file, line and column, the field, and the message, followed by
/// the quoted line with the spot underlined.
pub fn diagnostic(name: &str, text: &str, d: &Diagnostic, color: bool) -> String {
    use miette::{
        GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report,
    };
    let head = format!("{name}:{d}");
    if text.is_empty() {
        return format!("error: {head}\n");
    }
    let offset = if d.offset == 0 && d.line > 1 {
        line_offset(text, d.line, d.column)
    } else {
        d.offset
    };
    let diag = MietteDiagnostic::new(String::new()).with_label(LabeledSpan::at(
        offset..offset + d.len.max(1),
        d.message.clone(),
    ));
    let report = Report::new(diag).with_source_code(NamedSource::new(name, text.to_string()));
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    if GraphicalReportHandler::new_themed(theme)
        .render_report(&mut out, report.as_ref())
        .is_err()
    {
        return format!("error: {head}\n");
    }
    // The handler's first line repeats the (empty) message; the head line above says it all.
    let snippet: Vec<&str> = out.lines().skip_while(|l| !l.contains('╭')).collect();
    format!("error: {head}\n{}\n", snippet.join("\n"))
}

fn line_offset(text: &str, line: u32, column: u32) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    (start + column.saturating_sub(1) as usize).min(text.len())
}

/// A findings file to fill in: the lab's services, the root causes, and every field with a
/// comment.
pub fn findings_template(lab: Option<(&str, &str)>, services: &[String]) -> String {
    let mut out = String::new();
    match lab {
        Some((id, scenario)) => {
            let _ = writeln!(
                out,
                "# Findings for lab {id} ({scenario}). One entry per root cause you found;"
            );
        }
        None => {
            let _ = writeln!(out, "# Findings. One entry per root cause you found;");
        }
    }
    let _ = writeln!(
        out,
        "# hand it in with `sandbox submit findings.yaml`.\n#\n# root_cause, one of:"
    );
    for r in grader::taxonomy::ROOT_CAUSES {
        let _ = writeln!(out, "#   {:<17} {}", r.id, r.signs);
    }
    out.push_str("#\n# where: a service, or a link between two services (from → to), and if you know them a\n");
    out.push_str(
        "# direction (service: ingress | egress; link: forward | reverse | both) and a port.\n",
    );
    if !services.is_empty() {
        let _ = writeln!(out, "#   services in this lab: {}", services.join(", "));
    }
    out.push_str(
        "# magnitude: how big it is, e.g. `percent: 10`, `delay: 100ms`, `rate: 1mbit`.\n",
    );
    out.push_str(
        "# evidence: what you saw that shows it: which probe, on what, and what it said.\n",
    );
    out.push_str(
        "# attachments: files the probes wrote into the lab directory (a flame graph), if any.\n",
    );
    out.push_str("findings:\n  - root_cause: \"\"\n    where:\n      service: \"\"\n");
    out.push_str(
        "      # link: {from: \"\", to: \"\"}\n      # direction: both\n      # port: 8080\n",
    );
    out.push_str("    magnitude: {}\n    evidence: \"\"\n    notes: \"\"\n");
    out
}

fn status_word(s: grader::score::Status) -> &'static str {
    match s {
        grader::score::Status::Pass => "pass",
        grader::score::Status::Partial => "partial",
        grader::score::Status::Fail => "fail",
    }
}

/// A graded submission as a person reads it.
pub fn grade(title: &str, g: &grader::score::Grade) -> String {
    let mut out = format!("Grade for {title}");
    if let Some(t) = g.time_taken_s {
        let _ = write!(
            out,
            ", {} after the lab was ready",
            short_duration_ms((t * 1000.0) as u64)
        );
    }
    out.push_str("\n\n");
    out.push_str(&grid(
        &["FINDING", "CHECK", "RESULT", "POINTS", "WHY"],
        g.items.iter().map(|i| {
            vec![
                i.finding.clone(),
                i.check.clone(),
                status_word(i.status).into(),
                format!("{}/{}", i.points, i.max),
                i.why.clone(),
            ]
        }),
    ));
    let _ = write!(
        out,
        "\n\nEarned {}/{}, hints −{}, extra findings −{} → {}/{} ({:.0}%). Pass mark {}: {}.\n",
        g.earned,
        g.max,
        g.hint_cost,
        g.penalty,
        g.score,
        g.max,
        g.percent,
        g.pass_mark,
        match (g.passed, g.late) {
            (true, _) => "PASSED",
            (false, true) => "NOT PASSED (submitted after the time limit)",
            (false, false) => "NOT PASSED",
        }
    );
    out
}

/// JUnit XML: one test case per check, for LMS and CI tools.
pub fn junit(title: &str, g: &grader::score::Grade) -> String {
    use quick_xml::Writer;
    use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let failures = g
        .items
        .iter()
        .filter(|i| i.status != grader::score::Status::Pass)
        .count();
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("name", format!("sandbox {title}").as_str()));
    suite.push_attribute(("tests", g.items.len().to_string().as_str()));
    suite.push_attribute(("failures", failures.to_string().as_str()));
    suite.push_attribute((
        "time",
        format!("{:.1}", g.time_taken_s.unwrap_or(0.0)).as_str(),
    ));
    let _ = w.write_event(Event::Start(suite));
    let _ = w.write_event(Event::Start(BytesStart::new("properties")));
    for (k, v) in [
        ("score", g.score.to_string()),
        ("max", g.max.to_string()),
        ("percent", format!("{:.1}", g.percent)),
        ("passed", g.passed.to_string()),
        ("hint_cost", g.hint_cost.to_string()),
    ] {
        let mut p = BytesStart::new("property");
        p.push_attribute(("name", k));
        p.push_attribute(("value", v.as_str()));
        let _ = w.write_event(Event::Empty(p));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("properties")));
    for i in &g.items {
        let mut tc = BytesStart::new("testcase");
        tc.push_attribute(("classname", i.finding.as_str()));
        tc.push_attribute(("name", i.check.as_str()));
        if i.status == grader::score::Status::Pass {
            let _ = w.write_event(Event::Empty(tc));
            continue;
        }
        let _ = w.write_event(Event::Start(tc));
        let mut f = BytesStart::new("failure");
        f.push_attribute((
            "message",
            format!("{} ({}/{} points)", i.why, i.points, i.max).as_str(),
        ));
        f.push_attribute(("type", status_word(i.status)));
        let _ = w.write_event(Event::Empty(f));
        let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("testsuite")));
    let mut s = String::from_utf8(w.into_inner()).unwrap_or_default();
    s.push('\n');
    s
}

/// Many graded certification results, one line each.
pub fn grade_batch(results: &[&crate::cert::SignedResult]) -> String {
    grid(
        &[
            "CANDIDATE",
            "SCENARIO",
            "LAB",
            "SCORE",
            "PERCENT",
            "RESULT",
            "HINTS",
            "TIME",
        ],
        results.iter().map(|r| {
            let g = &r.grade;
            vec![
                r.candidate.clone(),
                r.scenario_id.clone(),
                r.lab_id.clone(),
                format!("{}/{}", g.score, g.max),
                format!("{:.0}%", g.percent),
                (if g.passed {
                    "passed"
                } else if g.late {
                    "late"
                } else {
                    "not passed"
                })
                .into(),
                format!("−{}", g.hint_cost),
                g.time_taken_s
                    .map(|t| short_duration_ms((t * 1000.0) as u64))
                    .unwrap_or_default(),
            ]
        }),
    )
}

/// The same as CSV, for spreadsheets and LMS imports.
pub fn grade_csv(results: &[&crate::cert::SignedResult]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "candidate",
        "scenario",
        "lab",
        "score",
        "max",
        "percent",
        "passed",
        "late",
        "hint_cost",
        "penalty",
        "time_s",
        "bundle_sha256",
    ]);
    for r in results {
        let g = &r.grade;
        let _ = w.write_record(
            [
                r.candidate.clone(),
                r.scenario_id.clone(),
                r.lab_id.clone(),
                g.score.to_string(),
                g.max.to_string(),
                format!("{:.1}", g.percent),
                g.passed.to_string(),
                g.late.to_string(),
                g.hint_cost.to_string(),
                g.penalty.to_string(),
                g.time_taken_s
                    .map(|t| format!("{t:.0}"))
                    .unwrap_or_default(),
                r.bundle_sha256.clone(),
            ]
            .map(|c| csv_cell(&c)),
        );
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A cell a spreadsheet will not run as a formula: one starting with `=`, `+`, `-`, `@`, a
/// tab or a carriage return gets a leading `'`.
pub fn csv_cell(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{FaultState, InstanceState, LabId, Phase, View};

    fn state() -> State {
        State {
            id: LabId::parse("k3f9q").unwrap(),
            scenario_id: "packet-loss".into(),
            scenario_title: "Checkout pages hang".into(),
            source: "bundled:packet-loss".into(),
            seed: Some(42),
            candidate: None,
            backend: crate::backend::BackendKind::Netns,
            phase: Phase::Ready,
            step: "ready".into(),
            error: None,
            created_ms: 1_000,
            ready_ms: Some(10_000),
            supervisor_pid: Some(100),
            slot: 0,
            book: None,
            wire: None,
            instances: vec![InstanceState {
                name: "api-0".into(),
                service: "api".into(),
                program: "api".into(),
                ip: "10.66.0.10".into(),
                ports: vec![8080, 9090],
                pid: Some(1234),
                netns: None,
                netns_inode: None,
                node: None,
                restarts: 0,
                calls: vec![],
                status: "running".into(),
            }],
            faults: vec![FaultState {
                number: 1,
                start_ms: Some(40_000),
                end_ms: None,
                status: FaultStatus::Active,
                detail: Some(FaultDetail {
                    id: "lossy".into(),
                    kind: "loss".into(),
                    description: "12% packet loss on backend → store".into(),
                    error: None,
                    packets: Some(310),
                    target: None,
                }),
            }],
            workload: "loadgen → http://gateway:8080/ at 200 req/s, 32 in flight at most".into(),
            briefing_title: "t".into(),
            briefing: "b".into(),
            time_limit_s: None,
        }
    }

    fn second(ts: u64, p99: f64, errors: u64) -> Second {
        Second {
            ts_ms: ts,
            sent: 200,
            ok: 200 - errors,
            errors,
            skipped: 0,
            err_kinds: crate::symptoms::ErrKinds {
                timeout: errors,
                ..Default::default()
            },
            p50_ms: 1.8,
            p90_ms: 2.6,
            p99_ms: p99,
            max_ms: p99 * 1.5,
            inflight: 1,
        }
    }

    #[test]
    fn a_course_shows_each_module_under_its_rules() {
        let text = "apiVersion: sandbox/v1
kind: Course
metadata: {id: day, title: A day of TCP, summary: s}
mode: certification
modules:
  - {id: one, scenario: packet-loss, pass_mark: 80}
  - {id: two, scenario: syn-drop, time_limit: 1h, hints: false}
  - {id: three, scenario: two-faults, unlock: instructor, opens_at: 2026-12-07T14:00:00+01:00}
  - {id: four, scenario: dns-timeouts}
";
        let source = crate::scenario::Source {
            name: "day.yaml".into(),
            text: text.into(),
        };
        let c = crate::course::load(source).unwrap();
        insta::assert_snapshot!(course(&c));
    }

    #[test]
    fn a_class_table_shows_each_learners_modules() {
        use crate::class::{Cell, ModuleProgress, Row};
        let cell = |module: &str, open: bool, progress: ModuleProgress| Cell {
            module: module.into(),
            open,
            progress,
        };
        let rows = vec![
            Row {
                learner: "ann".into(),
                revoked: false,
                modules: vec![
                    cell(
                        "lossy-hop",
                        true,
                        ModuleProgress {
                            score: Some(90),
                            max: Some(100),
                            passed: Some(true),
                            submissions: 1,
                            ..Default::default()
                        },
                    ),
                    cell(
                        "slow-dependency",
                        true,
                        ModuleProgress {
                            lab: Some("k3f9q".into()),
                            starts: 1,
                            ..Default::default()
                        },
                    ),
                ],
            },
            Row {
                learner: "bob".into(),
                revoked: true,
                modules: vec![
                    cell(
                        "lossy-hop",
                        true,
                        ModuleProgress {
                            score: Some(40),
                            max: Some(100),
                            passed: Some(false),
                            ..Default::default()
                        },
                    ),
                    cell("slow-dependency", false, ModuleProgress::default()),
                ],
            },
        ];
        insta::assert_snapshot!(class_table(&rows));
    }

    #[test]
    fn status_page_shows_fault_and_symptom() {
        let s = state();
        let secs: Vec<Second> = (10..60)
            .map(|t| {
                second(
                    t * 1000,
                    if t < 40 { 4.0 } else { 420.0 },
                    if t < 40 { 0 } else { 2 },
                )
            })
            .collect();
        let sym = symptoms_of(&s, &secs, 60_000);
        insta::assert_snapshot!(status(&s, &sym, 60_000));
        let hidden = status(&s.seen_by(View::Learner), &sym, 60_000);
        assert!(
            !hidden.contains("packet loss") && !hidden.contains("lossy") && !hidden.contains("310"),
            "{hidden}"
        );
        assert!(
            hidden.contains("#1") && hidden.contains("20.0s ago"),
            "{hidden}"
        );
    }

    #[test]
    fn a_dns_fault_counts_lookups_not_packets() {
        let mut s = state();
        let d = s.faults[0].detail.as_mut().unwrap();
        d.kind = "dns".into();
        d.packets = Some(1);
        let sym = symptoms_of(&s, &[], 60_000);
        let page = status(&s, &sym, 60_000);
        assert!(page.contains("active (1 lookup)"), "{page}");
    }

    #[test]
    fn grids_line_up_plain_strings() {
        let g = grid(
            &["FLOW", "SEGS"],
            vec![
                vec!["a → b:80".into(), "12".into()],
                vec!["c → d:7070".into(), "3".into()],
            ],
        );
        assert_eq!(g, " FLOW         SEGS\n a → b:80     12\n c → d:7070   3");
    }

    #[test]
    fn diagnostics_quote_the_line() {
        let text = "apiVersion: sandbox/v1\nkind: Scenario\nfaults:\n  - target: {service: apy}\n";
        let d = Diagnostic {
            line: 4,
            column: 24,
            offset: 0,
            len: 3,
            path: "faults[0].target.service".into(),
            message: "unknown service `apy`; expected one of: api".into(),
        };
        insta::assert_snapshot!(diagnostic("x.yaml", text, &d, false));
    }
}
