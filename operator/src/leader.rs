//! Leader election through a `coordination.k8s.io/v1` Lease, so that of the operator's replicas
//! only one acts.
//!
//! The algorithm is client-go's `leaderelection` with a Lease lock, written on `Api<Lease>` with
//! optimistic concurrency (every takeover and renewal is a `replace` carrying the
//! resourceVersion it read; a conflict means another replica wrote first):
//!
//! - **Acquire.** A replica reads the Lease (creating it, held by itself, when it does not exist).
//!   It takes the Lease over when it has no holder, or when the holder has not renewed it for
//!   `lease_duration`. Expiry is measured on the candidate's own clock from the moment it
//!   *observed* the current record (holder, renew time, transitions) — never by comparing
//!   another replica's clock with its own, so clock skew between nodes does not matter.
//! - **Renew.** The leader renews every `retry_period`. A renewal that fails (API errors,
//!   conflicts) is retried; if none succeeds within `renew_deadline` of the last success, or the
//!   Lease turns out to be held by someone else, leadership is lost: the controller stops.
//!   `renew_deadline < lease_duration`, so a leader cut off from the API server stops acting
//!   before anyone else may take over.
//! - **Release.** On shutdown the leader clears the holder, so a standby takes over at its next
//!   retry instead of waiting for the lease to expire.
//!
//! Time comes from the injected [`Clock`]: tests drive expiry with a [`crate::clock::ManualClock`].

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

use crate::clock::{Clock, add};

/// The Lease's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a Lease stays held without renewal before a standby may take it over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often the leader renews, and standbys check the Lease.
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    /// client-go's defaults: 15 s, 10 s, 2 s.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaseTimings {
    /// Checks `retry_period < renew_deadline < lease_duration`.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("the retry period must be positive".to_owned());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the retry period ({:?}) must be shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        if self.lease_duration.as_secs() > i32::MAX as u64 || self.lease_duration.as_secs() == 0 {
            return Err("the lease duration must be between 1 s and i32::MAX s".to_owned());
        }
        Ok(())
    }
}

/// Why the leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadershipLost {
    /// Another replica holds the Lease.
    TakenBy(String),
    /// No renewal succeeded within the renew deadline.
    RenewDeadlineExceeded(String),
}

impl std::fmt::Display for LeadershipLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TakenBy(holder) => write!(f, "the lease is now held by {holder}"),
            Self::RenewDeadlineExceeded(e) => {
                write!(
                    f,
                    "could not renew the lease within the renew deadline: {e}"
                )
            }
        }
    }
}

/// The part of a Lease record whose change shows its holder is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    acquire_time: Option<Timestamp>,
    transitions: Option<i32>,
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the Lease (acquired or renewed).
    Leading,
    /// Another replica holds it, and it has not expired.
    Following(String),
}

fn to_k8s(t: Timestamp) -> MicroTime {
    let nanos = t.as_nanosecond();
    MicroTime(
        k8s_openapi::jiff::Timestamp::from_nanosecond(nanos)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

fn from_k8s(t: &MicroTime) -> Option<Timestamp> {
    Timestamp::from_nanosecond(t.0.as_nanosecond()).ok()
}

fn record_of(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity.filter(|h| !h.is_empty()),
        renew_time: spec.renew_time.as_ref().and_then(from_k8s),
        acquire_time: spec.acquire_time.as_ref().and_then(from_k8s),
        transitions: spec.lease_transitions,
    }
}

/// One replica's side of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    clock: Arc<dyn Clock>,
    /// The last record seen and when (on this replica's clock).
    observed: Option<(Record, Timestamp)>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lease", &self.name)
            .field("identity", &self.identity)
            .field("timings", &self.timings)
            .finish()
    }
}

impl LeaderElector {
    /// An elector for Lease `name` (in `api`'s namespace) as `identity` (the pod name).
    pub fn new(
        api: Api<Lease>,
        name: impl Into<String>,
        identity: impl Into<String>,
        timings: LeaseTimings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            timings,
            clock,
            observed: None,
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn spec(&self, now: Timestamp, acquire: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.timings.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(to_k8s(acquire)),
            renew_time: Some(to_k8s(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to acquire or renew the Lease.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = self.clock.now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observed = Some((record_of(&created), now));
                    Ok(Attempt::Leading)
                }
                // Another replica created it first: look again next time.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    Ok(Attempt::Following(String::from("another replica")))
                }
                Err(e) => Err(e),
            };
        };
        let record = record_of(&lease);
        let observed_at = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => now,
        };
        self.observed = Some((record.clone(), observed_at));
        let mine = record.holder.as_deref() == Some(self.identity.as_str());
        if let Some(holder) = &record.holder
            && !mine
            && add(observed_at, self.timings.lease_duration) > now
        {
            return Ok(Attempt::Following(holder.clone()));
        }
        let transitions = record.transitions.unwrap_or(0);
        let (acquire, transitions) = if mine {
            (record.acquire_time.unwrap_or(now), transitions)
        } else {
            (now, transitions.saturating_add(1))
        };
        let mut updated = lease.clone();
        updated.spec = Some(self.spec(now, acquire, transitions));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                self.observed = Some((record_of(&written), now));
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following(
                record
                    .holder
                    .unwrap_or_else(|| "another replica".to_owned()),
            )),
            Err(e) => Err(e),
        }
    }

    /// Campaigns until this replica leads, checking every `retry_period`.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return;
                }
                Ok(Attempt::Following(holder)) => {
                    tracing::debug!(lease = %self.name, %holder, "standing by");
                }
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "cannot read the lease"),
            }
            self.clock.sleep(self.timings.retry_period).await;
        }
    }

    /// While leading: renews every `retry_period`; returns when leadership is lost.
    pub async fn hold(&mut self) -> LeadershipLost {
        let mut last_renewal = self.clock.now();
        loop {
            self.clock.sleep(self.timings.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => last_renewal = self.clock.now(),
                Ok(Attempt::Following(holder)) => return LeadershipLost::TakenBy(holder),
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "cannot renew the lease");
                    if add(last_renewal, self.timings.renew_deadline) <= self.clock.now() {
                        return LeadershipLost::RenewDeadlineExceeded(e.to_string());
                    }
                }
            }
        }
    }

    /// Gives the Lease up if this replica holds it, so a standby takes over at once.
    pub async fn release(&mut self) {
        let lease = match self.api.get_opt(&self.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, "cannot release the lease");
                return;
            }
        };
        if record_of(&lease).holder.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        let mut released = lease.clone();
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(to_k8s(self.clock.now()));
        }
        match self
            .api
            .replace(&self.name, &PostParams::default(), &released)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released the lease"),
            Err(e) => tracing::warn!(lease = %self.name, error = %e, "cannot release the lease"),
        }
        self.observed = None;
    }
}
