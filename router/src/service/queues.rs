//! `Router` RPCs about queues: a call joins and leaves, asks for its next agents and its
//! position, and asks to be called back.

use std::sync::Arc;

use dialtone_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::convert::{secs, ts};
use super::core::{RouterCore, queue_status_err, required, target_now};
use super::trace;
use crate::queues::Offer;

pub(super) fn queue_join(
    core: &Arc<RouterCore>,
    req: Request<pb::QueueJoinRequest>,
) -> Result<Response<pb::QueueJoinResponse>, Status> {
    let span = tracing::info_span!("router.queue_join", call_id = %req.get_ref().call_id);
    let _guard = trace::follow(req.metadata(), span).entered();
    let r = req.into_inner();
    required("call_id", &r.call_id)?;
    required("queue", &r.queue)?;
    let mut st = core.lock();
    let now = core.clock.now();
    let place = st
        .queues
        .join(&r.queue, &r.call_id, &r.caller, now)
        .map_err(queue_status_err)?;
    core.publish_queue(&mut st, &r.queue, now);
    Ok(Response::new(pb::QueueJoinResponse {
        position: place.position,
        waiting: place.waiting,
        joined_at: Some(ts(place.joined_at)),
    }))
}

pub(super) fn queue_leave(
    core: &Arc<RouterCore>,
    req: Request<pb::QueueLeaveRequest>,
) -> Result<Response<pb::QueueLeaveResponse>, Status> {
    let r = req.into_inner();
    let mut st = core.lock();
    let now = core.clock.now();
    if let Some(queue) = st.queues.leave(&r.call_id) {
        core.publish_queue(&mut st, &queue, now);
    }
    Ok(Response::new(pb::QueueLeaveResponse {}))
}

pub(super) fn queue_next_agent(
    core: &Arc<RouterCore>,
    req: Request<pb::QueueNextAgentRequest>,
) -> Result<Response<pb::QueueNextAgentResponse>, Status> {
    let span = tracing::info_span!("router.queue_next", call_id = %req.get_ref().call_id);
    let _guard = trace::follow(req.metadata(), span).entered();
    let r = req.into_inner();
    required("call_id", &r.call_id)?;
    required("queue", &r.queue)?;
    let mut guard = core.lock();
    let st = &mut *guard;
    let now = core.clock.now();
    let offer = st
        .queues
        .next_offer(&r.queue, &r.call_id, &mut st.presence, now, &mut st.rng)
        .map_err(queue_status_err)?;
    use pb::queue_next_agent_response::Outcome;
    let outcome = match offer {
        Offer::Ring {
            legs,
            ring_timeout_seconds,
            attempt,
            ..
        } => {
            let mut targets = Vec::new();
            for token in legs {
                let agent = token.agent().to_owned();
                targets.push(target_now(st, &agent, now));
                st.legs.insert((r.call_id.clone(), agent), token);
            }
            Outcome::Offer(pb::QueueOffer {
                targets,
                ring_timeout: Some(secs(ring_timeout_seconds)),
                attempt,
            })
        }
        Offer::Wait { position, reason } => Outcome::Wait(pb::QueueWait {
            position,
            retry_after: Some(secs(1)),
            reason: format!("{reason:?}"),
        }),
    };
    core.publish(st, now);
    core.publish_queue(st, &r.queue, now);
    Ok(Response::new(pb::QueueNextAgentResponse {
        outcome: Some(outcome),
    }))
}

pub(super) fn queue_position(
    core: &Arc<RouterCore>,
    req: Request<pb::QueuePositionRequest>,
) -> Result<Response<pb::QueuePositionResponse>, Status> {
    let r = req.into_inner();
    let st = core.lock();
    let place = st
        .queues
        .position(&r.call_id)
        .ok_or_else(|| Status::not_found(format!("call {} is in no queue", r.call_id)))?;
    Ok(Response::new(pb::QueuePositionResponse {
        position: place.position,
        waiting: place.waiting,
        joined_at: Some(ts(place.joined_at)),
    }))
}

pub(super) fn queue_request_callback(
    core: &Arc<RouterCore>,
    req: Request<pb::QueueRequestCallbackRequest>,
) -> Result<Response<pb::QueueRequestCallbackResponse>, Status> {
    let r = req.into_inner();
    required("call_id", &r.call_id)?;
    let mut st = core.lock();
    let now = core.clock.now();
    let place = st
        .queues
        .request_callback(&r.call_id)
        .map_err(queue_status_err)?;
    core.publish_queue(&mut st, &place.queue, now);
    Ok(Response::new(pb::QueueRequestCallbackResponse {
        callback_id: format!("cb-{}", r.call_id),
        position: place.position,
    }))
}
