//! A scenario made concrete for one run: parameters drawn from the seed, templates rendered,
//! services expanded into instances, faults resolved to their targets and schedule. A plan
//! names services, not addresses; the backend assigns those.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scenario::{
    self, ADMIN_PORT, CallNames, Diagnostic, Direction, DnsAnswer, Dur, FaultKind, LOADGEN,
    NameService, Params, Program, Rate, Renderer, Scenario, Tpl,
};
use crate::yaml::{Pos, Spanned};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub scenario: ScenarioInfo,
    pub seed: u64,
    pub params: Params,
    pub instances: Vec<Instance>,
    /// How instances resolve each other's names.
    #[serde(default)]
    pub names: NameService,
    pub workload: Workload,
    pub faults: Vec<FaultPlan>,
    pub briefing: Briefing,
    pub hints: Vec<Hint>,
    /// What findings are graded against.
    pub exercise: grader::score::Exercise,
    pub symptom: Vec<scenario::SymptomCheck>,
    pub solution: Option<PlanSolution>,
}

/// The scenario's reference solution with its templates rendered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanSolution {
    pub steps: Vec<scenario::SolutionStep>,
    pub findings: grader::findings::Findings,
    pub decoys: Vec<grader::findings::Findings>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioInfo {
    pub id: String,
    pub title: String,
    pub difficulty: String,
    pub time_limit: Option<Duration>,
}

/// One process of a service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Instance {
    /// `<service>-<replica>`, also its host name.
    pub name: String,
    pub service: String,
    pub replica: u32,
    pub program: Program,
    pub port: u16,
    /// Upstream URLs by service name, e.g. `http://api:8080`.
    pub upstreams: Vec<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The cluster node it runs on, where the scenario places it.
    #[serde(default)]
    pub node: Option<String>,
    /// Dials its upstreams by their cluster DNS names (`call_names: qualified`).
    #[serde(default)]
    pub qualified_calls: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Workload {
    pub target: String,
    pub url: String,
    pub rate: u32,
    pub concurrency: u32,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultPlan {
    pub id: String,
    pub kind: FaultKind,
    pub target: FaultTarget,
    pub effect: Effect,
    pub start_after: Duration,
    pub duration: Option<Duration>,
}

/// A fault's target with names resolved. `loadgen` may be a link end.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultTarget {
    Service {
        service: String,
        replica: Option<u32>,
        direction: Direction,
        port: Option<u16>,
    },
    Link {
        from: String,
        to: String,
        direction: Direction,
        port: Option<u16>,
    },
    /// A cluster node, by role (`worker`).
    Node { node: String },
}

