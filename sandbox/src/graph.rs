//! `sandbox graph`: the lab drawn from its published state: services, their replicas, who
//! calls whom, and, in the instructor's view only, where each fault sits. The state comes in
//! already seen by its viewer ([`crate::lab::redact`]); a fault whose details were redacted
//! is not drawn at all, so a learner's graph has no trace of the faults.

use std::collections::BTreeSet;

use crate::lab::{FaultState, State};
use crate::plan::FaultTarget;

/// How the graph is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An indented tree from the load generator down, for the terminal.
    Text,
    Mermaid,
    Dot,
}

/// A service and its replicas.
struct Node {
    service: String,
    program: String,
    instances: Vec<String>,
    calls: Vec<String>,
}

/// A fault the viewer may see, and where it sits.
struct Mark {
    label: String,
    at: FaultTarget,
}

struct Graph {
    nodes: Vec<Node>,
    marks: Vec<Mark>,
}

impl Graph {
    fn of(state: &State) -> Graph {
        let mut nodes: Vec<Node> = Vec::new();
        for i in &state.instances {
            match nodes.iter_mut().find(|n| n.service == i.service) {
                Some(n) => {
                    n.instances.push(i.name.clone());
                    for c in &i.calls {
                        if !n.calls.contains(c) {
                            n.calls.push(c.clone());
                        }
                    }
                }
                None => nodes.push(Node {
                    service: i.service.clone(),
                    program: i.program.clone(),
                    instances: vec![i.name.clone()],
                    calls: i.calls.clone(),
                }),
            }
        }
        let marks = state.faults.iter().filter_map(mark).collect();
        Graph { nodes, marks }
    }

    fn node(&self, service: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.service == service)
    }

    /// Faults on a service (any of its replicas).
    fn on_node(&self, service: &str) -> Vec<&Mark> {
        self.marks
            .iter()
            .filter(|m| matches!(&m.at, FaultTarget::Service { service: s, .. } if s == service))
            .collect()
    }

    /// Faults on cluster nodes, as (node, mark).
    fn on_cluster_nodes(&self) -> Vec<(&str, &Mark)> {
        self.marks
            .iter()
            .filter_map(|m| match &m.at {
                FaultTarget::Node { node } => Some((node.as_str(), m)),
                _ => None,
            })
            .collect()
    }

    /// Faults on the link between two services, whichever way the fault names it.
    fn on_edge(&self, from: &str, to: &str) -> Vec<&Mark> {
        self.marks
            .iter()
            .filter(|m| match &m.at {
                FaultTarget::Link { from: a, to: b, .. } => {
                    (a == from && b == to) || (a == to && b == from)
                }
                FaultTarget::Service { .. } | FaultTarget::Node { .. } => false,
            })
            .collect()
    }

    /// Every call, and every faulty link that is not a call, as (from, to).
    fn edges(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .nodes
            .iter()
            .flat_map(|n| n.calls.iter().map(|c| (n.service.clone(), c.clone())))
            .collect();
        for m in &self.marks {
            if let FaultTarget::Link { from, to, .. } = &m.at
                && !out
                    .iter()
                    .any(|(a, b)| (a == from && b == to) || (a == to && b == from))
            {
                out.push((from.clone(), to.clone()));
            }
        }
        out
    }
}

/// A fault with its details (the instructor's view); `None` for a redacted one.
fn mark(f: &FaultState) -> Option<Mark> {
    let d = f.detail.as_ref()?;
    let at = d.target.clone()?;
    Some(Mark {
        label: format!(
            "#{} {}: {} ({})",
            f.number,
            d.id,
            d.description,
            format!("{:?}", f.status).to_lowercase()
        ),
        at,
    })
}

fn replicas(n: &Node) -> String {
    if n.instances.len() == 1 && n.instances[0] == n.service {
        return String::new();
    }
    format!(" [{}]", n.instances.join(", "))
}

/// Writes the lab's graph in `format`.
pub fn render(state: &State, format: Format) -> String {
    let g = Graph::of(state);
    match format {
        Format::Text => text(state, &g),
        Format::Mermaid => mermaid(&g),
        Format::Dot => dot(&g),
    }
}

