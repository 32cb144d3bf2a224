//! Every report of PRODUCT.md, as pure functions over a slice of CDRs.
//!
//! The reports share three notions, defined once in [`Dataset`]:
//!
//! - **missed** (effective): an inbound call whose CDR is missed — except a queue caller who
//!   chose a callback when that callback was answered by the client (PRODUCT.md: "not missed if
//!   the callback is answered").
//! - **callback attempt**: an outbound call in which Dialtone dialled the client (a client leg
//!   was created), or an agent's call out refused by policy before any leg (blocklisted or
//!   invalid number), started after a miss of that client, by anyone. Failed ones
//!   (`forbidden_destination` included) are attempts too.
//! - **call status** of the call log: `missed` (missed, no attempt to the client started after
//!   the call), `called_back` (missed, an attempt followed), `answered`; outbound calls are
//!   `answered` / `not_answered`; `blocked`, `rejected` (unknown number) and `in_progress` for
//!   the rest.
//!
//! Periods are `[from, to)`. Calls still in progress are neither answered nor missed yet, and
//! count nowhere but in the call log.

pub mod agents;
pub mod callbacks;
pub mod calls;
pub(crate) mod groups;
pub mod heatmap;
pub mod missed;
pub mod unprocessed;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::Serialize;

pub use agents::{
    AgentRow, AgentTally, AgentsReport, agents, agents_from_tallies, offer_tallies, top_missers,
    top_missers_of,
};
pub use callbacks::{
    CallbackAgentRow, CallbackGroupRow, CallbackStatus, CallbacksReport, callbacks,
};
pub use calls::{CallRow, calls};
pub use heatmap::{AgentStateChange, Heatmap, HeatmapCell, HeatmapOptions, heatmap};
pub use missed::{MissedRow, missed};
pub use unprocessed::{
    HandleReason, HandleTarget, Handling, ProcessedHow, Processing, UnprocessedGroup, View,
    unprocessed,
};

use crate::cdr::{Cdr, CdrStatus, Direction, MissedReason};
use crate::error::ReportError;

/// Filters shared by the reports; each report says which it applies. `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Start of the period, inclusive.
    pub from: Option<Timestamp>,
    /// End of the period, exclusive.
    pub to: Option<Timestamp>,
    /// Our number: the PhoneNumber dialled (E.164 or resource name); for outbound calls the
    /// caller ID shown.
    pub number: Option<String>,
    /// An agent (Agent resource name).
    pub agent: Option<String>,
    /// The client's number (E.164).
    pub caller: Option<String>,
    /// A missed reason.
    pub reason: Option<MissedReason>,
    /// A status code: a call status, or a callback status for the callbacks report.
    pub status: Option<StatusCode>,
}

impl Filter {
    /// Checks the filter's coherence.
    ///
    /// # Errors
    ///
    /// [`ReportError::EmptyPeriod`] when `from` is not before `to`.
    pub fn validate(&self) -> Result<(), ReportError> {
        match (self.from, self.to) {
            (Some(from), Some(to)) if from >= to => Err(ReportError::EmptyPeriod { from, to }),
            _ => Ok(()),
        }
    }

    /// `t` lies in `[from, to)`.
    pub fn in_period(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|from| t >= from) && self.to.is_none_or(|to| t < to)
    }

    /// The call concerns our number `number` (by E.164 or by resource name).
    pub(crate) fn number_matches(&self, cdr: &Cdr) -> bool {
        self.number
            .as_deref()
            .is_none_or(|n| cdr.our_number() == Some(n) || cdr.number_name.as_deref() == Some(n))
    }

    /// Our number `number` (E.164) with resource name `name` is the filter's number.
    pub(crate) fn number_is(&self, number: &str, name: Option<&str>) -> bool {
        self.number
            .as_deref()
            .is_none_or(|n| number == n || name == Some(n))
    }

    /// The call is from / to the client `caller`.
    pub(crate) fn caller_matches(&self, client: Option<&str>) -> bool {
        self.caller.as_deref().is_none_or(|c| client == Some(c))
    }

    pub(crate) fn reason_matches(&self, reason: Option<MissedReason>) -> bool {
        self.reason.is_none_or(|r| reason == Some(r))
    }
}

/// A status code given as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// A call-log status (missed and calls reports).
    Call(CallStatus),
    /// A callback status (callbacks report).
    Callback(CallbackStatus),
}

impl FromStr for StatusCode {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallStatus::ALL
            .into_iter()
            .find(|c| c.code() == s)
            .map(StatusCode::Call)
            .or_else(|| {
                CallbackStatus::ALL
                    .into_iter()
                    .find(|c| c.code() == s)
                    .map(StatusCode::Callback)
            })
            .ok_or_else(|| ReportError::UnknownStatus(s.to_owned()))
    }
}

/// The status of a call in the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Red: missed, no callback attempt yet.
    Missed,
    /// Yellow: missed, a callback was attempted (successful or not).
    CalledBack,
    /// Green: answered (inbound: by an agent, or by the queue callback the caller chose;
    /// outbound: by the client).
    Answered,
    /// Outbound: the client did not answer or the call failed.
    NotAnswered,
    /// Inbound from a blocklisted caller.
    Blocked,
    /// Inbound to a number Dialtone does not serve.
    Rejected,
    /// Not over yet.
    InProgress,
}

impl CallStatus {
    /// Every status.
    pub const ALL: [CallStatus; 7] = [
        CallStatus::Missed,
        CallStatus::CalledBack,
        CallStatus::Answered,
        CallStatus::NotAnswered,
        CallStatus::Blocked,
        CallStatus::Rejected,
        CallStatus::InProgress,
    ];

