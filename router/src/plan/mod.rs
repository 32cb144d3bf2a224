//! Call plans: number + caller + instant → what the media node does with the call.
//!
//! Sans-IO on purpose: [`plan_call`] is a pure function of the snapshot, the request (with its
//! instant) and an availability lookup, so one code path answers `PlanCall`, `ExplainRoute` and
//! `dialtone route`, and tests need neither clock nor network. The plan is complete — every
//! scheme and queue the call can reach is resolved up front — so a media node runs the call to
//! its end on the plan it started with, even when the manifests change meanwhile. The gRPC
//! edge converts these types to `dialtone.v1.CallPlan`; names follow `plan.proto`.

use std::collections::BTreeMap;

use dialtone_model::Snapshot;
use dialtone_model::resources::queue::QueueStrategy;
use dialtone_model::resources::scheme::RingMode;
use dialtone_model::schedule::ScheduleState;
use dialtone_model::snapshot::{BlockPattern, Destination, NumberConfig, Recording};
use dialtone_model::snapshot::{RingTarget, Step, Target};
use jiff::Timestamp;

/// An agent's presence state, as on the live board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentState {
    Available,
    Ringing,
    OnCall,
    WrapUp,
    Dnd,
    Away,
    Offline,
}

impl AgentState {
    /// The snake_case name reports and the live board use.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Available => "available",
            AgentState::Ringing => "ringing",
            AgentState::OnCall => "on_call",
            AgentState::WrapUp => "wrap_up",
            AgentState::Dnd => "dnd",
            AgentState::Away => "away",
            AgentState::Offline => "offline",
        }
    }
}

/// What presence says about one agent at planning time. `reachable` and `available` are
/// separate because the backup rule needs the difference: a busy or DND agent is reachable
/// (the office is up, people are occupied), an offline one is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentAvailability {
    /// The state.
    pub state: AgentState,
    /// At least one destination could be rung (registered softphone, mobile, SIP URI).
    pub reachable: bool,
    /// Could be offered a call right now.
    pub available: bool,
}

impl AgentAvailability {
    /// The plain reading of a state: only `available` takes calls, only `offline` is
    /// unreachable. Presence may know better (e.g. available but at `maxConcurrentCalls`).
    pub fn from_state(state: AgentState) -> Self {
        let (reachable, available) = (state != AgentState::Offline, state == AgentState::Available);
        AgentAvailability {
            state,
            reachable,
            available,
        }
    }
}

/// A call to plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    /// The dialled number: E.164, or a common form [`normalize_number`] understands.
    pub number: String,
    /// The caller's number; `None` when anonymous.
    pub caller: Option<String>,
    /// The call's instant (the INVITE's arrival).
    pub at: Timestamp,
}

/// The schedule's state at the call's instant, and why (proto `ScheduleDecision`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleDecision {
    /// Open, closed or holiday: picks the route.
    pub state: ScheduleState,
    /// The Schedule's name; `None` when the number has none (then always open).
    pub schedule: Option<String>,
    /// The schedule's IANA zone (`UTC` without a schedule).
    pub time_zone: String,
    /// The instant on the office clock, RFC 3339 with offset.
    pub local_time: String,
    /// Why, in words, from `ScheduleConfig::state_at` (proto `reason`).
    pub why: String,
    /// The holiday's name when the state is holiday.
    pub holiday: Option<String>,
}

/// An agent resolved for ringing, with presence as of planning (proto `RingTarget`); the
/// media node re-checks with `ReserveAgents` just before ringing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTarget {
    pub agent: String,
    pub display_name: String,
    pub extension: Option<String>,
    /// Rung all at once for this agent.
    pub destinations: Vec<Destination>,
    pub max_concurrent_calls: u32,
    pub availability: AgentAvailability,
    /// The selector that brought the agent in (`role=sdr,team=sales`), when not named.
    pub selected_by: Option<String>,
}

/// One thing a ring step rings. External targets always count as reachable: the office
/// being down does not stop a carrier from ringing a mobile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanTarget {
    Agent(AgentTarget),
    Number(String),
    SipUri(String),
}

/// Where a menu choice or a queue overflow leads. Schemes and queues named here are in
/// [`CallPlan::schemes`] / [`CallPlan::queues`], so the media node never asks again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JumpTarget {
    Scheme(String),
    Queue(String),
    Agent(Box<AgentTarget>),
}

