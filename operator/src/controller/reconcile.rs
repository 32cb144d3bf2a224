//! One reconcile of a CallCenter, i.e. of its namespace:
//!
//! 1. **read** every object of the namespace from the watch caches (no request), and the
//!    generated internal token's current value ([`super::access`]);
//! 2. **validate** them with the shared loader ([`super::validate`]);
//! 3. **build** the desired objects ([`crate::desired`]) and the snapshot from what may be
//!    published — only for a valid CallCenter (the oldest one of the namespace);
//! 4. write the **status** of every object whose conditions changed ([`super::status`]),
//!    recording an Event for each new problem;
//! 5. **apply** the desired objects that are not in shape ([`super::apply`]);
//! 6. **requeue** on the operator's clock at the next campaign floor change or after the resync
//!    interval, whichever is first.
//!
//! A broken CallCenter stops at step 4: the workloads and the last published snapshot stay as
//! they were. Errors (API failures) retry with exponential backoff (see [`error_policy`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dialtone_model::resources::CallCenter;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};

use super::access::{InternalTokenError, internal_token};
use super::cache::{Timers, WriteCache};
use super::validate::{Validation, validate};
use super::watches::{Stores, StoresGone};
use super::{Observer, OperatorOptions, apply, status};
use crate::clock::{Clock, add};
use crate::desired::access::internal_token_secret;
use crate::desired::snapshot::SNAPSHOT_NAME;
use crate::desired::{
    BuildContext, BuildError, DesiredObject, SnapshotBundle, desired_objects,
    desired_snapshot_objects, next_floor_change,
};

/// First retry after a failed reconcile; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest wait between retries.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An API request failed.
    #[error("cannot {what}: {source}")]
    Kube {
        /// What the request was for.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The desired objects could not be built.
    #[error("cannot build the desired objects: {0}")]
    Build(#[source] BuildError),
    /// The CallCenter has no namespace (it came from somewhere else than the API).
    #[error("the CallCenter has no namespace")]
    NoNamespace,
    /// The watch caches are gone (shutting down).
    #[error(transparent)]
    StoresGone(#[from] StoresGone),
    /// The system's random source failed while generating the internal token.
    #[error("cannot generate the internal token: {0}")]
    Random(#[source] std::io::Error),
    /// A status-writing task failed.
    #[error("a status write task failed: {0}")]
    Task(String),
}

/// The writes one reconcile made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Status subresource patches.
    pub status_writes: u64,
    /// Server-side applies of desired objects.
    pub applies: u64,
    /// Events recorded.
    pub events: u64,
}

impl ReconcileReport {
    /// Every write request.
    pub fn writes(&self) -> u64 {
        self.status_writes + self.applies + self.events
    }
}

/// What every reconcile of one scope shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The operator's settings.
    pub options: Arc<OperatorOptions>,
    /// The operator's clock.
    pub clock: Arc<dyn Clock>,
    /// The watch caches.
    pub stores: Stores,
    /// Records Kubernetes Events.
    pub recorder: Recorder,
    /// What was last written.
    pub written: Arc<WriteCache>,
    /// Wake-ups on the clock.
    pub timers: Timers,
    /// Consecutive failures per CallCenter, for backoff.
    pub failures: Mutex<HashMap<ObjectRef<CallCenter>, u32>>,
    /// Counts for tests and metrics.
    pub observer: Observer,
}

impl Context {
    fn build_context(&self, now: jiff::Timestamp) -> BuildContext {
        let o = &self.options;
        BuildContext {
            image_pull_policy: o.image_pull_policy.clone(),
            operator_namespace: o.operator_namespace.clone(),
            sip_service_type: o.sip_service_type,
            log_level: o.log_level.clone(),
            otlp_endpoint: o.otlp_endpoint.clone(),
            ..BuildContext::new(o.image.clone(), now)
        }
    }

    async fn event(&self, cc: &CallCenter, type_: EventType, reason: &str, note: String) -> bool {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        match self.recorder.publish(&event, &cc.object_ref(&())).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record an event");
                false
            }
        }
    }
}

