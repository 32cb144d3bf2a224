//! Agent presence: registrations, states and call legs of every agent, as a sans-IO state machine.
//!
//! Why a state machine fed `now`: every media node shares the router, and the only way to
//! guarantee that no agent is offered more calls than `maxConcurrentCalls` is to make the check
//! and the increment one step of one owner of the truth. The edge (the gRPC service) holds one
//! [`Presence`] behind a mutex and calls it with the current instant; tests call it with any
//! instant they like, so nothing ever sleeps.
//!
//! Board states are *derived*, never stored as commands: they follow from the agent's manual
//! choice (available / dnd / away / offline), its live legs, its wrap-up deadline and whether it
//! can be reached at all (a live softphone contact, or a number / SIP URI destination).
//! Time-driven transitions (registration expiry, end of wrap-up, a reservation nobody used) are
//! applied when the core is next called and stamped with the instant they really happened, so
//! the reporter's "agents available per hour" is exact even when the edge polls lazily.
//!
//! This file holds the types, each agent's record (how its board state is derived and
//! settled) and configuration changes; `contacts.rs` registrations, `legs.rs` reservations
//! and the life of a call leg, `outbound.rs` an agent's own calls out, `sync.rs` a node's full
//! list of contacts, `board.rs` what is read out (states, availability, counts, the board).

use std::collections::BTreeMap;
use std::fmt;

use dialtone_model::snapshot::{AgentConfig, Destination, Snapshot};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

/// How long an unanswered reservation holds when the caller names no hold. A media node that
/// crashes between reserving and ringing must not leave the agent "ringing" forever.
pub const DEFAULT_HOLD_SECS: u32 = 120;

/// Lapsed reservations remembered per agent, so that a late "answered" is still believed.
const LAPSED_MEMORY: usize = 16;

/// `t + secs`, saturating: a huge expiry must not be an error path.
pub(crate) fn after(t: Timestamp, secs: u32) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(i64::from(secs)))
        .unwrap_or(Timestamp::MAX)
}

/// An agent's state on the live board (the product's exact list).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentState {
    /// Can be offered a call.
    Available,
    /// At least one leg is reserved or alerting, none answered.
    Ringing,
    /// At least one leg is answered.
    OnCall,
    /// A call ended less than the queue's wrap-up time ago.
    WrapUp,
    /// Do not disturb.
    Dnd,
    /// Away with a label such as "lunch".
    Away { label: String },
    /// Logged out, or unreachable (softphone only and not registered).
    Offline,
}

impl AgentState {
    /// The board code: `available`, `ringing`, `on_call`, `wrap_up`, `dnd`, `away`, `offline`.
    pub fn code(&self) -> &'static str {
        match self {
            AgentState::Available => "available",
            AgentState::Ringing => "ringing",
            AgentState::OnCall => "on_call",
            AgentState::WrapUp => "wrap_up",
            AgentState::Dnd => "dnd",
            AgentState::Away { .. } => "away",
            AgentState::Offline => "offline",
        }
    }
}

/// The states an agent (or supervisor) chooses; the others are derived from calls and contacts.
/// `Available` also ends a running wrap-up early ("I'm ready"); `Offline` logs out even while
/// registered, as the gRPC `SetAgentState` allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manual {
    Available,
    Dnd,
    Away(String),
    Offline,
}

/// One transition of an agent's board state, for the reporter (agents available per hour) and
/// the live board. For time-driven changes `at` is the deadline, not when it was noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub agent: String,
    pub from: AgentState,
    pub to: AgentState,
    pub at: Timestamp,
}

/// Why an agent cannot be offered a call now. Its `Display` is the board's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnavailableReason {
    Dnd,
    Away {
        label: String,
    },
    /// Logged out or unreachable.
    Offline,
    /// `active` ringing and answered legs reached `max` (`maxConcurrentCalls`).
    Busy {
        active: u32,
        max: u32,
    },
    WrapUp {
        until: Timestamp,
    },
    /// Already ringing for (or on) this very call: ringing an agent twice makes no sense.
    AlreadyOffered,
    /// Not an agent of the current snapshot.
    Unknown,
}

impl fmt::Display for UnavailableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnavailableReason::Dnd => f.write_str("dnd"),
            UnavailableReason::Away { label } => write!(f, "away: {label}"),
            UnavailableReason::Offline => f.write_str("offline"),
            UnavailableReason::Busy { active, max } => write!(f, "busy {active}/{max}"),
            UnavailableReason::WrapUp { until } => write!(f, "wrap-up until {until}"),
            UnavailableReason::AlreadyOffered => f.write_str("already offered this call"),
            UnavailableReason::Unknown => f.write_str("unknown agent"),
        }
    }
}