/// A resolved `menu` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuPlan {
    pub prompt: String,
    pub options: BTreeMap<char, JumpTarget>,
    pub extension_dialing: bool,
    /// Extension → agent when extension dialing is on (empty otherwise).
    pub extensions: BTreeMap<String, AgentTarget>,
    pub digit_timeout_seconds: u32,
    pub inter_digit_seconds: u32,
    /// No valid choice in time: here; `None` means the next step.
    pub default: Option<JumpTarget>,
}

/// A resolved `ring` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingPlan {
    /// Listed order; a selector's agents sorted by name; each agent once per step.
    pub targets: Vec<PlanTarget>,
    pub mode: RingMode,
    /// For the step (simultaneous) or each target (sequential).
    pub timeout_seconds: u32,
}

/// One resolved step (proto `PlanStep`; its index is its position in the scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanStep {
    Play {
        prompt: String,
    },
    Menu(MenuPlan),
    Ring(RingPlan),
    /// Settings and members are in [`CallPlan::queues`] (a queue may be reached many ways).
    Queue {
        queue: String,
    },
    /// The owner is only known at call time (CRM or `SetOwner`), so it is not resolved here.
    OwnerLookup {
        webhook: String,
        timeout_ms: u32,
        ring_seconds: u32,
    },
    Voicemail {
        greeting: Option<String>,
        max_seconds: u32,
        silence_seconds: u32,
    },
    Hangup,
}

/// A scheme's steps, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemePlan {
    pub scheme: String,
    pub steps: Vec<PlanStep>,
}

/// A queue's settings and members as of planning (proto `QueueStep`). Members are
/// informational: the queue module picks who is offered a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePlan {
    pub queue: String,
    pub strategy: QueueStrategy,
    pub ring_timeout_seconds: u32,
    pub max_wait_seconds: u32,
    pub wrap_up_seconds: u32,
    /// `None`: ringback tone while waiting.
    pub hold_music: Option<String>,
    pub announce_position: bool,
    pub callback_digit: Option<char>,
    /// `(after seconds, target)`.
    pub overflow: Option<(u32, JumpTarget)>,
    pub members: Vec<AgentTarget>,
}

/// Everything a media node needs to run an accepted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPlan {
    /// PhoneNumber resource name.
    pub number_name: String,
    /// The dialled number, E.164.
    pub number: String,
    /// The caller, normalised; `None` when anonymous (or not a number).
    pub caller: Option<String>,
    /// The instant planned for.
    pub at: Timestamp,
    /// The schedule's decision.
    pub schedule: ScheduleDecision,
    /// The scheme the schedule's route names (kept even when the backup is used, for reports).
    pub scheme: String,
    /// Closed or holiday: an unanswered call is missed with `outside_business_hours`.
    pub outside_business_hours: bool,
    /// Every scheme the call can reach — the route's, the backup, and whatever menus and
    /// queue overflows lead to from either — by name.
    pub schemes: BTreeMap<String, SchemePlan>,
    /// Every queue the call can reach, by name.
    pub queues: BTreeMap<String, QueuePlan>,
    /// Played before the first step.
    pub welcome_prompt: Option<String>,
    /// The number's backup scheme, resolved.
    pub backup: Option<SchemePlan>,
    /// The route's scheme and all it reaches (menu extensions and queue members included) have
    /// targets and none is reachable: the office is down. Busy and DND agents are reachable,
    /// so a full office never triggers it.
    pub all_targets_unreachable: bool,
    /// Start with the backup: everything is unreachable and a backup exists.
    pub use_backup: bool,
    /// Recording policy.
    pub recording: Recording,
    /// Carriers serving the number, by priority, for outbound legs.
    pub carriers: Vec<String>,
    /// Remarks for operators: broken references skipped, selectors matching nobody.
    pub notes: Vec<String>,
}

impl CallPlan {
    /// The scheme the call starts with: the backup when it is used, else the route's.
    pub fn start(&self) -> Option<&SchemePlan> {
        match &self.backup {
            Some(backup) if self.use_backup => Some(backup),
            _ => self.schemes.get(&self.scheme),
        }
    }

    /// The route's scheme's steps (proto `CallPlan.steps`).
    pub fn steps(&self) -> &[PlanStep] {
        self.schemes.get(&self.scheme).map_or(&[], |s| &s.steps)
    }
}

