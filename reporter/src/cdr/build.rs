//! Folding one call's ordered events into a [`Cdr`].

use std::collections::{BTreeSet, HashMap};

use dialtone_proto::v1::{self, call_event::Kind};
use jiff::{SignedDuration, Timestamp};

use super::codes::{
    CallPhase, CancelCause, DestinationKind, Direction, HangupParty, MissedReason, NoAnswerCause,
    ScheduleState,
};
use super::legs::{Leg, LegOutcome};
use super::reason::{MissFacts, is_forbidden_destination, missed_reason};
use super::{Blocked, CallbackOrder, CallerHangup, Cdr, CdrStatus, Recording, Voicemail};
use crate::error::AssembleError;
use crate::time::from_proto_duration;

/// A validated event: its instant, already converted.
pub(crate) type Timed<'a> = (Timestamp, &'a v1::CallEvent);

/// A leg's final SIP event, as received.
#[derive(Clone, Copy)]
enum Final {
    Failed(u16),
    Cancelled(CancelCause),
}

struct LegState {
    leg: Leg,
    final_event: Option<(Timestamp, Final)>,
    bridged: bool,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn sip(code: u32) -> u16 {
    u16::try_from(code).unwrap_or(u16::MAX)
}

/// Builds the CDR of one call from its events, sorted by `sequence` (ties by time, then id).
pub(crate) fn build(
    events: &[Timed<'_>],
    short_abandon: SignedDuration,
) -> Result<Cdr, AssembleError> {
    let Some((_, first)) = events.first() else {
        return Err(AssembleError::NoEvents);
    };
    let call_id = first.call_id.clone();
    let Some((started_at, started)) = events.iter().find_map(|(at, e)| match &e.kind {
        Some(Kind::CallStarted(s)) => Some((*at, s)),
        _ => None,
    }) else {
        return Err(AssembleError::NotStarted { call_id });
    };
    let direction = match started.direction() {
        v1::Direction::Outbound => Direction::Outbound,
        // Unspecified is read as inbound: every call from a carrier is, and an inbound call
        // wrongly reported as missed is visible where a dropped one would not be.
        v1::Direction::Inbound | v1::Direction::Unspecified => Direction::Inbound,
    };

    let mut phase = CallPhase::Routing;
    let mut legs: Vec<LegState> = Vec::new();
    let mut leg_index: HashMap<String, usize> = HashMap::new();
    let mut cdr = Cdr {
        call_id,
        direction,
        anonymous: started.anonymous
            || (direction == Direction::Inbound && started.caller.is_empty()),
        // A withheld number is no client to call back, even if a carrier leaked it.
        caller: non_empty(&started.caller)
            .filter(|_| !(started.anonymous && direction == Direction::Inbound)),
        number: started.number.clone(),
        number_name: None,
        carrier: non_empty(&started.carrier),
        agent: non_empty(&started.agent),
        started_at,
        answered_at: None,
        ended_at: None,
        schedule_state: None,
        scheme: None,
        backup: false,
        blocked: None,
        status: CdrStatus::InProgress,
        missed: None,
        caller_hangup: None,
        voicemail: None,
        recording: None,
        legs: Vec::new(),
        trace_id: events.iter().find_map(|(_, e)| non_empty(&e.trace_id)),
        hangup_party: None,
        answered_by: None,
        talk: SignedDuration::ZERO,
        callback_id: non_empty(&started.callback_id),
        callback_order: None,
        callback_chosen: false,
        queue: None,
        end_sip_code: None,
        complete: false,
    };
    let mut no_forwarding_scheme = false;
    let mut ended: Option<(Timestamp, &v1::CallEnded)> = None;
    let mut bridge: Option<(Timestamp, String)> = None;

    for &(at, event) in events {
        let Some(kind) = &event.kind else { continue };
        let mut leg = |id: &str, at: Timestamp| -> usize {
            *leg_index.entry(id.to_owned()).or_insert_with(|| {
                legs.push(LegState {
                    leg: Leg {
                        leg_id: id.to_owned(),
                        agent: None,
                        destination: String::new(),
                        destination_kind: DestinationKind::Unknown,
                        carrier: None,
                        queue: None,
                        owner: false,
                        created_at: at,
                        alerted_at: None,
                        answered_at: None,
                        ended_at: None,
                        outcome: LegOutcome::Pending,
                    },
                    final_event: None,
                    bridged: false,
                });
                legs.len() - 1
            })
        };
        match kind {
            Kind::CallStarted(_) | Kind::MenuDigit(_) | Kind::OwnerLookedUp(_) => {}
            Kind::RouteSelected(r) => {
                if cdr.scheme.is_none() {
                    cdr.scheme = non_empty(&r.scheme);
                    cdr.backup = r.backup;
                }
                cdr.number_name = cdr.number_name.take().or_else(|| non_empty(&r.number_name));
                cdr.schedule_state = cdr
                    .schedule_state
                    .or_else(|| ScheduleState::from_proto(r.schedule_state()));
            }
            Kind::NoForwardingScheme(n) => {
                no_forwarding_scheme = true;
                cdr.number_name = cdr.number_name.take().or_else(|| non_empty(&n.number_name));
                cdr.schedule_state = cdr
                    .schedule_state
                    .or_else(|| ScheduleState::from_proto(n.schedule_state()));
            }
            Kind::CallBlocked(b) => {
                cdr.blocked = Some(Blocked {
                    reason: b.reason.clone(),
                    blocklist: b.blocklist.clone(),
                    entry: b.entry.clone(),
                });
            }
            Kind::StepEntered(s) => {
                if let Some(p) = CallPhase::of_step(s.kind()) {
                    phase = p;
                }
            }
            Kind::WelcomeStarted(_) => phase = CallPhase::Welcome,
            Kind::WelcomeFinished(_) | Kind::MenuLeft(_) | Kind::QueueLeft(_) => {
                if let Kind::QueueLeft(q) = kind
                    && q.reason() == v1::QueueLeaveReason::Callback
                {
                    cdr.callback_chosen = true;
                }
                phase = CallPhase::Routing;
            }
            Kind::MenuEntered(_) => phase = CallPhase::Menu,
            Kind::QueueJoined(q) => {
                phase = CallPhase::Queue;
                cdr.queue = cdr.queue.take().or_else(|| non_empty(&q.queue));
            }
            Kind::LegCreated(c) => {
                if phase != CallPhase::Queue {
                    phase = CallPhase::Ringing;
                }
                let i = leg(&c.leg_id, at);
                let l = &mut legs[i].leg;
                l.agent = non_empty(&c.agent);
                l.destination = c.destination.clone();
                l.destination_kind = DestinationKind::from_proto(c.destination_kind());
                l.carrier = non_empty(&c.carrier);
                l.queue = non_empty(&c.queue);
                l.owner = c.owner;
                l.created_at = l.created_at.min(at);
            }
            Kind::LegAlerting(a) => {
                let i = leg(&a.leg_id, at);
                let l = &mut legs[i].leg;
                l.alerted_at = Some(l.alerted_at.map_or(at, |t| t.min(at)));
            }
            Kind::LegAnswered(a) => {
                let i = leg(&a.leg_id, at);
                let l = &mut legs[i].leg;
                l.answered_at = l.answered_at.or(Some(at));
                l.alerted_at = l.alerted_at.or(Some(at));
            }
            Kind::LegFailed(f) => {
                let i = leg(&f.leg_id, at);
                let s = &mut legs[i];
                s.final_event = s.final_event.or(Some((at, Final::Failed(sip(f.sip_code)))));
            }
            Kind::LegCancelled(c) => {
                let i = leg(&c.leg_id, at);
                let s = &mut legs[i];
                let cause = CancelCause::from_proto(c.cause());
                s.final_event = s.final_event.or(Some((at, Final::Cancelled(cause))));
            }
            Kind::CallerHungUp(h) => {
                let hung_in = CallPhase::from_proto(h.phase()).unwrap_or(phase);
                cdr.caller_hangup = cdr
                    .caller_hangup
                    .or(Some(CallerHangup { at, phase: hung_in }));
            }
            Kind::Bridged(b) => {
                phase = CallPhase::Bridged;
                let i = leg(&b.leg_id, at);
                legs[i].bridged = true;
                if legs[i].leg.agent.is_none() {
                    legs[i].leg.agent = non_empty(&b.agent);
                }
                bridge = bridge.or(Some((at, b.leg_id.clone())));
            }
            Kind::VoicemailLeft(v) => {
                cdr.voicemail = Some(Voicemail {
                    path: v.path.clone(),
                    duration: v
                        .duration
                        .as_ref()
                        .map_or(SignedDuration::ZERO, from_proto_duration),
                });
            }
            Kind::Recording(r) => {
                cdr.recording = Some(Recording {
                    path: r.path.clone(),
                    duration: r
                        .duration
                        .as_ref()
                        .map_or(SignedDuration::ZERO, from_proto_duration),
                });
            }
            Kind::CallEnded(e) => {
                ended = ended.or(Some((at, e)));
            }
            Kind::CallbackOrdered(o) => {
                let origin = match o.origin() {
                    v1::CallbackOrigin::Queue => "queue",
                    v1::CallbackOrigin::Api | v1::CallbackOrigin::Unspecified => "api",
                };
                if origin == "queue" && direction == Direction::Inbound {
                    cdr.callback_chosen = true;
                }
                cdr.callback_order = cdr.callback_order.take().or_else(|| {
                    Some(CallbackOrder {
                        callback_id: o.callback_id.clone(),
                        origin: origin.to_owned(),
                        agent: non_empty(&o.agent),
                        to: o.to.clone(),
                        ordered_by: o.ordered_by.clone(),
                        at,
                    })
                });
            }
        }
    }

    // The end of the call.
    if let Some((at, e)) = ended {
        cdr.ended_at = Some(at);
        cdr.hangup_party = HangupParty::from_proto(e.hangup_party());
        cdr.end_sip_code = (e.sip_code != 0).then(|| sip(e.sip_code));
        match e.disposition() {
            v1::CallDisposition::Blocked if cdr.blocked.is_none() => {
                cdr.blocked = Some(Blocked {
                    reason: e.reason.clone(),
                    blocklist: String::new(),
                    entry: String::new(),
                });
            }
            v1::CallDisposition::NoForwardingScheme => no_forwarding_scheme = true,
            v1::CallDisposition::CallbackChosen if direction == Direction::Inbound => {
                cdr.callback_chosen = true;
            }
            _ => {}
        }
        // A caller's BYE without a CallerHungUp event still is the caller hanging up.
        if cdr.caller_hangup.is_none()
            && bridge.is_none()
            && direction == Direction::Inbound
            && cdr.hangup_party == Some(HangupParty::Client)
        {
            cdr.caller_hangup = Some(CallerHangup { at, phase });
        }
    }
    let disposition_answered =
        ended.is_some_and(|(_, e)| e.disposition() == v1::CallDisposition::Answered);

    // Each leg's outcome, now that the whole call is known.
    let call_end = cdr.ended_at;
    let caller_left = cdr.caller_hangup.is_some();
    let any_bridge = bridge.is_some();
    // Outbound, the agent's leg answers before the client is dialled and is never the bridged
    // one; its answer is simply the agent picking up.
    let answers = Answers {
        any_bridge,
        disposition_answered,
        outbound: direction == Direction::Outbound,
    };
    cdr.legs = legs
        .into_iter()
        .map(|s| finish_leg(s, call_end, caller_left, answers))
        .collect();
    cdr.legs
        .sort_by(|a, b| (a.created_at, &a.leg_id).cmp(&(b.created_at, &b.leg_id)));

    match direction {
        Direction::Inbound => finish_inbound(&mut cdr, bridge, no_forwarding_scheme, short_abandon),
        Direction::Outbound => finish_outbound(&mut cdr, bridge, ended.map(|(_, e)| e)),
    }
    if let (Some(answered), Some(end)) = (cdr.answered_at, cdr.ended_at) {
        cdr.talk = end.duration_since(answered).max(SignedDuration::ZERO);
    }

    let sequences: BTreeSet<u64> = events.iter().map(|(_, e)| e.sequence).collect();
    let last = sequences.last().copied().unwrap_or(0);
    let ended_last = events
        .iter()
        .any(|(_, e)| e.sequence == last && matches!(e.kind, Some(Kind::CallEnded(_))));
    cdr.complete = ended_last && u64::try_from(sequences.len()).is_ok_and(|n| n == last);
    Ok(cdr)
}

/// What the call says about answers, for judging each leg.
#[derive(Clone, Copy)]
struct Answers {
    /// Some leg was bridged.
    any_bridge: bool,
    /// `CallEnded` says answered.
    disposition_answered: bool,
    /// An outbound call.
    outbound: bool,
}

fn finish_leg(
    s: LegState,
    call_end: Option<Timestamp>,
    caller_left: bool,
    answers: Answers,
) -> Leg {
    let LegState {
        mut leg,
        final_event,
        bridged,
    } = s;
    let (outcome, ended_at) = if leg.answered_at.is_some() {
        // A missing Bridged event is tolerated when nothing else was bridged and the call was
        // (or may still be) answered: the answer is then this leg's.
        let Answers {
            any_bridge,
            disposition_answered,
            outbound,
        } = answers;
        if bridged || outbound || (!any_bridge && (call_end.is_none() || disposition_answered)) {
            (LegOutcome::Answered, call_end)
        } else {
            (
                LegOutcome::AnsweredNotBridged,
                final_event.map(|(t, _)| t).or(call_end),
            )
        }
    } else if leg.alerted_at.is_some() {
        match final_event {
            Some((t, Final::Failed(code @ (486 | 603)))) => {
                (LegOutcome::Declined { sip_code: code }, Some(t))
            }
            Some((t, Final::Failed(code))) => (
                LegOutcome::NoAnswer {
                    cause: NoAnswerCause::Failed { sip_code: code },
                },
                Some(t),
            ),
            Some((t, Final::Cancelled(cause))) => {
                let outcome = match cause {
                    CancelCause::ColleagueAnswered => LegOutcome::CancelledColleagueAnswered,
                    CancelCause::CallerHungUp => LegOutcome::NoAnswer {
                        cause: NoAnswerCause::CallerHungUp,
                    },
                    CancelCause::Timeout => LegOutcome::NoAnswer {
                        cause: NoAnswerCause::Timeout,
                    },
                    CancelCause::System | CancelCause::CallEnded => LegOutcome::NoAnswer {
                        cause: NoAnswerCause::System,
                    },
                };
                (outcome, Some(t))
            }
            // No final event: the call's end (or a colleague's bridge) settles it.
            None => match call_end {
                None => (LegOutcome::Pending, None),
                Some(_) if answers.any_bridge => (LegOutcome::CancelledColleagueAnswered, call_end),
                Some(_) => {
                    let cause = if caller_left {
                        NoAnswerCause::CallerHungUp
                    } else {
                        NoAnswerCause::CallEnded
                    };
                    (LegOutcome::NoAnswer { cause }, call_end)
                }
            },
        }
    } else {
        match final_event {
            Some((t, Final::Failed(code))) => {
                (LegOutcome::FailedBeforeAlert { sip_code: code }, Some(t))
            }
            Some((t, Final::Cancelled(cause))) => {
                (LegOutcome::CancelledBeforeAlert { cause }, Some(t))
            }
            None => match call_end {
                None => (LegOutcome::Pending, None),
                Some(_) => (
                    LegOutcome::CancelledBeforeAlert {
                        cause: CancelCause::CallEnded,
                    },
                    call_end,
                ),
            },
        }
    };
    leg.outcome = outcome;
    leg.ended_at = ended_at;
    leg
}

fn finish_inbound(
    cdr: &mut Cdr,
    bridge: Option<(Timestamp, String)>,
    no_forwarding_scheme: bool,
    short_abandon: SignedDuration,
) {
    let answered_leg = match &bridge {
        Some((_, id)) => cdr.legs.iter().find(|l| &l.leg_id == id),
        None => cdr.legs.iter().find(|l| l.outcome == LegOutcome::Answered),
    };
    let answered_at = bridge
        .as_ref()
        .map(|(t, _)| *t)
        .or_else(|| answered_leg.and_then(|l| l.answered_at));
    if let Some(at) = answered_at {
        cdr.answered_at = Some(at);
        cdr.answered_by = answered_leg.and_then(|l| l.agent.clone());
    }
    cdr.status = if cdr.blocked.is_some() {
        CdrStatus::Blocked
    } else if cdr.answered_at.is_some() {
        CdrStatus::Answered
    } else if cdr.ended_at.is_none() {
        CdrStatus::InProgress
    } else if !no_forwarding_scheme
        && cdr.scheme.is_none()
        && cdr.schedule_state.is_none()
        && cdr.end_sip_code == Some(404)
    {
        CdrStatus::Rejected
    } else {
        CdrStatus::Missed
    };
    if cdr.status == CdrStatus::Missed {
        let facts = MissFacts {
            no_forwarding_scheme,
            schedule_state: cdr.schedule_state,
            caller_hangup: cdr.caller_hangup,
            voicemail: cdr.voicemail.is_some(),
            callback_chosen: cdr.callback_chosen,
            started_at: cdr.started_at,
            any_leg_alerted: cdr.legs.iter().any(|l| l.alerted_at.is_some()),
        };
        cdr.missed = Some(missed_reason(&facts, short_abandon));
    }
}

fn finish_outbound(
    cdr: &mut Cdr,
    bridge: Option<(Timestamp, String)>,
    ended: Option<&v1::CallEnded>,
) {
    let client_legs = || cdr.legs.iter().filter(|l| l.agent.is_none());
    let client_answer = client_legs().filter_map(|l| l.answered_at).min();
    let disposition_answered =
        ended.is_some_and(|e| e.disposition() == v1::CallDisposition::Answered);
    cdr.answered_at = client_answer.or_else(|| {
        disposition_answered
            .then(|| bridge.as_ref().map(|(t, _)| *t))
            .flatten()
    });
    if cdr.answered_at.is_some() {
        cdr.answered_by = cdr.agent.clone().or_else(|| {
            cdr.legs
                .iter()
                .find(|l| l.agent.is_some() && l.outcome == LegOutcome::Answered)
                .and_then(|l| l.agent.clone())
        });
    }
    // The client leg's final failure: CallEnded's code when it failed, else the last failed
    // client leg's (a carrier failover makes one leg per carrier tried).
    let leg_failure = client_legs()
        .filter_map(|l| match l.outcome {
            LegOutcome::FailedBeforeAlert { sip_code }
            | LegOutcome::Declined { sip_code }
            | LegOutcome::NoAnswer {
                cause: NoAnswerCause::Failed { sip_code },
            } => Some((l.ended_at, sip_code)),
            _ => None,
        })
        .max()
        .map(|(_, code)| code);
    let failure = match ended {
        Some(e) if e.disposition() == v1::CallDisposition::Failed && e.sip_code != 0 => {
            Some(sip(e.sip_code))
        }
        _ => leg_failure,
    };
    cdr.status = if cdr.answered_at.is_some() {
        CdrStatus::Answered
    } else if cdr.ended_at.is_none() {
        CdrStatus::InProgress
    } else {
        CdrStatus::NotAnswered
    };
    if cdr.status == CdrStatus::NotAnswered {
        if cdr.end_sip_code.is_none() {
            cdr.end_sip_code = failure;
        }
        if failure.is_some_and(is_forbidden_destination) {
            cdr.missed = Some(MissedReason::ForbiddenDestination);
        }
    }
}
