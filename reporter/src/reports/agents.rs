//! Per-agent figures with a team total, and the top missers.
//!
//! Figures count *offers* (an agent's overlapping legs of one inbound call, see
//! [`crate::cdr::Offer`]), so an agent rung on a softphone and a mobile at once is offered the
//! call once. Outbound calls (callbacks ring the agent first) are not offers: these figures are
//! about answering clients who call.

use std::collections::BTreeMap;

use serde::Serialize;

use super::callbacks::ratio;
use super::{Dataset, Filter};
use crate::cdr::{Cdr, CdrStatus, HangupParty, OfferOutcome};
use crate::policy::Policy;

/// One agent's figures for the period; field names are PRODUCT.md's JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    /// Agent name; `total` for the team total.
    pub agent: String,
    /// Offers that alerted this agent.
    pub offered: u32,
    /// Offers this agent answered.
    pub answered: u32,
    /// Alerted, not answered by this agent (declined included; offers cancelled because a
    /// colleague answered first are not).
    pub missed: u32,
    /// Alerted, then rejected by the agent (486 / 603).
    pub declined: u32,
    /// missed / (answered + missed), 0 to 1; 0 when both are 0.
    pub miss_rate: f64,
    /// Average alert-to-answer time over answered offers, in seconds; 0 when none.
    pub avg_time_to_answer_seconds: f64,
    /// Answered calls with talk time under `shortCallSeconds` (ended calls only).
    pub short_calls: u32,
    /// Of the short calls, those the agent hung up.
    pub short_calls_agent_hung_up: u32,
    /// Of the short calls, those the client hung up.
    pub short_calls_client_hung_up: u32,
    /// This agent's misses on calls that stayed missed and whose (non-anonymous) client got
    /// no callback attempt afterwards, from anyone.
    pub missed_without_callback: u32,
}

/// The agents table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentsReport {
    /// One row per agent, by name.
    pub agents: Vec<AgentRow>,
    /// The team total: sums, with the miss rate and average over all offers.
    pub total: AgentRow,
}

/// One agent's sums over some offers: what the agents table adds up, and what the store's
/// hourly and daily summaries keep (so both paths count with the same code).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AgentTally {
    /// Offers that alerted the agent.
    pub offered: i64,
    /// Answered.
    pub answered: i64,
    /// Missed (declined included).
    pub missed: i64,
    /// Declined.
    pub declined: i64,
    /// Alert-to-answer time of the answered offers, summed in nanoseconds (integers, so that
    /// sums in any order and in any database give the same average).
    pub answer_ns: i64,
    /// Short calls.
    pub short_calls: i64,
    /// Short calls the agent hung up.
    pub short_agent: i64,
    /// Short calls the client hung up.
    pub short_client: i64,
    /// Misses whose client got no callback attempt afterwards.
    pub missed_without_callback: i64,
}

impl AgentTally {
    /// Adds `other` (negated when `sign` is -1).
    pub fn add(&mut self, other: &AgentTally, sign: i64) {
        self.offered += sign * other.offered;
        self.answered += sign * other.answered;
        self.missed += sign * other.missed;
        self.declined += sign * other.declined;
        self.answer_ns += sign * other.answer_ns;
        self.short_calls += sign * other.short_calls;
        self.short_agent += sign * other.short_agent;
        self.short_client += sign * other.short_client;
        self.missed_without_callback += sign * other.missed_without_callback;
    }

    /// The table row of these sums.
    pub fn row(&self, agent: &str) -> AgentRow {
        let n = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        AgentRow {
            agent: agent.to_owned(),
            offered: n(self.offered),
            answered: n(self.answered),
            missed: n(self.missed),
            declined: n(self.declined),
            miss_rate: ratio(n(self.missed), n(self.answered) + n(self.missed)),
            avg_time_to_answer_seconds: if self.answered <= 0 {
                0.0
            } else {
                // Seconds of the integer sum, then the mean: the same float in every path.
                (self.answer_ns as f64 / 1e9) / self.answered as f64
            },
            short_calls: n(self.short_calls),
            short_calls_agent_hung_up: n(self.short_agent),
            short_calls_client_hung_up: n(self.short_client),
            missed_without_callback: n(self.missed_without_callback),
        }
    }
}

