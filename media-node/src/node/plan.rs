//! Running a call's plan step by step: the welcome prompt, ring steps (simultaneous or
//! sequential, agents reserved first), queues (QueueJoin / QueueNextAgent polling), owner
//! lookups, jumps, and the steps the caller hears (play, menu, voicemail: [`super::audio`],
//! [`super::ivr`], [`super::voicemail`]).
//!
//! Each stage of a call (a ring step, a sequential target, a queue offer) has a
//! *generation*; legs, timers and router answers carry the generation they belong to, so
//! anything that arrives for a stage the call has left is recognised and ignored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;
use dialtone_proto::v1::plan_step::Step as PStep;

use super::actor::{Node, Timer, TimerKind};
use super::call::CallerState;
use super::ending::Ending;
use super::events::{duration, from_duration};
use super::legs::LegRequest;
use super::router::{ReplyBody, Report};

/// Where a call is in its plan.
#[derive(Debug, Default)]
pub(super) struct Exec {
    pub(super) scheme: String,
    pub(super) steps: Vec<pb::PlanStep>,
    pub(super) index: usize,
    pub(super) generation: u64,
    pub(super) mode: Mode,
    /// Steps entered so far: bounds plans that jump in a circle (menu defaults).
    pub(super) entered: u32,
}

/// Most steps one call may enter; past it the plan is taken to loop.
const MAX_STEPS: u32 = 64;

/// What the current stage is doing.
#[derive(Debug, Default)]
pub(super) enum Mode {
    /// Between steps, or past the last.
    #[default]
    Idle,
    /// Ringing (or reserving for) a ring step.
    Ring {
        /// External targets to ring once the agents are reserved.
        externals: Vec<pb::RingTarget>,
        /// Sequential targets not rung yet.
        sequential: VecDeque<pb::RingTarget>,
        timeout: Duration,
        owner: bool,
        /// A router answer is awaited (no leg yet).
        waiting: bool,
    },
    /// In a queue (details in `Call::queue`).
    Queue { waiting: bool },
    /// Waiting for the owner lookup.
    Owner { ring: Duration, started: Instant },
    /// The number's welcome prompt plays (playlist `play`).
    Welcome { play: u64, prompt: String },
    /// A `play` step's prompt plays.
    Play { play: u64 },
    /// In an IVR menu.
    Menu(Box<super::ivr::MenuState>),
    /// A voicemail step: the greeting, then the message.
    Voicemail(super::voicemail::VoicemailStage),
    /// The caller chose a queue callback: the confirmation plays, then we hang up.
    Goodbye { play: u64 },
}

/// A call waiting in a queue.
#[derive(Debug)]
pub(super) struct QueueState {
    pub(super) id: u64,
    pub(super) step: pb::QueueStep,
    pub(super) joined: Instant,
    /// The position last announced to the caller, and when.
    pub(super) announced: Option<(u32, Instant)>,
    /// QueueRequestCallback was asked and not answered yet.
    pub(super) callback_pending: bool,
}

