//! The sender: streams the spool to the reporter's `dialtone.v1.Ingest/Publish` and
//! acknowledges in the spool what the reporter acknowledges.
//!
//! One session is one connection and one `Publish` stream. A session starts from the
//! beginning of the spool (everything not acknowledged is sent again: the reporter stores
//! each id once), then follows new events as [`tokio::sync::Notify`] announces them. It
//! ends when the stream breaks, the reporter stops acknowledging for
//! [`DeliverConfig::ack_timeout`], or shutdown is asked; the next session starts after an
//! exponential, capped and jittered back-off so that a fleet of media nodes does not hammer
//! a reporter that is coming back.
//!
//! The spool's lock is only taken to copy a batch out and to record acknowledgements,
//! never across an `await`, so call handling appending events never waits on the network.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialtone_proto::v1::ingest_client::IngestClient;
use dialtone_proto::v1::{IngestAck, IngestEvent, ingest_event};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use super::Spool;

/// Timing of the sender.
#[derive(Debug, Clone)]
pub struct DeliverConfig {
    /// First wait after a failed session.
    pub initial_backoff: Duration,
    /// Longest wait between attempts (the back-off doubles up to this).
    pub max_backoff: Duration,
    /// How long connecting and opening the stream may take.
    pub connect_timeout: Duration,
    /// How long sent events may stay unacknowledged before the session is considered
    /// stuck and restarted (which resends them).
    pub ack_timeout: Duration,
    /// Events copied out of the spool at a time (also the stream's buffer).
    pub batch: usize,
    /// The internal token shown to the reporter (a cluster's; none standalone).
    pub internal_token: dialtone_proto::internal::InternalToken,
}

impl Default for DeliverConfig {
    fn default() -> Self {
        DeliverConfig {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(30),
            batch: 256,
            internal_token: dialtone_proto::internal::InternalToken::default(),
        }
    }
}

/// Delivers the spool to the reporter at `ingest_url` (`http://host:port`) until
/// `shutdown` turns true (or its sender is dropped), with the default timing.
///
/// The edge appends to the spool and then calls `notify.notify_one()`; the permit is kept
/// if the sender is busy, so no wake-up is lost.
pub async fn deliver(
    spool: Arc<Mutex<Spool>>,
    ingest_url: String,
    notify: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) {
    deliver_with(
        DeliverConfig::default(),
        spool,
        ingest_url,
        notify,
        shutdown,
    )
    .await;
}

/// [`deliver`] with explicit timing.
pub async fn deliver_with(
    config: DeliverConfig,
    spool: Arc<Mutex<Spool>>,
    ingest_url: String,
    notify: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Connect only when there is something to send: an idle node does not keep
        // probing a reporter that is down.
        if pending(&spool) == 0 {
            tokio::select! {
                biased;
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                () = notify.notified() => {}
            }
            continue;
        }
        let mut session = Session {
            config: &config,
            spool: &spool,
            notify: &notify,
            shutdown: &mut shutdown,
            acknowledged: 0,
        };
        let end = session.run(&ingest_url).await;
        let progressed = session.acknowledged > 0;
        match end {
            End::Shutdown => return,
            End::Failed(why) => {
                if progressed {
                    attempt = 0;
                }
                let wait = backoff(&config, attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(
                    url = %ingest_url,
                    unacked = pending(&spool),
                    retry_in_ms = wait.as_millis() as u64,
                    "event delivery to the reporter interrupted: {why}"
                );
                tokio::select! {
                    biased;
                    changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                    () = sleep(wait) => {}
                }
            }
        }
    }
}

/// Unacknowledged events in the spool (0 if its lock is poisoned: nothing can be sent).
fn pending(spool: &Mutex<Spool>) -> usize {
    spool.lock().map_or(0, |s| s.len())
}

/// The wait before attempt `attempt` (0-based): `initial · 2^attempt`, capped at
/// `max_backoff`, then drawn uniformly from its upper half so that nodes cut off by the
/// same outage spread their reconnections.
pub(crate) fn backoff(config: &DeliverConfig, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
    let base = config
        .initial_backoff
        .saturating_mul(factor)
        .min(config.max_backoff);
    let ms = base.as_millis().min(u128::from(u64::MAX)) as u64;
    Duration::from_millis(fastrand::u64(ms / 2..=ms))
}

/// How a session ended.
enum End {
    Shutdown,
    Failed(String),
}

struct Session<'a> {
    config: &'a DeliverConfig,
    spool: &'a Mutex<Spool>,
    notify: &'a Notify,
    shutdown: &'a mut watch::Receiver<bool>,
    acknowledged: usize,
}

