//! Queues: callers waiting in arrival order, and the strategy that picks agents for the head.
//!
//! Like [`crate::presence`], a sans-IO core: the edge holds the [`QueueEngine`] and the
//! [`Presence`] behind one mutex and passes the current instant (and, for `random`, a seedable
//! `fastrand::Rng`). Offers reserve agents through [`Presence::reserve_for`], the one place
//! where availability is checked and counted at once, so `maxConcurrentCalls` holds across
//! callers, queues, ring steps and media nodes.
//!
//! Fairness is strict arrival order: only the caller at the head of a queue is offered agents;
//! everyone behind waits until the head is answered or leaves. A caller who asked for a
//! callback keeps their place; when they reach the head the offer says so, and the edge rings
//! the agent first and then calls the client back.

use std::collections::{BTreeMap, HashMap, VecDeque};

use dialtone_model::resources::queue::QueueStrategy;
use dialtone_model::snapshot::{QueueConfig, Snapshot, Target};
use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

use crate::presence::{LegToken, Presence, after};

/// Added to the ring timeout for the reservation hold, so a leg still ringing at the timeout is
/// never counted free before the media node reports it.
const HOLD_MARGIN_SECS: u32 = 10;

/// Requests the engine cannot honour (gRPC `NOT_FOUND` / `FAILED_PRECONDITION` at the edge).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueueError {
    #[error("unknown queue {0}")]
    UnknownQueue(String),
    #[error("call {call_id} is not waiting in queue {queue}")]
    NotQueued { queue: String, call_id: String },
    #[error("call {0} is not waiting in any queue")]
    UnknownCall(String),
    /// A call waits in one queue at a time; it must leave before joining another.
    #[error("call {call_id} already waits in queue {queue}")]
    InAnotherQueue { queue: String, call_id: String },
}

/// A caller's place: 1-based `position` among `waiting` callers, for announcements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub queue: String,
    pub position: u32,
    pub waiting: u32,
    pub joined_at: Timestamp,
    pub callback: bool,
}

/// One waiting caller as the live board shows it; `waited` is measured at the given instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCaller {
    pub call_id: String,
    pub caller: String,
    pub position: u32,
    pub joined_at: Timestamp,
    pub waited: SignedDuration,
    pub callback: bool,
}

/// Why a caller gets no agent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// Someone arrived earlier and is still waiting.
    NotFirst,
    /// At the head, but no member can be reserved now.
    NoMemberAvailable,
}

/// The answer to "which agents should ring for this caller?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Ring these reserved legs for `ring_timeout_seconds`; pass `wrap_up_seconds` to
    /// [`Presence::ended`]. `attempt` counts offers made to this caller (1-based). `callback`
    /// means the caller hung up keeping the place: ring the agent, then call `caller` back.
    Ring {
        legs: Vec<LegToken>,
        ring_timeout_seconds: u32,
        wrap_up_seconds: u32,
        attempt: u32,
        callback: bool,
        caller: String,
    },
    /// Keep waiting (hold music); ask again later or on a presence change.
    Wait { position: u32, reason: WaitReason },
}

/// One queue's line on the live board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    pub queue: String,
    pub strategy: QueueStrategy,
    pub longest_wait: Option<SignedDuration>,
    pub members: u32,
    pub available: u32,
    pub callers: Vec<WaitingCaller>,
}

#[derive(Debug, Clone)]
struct Entry {
    call_id: String,
    caller: String,
    joined_at: Timestamp,
    callback: bool,
    offers: u32,
    /// A callback for this entry is being made (the agent rings): not offered again until it
    /// fails.
    dialling: bool,
}

#[derive(Debug, Clone)]
struct QueueState {
    config: QueueConfig,
    callers: VecDeque<Entry>,
    /// Who answered last here, for `roundRobin` (survives configuration swaps).
    last_answered: Option<String>,
}

impl QueueState {
    fn index(&self, call_id: &str) -> Option<usize> {
        self.callers.iter().position(|e| e.call_id == call_id)
    }