    /// The code reports print.
    pub fn code(self) -> &'static str {
        match self {
            CallStatus::Missed => "missed",
            CallStatus::CalledBack => "called_back",
            CallStatus::Answered => "answered",
            CallStatus::NotAnswered => "not_answered",
            CallStatus::Blocked => "blocked",
            CallStatus::Rejected => "rejected",
            CallStatus::InProgress => "in_progress",
        }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Indexes over a slice of CDRs that every report needs: which queue callbacks were
/// answered, and each client's outbound calls and misses in time order.
#[derive(Debug)]
pub struct Dataset<'a> {
    cdrs: &'a [Cdr],
    /// Callback ids whose outbound call the client answered.
    answered_callbacks: HashSet<&'a str>,
    /// Client → outbound calls that dialled them, by start.
    outbound_by_client: HashMap<&'a str, Vec<&'a Cdr>>,
    /// Client → start times of their missed inbound calls, ascending.
    misses_by_client: HashMap<&'a str, Vec<Timestamp>>,
}

impl<'a> Dataset<'a> {
    /// Builds the indexes (one pass, then sorts).
    pub fn new(cdrs: &'a [Cdr]) -> Self {
        let mut answered_callbacks = HashSet::new();
        let mut outbound_by_client: HashMap<&str, Vec<&Cdr>> = HashMap::new();
        for cdr in cdrs.iter().filter(|c| c.attempted_client()) {
            if let Some(client) = cdr.client() {
                outbound_by_client.entry(client).or_default().push(cdr);
            }
            if cdr.status == CdrStatus::Answered
                && let Some(id) = cdr.callback_id.as_deref()
            {
                answered_callbacks.insert(id);
            }
        }
        for calls in outbound_by_client.values_mut() {
            calls.sort_by(|a, b| (a.started_at, &a.call_id).cmp(&(b.started_at, &b.call_id)));
        }
        let mut ds = Dataset {
            cdrs,
            answered_callbacks,
            outbound_by_client,
            misses_by_client: HashMap::new(),
        };
        let mut misses: HashMap<&str, Vec<Timestamp>> = HashMap::new();
        for cdr in cdrs {
            if ds.missed(cdr).is_some()
                && cdr.direction == Direction::Inbound
                && let Some(client) = cdr.client()
            {
                misses.entry(client).or_default().push(cdr.started_at);
            }
        }
        for times in misses.values_mut() {
            times.sort();
        }
        ds.misses_by_client = misses;
        ds
    }

    /// The CDRs.
    pub fn cdrs(&self) -> &'a [Cdr] {
        self.cdrs
    }

    /// The queue callback this call's caller chose was answered by the client. When the
    /// order's id is unknown (no `CallbackOrdered` event), the first outbound call to the
    /// client after this call stands for the callback.
    pub fn served_by_callback(&self, cdr: &Cdr) -> bool {
        if !cdr.callback_chosen {
            return false;
        }
        match cdr.callback_order.as_ref() {
            Some(order) => self.answered_callbacks.contains(order.callback_id.as_str()),
            None => self
                .outbound_after(cdr)
                .first()
                .is_some_and(|c| c.status == CdrStatus::Answered),
        }
    }

    /// The effective missed reason: inbound misses (minus answered queue callbacks) and
    /// outbound `forbidden_destination` failures.
    pub fn missed(&self, cdr: &Cdr) -> Option<MissedReason> {
        match cdr.direction {
            Direction::Inbound if self.served_by_callback(cdr) => None,
            _ => cdr.missed,
        }
    }

    /// Outbound calls that dialled this call's client, started after this call started.
    pub fn outbound_after(&self, cdr: &Cdr) -> &[&'a Cdr] {
        let Some(calls) = cdr.client().and_then(|c| self.outbound_by_client.get(c)) else {
            return &[];
        };
        let start = calls.partition_point(|c| c.started_at <= cdr.started_at);
        calls.get(start..).unwrap_or(&[])
    }

    /// Outbound calls that dialled `client`, by start.
    pub(crate) fn outbound_to(&self, client: &str) -> &[&'a Cdr] {
        self.outbound_by_client
            .get(client)
            .map_or(&[], Vec::as_slice)
    }

    /// An outbound call that is a callback attempt: it carries a callback id, or it follows a
    /// missed inbound call of its client.
    pub fn is_callback(&self, cdr: &Cdr) -> bool {
        cdr.attempted_client()
            && (cdr.callback_id.is_some()
                || cdr
                    .client()
                    .and_then(|c| self.misses_by_client.get(c))
                    .and_then(|times| times.first())
                    .is_some_and(|first| *first < cdr.started_at))
    }

    /// The call log's status of a call.
    pub fn call_status(&self, cdr: &Cdr) -> CallStatus {
        match (cdr.direction, cdr.status) {
            (_, CdrStatus::InProgress) => CallStatus::InProgress,
            (_, CdrStatus::Answered) => CallStatus::Answered,
            (_, CdrStatus::Blocked) => CallStatus::Blocked,
            (_, CdrStatus::Rejected) => CallStatus::Rejected,
            (Direction::Outbound, _) | (_, CdrStatus::NotAnswered) => CallStatus::NotAnswered,
            (Direction::Inbound, CdrStatus::Missed) => {
                if self.served_by_callback(cdr) {
                    CallStatus::Answered
                } else if self.outbound_after(cdr).is_empty() {
                    CallStatus::Missed
                } else {
                    CallStatus::CalledBack
                }
            }
        }
    }
}
