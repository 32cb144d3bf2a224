//! ownerLookup steps: the client's own manager rings first — the owner stored with
//! Router.SetOwner, else the CRM's answer through Router.GetOwner within the step's timeout.

use std::time::{Duration, Instant};

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::call_event::Kind;

use super::actor::Node;
use super::events::{duration, from_duration};
use super::plan::{Mode, agent_target};
use super::router::ReplyBody;

impl Node {
    /// An ownerLookup step: ring the stored owner, or ask the router (and the CRM).
    /// Returns false when the step is skipped at once.
    pub(super) fn start_owner(&mut self, key: &str, o: &pb::OwnerLookupStep) -> bool {
        let ring = from_duration(o.ring.as_ref()).unwrap_or(self.cfg.default_ring_timeout);
        let Some(call) = self.calls.get_mut(key) else {
            return false;
        };
        if call.caller_number.is_empty() {
            tracing::info!(call_id = %key, "anonymous caller: no owner to look up");
            return false;
        }
        if let Some(owner) = o.owner.as_ref().filter(|t| t.available) {
            call.phase = pb::CallPhase::Ringing;
            self.start_ring(
                key,
                vec![agent_target(&owner.agent)],
                pb::RingMode::Simultaneous,
                ring,
                true,
            );
            return true;
        }
        let timeout = from_duration(o.timeout.as_ref()).unwrap_or(Duration::from_secs(1));
        call.exec.mode = Mode::Owner {
            ring,
            started: Instant::now(),
        };
        let generation = call.exec.generation;
        let req = pb::GetOwnerRequest {
            client: call.caller_number.clone(),
            webhook: o.webhook.clone(),
            timeout: o.timeout,
            call_id: key.to_owned(),
        };
        self.router
            .owner(key, generation, req, timeout + Duration::from_millis(500));
        true
    }

    pub(super) fn on_owner(&mut self, key: &str, generation: u64, body: ReplyBody) {
        let ReplyBody::Owner(result) = body else {
            return;
        };
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Mode::Owner { ring, started } = call.exec.mode else {
            return;
        };
        if call.exec.generation != generation {
            return;
        }
        let (outcome, agent, source) = match &result {
            Ok(r) => (r.outcome, r.agent.clone(), r.source.clone()),
            Err(_) => (
                pb::OwnerLookupOutcome::Error as i32,
                String::new(),
                String::new(),
            ),
        };
        call.emit(Kind::OwnerLookedUp(pb::OwnerLookedUp {
            outcome,
            agent: agent.clone(),
            source,
            elapsed: Some(duration(started.elapsed())),
        }));
        let available = result
            .ok()
            .and_then(|r| r.target)
            .is_some_and(|t| t.available);
        if agent.is_empty() || !available {
            self.advance(key);
            return;
        }
        self.start_ring(
            key,
            vec![agent_target(&agent)],
            pb::RingMode::Simultaneous,
            ring,
            true,
        );
    }
}
