//! Ingestion: the `dialtone.v1.Ingest` service.
//!
//! Media nodes (call events) and the router (agent state changes) send events over `Publish`
//! (a stream, acknowledged as batches are stored) or `PublishBatch`. An event is acknowledged
//! only once it is durable:
//!
//! 1. in the database — [`Store::ingest`] commits before it answers; or, when the database
//!    cannot take it (down, unreachable, full…),
//! 2. in the reporter's journal (`<data>/journal/`, see [`crate::journal`]), `fsync`ed before
//!    the acknowledgement. A background task ([`Ingestor::run`]) drains the journal into the
//!    database once it answers again, and on every start (so a journal left by a crash is
//!    replayed).
//!
//! When neither works (the journal's disk fails too) nothing is acknowledged and the sender
//! keeps the events in its spool and resends them. Every path is idempotent by event id, so
//! an event stored twice — resent after a lost acknowledgement, or replayed from the journal
//! after a crash between storing and deleting the segment — is counted once.
//!
//! After the database fails with a transient error the ingestor stays *degraded*: it journals
//! at once instead of waiting for the pool's acquire timeout on every batch, until a drain
//! succeeds.
//!
//! Each call whose `CallStarted` is in a batch gets a `reporter.ingest` span, a child of the
//! media node's `sip.invite` span (`CallStarted.traceparent`): one trace per call, media node →
//! router → reporter. Calls finalised by a batch update [`CallMetrics`].

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use dialtone_model::Snapshot;
use dialtone_proto::v1::ingest_server::{Ingest, IngestServer};
use dialtone_proto::v1::{IngestAck, IngestBatch, IngestEvent, call_event, ingest_event};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::call_metrics::CallMetrics;
use crate::journal::{Journal, JournalStats};
use crate::policy::Policy;
use crate::store::{self, Store, StoreError};

/// Events taken from a `Publish` stream into one store transaction, at most.
const MAX_BATCH: usize = 1000;

/// Why events could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The journal folder cannot be used.
    #[error("the journal in {dir} cannot be used: {source}")]
    Journal {
        /// The folder.
        dir: PathBuf,
        /// The file system's error.
        #[source]
        source: io::Error,
    },
    /// The database failed while draining the journal.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Neither the database nor the journal took the events: they are not acknowledged.
    #[error(
        "events not stored: the database failed ({database}) and so did the journal ({journal})"
    )]
    NotDurable {
        /// The database's error, or why it was skipped.
        database: String,
        /// The journal's error.
        #[source]
        journal: io::Error,
    },
}

/// Takes events into the store, falling back to the journal; drains the journal.
#[derive(Debug)]
pub struct Ingestor {
    store: Store,
    journal: Arc<Journal>,
    config: watch::Receiver<Arc<Snapshot>>,
    degraded: AtomicBool,
    drain_lock: tokio::sync::Mutex<()>,
    retry_every: Duration,
    metrics: CallMetrics,
}

fn ids(events: &[IngestEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(ingest_event::Event::Call(c)) => Some(c.event_id.clone()),
            Some(ingest_event::Event::AgentState(s)) => Some(s.event_id.clone()),
            None => None,
        })
        .collect()
}

/// A `reporter.ingest` span per call whose `CallStarted` is among `events`, continuing the
/// trace the media node started (`CallStarted.traceparent`; nothing to continue when empty).
fn call_spans(events: &[IngestEvent]) -> Vec<tracing::Span> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(ingest_event::Event::Call(c)) => match &c.kind {
                Some(call_event::Kind::CallStarted(s)) => Some((c, s)),
                _ => None,
            },
            _ => None,
        })
        .map(|(call, started)| {
            let span = tracing::info_span!(
                "reporter.ingest",
                call_id = %call.call_id,
                node_id = %call.node_id,
                trace_id = %call.trace_id
            );
            if !started.traceparent.is_empty() {
                let fields =
                    HashMap::from([("traceparent".to_owned(), started.traceparent.clone())]);
                let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&fields));
                // Fails only without the OpenTelemetry layer: nothing is exported then.
                let _ = span.set_parent(parent);
            }
            span
        })
        .collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

