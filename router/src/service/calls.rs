//! `Router` RPCs about one call's route and its legs: planning (`PlanCall`, `ExplainRoute`),
//! reserving and releasing agents for a call, and the leg and agent events media nodes report
//! (which move agents through ringing, on call and wrap-up).

use std::sync::Arc;

use dialtone_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::convert::{self, ts};
use super::core::{RouterCore, instant, presence_status, required, target_now};
use super::{queue_callbacks, trace};
use crate::plan;
use crate::presence;

pub(super) fn plan_call(
    core: &Arc<RouterCore>,
    req: Request<pb::PlanCallRequest>,
) -> Result<Response<pb::PlanCallResponse>, Status> {
    let span = tracing::info_span!("router.plan", call_id = %req.get_ref().call_id, number = %req.get_ref().number);
    let _guard = trace::follow(req.metadata(), span).entered();
    let r = req.into_inner();
    required("number", &r.number)?;
    let at = instant(r.at.as_ref(), "at")?;
    let caller = (!r.caller.is_empty()).then_some(r.caller);
    if let Some(client) = &caller {
        core.note_dialled(client, &r.number);
    }
    let (outcome, generation) = core.plan(&r.number, caller, at);
    Ok(Response::new(convert::plan_response(
        &outcome,
        &generation.to_string(),
    )))
}

pub(super) fn explain_route(
    core: &Arc<RouterCore>,
    req: Request<pb::ExplainRouteRequest>,
) -> Result<Response<pb::ExplainRouteResponse>, Status> {
    let r = req.into_inner();
    required("number", &r.number)?;
    let at = instant(r.at.as_ref(), "at")?.unwrap_or_else(|| core.clock.now());
    let caller = (!r.caller.is_empty()).then_some(r.caller);
    let (outcome, generation) = core.plan(&r.number, caller, Some(at));
    Ok(Response::new(pb::ExplainRouteResponse {
        result: Some(convert::plan_response(&outcome, &generation.to_string())),
        at: Some(ts(at)),
        notes: plan::explain(&outcome).lines().map(str::to_owned).collect(),
    }))
}

pub(super) fn reserve_agents(
    core: &Arc<RouterCore>,
    req: Request<pb::ReserveAgentsRequest>,
) -> Result<Response<pb::ReserveAgentsResponse>, Status> {
    let span = tracing::info_span!("router.reserve", call_id = %req.get_ref().call_id);
    let _guard = trace::follow(req.metadata(), span).entered();
    let r = req.into_inner();
    required("call_id", &r.call_id)?;
    let hold = r
        .hold
        .as_ref()
        .map_or(presence::DEFAULT_HOLD_SECS, convert::to_secs)
        .max(1);
    let mut st = core.lock();
    let now = core.clock.now();
    let mut out = pb::ReserveAgentsResponse::default();
    for agent in &r.agents {
        let result = st.presence.reserve_for(agent, &r.call_id, hold, now);
        let target = target_now(&mut st, agent, now);
        match result {
            Ok(token) => {
                st.legs.insert((r.call_id.clone(), agent.clone()), token);
                out.reserved.push(target);
            }
            Err(e) => {
                let mut t = target;
                t.available = false;
                t.unavailable_reason = e.reason.to_string();
                out.skipped.push(t);
            }
        }
    }
    core.publish(&mut st, now);
    Ok(Response::new(out))
}

pub(super) fn release_agents(
    core: &Arc<RouterCore>,
    req: Request<pb::ReleaseAgentsRequest>,
) -> Result<Response<pb::ReleaseAgentsResponse>, Status> {
    let r = req.into_inner();
    let mut st = core.lock();
    let now = core.clock.now();
    queue_callbacks::on_released(&mut st, &r.call_id);
    let keys: Vec<(String, String)> = st
        .legs
        .keys()
        .filter(|(call, agent)| {
            *call == r.call_id && (r.agents.is_empty() || r.agents.contains(agent))
        })
        .cloned()
        .collect();
    for key in keys {
        if let Some(token) = st.legs.remove(&key) {
            // A leg already gone (lapsed, ended) needs no release.
            let _ = st.presence.released(&token, now);
        }
    }
    core.publish(&mut st, now);
    Ok(Response::new(pb::ReleaseAgentsResponse {}))
}