fn text(state: &State, g: &Graph) -> String {
    let mut out = format!("Lab {} · {}\n", state.id, state.scenario_id);
    let mut seen = BTreeSet::new();
    let roots: Vec<&Node> = g
        .nodes
        .iter()
        .filter(|n| !g.nodes.iter().any(|m| m.calls.contains(&n.service)))
        .collect();
    for r in roots {
        tree(g, r, "", None, &mut seen, &mut out);
    }
    for n in &g.nodes {
        if !seen.contains(&n.service) {
            tree(g, n, "", None, &mut seen, &mut out);
        }
    }
    for (node, m) in g.on_cluster_nodes() {
        out.push_str(&format!("⚡ node {node}: {}\n", m.label));
    }
    out
}

/// One service and, below it, the services it calls; a service drawn before is named again
/// but not expanded.
fn tree(
    g: &Graph,
    n: &Node,
    indent: &str,
    branch: Option<(&str, &str)>,
    seen: &mut BTreeSet<String>,
    out: &mut String,
) {
    let (lead, caller) = match branch {
        Some((b, caller)) => (b, Some(caller)),
        None => ("", None),
    };
    let again = !seen.insert(n.service.clone());
    out.push_str(&format!(
        "{indent}{lead}{} ({}){}{}\n",
        n.service,
        n.program,
        replicas(n),
        if again { " ↑ see above" } else { "" }
    ));
    let child_indent = match branch {
        Some(("└─▶ ", _)) => format!("{indent}    "),
        Some(_) => format!("{indent}│   "),
        None => indent.to_string(),
    };
    if let Some(caller) = caller {
        for m in g.on_edge(caller, &n.service) {
            out.push_str(&format!("{child_indent}⚡ link: {}\n", m.label));
        }
    }
    if again {
        return;
    }
    for m in g.on_node(&n.service) {
        out.push_str(&format!("{child_indent}⚡ {}\n", m.label));
    }
    let callees: Vec<&Node> = n.calls.iter().filter_map(|c| g.node(c)).collect();
    for (k, c) in callees.iter().enumerate() {
        let b = if k + 1 == callees.len() {
            "└─▶ "
        } else {
            "├─▶ "
        };
        tree(g, c, &child_indent, Some((b, &n.service)), seen, out);
    }
}

