//! Agent state changes from the router to the reporter, so reports know how many agents were
//! available in each hour.
//!
//! Changes are buffered in order and delivered in batches; a reporter that is down (or a
//! database outage the reporter cannot journal) is retried with backoff without ever blocking
//! the router. Ingestion is idempotent by event id, so a batch sent twice counts once.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_router::presence::{AgentState, StateChange};
use dialtone_router::service::convert;
use tokio::sync::{mpsc, watch};

/// Most changes kept while the reporter is unreachable; older ones are dropped with an error
/// log (a day of a large call center's changes fits many times over).
pub const BUFFER: usize = 200_000;

/// Delivers a batch; `Ok` once the reporter has it durably.
pub type Deliver = Box<
    dyn Fn(Vec<pb::IngestEvent>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Turns a change into the wire event. `source` names the router instance so event ids never
/// collide across restarts or replicas.
pub fn to_event(change: &StateChange, source: &str, sequence: u64) -> pb::IngestEvent {
    let state = convert::agent_state(&change.to) as i32;
    let away_label = match &change.to {
        AgentState::Away { label } => label.clone(),
        _ => String::new(),
    };
    pb::IngestEvent {
        event: Some(pb::ingest_event::Event::AgentState(pb::AgentStateEvent {
            event_id: format!("{source}-{sequence}"),
            agent: change.agent.clone(),
            state,
            away_label,
            at: Some(convert::ts(change.at)),
            previous_state: convert::agent_state(&change.from) as i32,
            cause: String::new(),
            source: source.to_owned(),
            sequence,
        })),
    }
}

/// A source name unique to this router process: its name plus its start instant, so event ids
/// (`source-sequence`) never repeat across restarts — a repeated id would be taken for a
/// duplicate and dropped.
pub fn source_name(name: &str) -> String {
    format!("{name}-{}", jiff::Timestamp::now().as_nanosecond())
}

/// Forwards changes until `shutdown`, then tries once more to deliver what is left.
pub async fn forward(
    mut changes: mpsc::UnboundedReceiver<StateChange>,
    source: String,
    deliver: Deliver,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pending: VecDeque<pb::IngestEvent> = VecDeque::new();
    let mut sequence = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        let stop = tokio::select! {
            change = changes.recv() => match change {
                Some(c) => {
                    sequence += 1;
                    pending.push_back(to_event(&c, &source, sequence));
                    while let Ok(c) = changes.try_recv() {
                        sequence += 1;
                        pending.push_back(to_event(&c, &source, sequence));
                    }
                    false
                }
                None => true,
            },
            _ = shutdown.changed() => true,
            _ = tokio::time::sleep(backoff), if !pending.is_empty() => false,
        };
        while pending.len() > BUFFER {
            pending.pop_front();
            tracing::error!(
                "agent state events dropped: the reporter has been unreachable too long"
            );
        }
        if !pending.is_empty() {
            let batch: Vec<pb::IngestEvent> = pending.iter().take(500).cloned().collect();
            let n = batch.len();
            match deliver(batch).await {
                Ok(()) => {
                    pending.drain(..n);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(error = %e, pending = pending.len(), "agent state events not delivered yet; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        if stop {
            return;
        }
    }
}
