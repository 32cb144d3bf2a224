//! The reference graph between schemes and queues, for finding loops a caller could circle in.

use std::collections::{BTreeMap, BTreeSet};

use super::Manifests;
use crate::resources::common::TargetSpec;

/// A node of the graph: a scheme or a queue, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Scheme(String),
    Queue(String),
}

/// Whether a cycle is reported on a ForwardingScheme or a CallQueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleStart {
    /// On a ForwardingScheme.
    Scheme,
    /// On a CallQueue.
    Queue,
}

/// A loop, reported on its first object at the field that starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// Kind of the object the loop is reported on.
    pub kind: CycleStart,
    /// Its name.
    pub name: String,
    /// The field of its reference that starts the loop, e.g. `spec.steps[0].menu.options.1.scheme`.
    pub field: String,
    /// The loop, e.g. `main-menu → sales → main-menu`.
    pub path: Vec<String>,
}

fn edge(t: &TargetSpec, field: &str) -> Option<(Node, String)> {
    if let Some(s) = &t.scheme {
        return Some((Node::Scheme(s.clone()), format!("{field}.scheme")));
    }
    t.queue
        .as_ref()
        .map(|q| (Node::Queue(q.clone()), format!("{field}.queue")))
}

/// Every cycle through schemes and queues (menu options and defaults, queue steps, queue
/// overflow), each reported once, on the node that comes first by kind and name.
pub fn reference_cycles(m: &Manifests) -> Vec<Cycle> {
    // node → [(next node, field of the reference in node's object)]
    let mut graph: BTreeMap<Node, Vec<(Node, String)>> = BTreeMap::new();
    for s in &m.schemes {
        let name = s.resource.metadata.name.clone().unwrap_or_default();
        let out = graph.entry(Node::Scheme(name)).or_default();
        for (i, step) in s.resource.spec.steps.iter().enumerate() {
            let f = format!("spec.steps[{i}]");
            if let Some(menu) = &step.menu {
                for (key, t) in &menu.options {
                    out.extend(edge(t, &format!("{f}.menu.options.{key}")));
                }
                if let Some(d) = &menu.default {
                    out.extend(edge(d, &format!("{f}.menu.default")));
                }
            }
            if let Some(q) = &step.queue {
                out.push((Node::Queue(q.name.clone()), format!("{f}.queue.name")));
            }
        }
    }
    for q in &m.queues {
        let name = q.resource.metadata.name.clone().unwrap_or_default();
        let out = graph.entry(Node::Queue(name)).or_default();
        if let Some(o) = &q.resource.spec.overflow {
            out.extend(edge(&o.to, "spec.overflow.to"));
        }
    }
    let mut cycles = Vec::new();
    let mut seen: BTreeSet<BTreeSet<Node>> = BTreeSet::new();
    // Schemes first, so a loop through both is reported on a scheme.
    let mut starts: Vec<Node> = graph.keys().cloned().collect();
    starts.sort_by_key(|n| matches!(n, Node::Queue(_)));
    for start in starts {
        // Depth-first search for a path back to `start`; each path remembers the field of its
        // first edge.
        let mut stack: Vec<(Node, Vec<Node>, Option<String>)> =
            vec![(start.clone(), vec![start.clone()], None)];
        let mut visited: BTreeSet<Node> = BTreeSet::new();
        while let Some((node, path, first_field)) = stack.pop() {
            for (next, field) in graph.get(&node).into_iter().flatten() {
                let first = first_field.clone().unwrap_or_else(|| field.clone());
                if *next == start {
                    if seen.insert(path.iter().cloned().collect()) {
                        let mut names: Vec<String> = path.iter().map(label).collect();
                        names.push(label(&start));
                        let (kind, name) = match &start {
                            Node::Scheme(n) => (CycleStart::Scheme, n.clone()),
                            Node::Queue(n) => (CycleStart::Queue, n.clone()),
                        };
                        cycles.push(Cycle {
                            kind,
                            name,
                            field: first,
                            path: names,
                        });
                    }
                } else if visited.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p, Some(first)));
                }
            }
        }
    }
    cycles
}

fn label(n: &Node) -> String {
    match n {
        Node::Scheme(s) => s.clone(),
        Node::Queue(q) => format!("queue {q}"),
    }
}
