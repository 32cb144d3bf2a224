//! Legs, and the per-agent *offers* the agent figures count.
//!
//! PRODUCT.md counts "legs that alerted this agent". An agent with a softphone and a mobile is
//! rung on two legs at once for one offer of the call, so counting raw legs would double every
//! figure of such an agent. An [`Offer`] is therefore an agent's legs of one call that overlap
//! in time (created before the previous ones of the group ended); the same agent rung again by a
//! later step (after the first ring timed out) is a second offer, as it should be.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Cdr;
use super::codes::{CancelCause, DestinationKind, NoAnswerCause};
use crate::time::rfc3339;

/// One INVITE toward an agent, an external target, or the client of an outbound call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    /// Unique within the call.
    pub leg_id: String,
    /// The agent rung; `None` for external numbers, SIP URI targets and the client leg of an
    /// outbound call.
    pub agent: Option<String>,
    /// SIP URI or E.164 number.
    pub destination: String,
    /// What kind of destination.
    pub destination_kind: DestinationKind,
    /// The carrier of a number destination.
    pub carrier: Option<String>,
    /// The queue that offered the call.
    pub queue: Option<String>,
    /// True when the agent was rung as the client's owner.
    pub owner: bool,
    /// When the INVITE left.
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    /// First 180/183, or the answer when no provisional response came: the moment the agent
    /// was alerted. `None` when never alerted (not offered).
    #[serde(with = "rfc3339::option")]
    pub alerted_at: Option<Timestamp>,
    /// The 200 OK.
    #[serde(with = "rfc3339::option")]
    pub answered_at: Option<Timestamp>,
    /// When the leg stopped (final failure, cancel, or the call's end); `None` while active.
    #[serde(with = "rfc3339::option")]
    pub ended_at: Option<Timestamp>,
    /// How the leg ended.
    pub outcome: LegOutcome,
}

/// How a leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LegOutcome {
    /// Still ringing or trying (the call is in progress or events are still on their way).
    Pending,
    /// Answered and bridged.
    Answered,
    /// Answered, but another leg had already been bridged (a lost race) or the caller was gone:
    /// not a miss, and not an answered call for this agent.
    AnsweredNotBridged,
    /// Alerted, then rejected by the agent (486 / 603). A miss for the agent.
    Declined {
        /// 486 or 603.
        sip_code: u16,
    },
    /// Alerted, never answered: a miss for the agent.
    NoAnswer {
        /// Why it stopped ringing.
        cause: NoAnswerCause,
    },
    /// Alerted, then cancelled because a colleague answered first: not a miss.
    CancelledColleagueAnswered,
    /// Rejected or unreachable before any provisional response (486 at once, 408 without 180,
    /// no response at all): never alerted, so not offered.
    FailedBeforeAlert {
        /// The final SIP code; 0 when there was no response.
        sip_code: u16,
    },
    /// Cancelled (or left behind by the call's end) before any provisional response: never
    /// alerted, so not offered.
    CancelledBeforeAlert {
        /// Why.
        cause: CancelCause,
    },
}

impl LegOutcome {
    /// Alerted and not answered by this leg, not cancelled because a colleague answered —
    /// PRODUCT.md's per-agent `missed` (declined included).
    pub fn is_miss(self) -> bool {
        matches!(
            self,
            LegOutcome::Declined { .. } | LegOutcome::NoAnswer { .. }
        )
    }
}

/// One agent's offer of one call: the agent's overlapping alerted legs.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The alerted legs of the offer (one per destination rung).
    pub legs: Vec<&'a Leg>,
    /// The first alert among them.
    pub alerted_at: Timestamp,
    /// The answer, when one leg was answered and bridged.
    pub answered_at: Option<Timestamp>,
    /// What the agent did with it.
    pub outcome: OfferOutcome,
}