/// Whether a reservation would succeed now (`reason` is `None` then); for plans and the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    pub available: bool,
    pub reason: Option<UnavailableReason>,
}

/// A reservation was refused; nothing was counted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("agent {agent} cannot be offered call {call_id}: {reason}")]
pub struct Unavailable {
    pub agent: String,
    pub call_id: String,
    pub reason: UnavailableReason,
}

/// Requests about agents or legs the core does not know (gRPC `NOT_FOUND` at the edge).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PresenceError {
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    /// A duplicate or late event for a leg that already ended or was released.
    #[error("agent {agent} has no leg for call {call_id} (already ended or released)")]
    UnknownLeg { agent: String, call_id: String },
}

/// Where a REGISTER says the softphone is; `source` (`ip:port`) is kept because registered
/// agents' addresses are exempt from SIP flood bans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactAddr {
    pub uri: String,
    pub source: String,
}

/// A registered softphone contact. The agent's name is the address-of-record; `node` is the
/// media node holding the registration (legs to it go through that node); `registered_at` is
/// the first registration, which refreshes keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub agent: String,
    pub uri: String,
    pub node: String,
    /// The holding node's SIP address (`host:port`); empty when the registration did not say.
    pub node_address: String,
    pub source: String,
    pub expires_at: Timestamp,
    pub registered_at: Timestamp,
}

/// Proof of one reservation. Only [`Presence`] makes them, so no leg is counted without having
/// passed the availability check; leg events name their leg with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LegToken {
    agent: String,
    call_id: String,
    id: u64,
}

impl LegToken {
    /// The reserved agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }
    /// The call the agent rings for.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }
}

/// One agent's line on the live board. `label` is the away label; `active_legs` counts ringing
/// and answered legs (of `call_ids`); `available` says whether a reservation would succeed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardLine {
    pub agent: String,
    pub display_name: String,
    pub state: AgentState,
    pub since: Timestamp,
    pub label: Option<String>,
    pub active_legs: u32,
    pub max_concurrent_calls: u32,
    pub call_ids: Vec<String>,
    pub available: bool,
    pub reachable: bool,
    pub wrap_up_until: Option<Timestamp>,
    pub last_call_ended_at: Option<Timestamp>,
    pub answered_today: u32,
    pub contacts: Vec<Contact>,
}

/// A leg's phase. `Lapsed` legs (reservations whose hold passed unanswered) no longer count,
/// but are remembered a while so that a late "answered" is believed: the agent *is* on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reserved,
    Alerting,
    Answered,
    Lapsed,
}

#[derive(Debug, Clone)]
struct Leg {
    id: u64,
    call_id: String,
    phase: Phase,
    /// Unanswered legs lapse here; answered legs never do (calls last as long as they last).
    hold_until: Timestamp,
}

impl Leg {
    fn ringing(&self) -> bool {
        matches!(self.phase, Phase::Reserved | Phase::Alerting)
    }
    fn live(&self, now: Timestamp) -> bool {
        self.phase == Phase::Answered || (self.ringing() && self.hold_until > now)
    }
}

/// Everything known about one agent. `state`/`since` are the last *recorded* board state; the
/// rest are the facts it is derived from.
#[derive(Debug, Clone)]
struct AgentRecord {
    config: AgentConfig,
    manual: Manual,
    state: AgentState,
    since: Timestamp,
    contacts: Vec<Contact>,
    legs: Vec<Leg>,
    wrap_up_until: Option<Timestamp>,
    last_call_ended_at: Option<Timestamp>,
    answered: Option<(Date, u32)>,
}

impl AgentRecord {
    fn new(config: AgentConfig, now: Timestamp) -> Self {
        // Everyone starts offline: the first recorded change is the agent coming in, so the
        // reporter's history never has an agent "available" before the router knew of it.
        AgentRecord {
            config,
            manual: Manual::Available,
            state: AgentState::Offline,
            since: now,
            contacts: Vec::new(),
            legs: Vec::new(),
            wrap_up_until: None,
            last_call_ended_at: None,
            answered: None,
        }
    }

    fn reachable(&self, now: Timestamp) -> bool {
        self.config.destinations.iter().any(|d| match d {
            Destination::Softphone => self.contacts.iter().any(|c| c.expires_at > now),
            Destination::Number(_) | Destination::SipUri(_) => true,
        })
    }

