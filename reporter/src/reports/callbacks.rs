//! Callback discipline: for each missed group, the time from its first miss to the first
//! callback attempt, against `callbackSlaMinutes`; per agent, credited to the agent who called.

use std::collections::BTreeMap;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::groups::{Group, build_groups};
use super::unprocessed::Handling;
use super::{Dataset, Filter, StatusCode};
use crate::cdr::Cdr;
use crate::policy::Policy;
use crate::time::{rfc3339, seconds};

/// A group's callback discipline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    /// First attempt within the SLA of the first miss (the SLA's last instant included).
    WithinSla,
    /// First attempt after the SLA.
    Late,
    /// No attempt (as of the report's `now`), whether or not the group was processed another
    /// way.
    Never,
}

impl CallbackStatus {
    /// Every status.
    pub const ALL: [CallbackStatus; 3] = [
        CallbackStatus::WithinSla,
        CallbackStatus::Late,
        CallbackStatus::Never,
    ];

    /// The code.
    pub fn code(self) -> &'static str {
        match self {
            CallbackStatus::WithinSla => "within_sla",
            CallbackStatus::Late => "late",
            CallbackStatus::Never => "never",
        }
    }
}

impl fmt::Display for CallbackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One missed group and its first callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackGroupRow {
    /// The group's id (its first missed call).
    pub group_id: String,
    /// The client.
    pub client: String,
    /// The PhoneNumbers dialled.
    pub numbers: Vec<String>,
    /// The group's first miss.
    #[serde(with = "rfc3339")]
    pub first_missed_at: Timestamp,
    /// The first attempt's start.
    #[serde(with = "rfc3339::option")]
    pub first_callback_at: Option<Timestamp>,
    /// First miss to first attempt.
    pub time_to_callback_seconds: Option<f64>,
    /// The agent who made the first attempt.
    pub callback_agent: Option<String>,
    /// within_sla, late or never.
    pub status: CallbackStatus,
    /// Attempts made while the group was open.
    pub attempts: u32,
    /// An attempt was answered by the client.
    pub reached: bool,
    /// Agents who missed the group's calls.
    pub agents_missed: Vec<String>,
}

/// One agent's callback discipline (or the team's, as `total`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackAgentRow {
    /// Agent name; `total` for the team.
    pub agent: String,
    /// Groups this agent called back first.
    pub called_back: u32,
    /// Of those, within the SLA.
    pub within_sla: u32,
    /// Of those, later.
    pub late: u32,
    /// Groups this agent missed that nobody called back.
    pub never: u32,
    /// within_sla / (called_back + never); 0 when both are 0.
    pub share_within_sla: f64,
    /// Average first-miss-to-first-attempt time of the agent's first attempts; 0 when none.
    pub avg_time_to_callback_seconds: f64,
}

/// The callbacks report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbacksReport {
    /// The SLA applied.
    pub sla_seconds: f64,
    /// One row per missed group, oldest first miss first.
    pub groups: Vec<CallbackGroupRow>,
    /// One row per agent, by name.
    pub agents: Vec<CallbackAgentRow>,
    /// The team.
    pub total: CallbackAgentRow,
}

/// Sums behind an agent's (or the team's) row.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    pub called_back: u32,
    pub within_sla: u32,
    pub late: u32,
    pub never: u32,
    /// First miss to first attempt, summed in nanoseconds (exact, whatever the order).
    pub time_ns: i64,
}

impl Tally {
    fn row(&self, agent: &str) -> CallbackAgentRow {
        let denominator = self.called_back + self.never;
        CallbackAgentRow {
            agent: agent.to_owned(),
            called_back: self.called_back,
            within_sla: self.within_sla,
            late: self.late,
            never: self.never,
            share_within_sla: ratio(self.within_sla, denominator),
            avg_time_to_callback_seconds: if self.called_back == 0 {
                0.0
            } else {
                self.time_ns as f64 / 1e9 / f64::from(self.called_back)
            },
        }
    }