impl Ingestor {
    /// An ingestor over `store`, journaling under `<data_dir>/journal/`. The CallCenter's
    /// missed-call policy (which decides `abandoned_short` when CDRs are assembled) is read
    /// from `config` at each batch.
    ///
    /// # Errors
    ///
    /// [`IngestError::Journal`] when the journal folder cannot be created or read.
    pub fn open(
        store: Store,
        data_dir: &Path,
        config: watch::Receiver<Arc<Snapshot>>,
    ) -> Result<Ingestor, IngestError> {
        let dir = data_dir.join("journal");
        let journal = Journal::open(&dir).map_err(|source| IngestError::Journal { dir, source })?;
        Ok(Ingestor {
            store,
            journal: Arc::new(journal),
            config,
            degraded: AtomicBool::new(false),
            drain_lock: tokio::sync::Mutex::new(()),
            retry_every: Duration::from_secs(1),
            metrics: CallMetrics::new(),
        })
    }

    /// How often [`Ingestor::run`] retries draining while the database is away (default 1 s).
    #[must_use]
    pub fn with_retry_every(mut self, every: Duration) -> Self {
        self.retry_every = every;
        self
    }

    /// Missed calls by reason and the unprocessed backlog; register them in the process's
    /// registry to serve them.
    pub fn metrics(&self) -> &CallMetrics {
        &self.metrics
    }

    /// The store events go to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The missed-call policy in force.
    pub fn policy(&self) -> Policy {
        Policy::from(&self.config.borrow().call_center.spec.missed_calls)
    }

    /// True while events go to the journal because the database failed.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// What the journal holds.
    ///
    /// # Errors
    ///
    /// The journal folder cannot be read.
    pub fn journal_stats(&self) -> io::Result<JournalStats> {
        self.journal.stats()
    }

    /// Takes a batch of events: stores them, or journals them; answers which are durable
    /// (acknowledged) and which are refused for good.
    ///
    /// # Errors
    ///
    /// [`IngestError::NotDurable`] when neither the database nor the journal took them; nothing
    /// is acknowledged then (refusals are lost with it, and come again with the resend).
    pub async fn ingest(&self, events: Vec<IngestEvent>) -> Result<IngestAck, IngestError> {
        let mut ack = IngestAck::default();
        let mut valid = Vec::with_capacity(events.len());
        for event in events {
            match store::validate(&event) {
                Ok(()) => valid.push(event),
                Err(rejected) => ack.rejected.push(rejected),
            }
        }
        if valid.is_empty() {
            return Ok(ack);
        }
        // Held until the events are durable: the spans measure what storing the call took.
        let _spans = call_spans(&valid);
        let database = if self.is_degraded() {
            "skipped: the database failed recently".to_owned()
        } else {
            match self.store.ingest(&valid, &self.policy()).await {
                Ok(outcome) => {
                    if outcome.new_events > 0 {
                        self.metrics.on_stored(&self.store, &valid).await;
                    }
                    ack.event_ids = outcome.acked;
                    ack.rejected.extend(outcome.rejected);
                    return Ok(ack);
                }
                Err(e) => {
                    if e.is_transient() {
                        self.degraded.store(true, Ordering::Relaxed);
                    }
                    tracing::warn!(error = %e, events = valid.len(), "database failed; journaling events");
                    e.to_string()
                }
            }
        };
        let acked = ids(&valid);
        let journal = self.journal.clone();
        let batch = IngestBatch { events: valid };
        match blocking(move || journal.append(&batch)).await {
            Ok(()) => {
                ack.event_ids = acked;
                Ok(ack)
            }
            Err(journal) => {
                tracing::error!(error = %journal, "journal failed; events not acknowledged");
                Err(IngestError::NotDurable { database, journal })
            }
        }
    }

    /// Stores everything the journal holds, oldest first, deleting each segment once its
    /// events are in the database; when the journal is empty, checks that the database
    /// answers. Either way the ingestor is no longer degraded afterwards. Returns the number of
    /// events replayed.
    ///
    /// # Errors
    ///
    /// The database failed (the segments not yet stored stay for the next attempt), or the
    /// journal folder cannot be read.
    pub async fn drain(&self) -> Result<usize, IngestError> {
        let _one_drainer = self.drain_lock.lock().await;
        let journal_error = |source| IngestError::Journal {
            dir: self.journal.dir().to_owned(),
            source,
        };
        // While the database is away, check before sealing: sealing closes the segment being
        // written, and a new one per failed attempt would only multiply files.
        if self.is_degraded() {
            self.store.ping().await?;
        }
        let journal = self.journal.clone();
        let segments = blocking(move || journal.seal())
            .await
            .map_err(journal_error)?;
        if segments.is_empty() && !self.is_degraded() {
            self.store.ping().await?;
        }
        let mut replayed = 0;
        for segment in segments {
            let read = segment.clone();
            let batches = blocking(move || Journal::read(&read))
                .await
                .map_err(journal_error)?;
            let policy = self.policy();
            for batch in batches {
                let outcome = self.store.ingest(&batch.events, &policy).await?;
                for r in &outcome.rejected {
                    tracing::warn!(event_id = %r.event_id, reason = %r.reason, "journaled event refused");
                }
                if outcome.new_events > 0 {
                    self.metrics.on_stored(&self.store, &batch.events).await;
                }
                replayed += batch.events.len();
            }
            let journal = self.journal.clone();
            blocking(move || journal.remove(&segment))
                .await
                .map_err(journal_error)?;
        }
        if replayed > 0 {
            tracing::info!(events = replayed, "journal drained into the database");
        }
        self.degraded.store(false, Ordering::Relaxed);
        Ok(replayed)
    }

