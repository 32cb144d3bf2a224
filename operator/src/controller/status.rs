//! Status: the `Ready` and `ResolvedRefs` conditions and `observedGeneration` of every object,
//! written through the status subresource by server-side apply — only when they change — and
//! the Kubernetes Events that go with a change for the worse (or back to good).
//!
//! | condition | `True` | `False` |
//! |---|---|---|
//! | `ResolvedRefs` | `ResolvedRefs`: every reference resolves | `DanglingReference`: each dangling reference, as the loader words it |
//! | `Ready` | `Valid` (warnings, if any, in the message) | `DanglingReference` (only dangling references), `InvalidSpec` (any other error), `DependencyNotReady` (valid, but cut or left out of the snapshot because of another object) |
//!
//! `lastTransitionTime` changes only when a condition's status does; a reconcile that finds
//! nothing changed writes nothing.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dialtone_model::resources::{Condition, ResourceStatus};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::cache::Part;
use super::reconcile::{Context, ReconcileError, ReconcileReport};
use super::validate::{NamespaceObjects, Validation, Verdict};
use crate::desired::common::MANAGER;

/// The condition types.
pub const READY: &str = "Ready";
/// See [`READY`].
pub const RESOLVED_REFS: &str = "ResolvedRefs";

/// Most status writes in flight at once.
const MAX_IN_FLIGHT: usize = 16;
/// Longest condition message (the API server's limit is 32 KiB).
const MAX_MESSAGE: usize = 8 * 1024;

/// One of the eight kinds, as the status writer needs it.
pub trait Kind:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + HasStatus<Status = ResourceStatus>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<T> Kind for T where
    T: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + HasStatus<Status = ResourceStatus>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn condition(type_: &str, ok: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: truncate(message),
        last_transition_time: None,
        observed_generation: None,
    }
}

/// The status a verdict gives, keeping each condition's `lastTransitionTime` from `current`
/// while its status is unchanged.
pub fn desired_status(
    verdict: &Verdict,
    generation: Option<i64>,
    current: Option<&ResourceStatus>,
    now: Timestamp,
) -> ResourceStatus {
    let resolved = if verdict.dangling.is_empty() {
        condition(
            RESOLVED_REFS,
            true,
            "ResolvedRefs",
            "every reference resolves".to_owned(),
        )
    } else {
        condition(
            RESOLVED_REFS,
            false,
            "DanglingReference",
            verdict.dangling.join("; "),
        )
    };
    let ready = if !verdict.errors.is_empty() {
        let reason = if verdict.errors.len() == verdict.dangling.len() {
            "DanglingReference"
        } else {
            "InvalidSpec"
        };
        condition(READY, false, reason, verdict.errors.join("; "))
    } else if !verdict.withheld.is_empty() {
        condition(
            READY,
            false,
            "DependencyNotReady",
            format!(
                "valid, but not published as written because of another object: {}",
                verdict.withheld.join("; ")
            ),
        )
    } else if verdict.warnings.is_empty() {
        condition(READY, true, "Valid", "valid".to_owned())
    } else {
        condition(
            READY,
            true,
            "Valid",
            format!("valid, with warnings: {}", verdict.warnings.join("; ")),
        )
    };
    let transition = now.to_string();
    let conditions = [ready, resolved]
        .into_iter()
        .map(|mut c| {
            let previous = current
                .into_iter()
                .flat_map(|s| s.conditions.iter())
                .find(|p| p.type_ == c.type_ && p.status == c.status);
            c.last_transition_time = Some(
                previous
                    .and_then(|p| p.last_transition_time.clone())
                    .unwrap_or_else(|| transition.clone()),
            );
            c.observed_generation = generation;
            c
        })
        .collect();
    ResourceStatus {
        observed_generation: generation,
        conditions,
    }
}

/// The status without transition times: what decides whether a write is needed.
fn comparable(status: &Value) -> Value {
    let mut v = status.clone();
    if let Some(conditions) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions {
            if let Some(c) = c.as_object_mut() {
                c.remove("lastTransitionTime");
            }
        }
    }
    v
}

fn ready_of(status: Option<&ResourceStatus>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == READY)
}

/// The Event for a change of `Ready`, if it deserves one: a new or different problem
/// (Warning), or the end of one (Normal).
fn event_for(old: Option<&Condition>, new: &Condition) -> Option<Event> {
    let was_false = old.is_some_and(|c| c.status == "False");
    if new.status == "False" {
        let same = old.is_some_and(|c| c.status == "False" && c.message == new.message);
        (!same).then(|| Event {
            type_: EventType::Warning,
            reason: new.reason.clone(),
            note: Some(truncate_note(&new.message)),
            action: "Validate".to_owned(),
            secondary: None,
        })
    } else {
        was_false.then(|| Event {
            type_: EventType::Normal,
            reason: "Valid".to_owned(),
            note: Some("the problems are resolved; the object is published".to_owned()),
            action: "Validate".to_owned(),
            secondary: None,
        })
    }
}