    fn live_legs(&self, now: Timestamp) -> impl Iterator<Item = &Leg> {
        self.legs.iter().filter(move |l| l.live(now))
    }

    fn active(&self, now: Timestamp) -> u32 {
        let n = self.live_legs(now).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn wrap_up(&self, now: Timestamp) -> Option<Timestamp> {
        self.wrap_up_until.filter(|u| *u > now)
    }

    /// The board state from the facts. Calls first (DND set during a call does not hide the
    /// call), then reachability (a softphone that stopped registering is offline whatever the
    /// agent last chose; the choice returns with the registration), then the agent's own
    /// choice, then wrap-up.
    fn derive(&self, now: Timestamp) -> AgentState {
        if self.live_legs(now).any(|l| l.phase == Phase::Answered) {
            return AgentState::OnCall;
        }
        if self.live_legs(now).next().is_some() {
            return AgentState::Ringing;
        }
        if !self.reachable(now) {
            return AgentState::Offline;
        }
        match &self.manual {
            Manual::Offline => AgentState::Offline,
            Manual::Dnd => AgentState::Dnd,
            Manual::Away(label) => AgentState::Away {
                label: label.clone(),
            },
            Manual::Available if self.wrap_up(now).is_some() => AgentState::WrapUp,
            Manual::Available => AgentState::Available,
        }
    }

    /// Why a reservation would be refused now; `None` when it would succeed. Unlike the board
    /// state, an agent on a call with a free slot (`maxConcurrentCalls` > 1) is available.
    fn unavailable(&self, now: Timestamp) -> Option<UnavailableReason> {
        match &self.manual {
            Manual::Dnd => return Some(UnavailableReason::Dnd),
            Manual::Away(label) => {
                return Some(UnavailableReason::Away {
                    label: label.clone(),
                });
            }
            Manual::Offline => return Some(UnavailableReason::Offline),
            Manual::Available => {}
        }
        if !self.reachable(now) {
            return Some(UnavailableReason::Offline);
        }
        if let Some(until) = self.wrap_up(now) {
            return Some(UnavailableReason::WrapUp { until });
        }
        let active = self.active(now);
        (active >= self.config.max_concurrent_calls).then_some(UnavailableReason::Busy {
            active,
            max: self.config.max_concurrent_calls,
        })
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        let contacts = self.contacts.iter().map(|c| c.expires_at);
        let legs = self
            .legs
            .iter()
            .filter(|l| l.ringing())
            .map(|l| l.hold_until);
        contacts.chain(legs).chain(self.wrap_up_until).min()
    }

    /// Applies every deadline up to `now`, in time order, each stamped with its own instant.
    fn settle(&mut self, now: Timestamp, changes: &mut Vec<StateChange>) {
        while let Some(at) = self.next_deadline().filter(|d| *d <= now) {
            self.contacts.retain(|c| c.expires_at > at);
            for leg in &mut self.legs {
                if leg.ringing() && leg.hold_until <= at {
                    leg.phase = Phase::Lapsed;
                }
            }
            let lapsed = |l: &Leg| l.phase == Phase::Lapsed;
            let mut forget =
                (self.legs.iter().filter(|l| lapsed(l)).count()).saturating_sub(LAPSED_MEMORY);
            self.legs.retain(|l| {
                let drop = forget > 0 && lapsed(l);
                forget -= usize::from(drop);
                !drop
            });
            if self.wrap_up_until.is_some_and(|w| w <= at) {
                self.wrap_up_until = None;
            }
            self.transition(at, changes);
        }
    }

    /// Records a change if the derived state differs from the recorded one.
    fn transition(&mut self, at: Timestamp, changes: &mut Vec<StateChange>) {
        let to = self.derive(at);
        if to != self.state {
            // A clock that steps back must not produce a history running backwards.
            let at = at.max(self.since);
            changes.push(StateChange {
                agent: self.config.name.clone(),
                from: std::mem::replace(&mut self.state, to.clone()),
                to,
                at,
            });
            self.since = at;
        }
    }

    fn answered_on(&self, day: Date) -> u32 {
        match self.answered {
            Some((d, n)) if d == day => n,
            _ => 0,
        }
    }

    fn live_contacts(&self, now: Timestamp) -> Vec<Contact> {
        self.contacts
            .iter()
            .filter(|c| c.expires_at > now)
            .cloned()
            .collect()
    }
}

/// Every agent's registrations, state and legs. One per router; the edge wraps it in a mutex.
#[derive(Debug, Clone)]
pub struct Presence {
    agents: BTreeMap<String, AgentRecord>,
    tz: TimeZone,
    next_leg: u64,
    changes: Vec<StateChange>,
}

impl Presence {
    /// Presence for the agents of a snapshot; "today" is counted in UTC until
    /// [`Presence::with_time_zone`] says otherwise.
    pub fn new(snapshot: &Snapshot, now: Timestamp) -> Self {
        let mut p = Presence {
            agents: BTreeMap::new(),
            tz: TimeZone::UTC,
            next_leg: 1,
            changes: Vec::new(),
        };
        p.apply_snapshot(snapshot, now);
        p
    }

