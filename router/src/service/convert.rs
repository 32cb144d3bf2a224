//! Domain values ↔ `dialtone.v1` messages, in one place so the service code reads as logic.

use dialtone_model::resources::queue::QueueStrategy;
use dialtone_model::resources::scheme::RingMode;
use dialtone_model::schedule::ScheduleState;
use dialtone_model::snapshot::{Destination, Recording};
use dialtone_proto::v1 as pb;
use jiff::Timestamp;

use crate::plan::{
    AgentTarget, CallPlan, JumpTarget, PlanOutcome, PlanStep, PlanTarget, QueuePlan,
    ScheduleDecision, SchemePlan,
};
use crate::presence::{AgentState, BoardLine, Contact};
use crate::queues::QueueStatus;

/// jiff → protobuf timestamp.
pub fn ts(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

/// protobuf → jiff timestamp; `None` when out of range.
pub fn from_ts(t: &prost_types::Timestamp) -> Option<Timestamp> {
    Timestamp::new(t.seconds, t.nanos).ok()
}

/// Whole seconds → protobuf duration.
pub fn secs(s: u32) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::from(s),
        nanos: 0,
    }
}

/// protobuf duration → whole seconds (negative and huge values clamp).
pub fn to_secs(d: &prost_types::Duration) -> u32 {
    u32::try_from(d.seconds.max(0)).unwrap_or(u32::MAX)
}

/// Milliseconds → protobuf duration.
pub fn millis(ms: u32) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::from(ms / 1000),
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

fn schedule_state(s: ScheduleState) -> pb::ScheduleState {
    match s {
        ScheduleState::Open => pb::ScheduleState::Open,
        ScheduleState::Closed => pb::ScheduleState::Closed,
        ScheduleState::Holiday => pb::ScheduleState::Holiday,
    }
}

/// Presence state → wire enum.
pub fn agent_state(s: &AgentState) -> pb::AgentState {
    match s {
        AgentState::Available => pb::AgentState::Available,
        AgentState::Ringing => pb::AgentState::Ringing,
        AgentState::OnCall => pb::AgentState::OnCall,
        AgentState::WrapUp => pb::AgentState::WrapUp,
        AgentState::Dnd => pb::AgentState::Dnd,
        AgentState::Away { .. } => pb::AgentState::Away,
        AgentState::Offline => pb::AgentState::Offline,
    }
}

fn plan_agent_state(s: crate::plan::AgentState) -> pb::AgentState {
    use crate::plan::AgentState as S;
    match s {
        S::Available => pb::AgentState::Available,
        S::Ringing => pb::AgentState::Ringing,
        S::OnCall => pb::AgentState::OnCall,
        S::WrapUp => pb::AgentState::WrapUp,
        S::Dnd => pb::AgentState::Dnd,
        S::Away => pb::AgentState::Away,
        S::Offline => pb::AgentState::Offline,
    }
}

fn schedule(d: &ScheduleDecision) -> pb::ScheduleDecision {
    pb::ScheduleDecision {
        state: schedule_state(d.state) as i32,
        schedule: d.schedule.clone().unwrap_or_default(),
        time_zone: d.time_zone.clone(),
        local_time: d.local_time.clone(),
        reason: d.why.clone(),
        holiday: d.holiday.clone().unwrap_or_default(),
        next_change: None,
    }
}

fn destination(d: &Destination, reachable: bool) -> pb::Destination {
    let (kind, uri) = match d {
        Destination::Softphone => (pb::DestinationKind::Softphone, String::new()),
        Destination::Number(n) => (pb::DestinationKind::Number, n.clone()),
        Destination::SipUri(u) => (pb::DestinationKind::SipUri, u.clone()),
    };
    pb::Destination {
        kind: kind as i32,
        uri,
        node_id: String::new(),
        node_address: String::new(),
        reachable,
    }
}

/// An agent target as the wire's ring target.
pub fn agent_target(a: &AgentTarget) -> pb::RingTarget {
    let av = &a.availability;
    pb::RingTarget {
        agent: a.agent.clone(),
        display_name: a.display_name.clone(),
        extension: a.extension.clone().unwrap_or_default(),
        destinations: a
            .destinations
            .iter()
            .map(|d| destination(d, av.reachable))
            .collect(),
        state: plan_agent_state(av.state) as i32,
        available: av.available,
        unavailable_reason: if av.available {
            String::new()
        } else {
            av.state.as_str().replace('_', " ")
        },
        active_calls: 0,
        max_concurrent_calls: a.max_concurrent_calls,
    }
}

fn external(kind: pb::DestinationKind, uri: &str) -> pb::RingTarget {
    pb::RingTarget {
        destinations: vec![pb::Destination {
            kind: kind as i32,
            uri: uri.to_owned(),
            reachable: true,
            ..Default::default()
        }],
        available: true,
        ..Default::default()
    }
}