impl Session<'_> {
    async fn run(&mut self, url: &str) -> End {
        let endpoint = match Endpoint::from_shared(url.to_owned()) {
            Ok(e) => e.connect_timeout(self.config.connect_timeout),
            Err(e) => return End::Failed(format!("invalid ingest URL {url:?}: {e}")),
        };
        let channel = match timeout(self.config.connect_timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => return End::Failed(format!("cannot connect: {e}")),
            Err(_) => return End::Failed("connection timed out".to_owned()),
        };
        let mut client = IngestClient::new(self.config.internal_token.clone().channel(channel));
        let (tx, rx) = mpsc::channel::<IngestEvent>(self.config.batch.max(1));
        let mut outbox: VecDeque<(String, IngestEvent)> = VecDeque::new();
        let mut cursor: Option<u64> = None;
        let mut in_flight: HashSet<String> = HashSet::new();
        // The first batch is queued before the call so the reporter sees events with the
        // stream's opening.
        self.refill(&mut outbox, &mut cursor);
        while let Some((id, event)) = outbox.pop_front() {
            match tx.try_send(event) {
                Ok(()) => {
                    in_flight.insert(id);
                }
                Err(mpsc::error::TrySendError::Full(event))
                | Err(mpsc::error::TrySendError::Closed(event)) => {
                    outbox.push_front((id, event));
                    break;
                }
            }
        }
        let publish = client.publish(ReceiverStream::new(rx));
        let mut acks = match timeout(self.config.connect_timeout, publish).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return End::Failed(format!("Publish refused: {status}")),
            Err(_) => return End::Failed("Publish did not open in time".to_owned()),
        };
        let mut ack_deadline = Instant::now() + self.config.ack_timeout;
        loop {
            if outbox.is_empty() {
                self.refill(&mut outbox, &mut cursor);
            }
            let waiting = !in_flight.is_empty();
            tokio::select! {
                biased;
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        return End::Shutdown;
                    }
                }
                message = acks.message() => match message {
                    Ok(Some(ack)) => {
                        self.apply(ack, &mut in_flight);
                        ack_deadline = Instant::now() + self.config.ack_timeout;
                    }
                    Ok(None) => return End::Failed("the reporter closed the stream".to_owned()),
                    Err(status) => return End::Failed(format!("stream failed: {status}")),
                },
                permit = tx.reserve(), if !outbox.is_empty() => match (permit, outbox.pop_front()) {
                    (Ok(permit), Some((id, event))) => {
                        if in_flight.is_empty() {
                            ack_deadline = Instant::now() + self.config.ack_timeout;
                        }
                        in_flight.insert(id);
                        permit.send(event);
                    }
                    (Ok(_), None) => {}
                    (Err(_), _) => return End::Failed("the stream closed".to_owned()),
                },
                () = self.notify.notified(), if outbox.is_empty() => {}
                () = sleep_until(ack_deadline), if waiting => {
                    return End::Failed(format!(
                        "{} events unacknowledged for {:?}",
                        in_flight.len(),
                        self.config.ack_timeout
                    ));
                }
            }
        }
    }

    /// Copies the next batch after `cursor` out of the spool.
    fn refill(&self, outbox: &mut VecDeque<(String, IngestEvent)>, cursor: &mut Option<u64>) {
        let batch = match self.spool.lock() {
            Ok(spool) => spool.unacked_after(*cursor, self.config.batch.max(1)),
            Err(_) => return,
        };
        for (seq, event) in batch {
            *cursor = Some(seq);
            let id = event.event_id.clone();
            let event = IngestEvent {
                event: Some(ingest_event::Event::Call(event)),
            };
            outbox.push_back((id, event));
        }
    }

    /// Records an acknowledgement in the spool. Refused events are dropped too: the
    /// reporter will never take them, and keeping them would block nothing but fill disk.
    fn apply(&mut self, ack: IngestAck, in_flight: &mut HashSet<String>) {
        for rejected in &ack.rejected {
            tracing::error!(
                event_id = %rejected.event_id,
                reason = %rejected.reason,
                "the reporter refused a call event for good; dropping it from the spool"
            );
        }
        let ids: Vec<String> = ack
            .event_ids
            .into_iter()
            .chain(ack.rejected.into_iter().map(|r| r.event_id))
            .collect();
        for id in &ids {
            in_flight.remove(id);
        }
        let result = match self.spool.lock() {
            Ok(mut spool) => spool.ack(&ids),
            Err(_) => return,
        };
        match result {
            Ok(n) => self.acknowledged += n,
            // The events stay unacknowledged and are resent later; the reporter dedups.
            Err(e) => tracing::error!("cannot record acknowledgements in the spool: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let config = DeliverConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            ..DeliverConfig::default()
        };
        for _ in 0..50 {
            let first = backoff(&config, 0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(&config, 2);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = backoff(&config, 40);
            assert!(late >= Duration::from_secs(1) && late <= Duration::from_secs(2));
        }
    }
}