/// What the router answers for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanOutcome {
    /// No PhoneNumber has this number: the media node answers 404; nothing is missed.
    NotFound {
        /// The number as normalised.
        number: String,
    },
    /// The caller matches a Blocklist entry: rejected, recorded `blocked`, not missed.
    Blocked {
        number: String,
        caller: String,
        /// The Blocklist's name.
        list: String,
        /// The entry that matched: a number, or a prefix followed by `…`.
        entry: String,
        reason: String,
    },
    /// No scheme resolves at this instant: recorded missed with `no_forwarding_scheme`.
    NoForwardingScheme {
        number: String,
        number_name: String,
        schedule: ScheduleDecision,
        /// What is missing, in words.
        why: String,
        /// What the ops team could change.
        fix: String,
    },
    /// The call is accepted (boxed: a plan is much larger than a rejection).
    Plan(Box<CallPlan>),
}

/// Normalises common ways of writing a number to E.164: spaces, dashes, dots and parentheses
/// go, so does `tel:`, `00` becomes `+`, and a bare international digit string gets `+`.
/// A national form (`0…`) cannot be completed without a country, so it is left as is and
/// simply matches nothing.
pub fn normalize_number(raw: &str) -> String {
    let raw = raw.trim();
    let cleaned: String = (raw.strip_prefix("tel:").unwrap_or(raw).chars())
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\t'))
        .collect();
    if let Some(rest) = cleaned.strip_prefix("00") {
        format!("+{rest}")
    } else if cleaned.starts_with(|c: char| c.is_ascii_digit() && c != '0') {
        format!("+{cleaned}")
    } else {
        cleaned
    }
}

/// A `+` followed by digits: what a caller ID must look like to be matched against blocklists.
fn is_plus_digits(number: &str) -> bool {
    (number.strip_prefix('+'))
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
}

/// Plans a call. `availability` is asked once per agent per plan, so the whole plan sees one
/// consistent picture of presence.
pub fn plan_call(
    snapshot: &Snapshot,
    req: &PlanRequest,
    availability: &dyn Fn(&str) -> AgentAvailability,
) -> PlanOutcome {
    let number = normalize_number(&req.number);
    let Some(config) = snapshot.number(&number) else {
        return PlanOutcome::NotFound { number };
    };
    // Whatever is not a number ("anonymous", "", a withheld-CLI marker) is anonymous, and an
    // anonymous caller matches no entry: there is nothing to compare.
    let caller = (req.caller.as_deref().map(normalize_number)).filter(|c| is_plus_digits(c));
    if let Some(caller) = &caller
        && let Some(rule) = snapshot.blocked(caller)
    {
        let entry = match &rule.pattern {
            BlockPattern::Exact(n) => n.clone(),
            BlockPattern::Prefix(p) => format!("{p}…"),
        };
        let (list, reason) = (rule.list.clone(), rule.reason.clone());
        return PlanOutcome::Blocked {
            number,
            caller: caller.clone(),
            list,
            entry,
            reason,
        };
    }
    let number_name = config.name.clone();
    let no_scheme = |schedule, why, fix| PlanOutcome::NoForwardingScheme {
        number: number.clone(),
        number_name: number_name.clone(),
        schedule,
        why,
        fix,
    };
    let (schedule, found) = decide(snapshot, config, req.at);
    if !found {
        let name = schedule.schedule.clone().unwrap_or_default();
        let why = format!("Schedule {name} does not exist, so no route can be chosen");
        let fix = format!("create Schedule {name}, or point {number_name} at another one");
        return no_scheme(schedule, why, fix);
    }
    let route = schedule.state.as_str();
    let chosen = match schedule.state {
        ScheduleState::Open => &config.open,
        ScheduleState::Closed => &config.closed,
        ScheduleState::Holiday => &config.holiday,
    };
    let Some(scheme) = chosen.clone() else {
        let why = format!("PhoneNumber {number_name} sets no `{route}` route");
        let fix = format!("set spec.routes.{route} of PhoneNumber {number_name} to a scheme");
        return no_scheme(schedule, why, fix);
    };
    if !snapshot.schemes.contains_key(&scheme) {
        let why = format!("route `{route}` names ForwardingScheme {scheme}, which does not exist");
        let fix = format!("create ForwardingScheme {scheme}, or point routes.{route} elsewhere");
        return no_scheme(schedule, why, fix);
    }

    let mut resolver = Resolver {
        snapshot,
        availability,
        presence: BTreeMap::new(),
        schemes: BTreeMap::new(),
        queues: BTreeMap::new(),
        pending: Vec::new(),
        any_target: false,
        any_reachable: false,
        notes: Vec::new(),
    };
    resolver.reach(Pending::Scheme(scheme.clone()));
    // Only what the route's scheme reaches decides whether the office is down. A scheme with
    // no targets at all (voicemail only) is a choice, not an outage.
    let all_targets_unreachable = resolver.any_target && !resolver.any_reachable;
    let backup = config.backup.as_ref().and_then(|name| {
        resolver.reach(Pending::Scheme(name.clone()));
        resolver.schemes.get(name).cloned()
    });
    // Outbound legs try carriers lowest priority first, by weight among equals.
    let carriers = carriers::order_carriers(
        snapshot,
        &config.carriers,
        carriers::call_seed(caller.as_deref(), req.at.as_nanosecond()),
    );
    PlanOutcome::Plan(Box::new(CallPlan {
        number_name,
        number,
        caller,
        at: req.at,
        outside_business_hours: schedule.state != ScheduleState::Open,
        schedule,
        scheme,
        schemes: resolver.schemes,
        queues: resolver.queues,
        welcome_prompt: config.welcome.clone(),
        use_backup: all_targets_unreachable && backup.is_some(),
        backup,
        all_targets_unreachable,
        recording: config.recording,
        carriers,
        notes: resolver.notes,
    }))
}