/// What an agent did with an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OfferOutcome {
    /// Not alerted long enough to decide: the call is still in progress.
    Pending,
    /// Answered (and bridged).
    Answered,
    /// Rejected by the agent (486/603). Also a miss.
    Declined,
    /// Cancelled because a colleague answered first (or answered, but a colleague was bridged
    /// first). Not a miss.
    ColleagueAnswered,
    /// Rang and was not answered: timeout, the caller hung up, or another failure.
    Missed,
}

impl OfferOutcome {
    /// A miss in PRODUCT.md's per-agent sense (declined counts).
    pub fn is_miss(self) -> bool {
        matches!(self, OfferOutcome::Declined | OfferOutcome::Missed)
    }

    /// Which outcome wins when an offer's legs disagree: an answer on any device is an
    /// answer; a leg still ringing keeps the offer open; a rejection on one device is the
    /// agent's decision; a colleague's answer excuses the rest.
    fn rank(self) -> u8 {
        match self {
            OfferOutcome::Answered => 5,
            OfferOutcome::Pending => 4,
            OfferOutcome::Declined => 3,
            OfferOutcome::ColleagueAnswered => 2,
            OfferOutcome::Missed => 1,
        }
    }

    fn of_leg(outcome: LegOutcome) -> Self {
        match outcome {
            LegOutcome::Pending => OfferOutcome::Pending,
            LegOutcome::Answered => OfferOutcome::Answered,
            LegOutcome::Declined { .. } => OfferOutcome::Declined,
            LegOutcome::AnsweredNotBridged | LegOutcome::CancelledColleagueAnswered => {
                OfferOutcome::ColleagueAnswered
            }
            LegOutcome::NoAnswer { .. }
            | LegOutcome::FailedBeforeAlert { .. }
            | LegOutcome::CancelledBeforeAlert { .. } => OfferOutcome::Missed,
        }
    }
}

impl Cdr {
    /// The offers of this call to agents, ordered by first alert then agent name. Legs never
    /// alerted are not offers (PRODUCT.md: "a leg rejected with no provisional response was
    /// never alerted").
    pub fn offers(&self) -> Vec<Offer<'_>> {
        let mut alerted: Vec<(&str, Timestamp, &Leg)> = self
            .legs
            .iter()
            .filter_map(|l| Some((l.agent.as_deref()?, l.alerted_at?, l)))
            .collect();
        // By agent, then by creation: each agent's legs become consecutive.
        alerted.sort_by(|a, b| {
            (a.0, a.2.created_at, &a.2.leg_id).cmp(&(b.0, b.2.created_at, &b.2.leg_id))
        });
        let mut offers: Vec<Offer<'_>> = Vec::new();
        // End of the current group: None = still open (a leg without an end).
        let mut group_end: Option<Option<Timestamp>> = None;
        for (agent, alerted_at, leg) in alerted {
            let joins = match (offers.last(), group_end) {
                (Some(last), Some(end)) => {
                    last.agent == agent && end.is_none_or(|end| leg.created_at < end)
                }
                _ => false,
            };
            let leg_outcome = OfferOutcome::of_leg(leg.outcome);
            let answered = (leg.outcome == LegOutcome::Answered)
                .then_some(leg.answered_at)
                .flatten();
            match offers.last_mut() {
                Some(offer) if joins => {
                    offer.legs.push(leg);
                    offer.alerted_at = offer.alerted_at.min(alerted_at);
                    offer.answered_at = match (offer.answered_at, answered) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    if leg_outcome.rank() > offer.outcome.rank() {
                        offer.outcome = leg_outcome;
                    }
                    group_end = group_end.map(|end| match (end, leg.ended_at) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    });
                }
                _ => {
                    offers.push(Offer {
                        agent,
                        legs: vec![leg],
                        alerted_at,
                        answered_at: answered,
                        outcome: leg_outcome,
                    });
                    group_end = Some(leg.ended_at);
                }
            }
        }
        offers.sort_by(|a, b| (a.alerted_at, a.agent).cmp(&(b.alerted_at, b.agent)));
        offers
    }
}
