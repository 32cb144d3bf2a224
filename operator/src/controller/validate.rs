//! Validation with the shared loader, and what the operator publishes.
//!
//! The namespace's objects (from the controller's caches) become a [`Manifests`] with
//! [`Origin::Api`] and go through [`build_snapshot`], the same stage-2 checks as `dialtone up`
//! and `dialtone validate`. Each object gets a [`Verdict`]: its errors (which make it
//! `Ready=False`), the subset of them that are dangling references (`ResolvedRefs=False`), and its
//! warnings.
//!
//! # What is published when something is broken
//!
//! The snapshot must load in the components with the same loader, so it may not contain a
//! broken object nor a reference to one. [`publishable`] starts from every object and repeats
//! until the loader accepts the set:
//!
//! - a **dangling reference that can be cut** is cut, keeping the object: a PhoneNumber's route,
//!   backup or welcome prompt (a call arriving in that state finds no scheme and is recorded
//!   `no_forwarding_scheme` — the spec's rule for a broken reference in a cluster); one element
//!   of a list of names (a queue member, a ring target, a number's carrier);
//! - a **PhoneNumber** that is broken otherwise is published with no schedule and no routes, so
//!   its calls are still answered by the platform and recorded `no_forwarding_scheme` instead of
//!   being refused as an unknown number; only a bad `spec.number` drops it;
//! - **anything else broken is left out**, and the next round reports whatever referred to it,
//!   which is cut or left out in turn. Objects that are valid themselves but left out (or cut)
//!   because of another object get `Ready=False` with reason `DependencyNotReady`.
//!
//! A broken CallCenter is never published around: without it there is no snapshot at all, and
//! the operator keeps the last one it published.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dialtone_model::loader::{Environment, Manifests, Obj, Origin, PromptCatalog, build_snapshot};
use dialtone_model::problem::{ObjectRef, Problem, Severity};
use dialtone_model::resources::{
    Agent, Blocklist, CallCenter, CallQueue, Carrier, ForwardingScheme, PhoneNumber, Schedule,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::desired::snapshot::SNAPSHOT_NAME;

/// How many rounds of cutting and leaving out before giving up (each round removes at least one
/// problem, and chains of references are short).
const MAX_ROUNDS: usize = 32;

/// Every object of one namespace that validation needs, as the caches hold them.
#[derive(Debug, Clone, Default)]
pub struct NamespaceObjects {
    /// The namespace.
    pub namespace: String,
    /// CallCenters, oldest first (the loader takes the first as the namespace's).
    pub call_centers: Vec<Arc<CallCenter>>,
    /// Carriers.
    pub carriers: Vec<Arc<Carrier>>,
    /// Schedules.
    pub schedules: Vec<Arc<Schedule>>,
    /// Agents.
    pub agents: Vec<Arc<Agent>>,
    /// CallQueues.
    pub queues: Vec<Arc<CallQueue>>,
    /// ForwardingSchemes.
    pub schemes: Vec<Arc<ForwardingScheme>>,
    /// PhoneNumbers.
    pub numbers: Vec<Arc<PhoneNumber>>,
    /// Blocklists.
    pub blocklists: Vec<Arc<Blocklist>>,
    /// The namespace's Secrets, without the operator's own snapshot Secret.
    pub secrets: Vec<Arc<Secret>>,
    /// The prompts ConfigMap named by the (first) CallCenter, when it exists.
    pub prompts: Option<Arc<ConfigMap>>,
}

fn obj<K: Clone>(resource: &Arc<K>) -> Obj<K> {
    Obj {
        resource: (**resource).clone(),
        origin: Origin::Api,
    }
}

impl NamespaceObjects {
    /// The objects as the loader's input.
    pub fn manifests(&self) -> Manifests {
        fn all<K: Clone>(v: &[Arc<K>]) -> Vec<Obj<K>> {
            v.iter().map(obj).collect()
        }
        Manifests {
            namespace: Some(self.namespace.clone()),
            call_centers: all(&self.call_centers),
            carriers: all(&self.carriers),
            schedules: all(&self.schedules),
            agents: all(&self.agents),
            queues: all(&self.queues),
            schemes: all(&self.schemes),
            numbers: all(&self.numbers),
            blocklists: all(&self.blocklists),
            secrets: self
                .secrets
                .iter()
                .filter(|s| s.name_any() != SNAPSHOT_NAME)
                .map(obj)
                .collect(),
            broken: BTreeSet::new(),
        }
    }

    /// Which prompts exist: the keys `<name>.wav` of the CallCenter's prompts ConfigMap. Without
    /// `spec.prompts.configMap` prompts are not checked (the media nodes then have none to
    /// play, which the CallCenter's own checks leave to the user).
    pub fn environment(&self) -> Environment {
        let config_map = self
            .call_centers
            .first()
            .and_then(|cc| cc.spec.prompts.as_ref())
            .and_then(|p| p.config_map.clone());
        let prompts = match config_map {
            None => PromptCatalog::Unchecked,
            Some(name) => {
                let names = self
                    .prompts
                    .as_ref()
                    .map(|cm| {
                        let data = cm.data.iter().flat_map(|d| d.keys());
                        let binary = cm.binary_data.iter().flat_map(|d| d.keys());
                        data.chain(binary)
                            .filter_map(|k| k.strip_suffix(".wav"))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                let hint = if self.prompts.is_some() {
                    format!("add the key <name>.wav to ConfigMap {name}")
                } else {
                    format!(
                        "ConfigMap {name} named by the CallCenter's spec.prompts does not exist"
                    )
                };
                PromptCatalog::Known { names, hint }
            }
        };
        Environment { prompts }
    }
}

/// What validation says about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Its errors, as the loader words them (field path first).
    pub errors: Vec<String>,
    /// The errors that are dangling references: a named object, Secret, key, prompt or
    /// webhook that does not exist, or a selector that matches nothing.
    pub dangling: Vec<String>,
    /// Its warnings.
    pub warnings: Vec<String>,
    /// Valid itself, but cut or left out of the snapshot because of another object: why.
    pub withheld: Vec<String>,
}

impl Verdict {
    /// No error of its own.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Whether a loader message is a dangling reference.
pub fn is_dangling(message: &str) -> bool {
    message.contains(" does not exist")
        || message.contains(" has no key ")
        || message.contains(" matches no Agent")
}

/// The field path a loader message starts with (`spec.routes.open: …`), if any.
pub fn field_of(message: &str) -> Option<&str> {
    let (field, _) = message.split_once(": ")?;
    (field.starts_with("spec") || field.starts_with("data") || field.starts_with("metadata"))
        .then_some(field)
}

/// A later round's message about a reference to an object left out of the snapshot: the object
/// exists, it is just not published (`X "a" does not exist (known: …)` → `X "a" is not ready`).
fn withheld_message(message: &str) -> String {
    match message.split_once(" does not exist") {
        Some((head, _)) => format!("{head} is not ready"),
        None => message.to_owned(),
    }
}

/// The outcome of validating a namespace.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Per object (`Kind/name`); objects without problems have a default verdict.
    pub verdicts: BTreeMap<ObjectRef, Verdict>,
    /// Problems the loader could not attribute to one object.
    pub unattributed: Vec<String>,
    /// What to publish, or `None` when no valid snapshot can be built.
    pub published: Option<Manifests>,
}

impl Validation {
    /// The verdict of `Kind/name`.
    pub fn verdict(&self, kind: &str, name: &str) -> Verdict {
        self.verdicts
            .get(&ObjectRef::new(kind, name))
            .cloned()
            .unwrap_or_default()
    }

    /// Adds an error found after validation (e.g. when building the CallCenter's objects).
    pub fn add_error(&mut self, kind: &str, name: &str, message: String) {
        self.verdicts
            .entry(ObjectRef::new(kind, name))
            .or_default()
            .errors
            .push(message);
    }
}

fn record(verdicts: &mut BTreeMap<ObjectRef, Verdict>, p: &Problem) -> bool {
    let Some(object) = &p.object else {
        return false;
    };
    let v = verdicts.entry(object.clone()).or_default();
    match p.severity {
        Severity::Error => {
            if is_dangling(&p.message) {
                v.dangling.push(p.message.clone());
            }
            v.errors.push(p.message.clone());
        }
        Severity::Warning => v.warnings.push(p.message.clone()),
    }
    true
}

/// Validates the namespace's objects and decides what to publish.
pub fn validate(objects: &NamespaceObjects) -> Validation {
    let manifests = objects.manifests();
    let env = objects.environment();
    let report = build_snapshot(&manifests, &env);
    let mut validation = Validation::default();
    for p in &report.problems {
        if !record(&mut validation.verdicts, p) && p.severity == Severity::Error {
            validation.unattributed.push(p.to_string());
        }
    }
    for v in validation.verdicts.values_mut() {
        v.errors.dedup();
        v.dangling.dedup();
        v.warnings.dedup();
    }
    if validation.unattributed.is_empty() {
        validation.published = publishable(manifests, &env, report.problems, &mut validation);
    }
    validation
}

/// A segment of a loader field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn parse_field(field: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key.to_owned()));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let (index, after) = stripped.split_once(']')?;
            out.push(Segment::Index(index.parse().ok()?));
            rest = after;
        }
    }
    Some(out)
}