/// What a fault does, with every parameter concrete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Effect {
    Loss {
        percent: f64,
    },
    Delay {
        delay: Duration,
        jitter: Duration,
    },
    Reset {
        percent: f64,
    },
    Blackhole,
    Partition,
    SynDrop {
        percent: f64,
    },
    Bandwidth {
        bits_per_sec: u64,
    },
    Corrupt {
        percent: f64,
    },
    Slow {
        delay: Duration,
        percent: f64,
    },
    Hang {
        percent: f64,
    },
    Leak,
    CpuBurn {
        goroutines: u32,
    },
    CpuStarve {
        hogs: u32,
    },
    /// At the lab's name server: `percent` of the caught lookups get `answer` (a correct
    /// one when `None`), each after `delay`.
    Dns {
        answer: Option<DnsAnswer>,
        delay: Option<Duration>,
        percent: f64,
    },
    /// On a cluster node: its pods and the lab's pods on other nodes stop reaching each other.
    NodePartition,
    /// On a cluster: the service's Service selects none of its pods.
    NoEndpoints,
    /// On a cluster: the service's readiness endpoint fails.
    Unready,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Briefing {
    pub title: String,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hint {
    pub text: String,
    pub cost: u32,
    pub when: Option<scenario::HintWhen>,
}

impl FaultTarget {
    pub fn port(&self) -> Option<u16> {
        match self {
            FaultTarget::Service { port, .. } | FaultTarget::Link { port, .. } => *port,
            FaultTarget::Node { .. } => None,
        }
    }
}

impl std::fmt::Display for FaultTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, dir, port) = match self {
            FaultTarget::Service {
                service,
                replica,
                direction,
                port,
            } => {
                let who = match replica {
                    Some(r) => format!("{service}-{r}"),
                    None => service.clone(),
                };
                (who, *direction, port)
            }
            FaultTarget::Link {
                from,
                to,
                direction,
                port,
            } => {
                let arrow = match direction {
                    Direction::Reverse => "←",
                    Direction::Both => "↔",
                    _ => "→",
                };
                (format!("{from} {arrow} {to}"), Direction::Both, port)
            }
            FaultTarget::Node { node } => (format!("node {node}"), Direction::Both, &None),
        };
        write!(f, "{what}")?;
        if !matches!(dir, Direction::Both) {
            write!(f, " ({dir})")?;
        }
        if let Some(p) = port {
            write!(f, " :{p}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Effect::Loss { percent } => write!(f, "{percent}% packet loss"),
            Effect::Delay { delay, jitter } if jitter.is_zero() => {
                write!(f, "+{} delay", Dur(*delay))
            }
            Effect::Delay { delay, jitter } => {
                write!(f, "+{} ±{} delay", Dur(*delay), Dur(*jitter))
            }
            Effect::Reset { percent } => write!(f, "TCP resets on {percent}% of segments"),
            Effect::Blackhole => write!(f, "blackhole"),
            Effect::Partition => write!(f, "partition"),
            Effect::NodePartition => write!(f, "pod network cut off from the other nodes"),
            Effect::NoEndpoints => write!(f, "Service selects no pod"),
            Effect::Unready => write!(f, "control-plane /health answers 503"),
            Effect::SynDrop { percent } => write!(f, "{percent}% of SYNs dropped"),
            Effect::Bandwidth { bits_per_sec } => write!(
                f,
                "bandwidth {}",
                Rate {
                    bits_per_sec: *bits_per_sec
                }
            ),
            Effect::Corrupt { percent } => write!(f, "{percent}% of packets corrupted"),
            Effect::Slow { delay, percent } => {
                write!(f, "slow handler +{} on {percent}% of requests", Dur(*delay))
            }
            Effect::Hang { percent } => write!(f, "handler hangs on {percent}% of requests"),
            Effect::Leak => write!(f, "goroutine leak"),
            Effect::CpuBurn { goroutines } => write!(f, "CPU burn ({goroutines} goroutines)"),
            Effect::CpuStarve { hogs } => {
                write!(f, "CPU starvation ({hogs} busy threads on its CPU)")
            }
            Effect::Dns {
                answer,
                delay,
                percent,
            } => {
                let what = match answer {
                    Some(DnsAnswer::Nxdomain) => "answered NXDOMAIN",
                    Some(DnsAnswer::Servfail) => "answered SERVFAIL",
                    Some(DnsAnswer::Timeout) => "unanswered",
                    None => "answered",
                };
                write!(f, "{percent}% of name lookups {what}")?;
                match delay {
                    Some(d) => write!(f, " after {}", Dur(*d)),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Plan {
    /// The plan for `seed`, or every problem that seed's draw runs into.
    pub fn build(s: &Scenario, seed: u64) -> Result<Plan, Vec<Diagnostic>> {
        let params = scenario::draw(s.params.iter().map(|(k, v)| (k, &v.value)), seed);
        Builder::new(s, params).build(seed)
    }

    /// The plan for a given draw (one of [`corners`]); `seed` is recorded with it.
    pub fn build_with(s: &Scenario, params: Params, seed: u64) -> Result<Plan, Vec<Diagnostic>> {
        Builder::new(s, params).build(seed)
    }

    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }

    /// Instances of a service, or the load generator's pseudo-instance name.
    pub fn instances_of(&self, service: &str) -> Vec<&Instance> {
        self.instances
            .iter()
            .filter(|i| i.service == service)
            .collect()
    }
}

/// Reads, parses and validates a scenario, including every value its parameters can draw:
/// what `sandbox validate` checks, and what a course checks of each scenario it names.
pub fn load_checked(source: &scenario::Source) -> Result<Scenario, scenario::ScenarioError> {
    let s = source.load()?;
    let diagnostics = check_draws(&s);
    if diagnostics.is_empty() {
        Ok(s)
    } else {
        Err(source.invalid(diagnostics))
    }
}

/// Builds the plan for every corner of the parameter space and reports each problem once,
/// saying which draw causes it when not all do.
pub fn check_draws(s: &Scenario) -> Vec<Diagnostic> {
    let combos = corner_combinations(s);
    let total = combos.len();
    let mut hits: BTreeMap<Diagnostic, Vec<String>> = BTreeMap::new();
    for params in combos {
        let label = draw_label(&params);
        if let Err(diags) = Builder::new(s, params).build(0) {
            for d in diags {
                hits.entry(d).or_default().push(label.clone());
            }
        }
    }
    hits.into_iter()
        .map(|(mut d, labels)| {
            if labels.len() < total && !labels[0].is_empty() {
                d.message = format!("{} (when {})", d.message, labels[0]);
            }
            d
        })
        .collect()
}

/// Whole joint spaces up to this size are tried in full.
const MAX_COMBINATIONS: u64 = 1024;
/// Seeded draws tried on top of the corners, for values between them.
const SAMPLED_DRAWS: u64 = 32;

/// A draw as `name = value, …`; empty for a scenario without parameters.
pub fn draw_label(params: &Params) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every corner of a scenario's parameter space: the whole joint space of every parameter's
/// corners (a range's lowest and highest value, each value of a `one_of`) when it is small;
/// otherwise each parameter at its lowest or highest value, in every combination (validation
/// caps parameters at [`scenario::MAX_PARAMS`], so there are at most 2^10). A scenario without
/// parameters has one corner, the empty draw.
pub fn corners(s: &Scenario) -> Vec<Params> {
    let corners: Vec<(String, Vec<scenario::ParamValue>)> = s
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.corners()))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    let size = corners
        .iter()
        .try_fold(1u64, |acc, (_, c)| acc.checked_mul(c.len() as u64));
    let axes: Vec<(String, Vec<scenario::ParamValue>)> = match size {
        Some(n) if n <= MAX_COMBINATIONS => corners,
        _ => corners
            .into_iter()
            .map(|(k, mut c)| {
                let last = c.len() - 1;
                c.swap(1.min(last), last);
                c.truncate(2);
                c.dedup();
                (k, c)
            })
            .collect(),
    };
    let mut out = vec![Params::new()];
    for (name, values) in &axes {
        out = out
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.insert(name.clone(), v.clone());
                    q
                })
            })
            .collect();
    }
    out
}