    /// Adds a group's row: a callback to the caller agent, a `never` to those who missed.
    pub(crate) fn add_row(
        total: &mut Tally,
        per_agent: &mut BTreeMap<String, Tally>,
        row: &CallbackGroupRow,
    ) {
        let ns = match (row.first_callback_at, row.first_missed_at) {
            (Some(back), first) => {
                i64::try_from(back.duration_since(first).as_nanos()).unwrap_or(i64::MAX)
            }
            (None, _) => 0,
        };
        match row.status {
            CallbackStatus::Never => {
                total.never += 1;
                for agent in &row.agents_missed {
                    per_agent.entry(agent.clone()).or_default().never += 1;
                }
            }
            status => {
                total.add_callback(status, ns);
                if let Some(agent) = &row.callback_agent {
                    per_agent
                        .entry(agent.clone())
                        .or_default()
                        .add_callback(status, ns);
                }
            }
        }
    }

    fn add_callback(&mut self, status: CallbackStatus, ns: i64) {
        self.called_back += 1;
        self.time_ns = self.time_ns.saturating_add(ns);
        match status {
            CallbackStatus::WithinSla => self.within_sla += 1,
            _ => self.late += 1,
        }
    }
}

pub(crate) fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

/// The callbacks report as of `now`.
///
/// `cdrs` must hold the calls of the period *and* the outbound calls after it up to `now`
/// (a miss on the period's last evening may be called back the next morning); misses before
/// the period are only needed to split groups the way the unprocessed list does.
///
/// Groups are those of the unprocessed list (split the same way by processing), without the
/// window and without anonymous callers (who cannot be called back). Filters: `from`/`to` on
/// the first miss, `number`, `agent` (the group row's callback agent, or for `never` an agent
/// who missed), `status` (within_sla | late | never), `caller`.
pub fn callbacks(
    cdrs: &[Cdr],
    handlings: &[Handling],
    policy: &Policy,
    now: Timestamp,
    filter: &Filter,
) -> CallbacksReport {
    let ds = Dataset::new(cdrs);
    let sla = policy.callback_sla();
    let mut rows = Vec::new();
    let mut per_agent: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    for g in build_groups(&ds, handlings, None, now) {
        if let Some(row) = callback_row(&g, sla, filter) {
            Tally::add_row(&mut total, &mut per_agent, &row);
            rows.push(row);
        }
    }
    assemble(sla, rows, &per_agent, &total, filter)
}

/// The report from its group rows and sums.
pub(crate) fn assemble(
    sla: SignedDuration,
    groups: Vec<CallbackGroupRow>,
    per_agent: &BTreeMap<String, Tally>,
    total: &Tally,
    filter: &Filter,
) -> CallbacksReport {
    let agents = per_agent
        .iter()
        .filter(|(name, _)| filter.agent.as_deref().is_none_or(|a| a == name.as_str()))
        .map(|(name, t)| t.row(name))
        .collect();
    CallbacksReport {
        sla_seconds: seconds(sla),
        groups,
        agents,
        total: total.row("total"),
    }
}

/// The row of group `g` when `filter` keeps it (anonymous groups never: they cannot be called
/// back).
pub(crate) fn callback_row(
    g: &Group,
    sla: SignedDuration,
    filter: &Filter,
) -> Option<CallbackGroupRow> {
    let client = g.client.as_deref()?;
    let first = g.first_missed_at();
    if !(filter.in_period(first) && filter.caller_matches(Some(client)) && g.number_matches(filter))
    {
        return None;
    }
    let first_attempt = g.attempts.first();
    let time_to = first_attempt.map(|a| a.started_at.duration_since(first));
    let status = match time_to {
        None => CallbackStatus::Never,
        Some(t) if t <= sla => CallbackStatus::WithinSla,
        Some(_) => CallbackStatus::Late,
    };
    let row = CallbackGroupRow {
        group_id: g.id.clone(),
        client: client.to_owned(),
        numbers: g.numbers(),
        first_missed_at: first,
        first_callback_at: first_attempt.map(|a| a.started_at),
        time_to_callback_seconds: time_to.map(seconds),
        callback_agent: first_attempt.and_then(|a| a.agent.clone()),
        status,
        attempts: u32::try_from(g.attempts.len()).unwrap_or(u32::MAX),
        reached: g.attempts.iter().any(|a| a.answered),
        agents_missed: g.agents(),
    };
    let status_ok = match filter.status {
        None => true,
        Some(StatusCode::Callback(s)) => s == status,
        Some(StatusCode::Call(_)) => false,
    };
    let agent_ok = filter.agent.as_deref().is_none_or(|a| match status {
        CallbackStatus::Never => row.agents_missed.iter().any(|x| x == a),
        _ => row.callback_agent.as_deref() == Some(a),
    });
    (status_ok && agent_ok).then_some(row)
}
