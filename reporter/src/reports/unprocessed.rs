//! The unprocessed missed calls: the to-do list grouped by client, and its processed view.
//! How groups form and close is described in the `groups` module.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::groups::{Group, build_groups};
use super::{Dataset, Filter};
use crate::cdr::{Cdr, MissedReason};
use crate::error::ReportError;
use crate::policy::Policy;
use crate::time::{rfc3339, seconds};

/// Why a supervisor processed a group by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandleReason {
    /// Spam.
    Spam,
    /// A wrong number.
    WrongNumber,
    /// Resolved through another channel.
    ResolvedElsewhere,
    /// A duplicate of another group.
    Duplicate,
    /// Something else, said in the note.
    Other,
}

impl HandleReason {
    /// Every reason.
    pub const ALL: [HandleReason; 5] = [
        HandleReason::Spam,
        HandleReason::WrongNumber,
        HandleReason::ResolvedElsewhere,
        HandleReason::Duplicate,
        HandleReason::Other,
    ];

    /// The code.
    pub fn code(self) -> &'static str {
        match self {
            HandleReason::Spam => "spam",
            HandleReason::WrongNumber => "wrong_number",
            HandleReason::ResolvedElsewhere => "resolved_elsewhere",
            HandleReason::Duplicate => "duplicate",
            HandleReason::Other => "other",
        }
    }
}

impl fmt::Display for HandleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for HandleReason {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HandleReason::ALL
            .into_iter()
            .find(|r| r.code() == s)
            .ok_or_else(|| ReportError::UnknownHandleReason(s.to_owned()))
    }
}

/// Which group a handling closes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HandleTarget {
    /// The group open at the handling's time for this client number.
    Client(String),
    /// The group with this id (the only way to handle an anonymous caller's group).
    Group(String),
}

/// A manual processing of a group (`dialtone handle`), kept by the storage layer and passed in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handling {
    /// Which group.
    pub target: HandleTarget,
    /// Why.
    pub reason: HandleReason,
    /// Free text; required with `other`.
    pub note: Option<String>,
    /// Who handled it.
    pub by: String,
    /// When. It closes the group open at that instant; a miss after it opens a new group.
    pub at: Timestamp,
}

impl Handling {
    /// Checks the handling.
    ///
    /// # Errors
    ///
    /// [`ReportError::OtherNeedsNote`] for `other` without a note.
    pub fn validate(&self) -> Result<(), ReportError> {
        let has_note = self.note.as_deref().is_some_and(|n| !n.trim().is_empty());
        if self.reason == HandleReason::Other && !has_note {
            return Err(ReportError::OtherNeedsNote);
        }
        Ok(())
    }
}

/// How a group was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessedHow {
    /// An outbound call to the client was answered by the client.
    CallbackAnswered,
    /// A later inbound call from the client was answered by an agent.
    InboundAnswered,
    /// Handled manually with a reason.
    Handled,
}

/// How, when and by whom a group was processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Processing {
    /// Automatically or manually.
    pub how: ProcessedHow,
    /// When: the answer, or the handling.
    #[serde(with = "rfc3339")]
    pub at: Timestamp,
    /// The agent on the answered call, or the user who handled it.
    pub by: Option<String>,
    /// Manual handling: the reason.
    pub reason: Option<HandleReason>,
    /// Manual handling: the note.
    pub note: Option<String>,
    /// Automatic processing: the answered call.
    pub call_id: Option<String>,
}

impl Processing {
    pub(crate) fn handled(h: &Handling) -> Self {
        Processing {
            how: ProcessedHow::Handled,
            at: h.at,
            by: Some(h.by.clone()),
            reason: Some(h.reason),
            note: h.note.clone(),
            call_id: None,
        }
    }
}

/// Which groups to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum View {
    /// Groups still to process: the to-do list.
    #[default]
    Open,
    /// Groups already processed, with how.
    Processed,
    /// Both.
    All,
}