/// The draws validation builds a plan for: every corner, then a seeded sample of real draws
/// for values between them. Values that are invalid only together are found this way, not
/// one parameter at a time.
fn corner_combinations(s: &Scenario) -> Vec<Params> {
    let mut out = corners(s);
    for seed in 0..SAMPLED_DRAWS {
        let drawn = scenario::draw(s.params.iter().map(|(k, v)| (k, &v.value)), seed);
        if !out.contains(&drawn) {
            out.push(drawn);
        }
    }
    out
}

/// The path of the first string in `v` that does not render, so an error names the field
/// that holds the broken template rather than the whole value.
fn failing_leaf(r: &Renderer, v: &serde_json::Value, path: String) -> Option<String> {
    match v {
        serde_json::Value::String(_) => r.json(v).is_err().then_some(path),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| failing_leaf(r, x, format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map
            .iter()
            .find_map(|(k, x)| failing_leaf(r, x, format!("{path}.{k}"))),
        _ => None,
    }
}

struct Builder<'a> {
    s: &'a Scenario,
    params: Params,
    r: Renderer,
    errors: Vec<Diagnostic>,
}

impl<'a> Builder<'a> {
    fn new(s: &'a Scenario, params: Params) -> Self {
        let r = Renderer::new(&params);
        Builder {
            s,
            params,
            r,
            errors: Vec::new(),
        }
    }

    fn err(&mut self, pos: Pos, path: &str, msg: impl Into<String>) {
        self.errors.push(Diagnostic::at(pos, path, msg));
    }