    fn entry(&self, call_id: &str) -> Result<&Entry, QueueError> {
        self.callers
            .iter()
            .find(|e| e.call_id == call_id)
            .ok_or_else(|| QueueError::NotQueued {
                queue: self.config.name.clone(),
                call_id: call_id.to_owned(),
            })
    }

    fn place(&self, i: usize) -> Option<Place> {
        let e = self.callers.get(i)?;
        Some(Place {
            queue: self.config.name.clone(),
            position: count(i + 1),
            waiting: count(self.callers.len()),
            joined_at: e.joined_at,
            callback: e.callback,
        })
    }

    fn waiting(&self, now: Timestamp) -> Vec<WaitingCaller> {
        let line = self.callers.iter().enumerate();
        line.map(|(i, e)| WaitingCaller {
            call_id: e.call_id.clone(),
            caller: e.caller.clone(),
            position: count(i + 1),
            joined_at: e.joined_at,
            waited: now.duration_since(e.joined_at),
            callback: e.callback,
        })
        .collect()
    }

    /// Available members in the order the strategy wants them tried.
    fn candidates(
        &self,
        presence: &Presence,
        now: Timestamp,
        rng: &mut fastrand::Rng,
    ) -> Vec<&str> {
        let members = &self.config.members;
        let free = |m: &&String| presence.availability(m, now).available;
        let mut list: Vec<&str> = match self.config.strategy {
            QueueStrategy::RoundRobin => {
                // Start after whoever answered last; a departed member restarts the round.
                let last = self.last_answered.as_deref();
                let start = last
                    .and_then(|l| members.iter().position(|m| m == l))
                    .map_or(0, |i| i + 1);
                let round = members.iter().cycle().skip(start).take(members.len());
                round.filter(free).map(String::as_str).collect()
            }
            _ => members.iter().filter(free).map(String::as_str).collect(),
        };
        match self.config.strategy {
            QueueStrategy::RingAll | QueueStrategy::Linear | QueueStrategy::RoundRobin => {}
            // Idle first (an agent with two slots may be on a call), then `None` (never had a
            // call) before any instant, then by name.
            QueueStrategy::LongestIdle => list.sort_by_key(|m| {
                let busy = presence.active_legs(m, now) > 0;
                (busy, presence.last_call_ended_at(m), *m)
            }),
            QueueStrategy::FewestCalls => {
                list.sort_by_key(|m| (presence.answered_today(m, now), *m))
            }
            QueueStrategy::Random if !list.is_empty() => {
                let pick = rng.usize(..list.len());
                list.rotate_left(pick);
            }
            QueueStrategy::Random => {}
        }
        list
    }
}

/// Saturating `usize` → `u32` for positions and counts.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Every queue's waiting callers. One per router, beside [`Presence`] under the same mutex.
#[derive(Debug, Clone, Default)]
pub struct QueueEngine {
    queues: BTreeMap<String, QueueState>,
    /// Call → the queue it waits in, so `leave` and `position` need only the call.
    calls: HashMap<String, String>,
}

impl QueueEngine {
    /// The queues of a snapshot, nobody waiting.
    pub fn new(snapshot: &Snapshot) -> Self {
        let mut engine = QueueEngine::default();
        engine.apply_snapshot(snapshot);
        engine
    }

    /// Swaps in a new configuration. Queues that stay keep their callers and round-robin
    /// pointer; callers of removed queues are returned as `(queue, call_id)` so the edge can
    /// move them on (the running call keeps its plan, but there is no queue to wait in).
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Vec<(String, String)> {
        let mut evicted = Vec::new();
        let old = std::mem::take(&mut self.queues);
        for (name, state) in old {
            if snapshot.queues.contains_key(&name) {
                self.queues.insert(name, state);
            } else {
                for e in state.callers {
                    self.calls.remove(&e.call_id);
                    evicted.push((name.clone(), e.call_id));
                }
            }
        }
        for (name, config) in &snapshot.queues {
            let state = self
                .queues
                .entry(name.clone())
                .or_insert_with(|| QueueState {
                    config: config.clone(),
                    callers: VecDeque::new(),
                    last_answered: None,
                });
            state.config = config.clone();
        }
        evicted
    }

