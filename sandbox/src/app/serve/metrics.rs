//! `/metrics`: the class in the Prometheus text format (version 0.0.4), for the instructor's
//! Prometheus to scrape with the instructor token (`authorization.credentials` in its scrape
//! config). Per learner and module: starts, hints, submissions, score; per running lab: the
//! symptom figures `status` shows.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, Server};
use crate::class;
use crate::lab::now_ms;

/// A label value as the text format writes it: `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect::<Vec<_>>()
            .join(",");
        self.samples.push((labels, value));
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, v) in &self.samples {
            let _ = writeln!(out, "{}{{{labels}}} {v}", self.name);
        }
    }
}

pub async fn metrics(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let class = super::api_instructor(&server, &headers)?;
    let s = server.clone();
    let text = tokio::task::spawn_blocking(move || render(&s, &class))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

fn render(server: &Server, class: &class::Class) -> String {
    let mut learners = Family::new(
        "sandbox_class_learners",
        "gauge",
        "Learners on the roster, revoked ones included.",
    );
    learners.add(&[("class", &class.name)], class.learners.len() as f64);
    let mut starts = Family::new(
        "sandbox_module_lab_starts_total",
        "counter",
        "Labs a learner started for a module.",
    );
    let mut hints = Family::new(
        "sandbox_module_hints_total",
        "counter",
        "Hints a learner was shown in a module.",
    );
    let mut submissions = Family::new(
        "sandbox_module_submissions_total",
        "counter",
        "Findings a learner submitted for a module.",
    );
    let mut score = Family::new(
        "sandbox_module_score_ratio",
        "gauge",
        "A learner's best score in a module, as a share of the maximum.",
    );
    let mut passed = Family::new(
        "sandbox_module_passed",
        "gauge",
        "1 once a learner passed a module.",
    );
    let mut rate = Family::new(
        "sandbox_lab_requests_per_second",
        "gauge",
        "Completed requests per second in the last seconds of a running lab.",
    );
    let mut errors = Family::new(
        "sandbox_lab_errors_ratio",
        "gauge",
        "Share of completed requests that failed, in the last seconds of a running lab.",
    );
    let mut p99 = Family::new(
        "sandbox_lab_latency_p99_seconds",
        "gauge",
        "99th percentile latency in the last seconds of a running lab.",
    );
    let now = now_ms();
    for row in class::table(&server.dir, class, &server.course) {
        for cell in &row.modules {
            let l = [
                ("class", class.name.as_str()),
                ("learner", row.learner.as_str()),
                ("module", cell.module.as_str()),
            ];
            let p = &cell.progress;
            starts.add(&l, f64::from(p.starts));
            hints.add(&l, f64::from(p.hints));
            submissions.add(&l, f64::from(p.submissions));
            if let (Some(s), Some(m)) = (p.score, p.max)
                && m > 0
            {
                score.add(&l, s as f64 / m as f64);
            }
            passed.add(&l, if p.passed == Some(true) { 1.0 } else { 0.0 });
            let Some(st) = super::api_running(p.lab.as_deref()) else {
                continue;
            };
            let secs = crate::symptoms::read(&crate::lab::LabDir::new(&st.id).load_stats());
            let Some(w) = crate::report::symptoms_of(&st, &secs, now).recent else {
                continue;
            };
            let l = [l[0], l[1], l[2], ("lab", st.id.as_str())];
            rate.add(&l, w.rate);
            errors.add(&l, w.error_pct / 100.0);
            p99.add(&l, w.p99_ms / 1000.0);
        }
    }
    let mut out = String::new();
    for f in [
        learners,
        starts,
        hints,
        submissions,
        score,
        passed,
        rate,
        errors,
        p99,
    ] {
        f.write(&mut out);
    }
    out
}