/// The schedule's decision, and `false` (with what is known) when the schedule reference is
/// broken: then no state, and so no route, can be chosen.
fn decide(snapshot: &Snapshot, config: &NumberConfig, at: Timestamp) -> (ScheduleDecision, bool) {
    let mut decision = ScheduleDecision {
        state: ScheduleState::Open,
        schedule: config.schedule.clone(),
        time_zone: "UTC".to_owned(),
        local_time: at.to_string(),
        why: "no schedule: always open".to_owned(),
        holiday: None,
    };
    let Some(name) = &config.schedule else {
        return (decision, true);
    };
    let Some(schedule) = snapshot.schedules.get(name) else {
        decision.state = ScheduleState::Closed;
        decision.why = format!("Schedule {name} is missing");
        return (decision, false);
    };
    let state_at = schedule.state_at(at);
    decision.state = state_at.state;
    decision.why = state_at.why;
    decision.time_zone = schedule.timezone.clone();
    decision.local_time = at
        .display_with_offset(schedule.tz.to_offset(at))
        .to_string();
    if state_at.state == ScheduleState::Holiday {
        let date = schedule.tz.to_datetime(at).date();
        decision.holiday = schedule.holidays.get(&date).cloned();
    }
    (decision, true)
}

enum Pending {
    Scheme(String),
    Queue(String),
}

/// Walks schemes and queues from a starting scheme, resolving each once, and keeps the
/// tallies behind the "office down" rule.
struct Resolver<'a> {
    snapshot: &'a Snapshot,
    availability: &'a dyn Fn(&str) -> AgentAvailability,
    presence: BTreeMap<String, AgentAvailability>,
    schemes: BTreeMap<String, SchemePlan>,
    queues: BTreeMap<String, QueuePlan>,
    pending: Vec<Pending>,
    any_target: bool,
    any_reachable: bool,
    notes: Vec<String>,
}

