//! Queue callbacks: a caller who pressed the queue's callback digit hung up and kept their
//! place. Nobody polls the queue for them any more, so the router does: when such a caller is
//! at the head and a member can be reserved, the router orders an outbound callback on a media
//! node (the same `OriginateCallback` as `dialtone callback`), ringing the member first and
//! then the client, with the number the client called as caller ID. The entry leaves the queue
//! once the member picks up; if the member does not, the caller keeps the place and the next
//! member is tried.

use std::sync::Arc;
use std::time::Duration;

use dialtone_proto::v1 as pb;
use jiff::Timestamp;
use tokio::sync::watch;

use super::core::{RouterCore, State, target_now};
use crate::plan::carriers::{call_seed, order_carriers};
use crate::queues::Offer;

/// How often the heads of the queues are looked at.
const EVERY: Duration = Duration::from_secs(1);
/// How long a node gets to take an order.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// A callback whose node never reported back is forgotten after this long (the caller is
/// offered again).
const STALE_SECS: i64 = 600;

/// A queue callback under way.
#[derive(Debug, Clone)]
pub(crate) struct QueueCallback {
    /// The queue.
    pub(crate) queue: String,
    /// The queue entry's call id (the call that chose the callback).
    pub(crate) entry: String,
    /// When the order was sent.
    pub(crate) since: Timestamp,
}

/// One order to send, prepared under the lock.
struct Order {
    node_preference: Vec<String>,
    callback_call: String,
    entry: String,
    agent: String,
    command: pb::OriginateCallback,
}

impl RouterCore {
    /// Orders the queue callbacks that are due, every second, until `shutdown`.
    pub async fn run_queue_callbacks(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
            if self.nodes.node_ids().is_empty() {
                continue;
            }
            for order in self.due_queue_callbacks() {
                self.send_queue_callback(order).await;
            }
        }
    }

    /// The callbacks to order now: each reserves its member under the callback call's id.
    fn due_queue_callbacks(&self) -> Vec<Order> {
        let now = self.clock.now();
        let mut guard = self.lock();
        let st = &mut *guard;
        // Orders whose node never reported: the caller is offered again.
        let stale: Vec<String> = st
            .queue_callbacks
            .iter()
            .filter(|(_, cb)| now.duration_since(cb.since).as_secs() > STALE_SECS)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(cb) = st.queue_callbacks.remove(&id) {
                st.queues.set_dialling(&cb.entry, false);
            }
        }
        let mut orders = Vec::new();
        for (queue, entry, client) in st.queues.callback_heads() {
            let Ok(Offer::Ring {
                legs,
                ring_timeout_seconds,
                attempt,
                ..
            }) = st
                .queues
                .next_offer(&queue, &entry, &mut st.presence, now, &mut st.rng)
            else {
                continue;
            };
            // The offer reserved under the queue call's id; the callback is a call of its own,
            // and the node's leg events will carry its id: move the reservation over.
            let Some(agent) = legs.first().map(|t| t.agent().to_owned()) else {
                continue;
            };
            for token in &legs {
                let _ = st.presence.released(token, now);
            }
            let callback_call = format!("{entry}-cb{attempt}");
            let hold = ring_timeout_seconds.saturating_add(15);
            let Ok(token) = st.presence.reserve_for(&agent, &callback_call, hold, now) else {
                continue;
            };
            st.legs
                .insert((callback_call.clone(), agent.clone()), token);
            let target = target_now(st, &agent, now);
            let (caller_id, carriers) = caller_id_and_carriers(self, st, &client, now);
            st.queues.set_dialling(&entry, true);
            st.queue_callbacks.insert(
                callback_call.clone(),
                QueueCallback {
                    queue: queue.clone(),
                    entry: entry.clone(),
                    since: now,
                },
            );
            let node_preference = target
                .destinations
                .iter()
                .filter(|d| !d.node_id.is_empty())
                .map(|d| d.node_id.clone())
                .collect();
            orders.push(Order {
                node_preference,
                callback_call: callback_call.clone(),
                entry: entry.clone(),
                agent: agent.clone(),
                command: pb::OriginateCallback {
                    // The id the queue call announced in its CallbackOrdered event: the
                    // reporter ties the two calls together by it.
                    callback_id: format!("cb-{entry}"),
                    agent: Some(target),
                    to: client,
                    caller_id,
                    agent_ring_timeout: Some(prost_types::Duration {
                        seconds: i64::from(ring_timeout_seconds.max(5)),
                        nanos: 0,
                    }),
                    carriers,
                    ordered_by: "queue".into(),
                    call_id: callback_call,
                    origin: pb::CallbackOrigin::Queue as i32,
                },
            });
            tracing::info!(%queue, %entry, %agent, "queue callback due");
        }
        if !orders.is_empty() {
            self.publish(st, now);
        }
        orders
    }

    async fn send_queue_callback(&self, order: Order) {
        let failed = match self.nodes.pick(&order.node_preference) {
            None => Some("no media node".to_owned()),
            Some(node) => match self
                .nodes
                .command(
                    &node,
                    pb::node_command::Command::OriginateCallback(order.command),
                    COMMAND_TIMEOUT,
                )
                .await
            {
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            },
        };
        if let Some(why) = failed {
            tracing::warn!(entry = %order.entry, agent = %order.agent, error = %why, "queue callback not ordered; the caller keeps the place");
            let now = self.clock.now();
            let mut st = self.lock();
            st.queue_callbacks.remove(&order.callback_call);
            st.queues.set_dialling(&order.entry, false);
            if let Some(token) = st
                .legs
                .remove(&(order.callback_call.clone(), order.agent.clone()))
            {
                let _ = st.presence.released(&token, now);
            }
            self.publish(&mut st, now);
        }
    }
}

/// The caller ID for calling `client` back (the number they last dialled, else the first
/// PhoneNumber) and the carriers to dial through, in order.
fn caller_id_and_carriers(
    core: &RouterCore,
    st: &State,
    client: &str,
    now: Timestamp,
) -> (String, Vec<String>) {
    let applied = &st.applied;
    let caller_id = core
        .last_dialled(client)
        .filter(|n| applied.number(n).is_some())
        .or_else(|| applied.numbers.keys().next().cloned())
        .unwrap_or_default();
    let names: Vec<String> = match applied.number(&caller_id) {
        Some(n) if !n.carriers.is_empty() => n.carriers.clone(),
        _ => applied.carriers.keys().cloned().collect(),
    };
    let carriers = order_carriers(
        applied,
        &names,
        call_seed(Some(client), now.as_nanosecond()),
    );
    (caller_id, carriers)
}

/// What a leg event or a release means for a queue callback under way.
pub(super) fn on_leg_answered(st: &mut State, call_id: &str, agent: &str) {
    if let Some(cb) = st.queue_callbacks.remove(call_id) {
        // The member picked up: the promise of a callback is kept, the caller leaves.
        let _ = st.queues.answered(&cb.queue, &cb.entry, agent);
        tracing::info!(queue = %cb.queue, entry = %cb.entry, %agent, "queue callback picked up");
    }
}

/// The callback call released its agents (it ended) before the member picked up.
pub(super) fn on_released(st: &mut State, call_id: &str) {
    if let Some(cb) = st.queue_callbacks.remove(call_id) {
        st.queues.set_dialling(&cb.entry, false);
        tracing::info!(queue = %cb.queue, entry = %cb.entry, "queue callback not picked up; the caller keeps the place");
    }
}