/// A change that keeps an object publishable without one dangling reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cut {
    /// Remove the field at this JSON pointer.
    Field(String),
    /// Remove element `index` of the array at this JSON pointer.
    Element(String, usize),
}

fn pointer(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Segment::Key(k) => format!("/{k}"),
            Segment::Index(i) => format!("/{i}"),
        })
        .collect()
}

/// How to cut a dangling reference at `field` of a `kind`, if it can be cut.
fn cut_for(kind: &str, field: &str) -> Option<Cut> {
    if kind == "CallCenter" {
        return None;
    }
    if kind == "PhoneNumber"
        && matches!(
            field,
            "spec.routes.open"
                | "spec.routes.closed"
                | "spec.routes.holiday"
                | "spec.backup"
                | "spec.welcome"
        )
    {
        return Some(Cut::Field(pointer(&parse_field(field)?)));
    }
    let segments = parse_field(field)?;
    let last_index = segments
        .iter()
        .rposition(|s| matches!(s, Segment::Index(_)))?;
    let tail = &segments[last_index + 1..];
    let tail_ok = match tail {
        [] => true,
        [Segment::Key(k)] => matches!(k.as_str(), "agent" | "queue" | "scheme"),
        _ => false,
    };
    let parent = &segments[..last_index];
    let in_steps = matches!(parent.last(), Some(Segment::Key(k)) if k == "steps");
    match (&segments[last_index], tail_ok && !in_steps) {
        (Segment::Index(i), true) => Some(Cut::Element(pointer(parent), *i)),
        _ => None,
    }
}