pub(super) fn report_leg_event(
    core: &Arc<RouterCore>,
    req: Request<pb::LegEvent>,
) -> Result<Response<pb::ReportLegEventResponse>, Status> {
    let span = tracing::info_span!("router.leg_event", call_id = %req.get_ref().call_id);
    let _guard = trace::follow(req.metadata(), span).entered();
    let r = req.into_inner();
    required("call_id", &r.call_id)?;
    required("agent", &r.agent)?;
    let kind = pb::LegEventKind::try_from(r.kind)
        .map_err(|_| Status::invalid_argument("unknown leg event kind"))?;
    let mut st = core.lock();
    let now = instant(r.at.as_ref(), "at")?.unwrap_or_else(|| core.clock.now());
    let key = (r.call_id.clone(), r.agent.clone());
    let token = match st.legs.get(&key).cloned() {
        Some(t) => Some(t),
        None => st.presence.find_leg(&r.agent, &r.call_id),
    };
    let token = match (token, kind) {
        (Some(t), _) => t,
        // A leg the router did not offer (a direct call): reserve it now so the agent's
        // state reflects it.
        (
            None,
            pb::LegEventKind::Created | pb::LegEventKind::Alerting | pb::LegEventKind::Answered,
        ) => match st.presence.reserve(&r.agent, &r.call_id, now) {
            Ok(t) => t,
            Err(e) => return Err(Status::failed_precondition(e.to_string())),
        },
        (None, _) => return Ok(Response::new(pb::ReportLegEventResponse {})),
    };
    let wrap_up = if r.queue.is_empty() {
        0
    } else {
        st.applied
            .queues
            .get(&r.queue)
            .map_or(0, |q| q.wrap_up_seconds)
    };
    let result = match kind {
        pb::LegEventKind::Created | pb::LegEventKind::Unspecified => Ok(()),
        pb::LegEventKind::Alerting => st.presence.alerting(&token),
        pb::LegEventKind::Answered => {
            queue_callbacks::on_leg_answered(&mut st, &r.call_id, &r.agent);
            if !r.queue.is_empty() {
                let _ = st.queues.answered(&r.queue, &r.call_id, &r.agent);
                core.publish_queue(&mut st, &r.queue, now);
            }
            st.presence.answered(&token, now)
        }
        pb::LegEventKind::Failed | pb::LegEventKind::Cancelled => {
            st.legs.remove(&key);
            st.presence.released(&token, now)
        }
        pb::LegEventKind::Ended => {
            st.legs.remove(&key);
            st.presence.ended(&token, now, wrap_up)
        }
    };
    if let Err(e) = result {
        tracing::debug!(call_id = %r.call_id, agent = %r.agent, error = %e, "leg event for a leg the router no longer tracks");
    }
    core.publish(&mut st, now);
    Ok(Response::new(pb::ReportLegEventResponse {}))
}

pub(super) fn report_agent_event(
    core: &Arc<RouterCore>,
    req: Request<pb::AgentEvent>,
) -> Result<Response<pb::ReportAgentEventResponse>, Status> {
    let r = req.into_inner();
    required("agent", &r.agent)?;
    let kind = pb::AgentEventKind::try_from(r.kind)
        .map_err(|_| Status::invalid_argument("unknown agent event kind"))?;
    let mut st = core.lock();
    let now = instant(r.at.as_ref(), "at")?.unwrap_or_else(|| core.clock.now());
    match kind {
        pb::AgentEventKind::CallStarted => {
            let token = st
                .presence
                .reserve(&r.agent, &r.call_id, now)
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
            st.presence.answered(&token, now).map_err(presence_status)?;
        }
        pb::AgentEventKind::CallEnded => {
            if let Some(token) = st.presence.find_leg(&r.agent, &r.call_id) {
                st.presence.ended(&token, now, 0).map_err(presence_status)?;
            }
        }
        pb::AgentEventKind::ContactUnreachable => {
            if !r.contact_uri.is_empty() {
                st.presence
                    .unregister(&r.agent, &r.contact_uri, now)
                    .map_err(presence_status)?;
            }
        }
        pb::AgentEventKind::Unspecified => {
            return Err(Status::invalid_argument("agent event kind is required"));
        }
    }
    core.publish(&mut st, now);
    Ok(Response::new(pb::ReportAgentEventResponse {}))
}