/// Events notes are limited to 1 kB.
fn truncate_note(text: &str) -> String {
    if text.len() <= 1000 {
        return text.to_owned();
    }
    let mut cut = 997;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// What one status write did.
struct Outcome {
    event: bool,
}

/// One pending status write (and its event).
type StatusWrite = Pin<Box<dyn Future<Output = Result<Outcome, ReconcileError>> + Send>>;

fn plan<K: Kind>(
    ctx: &Arc<Context>,
    ns: &str,
    objects: &[Arc<K>],
    validation: &Validation,
    now: Timestamp,
    tasks: &mut Vec<StatusWrite>,
) {
    let kind = K::kind(&());
    for object in objects {
        let name = object.name_any();
        let verdict = validation.verdict(&kind, &name);
        let key = (
            kind_static::<K>(),
            ns.to_owned(),
            name.clone(),
            Part::Status,
        );
        let stored = object.status();
        let stored_json = stored
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        let rv = object.resource_version();
        let current_json = ctx
            .written
            .current(&key, rv.as_deref(), stored_json.clone());
        let current: Option<ResourceStatus> = serde_json::from_value(current_json.clone()).ok();
        let desired = desired_status(&verdict, object.meta().generation, current.as_ref(), now);
        let desired_json = serde_json::to_value(&desired).unwrap_or(Value::Null);
        if comparable(&desired_json) == comparable(&current_json) {
            continue;
        }
        let event =
            ready_of(Some(&desired)).and_then(|new| event_for(ready_of(current.as_ref()), new));
        let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
        let ctx = ctx.clone();
        let reference = object.object_ref(&());
        let body = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {"name": name, "namespace": ns},
            "status": desired_json,
        });
        tasks.push(Box::pin(async move {
            let params = PatchParams::apply(MANAGER).force();
            api.patch_status(&name, &params, &Patch::Apply(&body))
                .await
                .map_err(|source| ReconcileError::Kube {
                    what: format!("write the status of {}/{name}", K::kind(&())),
                    source,
                })?;
            ctx.written.wrote(key, rv, desired_json);
            let mut published = false;
            if let Some(event) = event {
                match ctx.recorder.publish(&event, &reference).await {
                    Ok(()) => published = true,
                    Err(e) => tracing::warn!(object = %name, error = %e, "cannot record an event"),
                }
            }
            Ok(Outcome { event: published })
        }));
    }
}

/// The kind name as a `'static` str for cache keys.
fn kind_static<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "CallCenter" => "CallCenter",
        "Carrier" => "Carrier",
        "Schedule" => "Schedule",
        "Agent" => "Agent",
        "CallQueue" => "CallQueue",
        "ForwardingScheme" => "ForwardingScheme",
        "PhoneNumber" => "PhoneNumber",
        "Blocklist" => "Blocklist",
        _ => "Other",
    }
}

/// Writes every status that differs from the desired one.
pub async fn sync(
    ctx: &Arc<Context>,
    objects: &NamespaceObjects,
    validation: &Validation,
    now: Timestamp,
    report: &mut ReconcileReport,
) -> Result<(), ReconcileError> {
    let ns = objects.namespace.as_str();
    let mut tasks = Vec::new();
    plan(ctx, ns, &objects.call_centers, validation, now, &mut tasks);
    plan(ctx, ns, &objects.carriers, validation, now, &mut tasks);
    plan(ctx, ns, &objects.schedules, validation, now, &mut tasks);
    plan(ctx, ns, &objects.agents, validation, now, &mut tasks);
    plan(ctx, ns, &objects.queues, validation, now, &mut tasks);
    plan(ctx, ns, &objects.schemes, validation, now, &mut tasks);
    plan(ctx, ns, &objects.numbers, validation, now, &mut tasks);
    plan(ctx, ns, &objects.blocklists, validation, now, &mut tasks);
    let mut set = JoinSet::new();
    let mut first_error = None;
    let mut settle =
        |result: Option<Result<Result<Outcome, ReconcileError>, tokio::task::JoinError>>,
         report: &mut ReconcileReport| {
            match result {
                Some(Ok(Ok(outcome))) => {
                    report.status_writes += 1;
                    report.events += u64::from(outcome.event);
                }
                Some(Ok(Err(e))) => {
                    first_error.get_or_insert(e);
                }
                Some(Err(e)) => {
                    first_error.get_or_insert(ReconcileError::Task(e.to_string()));
                }
                None => {}
            }
        };
    for task in tasks {
        while set.len() >= MAX_IN_FLIGHT {
            settle(set.join_next().await, report);
        }
        set.spawn(task);
    }
    while !set.is_empty() {
        settle(set.join_next().await, report);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("an instant")
    }

    #[test]
    fn dangling_references_fail_both_conditions() {
        let verdict = Verdict {
            errors: vec!["spec.routes.open: ForwardingScheme \"x\" does not exist".to_owned()],
            dangling: vec!["spec.routes.open: ForwardingScheme \"x\" does not exist".to_owned()],
            ..Verdict::default()
        };
        let status = desired_status(&verdict, Some(3), None, at("2026-11-20T12:00:00Z"));
        assert_eq!(status.observed_generation, Some(3));
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "False")
        );
        assert_eq!(ready.reason, "DanglingReference");
        let refs = &status.conditions[1];
        assert_eq!(
            (refs.type_.as_str(), refs.status.as_str()),
            ("ResolvedRefs", "False")
        );
        assert!(refs.message.contains("ForwardingScheme \"x\""));
        assert_eq!(refs.observed_generation, Some(3));
    }

    #[test]
    fn transition_times_survive_an_unchanged_status() {
        let first = desired_status(
            &Verdict::default(),
            Some(1),
            None,
            at("2026-11-20T12:00:00Z"),
        );
        let again = desired_status(
            &Verdict::default(),
            Some(2),
            Some(&first),
            at("2026-11-21T12:00:00Z"),
        );
        assert_eq!(
            again.conditions[0].last_transition_time.as_deref(),
            Some("2026-11-20T12:00:00Z")
        );
        assert_eq!(again.observed_generation, Some(2));
    }

    #[test]
    fn events_mark_new_problems_and_their_end() {
        let good = condition(READY, true, "Valid", "valid".into());
        let bad = condition(READY, false, "InvalidSpec", "broken".into());
        assert!(event_for(None, &good).is_none());
        assert!(event_for(Some(&good), &bad).is_some());
        assert!(event_for(Some(&bad), &bad).is_none());
        assert!(event_for(Some(&bad), &good).is_some());
    }
}
