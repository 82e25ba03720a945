//! Checks that need the whole course (`check`), and those that need the scenarios its modules
//! name (`cross`): pass marks, time limits, unlock rules, backends a class can run on, and
//! what certification needs of a scenario.

use std::collections::BTreeMap;

use super::{Course, MAX_MODULES, Mode, Resolved, Unlock};
use crate::scenario::{self, BackendKind, Diagnostic};
use crate::yaml::Pos;

/// Every problem of the course file on its own, in file order.
pub fn check(c: &Course) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut err = |pos: Pos, path: String, msg: String| out.push(Diagnostic::at(pos, &path, msg));
    if *c.api_version != scenario::API_VERSION {
        err(
            c.api_version.pos,
            "apiVersion".into(),
            format!(
                "expected `{}`, found `{}`",
                scenario::API_VERSION,
                *c.api_version
            ),
        );
    }
    if *c.kind != super::KIND {
        err(
            c.kind.pos,
            "kind".into(),
            format!("expected `{}`, found `{}`", super::KIND, *c.kind),
        );
    }
    if !scenario::is_name(&c.metadata.id, 40) {
        err(
            c.metadata.id.pos,
            "metadata.id".into(),
            "expected lower-case letters, digits and dashes (at most 40), starting with a letter"
                .into(),
        );
    }
    if c.modules.is_empty() {
        err(
            c.modules.pos,
            "modules".into(),
            "expected at least one module".into(),
        );
    }
    if let Some(m) = c.modules.get(MAX_MODULES) {
        err(
            m.id.pos,
            format!("modules[{MAX_MODULES}]"),
            format!("a course has at most {MAX_MODULES} modules"),
        );
    }
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in c.modules.iter().enumerate() {
        let path = |field: &str| format!("modules[{i}].{field}");
        if !scenario::is_name(&m.id, 40) {
            err(
                m.id.pos,
                path("id"),
                "expected lower-case letters, digits and dashes (at most 40), starting with a letter"
                    .into(),
            );
        } else if let Some(&first) = ids.get(m.id.as_str()) {
            err(
                m.id.pos,
                path("id"),
                format!(
                    "module id `{}` is already used by modules[{first}]; module ids are unique in a course",
                    *m.id
                ),
            );
        } else {
            ids.insert(m.id.as_str(), i);
        }
        if let Some(p) = &m.pass_mark
            && **p > 100
        {
            err(
                p.pos,
                path("pass_mark"),
                "expected points out of 100, from 0 to 100".into(),
            );
        }
        if let Some(t) = &m.time_limit
            && t.0.is_zero()
        {
            err(
                t.pos,
                path("time_limit"),
                "expected a time limit above 0; leave it out for the scenario's own".into(),
            );
        }
        if let Some(at) = &m.opens_at
            && *m.unlock != Unlock::Instructor
        {
            err(
                at.pos,
                path("opens_at"),
                "`opens_at` needs `unlock: instructor` (an `after-previous` module opens when the previous one is passed)"
                    .into(),
            );
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Problems that need the modules' scenarios (`modules`: each module that resolved, with its
/// index), each located at the line that names the scenario.
pub fn cross(c: &Course, modules: &[(usize, Resolved)]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut err = |i: usize, r: &Resolved, msg: String| {
        out.push(Diagnostic::at(
            r.module.scenario.pos,
            &format!("modules[{i}].scenario"),
            msg,
        ))
    };
    // A class runs on one backend: the modules must share one.
    let mut shared: Vec<BackendKind> = BackendKind::ALL.to_vec();
    for (i, r) in modules {
        let runs_on = &r.scenario.metadata.backends;
        let left: Vec<BackendKind> = shared
            .iter()
            .copied()
            .filter(|b| runs_on.contains(b))
            .collect();
        if left.is_empty() {
            err(
                *i,
                r,
                format!(
                    "`{}` runs on {} only, and the modules before it share no such backend (they run on {}); a class runs every module on one backend",
                    r.scenario.id(),
                    names(runs_on),
                    names(&shared)
                ),
            );
        } else {
            shared = left;
        }
    }
    if *c.mode == Mode::Certification {
        for (i, r) in modules {
            let id = r.scenario.id();
            if r.scenario.expected_findings.is_empty() {
                err(
                    *i,
                    r,
                    format!(
                        "`{id}` has no expected findings, so a certification result cannot be graded; use a scenario with `expected_findings`"
                    ),
                );
            }
            if r.time_limit().is_none() {
                err(
                    *i,
                    r,
                    format!(
                        "a certification module needs a time limit, and `{id}` has no `metadata.time_limit`; set the module's `time_limit`"
                    ),
                );
            }
            if r.module.hints
                && let Some(n) = r.scenario.hints.iter().position(|h| *h.cost == 0)
            {
                err(
                    *i,
                    r,
                    format!(
                        "hint {} of `{id}` costs no points, so certification could not tell help from skill; set `hints: false` for this module, or give the hint a cost",
                        n + 1
                    ),
                );
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn names(backends: &[BackendKind]) -> String {
    backends
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}
