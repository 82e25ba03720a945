//! Checks that need the whole document: names that must exist or be unique, which parameters
//! each fault type takes, the call graph. Values that depend on drawn parameters are checked
//! when a plan is built for every corner of the parameter space (see `plan::check_draws`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{
    BackendKind, CallNames, Direction, DnsAnswer, FaultKind, NameService, ParamValue, Program,
    Scenario, Service, Target,
};
use crate::yaml::Pos;

/// One problem in a scenario, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub line: u32,
    pub column: u32,
    pub offset: usize,
    pub len: usize,
    /// Field path such as `faults[0].target.service`.
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn at(pos: Pos, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            line: pos.line.max(1),
            column: pos.column.max(1),
            offset: pos.offset,
            len: pos.len,
            path: path.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

pub(crate) const RESERVED_NAMES: [&str; 2] = [super::LOADGEN, "lab"];
/// Replicas of one service; a lab as a whole holds at most
/// [`crate::topology::Subnet::MAX_INSTANCES`] instances, the load generator included.
pub(crate) const MAX_REPLICAS: u32 = 1000;
/// Grading pairs every expected finding with the learner's; this keeps it to milliseconds.
const MAX_EXPECTED_FINDINGS: usize = 16;

/// `^[a-z][a-z0-9-]*$` within `max` characters, not ending in a dash.
pub(crate) fn is_name(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= max
        && !s.ends_with('-')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

struct Checker {
    out: Vec<Diagnostic>,
}

impl Checker {
    fn err(&mut self, pos: Pos, path: impl AsRef<str>, msg: impl Into<String>) {
        self.out.push(Diagnostic::at(pos, path.as_ref(), msg));
    }
}

/// Every structural problem in the scenario, in file order.
pub fn check(s: &Scenario) -> Vec<Diagnostic> {
    let mut c = Checker { out: Vec::new() };
    if *s.api_version != super::API_VERSION {
        c.err(
            s.api_version.pos,
            "apiVersion",
            format!(
                "expected `{}`, found `{}`",
                super::API_VERSION,
                *s.api_version
            ),
        );
    }
    if *s.kind != super::KIND {
        c.err(
            s.kind.pos,
            "kind",
            format!("expected `{}`, found `{}`", super::KIND, *s.kind),
        );
    }
    if !is_name(&s.metadata.id, 40) {
        c.err(
            s.metadata.id.pos,
            "metadata.id",
            "expected lower-case letters, digits and dashes (at most 40), starting with a letter",
        );
    }
    if let Some(layout) = &s.metadata.cluster
        && !super::CLUSTER_LAYOUTS.contains(&layout.as_str())
    {
        c.err(
            layout.pos,
            "metadata.cluster",
            format!(
                "no cluster layout `{}`; expected one of: {}",
                **layout,
                super::CLUSTER_LAYOUTS.join(", ")
            ),
        );
    }
    if let Some(t) = &s.metadata.time_limit
        && t.0.is_zero()
    {
        c.err(
            t.pos,
            "metadata.time_limit",
            "expected a time limit above 0; leave it out for no limit",
        );
    }
    check_params(&mut c, s);
    check_services(&mut c, s);
    check_workload(&mut c, s);
    check_faults(&mut c, s);
    check_nodes(&mut c, s);
    check_call_names(&mut c, s);
    check_grading(&mut c, s);
    if *s.pass_mark > 100 {
        c.err(
            s.pass_mark.pos,
            "pass_mark",
            "expected points out of 100, from 0 to 100",
        );
    }
    if s.extra_finding_penalty > 100 {
        c.err(
            Pos::default(),
            "extra_finding_penalty",
            "expected points from 0 to 100",
        );
    }
    for (i, h) in s.hints.iter().enumerate() {
        if *h.cost > 100 {
            c.err(
                h.cost.pos,
                format!("hints[{i}].cost"),
                "expected points from 0 to 100",
            );
        }
    }
    c.out.sort();
    c.out.dedup();
    c.out
}

fn check_params(c: &mut Checker, s: &Scenario) {
    use super::{MAX_ONE_OF, MAX_PARAM_TEXT, MAX_PARAMS, MAX_RANGE_VALUES};
    if let Some((name, spec)) = s.params.iter().nth(MAX_PARAMS) {
        c.err(
            spec.pos,
            format!("params.{name}"),
            format!("at most {MAX_PARAMS} parameters are allowed"),
        );
    }
    let mut joint = Some(1u64);
    for (name, spec) in &s.params {
        // A spec that cannot be drawn is reported on its own below.
        joint = joint.and_then(|j| j.checked_mul(spec.size().unwrap_or(1)));
        if joint.is_none() {
            c.err(
                spec.pos,
                format!("params.{name}"),
                "the parameters together can draw more combinations than can be counted (2^64); narrow a range or raise its step",
            );
            break;
        }
    }
    for (name, spec) in &s.params {
        let path = format!("params.{name}");
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_lowercase() || ch == '_')
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if !valid_name {
            c.err(spec.pos, &path, "a parameter name is lower-case letters, digits and `_`, starting with a letter or `_`");
        }
        match (&spec.one_of, &spec.range) {
            (Some(_), Some(_)) | (None, None) => c.err(
                spec.pos,
                &path,
                "expected exactly one of `one_of: [...]` or `range: [low, high]`",
            ),
            (Some(list), None) => {
                if list.is_empty() || list.len() > MAX_ONE_OF {
                    c.err(
                        spec.pos,
                        format!("{path}.one_of"),
                        format!("expected 1 to {MAX_ONE_OF} values"),
                    );
                }
                for (k, v) in list.iter().enumerate() {
                    match v {
                        ParamValue::Str(t) if t.chars().count() > MAX_PARAM_TEXT => c.err(
                            spec.pos,
                            format!("{path}.one_of[{k}]"),
                            format!("expected at most {MAX_PARAM_TEXT} characters"),
                        ),
                        ParamValue::Float(x) if !x.is_finite() => c.err(
                            spec.pos,
                            format!("{path}.one_of[{k}]"),
                            "expected a finite number",
                        ),
                        _ => {}
                    }
                }
                if spec.step.is_some() {
                    c.err(
                        spec.pos,
                        format!("{path}.step"),
                        "`step` goes with `range`, not `one_of`",
                    );
                }
            }
            (None, Some([lo, hi])) => {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    c.err(
                        spec.pos,
                        format!("{path}.range"),
                        "expected `[low, high]` with low ≤ high",
                    );
                }
                if spec.step.is_some_and(|st| !(st.is_finite() && st > 0.0)) {
                    c.err(
                        spec.pos,
                        format!("{path}.step"),
                        "expected a step greater than 0",
                    );
                } else if lo.is_finite()
                    && hi.is_finite()
                    && lo <= hi
                    && spec.size().is_none_or(|n| n > MAX_RANGE_VALUES)
                {
                    c.err(
                        spec.pos,
                        format!("{path}.range"),
                        format!("a range may hold at most {MAX_RANGE_VALUES} steps; narrow it or raise `step`"),
                    );
                }
            }
        }
    }
}

