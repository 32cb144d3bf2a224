//! How a call ends: the [`Ending`] (who, why, what the caller was told), the last events
//! (the voicemail message and the call recording are announced before `call_ended`, which is
//! always last) and freeing everything the call held.

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;

use super::actor::{Node, TxRole};
use super::call::{Call, CallerState, Side};
use super::events::duration;
use super::legs::LegState;
use super::router::Report;

/// How a call ends.
#[derive(Debug, Clone)]
pub(super) struct Ending {
    pub(super) party: pb::HangupParty,
    pub(super) disposition: pb::CallDisposition,
    /// Final response to the caller when it was never answered.
    pub(super) sip_code: u16,
    pub(super) reason: String,
    pub(super) cancel_cause: pb::LegCancelCause,
}

impl Ending {
    pub(super) fn shutdown() -> Self {
        Ending {
            party: pb::HangupParty::System,
            disposition: pb::CallDisposition::NotAnswered,
            sip_code: 503,
            reason: "media node shut down".into(),
            cancel_cause: pb::LegCancelCause::System,
        }
    }

    pub(super) fn media_timeout() -> Self {
        Ending {
            party: pb::HangupParty::System,
            disposition: pb::CallDisposition::Answered,
            sip_code: 0,
            reason: "media timeout: no RTP".into(),
            cancel_cause: pb::LegCancelCause::System,
        }
    }

    pub(super) fn not_answered(code: u16, reason: &str) -> Self {
        Ending {
            party: pb::HangupParty::System,
            disposition: pb::CallDisposition::NotAnswered,
            sip_code: code,
            reason: reason.into(),
            cancel_cause: pb::LegCancelCause::System,
        }
    }
}

impl Node {
    /// Ends a call: cancels ringing legs, hangs up answered sides (except the one that hung
    /// up), answers a pending INVITE, tells the router and the reporter, frees the media.
    pub(super) fn end_call(&mut self, key: &str, mut ending: Ending) {
        let ringing: Vec<usize> = match self.calls.get(key) {
            Some(c) => c.ringing_legs().collect(),
            None => return,
        };
        for idx in ringing {
            self.cancel_leg(key, idx, ending.cancel_cause);
        }
        self.leave_queue_on_end(key, &ending);
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let state = call.state;
        let answered = call.answered;
        let outbound = call.outbound.is_some();
        let agent_leg = call.outbound.as_ref().and_then(|o| o.agent_leg);
        // The final response the caller got, for CallEnded (0 once answered: ended by BYE).
        let mut sip_code = 0u32;
        if matches!(state, CallerState::Routing | CallerState::Alerted) {
            let code = if ending.sip_code >= 300 {
                ending.sip_code
            } else {
                480
            };
            self.reply_caller(key, code, false);
            sip_code = u32::from(code);
        } else if matches!(state, CallerState::Finished | CallerState::Dialling) {
            sip_code = u32::from(ending.sip_code);
        }
        // The party that hung up needs no BYE. Inbound, the caller side is the client and the
        // answered leg an agent; outbound (a callback), the caller side is the agent who picked
        // up first and the answered leg the client.
        let (caller_party, leg_party) = if outbound {
            (pb::HangupParty::Agent, pb::HangupParty::Client)
        } else {
            (pb::HangupParty::Client, pb::HangupParty::Agent)
        };
        if state == CallerState::Answered && ending.party != caller_party {
            self.send_bye(key, Side::Caller);
        }
        if let Some(idx) = answered
            && ending.party != leg_party
        {
            self.send_bye(key, Side::Leg(idx));
        }
        let Some(mut call) = self.calls.remove(key) else {
            return;
        };
        let _g = call.span.clone().entered();
        finish_media(&mut call, &mut ending);
        if let Some(idx) = answered
            && let Some(leg) = call.legs.get_mut(idx)
        {
            leg.state = LegState::Ended;
            if !leg.agent.is_empty() {
                let ev = self.leg_event(&call.key, leg, pb::LegEventKind::Ended, 0, false);
                self.router.report(Report::Leg(ev));
            }
        }
        // A callback's agent leg became the caller side: it ends with the call.
        if let Some(idx) = agent_leg
            && let Some(leg) = call.legs.get_mut(idx)
        {
            leg.state = LegState::Ended;
            let ev = self.leg_event(&call.key, leg, pb::LegEventKind::Ended, 0, false);
            self.router.report(Report::Leg(ev));
        }
        if call.reserved_any || outbound {
            self.router
                .report(Report::Release(pb::ReleaseAgentsRequest {
                    call_id: call.key.clone(),
                    agents: Vec::new(),
                }));
        }
        // A call that never started (an agent's call out ended before the router planned
        // it) leaves no trace: an end without a start would be an orphan for the reporter.
        if call.events.count() > 0 {
            call.emit(Kind::CallEnded(pb::CallEnded {
                hangup_party: ending.party as i32,
                disposition: ending.disposition as i32,
                sip_code,
                reason: ending.reason.clone(),
            }));
        }
        tracing::info!(call_id = %call.key, duration = ?call.started.elapsed(), disposition = ?ending.disposition, party = ?ending.party, reason = %ending.reason, events = call.events.count(), "call ended");
        self.ports.release(call.media.port);
        for leg in &mut call.legs {
            self.ports.release(leg.port);
            leg.release_channel(&mut self.carrier_book);
            if let Some(id) = &leg.dialog {
                self.dialogs.remove(id);
                self.dialog_owner.remove(id);
            }
            if matches!(leg.state, LegState::Cancelled) {
                self.tx_role.insert(
                    leg.tx,
                    TxRole::Orphan {
                        invite: Box::new(leg.invite.clone()),
                        dest: leg.dest,
                        contact: leg.contact.clone(),
                    },
                );
            }
        }
        if let Some(id) = &call.caller_dialog {
            self.dialogs.remove(id);
            self.dialog_owner.remove(id);
        }
        self.health.metrics().active_calls.dec();
    }