impl Node {
    /// The plan is known: announce it and run the first step.
    pub(super) fn start_plan(&mut self, key: &str, plan: pb::CallPlan, backup: Option<String>) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let schedule = plan.schedule.clone().unwrap_or_default();
        call.emit(Kind::RouteSelected(pb::RouteSelected {
            number_name: plan.number_name.clone(),
            schedule_state: schedule.state,
            schedule: schedule.schedule.clone(),
            scheme: plan.scheme.clone(),
            backup: plan.backup_active || backup.is_some(),
            backup_reason: backup.clone().unwrap_or_else(|| plan.backup_reason.clone()),
            config_version: plan.config_version.clone(),
        }));
        tracing::info!(call_id = %key, scheme = %plan.scheme, backup = ?backup, "route selected");
        let welcome = plan.welcome_prompt.clone();
        call.exec = Exec {
            scheme: plan.scheme.clone(),
            steps: plan.steps.clone(),
            index: 0,
            generation: call.exec.generation + 1,
            mode: Mode::Idle,
            entered: 0,
        };
        call.plan = Some(plan);
        if welcome.is_empty() {
            self.enter_step(key);
        } else {
            self.start_welcome(key, welcome);
        }
    }

    /// Runs the step at the cursor, skipping those this slice cannot run.
    pub(super) fn enter_step(&mut self, key: &str) {
        loop {
            let Some(call) = self.calls.get_mut(key) else {
                return;
            };
            // Bridged (an agent answered) or the caller is gone: the plan is over.
            if call.state == CallerState::Finished || call.answered.is_some() {
                return;
            }
            call.exec.generation += 1;
            call.exec.mode = Mode::Idle;
            call.exec.entered += 1;
            if call.exec.entered > MAX_STEPS {
                tracing::warn!(call_id = %key, "the plan loops: ending the call");
                self.end_call(key, Ending::not_answered(480, "the plan loops"));
                return;
            }
            let Some(step) = call.exec.steps.get(call.exec.index).cloned() else {
                tracing::info!(call_id = %key, "the plan ran out");
                self.end_call(
                    key,
                    Ending::not_answered(480, "the plan ran out without an answer"),
                );
                return;
            };
            let kind = step_kind(step.step.as_ref());
            call.emit(Kind::StepEntered(pb::StepEntered {
                scheme: call.exec.scheme.clone(),
                step_index: step.index,
                kind: kind as i32,
            }));
            tracing::info!(call_id = %key, scheme = %call.exec.scheme, index = step.index, ?kind, "step entered");
            match step.step {
                Some(PStep::Ring(r)) => {
                    let mode = pb::RingMode::try_from(r.mode).unwrap_or(pb::RingMode::Simultaneous);
                    let timeout =
                        from_duration(r.timeout.as_ref()).unwrap_or(self.cfg.default_ring_timeout);
                    call.phase = pb::CallPhase::Ringing;
                    self.start_ring(key, r.targets, mode, timeout, false);
                    // A caller we answered hears ringback, not the last prompt's silence.
                    self.ringback(key);
                    return;
                }
                Some(PStep::Queue(q)) => {
                    call.phase = pb::CallPhase::Queue;
                    self.start_queue(key, q);
                    return;
                }
                Some(PStep::OwnerLookup(o)) if self.start_owner(key, &o) => {
                    self.ringback(key);
                    return;
                }
                Some(PStep::OwnerLookup(_)) => {}
                Some(PStep::Hangup(_)) => {
                    self.end_call(key, Ending::not_answered(480, "hangup step"));
                    return;
                }
                Some(PStep::Menu(m)) => {
                    self.start_menu(key, m, step.index);
                    return;
                }
                Some(PStep::Play(p)) if self.start_play(key, p.prompt.clone()) => return,
                Some(PStep::Voicemail(v)) if self.start_voicemail(key, v.clone(), step.index) => {
                    return;
                }
                Some(PStep::Play(_) | PStep::Voicemail(_)) => {}
                None => {}
            }
            if let Some(call) = self.calls.get_mut(key) {
                call.exec.index += 1;
            }
        }
    }

    /// Goes on with the next step.
    pub(super) fn advance(&mut self, key: &str) {
        if let Some(call) = self.calls.get_mut(key) {
            call.exec.index += 1;
            self.enter_step(key);
        }
    }

    /// A menu default or queue overflow: continue somewhere else.
    pub(super) fn jump(&mut self, key: &str, target: pb::jump_target::Target) {
        use pb::jump_target::Target as J;
        let ring = self.cfg.default_ring_timeout;
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let plan = call.plan.clone().unwrap_or_default();
        let (scheme, steps) = match target {
            J::Scheme(s) => match plan.schemes.get(&s) {
                Some(p) => (s, p.steps.clone()),
                None => {
                    tracing::warn!(call_id = %key, scheme = %s, "jump to a scheme missing from the plan");
                    (s, Vec::new())
                }
            },
            J::Queue(q) => match plan.queues.get(&q) {
                Some(step) => (
                    call.exec.scheme.clone(),
                    vec![pb::PlanStep {
                        index: 0,
                        step: Some(PStep::Queue(step.clone())),
                    }],
                ),
                None => (call.exec.scheme.clone(), Vec::new()),
            },
            J::Agent(a) => (
                call.exec.scheme.clone(),
                vec![ring_step(vec![agent_target(&a)], ring)],
            ),
            J::Number(n) => (
                call.exec.scheme.clone(),
                vec![ring_step(
                    vec![external(pb::DestinationKind::Number, &n)],
                    ring,
                )],
            ),
        };
        call.exec.scheme = scheme;
        call.exec.steps = steps;
        call.exec.index = 0;
        self.enter_step(key);
    }

    /// Starts ringing targets; agents not yet reserved go through ReserveAgents first.
    pub(super) fn start_ring(
        &mut self,
        key: &str,
        targets: Vec<pb::RingTarget>,
        mode: pb::RingMode,
        timeout: Duration,
        owner: bool,
    ) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        if mode == pb::RingMode::Sequential {
            call.exec.mode = Mode::Ring {
                externals: Vec::new(),
                sequential: targets.into(),
                timeout,
                owner,
                waiting: false,
            };
            self.next_sequential(key);
            return;
        }
        let (agents, externals): (Vec<_>, Vec<_>) =
            targets.into_iter().partition(|t| !t.agent.is_empty());
        call.exec.mode = Mode::Ring {
            externals,
            sequential: VecDeque::new(),
            timeout,
            owner,
            waiting: !agents.is_empty(),
        };
        if agents.is_empty() {
            self.ring_now(key, Vec::new());
        } else {
            self.reserve(
                key,
                agents.iter().map(|t| t.agent.clone()).collect(),
                timeout,
            );
        }
    }

    fn reserve(&mut self, key: &str, agents: Vec<String>, timeout: Duration) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.reserved_any = true;
        let generation = call.exec.generation;
        self.router.reserve(
            key,
            generation,
            pb::ReserveAgentsRequest {
                call_id: key.to_owned(),
                node_id: self.cfg.node_id.clone(),
                agents,
                hold: Some(duration(timeout + Duration::from_secs(10))),
            },
        );
    }

    /// Rings the next target of a sequential step.
    fn next_sequential(&mut self, key: &str) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.exec.generation += 1;
        let Mode::Ring {
            sequential,
            timeout,
            waiting,
            externals,
            ..
        } = &mut call.exec.mode
        else {
            return;
        };
        let Some(target) = sequential.pop_front() else {
            self.advance(key);
            return;
        };
        let timeout = *timeout;
        if target.agent.is_empty() {
            *externals = vec![target];
            *waiting = false;
            self.ring_now(key, Vec::new());
        } else {
            externals.clear();
            *waiting = true;
            self.reserve(key, vec![target.agent], timeout);
        }
    }

    /// The router reserved agents (or not).
    pub(super) fn on_reserved(&mut self, key: &str, generation: u64, body: ReplyBody) {
        let ReplyBody::Reserved(result) = body else {
            return;
        };
        let current = self.calls.get(key).map(|c| c.exec.generation);
        let reserved = match result {
            Ok(r) => {
                for s in &r.skipped {
                    tracing::info!(call_id = %key, agent = %s.agent, reason = %s.unavailable_reason, "agent not available: skipped");
                }
                r.reserved
            }
            Err(e) => {
                tracing::warn!(call_id = %key, error = %e, "ReserveAgents failed: ringing external targets only");
                Vec::new()
            }
        };
        if current != Some(generation) {
            if !reserved.is_empty() {
                self.router
                    .report(Report::Release(pb::ReleaseAgentsRequest {
                        call_id: key.to_owned(),
                        agents: reserved.into_iter().map(|t| t.agent).collect(),
                    }));
            }
            return;
        }
        if let Some(call) = self.calls.get_mut(key)
            && let Mode::Ring { waiting, .. } = &mut call.exec.mode
        {
            *waiting = false;
        }
        self.ring_now(key, reserved);
    }

    /// Rings reserved agents plus the pending external targets; arms the stage timer.
    fn ring_now(&mut self, key: &str, agents: Vec<pb::RingTarget>) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let (timeout, owner, mut targets) = match &mut call.exec.mode {
            Mode::Ring {
                externals,
                timeout,
                owner,
                ..
            } => (*timeout, *owner, std::mem::take(externals)),
            _ => return,
        };
        targets.splice(0..0, agents);
        self.ring_targets(key, targets, timeout, String::new(), owner);
    }

    /// Creates a leg per reachable destination of every target; an empty stage ends at once.
    pub(super) fn ring_targets(
        &mut self,
        key: &str,
        targets: Vec<pb::RingTarget>,
        timeout: Duration,
        queue: String,
        owner: bool,
    ) {
        let carriers = self
            .calls
            .get(key)
            .and_then(|c| c.plan.as_ref())
            .map(|p| p.carriers.clone())
            .unwrap_or_default();
        let mut created = 0;
        for target in targets {
            for destination in target.destinations.iter().filter(|d| d.reachable) {
                let req = LegRequest {
                    agent: target.agent.clone(),
                    destination: destination.clone(),
                    queue: queue.clone(),
                    owner,
                    carriers: carriers.clone(),
                    from_user: None,
                };
                if self.create_leg(key, req) {
                    created += 1;
                }
            }
            if target.destinations.is_empty() && !target.agent.is_empty() {
                tracing::info!(call_id = %key, agent = %target.agent, "agent has no destination to ring");
            }
        }
        let Some(call) = self.calls.get(key) else {
            return;
        };
        if created == 0 {
            if !queue.is_empty() || call.reserved_any {
                self.router
                    .report(Report::Release(pb::ReleaseAgentsRequest {
                        call_id: key.to_owned(),
                        agents: Vec::new(),
                    }));
            }
            self.stage_over(key);
            return;
        }
        let timer = Timer {
            call: key.to_owned(),
            generation: call.exec.generation,
            kind: TimerKind::Stage,
        };
        self.arm(Instant::now() + timeout, timer);
    }

    /// A leg of the current stage ended: is the stage over?
    pub(super) fn check_stage(&mut self, key: &str) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        if call.answered.is_some() {
            return;
        }
        let generation = call.exec.generation;
        let waiting = match &call.exec.mode {
            Mode::Ring { waiting, .. } | Mode::Queue { waiting } => *waiting,
            Mode::Owner { .. } => true,
            _ => return,
        };
        let ringing = call
            .ringing_legs()
            .any(|i| call.legs.get(i).is_some_and(|l| l.generation == generation));
        if !waiting && !ringing {
            self.stage_over(key);
        }
    }

    /// The stage timer fired: cancel what still rings, then move on.
    pub(super) fn stage_timeout(&mut self, key: &str) {
        let legs: Vec<usize> = match self.calls.get(key) {
            Some(c) => c
                .ringing_legs()
                .filter(|i| {
                    c.legs
                        .get(*i)
                        .is_some_and(|l| l.generation == c.exec.generation)
                })
                .collect(),
            None => return,
        };
        tracing::info!(call_id = %key, legs = legs.len(), "ring timeout");
        for idx in legs {
            self.cancel_leg(key, idx, pb::LegCancelCause::Timeout);
        }
        self.stage_over(key);
    }

    /// The current stage produced no answer.
    pub(super) fn stage_over(&mut self, key: &str) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        if call.outbound.is_some() {
            self.callback_stage_over(key);
            return;
        }
        match &call.exec.mode {
            Mode::Ring { sequential, .. } if !sequential.is_empty() => self.next_sequential(key),
            Mode::Queue { .. } => {
                call.exec.generation += 1;
                self.queue_poll(key);
            }
            _ => self.advance(key),
        }
    }
}