fn apply_cuts<K: Serialize + DeserializeOwned>(resource: &K, cuts: &[Cut]) -> Option<K> {
    let mut value = serde_json::to_value(resource).ok()?;
    let mut cuts = cuts.to_vec();
    cuts.sort();
    cuts.dedup();
    // Highest indices first, so earlier removals do not shift later ones.
    for cut in cuts.iter().rev() {
        match cut {
            Cut::Field(p) => {
                let (parent, key) = p.rsplit_once('/')?;
                value.pointer_mut(parent)?.as_object_mut()?.remove(key);
            }
            Cut::Element(p, i) => {
                let array = value.pointer_mut(p)?.as_array_mut()?;
                if *i < array.len() {
                    array.remove(*i);
                }
            }
        }
    }
    serde_json::from_value(value).ok()
}

/// A PhoneNumber that answers nothing but is still known: every call is recorded
/// `no_forwarding_scheme`.
fn unrouted(number: &PhoneNumber) -> Option<PhoneNumber> {
    let mut value = serde_json::to_value(number).ok()?;
    let spec = value.get_mut("spec")?.as_object_mut()?;
    for field in ["schedule", "backup", "welcome"] {
        spec.remove(field);
    }
    spec.insert("routes".to_owned(), Value::Object(Default::default()));
    serde_json::from_value(value).ok()
}

/// What happens to one broken object in a round.
enum Fate<K> {
    Replace(K),
    Drop,
}

fn decide<K: Serialize + DeserializeOwned>(
    kind: &str,
    resource: &K,
    errors: &[&Problem],
) -> Fate<K> {
    let cuts: Option<Vec<Cut>> = errors
        .iter()
        .map(|p| {
            let field = field_of(&p.message)?;
            if !is_dangling(&p.message) {
                return None;
            }
            cut_for(kind, field)
        })
        .collect();
    if let Some(cuts) = cuts
        && let Some(cut) = apply_cuts(resource, &cuts)
    {
        return Fate::Replace(cut);
    }
    Fate::Drop
}