/// One client's missed calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnprocessedGroup {
    /// The group's id: its first missed call's id.
    pub group_id: String,
    /// The client's number; `None` when anonymous.
    pub client: Option<String>,
    /// An anonymous caller: one call per group, cannot be called back.
    pub anonymous: bool,
    /// Every PhoneNumber the client dialled in the group.
    pub numbers: Vec<String>,
    /// First miss (call start).
    #[serde(with = "rfc3339")]
    pub first_missed_at: Timestamp,
    /// Last miss (call start).
    #[serde(with = "rfc3339")]
    pub last_missed_at: Timestamp,
    /// How long the client has been lost between misses: last − first.
    pub first_to_last_seconds: f64,
    /// How long the client has been lost so far: now − first (processed groups: processing
    /// time − first).
    pub first_to_now_seconds: f64,
    /// Missed calls in the group.
    pub missed_count: u32,
    /// Callback attempts (outbound calls that dialled the client) while the group was open.
    pub callback_attempts: u32,
    /// The last attempt's start.
    #[serde(with = "rfc3339::option")]
    pub last_callback_at: Option<Timestamp>,
    /// The reason of the last miss.
    pub last_reason: MissedReason,
    /// Agents who missed the client's calls (alerted, not answered; declined included).
    pub agents: Vec<String>,
    /// The missed calls, oldest first.
    pub call_ids: Vec<String>,
    /// How it was processed; `None` while open.
    pub processed: Option<Processing>,
}

impl UnprocessedGroup {
    pub(crate) fn from_group(g: &Group, now: Timestamp) -> Self {
        let first = g.first_missed_at();
        let last = g.last_missed_at();
        let until = g.processed.as_ref().map_or(now, |p| p.at);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        UnprocessedGroup {
            group_id: g.id.clone(),
            client: g.client.clone(),
            anonymous: g.client.is_none(),
            numbers: g.numbers(),
            first_missed_at: first,
            last_missed_at: last,
            first_to_last_seconds: seconds(last.duration_since(first)),
            first_to_now_seconds: seconds(until.duration_since(first)),
            missed_count: count(g.misses.len()),
            callback_attempts: count(g.attempts.len()),
            last_callback_at: g.attempts.last().map(|a| a.started_at),
            last_reason: g
                .misses
                .last()
                .map_or(MissedReason::NotAnswered, |m| m.reason),
            agents: g.agents(),
            call_ids: g.misses.iter().map(|m| m.call_id.clone()).collect(),
            processed: g.processed.clone(),
        }
    }
}

/// The unprocessed list as of `now`, oldest loss first.
///
/// `cdrs` must hold at least the calls of the window up to `now` (misses, the outbound calls
/// to those clients, and their later inbound calls).
///
/// Only misses started within the last `unprocessed_window_days` (up to `now`) are grouped;
/// `handlings` are the manual processings recorded so far. Filters: `from`/`to` on the
/// group's last miss, `number` (any number dialled in the group, E.164 or resource name),
/// `agent` (who missed), `reason` (the last reason), `caller` (the client).
pub fn unprocessed(
    cdrs: &[Cdr],
    handlings: &[Handling],
    policy: &Policy,
    now: Timestamp,
    filter: &Filter,
    view: View,
) -> Vec<UnprocessedGroup> {
    let ds = Dataset::new(cdrs);
    let since = now.checked_sub(policy.unprocessed_window()).ok();
    build_groups(&ds, handlings, since, now)
        .iter()
        .filter_map(|g| unprocessed_row(g, now, filter, view))
        .collect()
}

/// The row of group `g` as of `now` when `view` and `filter` keep it.
pub fn unprocessed_row(
    g: &Group,
    now: Timestamp,
    filter: &Filter,
    view: View,
) -> Option<UnprocessedGroup> {
    let in_view = match view {
        View::Open => g.processed.is_none(),
        View::Processed => g.processed.is_some(),
        View::All => true,
    };
    let kept = in_view
        && filter.in_period(g.last_missed_at())
        && filter.caller_matches(g.client.as_deref())
        && g.number_matches(filter)
        && filter
            .agent
            .as_deref()
            .is_none_or(|a| g.misses.iter().any(|m| m.agents.iter().any(|x| x == a)));
    if !kept {
        return None;
    }
    Some(UnprocessedGroup::from_group(g, now))
        .filter(|r| filter.reason_matches(Some(r.last_reason)))
}