    fn queue(&self, queue: &str) -> Result<&QueueState, QueueError> {
        let unknown = || QueueError::UnknownQueue(queue.to_owned());
        self.queues.get(queue).ok_or_else(unknown)
    }

    fn queue_mut(&mut self, queue: &str) -> Result<&mut QueueState, QueueError> {
        let unknown = || QueueError::UnknownQueue(queue.to_owned());
        self.queues.get_mut(queue).ok_or_else(unknown)
    }

    /// Puts a call at the end of a queue. Idempotent: joining the same queue again returns the
    /// place already held (a media node may retry).
    pub fn join(
        &mut self,
        queue: &str,
        call_id: &str,
        caller: &str,
        now: Timestamp,
    ) -> Result<Place, QueueError> {
        if let Some(current) = self.calls.get(call_id) {
            if current != queue {
                let (queue, call_id) = (current.clone(), call_id.to_owned());
                return Err(QueueError::InAnotherQueue { queue, call_id });
            }
        } else {
            self.queue_mut(queue)?.callers.push_back(Entry {
                call_id: call_id.to_owned(),
                caller: caller.to_owned(),
                joined_at: now,
                callback: false,
                offers: 0,
                dialling: false,
            });
            self.calls.insert(call_id.to_owned(), queue.to_owned());
        }
        self.position(call_id)
            .ok_or_else(|| QueueError::UnknownCall(call_id.to_owned()))
    }

    /// Takes a call out of its queue (hung up, overflowed, gave up); returns the queue's name.
    /// Everyone behind moves up one place.
    pub fn leave(&mut self, call_id: &str) -> Option<String> {
        let queue = self.calls.remove(call_id)?;
        if let Some(state) = self.queues.get_mut(&queue) {
            state.callers.retain(|e| e.call_id != call_id);
        }
        Some(queue)
    }

    /// Callers at the head of their queue who chose a callback and are not being called back
    /// now: (queue, call id, client number). The router, not a media node, makes these
    /// callbacks — the callers have hung up.
    pub fn callback_heads(&self) -> Vec<(String, String, String)> {
        self.queues
            .iter()
            .filter_map(|(name, state)| {
                let head = state.callers.front()?;
                (head.callback && !head.dialling && !head.caller.is_empty())
                    .then(|| (name.clone(), head.call_id.clone(), head.caller.clone()))
            })
            .collect()
    }

    /// Marks a callback for `call_id` as under way (or no longer, when it failed: the caller
    /// keeps the place and is offered again).
    pub fn set_dialling(&mut self, call_id: &str, dialling: bool) {
        let Some(queue) = self.calls.get(call_id) else {
            return;
        };
        if let Some(e) = self
            .queues
            .get_mut(queue)
            .and_then(|s| s.callers.iter_mut().find(|e| e.call_id == call_id))
        {
            e.dialling = dialling;
        }
    }

    /// Where a call waits now.
    pub fn position(&self, call_id: &str) -> Option<Place> {
        let state = self.queues.get(self.calls.get(call_id)?)?;
        state.place(state.index(call_id)?)
    }

    /// The queue's callers in arrival order, with how long each has waited at `now`.
    pub fn waiting(&self, queue: &str, now: Timestamp) -> Result<Vec<WaitingCaller>, QueueError> {
        Ok(self.queue(queue)?.waiting(now))
    }

    /// How long the head of the queue has waited; `None` when nobody waits.
    pub fn longest_wait(
        &self,
        queue: &str,
        now: Timestamp,
    ) -> Result<Option<SignedDuration>, QueueError> {
        let head = self.queue(queue)?.callers.front();
        Ok(head.map(|e| now.duration_since(e.joined_at)))
    }