    /// The background task: drains the journal at start (replaying what a crash left) and
    /// then whenever it holds something or the database failed, every `retry_every`, until
    /// `stop` turns true.
    ///
    /// It also re-assembles every stored call when the configuration's `shortAbandonSeconds`
    /// changes (the only part of the policy a CDR depends on), so that old calls are judged
    /// like new ones. A change made while the reporter was stopped is not detected: call
    /// [`Store::rebuild_cdrs`] then.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut judged_with = self.policy().short_abandon_seconds;
        loop {
            let policy = self.policy();
            if policy.short_abandon_seconds != judged_with {
                match self.store.rebuild_cdrs(&policy).await {
                    Ok(n) => {
                        tracing::info!(
                            cdrs = n,
                            "CDRs re-assembled with the new shortAbandonSeconds"
                        );
                        judged_with = policy.short_abandon_seconds;
                    }
                    Err(e) => tracing::warn!(error = %e, "CDRs not re-assembled yet"),
                }
            }
            let pending = self.journal.stats().map(|s| s.segments > 0).unwrap_or(true);
            if (pending || self.is_degraded())
                && let Err(e) = self.drain().await
            {
                match &e {
                    // The database is still away: expected, and said when it went.
                    IngestError::Store(s) if s.is_transient() => {
                        tracing::debug!(error = %e, "journal not drained yet");
                    }
                    _ => tracing::error!(error = %e, "journal cannot be drained"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.retry_every) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }

    /// The gRPC service over this ingestor.
    pub fn service(self: &Arc<Self>) -> IngestServer<IngestService> {
        IngestServer::new(IngestService {
            ingestor: self.clone(),
        })
        .max_decoding_message_size(64 * 1024 * 1024)
    }
}

/// `dialtone.v1.Ingest` over an [`Ingestor`].
#[derive(Debug, Clone)]
pub struct IngestService {
    ingestor: Arc<Ingestor>,
}

fn unavailable(e: &IngestError) -> Status {
    Status::unavailable(format!("{e}; keep the events and resend them"))
}

/// The next message if one has already arrived: `Some(item)` (the stream's own `None` at its
/// end included), or `None` when the next one is not there yet.
async fn next_ready(
    stream: &mut Streaming<IngestEvent>,
) -> Option<Option<Result<IngestEvent, Status>>> {
    std::future::poll_fn(|cx| match Pin::new(&mut *stream).poll_next(cx) {
        Poll::Ready(item) => Poll::Ready(Some(item)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[tonic::async_trait]
impl Ingest for IngestService {
    type PublishStream = ReceiverStream<Result<IngestAck, Status>>;

    async fn publish(
        &self,
        request: Request<Streaming<IngestEvent>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        let mut inbound = request.into_inner();
        let (acks, rx) = mpsc::channel(16);
        let ingestor = self.ingestor.clone();
        tokio::spawn(async move {
            let mut open = true;
            while open {
                let first = match inbound.message().await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "publisher went away");
                        break;
                    }
                };
                // Take what has already arrived too: one transaction for a burst.
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match next_ready(&mut inbound).await {
                        Some(Some(Ok(event))) => batch.push(event),
                        Some(Some(Err(_)) | None) => {
                            open = false;
                            break;
                        }
                        None => break,
                    }
                }
                let reply = ingestor.ingest(batch).await.map_err(|e| unavailable(&e));
                let failed = reply.is_err();
                if acks.send(reply).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn publish_batch(
        &self,
        request: Request<IngestBatch>,
    ) -> Result<Response<IngestAck>, Status> {
        self.ingestor
            .ingest(request.into_inner().events)
            .await
            .map(Response::new)
            .map_err(|e| unavailable(&e))
    }
}
