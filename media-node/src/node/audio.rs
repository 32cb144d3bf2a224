//! The actor's side of what the caller hears: answering the caller when the plan needs to be
//! heard, the welcome prompt, `play` steps, the ringback tone, and the dispatch of what the
//! call's media task reports (a playlist played to its end, a key pressed, a voicemail
//! message ended, a silent line).
//!
//! Why answer rather than play early media (183): callers stay in menus and queues for
//! minutes, carriers cut unanswered calls after a few (RFC 3261 Timer C) and many do not pass
//! early media or in-dialog INFO at all; a call center answers, as a PBX's IVR does.

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;

use super::actor::Node;
use super::call::CallerState;
use super::ending::Ending;
use super::plan::Mode;
use super::session::{self, Cmd, MediaEvent, Playlist, Sound};

impl Node {
    /// Answers the caller (200 with our SDP) if not yet: from now on they hear the node.
    /// False when the caller is gone.
    pub(super) fn answer_caller(&mut self, key: &str) -> bool {
        let Some(call) = self.calls.get_mut(key) else {
            return false;
        };
        match call.state {
            CallerState::Answered => true,
            CallerState::Finished | CallerState::Dialling => false,
            CallerState::Routing | CallerState::Alerted => {
                call.state = CallerState::Answered;
                tracing::info!(call_id = %key, "answering the caller for the media plane");
                self.reply_caller(key, 200, true);
                self.confirm_caller_dialog(key);
                true
            }
        }
    }

    /// Plays to the caller, replacing what plays; returns the playlist's id (its
    /// [`MediaEvent::PlayDone`] carries it).
    pub(super) fn play(
        &mut self,
        key: &str,
        once: Vec<Sound>,
        then_loop: Option<Sound>,
        fallback: Option<Sound>,
    ) -> Option<u64> {
        let call = self.calls.get_mut(key)?;
        call.media_seq += 1;
        call.ringback = false;
        let id = call.media_seq;
        if let Some(session) = &call.session {
            session.send(Cmd::Play(Playlist {
                id,
                once,
                then_loop,
                fallback,
            }));
        }
        Some(id)
    }

    /// Stops what plays.
    pub(super) fn stop_audio(&mut self, key: &str) {
        if let Some(call) = self.calls.get_mut(key) {
            call.ringback = false;
            if let Some(session) = &call.session {
                session.send(Cmd::Stop);
            }
        }
    }

    /// The ringback tone from the start of a ring (or owner) step, for a caller we already
    /// answered (an unanswered caller gets our 180 and hears their carrier's tone). Not in
    /// queues: hold music plays there while agents are offered the call.
    pub(super) fn ringback(&mut self, key: &str) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let ringing = matches!(call.exec.mode, Mode::Ring { .. } | Mode::Owner { .. });
        if call.state != CallerState::Answered || !ringing || call.ringback {
            return;
        }
        let tone = Sound::Tone(session::ringback());
        self.play(key, Vec::new(), Some(tone), None);
        if let Some(call) = self.calls.get_mut(key) {
            call.ringback = true;
        }
    }

    /// The number's welcome prompt, before the first step.
    pub(super) fn start_welcome(&mut self, key: &str, prompt: String) {
        if !self.answer_caller(key) {
            return;
        }
        let Some(play) = self.play(key, vec![Sound::Prompt(prompt.clone())], None, None) else {
            return;
        };
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.phase = pb::CallPhase::Welcome;
        call.emit(Kind::WelcomeStarted(pb::WelcomeStarted {
            prompt: prompt.clone(),
        }));
        tracing::info!(call_id = %key, %prompt, "welcome prompt");
        call.exec.mode = Mode::Welcome { play, prompt };
    }

    /// A `play` step. False when it cannot run (the caller is gone).
    pub(super) fn start_play(&mut self, key: &str, prompt: String) -> bool {
        if !self.answer_caller(key) {
            return false;
        }
        let Some(play) = self.play(key, vec![Sound::Prompt(prompt)], None, None) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(key) else {
            return false;
        };
        call.phase = pb::CallPhase::Play;
        call.exec.mode = Mode::Play { play };
        true
    }

    /// What a call's media task reports.
    pub(super) fn on_media(&mut self, key: &str, event: MediaEvent) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let span = call.span.clone();
        let _g = span.enter();
        match event {
            MediaEvent::PlayDone(id) => self.on_play_done(key, id),
            MediaEvent::Digit(digit) => self.on_digit(key, digit),
            MediaEvent::RecordStopped { silence } => self.voicemail_stopped(key, silence),
            MediaEvent::Inactive => self.on_media_timeout(key),
        }
    }

    fn on_play_done(&mut self, key: &str, id: u64) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        match &call.exec.mode {
            Mode::Welcome { play, prompt } if *play == id => {
                let prompt = prompt.clone();
                call.emit(Kind::WelcomeFinished(pb::WelcomeFinished { prompt }));
                call.phase = pb::CallPhase::Routing;
                call.exec.mode = Mode::Idle;
                self.enter_step(key);
            }
            Mode::Play { play } if *play == id => {
                call.phase = pb::CallPhase::Routing;
                self.advance(key);
            }
            Mode::Menu(m) if m.prompt == Some(id) => self.menu_prompt_done(key),
            Mode::Voicemail(v) if v.greeting == Some(id) => self.start_message(key),
            Mode::Goodbye { play } if *play == id => {
                self.end_call(
                    key,
                    Ending {
                        party: pb::HangupParty::System,
                        disposition: pb::CallDisposition::CallbackChosen,
                        sip_code: 0,
                        reason: "the caller chose a callback".into(),
                        cancel_cause: pb::LegCancelCause::System,
                    },
                );
            }
            _ => {}
        }
    }

    /// A key from the caller (RFC 4733 or SIP INFO): menus and the queue's callback digit
    /// use it; anywhere else it is ignored (a key pressed during the welcome prompt does not
    /// choose in the menu that follows).
    pub(super) fn on_digit(&mut self, key: &str, digit: char) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        tracing::info!(call_id = %key, %digit, "key pressed");
        match call.exec.mode {
            Mode::Menu(_) => self.menu_digit(key, digit),
            Mode::Queue { .. } => self.queue_digit(key, digit),
            _ => tracing::debug!(call_id = %key, %digit, "key outside a menu or queue: ignored"),
        }
    }
}