impl Resolver<'_> {
    /// Resolves `start` and everything it leads to that is not resolved yet.
    fn reach(&mut self, start: Pending) {
        self.pending.push(start);
        while let Some(next) = self.pending.pop() {
            match next {
                Pending::Scheme(name) if !self.schemes.contains_key(&name) => {
                    let Some(config) = self.snapshot.schemes.get(&name) else {
                        self.notes
                            .push(format!("ForwardingScheme {name} does not exist"));
                        continue;
                    };
                    let steps = config.steps.iter().map(|s| self.step(&name, s)).collect();
                    self.schemes.insert(
                        name.clone(),
                        SchemePlan {
                            scheme: name,
                            steps,
                        },
                    );
                }
                Pending::Queue(name) if !self.queues.contains_key(&name) => {
                    let Some(config) = self.snapshot.queues.get(&name) else {
                        self.notes.push(format!("CallQueue {name} does not exist"));
                        continue;
                    };
                    let members = config.members.iter().filter_map(|m| self.agent(m, None));
                    let members = members.collect();
                    let overflow = (config.overflow.as_ref())
                        .and_then(|(after, target)| Some((*after, self.jump(target)?)));
                    let plan = QueuePlan {
                        queue: name.clone(),
                        strategy: config.strategy,
                        ring_timeout_seconds: config.ring_timeout_seconds,
                        max_wait_seconds: config.max_wait_seconds,
                        wrap_up_seconds: config.wrap_up_seconds,
                        hold_music: config.hold_music.clone(),
                        announce_position: config.announce_position,
                        callback_digit: config.callback_digit,
                        overflow,
                        members,
                    };
                    self.queues.insert(name, plan);
                }
                _ => {}
            }
        }
    }

    fn step(&mut self, scheme: &str, step: &Step) -> PlanStep {
        match step {
            Step::Play { prompt } => PlanStep::Play {
                prompt: prompt.clone(),
            },
            Step::Menu(menu) => {
                let options = (menu.options.iter())
                    .filter_map(|(digit, target)| Some((*digit, self.jump(target)?)))
                    .collect();
                let snapshot = self.snapshot;
                let extensions = (snapshot.agents.values())
                    .filter(|_| menu.extension_dialing)
                    .filter_map(|a| Some((a.extension.clone()?, self.agent(&a.name, None)?)))
                    .collect();
                PlanStep::Menu(MenuPlan {
                    prompt: menu.prompt.clone(),
                    options,
                    extension_dialing: menu.extension_dialing,
                    extensions,
                    digit_timeout_seconds: menu.digit_timeout_seconds,
                    inter_digit_seconds: menu.inter_digit_seconds,
                    default: menu.default.as_ref().and_then(|t| self.jump(t)),
                })
            }
            Step::Ring(ring) => {
                let mut targets: Vec<PlanTarget> = Vec::new();
                for target in &ring.targets {
                    let (mut names, via) = match target {
                        RingTarget::Agent(name) => (vec![name], None),
                        RingTarget::Selector { selector, agents } => {
                            let via = selector.describe();
                            if agents.is_empty() {
                                self.notes.push(format!(
                                    "scheme {scheme}: selector {via} matches nobody"
                                ));
                            }
                            (agents.iter().collect(), Some(via))
                        }
                        RingTarget::Number(n) | RingTarget::SipUri(n) => {
                            (self.any_target, self.any_reachable) = (true, true);
                            targets.push(match target {
                                RingTarget::Number(_) => PlanTarget::Number(n.clone()),
                                _ => PlanTarget::SipUri(n.clone()),
                            });
                            continue;
                        }
                    };
                    names.sort();
                    for name in names {
                        // Named and also selected in one step: rung once.
                        let dup = (targets.iter())
                            .any(|t| matches!(t, PlanTarget::Agent(a) if &a.agent == name));
                        if !dup && let Some(agent) = self.agent(name, via.clone()) {
                            targets.push(PlanTarget::Agent(agent));
                        }
                    }
                }
                let (mode, timeout_seconds) = (ring.mode, ring.timeout_seconds);
                PlanStep::Ring(RingPlan {
                    targets,
                    mode,
                    timeout_seconds,
                })
            }
            Step::Queue { name } => {
                self.pending.push(Pending::Queue(name.clone()));
                PlanStep::Queue {
                    queue: name.clone(),
                }
            }
            Step::OwnerLookup {
                webhook,
                timeout_ms,
                ring_seconds,
            } => PlanStep::OwnerLookup {
                webhook: webhook.clone(),
                timeout_ms: *timeout_ms,
                ring_seconds: *ring_seconds,
            },
            Step::Voicemail {
                greeting,
                max_seconds,
                silence_seconds,
            } => PlanStep::Voicemail {
                greeting: greeting.clone(),
                max_seconds: *max_seconds,
                silence_seconds: *silence_seconds,
            },
            Step::Hangup => PlanStep::Hangup,
        }
    }

    fn jump(&mut self, target: &Target) -> Option<JumpTarget> {
        match target {
            Target::Scheme(name) => {
                self.pending.push(Pending::Scheme(name.clone()));
                Some(JumpTarget::Scheme(name.clone()))
            }
            Target::Queue(name) => {
                self.pending.push(Pending::Queue(name.clone()));
                Some(JumpTarget::Queue(name.clone()))
            }
            Target::Agent(name) => Some(JumpTarget::Agent(Box::new(self.agent(name, None)?))),
        }
    }

    /// An agent with presence, counted for the "office down" rule.
    fn agent(&mut self, name: &str, selected_by: Option<String>) -> Option<AgentTarget> {
        let Some(config) = self.snapshot.agents.get(name) else {
            self.notes.push(format!("Agent {name} does not exist"));
            return None;
        };
        let lookup = self.availability;
        let availability = *self
            .presence
            .entry(name.to_owned())
            .or_insert_with(|| lookup(name));
        self.any_target = true;
        self.any_reachable |= availability.reachable;
        Some(AgentTarget {
            agent: config.name.clone(),
            display_name: config.display_name.clone(),
            extension: config.extension.clone(),
            destinations: config.destinations.clone(),
            max_concurrent_calls: config.max_concurrent_calls,
            availability,
            selected_by,
        })
    }
}

pub mod carriers;
mod explain;
pub use explain::explain;

#[cfg(test)]
mod tests;
