//! The call log: every call with its status colour, reason, agents, durations and recording.

use jiff::Timestamp;
use serde::Serialize;

use super::{CallStatus, Dataset, Filter, StatusCode};
use crate::cdr::{Cdr, Direction, HangupParty, MissedReason};
use crate::time::{rfc3339, seconds};

/// One call in the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRow {
    /// The call's id.
    pub call_id: String,
    /// When it started.
    #[serde(with = "rfc3339")]
    pub started_at: Timestamp,
    /// When it ended; `None` while active.
    #[serde(with = "rfc3339::option")]
    pub ended_at: Option<Timestamp>,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Inbound: the client. Outbound: the caller ID shown. `None` when anonymous.
    pub caller: Option<String>,
    /// Inbound: the PhoneNumber dialled. Outbound: the client.
    pub number: String,
    /// The PhoneNumber resource name.
    pub number_name: Option<String>,
    /// missed (red), called_back (yellow), answered (green); outbound answered /
    /// not_answered; blocked, rejected, in_progress.
    pub status: CallStatus,
    /// The missed reason; `None` unless missed (or a forbidden destination).
    pub reason: Option<MissedReason>,
    /// Agents alerted, in order of first alert.
    pub agents: Vec<String>,
    /// The agent who answered (outbound: the calling agent of an answered call).
    pub answered_by: Option<String>,
    /// Start to answer, or to the end when unanswered.
    pub wait_seconds: f64,
    /// Bridged time.
    pub talk_seconds: f64,
    /// Who hung up.
    pub hangup_party: Option<HangupParty>,
    /// The recording file, relative to the recordings storage.
    pub recording_path: Option<String>,
    /// The call ended in voicemail.
    pub voicemail: bool,
    /// The voicemail file.
    pub voicemail_path: Option<String>,
    /// An outbound call that is a callback attempt.
    pub callback: bool,
    /// The carrier.
    pub carrier: Option<String>,
    /// The call's trace id.
    pub trace_id: Option<String>,
}

/// The call log, newest first.
///
/// Filters: `from`/`to` (start), `number`, `agent` (alerted, answering, or the outbound call's
/// agent), `status` (a call status), `reason`, `caller` (the client); `direction` when given.
pub fn calls(cdrs: &[Cdr], filter: &Filter, direction: Option<Direction>) -> Vec<CallRow> {
    let ds = Dataset::new(cdrs);
    let mut rows: Vec<CallRow> = cdrs
        .iter()
        .filter(|c| direction.is_none_or(|d| c.direction == d))
        .filter(|c| filter.in_period(c.started_at) && filter.number_matches(c))
        .filter(|c| filter.caller_matches(c.client()))
        .filter(|c| filter.reason_matches(ds.missed(c)))
        .filter(|c| {
            filter.agent.as_deref().is_none_or(|a| {
                c.agent.as_deref() == Some(a)
                    || c.answered_by.as_deref() == Some(a)
                    || c.agents_alerted().contains(&a)
            })
        })
        .map(|c| row(&ds, c))
        .filter(|r| match filter.status {
            None => true,
            Some(StatusCode::Call(s)) => r.status == s,
            Some(StatusCode::Callback(_)) => false,
        })
        .collect();
    rows.sort_by(|a, b| (b.started_at, &b.call_id).cmp(&(a.started_at, &a.call_id)));
    rows
}

fn row(ds: &Dataset<'_>, cdr: &Cdr) -> CallRow {
    CallRow {
        call_id: cdr.call_id.clone(),
        started_at: cdr.started_at,
        ended_at: cdr.ended_at,
        direction: cdr.direction,
        caller: cdr.caller.clone(),
        number: cdr.number.clone(),
        number_name: cdr.number_name.clone(),
        status: ds.call_status(cdr),
        reason: ds.missed(cdr),
        agents: cdr
            .agents_alerted()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        answered_by: cdr.answered_by.clone(),
        wait_seconds: seconds(cdr.wait()),
        talk_seconds: seconds(cdr.talk),
        hangup_party: cdr.hangup_party,
        recording_path: cdr.recording.as_ref().map(|r| r.path.clone()),
        voicemail: cdr.voicemail.is_some(),
        voicemail_path: cdr.voicemail.as_ref().map(|v| v.path.clone()),
        callback: cdr.direction == Direction::Outbound && ds.is_callback(cdr),
        carrier: cdr.carrier.clone(),
        trace_id: cdr.trace_id.clone(),
    }
}