    /// Counts `answered_today` in this time zone (the router's local one).
    pub fn with_time_zone(mut self, tz: TimeZone) -> Self {
        self.tz = tz;
        self
    }

    /// Swaps in a new configuration: agents that stay keep contacts, legs and state; removed
    /// agents go offline (recorded) and are forgotten; new agents come in.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot, now: Timestamp) {
        let removed: Vec<String> = self
            .agents
            .keys()
            .filter(|n| !snapshot.agents.contains_key(*n))
            .cloned()
            .collect();
        for name in removed {
            if let Some(mut rec) = self.agents.remove(&name) {
                rec.settle(now, &mut self.changes);
                if rec.state != AgentState::Offline {
                    self.changes.push(StateChange {
                        agent: name,
                        from: rec.state,
                        to: AgentState::Offline,
                        at: now.max(rec.since),
                    });
                }
            }
        }
        for (name, config) in &snapshot.agents {
            let rec = self
                .agents
                .entry(name.clone())
                .or_insert_with(|| AgentRecord::new(config.clone(), now));
            rec.settle(now, &mut self.changes);
            rec.config = config.clone();
            rec.transition(now, &mut self.changes);
        }
    }

    /// Settles `agent` at `now`, runs `f`, and records the resulting state change.
    fn update<R>(
        &mut self,
        agent: &str,
        now: Timestamp,
        f: impl FnOnce(&mut AgentRecord) -> R,
    ) -> Result<R, PresenceError> {
        let rec = self
            .agents
            .get_mut(agent)
            .ok_or_else(|| PresenceError::UnknownAgent(agent.to_owned()))?;
        rec.settle(now, &mut self.changes);
        let out = f(rec);
        rec.transition(now, &mut self.changes);
        Ok(out)
    }

    fn record(&self, agent: &str) -> Result<&AgentRecord, PresenceError> {
        self.agents
            .get(agent)
            .ok_or_else(|| PresenceError::UnknownAgent(agent.to_owned()))
    }

    fn today(&self, now: Timestamp) -> Date {
        now.to_zoned_datetime(self.tz.clone()).date()
    }

    /// Applies every deadline up to `now` (registration expiry, wrap-up end, lapsed
    /// reservations) and returns the changes this caused. They are also queued for
    /// [`Presence::drain_changes`]; the edge should send from there only.
    pub fn expire(&mut self, now: Timestamp) -> Vec<StateChange> {
        let start = self.changes.len();
        for rec in self.agents.values_mut() {
            rec.settle(now, &mut self.changes);
        }
        self.changes[start..].to_vec()
    }

    /// The next instant at which something changes by itself, so the edge can sleep until then
    /// and call [`Presence::expire`] instead of polling.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.agents
            .values()
            .filter_map(AgentRecord::next_deadline)
            .min()
    }

    /// Sets the manual state and returns the resulting board state (which may still be
    /// `on_call`: DND stops new offers, not the call in progress).
    pub fn set_state(
        &mut self,
        agent: &str,
        manual: Manual,
        now: Timestamp,
    ) -> Result<AgentState, PresenceError> {
        self.update(agent, now, |rec| {
            if manual == Manual::Available {
                rec.wrap_up_until = None;
            }
            rec.manual = manual;
        })?;
        Ok(self.record(agent)?.state.clone())
    }

    /// What the agent last chose (available, DND, away, logged out), for persistence.
    pub fn manual(&self, agent: &str) -> Option<&Manual> {
        self.agents.get(agent).map(|r| &r.manual)
    }

    /// The names of the agents presence knows, in name order.
    pub fn agent_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.agents.keys().cloned().collect();
        names.sort();
        names
    }

    /// Every state change since the last drain, in the order they were noticed.
    pub fn drain_changes(&mut self) -> Vec<StateChange> {
        std::mem::take(&mut self.changes)
    }
}

mod board;
mod contacts;
mod legs;
mod outbound;
mod sync;
#[cfg(test)]
pub(crate) mod tests;