    /// Agents for a waiting call. Only the head of the queue gets an offer; the agents are
    /// chosen by the queue's strategy among members available now and each is reserved in
    /// `presence` before it is returned (`ringAll` reserves every available member, the other
    /// strategies the first one that can be reserved).
    pub fn next_offer(
        &mut self,
        queue: &str,
        call_id: &str,
        presence: &mut Presence,
        now: Timestamp,
        rng: &mut fastrand::Rng,
    ) -> Result<Offer, QueueError> {
        let state = self.queue_mut(queue)?;
        let i = state.index(call_id);
        let i = i.ok_or_else(|| QueueError::NotQueued {
            queue: queue.to_owned(),
            call_id: call_id.to_owned(),
        })?;
        if i > 0 {
            let position = count(i + 1);
            return Ok(Offer::Wait {
                position,
                reason: WaitReason::NotFirst,
            });
        }
        let config = &state.config;
        let hold = config.ring_timeout_seconds.saturating_add(HOLD_MARGIN_SECS);
        let mut legs = Vec::new();
        for agent in state.candidates(presence, now, rng) {
            if let Ok(leg) = presence.reserve_for(agent, call_id, hold, now) {
                legs.push(leg);
                if config.strategy != QueueStrategy::RingAll {
                    break;
                }
            }
        }
        let (ring_timeout_seconds, wrap_up_seconds) =
            (config.ring_timeout_seconds, config.wrap_up_seconds);
        let Some(head) = state.callers.front_mut().filter(|_| !legs.is_empty()) else {
            let reason = WaitReason::NoMemberAvailable;
            return Ok(Offer::Wait {
                position: 1,
                reason,
            });
        };
        head.offers = head.offers.saturating_add(1);
        Ok(Offer::Ring {
            legs,
            ring_timeout_seconds,
            wrap_up_seconds,
            attempt: head.offers,
            callback: head.callback,
            caller: head.caller.clone(),
        })
    }

    /// An agent answered a call of this queue: `roundRobin` continues after them, and the
    /// caller leaves the queue (a repeated report changes nothing more).
    pub fn answered(&mut self, queue: &str, call_id: &str, agent: &str) -> Result<(), QueueError> {
        self.queue_mut(queue)?.last_answered = Some(agent.to_owned());
        if self.calls.get(call_id).is_some_and(|q| q == queue) {
            self.leave(call_id);
        }
        Ok(())
    }

    /// The overflow target once the caller has waited `overflow.afterSeconds`. Callers who
    /// chose a callback are exempt: keeping their place is the promise made to them.
    pub fn overflow_due(
        &self,
        queue: &str,
        call_id: &str,
        now: Timestamp,
    ) -> Result<Option<Target>, QueueError> {
        let state = self.queue(queue)?;
        let e = state.entry(call_id)?;
        Ok(match &state.config.overflow {
            Some((secs, target)) if !e.callback && now >= after(e.joined_at, *secs) => {
                Some(target.clone())
            }
            _ => None,
        })
    }

    /// Whether the caller has waited `maxWaitSeconds` (then the scheme's next step runs).
    /// Callers who chose a callback are exempt, as for overflow.
    pub fn max_wait_reached(
        &self,
        queue: &str,
        call_id: &str,
        now: Timestamp,
    ) -> Result<bool, QueueError> {
        let state = self.queue(queue)?;
        let e = state.entry(call_id)?;
        Ok(!e.callback && now >= after(e.joined_at, state.config.max_wait_seconds))
    }

    /// The caller pressed the callback digit and hangs up: the entry keeps its place, and when
    /// it reaches the head its offer has `callback: true`.
    pub fn request_callback(&mut self, call_id: &str) -> Result<Place, QueueError> {
        let unknown = || QueueError::UnknownCall(call_id.to_owned());
        let queue = self.calls.get(call_id).ok_or_else(unknown)?;
        let state = self.queues.get_mut(queue).ok_or_else(unknown)?;
        let i = state.index(call_id).ok_or_else(unknown)?;
        if let Some(e) = state.callers.get_mut(i) {
            e.callback = true;
        }
        state.place(i).ok_or_else(unknown)
    }

    /// Every queue's line on the live board, by name.
    pub fn status(&self, presence: &Presence, now: Timestamp) -> Vec<QueueStatus> {
        let free = |m: &&String| presence.availability(m, now).available;
        self.queues
            .values()
            .map(|q| QueueStatus {
                queue: q.config.name.clone(),
                strategy: q.config.strategy,
                longest_wait: q.callers.front().map(|e| now.duration_since(e.joined_at)),
                members: count(q.config.members.len()),
                available: count(q.config.members.iter().filter(free).count()),
                callers: q.waiting(now),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