fn jump(t: &JumpTarget) -> pb::JumpTarget {
    use pb::jump_target::Target;
    pb::JumpTarget {
        target: Some(match t {
            JumpTarget::Scheme(s) => Target::Scheme(s.clone()),
            JumpTarget::Queue(q) => Target::Queue(q.clone()),
            JumpTarget::Agent(a) => Target::Agent(a.agent.clone()),
        }),
    }
}

fn ring_mode(m: RingMode) -> pb::RingMode {
    match m {
        RingMode::Simultaneous => pb::RingMode::Simultaneous,
        RingMode::Sequential => pb::RingMode::Sequential,
    }
}

/// Queue strategy → wire enum.
pub fn strategy(s: QueueStrategy) -> pb::QueueStrategy {
    match s {
        QueueStrategy::RingAll => pb::QueueStrategy::RingAll,
        QueueStrategy::LongestIdle => pb::QueueStrategy::LongestIdle,
        QueueStrategy::FewestCalls => pb::QueueStrategy::FewestCalls,
        QueueStrategy::Random => pb::QueueStrategy::Random,
        QueueStrategy::RoundRobin => pb::QueueStrategy::RoundRobin,
        QueueStrategy::Linear => pb::QueueStrategy::Linear,
    }
}

fn queue_step(q: &QueuePlan) -> pb::QueueStep {
    pb::QueueStep {
        queue: q.queue.clone(),
        strategy: strategy(q.strategy) as i32,
        ring_timeout: Some(secs(q.ring_timeout_seconds)),
        max_wait: Some(secs(q.max_wait_seconds)),
        wrap_up: Some(secs(q.wrap_up_seconds)),
        hold_music: q.hold_music.clone().unwrap_or_default(),
        announce_position: q.announce_position,
        overflow_after: q.overflow.as_ref().map(|(after, _)| secs(*after)),
        overflow: q.overflow.as_ref().map(|(_, t)| jump(t)),
        members: q.members.iter().map(agent_target).collect(),
        callback_digit: q.callback_digit.map(String::from).unwrap_or_default(),
    }
}

fn step(index: usize, s: &PlanStep, plan: &CallPlan) -> pb::PlanStep {
    use pb::plan_step::Step;
    let step = match s {
        PlanStep::Play { prompt } => Step::Play(pb::PlayStep {
            prompt: prompt.clone(),
        }),
        PlanStep::Menu(m) => Step::Menu(pb::MenuStep {
            prompt: m.prompt.clone(),
            options: m
                .options
                .iter()
                .map(|(k, t)| (k.to_string(), jump(t)))
                .collect(),
            extension_dialing: m.extension_dialing,
            extensions: m
                .extensions
                .iter()
                .map(|(ext, a)| (ext.clone(), a.agent.clone()))
                .collect(),
            digit_timeout: Some(secs(m.digit_timeout_seconds)),
            inter_digit_timeout: Some(secs(m.inter_digit_seconds)),
            default_target: m.default.as_ref().map(jump),
        }),
        PlanStep::Ring(r) => Step::Ring(pb::RingStep {
            targets: r
                .targets
                .iter()
                .map(|t| match t {
                    PlanTarget::Agent(a) => agent_target(a),
                    PlanTarget::Number(n) => external(pb::DestinationKind::Number, n),
                    PlanTarget::SipUri(u) => external(pb::DestinationKind::SipUri, u),
                })
                .collect(),
            mode: ring_mode(r.mode) as i32,
            timeout: Some(secs(r.timeout_seconds)),
        }),
        PlanStep::Queue { queue } => Step::Queue(match plan.queues.get(queue) {
            Some(q) => queue_step(q),
            None => pb::QueueStep {
                queue: queue.clone(),
                ..Default::default()
            },
        }),
        PlanStep::OwnerLookup {
            webhook,
            timeout_ms,
            ring_seconds,
        } => Step::OwnerLookup(pb::OwnerLookupStep {
            webhook: webhook.clone(),
            timeout: Some(millis(*timeout_ms)),
            ring: Some(secs(*ring_seconds)),
            owner: None,
        }),
        PlanStep::Voicemail {
            greeting,
            max_seconds,
            ..
        } => Step::Voicemail(pb::VoicemailStep {
            greeting: greeting.clone().unwrap_or_default(),
            max_length: Some(secs(*max_seconds)),
        }),
        PlanStep::Hangup => Step::Hangup(pb::HangupStep {}),
    };
    pb::PlanStep {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        step: Some(step),
    }
}

fn scheme(s: &SchemePlan, plan: &CallPlan) -> pb::SchemePlan {
    pb::SchemePlan {
        scheme: s.scheme.clone(),
        steps: s
            .steps
            .iter()
            .enumerate()
            .map(|(i, st)| step(i, st, plan))
            .collect(),
    }
}