    fn value<T: scenario::Scalar>(&mut self, field: &Spanned<Tpl<T>>, path: &str) -> Option<T> {
        match self.r.value(&field.value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(field.pos, path, e);
                None
            }
        }
    }

    fn text(&mut self, t: &str, pos: Pos, path: &str) -> String {
        self.r.text(t).unwrap_or_else(|e| {
            self.err(pos, path, e);
            String::new()
        })
    }

    fn build(mut self, seed: u64) -> Result<Plan, Vec<Diagnostic>> {
        let s = self.s;
        let instances = self.instances();
        let target = s.service(&s.workload.target);
        let workload = Workload {
            target: s.workload.target.value.clone(),
            url: format!(
                "http://{}:{}{}",
                *s.workload.target,
                target.map(port_of).unwrap_or(8080),
                s.workload.path
            ),
            rate: *s.workload.rate,
            concurrency: *s.workload.concurrency,
            timeout: s.workload.timeout.0,
        };
        let faults: Vec<FaultPlan> = s
            .faults
            .iter()
            .enumerate()
            .filter_map(|(i, f)| self.fault(i, f))
            .collect();
        let briefing = Briefing {
            title: self.text(&s.briefing.title, Pos::default(), "briefing.title"),
            body: self.text(&s.briefing.body, Pos::default(), "briefing.body"),
        };
        let hints = s
            .hints
            .iter()
            .enumerate()
            .map(|(i, h)| Hint {
                text: self.text(&h.text, h.cost.pos, &format!("hints[{i}].text")),
                cost: *h.cost,
                when: h.when.clone(),
            })
            .collect();
        let pos = s.expected_findings.pos;
        let expected = s
            .expected_findings
            .iter()
            .enumerate()
            .filter_map(|(i, e)| self.rendered(e, pos, &format!("expected_findings[{i}]")))
            .collect();
        let solution = s.solution.as_ref().and_then(|sol| {
            let pos = sol.pos;
            let rendered = PlanSolution {
                steps: sol.steps.clone(),
                findings: self.rendered(&sol.findings, pos, "solution.findings")?,
                decoys: sol
                    .decoys
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| self.rendered(d, pos, &format!("solution.decoys[{i}]")))
                    .collect(),
            };
            for (i, f) in std::iter::once(&rendered.findings)
                .chain(&rendered.decoys)
                .enumerate()
            {
                let which = if i == 0 {
                    "solution.findings".to_string()
                } else {
                    format!("solution.decoys[{}]", i - 1)
                };
                for problem in grader::score::lint(f) {
                    self.err(pos, &which, problem);
                }
            }
            Some(rendered)
        });
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        Ok(Plan {
            scenario: ScenarioInfo {
                id: s.metadata.id.value.clone(),
                title: s.metadata.title.clone(),
                difficulty: s.metadata.difficulty.to_string(),
                time_limit: s.metadata.time_limit.as_ref().map(|t| t.0),
            },
            seed,
            params: self.params,
            instances,
            names: s.topology.names.as_ref().map(|n| **n).unwrap_or_default(),
            workload,
            faults,
            briefing,
            hints,
            exercise: grader::score::Exercise {
                expected,
                pass_mark: *s.pass_mark,
                extra_finding_penalty: s.extra_finding_penalty,
                time_limit: s.metadata.time_limit.as_ref().map(|t| t.0),
            },
            symptom: s.symptom.clone(),
            solution,
        })
    }

    /// `value` with every string in it rendered as a template over the params.
    fn rendered<T: Serialize + serde::de::DeserializeOwned>(
        &mut self,
        value: &T,
        pos: Pos,
        path: &str,
    ) -> Option<T> {
        let raw = serde_json::to_value(value).ok()?;
        match self
            .r
            .json(&raw)
            .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
        {
            Ok(v) => Some(v),
            Err(msg) => {
                let at = failing_leaf(&self.r, &raw, path.to_string());
                self.err(pos, at.as_deref().unwrap_or(path), msg);
                None
            }
        }
    }

    fn instances(&self) -> Vec<Instance> {
        let s = self.s;
        let mut out = Vec::new();
        for svc in &s.topology.services {
            let upstreams = svc
                .calls
                .iter()
                .filter_map(|c| s.service(c))
                .map(|callee| {
                    let scheme = if callee.program.speaks_http() {
                        "http"
                    } else {
                        "tcp"
                    };
                    format!("{scheme}://{}:{}", *callee.name, port_of(callee))
                })
                .collect::<Vec<_>>();
            for r in 0..*svc.replicas {
                out.push(Instance {
                    name: format!("{}-{r}", *svc.name),
                    service: svc.name.value.clone(),
                    replica: r,
                    program: *svc.program,
                    port: port_of(svc),
                    upstreams: upstreams.clone(),
                    args: svc.args.clone(),
                    env: svc.env.clone(),
                    node: svc.node.as_ref().map(|n| n.value.clone()),
                    qualified_calls: svc
                        .call_names
                        .as_ref()
                        .is_some_and(|c| c.value == CallNames::Qualified),
                });
            }
        }
        out
    }

    /// A service name in a fault target: it must exist (the load generator may be a link end).
    fn endpoint(
        &mut self,
        field: &Spanned<Tpl<String>>,
        path: &str,
        allow_loadgen: bool,
    ) -> Option<String> {
        let name = self.value(field, path)?;
        if (allow_loadgen && name == LOADGEN) || self.s.service(&name).is_some() {
            return Some(name);
        }
        let mut known = scenario::names_of(self.s);
        if allow_loadgen {
            known.push_str(", ");
            known.push_str(LOADGEN);
        }
        self.err(
            field.pos,
            path,
            format!("unknown service `{name}`; expected one of: {known}"),
        );
        None
    }

    fn fault(&mut self, i: usize, f: &scenario::Fault) -> Option<FaultPlan> {
        let path = format!("faults[{i}]");
        let t = &f.target.value;
        let tpath = format!("{path}.target");
        let port = match &t.port {
            Some(p) => Some((self.value(p, &format!("{tpath}.port"))?, p.pos)),
            None => None,
        };
        let direction = t
            .direction
            .as_ref()
            .map(|d| d.value)
            .unwrap_or(Direction::Both);
        let target = if let Some(node) = &t.node {
            FaultTarget::Node {
                node: node.value.clone(),
            }
        } else if let Some(svc) = &t.service {
            let service = self.endpoint(svc, &format!("{tpath}.service"), false)?;
            let def = self.s.service(&service)?;
            if let Some(r) = &t.replica
                && **r >= *def.replicas
            {
                self.err(
                    r.pos,
                    &format!("{tpath}.replica"),
                    format!(
                        "`{service}` has {} replica(s), numbered from 0",
                        *def.replicas
                    ),
                );
            }
            if let Some((p, pos)) = port
                && p != port_of(def)
                && p != ADMIN_PORT
            {
                self.err(pos, &format!("{tpath}.port"), format!("`{service}` listens on {} (and {ADMIN_PORT} for its control plane), not {p}", port_of(def)));
            }
            FaultTarget::Service {
                service,
                replica: t.replica.as_ref().map(|r| **r),
                direction,
                port: port.map(|p| p.0),
            }
        } else {
            let link = t.link.as_ref()?;
            let from = self.endpoint(&link.from, &format!("{tpath}.link.from"), true);
            let to = self.endpoint(&link.to, &format!("{tpath}.link.to"), true);
            let (from, to) = (from?, to?);
            if from == to {
                self.err(
                    link.to.pos,
                    &format!("{tpath}.link.to"),
                    "a link joins two different services",
                );
            }
            if let Some((p, pos)) = port {
                match self.s.service(&to) {
                    Some(def) if p == port_of(def) || p == ADMIN_PORT => {}
                    Some(def) => self.err(pos, &format!("{tpath}.port"), format!("`{to}` listens on {} (and {ADMIN_PORT}), not {p}; a link's port is the one `to` listens on", port_of(def))),
                    None => self.err(pos, &format!("{tpath}.port"), format!("`{to}` listens on no port")),
                }
            }
            FaultTarget::Link {
                from,
                to,
                direction,
                port: port.map(|p| p.0),
            }
        };
        let effect = self.effect(f, &path)?;
        let start_after = match &f.start_after {
            Some(d) => self.value(d, &format!("{path}.start_after"))?.0,
            None => Duration::ZERO,
        };
        if start_after > Duration::from_secs(24 * 3600) {
            self.err(
                f.start_after.as_ref().map(|d| d.pos).unwrap_or_default(),
                &format!("{path}.start_after"),
                "expected at most 24h",
            );
        }
        let duration = match &f.duration {
            Some(d) => {
                let v = self.value(d, &format!("{path}.duration"))?.0;
                if v.is_zero() {
                    self.err(
                        d.pos,
                        &format!("{path}.duration"),
                        "expected a duration above 0; leave it out for a fault that lasts",
                    );
                }
                Some(v)
            }
            None => None,
        };
        Some(FaultPlan {
            id: f.id.value.clone(),
            kind: *f.kind,
            target,
            effect,
            start_after,
            duration,
        })
    }

    /// The services' fault switch samples requests in whole percent.
    fn whole_percent(&mut self, f: &scenario::Fault, v: f64, ppath: &str) -> f64 {
        if v.fract() != 0.0 {
            let pos = f.params.percent.as_ref().map(|p| p.pos).unwrap_or_default();
            self.err(
                pos,
                &format!("{ppath}.percent"),
                format!("app-level faults take a whole percentage, found {v}"),
            );
        }
        v
    }

    fn effect(&mut self, f: &scenario::Fault, path: &str) -> Option<Effect> {
        let p = &f.params;
        let ppath = format!("{path}.params");
        let percent = |b: &mut Self, default: Option<f64>| -> Option<f64> {
            match &p.percent {
                Some(field) => {
                    let v = b.value(field, &format!("{ppath}.percent"))?;
                    if !(0.0..=100.0).contains(&v) {
                        b.err(
                            field.pos,
                            &format!("{ppath}.percent"),
                            format!("expected a percentage from 0 to 100, found {v}"),
                        );
                    }
                    Some(v)
                }
                None => default,
            }
        };
        let delay = |b: &mut Self| -> Option<Duration> {
            let field = p.delay.as_ref()?;
            let v = b.value(field, &format!("{ppath}.delay"))?.0;
            if v < Duration::from_millis(1) || v > Duration::from_secs(10) {
                b.err(
                    field.pos,
                    &format!("{ppath}.delay"),
                    format!("expected a delay from 1ms to 10s, found {}", Dur(v)),
                );
            }
            Some(v)
        };
        Some(match *f.kind {
            FaultKind::Loss => Effect::Loss {
                percent: percent(self, None)?,
            },
            FaultKind::Corrupt => Effect::Corrupt {
                percent: percent(self, None)?,
            },
            FaultKind::Reset => Effect::Reset {
                percent: percent(self, Some(100.0))?,
            },
            FaultKind::SynDrop => Effect::SynDrop {
                percent: percent(self, Some(100.0))?,
            },
            FaultKind::Hang => {
                let p = percent(self, Some(100.0))?;
                Effect::Hang {
                    percent: self.whole_percent(f, p, &ppath),
                }
            }
            FaultKind::Blackhole => Effect::Blackhole,
            FaultKind::Partition => Effect::Partition,
            FaultKind::NodePartition => Effect::NodePartition,
            FaultKind::NoEndpoints => Effect::NoEndpoints,
            FaultKind::Unready => Effect::Unready,
            FaultKind::Leak => Effect::Leak,
            FaultKind::Delay => {
                let d = delay(self)?;
                let jitter = match &p.jitter {
                    Some(j) => {
                        let v = self.value(j, &format!("{ppath}.jitter"))?.0;
                        if v > d {
                            self.err(
                                j.pos,
                                &format!("{ppath}.jitter"),
                                format!("expected jitter no larger than the delay ({})", Dur(d)),
                            );
                        }
                        v
                    }
                    None => Duration::ZERO,
                };
                Effect::Delay { delay: d, jitter }
            }
            FaultKind::Slow => {
                let d = delay(self)?;
                let p = percent(self, Some(100.0))?;
                Effect::Slow {
                    delay: d,
                    percent: self.whole_percent(f, p, &ppath),
                }
            }
            FaultKind::Bandwidth => {
                let field = p.rate.as_ref()?;
                let rate = self.value(field, &format!("{ppath}.rate"))?;
                if rate.bits_per_sec < 8_000 || rate.bits_per_sec > 10_000_000_000 {
                    self.err(
                        field.pos,
                        &format!("{ppath}.rate"),
                        format!("expected a rate from 8kbit to 10gbit, found {rate}"),
                    );
                }
                Effect::Bandwidth {
                    bits_per_sec: rate.bits_per_sec,
                }
            }
            FaultKind::CpuBurn => {
                let n = match &p.goroutines {
                    Some(g) => {
                        let v = self.value(g, &format!("{ppath}.goroutines"))?;
                        if v == 0 || v > 64 {
                            self.err(
                                g.pos,
                                &format!("{ppath}.goroutines"),
                                "expected 1 to 64 goroutines",
                            );
                        }
                        v
                    }
                    None => 1,
                };
                Effect::CpuBurn { goroutines: n }
            }
            FaultKind::CpuStarve => {
                let n = match &p.hogs {
                    Some(g) => {
                        let v = self.value(g, &format!("{ppath}.hogs"))?;
                        if v == 0 || v > 16 {
                            self.err(
                                g.pos,
                                &format!("{ppath}.hogs"),
                                "expected 1 to 16 busy threads",
                            );
                        }
                        v
                    }
                    None => 3,
                };
                Effect::CpuStarve { hogs: n }
            }
            FaultKind::Dns => {
                let answer = match &p.answer {
                    Some(a) => Some(self.value(a, &format!("{ppath}.answer"))?),
                    None => None,
                };
                let delay = match &p.delay {
                    Some(_) => Some(delay(self)?),
                    None => None,
                };
                Effect::Dns {
                    answer,
                    delay,
                    percent: percent(self, Some(100.0))?,
                }
            }
        })
    }
}

