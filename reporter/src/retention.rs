//! Retention (`spec.reporter.retentionDays`): call records older than that are deleted, once
//! at start and then periodically, so a long-running reporter keeps its database bounded
//! without an operator's cron job.

use std::sync::Arc;
use std::time::Duration;

use dialtone_model::Snapshot;
use jiff::Timestamp;
use tokio::sync::watch;

use crate::store::{Deleted, Store, StoreError};

/// Applies the configured retention once, as of `now`.
///
/// # Errors
///
/// A database error (nothing is deleted then).
pub async fn apply(
    store: &Store,
    config: &watch::Receiver<Arc<Snapshot>>,
    now: Timestamp,
) -> Result<Deleted, StoreError> {
    // The loader validates 1..=3650; a value outside it (a snapshot built by hand) keeps
    // everything rather than deleting everything.
    let days = u32::try_from(config.borrow().call_center.spec.reporter.retention_days)
        .ok()
        .filter(|d| *d > 0);
    match days {
        Some(days) => store.delete_older_than(days, now).await,
        None => Ok(Deleted::default()),
    }
}

/// Applies retention now and every `every` (a day is plenty), until `stop` turns true. Errors
/// are logged and retried at the next round.
pub async fn run(
    store: Store,
    config: watch::Receiver<Arc<Snapshot>>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match apply(&store, &config, Timestamp::now()).await {
            Ok(deleted) if deleted != Deleted::default() => {
                tracing::info!(
                    cdrs = deleted.cdrs,
                    events = deleted.events,
                    agent_states = deleted.agent_states,
                    handlings = deleted.handlings,
                    "retention deleted old records"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention failed; retrying later"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}
