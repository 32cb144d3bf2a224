//! The missed-calls report: every missed call with its reason code.

use jiff::Timestamp;
use serde::Serialize;

use super::{CallStatus, Dataset, Filter, StatusCode};
use crate::cdr::{Cdr, Direction, MissedReason};
use crate::time::{rfc3339, seconds};

/// One missed call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissedRow {
    /// The call's id.
    pub call_id: String,
    /// When the call started (INVITE arrival).
    #[serde(with = "rfc3339")]
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(with = "rfc3339::option")]
    pub ended_at: Option<Timestamp>,
    /// The client's number; `None` when anonymous. For `forbidden_destination` rows (failed
    /// callbacks), the number dialled.
    pub caller: Option<String>,
    /// The PhoneNumber dialled. For `forbidden_destination` rows, the caller ID used.
    pub number: Option<String>,
    /// The PhoneNumber resource name.
    pub number_name: Option<String>,
    /// The reason code.
    pub reason: MissedReason,
    /// Agents alerted, in order of first alert.
    pub agents_alerted: Vec<String>,
    /// The call ended in voicemail.
    pub voicemail: bool,
    /// The voicemail file, relative to the recordings storage.
    pub voicemail_path: Option<String>,
    /// `missed`, or `called_back` once an attempt to the client followed.
    pub status: CallStatus,
    /// The caller withheld their number.
    pub anonymous: bool,
    /// `inbound`, or `outbound` for `forbidden_destination` rows.
    pub direction: Direction,
    /// How long the caller stayed (start to end).
    pub waited_seconds: f64,
    /// The call's trace id.
    pub trace_id: Option<String>,
}

/// Every missed call, newest first: inbound missed calls (by the effective reason, see
/// [`Dataset::missed`]) and failed callbacks to forbidden destinations.
///
/// Filters: `from`/`to` (call start), `number`, `agent` (alerted), `status` (`missed` or
/// `called_back`), `reason`, `caller` (the client).
pub fn missed(cdrs: &[Cdr], filter: &Filter) -> Vec<MissedRow> {
    let ds = Dataset::new(cdrs);
    let mut rows: Vec<MissedRow> = cdrs
        .iter()
        .filter(|c| filter.in_period(c.started_at) && filter.number_matches(c))
        .filter(|c| filter.caller_matches(c.client()))
        .filter_map(|c| row(&ds, c))
        .filter(|r| filter.reason_matches(Some(r.reason)))
        .filter(|r| match filter.status {
            None => true,
            Some(StatusCode::Call(s)) => r.status == s,
            Some(StatusCode::Callback(_)) => false,
        })
        .filter(|r| {
            filter
                .agent
                .as_deref()
                .is_none_or(|a| r.agents_alerted.iter().any(|x| x == a))
        })
        .collect();
    rows.sort_by(|a, b| (b.started_at, &b.call_id).cmp(&(a.started_at, &a.call_id)));
    rows
}

fn row(ds: &Dataset<'_>, cdr: &Cdr) -> Option<MissedRow> {
    let reason = ds.missed(cdr)?;
    let outbound = cdr.direction == Direction::Outbound;
    // A failed outbound call is a row only when it was a callback.
    if outbound && !ds.is_callback(cdr) {
        return None;
    }
    let status = if ds.outbound_after(cdr).is_empty() {
        CallStatus::Missed
    } else {
        CallStatus::CalledBack
    };
    let waited = cdr
        .ended_at
        .map(|end| seconds(end.duration_since(cdr.started_at)))
        .unwrap_or_default();
    Some(MissedRow {
        call_id: cdr.call_id.clone(),
        started_at: cdr.started_at,
        ended_at: cdr.ended_at,
        caller: cdr.client().map(str::to_owned),
        number: cdr.our_number().map(str::to_owned),
        number_name: cdr.number_name.clone(),
        reason,
        agents_alerted: cdr
            .agents_alerted()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        voicemail: cdr.voicemail.is_some(),
        voicemail_path: cdr.voicemail.as_ref().map(|v| v.path.clone()),
        status,
        anonymous: cdr.anonymous,
        direction: cdr.direction,
        waited_seconds: waited,
        trace_id: cdr.trace_id.clone(),
    })
}