    /// The caller hung up (BYE): before the bridge that is the caller abandoning the call
    /// where it was (the phase says where: welcome, menu, queue… — what the missed reasons
    /// `abandoned_during_welcome` and `abandoned_in_ivr` are derived from).
    pub(super) fn caller_hung_up(&mut self, key: &str) -> Ending {
        let bridged = Ending {
            party: pb::HangupParty::Client,
            disposition: pb::CallDisposition::Answered,
            sip_code: 0,
            reason: "BYE".into(),
            cancel_cause: pb::LegCancelCause::System,
        };
        let Some(call) = self.calls.get_mut(key) else {
            return bridged;
        };
        if call.outbound.is_some() {
            // A callback's caller side is the agent: their hang-up is no abandoned call.
            return Ending {
                party: pb::HangupParty::Agent,
                reason: "the agent hung up".into(),
                ..bridged
            };
        }
        if call.answered.is_some() {
            return bridged;
        }
        let phase = call.phase;
        call.emit(Kind::CallerHungUp(pb::CallerHungUp {
            phase: phase as i32,
        }));
        tracing::info!(call_id = %key, ?phase, "caller hung up before the bridge");
        Ending {
            party: pb::HangupParty::Client,
            disposition: pb::CallDisposition::Abandoned,
            sip_code: 0,
            reason: "caller hung up".into(),
            cancel_cause: pb::LegCancelCause::CallerHungUp,
        }
    }
}

/// Announces what the call recorded and settles the disposition: a message with voice makes
/// the call a voicemail call (however it ended), a silent one is deleted; a chosen callback
/// stays the call's outcome; a call never bridged is not "answered" whatever ended it. The
/// media task is stopped last, which finishes the recordings' files.
fn finish_media(call: &mut Call, ending: &mut Ending) {
    if ending.disposition == pb::CallDisposition::Answered && call.answered.is_none() {
        ending.disposition = if ending.party == pb::HangupParty::Client {
            pb::CallDisposition::Abandoned
        } else {
            pb::CallDisposition::NotAnswered
        };
    }
    if let Some((message, greeting)) = call.voicemail.take() {
        if message.voiced() {
            call.emit(Kind::VoicemailLeft(pb::VoicemailLeft {
                path: message.path.clone(),
                duration: Some(duration(message.duration())),
                greeting,
            }));
            tracing::info!(call_id = %call.key, path = %message.path, duration = ?message.duration(), "voicemail left");
            ending.disposition = pb::CallDisposition::Voicemail;
        } else {
            message.discard();
            tracing::info!(call_id = %call.key, "voicemail without voice: not kept");
            if ending.disposition == pb::CallDisposition::Voicemail {
                ending.disposition = pb::CallDisposition::NotAnswered;
            }
        }
    }
    if let Some((recording, mode)) = call.recording.take() {
        let length = recording.duration();
        if length.is_zero() {
            recording.discard();
        } else {
            call.emit(Kind::Recording(pb::RecordingSaved {
                path: recording.path.clone(),
                duration: Some(duration(length)),
                mode: mode as i32,
            }));
            tracing::info!(call_id = %call.key, path = %recording.path, duration = ?length, "call recording saved");
        }
    }
    if call.callback_chosen {
        ending.disposition = pb::CallDisposition::CallbackChosen;
    }
    call.session = None;
}
