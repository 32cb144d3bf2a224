//! The backup plan from the local snapshot, for calls whose PlanCall got no answer in time.

use std::time::Duration;

use dialtone_model::Snapshot;
use dialtone_model::resources::scheme::RingMode;
use dialtone_model::snapshot::{RingTarget, Step, Target};
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::plan_step::Step as PStep;

use super::events::duration;
use super::plan::{agent_target, external};

/// The number's backup scheme from the local snapshot, for when the router cannot be
/// reached: agents still need the router (reservation, contacts), so in practice external
/// numbers and SIP URIs are what rings.
pub(super) fn backup_plan(snapshot: &Snapshot, number: &str) -> Option<pb::CallPlan> {
    let n = snapshot.number(number)?;
    let name = n.backup.as_ref()?;
    let scheme = snapshot.schemes.get(name)?;
    let steps: Vec<pb::PlanStep> = scheme
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let step = match s {
                Step::Ring(r) => PStep::Ring(pb::RingStep {
                    targets: r
                        .targets
                        .iter()
                        .flat_map(|t| match t {
                            RingTarget::Agent(a) => vec![agent_target(a)],
                            RingTarget::Selector { agents, .. } => {
                                agents.iter().map(|a| agent_target(a)).collect()
                            }
                            RingTarget::Number(n) => vec![external(pb::DestinationKind::Number, n)],
                            RingTarget::SipUri(u) => vec![external(pb::DestinationKind::SipUri, u)],
                        })
                        .collect(),
                    mode: match r.mode {
                        RingMode::Sequential => pb::RingMode::Sequential as i32,
                        _ => pb::RingMode::Simultaneous as i32,
                    },
                    timeout: Some(duration(Duration::from_secs(u64::from(r.timeout_seconds)))),
                }),
                Step::Play { prompt } => PStep::Play(pb::PlayStep {
                    prompt: prompt.clone(),
                }),
                Step::Voicemail { greeting, .. } => PStep::Voicemail(pb::VoicemailStep {
                    greeting: greeting.clone().unwrap_or_default(),
                    max_length: None,
                }),
                Step::Hangup => PStep::Hangup(pb::HangupStep {}),
                Step::Menu(m) => PStep::Menu(pb::MenuStep {
                    prompt: m.prompt.clone(),
                    default_target: m.default.as_ref().and_then(jump_of),
                    ..Default::default()
                }),
                Step::Queue { .. } | Step::OwnerLookup { .. } => return None,
            };
            Some(pb::PlanStep {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                step: Some(step),
            })
        })
        .collect();
    Some(pb::CallPlan {
        number_name: n.name.clone(),
        number: n.number.clone(),
        scheme: name.clone(),
        steps,
        backup_active: true,
        carriers: n.carriers.clone(),
        ..Default::default()
    })
}

fn jump_of(t: &Target) -> Option<pb::JumpTarget> {
    use pb::jump_target::Target as J;
    let target = match t {
        Target::Scheme(s) => J::Scheme(s.clone()),
        Target::Agent(a) => J::Agent(a.clone()),
        _ => return None,
    };
    Some(pb::JumpTarget {
        target: Some(target),
    })
}
