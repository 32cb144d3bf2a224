//! The missed reason of an inbound call, by PRODUCT.md's precedence, and the outbound
//! failures that count as `forbidden_destination`.

use jiff::{SignedDuration, Timestamp};

use super::CallerHangup;
use super::codes::{CallPhase, MissedReason, ScheduleState};

/// The facts of a missed inbound call that decide its reason.
#[derive(Debug, Clone)]
pub(crate) struct MissFacts {
    /// `NoForwardingScheme` was emitted (or the call ended with that disposition).
    pub no_forwarding_scheme: bool,
    /// The schedule's state as the router saw it.
    pub schedule_state: Option<ScheduleState>,
    /// The caller hung up before being bridged.
    pub caller_hangup: Option<CallerHangup>,
    /// The caller left a voicemail message.
    pub voicemail: bool,
    /// The caller chose a queue callback and hung up.
    pub callback_chosen: bool,
    /// The INVITE's arrival.
    pub started_at: Timestamp,
    /// At least one leg (an agent's, or an external target's in an agent's place) was alerted.
    pub any_leg_alerted: bool,
}

/// "The first that applies, in this order."
///
/// The three abandon rules need the caller to have *abandoned*: a caller who hangs up after
/// leaving a voicemail message, or after choosing a queue callback, did what the path offered,
/// so such a call gets the reason its path gives (`not_answered` or `all_agents_unavailable`),
/// as PRODUCT.md's precise rules say for voicemail and queue callbacks.
///
/// `abandoned_short` is "within `shortAbandonSeconds` of the call's start": a hang-up exactly
/// at the threshold is within it.
pub(crate) fn missed_reason(f: &MissFacts, short_abandon: SignedDuration) -> MissedReason {
    if f.no_forwarding_scheme {
        return MissedReason::NoForwardingScheme;
    }
    if matches!(
        f.schedule_state,
        Some(ScheduleState::Closed | ScheduleState::Holiday)
    ) {
        return MissedReason::OutsideBusinessHours;
    }
    let abandoned = f
        .caller_hangup
        .filter(|_| !f.voicemail && !f.callback_chosen);
    if let Some(hangup) = abandoned {
        match hangup.phase {
            CallPhase::Welcome => return MissedReason::AbandonedDuringWelcome,
            CallPhase::Menu => return MissedReason::AbandonedInIvr,
            _ => {}
        }
        if hangup.at.duration_since(f.started_at) <= short_abandon {
            return MissedReason::AbandonedShort;
        }
    }
    if f.any_leg_alerted {
        MissedReason::NotAnswered
    } else {
        MissedReason::AllAgentsUnavailable
    }
}

/// An outbound failure that means "the destination is invalid or refused by policy or
/// carrier": any 4xx except those that describe the callee's situation rather than the
/// destination — 408 (no answer in time), 480 (temporarily unavailable), 486 (busy) and 487
/// (the request was cancelled). 6xx (the callee declined) and 5xx (carrier trouble, for which
/// failover exists) are not forbidden either.
pub(crate) fn is_forbidden_destination(sip_code: u16) -> bool {
    (400..500).contains(&sip_code) && !matches!(sip_code, 408 | 480 | 486 | 487)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> MissFacts {
        MissFacts {
            no_forwarding_scheme: false,
            schedule_state: Some(ScheduleState::Open),
            caller_hangup: None,
            voicemail: false,
            callback_chosen: false,
            started_at: Timestamp::UNIX_EPOCH,
            any_leg_alerted: false,
        }
    }

    fn hangup(secs: i64, phase: CallPhase) -> Option<CallerHangup> {
        Some(CallerHangup {
            at: Timestamp::UNIX_EPOCH + SignedDuration::from_secs(secs),
            phase,
        })
    }

    const TEN: SignedDuration = SignedDuration::from_secs(10);

    #[test]
    fn precedence() {
        let mut f = facts();
        assert_eq!(missed_reason(&f, TEN), MissedReason::AllAgentsUnavailable);
        f.any_leg_alerted = true;
        assert_eq!(missed_reason(&f, TEN), MissedReason::NotAnswered);
        f.caller_hangup = hangup(10, CallPhase::Ringing);
        assert_eq!(missed_reason(&f, TEN), MissedReason::AbandonedShort);
        f.caller_hangup = hangup(11, CallPhase::Ringing);
        assert_eq!(missed_reason(&f, TEN), MissedReason::NotAnswered);
        f.caller_hangup = hangup(30, CallPhase::Menu);
        assert_eq!(missed_reason(&f, TEN), MissedReason::AbandonedInIvr);
        f.caller_hangup = hangup(2, CallPhase::Welcome);
        assert_eq!(missed_reason(&f, TEN), MissedReason::AbandonedDuringWelcome);
        f.schedule_state = Some(ScheduleState::Holiday);
        assert_eq!(missed_reason(&f, TEN), MissedReason::OutsideBusinessHours);
        f.no_forwarding_scheme = true;
        assert_eq!(missed_reason(&f, TEN), MissedReason::NoForwardingScheme);
    }

    #[test]
    fn voicemail_and_callbacks_are_not_abandons() {
        let mut f = facts();
        f.caller_hangup = hangup(8, CallPhase::Voicemail);
        f.voicemail = true;
        assert_eq!(missed_reason(&f, TEN), MissedReason::AllAgentsUnavailable);
        f.voicemail = false;
        f.callback_chosen = true;
        f.any_leg_alerted = true;
        assert_eq!(missed_reason(&f, TEN), MissedReason::NotAnswered);
    }

    #[test]
    fn forbidden_codes() {
        for code in [403, 404, 484, 400, 410, 488] {
            assert!(is_forbidden_destination(code), "{code}");
        }
        for code in [0, 200, 408, 480, 486, 487, 500, 503, 603] {
            assert!(!is_forbidden_destination(code), "{code}");
        }
    }
}