fn check_services(c: &mut Checker, s: &Scenario) {
    let services = &s.topology.services;
    if services.is_empty() {
        c.err(
            Pos::default(),
            "topology.services",
            "expected at least one service",
        );
    }
    let total: u64 = services.iter().map(|s| u64::from(*s.replicas)).sum();
    let room = crate::topology::Subnet::MAX_INSTANCES as u64 - 1;
    if total > room
        && let Some(last) = services.last()
    {
        c.err(
            last.replicas.pos,
            format!("topology.services[{}].replicas", services.len() - 1),
            format!("the services have {total} replicas in all; a lab holds at most {room} besides the load generator"),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, svc) in services.iter().enumerate() {
        let path = format!("topology.services[{i}]");
        if !is_name(&svc.name, 20) {
            c.err(svc.name.pos, format!("{path}.name"), "expected lower-case letters, digits and dashes (at most 20), starting with a letter");
        } else if RESERVED_NAMES.contains(&svc.name.as_str()) {
            c.err(
                svc.name.pos,
                format!("{path}.name"),
                format!("`{}` is reserved; choose another name", *svc.name),
            );
        } else if !seen.insert(svc.name.as_str()) {
            c.err(
                svc.name.pos,
                format!("{path}.name"),
                format!("a service named `{}` is already defined", *svc.name),
            );
        }
        if *svc.replicas == 0 || *svc.replicas > MAX_REPLICAS {
            c.err(
                svc.replicas.pos,
                format!("{path}.replicas"),
                format!("expected 1 to {MAX_REPLICAS} replicas"),
            );
        }
        if let Some(port) = &svc.port
            && (**port == 0 || **port == super::ADMIN_PORT)
        {
            c.err(
                port.pos,
                format!("{path}.port"),
                format!(
                    "expected a port from 1 to 65535 other than {} (the control-plane port)",
                    super::ADMIN_PORT
                ),
            );
        }
        for key in svc.env.keys() {
            if key.is_empty() || key.contains(['=', '\0']) {
                c.err(
                    svc.name.pos,
                    format!("{path}.env.{key}"),
                    "an environment variable's name is not empty and holds no `=` or NUL",
                );
            }
        }
        for (k, v) in &svc.env {
            if v.contains('\0') {
                c.err(
                    svc.name.pos,
                    format!("{path}.env.{k}"),
                    "a value may not hold NUL",
                );
            }
        }
        for (j, a) in svc.args.iter().enumerate() {
            if a.contains('\0') {
                c.err(
                    svc.name.pos,
                    format!("{path}.args[{j}]"),
                    "an argument may not hold NUL",
                );
            }
        }
        check_calls(c, s, svc, &path);
    }
    if let Some((pos, cycle)) = find_cycle(services) {
        c.err(
            pos,
            "topology.services",
            format!("calls form a loop: {cycle}"),
        );
    }
}

fn check_calls(c: &mut Checker, s: &Scenario, svc: &Service, path: &str) {
    let program = *svc.program;
    let mut stores = 0;
    for (j, call) in svc.calls.iter().enumerate() {
        let cpath = format!("{path}.calls[{j}]");
        let Some(callee) = s.service(call) else {
            c.err(
                call.pos,
                cpath,
                format!(
                    "unknown service `{}`; expected one of: {}",
                    **call,
                    names(s)
                ),
            );
            continue;
        };
        if *callee.name == *svc.name {
            c.err(call.pos, cpath, "a service cannot call itself");
            continue;
        }
        let callee_program = *callee.program;
        match program {
            Program::Store => {
                c.err(
                    call.pos,
                    cpath,
                    "the `store` program calls no one; remove `calls`",
                );
            }
            Program::Gateway | Program::Api if callee_program == Program::Store => {
                c.err(call.pos, cpath, format!("`{program}` speaks HTTP to its upstreams; `{}` runs `store` (raw TCP). Put a `backend` in between", **call));
            }
            Program::Backend if callee_program != Program::Store => {
                c.err(
                    call.pos,
                    cpath,
                    format!(
                        "`backend` calls a `store`; `{}` runs `{callee_program}`",
                        **call
                    ),
                );
            }
            _ => {}
        }
        if callee_program == Program::Store {
            stores += 1;
        }
    }
    match program {
        Program::Gateway if svc.calls.len() != 1 => {
            c.err(
                svc.name.pos,
                format!("{path}.calls"),
                "a `gateway` forwards to exactly one upstream; expected one entry in `calls`",
            );
        }
        Program::Api if svc.calls.is_empty() => {
            c.err(
                svc.name.pos,
                format!("{path}.calls"),
                "an `api` fans out to its upstreams; expected at least one entry in `calls`",
            );
        }
        Program::Backend if stores != 1 || svc.calls.len() != 1 => {
            c.err(
                svc.name.pos,
                format!("{path}.calls"),
                "a `backend` reads from exactly one `store`; expected one entry in `calls`",
            );
        }
        _ => {}
    }
}

fn find_cycle(services: &[Service]) -> Option<(Pos, String)> {
    let graph: BTreeMap<&str, Vec<&str>> = services
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.calls.iter().map(|c| c.as_str()).collect(),
            )
        })
        .collect();
    fn visit<'a>(
        n: &'a str,
        g: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = stack.iter().position(|s| *s == n) {
            let mut cyc = stack[i..].to_vec();
            cyc.push(n);
            return Some(cyc);
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for next in g.get(n).into_iter().flatten() {
            if g.contains_key(next)
                && let Some(c) = visit(next, g, stack, done)
            {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for s in services {
        if let Some(cycle) = visit(s.name.as_str(), &graph, &mut Vec::new(), &mut done) {
            return Some((s.name.pos, cycle.join(" → ")));
        }
    }
    None
}

fn check_workload(c: &mut Checker, s: &Scenario) {
    let w = &s.workload;
    match s.service(&w.target) {
        None => c.err(
            w.target.pos,
            "workload.target",
            format!(
                "unknown service `{}`; expected one of: {}",
                *w.target,
                names(s)
            ),
        ),
        Some(svc) if !svc.program.speaks_http() => c.err(
            w.target.pos,
            "workload.target",
            format!(
                "the load generator speaks HTTP; `{}` runs `store`",
                *w.target
            ),
        ),
        Some(_) => {}
    }
    if !w.path.starts_with('/') || w.path.chars().any(|ch| ch.is_control() || ch == ' ') {
        c.err(
            w.target.pos,
            "workload.path",
            "expected a path starting with `/`, without spaces or control characters (CR, LF)",
        );
    }
    if *w.rate == 0 || *w.rate > 10_000 {
        c.err(
            w.rate.pos,
            "workload.rate",
            "expected 1 to 10000 requests per second",
        );
    }
    if *w.concurrency == 0 || *w.concurrency > 4096 {
        c.err(
            w.concurrency.pos,
            "workload.concurrency",
            "expected 1 to 4096 requests in flight",
        );
    }
    let t = w.timeout.0;
    if t.is_zero() || t > std::time::Duration::from_secs(60) {
        c.err(
            w.timeout.pos,
            "workload.timeout",
            "expected a timeout above 0 and at most 60s",
        );
    }
}

/// Which parameters a fault type takes, and which of those it needs.
pub(crate) fn params_of(kind: FaultKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        FaultKind::Loss | FaultKind::Corrupt => (&["percent"], &["percent"]),
        FaultKind::Delay => (&["delay", "jitter"], &["delay"]),
        FaultKind::Reset | FaultKind::SynDrop | FaultKind::Hang => (&["percent"], &[]),
        FaultKind::Blackhole
        | FaultKind::Partition
        | FaultKind::Leak
        | FaultKind::NodePartition
        | FaultKind::NoEndpoints
        | FaultKind::Unready => (&[], &[]),
        FaultKind::Bandwidth => (&["rate"], &["rate"]),
        FaultKind::Slow => (&["delay", "percent"], &["delay"]),
        FaultKind::CpuBurn => (&["goroutines"], &[]),
        FaultKind::CpuStarve => (&["hogs"], &[]),
        FaultKind::Dns => (&["answer", "delay", "percent"], &[]),
    }
}

fn check_faults(c: &mut Checker, s: &Scenario) {
    let mut ids = BTreeSet::new();
    for (i, f) in s.faults.iter().enumerate() {
        let path = format!("faults[{i}]");
        if !is_name(&f.id, 16) {
            c.err(f.id.pos, format!("{path}.id"), "expected lower-case letters, digits and dashes (at most 16), starting with a letter");
        } else if !ids.insert(f.id.as_str()) {
            c.err(
                f.id.pos,
                format!("{path}.id"),
                format!("a fault with id `{}` is already defined", *f.id),
            );
        }
        let kind = *f.kind;
        check_target(c, kind, &f.target, &format!("{path}.target"));
        let (allowed, required) = params_of(kind);
        let given: [(&str, Option<Pos>); 7] = [
            ("percent", f.params.percent.as_ref().map(|p| p.pos)),
            ("delay", f.params.delay.as_ref().map(|p| p.pos)),
            ("jitter", f.params.jitter.as_ref().map(|p| p.pos)),
            ("rate", f.params.rate.as_ref().map(|p| p.pos)),
            ("goroutines", f.params.goroutines.as_ref().map(|p| p.pos)),
            ("hogs", f.params.hogs.as_ref().map(|p| p.pos)),
            ("answer", f.params.answer.as_ref().map(|p| p.pos)),
        ];
        let takes = if allowed.is_empty() {
            "no parameters".to_string()
        } else {
            allowed.join(", ")
        };
        for (name, pos) in given {
            if let Some(pos) = pos
                && !allowed.contains(&name)
            {
                c.err(
                    pos,
                    format!("{path}.params.{name}"),
                    format!("not a parameter of `{kind}`; it takes: {takes}"),
                );
            }
        }
        for name in required {
            if !given.iter().any(|(n, p)| n == name && p.is_some()) {
                c.err(
                    f.kind.pos,
                    format!("{path}.params.{name}"),
                    format!("`{kind}` needs `params.{name}`"),
                );
            }
        }
        if kind == FaultKind::Dns {
            check_dns(c, s, f, &path);
        }
        if kind.cluster_only() && s.metadata.backends != [BackendKind::Kube] {
            c.err(
                f.kind.pos,
                format!("{path}.type"),
                format!("`{kind}` acts on Kubernetes objects: a scenario with it lists `backends: [kube]` alone"),
            );
        }
    }
}

/// Qualified names are cluster DNS names: only a cluster's resolver and search list give them
/// their meaning.
fn check_call_names(c: &mut Checker, s: &Scenario) {
    if s.metadata.backends == [BackendKind::Kube] {
        return;
    }
    for (i, svc) in s.topology.services.iter().enumerate() {
        if let Some(names) = &svc.call_names
            && names.value == CallNames::Qualified
        {
            c.err(
                names.pos,
                format!("topology.services[{i}].call_names"),
                "qualified names are cluster DNS names (`<service>.<namespace>.svc.cluster.local`): a scenario with them lists `backends: [kube]` alone, or calls by `short` names",
            );
        }
    }
}

/// Node names (a service's placement, a `node-partition`'s target) exist only on a cluster:
/// the scenario runs on `kube` alone, names its layout, and each node is one of the layout's.
fn check_nodes(c: &mut Checker, s: &Scenario) {
    let placed = s
        .topology
        .services
        .iter()
        .enumerate()
        .filter_map(|(i, svc)| Some((svc.node.as_ref()?, format!("topology.services[{i}].node"))));
    let targeted =
        s.faults.iter().enumerate().filter_map(|(i, f)| {
            Some((f.target.node.as_ref()?, format!("faults[{i}].target.node")))
        });
    let named: Vec<_> = placed.chain(targeted).collect();
    let Some((first, first_path)) = named.first() else {
        return;
    };
    if s.metadata.backends != [BackendKind::Kube] {
        c.err(
            first.pos,
            first_path.clone(),
            "nodes exist only on a cluster: a scenario that names one lists `backends: [kube]` alone",
        );
    }
    let Some(layout) = &s.metadata.cluster else {
        c.err(
            first.pos,
            first_path.clone(),
            "a scenario that names nodes names its cluster layout in `metadata.cluster`",
        );
        return;
    };
    let nodes = super::layout_nodes(layout);
    for (node, path) in &named {
        if !nodes.contains(&node.as_str()) {
            c.err(
                node.pos,
                path.clone(),
                format!(
                    "layout `{}` has no node `{}`; its nodes are: {}",
                    **layout,
                    ***node,
                    nodes.join(", ")
                ),
            );
        }
    }
}

/// A `dns` fault acts at the lab's name server, so the lab must resolve through it, and it
/// must change something: a wrong answer, a late one, or both.
fn check_dns(c: &mut Checker, s: &Scenario, f: &crate::scenario::Fault, path: &str) {
    let names = s.topology.names.as_ref().map(|n| **n).unwrap_or_default();
    if names != NameService::Dns {
        c.err(
            f.kind.pos,
            format!("{path}.type"),
            "`dns` faults act at the lab's name server, which a lab with `topology.names: hosts` does not use; remove `names: hosts`",
        );
    }
    if f.params.answer.is_none() && f.params.delay.is_none() {
        c.err(
            f.kind.pos,
            format!("{path}.params"),
            "`dns` needs `params.answer` (nxdomain, servfail, timeout), `params.delay`, or both",
        );
    }
    if s.metadata.backends.contains(&BackendKind::Kube) {
        check_dns_on_a_cluster(c, f, path);
    }
}

/// On a cluster the pods ask cluster DNS, so a `dns` fault acts on a service's query packets
/// (fault::dns::as_packets): only its own lookups, only late or unanswered.
fn check_dns_on_a_cluster(c: &mut Checker, f: &crate::scenario::Fault, path: &str) {
    let t = &f.target;
    let egress =
        t.service.is_some() && t.direction.as_ref().map(|d| **d) == Some(Direction::Egress);
    if !egress {
        c.err(
            t.pos,
            format!("{path}.target"),
            "on `kube` a `dns` fault catches a service's own lookups (cluster DNS, not sandbox, answers them): expected a `service` with `direction: egress`, or remove `kube` from `backends`",
        );
    }
    let answer = f.params.answer.as_ref();
    if let Some(a) = answer
        && a.literal().is_some_and(|a| *a != DnsAnswer::Timeout)
    {
        c.err(
            a.pos,
            format!("{path}.params.answer"),
            "on `kube` a `dns` fault leaves lookups unanswered (`timeout`) or answers them late (`delay`); `nxdomain` and `servfail` need the lab's own name server: remove `kube` from `backends`",
        );
    }
    if answer.is_none()
        && let Some(p) = &f.params.percent
    {
        c.err(
            p.pos,
            format!("{path}.params.percent"),
            "on `kube` a `dns` delay holds every lookup of the service; remove `percent`",
        );
    }
}

fn check_target(c: &mut Checker, kind: FaultKind, t: &crate::yaml::Spanned<Target>, path: &str) {
    let pos = t.pos;
    if kind == FaultKind::NodePartition {
        if t.node.is_none() {
            c.err(
                pos,
                path,
                "`node-partition` cuts a node off: expected `node`",
            );
        }
        let extra = [
            ("service", t.service.as_ref().map(|v| v.pos)),
            ("link", t.link.as_ref().map(|_| pos)),
            ("replica", t.replica.as_ref().map(|v| v.pos)),
            ("direction", t.direction.as_ref().map(|v| v.pos)),
            ("port", t.port.as_ref().map(|v| v.pos)),
        ];
        for (field, at) in extra {
            if let Some(at) = at {
                c.err(
                    at,
                    format!("{path}.{field}"),
                    "`node-partition` acts on a node, named by `node` alone; remove it",
                );
            }
        }
        return;
    }
    if let Some(n) = &t.node {
        c.err(
            n.pos,
            format!("{path}.node"),
            format!("`node` names the node a `node-partition` cuts off; `{kind}` acts on services"),
        );
    }
    match (&t.service, &t.link) {
        (Some(_), Some(_)) | (None, None) => {
            c.err(pos, path, "expected exactly one of `service` or `link`")
        }
        (None, Some(_)) if kind.is_process() => c.err(
            pos,
            path,
            format!("`{kind}` is switched inside a service; expected `service`, not `link`"),
        ),
        (None, Some(_)) if kind == FaultKind::NoEndpoints => c.err(
            pos,
            path,
            "`no-endpoints` changes a service's Service; expected `service`, not `link`",
        ),
        (Some(_), None) if kind == FaultKind::NoEndpoints && t.replica.is_some() => c.err(
            t.replica.as_ref().map_or(pos, |r| r.pos),
            format!("{path}.replica"),
            "`no-endpoints` empties the whole Service; remove `replica`",
        ),
        (None, Some(_)) if t.replica.is_some() => c.err(
            pos,
            format!("{path}.replica"),
            "`replica` narrows a `service` target; a link names its two ends",
        ),
        _ => {}
    }
    if let Some(d) = &t.direction {
        let dpath = format!("{path}.direction");
        if kind == FaultKind::Partition || kind.acts_on_whole_service() {
            c.err(
                d.pos,
                dpath,
                format!("`{kind}` has no direction; remove it"),
            );
        } else if t.service.is_some()
            && !matches!(
                **d,
                Direction::Ingress | Direction::Egress | Direction::Both
            )
        {
            c.err(
                d.pos,
                dpath,
                format!(
                    "for a service, expected `ingress`, `egress` or `both`, found `{}`",
                    **d
                ),
            );
        } else if t.link.is_some()
            && !matches!(
                **d,
                Direction::Forward | Direction::Reverse | Direction::Both
            )
        {
            c.err(
                d.pos,
                dpath,
                format!(
                    "for a link, expected `forward`, `reverse` or `both`, found `{}`",
                    **d
                ),
            );
        }
    }
    if let Some(p) = &t.port {
        if kind.acts_on_whole_service() {
            c.err(
                p.pos,
                format!("{path}.port"),
                format!("`{kind}` acts on a whole service; remove `port`"),
            );
        } else if kind == FaultKind::Dns {
            c.err(
                p.pos,
                format!("{path}.port"),
                "`dns` acts on name lookups, which have no service port; remove `port`",
            );
        }
    }
}

/// Fields of a finding a check may look at.
fn known_field(f: &str) -> bool {
    matches!(
        f,
        "root_cause"
            | "where.service"
            | "where.link"
            | "where.direction"
            | "where.port"
            | "where.services"
            | "evidence"
            | "notes"
    ) || f
        .strip_prefix("magnitude.")
        .is_some_and(|q| !q.is_empty() && q.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

/// What the evidence journal records besides the probes, for evidence and hints to name.
const JOURNAL_TOOLS: [&str; 2] = ["goroutines", "pprof"];

fn probe_known(name: &str) -> bool {
    super::ProbeKind::from_name(name).is_some() || JOURNAL_TOOLS.contains(&name)
}

fn probe_names() -> String {
    let mut names: Vec<&str> = super::ProbeKind::ALL.map(|k| k.name()).to_vec();
    names.extend(JOURNAL_TOOLS);
    names.join(", ")
}

/// Expected findings, hints, the symptom and the solution: what grading and `verify` rely on.
fn check_grading(c: &mut Checker, s: &Scenario) {
    use grader::expect::Matcher;
    let pos = s.expected_findings.pos;
    // Summed wide, so points that would wrap a u32 back to 100 are still reported.
    let mut total = 0u64;
    let mut ids = BTreeSet::new();
    if s.expected_findings.len() > MAX_EXPECTED_FINDINGS {
        c.err(
            pos,
            "expected_findings",
            format!("at most {MAX_EXPECTED_FINDINGS} expected findings are allowed"),
        );
    }
    for (i, e) in s.expected_findings.iter().enumerate() {
        let path = format!("expected_findings[{i}]");
        if !ids.insert(e.id.as_str()) {
            c.err(
                pos,
                format!("{path}.id"),
                format!("an expected finding with id `{}` is already defined", e.id),
            );
        }
        for (j, chk) in e.checks.iter().enumerate() {
            let cpath = format!("{path}.checks[{j}]");
            total += u64::from(chk.points);
            if !known_field(&chk.field) {
                c.err(pos, format!("{cpath}.field"), format!("`{}` is not a field of a finding; expected root_cause, where.service, where.link, where.direction, where.port, where.services or magnitude.<quantity>", chk.field));
            }
            let mut matchers = vec![(&chk.expect, chk.points, format!("{cpath}.expect"))];
            matchers.extend(
                chk.partial
                    .iter()
                    .enumerate()
                    .map(|(k, p)| (&p.expect, p.points, format!("{cpath}.partial[{k}].expect"))),
            );
            for (m, points, mpath) in matchers {
                if let Matcher::Approx { tolerance, .. } = m
                    && !(tolerance.is_finite() && *tolerance >= 0.0)
                {
                    c.err(
                        pos,
                        format!("{mpath}.approx.tolerance"),
                        format!("expected a tolerance of 0 or more, found {tolerance}"),
                    );
                }
                if matches!(
                    chk.field.as_str(),
                    "where.service" | "where.link" | "where.services"
                ) {
                    let values: Vec<&serde_json::Value> = match m {
                        Matcher::Equals(v) => vec![v],
                        Matcher::OneOf(v) | Matcher::Set(v) => v.iter().collect(),
                        _ => Vec::new(),
                    };
                    for v in values {
                        if let Some(name) = v.as_str()
                            && !name.contains("{{")
                            && !is_lab_name(s, name)
                        {
                            c.err(
                                pos,
                                mpath.clone(),
                                format!(
                                    "`{name}` is no service of this lab, so no finding can match it; expected one of: {}",
                                    names(s)
                                ),
                            );
                        }
                    }
                }
                if points > chk.points {
                    c.err(
                        pos,
                        format!("{cpath}.partial"),
                        "partial credit cannot exceed the check's points",
                    );
                }
                if let Matcher::Regex(r) = m
                    && !r.contains("{{")
                    && !grader::score::regex_ok(r)
                {
                    c.err(
                        pos,
                        format!("{cpath}.expect.regex"),
                        format!("`{r}` is not a valid regular expression"),
                    );
                }
                if chk.field == "root_cause" {
                    let values: Vec<&serde_json::Value> = match m {
                        Matcher::Equals(v) => vec![v],
                        Matcher::OneOf(v) | Matcher::Set(v) => v.iter().collect(),
                        _ => Vec::new(),
                    };
                    for v in values {
                        if let Some(id) = v.as_str()
                            && !id.contains("{{")
                            && grader::taxonomy::find(id).is_none()
                        {
                            c.err(
                                pos,
                                format!("{cpath}.expect"),
                                format!(
                                    "`{id}` is not a known root cause; expected one of: {}",
                                    grader::taxonomy::ids().collect::<Vec<_>>().join(", ")
                                ),
                            );
                        }
                    }
                }
            }
        }
        for (j, ev) in e.evidence.iter().enumerate() {
            total += u64::from(ev.points);
            let shows = ev.shows.as_ref();
            let named = ev.target.iter().map(|t| ("target", t)).chain(
                shows
                    .and_then(|sh| sh.between.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|t| ("shows.between", t))
                    .chain(
                        shows
                            .and_then(|sh| sh.involves.as_ref())
                            .map(|t| ("shows.involves", t)),
                    ),
            );
            for (field, name) in named {
                if !name.contains("{{") && !is_lab_name(s, name) {
                    c.err(
                        pos,
                        format!("{path}.evidence[{j}].{field}"),
                        format!(
                            "`{name}` is no service of this lab; expected one of: {}",
                            names(s)
                        ),
                    );
                }
            }
            if let Some(ms) = shows.and_then(|sh| sh.min_ms)
                && !(ms.is_finite() && ms >= 0.0)
            {
                c.err(
                    pos,
                    format!("{path}.evidence[{j}].shows.min_ms"),
                    "expected 0 or more milliseconds",
                );
            }
            if !probe_known(&ev.probe) {
                c.err(
                    pos,
                    format!("{path}.evidence[{j}].probe"),
                    format!(
                        "no probe named `{}`; expected one of: {}",
                        ev.probe,
                        probe_names()
                    ),
                );
            }
        }
    }
    if !s.expected_findings.is_empty() && total != 100 {
        c.err(
            pos,
            "expected_findings",
            format!("checks and evidence are worth {total} points in all; make them add up to 100"),
        );
    }
    for (i, h) in s.hints.iter().enumerate() {
        for name in h.when.iter().flat_map(|w| w.ran.iter().chain(&w.not_ran)) {
            if !probe_known(name) {
                c.err(
                    h.cost.pos,
                    format!("hints[{i}].when"),
                    format!(
                        "no probe named `{name}`; expected one of: {}",
                        probe_names()
                    ),
                );
            }
        }
    }
    for (i, sym) in s.symptom.iter().enumerate() {
        if sym
            .above
            .into_iter()
            .chain(sym.below)
            .any(|x| !x.is_finite() || x < 0.0)
        {
            c.err(
                sym.metric.pos,
                format!("symptom[{i}]"),
                "expected a threshold of 0 or more",
            );
        }
        if sym.above.is_some() == sym.below.is_some() {
            c.err(
                sym.metric.pos,
                format!("symptom[{i}]"),
                "expected exactly one of `above` or `below`",
            );
        }
    }
    if let Some(sol) = &s.solution {
        for (i, step) in sol.steps.iter().enumerate() {
            let words: Vec<&str> = step.run.split_whitespace().collect();
            let ok = matches!(
                words.as_slice(),
                ["sandbox", "status", ..] | ["sandbox", "logs", ..]
            ) || matches!(words.as_slice(), ["sandbox", "probe", name, ..] if super::ProbeKind::from_name(name).is_some());
            // A Kubernetes-only scenario's learner reads the cluster's objects too.
            let reads_cluster = s.metadata.backends == [BackendKind::Kube]
                && matches!(words.as_slice(), ["kubectl", "get" | "describe", ..]);
            if !ok && !reads_cluster {
                c.err(sol.pos, format!("solution.steps[{i}].run"), format!("`{}`: a reference solution uses only `sandbox probe <name>`, `sandbox status` and `sandbox logs` (and, on a Kubernetes-only scenario, `kubectl get` and `kubectl describe`)", step.run));
            }
        }
    }
}

/// A service of the lab, one of its instances (`ledger-0`), or the load generator.
fn is_lab_name(s: &Scenario, name: &str) -> bool {
    name == super::LOADGEN
        || s.service(name).is_some()
        || s.service(grader::value::service_of(name)).is_some()
}

pub(crate) fn names(s: &Scenario) -> String {
    s.topology
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dns_label_rules() {
        assert!(is_name("api", 20));
        assert!(is_name("store-2", 20));
        assert!(!is_name("2store", 20));
        assert!(!is_name("Api", 20));
        assert!(!is_name("api-", 20));
        assert!(!is_name("a_b", 20));
        assert!(!is_name("abcdefghijklmnopqrstu", 20));
    }

    #[test]
    fn evidence_and_hints_may_name_what_the_journal_records() {
        for name in ["tcp-retrans", "netpoll", "goroutines", "pprof"] {
            assert!(probe_known(name), "{name}");
            assert!(probe_names().contains(name));
        }
        assert!(!probe_known("strace"));
    }
}
