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

fn edge(t: &TargetSpec) -> Option<Node> {
    t.scheme
        .clone()
        .map(Node::Scheme)
        .or_else(|| t.queue.clone().map(Node::Queue))
}

/// Every cycle through schemes (menu options and defaults, queue steps, queue overflow), as
/// scheme and queue names from the first scheme back to itself; each cycle reported once.
pub fn scheme_cycles(m: &Manifests) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
    for s in &m.schemes {
        let name = s.resource.metadata.name.clone().unwrap_or_default();
        let out = graph.entry(Node::Scheme(name)).or_default();
        for step in &s.resource.spec.steps {
            if let Some(menu) = &step.menu {
                out.extend(menu.options.values().filter_map(edge));
                out.extend(menu.default.as_ref().and_then(edge));
            }
            if let Some(q) = &step.queue {
                out.insert(Node::Queue(q.name.clone()));
            }
        }
    }
    for q in &m.queues {
        let name = q.resource.metadata.name.clone().unwrap_or_default();
        let out = graph.entry(Node::Queue(name)).or_default();
        if let Some(o) = &q.resource.spec.overflow {
            out.extend(edge(&o.to));
        }
    }
    let mut cycles: Vec<Vec<String>> = Vec::new();
    let mut seen_sets: BTreeSet<BTreeSet<Node>> = BTreeSet::new();
    let starts: Vec<Node> = graph
        .keys()
        .filter(|n| matches!(n, Node::Scheme(_)))
        .cloned()
        .collect();
    for start in starts {
        // Iterative DFS for a path from `start` back to `start`.
        let mut stack: Vec<(Node, Vec<Node>)> = vec![(start.clone(), vec![start.clone()])];
        let mut visited: BTreeSet<Node> = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if *next == start {
                    let set: BTreeSet<Node> = path.iter().cloned().collect();
                    if seen_sets.insert(set) {
                        let mut names: Vec<String> = path.iter().map(name).collect();
                        names.push(name(&start));
                        cycles.push(names);
                    }
                } else if visited.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    cycles
}

fn name(n: &Node) -> String {
    match n {
        Node::Scheme(s) => s.clone(),
        Node::Queue(q) => format!("queue {q}"),
    }
}