/// Cuts and leaves out broken objects until the loader accepts the rest (see the module docs).
fn publishable(
    mut m: Manifests,
    env: &Environment,
    mut problems: Vec<Problem>,
    validation: &mut Validation,
) -> Option<Manifests> {
    let first_round: BTreeSet<ObjectRef> = validation
        .verdicts
        .iter()
        .filter(|(_, v)| !v.is_valid())
        .map(|(k, _)| k.clone())
        .collect();
    let mut unrouted_numbers: BTreeSet<String> = BTreeSet::new();
    for _ in 0..MAX_ROUNDS {
        let mut by_object: BTreeMap<ObjectRef, Vec<&Problem>> = BTreeMap::new();
        for p in problems.iter().filter(|p| p.severity == Severity::Error) {
            by_object.entry(p.object.clone()?).or_default().push(p);
        }
        if by_object.is_empty() {
            return Some(m);
        }
        for (object, errors) in &by_object {
            if !first_round.contains(object) {
                let v = validation.verdicts.entry(object.clone()).or_default();
                for e in errors {
                    let message = withheld_message(&e.message);
                    if !v.withheld.contains(&message) {
                        v.withheld.push(message);
                    }
                }
            }
        }
        macro_rules! kind {
            ($field:ident, $kind:literal) => {{
                let mut kept = Vec::with_capacity(m.$field.len());
                for o in std::mem::take(&mut m.$field) {
                    let name = o.resource.name_any();
                    match by_object.get(&ObjectRef::new($kind, name)) {
                        None => kept.push(o),
                        Some(errors) => {
                            if let Fate::Replace(resource) = decide($kind, &o.resource, errors) {
                                kept.push(Obj {
                                    resource,
                                    origin: Origin::Api,
                                });
                            }
                        }
                    }
                }
                m.$field = kept;
            }};
        }
        kind!(call_centers, "CallCenter");
        kind!(carriers, "Carrier");
        kind!(schedules, "Schedule");
        kind!(agents, "Agent");
        kind!(queues, "CallQueue");
        kind!(schemes, "ForwardingScheme");
        let mut kept = Vec::with_capacity(m.numbers.len());
        for o in std::mem::take(&mut m.numbers) {
            let name = o.resource.name_any();
            let Some(errors) = by_object.get(&ObjectRef::new("PhoneNumber", name.clone())) else {
                kept.push(o);
                continue;
            };
            let resource = match decide("PhoneNumber", &o.resource, errors) {
                Fate::Replace(resource) => Some(resource),
                Fate::Drop => {
                    let bad_number = errors
                        .iter()
                        .any(|p| field_of(&p.message) == Some("spec.number"));
                    // Unrouted once; a number that fails even so is left out.
                    (!bad_number && unrouted_numbers.insert(name))
                        .then(|| unrouted(&o.resource))
                        .flatten()
                }
            };
            if let Some(resource) = resource {
                kept.push(Obj {
                    resource,
                    origin: Origin::Api,
                });
            }
        }
        m.numbers = kept;
        kind!(blocklists, "Blocklist");
        if by_object.keys().any(|o| o.kind == "Secret") || m.call_centers.is_empty() {
            return None;
        }
        problems = build_snapshot(&m, env).problems;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths() {
        assert_eq!(
            parse_field("spec.steps[1].ring.targets[0].agent"),
            Some(vec![
                Segment::Key("spec".into()),
                Segment::Key("steps".into()),
                Segment::Index(1),
                Segment::Key("ring".into()),
                Segment::Key("targets".into()),
                Segment::Index(0),
                Segment::Key("agent".into()),
            ])
        );
        assert_eq!(
            field_of("spec.routes.open: ForwardingScheme \"x\" does not exist"),
            Some("spec.routes.open")
        );
        assert_eq!(field_of("defined twice (also at the API)"), None);
    }

    #[test]
    fn which_references_can_be_cut() {
        assert_eq!(
            cut_for("PhoneNumber", "spec.routes.open"),
            Some(Cut::Field("/spec/routes/open".into()))
        );
        assert_eq!(
            cut_for("CallQueue", "spec.members.agents[2]"),
            Some(Cut::Element("/spec/members/agents".into(), 2))
        );
        assert_eq!(
            cut_for("ForwardingScheme", "spec.steps[0].ring.targets[1].agent"),
            Some(Cut::Element("/spec/steps/0/ring/targets".into(), 1))
        );
        assert_eq!(
            cut_for("ForwardingScheme", "spec.steps[1].queue.name"),
            None
        );
        assert_eq!(cut_for("PhoneNumber", "spec.schedule"), None);
        assert_eq!(cut_for("CallCenter", "spec.webhooks[0].secretRef"), None);
    }
}
