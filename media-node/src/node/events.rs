//! Call events: what the node tells the reporter about every call, one [`CallEvent`] per
//! thing that happened.
//!
//! The node only ever hands events to an [`EventSink`]; durability (spooling to disk,
//! resending until the reporter acknowledges) is the sink's job, so that the call path never
//! waits on the reporter or the disk.

use std::sync::Arc;

use dialtone_proto::v1::{CallEvent, call_event};
use tokio::sync::mpsc;

/// Where call events go. `emit` must not block: it is called from the node's actor.
pub trait EventSink: Send + Sync + 'static {
    /// Takes one event. Implementations queue it (memory channel, durable spool…).
    fn emit(&self, event: CallEvent);
}

/// A sink that forwards events into an unbounded channel: for tests, and for wiring the
/// node to an in-process consumer.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: mpsc::UnboundedSender<CallEvent>,
}

impl ChannelSink {
    /// A sink and the receiving end of its channel.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<CallEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ChannelSink { tx }, rx)
    }
}

impl EventSink for ChannelSink {
    fn emit(&self, event: CallEvent) {
        if self.tx.send(event).is_err() {
            tracing::debug!("call event dropped: the channel sink's receiver is gone");
        }
    }
}

/// A sink that only logs (debug level): for a node run without a reporter.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

impl EventSink for LogSink {
    fn emit(&self, event: CallEvent) {
        tracing::debug!(call_id = %event.call_id, sequence = event.sequence, kind = ?event.kind, "call event");
    }
}

/// The event stream of one call: ids `{call_id}-{sequence}`, sequence from 1 without gaps,
/// one trace id for the whole call.
pub(super) struct CallEvents {
    call_id: String,
    node_id: String,
    trace_id: String,
    sequence: u64,
    sink: Arc<dyn EventSink>,
}

impl CallEvents {
    pub(super) fn new(call_id: &str, node_id: &str, sink: Arc<dyn EventSink>) -> Self {
        CallEvents {
            call_id: call_id.to_owned(),
            node_id: node_id.to_owned(),
            // The trace of the span the call starts in (`sip.invite`) when it is traced, so
            // the CDR names a trace that exists; a random id otherwise, still one per call.
            trace_id: super::trace::current_trace_id()
                .unwrap_or_else(|| format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))),
            sequence: 0,
            sink,
        }
    }

    /// Emits one event stamped now.
    pub(super) fn emit(&mut self, kind: call_event::Kind) {
        self.sequence += 1;
        let event = CallEvent {
            event_id: format!("{}-{}", self.call_id, self.sequence),
            call_id: self.call_id.clone(),
            node_id: self.node_id.clone(),
            sequence: self.sequence,
            at: Some(now_ts()),
            trace_id: self.trace_id.clone(),
            kind: Some(kind),
        };
        self.sink.emit(event);
    }

    /// How many events were emitted.
    pub(super) fn count(&self) -> u64 {
        self.sequence
    }
}

/// Now as a protobuf timestamp.
pub(super) fn now_ts() -> prost_types::Timestamp {
    let now = jiff::Timestamp::now();
    prost_types::Timestamp {
        seconds: now.as_second(),
        nanos: now.subsec_nanosecond(),
    }
}

/// A protobuf duration.
pub(super) fn duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf duration as a std one (negative or absent: zero).
pub(super) fn from_duration(d: Option<&prost_types::Duration>) -> Option<std::time::Duration> {
    let d = d?;
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).unwrap_or(0);
    Some(std::time::Duration::new(secs, nanos))
}

/// The durable sink: every event is appended to the node's [`Spool`](crate::spool::Spool)
/// and the sender is woken to deliver it to the reporter.
///
/// Appending (a write and an `fdatasync`) happens on a writer thread of its own, never on the
/// thread that handles SIP: the events queued while one sync runs are written together with
/// one sync (group commit), so a busy node spends one sync per burst, not one per event. An
/// event is on disk a few milliseconds after `emit` returns; dropping the sink (the node
/// stopping) waits until every event emitted so far is on disk.
pub struct SpoolSink {
    queue: std::sync::Mutex<Option<std::sync::mpsc::Sender<CallEvent>>>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for SpoolSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolSink").finish_non_exhaustive()
    }
}

/// Most events written with one sync.
const GROUP_COMMIT: usize = 512;

impl SpoolSink {
    /// A sink over a spool shared with its sender task.
    pub fn new(
        spool: Arc<std::sync::Mutex<crate::spool::Spool>>,
        notify: Arc<tokio::sync::Notify>,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<CallEvent>();
        let writer = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < GROUP_COMMIT {
                        match rx.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    write_batch(&spool, &batch);
                    notify.notify_one();
                }
            })
            .ok();
        if writer.is_none() {
            tracing::error!(
                "the spool writer thread did not start: call events will not be spooled"
            );
        }
        SpoolSink {
            queue: std::sync::Mutex::new(Some(tx)),
            writer: std::sync::Mutex::new(writer),
        }
    }
}

/// Appends a batch; when the batch as a whole fails, event by event, so that one bad event
/// (too large) does not cost the others and each failure is logged with its call.
fn write_batch(spool: &std::sync::Mutex<crate::spool::Spool>, batch: &[CallEvent]) {
    // The lock is held for the appends (no await inside); a poisoned lock still holds a
    // consistent spool (appends are all-or-nothing on disk).
    let mut spool = spool
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if spool.append_batch(batch).is_ok() {
        return;
    }
    for event in batch {
        if spool.pending_contains(&event.event_id) {
            continue;
        }
        if let Err(e) = spool.append(event) {
            tracing::error!(
                call_id = %event.call_id,
                event_id = %event.event_id,
                error = %e,
                "call event NOT spooled: it will not reach the reporter"
            );
        }
    }
}

impl EventSink for SpoolSink {
    fn emit(&self, event: CallEvent) {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sent = queue.as_ref().is_some_and(|q| q.send(event).is_ok());
        if !sent {
            tracing::error!("call event NOT spooled: the spool writer has stopped");
        }
    }
}

impl Drop for SpoolSink {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what was emitted, then stop.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = writer
            && w.join().is_err()
        {
            tracing::error!("the spool writer thread panicked");
        }
    }
}
