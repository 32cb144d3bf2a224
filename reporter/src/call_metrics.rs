//! The reporter's Prometheus metrics about calls: missed calls by reason, counted when a CDR is
//! finalised at ingestion, and the unprocessed backlog, refreshed from the store.
//!
//! The lead registers them once (`metrics.with_registry(|r| ingestor.metrics().register(r))`)
//! and spawns [`refresh_backlog`]. Clones share their values.
//!
//! A call is counted once per process: events are delivered at least once, so a resent
//! `CallEnded` must not count its call again. The calls counted lately are remembered (a
//! bounded set); a restart forgets them, which a Prometheus counter reset absorbs anyway.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dialtone_proto::v1::{IngestEvent, call_event, ingest_event};
use jiff::{SignedDuration, Timestamp};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::cdr::CdrStatus;
use crate::ingest::Ingestor;
use crate::reports::{self, Filter, View};
use crate::store::{ReportWindow, Store, StoreError};

/// How many finalised (or ended, awaiting a late event) calls are remembered.
const REMEMBERED: usize = 100_000;

type Labels = Vec<(String, String)>;

/// Call ids in arrival order, bounded: the oldest is forgotten first.
#[derive(Debug, Default)]
struct Bounded {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Bounded {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: &str) {
        if self.set.insert(id.to_owned()) {
            self.order.push_back(id.to_owned());
            while self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn remove(&mut self, id: &str) {
        // The order queue keeps the id until it ages out; `set` decides membership.
        self.set.remove(id);
    }
}

#[derive(Debug, Default)]
struct Seen {
    /// Calls whose final CDR was counted.
    counted: Bounded,
    /// Calls that ended but whose CDR was not complete yet (an earlier event still in a spool).
    ended: Bounded,
}

/// Missed calls by reason and the unprocessed backlog.
#[derive(Debug, Clone, Default)]
pub struct CallMetrics {
    missed: Family<Labels, Counter>,
    backlog: Gauge,
    seen: Arc<Mutex<Seen>>,
}

impl CallMetrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every metric in `registry`:
    ///
    /// - `dialtone_missed_calls_total{reason}`: inbound calls finalised as missed, by the
    ///   missed reason's code (`no_answer`, `outside_business_hours`, …);
    /// - `dialtone_unprocessed_backlog` (gauge): open unprocessed groups (PRODUCT.md's to-do
    ///   list) as last refreshed.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "dialtone_missed_calls",
            "Inbound calls finalised as missed, by missed reason",
            self.missed.clone(),
        );
        registry.register(
            "dialtone_unprocessed_backlog",
            "Open unprocessed groups (clients lost and not yet called back or handled)",
            self.backlog.clone(),
        );
    }

    /// Missed calls counted for `reason` (a [`crate::MissedReason`] code).
    pub fn missed(&self, reason: &str) -> u64 {
        self.missed
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .get()
    }

    /// The unprocessed backlog as last refreshed.
    pub fn backlog(&self) -> i64 {
        self.backlog.get()
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called once `events` are in the database: counts the calls among them whose CDR is now
    /// final. Only calls that ended (in this batch, or before with a gap still open) are read
    /// back, so a batch of mid-call events costs nothing.
    pub(crate) async fn on_stored(&self, store: &Store, events: &[IngestEvent]) {
        let candidates: Vec<String> = {
            let seen = self.seen();
            let mut ids: Vec<String> = events
                .iter()
                .filter_map(|e| match &e.event {
                    Some(ingest_event::Event::Call(c)) => Some(c),
                    _ => None,
                })
                .filter(|c| {
                    matches!(c.kind, Some(call_event::Kind::CallEnded(_)))
                        || seen.ended.contains(&c.call_id)
                })
                .map(|c| c.call_id.clone())
                .filter(|id| !seen.counted.contains(id))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        for call_id in candidates {
            match store.cdr(&call_id).await {
                Ok(Some(cdr)) if cdr.complete => {
                    let mut seen = self.seen();
                    if seen.counted.contains(&call_id) {
                        continue;
                    }
                    seen.counted.insert(&call_id);
                    seen.ended.remove(&call_id);
                    drop(seen);
                    if let (CdrStatus::Missed, Some(reason)) = (cdr.status, cdr.missed) {
                        self.missed
                            .get_or_create(&vec![("reason".to_owned(), reason.code().to_owned())])
                            .inc();
                    }
                }
                Ok(_) => self.seen().ended.insert(&call_id),
                Err(e) => {
                    tracing::debug!(call_id = %call_id, error = %e, "missed-call metric not updated")
                }
            }
        }
    }
}

/// The open unprocessed groups as of `now`, as the unprocessed report counts them: from the
/// groups the store keeps when it can, else from the window's CDRs.
///
/// # Errors
///
/// The store failed.
pub async fn unprocessed_backlog(
    store: &Store,
    policy: &crate::Policy,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let since = now
        .checked_sub(policy.unprocessed_window())
        .unwrap_or(Timestamp::MIN);
    let handlings = store.handlings_since(since).await?;
    if let Some(n) =
        crate::reports_service::fast::open_groups(store, policy, now, &handlings).await?
    {
        return Ok(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let until = now
        .checked_add(SignedDuration::from_nanos(1))
        .unwrap_or(now);
    let window = ReportWindow {
        from: since,
        to: until,
        context_from: since,
        context_to: until,
    };
    let cdrs = store.report_cdrs(&window).await?;
    Ok(reports::unprocessed(
        &cdrs,
        &handlings,
        policy,
        now,
        &Filter::default(),
        View::Open,
    )
    .len())
}

/// Refreshes `dialtone_unprocessed_backlog` every `every` until `stop` turns true. A store
/// failure keeps the last value (and says so at debug level: ingestion logs the outage).
pub async fn refresh_backlog(
    ingestor: Arc<Ingestor>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let policy = ingestor.policy();
        match unprocessed_backlog(ingestor.store(), &policy, Timestamp::now()).await {
            Ok(n) => {
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                ingestor.metrics().backlog.set(n);
            }
            Err(e) => tracing::debug!(error = %e, "unprocessed backlog not refreshed"),
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