/// The snapshot, the generated internal token (when `internal_token` is given: see
/// [`super::access`]) and the workloads of a valid CallCenter, in apply order: the Secrets the
/// pods read exist before the Deployments that start them.
fn build(
    cc: &CallCenter,
    validation: &Validation,
    ctx: &BuildContext,
    internal_token: Option<&str>,
) -> Result<Option<Vec<DesiredObject>>, BuildError> {
    let Some(published) = &validation.published else {
        return Ok(None);
    };
    let bundle = SnapshotBundle::render(published)?;
    let mut objects = desired_snapshot_objects(cc, &bundle, ctx)?;
    if let Some(token) = internal_token
        && let Some(secret) = internal_token_secret(cc, token)?
    {
        objects.push(DesiredObject::GeneratedSecret(secret));
    }
    objects.extend(desired_objects(cc, ctx)?);
    Ok(Some(objects))
}

/// Reconciles one CallCenter and its namespace.
pub async fn reconcile(cc: Arc<CallCenter>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    ctx.stores.wait_ready().await?;
    let ns = cc.namespace().ok_or(ReconcileError::NoNamespace)?;
    let name = cc.name_any();
    let me = ObjectRef::from_obj(&*cc);
    if cc.metadata.deletion_timestamp.is_some() {
        // Owned objects go with it (garbage collection); nothing else to clean up.
        ctx.timers.cancel(&me);
        return Ok(Action::await_change());
    }
    let now = ctx.clock.now();
    let objects = ctx.stores.namespace_objects(&ns);
    let mut validation = validate(&objects);
    for problem in &validation.unattributed {
        tracing::warn!(namespace = %ns, %problem, "a problem the loader could not attribute");
    }
    let primary = objects
        .call_centers
        .first()
        .is_some_and(|first| first.metadata.uid == cc.metadata.uid);
    let build_ctx = ctx.build_context(now);
    let mut desired = None;
    if primary && validation.verdict("CallCenter", &name).is_valid() {
        // Read phase of the generated internal token: the existing Secret's value, kept.
        match internal_token(&ctx.stores, &ns, &cc) {
            Ok(token) => match build(&cc, &validation, &build_ctx, token.as_deref()) {
                Ok(d) => desired = d,
                Err(e) => validation.add_error("CallCenter", &name, e.to_string()),
            },
            Err(InternalTokenError::Random(e)) => return Err(ReconcileError::Random(e)),
            Err(e) => validation.add_error("CallCenter", &name, e.to_string()),
        }
    }

    let mut report = ReconcileReport::default();
    status::sync(&ctx, &objects, &validation, now, &mut report).await?;
    if let Some(desired) = &desired {
        let result = apply::apply_all(&ctx, &ns, desired, &mut report).await;
        match result {
            Ok(applied) => {
                if applied
                    .iter()
                    .any(|a| a.ends_with(&format!("/{SNAPSHOT_NAME}")))
                {
                    let note = format!(
                        "published the validated snapshot ({} resources)",
                        validation
                            .published
                            .as_ref()
                            .map(|m| {
                                m.call_centers.len()
                                    + m.carriers.len()
                                    + m.schedules.len()
                                    + m.agents.len()
                                    + m.queues.len()
                                    + m.schemes.len()
                                    + m.numbers.len()
                                    + m.blocklists.len()
                            })
                            .unwrap_or(0)
                    );
                    if ctx
                        .event(&cc, EventType::Normal, "SnapshotPublished", note)
                        .await
                    {
                        report.events += 1;
                    }
                }
            }
            Err(e) => {
                if ctx
                    .event(&cc, EventType::Warning, "ApplyFailed", e.to_string())
                    .await
                {
                    report.events += 1;
                }
                ctx.observer.record(&report, false);
                return Err(e);
            }
        }
    }

    let resync = add(now, ctx.options.resync_interval);
    let wake = next_floor_change(&cc.spec.media_nodes, now).map_or(resync, |t| t.min(resync));
    ctx.timers.schedule(me.clone(), wake);
    ctx.failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&me);
    tracing::debug!(
        namespace = %ns,
        call_center = %name,
        status_writes = report.status_writes,
        applies = report.applies,
        events = report.events,
        "reconciled"
    );
    ctx.observer.record(&report, true);
    Ok(Action::await_change())
}

/// After a failed reconcile: retry after 0.5 s, 1 s, 2 s, … up to 5 minutes.
pub fn error_policy(cc: Arc<CallCenter>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let me = ObjectRef::from_obj(&*cc);
    let mut failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
    let n = failures.entry(me).or_insert(0);
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::warn!(
        call_center = %cc.name_any(),
        namespace = cc.namespace().unwrap_or_default(),
        %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// The wait after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    BACKOFF_BASE.saturating_mul(1_u32 << exp).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }
}
