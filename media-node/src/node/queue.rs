//! Queue steps through the router's queue engine: join, poll QueueNextAgent for offers,
//! ring the offered (already reserved) agents, leave when answered, hung up, overflowing or
//! past the maximum wait. What the waiting caller hears and the callback digit are in
//! [`super::hold`].

use std::time::{Duration, Instant};

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;

use super::actor::{Node, Timer, TimerKind};
use super::ending::Ending;
use super::events::{duration, from_duration};
use super::plan::{Mode, QueueState};
use super::router::{ReplyBody, Report};

/// Shortest pause between two polls (the router may say 0).
const MIN_POLL: Duration = Duration::from_millis(200);

impl Node {
    pub(super) fn start_queue(&mut self, key: &str, step: pb::QueueStep) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let id = call.exec.generation;
        call.exec.mode = Mode::Queue { waiting: true };
        let now = Instant::now();
        let max_wait = from_duration(step.max_wait.as_ref()).filter(|d| !d.is_zero());
        let overflow = from_duration(step.overflow_after.as_ref())
            .filter(|d| !d.is_zero() && step.overflow.is_some());
        let req = pb::QueueJoinRequest {
            call_id: key.to_owned(),
            queue: step.queue.clone(),
            caller: call.caller_number.clone(),
            node_id: self.cfg.node_id.clone(),
        };
        call.queue = Some(QueueState {
            id,
            step,
            joined: now,
            announced: None,
            callback_pending: false,
        });
        let generation = call.exec.generation;
        self.router.queue_join(key, generation, req);
        self.start_hold(key);
        if let Some(d) = max_wait {
            self.arm(
                now + d,
                Timer {
                    call: key.to_owned(),
                    generation: id,
                    kind: TimerKind::QueueMaxWait,
                },
            );
        }
        if let Some(d) = overflow {
            self.arm(
                now + d,
                Timer {
                    call: key.to_owned(),
                    generation: id,
                    kind: TimerKind::QueueOverflow,
                },
            );
        }
    }

    pub(super) fn on_queue_joined(&mut self, key: &str, generation: u64, body: ReplyBody) {
        let ReplyBody::QueueJoined(result) = body else {
            return;
        };
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        if call.exec.generation != generation {
            return;
        }
        let Some(queue) = call.queue.as_ref().map(|q| q.step.queue.clone()) else {
            return;
        };
        match result {
            Ok(r) => {
                call.emit(Kind::QueueJoined(pb::QueueJoined {
                    queue: queue.clone(),
                    position: r.position,
                }));
                tracing::info!(call_id = %key, %queue, position = r.position, "queue joined");
                self.announce_position(key, r.position);
                self.queue_poll(key);
            }
            Err(e) => {
                tracing::warn!(call_id = %key, %queue, error = %e, "QueueJoin failed: next step");
                call.queue = None;
                self.advance(key);
            }
        }
    }

    /// Asks the router for agents to ring.
    pub(super) fn queue_poll(&mut self, key: &str) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(queue) = call.queue.as_ref().map(|q| q.step.queue.clone()) else {
            return;
        };
        call.exec.mode = Mode::Queue { waiting: true };
        let generation = call.exec.generation;
        self.router.queue_next(
            key,
            generation,
            pb::QueueNextAgentRequest {
                call_id: key.to_owned(),
                queue,
                node_id: self.cfg.node_id.clone(),
            },
        );
    }

    pub(super) fn on_queue_next(&mut self, key: &str, generation: u64, body: ReplyBody) {
        let ReplyBody::QueueNext(result) = body else {
            return;
        };
        let poll_max = self.cfg.queue_poll_max;
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let stale = call.exec.generation != generation || call.queue.is_none();
        use pb::queue_next_agent_response::Outcome;
        match result {
            Ok(pb::QueueNextAgentResponse {
                outcome: Some(Outcome::Offer(offer)),
            }) => {
                if stale {
                    self.router
                        .report(Report::Release(pb::ReleaseAgentsRequest {
                            call_id: key.to_owned(),
                            agents: offer.targets.into_iter().map(|t| t.agent).collect(),
                        }));
                    return;
                }
                call.exec.mode = Mode::Queue { waiting: false };
                call.reserved_any = true;
                let queue = call
                    .queue
                    .as_ref()
                    .map(|q| q.step.queue.clone())
                    .unwrap_or_default();
                let timeout = from_duration(offer.ring_timeout.as_ref())
                    .unwrap_or(self.cfg.default_ring_timeout);
                tracing::info!(call_id = %key, %queue, agents = offer.targets.len(), attempt = offer.attempt, "queue offer");
                self.ring_targets(key, offer.targets, timeout, queue, false);
            }
            other => {
                if stale {
                    return;
                }
                let wait = match other {
                    Ok(pb::QueueNextAgentResponse {
                        outcome: Some(Outcome::Wait(w)),
                    }) => {
                        self.announce_position(key, w.position);
                        from_duration(w.retry_after.as_ref()).unwrap_or(poll_max)
                    }
                    Ok(_) => poll_max,
                    Err(e) => {
                        tracing::warn!(call_id = %key, error = %e, "QueueNextAgent failed: asking again later");
                        poll_max
                    }
                };
                let wait = wait.clamp(MIN_POLL, poll_max.max(MIN_POLL));
                self.arm(
                    Instant::now() + wait,
                    Timer {
                        call: key.to_owned(),
                        generation,
                        kind: TimerKind::QueuePoll,
                    },
                );
            }
        }
    }

    /// Max wait or overflow time passed: leave, then the overflow target or the next step.
    pub(super) fn queue_timeout(&mut self, key: &str, overflow: bool) {
        let reason = if overflow {
            pb::QueueLeaveReason::Overflow
        } else {
            pb::QueueLeaveReason::MaxWait
        };
        let target = self
            .calls
            .get(key)
            .and_then(|c| c.queue.as_ref())
            .and_then(|q| q.step.overflow.clone())
            .and_then(|t| t.target)
            .filter(|_| overflow);
        let ringing: Vec<usize> = self
            .calls
            .get(key)
            .map(|c| c.ringing_legs().collect())
            .unwrap_or_default();
        for idx in ringing {
            self.cancel_leg(key, idx, pb::LegCancelCause::Timeout);
        }
        self.leave_queue(key, reason);
        tracing::info!(call_id = %key, ?reason, "leaving the queue");
        match target {
            Some(t) => self.jump(key, t),
            None => self.advance(key),
        }
    }

    /// Takes the call out of its queue with an event and QueueLeave.
    fn leave_queue(&mut self, key: &str, reason: pb::QueueLeaveReason) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(q) = call.queue.take() else {
            return;
        };
        call.emit(Kind::QueueLeft(pb::QueueLeft {
            queue: q.step.queue.clone(),
            reason: reason as i32,
            waited: Some(duration(q.joined.elapsed())),
        }));
        self.router
            .report(Report::QueueLeave(pb::QueueLeaveRequest {
                call_id: key.to_owned(),
                queue: q.step.queue,
            }));
    }

    /// An agent answered: out of the queue.
    pub(super) fn queue_answered(&mut self, key: &str) {
        self.leave_queue(key, pb::QueueLeaveReason::Answered);
    }

    /// The call ends while queued.
    pub(super) fn leave_queue_on_end(&mut self, key: &str, ending: &Ending) {
        let reason = if ending.party == pb::HangupParty::Client {
            pb::QueueLeaveReason::CallerHungUp
        } else {
            pb::QueueLeaveReason::System
        };
        self.leave_queue(key, reason);
    }
}