fn step_kind(step: Option<&PStep>) -> pb::StepKind {
    match step {
        Some(PStep::Play(_)) => pb::StepKind::Play,
        Some(PStep::Menu(_)) => pb::StepKind::Menu,
        Some(PStep::Ring(_)) => pb::StepKind::Ring,
        Some(PStep::Queue(_)) => pb::StepKind::Queue,
        Some(PStep::OwnerLookup(_)) => pb::StepKind::OwnerLookup,
        Some(PStep::Voicemail(_)) => pb::StepKind::Voicemail,
        Some(PStep::Hangup(_)) => pb::StepKind::Hangup,
        None => pb::StepKind::Unspecified,
    }
}

fn ring_step(targets: Vec<pb::RingTarget>, timeout: Duration) -> pb::PlanStep {
    pb::PlanStep {
        index: 0,
        step: Some(PStep::Ring(pb::RingStep {
            targets,
            mode: pb::RingMode::Simultaneous as i32,
            timeout: Some(duration(timeout)),
        })),
    }
}

/// An agent target whose destinations come from ReserveAgents.
pub(super) fn agent_target(agent: &str) -> pb::RingTarget {
    pb::RingTarget {
        agent: agent.to_owned(),
        available: true,
        ..Default::default()
    }
}

pub(super) fn external(kind: pb::DestinationKind, uri: &str) -> pb::RingTarget {
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
