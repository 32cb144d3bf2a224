//! Values between Rust and the database: instants as nanoseconds, codes as strings, events
//! checked before they are stored.

use dialtone_proto::v1::{self, IngestEvent, RejectedEvent, call_event::Kind, ingest_event};
use jiff::Timestamp;

use crate::cdr::{Cdr, CdrStatus, Direction, validate_event};
use crate::time::from_proto_timestamp;

use super::StoreError;

/// An instant as nanoseconds since the epoch. Instants beyond ±292 years of 1970 do not fit
/// and are clamped; they only come from a sender with a broken clock, and the CDR's JSON keeps
/// the exact value anyway.
pub(crate) fn to_ns(t: Timestamp) -> i64 {
    let ns = t.as_nanosecond();
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

/// The instant of a stored nanosecond count.
pub(crate) fn from_ns(ns: i64, what: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_nanosecond(i128::from(ns))
        .map_err(|e| StoreError::corrupt_row(what.to_owned(), e))
}

pub(crate) fn direction_code(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

pub(crate) fn status_code(s: CdrStatus) -> &'static str {
    match s {
        CdrStatus::InProgress => "in_progress",
        CdrStatus::Answered => "answered",
        CdrStatus::Missed => "missed",
        CdrStatus::Blocked => "blocked",
        CdrStatus::Rejected => "rejected",
        CdrStatus::NotAnswered => "not_answered",
    }
}

/// The `kind` column of an event: the oneof's field name, for people reading the table.
pub(crate) fn kind_name(kind: Option<&Kind>) -> &'static str {
    match kind {
        None => "",
        Some(Kind::CallStarted(_)) => "call_started",
        Some(Kind::RouteSelected(_)) => "route_selected",
        Some(Kind::NoForwardingScheme(_)) => "no_forwarding_scheme",
        Some(Kind::CallBlocked(_)) => "call_blocked",
        Some(Kind::StepEntered(_)) => "step_entered",
        Some(Kind::WelcomeStarted(_)) => "welcome_started",
        Some(Kind::WelcomeFinished(_)) => "welcome_finished",
        Some(Kind::MenuEntered(_)) => "menu_entered",
        Some(Kind::MenuDigit(_)) => "menu_digit",
        Some(Kind::MenuLeft(_)) => "menu_left",
        Some(Kind::QueueJoined(_)) => "queue_joined",
        Some(Kind::QueueLeft(_)) => "queue_left",
        Some(Kind::OwnerLookedUp(_)) => "owner_looked_up",
        Some(Kind::LegCreated(_)) => "leg_created",
        Some(Kind::LegAlerting(_)) => "leg_alerting",
        Some(Kind::LegAnswered(_)) => "leg_answered",
        Some(Kind::LegFailed(_)) => "leg_failed",
        Some(Kind::LegCancelled(_)) => "leg_cancelled",
        Some(Kind::CallerHungUp(_)) => "caller_hung_up",
        Some(Kind::Bridged(_)) => "bridged",
        Some(Kind::VoicemailLeft(_)) => "voicemail_left",
        Some(Kind::Recording(_)) => "recording",
        Some(Kind::CallEnded(_)) => "call_ended",
        Some(Kind::CallbackOrdered(_)) => "callback_ordered",
    }
}

/// The columns of a `cdrs` row.
pub(crate) struct CdrRow<'a> {
    pub call_id: &'a str,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub direction: &'static str,
    pub caller: Option<&'a str>,
    pub number: &'a str,
    pub number_name: Option<&'a str>,
    pub client: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub status: &'static str,
    pub missed_reason: Option<&'static str>,
    pub answered_by: Option<&'a str>,
    pub complete: bool,
    pub json: String,
}

impl<'a> CdrRow<'a> {
    pub(crate) fn new(cdr: &'a Cdr) -> Result<Self, StoreError> {
        let json = serde_json::to_string(cdr)
            .map_err(|e| StoreError::corrupt_row(format!("CDR {}", cdr.call_id), e))?;
        Ok(CdrRow {
            call_id: &cdr.call_id,
            started_at: to_ns(cdr.started_at),
            ended_at: cdr.ended_at.map(to_ns),
            direction: direction_code(cdr.direction),
            caller: cdr.caller.as_deref(),
            number: &cdr.number,
            number_name: cdr.number_name.as_deref(),
            client: cdr.client(),
            agent: cdr.agent.as_deref(),
            status: status_code(cdr.status),
            missed_reason: cdr.missed.map(|r| r.code()),
            answered_by: cdr.answered_by.as_deref(),
            complete: cdr.complete,
            json,
        })
    }
}

