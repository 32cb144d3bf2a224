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
use crate::time::seconds;

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

#[derive(Default)]
struct Tally {
    offered: u32,
    answered: u32,
    missed: u32,
    declined: u32,
    answer_time_total: f64,
    short_calls: u32,
    short_agent: u32,
    short_client: u32,
    missed_without_callback: u32,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.offered += other.offered;
        self.answered += other.answered;
        self.missed += other.missed;
        self.declined += other.declined;
        self.answer_time_total += other.answer_time_total;
        self.short_calls += other.short_calls;
        self.short_agent += other.short_agent;
        self.short_client += other.short_client;
        self.missed_without_callback += other.missed_without_callback;
    }

    fn row(&self, agent: &str) -> AgentRow {
        AgentRow {
            agent: agent.to_owned(),
            offered: self.offered,
            answered: self.answered,
            missed: self.missed,
            declined: self.declined,
            miss_rate: ratio(self.missed, self.answered + self.missed),
            avg_time_to_answer_seconds: if self.answered == 0 {
                0.0
            } else {
                self.answer_time_total / f64::from(self.answered)
            },
            short_calls: self.short_calls,
            short_calls_agent_hung_up: self.short_agent,
            short_calls_client_hung_up: self.short_client,
            missed_without_callback: self.missed_without_callback,
        }
    }
}

/// The agents table for inbound calls started in the period.
///
/// Filters: `from`/`to` (call start), `number`, `agent` (only that agent's row; the total is
/// then that agent's too). Offers still pending (the call is in progress) are not counted.
pub fn agents(cdrs: &[Cdr], policy: &Policy, filter: &Filter) -> AgentsReport {
    let ds = Dataset::new(cdrs);
    let short_call = policy.short_call();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
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
        for offer in cdr.offers() {
            let other_agent = filter.agent.as_deref().is_some_and(|a| a != offer.agent);
            if other_agent || offer.outcome == OfferOutcome::Pending {
                continue;
            }
            let t = tallies.entry(offer.agent.to_owned()).or_default();
            match offer.outcome {
                OfferOutcome::Pending | OfferOutcome::ColleagueAnswered => {}
                OfferOutcome::Answered => {
                    t.answered += 1;
                    if let Some(answered) = offer.answered_at {
                        t.answer_time_total += seconds(answered.duration_since(offer.alerted_at));
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
                    if uncalled {
                        t.missed_without_callback += 1;
                    }
                }
            }
            t.offered += 1;
        }
    }
    let mut total = Tally::default();
    for t in tallies.values() {
        total.add(t);
    }
    AgentsReport {
        agents: tallies.iter().map(|(name, t)| t.row(name)).collect(),
        total: total.row("total"),
    }
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
    let mut rows: Vec<AgentRow> = agents(cdrs, policy, filter)
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