/// One inbound call's settled offers, summed per agent (`missed_without_callback` left at 0:
/// it depends on later calls). Pending offers (the call is in progress) count nowhere.
pub fn offer_tallies<'a>(cdr: &'a Cdr, policy: &Policy) -> BTreeMap<&'a str, AgentTally> {
    let mut tallies: BTreeMap<&str, AgentTally> = BTreeMap::new();
    if !cdr.is_inbound_call() {
        return tallies;
    }
    let short_call = policy.short_call();
    for offer in cdr.offers() {
        if offer.outcome == OfferOutcome::Pending {
            continue;
        }
        let t = tallies.entry(offer.agent).or_default();
        match offer.outcome {
            OfferOutcome::Pending | OfferOutcome::ColleagueAnswered => {}
            OfferOutcome::Answered => {
                t.answered += 1;
                if let Some(answered) = offer.answered_at {
                    let ns = answered.duration_since(offer.alerted_at).as_nanos();
                    t.answer_ns += i64::try_from(ns).unwrap_or(0);
                }
                if cdr.status == CdrStatus::Answered
                    && cdr.ended_at.is_some()
                    && cdr.talk < short_call
                {
                    t.short_calls += 1;
                    match cdr.hangup_party {
                        Some(HangupParty::Agent) => t.short_agent += 1,
                        Some(HangupParty::Client) => t.short_client += 1,
                        _ => {}
                    }
                }
            }
            OfferOutcome::Declined | OfferOutcome::Missed => {
                t.missed += 1;
                if offer.outcome == OfferOutcome::Declined {
                    t.declined += 1;
                }
            }
        }
        t.offered += 1;
    }
    tallies
}

/// The agents table from per-agent sums (agent filter applied by the caller).
pub fn agents_from_tallies(tallies: &BTreeMap<String, AgentTally>) -> AgentsReport {
    let mut total = AgentTally::default();
    for t in tallies.values() {
        total.add(t, 1);
    }
    AgentsReport {
        agents: tallies.iter().map(|(name, t)| t.row(name)).collect(),
        total: total.row("total"),
    }
}

/// The agents table for inbound calls started in the period.
///
/// Filters: `from`/`to` (call start), `number`, `agent` (only that agent's row; the total is
/// then that agent's too). Offers still pending (the call is in progress) are not counted.
pub fn agents(cdrs: &[Cdr], policy: &Policy, filter: &Filter) -> AgentsReport {
    let ds = Dataset::new(cdrs);
    let mut tallies: BTreeMap<String, AgentTally> = BTreeMap::new();
    for cdr in cdrs {
        if !cdr.is_inbound_call()
            || !filter.in_period(cdr.started_at)
            || !filter.number_matches(cdr)
        {
            continue;
        }
        // Stays missed with no attempt to its client afterwards, from anyone.
        let uncalled =
            ds.missed(cdr).is_some() && cdr.client().is_some() && ds.outbound_after(cdr).is_empty();
        for (agent, mut t) in offer_tallies(cdr, policy) {
            if filter.agent.as_deref().is_some_and(|a| a != agent) {
                continue;
            }
            if uncalled {
                t.missed_without_callback = t.missed;
            }
            tallies.entry(agent.to_owned()).or_default().add(&t, 1);
        }
    }
    agents_from_tallies(&tallies)
}

/// The `n` agents with the highest miss rate among those offered at least `min_offered` calls
/// in the period; ties go to more misses, then by name. Filters as [`agents`].
pub fn top_missers(
    cdrs: &[Cdr],
    policy: &Policy,
    filter: &Filter,
    n: usize,
    min_offered: u32,
) -> Vec<AgentRow> {
    top_missers_of(agents(cdrs, policy, filter), n, min_offered)
}

/// The top missers of an agents table (see [`top_missers`]).
pub fn top_missers_of(report: AgentsReport, n: usize, min_offered: u32) -> Vec<AgentRow> {
    let mut rows: Vec<AgentRow> = report
        .agents
        .into_iter()
        .filter(|r| r.offered >= min_offered)
        .collect();
    rows.sort_by(|a, b| {
        b.miss_rate
            .total_cmp(&a.miss_rate)
            .then(b.missed.cmp(&a.missed))
            .then(a.agent.cmp(&b.agent))
    });
    rows.truncate(n);
    rows
}