/// A CDR from its stored JSON.
pub(crate) fn cdr_from_json(call_id: &str, json: &str) -> Result<Cdr, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        StoreError::corrupt_row(
            format!("CDR {call_id} (rebuild the CDRs if the reporter was downgraded)"),
            e,
        )
    })
}

/// An event that passed [`validate`], with its instant.
pub(crate) enum Checked<'a> {
    /// A call event.
    Call(&'a v1::CallEvent, Timestamp),
    /// An agent state change.
    State(&'a v1::AgentStateEvent, Timestamp),
}

impl Checked<'_> {
    pub(crate) fn event_id(&self) -> &str {
        match self {
            Checked::Call(e, _) => &e.event_id,
            Checked::State(e, _) => &e.event_id,
        }
    }
}

fn rejected(event_id: &str, reason: impl ToString) -> RejectedEvent {
    RejectedEvent {
        event_id: event_id.to_owned(),
        reason: reason.to_string(),
    }
}

/// Checks one event the way the store will: an event refused here is refused for good (the
/// sender drops it), so the checks are those that no resend can fix.
///
/// # Errors
///
/// The rejection to send back.
pub fn validate(event: &IngestEvent) -> Result<(), RejectedEvent> {
    check(event).map(|_| ())
}

pub(crate) fn check(event: &IngestEvent) -> Result<Checked<'_>, RejectedEvent> {
    match &event.event {
        None => Err(rejected("", "the IngestEvent carries no event")),
        Some(ingest_event::Event::Call(call)) => validate_event(call)
            .map(|at| Checked::Call(call, at))
            .map_err(|e| rejected(&call.event_id, e)),
        Some(ingest_event::Event::AgentState(state)) => {
            let id = &state.event_id;
            if id.is_empty() {
                return Err(rejected(id, "agent state event has no event_id"));
            }
            if state.agent.is_empty() {
                return Err(rejected(id, "agent state event names no agent"));
            }
            match v1::AgentState::try_from(state.state) {
                Ok(v1::AgentState::Unspecified) | Err(_) => {
                    return Err(rejected(
                        id,
                        format!("agent state {} is unknown or unspecified", state.state),
                    ));
                }
                Ok(_) => {}
            }
            let at = state
                .at
                .as_ref()
                .ok_or_else(|| rejected(id, "agent state event has no timestamp"))?;
            let at = from_proto_timestamp(at).map_err(|e| rejected(id, e))?;
            Ok(Checked::State(state, at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_and_clamp() {
        let t: Timestamp = "2026-11-23T09:00:00.123456789Z".parse().expect("valid");
        assert_eq!(from_ns(to_ns(t), "x").expect("in range"), t);
        assert_eq!(to_ns(Timestamp::MAX), i64::MAX);
        assert_eq!(to_ns(Timestamp::MIN), i64::MIN);
    }

    #[test]
    fn malformed_events_are_rejected_with_a_reason() {
        let empty = IngestEvent { event: None };
        assert_eq!(
            validate(&empty).err().map(|r| r.event_id),
            Some(String::new())
        );
        let no_kind = IngestEvent {
            event: Some(ingest_event::Event::Call(v1::CallEvent {
                event_id: "e1".into(),
                call_id: "c1".into(),
                sequence: 1,
                ..Default::default()
            })),
        };
        let r = validate(&no_kind).expect_err("no kind");
        assert_eq!(r.event_id, "e1");
        assert!(r.reason.contains("kind"), "{}", r.reason);
        let state = IngestEvent {
            event: Some(ingest_event::Event::AgentState(v1::AgentStateEvent {
                event_id: "s1".into(),
                agent: "anna".into(),
                state: 0,
                ..Default::default()
            })),
        };
        assert!(validate(&state).is_err());
    }
}