/// A Mermaid or Graphviz identifier for a service name.
fn ident(service: &str) -> String {
    service
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn quote(s: &str) -> String {
    s.replace('"', "'")
}

fn mermaid(g: &Graph) -> String {
    let mut out = String::from("flowchart LR\n");
    for n in &g.nodes {
        let mut label = format!("{} ({}){}", n.service, n.program, replicas(n));
        for m in g.on_node(&n.service) {
            label.push_str(&format!("<br/>⚡ {}", m.label));
        }
        out.push_str(&format!("  {}[\"{}\"]\n", ident(&n.service), quote(&label)));
    }
    for (from, to) in g.edges() {
        let marks = g.on_edge(&from, &to);
        let arrow = if is_call(g, &from, &to) { "-->" } else { "-.-" };
        if marks.is_empty() {
            out.push_str(&format!("  {} {arrow} {}\n", ident(&from), ident(&to)));
        } else {
            let label: Vec<String> = marks.iter().map(|m| format!("⚡ {}", m.label)).collect();
            out.push_str(&format!(
                "  {} {arrow}|\"{}\"| {}\n",
                ident(&from),
                quote(&label.join("<br/>")),
                ident(&to)
            ));
        }
    }
    let faulty: Vec<String> = g
        .nodes
        .iter()
        .filter(|n| !g.on_node(&n.service).is_empty())
        .map(|n| ident(&n.service))
        .collect();
    for (node, m) in g.on_cluster_nodes() {
        out.push_str(&format!(
            "  node_{}[\"{}\"]\n",
            ident(node),
            quote(&format!("⚡ node {node}: {}", m.label))
        ));
    }
    if !faulty.is_empty() {
        out.push_str("  classDef fault stroke:#d00,stroke-width:3px\n");
        out.push_str(&format!("  class {} fault\n", faulty.join(",")));
    }
    out
}

/// Whether `from` calls `to` (rather than only a fault naming the link).
fn is_call(g: &Graph, from: &str, to: &str) -> bool {
    g.node(from)
        .is_some_and(|n| n.calls.iter().any(|c| c == to))
}

fn dot(g: &Graph) -> String {
    let mut out = String::from("digraph lab {\n  rankdir=LR;\n  node [shape=box];\n");
    for n in &g.nodes {
        let marks = g.on_node(&n.service);
        let mut label = format!("{} ({}){}", n.service, n.program, replicas(n));
        for m in &marks {
            label.push_str(&format!("\\n⚡ {}", m.label));
        }
        let style = if marks.is_empty() {
            ""
        } else {
            ", color=red, penwidth=2"
        };
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\"{style}];\n",
            n.service,
            quote(&label)
        ));
    }
    for (node, m) in g.on_cluster_nodes() {
        out.push_str(&format!(
            "  \"node {node}\" [label=\"{}\", shape=note, color=red];\n",
            quote(&format!("⚡ node {node}: {}", m.label))
        ));
    }
    for (from, to) in g.edges() {
        let marks = g.on_edge(&from, &to);
        let mut attrs = Vec::new();
        if !marks.is_empty() {
            let label: Vec<String> = marks.iter().map(|m| format!("⚡ {}", m.label)).collect();
            attrs.push(format!("label=\"{}\"", quote(&label.join("\\n"))));
            attrs.push("color=red".into());
        }
        if !is_call(g, &from, &to) {
            attrs.push("style=dashed, dir=none".into());
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        out.push_str(&format!("  \"{from}\" -> \"{to}\"{attrs};\n"));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::View;

    /// A lab as the supervisor keeps it: two faults, one on a link and one on a service.
    fn lab() -> State {
        let inst = |name: &str, service: &str, program: &str, calls: &[&str]| {
            serde_json::json!({
                "name": name, "service": service, "program": program, "ip": "10.66.0.2",
                "ports": [8080, 9090], "pid": 1, "restarts": 0, "status": "running",
                "calls": calls,
            })
        };
        serde_json::from_value(serde_json::json!({
            "id": "k3f9q", "scenario_id": "two-faults", "scenario_title": "t",
            "source": "bundled:two-faults", "seed": 1, "backend": "netns", "phase": "ready",
            "step": "ready", "error": null, "created_ms": 1, "ready_ms": 2,
            "supervisor_pid": null, "slot": 0, "book": null,
            "instances": [
                inst("gateway-0", "gateway", "gateway", &["api"]),
                inst("api-0", "api", "api", &["payments", "search"]),
                inst("api-1", "api", "api", &["payments", "search"]),
                inst("payments-0", "payments", "backend", &["ledger"]),
                inst("search-0", "search", "backend", &["ledger"]),
                inst("ledger-0", "ledger", "store", &[]),
                inst("loadgen", "loadgen", "loadgen", &["gateway"]),
            ],
            "faults": [{
                "number": 1, "start_ms": 3, "end_ms": null, "status": "active",
                "id": "lossy-ledger", "kind": "loss",
                "description": "12% packet loss on payments ↔ ledger",
                "error": null, "packets": 310,
                "target": {"kind": "link", "from": "payments", "to": "ledger", "direction": "both", "port": null}
            }, {
                "number": 2, "start_ms": 3, "end_ms": null, "status": "pending",
                "id": "slow-search", "kind": "delay",
                "description": "+200ms delay on search-0",
                "error": null, "packets": null,
                "target": {"kind": "service", "service": "search", "replica": 0, "direction": "both", "port": null}
            }],
            "workload": "w", "briefing_title": "b", "briefing": "b", "time_limit_s": null
        }))
        .unwrap()
    }

    const SECRETS: [&str; 7] = ["⚡", "lossy", "slow-search", "12%", "200ms", "#1", "dashed"];

    #[test]
    fn text_tree() {
        insta::assert_snapshot!(
            "text_learner",
            render(&lab().seen_by(View::Learner), Format::Text)
        );
        insta::assert_snapshot!("text_reveal", render(&lab(), Format::Text));
    }

    #[test]
    fn mermaid() {
        insta::assert_snapshot!(
            "mermaid_learner",
            render(&lab().seen_by(View::Learner), Format::Mermaid)
        );
        insta::assert_snapshot!("mermaid_reveal", render(&lab(), Format::Mermaid));
    }

    #[test]
    fn dot() {
        insta::assert_snapshot!(
            "dot_learner",
            render(&lab().seen_by(View::Learner), Format::Dot)
        );
        insta::assert_snapshot!("dot_reveal", render(&lab(), Format::Dot));
    }

    #[test]
    fn a_learner_graph_has_no_trace_of_the_faults() {
        for format in [Format::Text, Format::Mermaid, Format::Dot] {
            let learner = render(&lab().seen_by(View::Learner), format);
            for s in SECRETS {
                assert!(!learner.contains(s), "{format:?} shows `{s}`:\n{learner}");
            }
            let revealed = render(&lab(), format);
            assert!(
                revealed.contains("lossy-ledger") && revealed.contains("slow-search"),
                "{format:?}:\n{revealed}"
            );
        }
    }
}
