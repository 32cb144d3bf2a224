//! What a queued caller hears and can do: hold music in a loop (the ringback tone when the
//! queue has none, or when its file cannot be read), the position announcements, and the
//! callback digit.
//!
//! Announcements: on joining, then whenever the router's answer shows a new position and at
//! least [`NodeConfig::announce_every`](super::NodeConfig) has passed since the last one —
//! `queue-position-N` for N ≤ 9, `queue-position-many` above, then the hold music again
//! from its start.
//!
//! The callback digit: the node asks the router to keep the caller's place
//! (QueueRequestCallback), then tells the reporter — `callback_ordered` (origin queue),
//! `queue_left` with reason `callback` (no QueueLeave: the place is kept) and finally
//! `call_ended` with disposition `callback_chosen` — plays the `callback-confirmed` prompt
//! (a beep when the prompts folder has none) and hangs up. Anonymous callers cannot be called
//! back: their key is ignored.

use std::time::Instant;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;

use super::actor::Node;
use super::events::duration;
use super::plan::Mode;
use super::router::ReplyBody;
use super::session::{self, Sound};

/// The prompt played before hanging up on a caller who chose a callback.
pub(super) const CALLBACK_PROMPT: &str = "callback-confirmed";

/// The queue's hold music, or the ringback tone.
fn hold_sound(step: &pb::QueueStep) -> Sound {
    if step.hold_music.is_empty() {
        Sound::Tone(session::ringback())
    } else {
        Sound::Prompt(step.hold_music.clone())
    }
}

impl Node {
    /// The caller enters a queue: answer them and start the hold music.
    pub(super) fn start_hold(&mut self, key: &str) {
        if !self.answer_caller(key) {
            return;
        }
        let Some(step) = self.calls.get(key).and_then(|c| c.queue.as_ref()) else {
            return;
        };
        let hold = hold_sound(&step.step);
        let ringback = Sound::Tone(session::ringback());
        self.play(key, Vec::new(), Some(hold), Some(ringback));
    }

    /// Tells the caller their position when the queue announces and it is time to.
    pub(super) fn announce_position(&mut self, key: &str, position: u32) {
        let every = self.cfg.announce_every;
        let Some(q) = self.calls.get_mut(key).and_then(|c| c.queue.as_mut()) else {
            return;
        };
        if !q.step.announce_position || position == 0 {
            return;
        }
        let due = match q.announced {
            None => true,
            Some((last, at)) => last != position && at.elapsed() >= every,
        };
        if !due {
            return;
        }
        q.announced = Some((position, Instant::now()));
        let hold = hold_sound(&q.step);
        let name = if position <= 9 {
            format!("queue-position-{position}")
        } else {
            "queue-position-many".to_owned()
        };
        tracing::info!(call_id = %key, position, "announcing the queue position");
        let ringback = Sound::Tone(session::ringback());
        self.play(key, vec![Sound::Prompt(name)], Some(hold), Some(ringback));
    }

    /// A key while queued: the callback digit asks the router to keep the place.
    pub(super) fn queue_digit(&mut self, key: &str, digit: char) {
        let node_id = self.cfg.node_id.clone();
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let caller = call.caller_number.clone();
        let generation = call.exec.generation;
        let Some(q) = call.queue.as_mut() else {
            return;
        };
        if !q.step.callback_digit.starts_with(digit) || q.callback_pending {
            return;
        }
        if caller.is_empty() {
            tracing::info!(call_id = %key, "callback digit from an anonymous caller: ignored");
            return;
        }
        q.callback_pending = true;
        let req = pb::QueueRequestCallbackRequest {
            call_id: key.to_owned(),
            queue: q.step.queue.clone(),
            callback_number: caller,
            node_id,
        };
        tracing::info!(call_id = %key, queue = %req.queue, "the caller asks to be called back");
        self.router.queue_callback(key, generation, req);
    }

    /// The router kept the place (or could not).
    pub(super) fn on_callback(&mut self, key: &str, body: ReplyBody) {
        let ReplyBody::Callback(result) = body else {
            return;
        };
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(q) = call.queue.as_mut().filter(|q| q.callback_pending) else {
            return;
        };
        q.callback_pending = false;
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(call_id = %key, error = %e, "QueueRequestCallback failed: the caller keeps waiting");
                return;
            }
        };
        let ringing: Vec<usize> = call.ringing_legs().collect();
        for idx in ringing {
            self.cancel_leg(key, idx, pb::LegCancelCause::System);
        }
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(q) = call.queue.take() else {
            return;
        };
        call.emit(Kind::CallbackOrdered(pb::CallbackOrdered {
            callback_id: r.callback_id.clone(),
            origin: pb::CallbackOrigin::Queue as i32,
            agent: String::new(),
            to: call.caller_number.clone(),
            caller_id: call.number.clone(),
            ordered_by: "queue".into(),
            queue: q.step.queue.clone(),
        }));
        call.emit(Kind::QueueLeft(pb::QueueLeft {
            queue: q.step.queue.clone(),
            reason: pb::QueueLeaveReason::Callback as i32,
            waited: Some(duration(q.joined.elapsed())),
        }));
        tracing::info!(call_id = %key, callback_id = %r.callback_id, position = r.position, "callback chosen: place kept");
        call.callback_chosen = true;
        call.phase = pb::CallPhase::Ending;
        call.exec.generation += 1;
        let once = vec![Sound::Prompt(CALLBACK_PROMPT.into())];
        let beep = Sound::Tone(session::beep());
        let Some(play) = self.play(key, once, None, Some(beep)) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(key) {
            call.exec.mode = Mode::Goodbye { play };
        }
    }
}