/// A plan outcome as the wire's response. `config_version` identifies the snapshot.
pub fn plan_response(outcome: &PlanOutcome, config_version: &str) -> pb::PlanCallResponse {
    use pb::plan_call_response::Outcome;
    let outcome = match outcome {
        PlanOutcome::NotFound { number } => Outcome::Rejected(pb::Rejection {
            kind: pb::RejectKind::NotFound as i32,
            reason: format!("{number} is not a PhoneNumber"),
            ..Default::default()
        }),
        PlanOutcome::Blocked {
            list,
            entry,
            reason,
            ..
        } => Outcome::Rejected(pb::Rejection {
            kind: pb::RejectKind::Blocked as i32,
            reason: reason.clone(),
            blocklist: list.clone(),
            entry: entry.clone(),
            ..Default::default()
        }),
        PlanOutcome::NoForwardingScheme {
            number_name,
            schedule: sched,
            why,
            ..
        } => Outcome::Rejected(pb::Rejection {
            kind: pb::RejectKind::NoForwardingScheme as i32,
            reason: why.clone(),
            number_name: number_name.clone(),
            schedule: Some(schedule(sched)),
            ..Default::default()
        }),
        PlanOutcome::Plan(plan) => Outcome::Plan(call_plan(plan, config_version)),
    };
    pb::PlanCallResponse {
        outcome: Some(outcome),
    }
}

fn call_plan(plan: &CallPlan, config_version: &str) -> pb::CallPlan {
    let start = plan.start();
    let start_name = start.map_or_else(|| plan.scheme.clone(), |s| s.scheme.clone());
    pb::CallPlan {
        number_name: plan.number_name.clone(),
        number: plan.number.clone(),
        schedule: Some(schedule(&plan.schedule)),
        scheme: start_name,
        steps: start.map(|s| scheme(s, plan).steps).unwrap_or_default(),
        schemes: plan
            .schemes
            .iter()
            .map(|(name, s)| (name.clone(), scheme(s, plan)))
            .collect(),
        queues: plan
            .queues
            .iter()
            .map(|(name, q)| (name.clone(), queue_step(q)))
            .collect(),
        welcome_prompt: plan.welcome_prompt.clone().unwrap_or_default(),
        backup: plan.backup.as_ref().map(|b| scheme(b, plan)),
        backup_active: plan.use_backup,
        backup_reason: if plan.use_backup {
            "every target of the scheme is unreachable".to_owned()
        } else {
            String::new()
        },
        recording: Some(match plan.recording {
            Recording::None => pb::RecordingPolicy {
                mode: pb::RecordingMode::None as i32,
                limit: None,
            },
            Recording::Full => pb::RecordingPolicy {
                mode: pb::RecordingMode::Full as i32,
                limit: None,
            },
            Recording::First(n) => pb::RecordingPolicy {
                mode: pb::RecordingMode::First as i32,
                limit: Some(secs(n)),
            },
        }),
        carriers: plan.carriers.clone(),
        config_version: config_version.to_owned(),
    }
}

/// A registration as the wire's contact.
pub fn contact(c: &Contact) -> pb::Contact {
    pb::Contact {
        aor: c.agent.clone(),
        agent: c.agent.clone(),
        uri: c.uri.clone(),
        expires_at: Some(ts(c.expires_at)),
        registered_at: Some(ts(c.registered_at)),
        node_id: c.node.clone(),
        node_address: c.node_address.clone(),
        source: c.source.clone(),
        ..Default::default()
    }
}

/// A live-board line as the wire's agent presence.
pub fn presence_line(
    line: &BoardLine,
    extension: Option<&str>,
    labels: &std::collections::BTreeMap<String, String>,
    with_contacts: bool,
) -> pb::AgentPresence {
    pb::AgentPresence {
        agent: line.agent.clone(),
        display_name: line.display_name.clone(),
        extension: extension.unwrap_or_default().to_owned(),
        labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        state: agent_state(&line.state) as i32,
        away_label: line.label.clone().unwrap_or_default(),
        since: Some(ts(line.since)),
        active_calls: line.active_legs,
        max_concurrent_calls: line.max_concurrent_calls,
        call_ids: line.call_ids.clone(),
        contacts: if with_contacts {
            line.contacts.iter().map(contact).collect()
        } else {
            Vec::new()
        },
        reachable: line.reachable,
        last_call_ended_at: line.last_call_ended_at.map(ts),
        answered_today: line.answered_today,
        wrap_up_until: line.wrap_up_until.map(ts),
    }
}

/// A queue's status as the wire's.
pub fn queue_status(q: &QueueStatus) -> pb::QueueStatus {
    pb::QueueStatus {
        queue: q.queue.clone(),
        strategy: strategy(q.strategy) as i32,
        waiting: u32::try_from(q.callers.len()).unwrap_or(u32::MAX),
        longest_wait: q.longest_wait.map(|d| prost_types::Duration {
            seconds: d.as_secs(),
            nanos: d.subsec_nanos(),
        }),
        oldest_joined_at: q.callers.first().map(|c| ts(c.joined_at)),
        members: q.members,
        available: q.available,
        callers: q
            .callers
            .iter()
            .map(|c| pb::QueuedCaller {
                call_id: c.call_id.clone(),
                caller: c.caller.clone(),
                position: c.position,
                joined_at: Some(ts(c.joined_at)),
                callback: c.callback,
                node_id: String::new(),
            })
            .collect(),
    }
}