fn port_of(svc: &scenario::Service) -> u16 {
    svc.port
        .as_ref()
        .map(|p| **p)
        .unwrap_or_else(|| svc.program.default_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "apiVersion: sandbox/v1
kind: Scenario
metadata: {id: tiny, title: Tiny, summary: s, difficulty: beginner}
PARAMS
topology:
  services:
    - {name: front, program: gateway, calls: [db-api]}
    - {name: db-api, program: backend, calls: [db]}
    - {name: db, program: store}
workload: {target: front, rate: 20}
faults:
  - id: lossy
    type: loss
    target: {service: db}
    params: {percent: PERCENT}
briefing: {title: t, body: b}
";

    fn scenario(params: &str, percent: &str) -> Scenario {
        let text = TINY.replace("PARAMS", params).replace("PERCENT", percent);
        scenario::Source {
            name: "t.yaml".into(),
            text,
        }
        .load()
        .unwrap()
    }

    #[test]
    fn values_invalid_only_together_are_found() {
        // Each parameter alone keeps the sum within 0–100 (every other one at its low end);
        // only all seven high together exceed it.
        let names = ["a", "b", "c", "d", "e", "f", "g"];
        let params = format!(
            "params:\n{}",
            names
                .map(|n| format!("  {n}: {{range: [0, 20]}}\n"))
                .concat()
        );
        let s = scenario(&params, &format!("\"{{{{ {} }}}}\"", names.join(" + ")));
        let diags = check_draws(&s);
        assert!(
            diags
                .iter()
                .any(|d| d.message.contains("found 140")
                    && d.message.contains("a = 20, b = 20, c = 20")),
            "{diags:?}"
        );
    }

    #[test]
    fn a_huge_space_is_checked_at_its_corners_quickly() {
        // 64 × 64 × 2^8 combinations of corners: too many to try all, so the joint corners
        // (each first or last value) and a sample are tried.
        let list = (0..64)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut params =
            format!("params:\n  p0: {{one_of: [{list}]}}\n  p1: {{one_of: [{list}]}}\n");
        for i in 2..10 {
            params.push_str(&format!("  p{i}: {{range: [0, 49]}}\n"));
        }
        let s = scenario(&params, "\"{{ p0 + p1 - p9 / 100 }}\"");
        let start = std::time::Instant::now();
        let diags = check_draws(&s);
        assert!(
            diags.iter().any(|d| d.message.contains("found 126")),
            "{diags:?}"
        );
        let tried = corner_combinations(&s).len();
        assert!((1024..=1024 + 32).contains(&tried), "{tried}");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn verify_corners_are_each_parameters_ends_in_every_combination() {
        let s = scenario(
            "params:\n  d: {range: [30, 65], step: 10}\n  k: {one_of: [1, 2, 3]}\n",
            "\"{{ d + k }}\"",
        );
        let mut seen: Vec<String> = corners(&s).iter().map(draw_label).collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                "d = 30, k = 1",
                "d = 30, k = 2",
                "d = 30, k = 3",
                "d = 60, k = 1",
                "d = 60, k = 2",
                "d = 60, k = 3"
            ]
        );
        let none = scenario("", "50");
        assert_eq!(
            corners(&none),
            vec![Params::new()],
            "one lab for a scenario without params"
        );
    }
}
