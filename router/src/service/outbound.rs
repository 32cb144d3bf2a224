//! `Router.PlanOutbound`: an agent dials a client from a registered softphone.
//!
//! The media node has authenticated the agent (digest against their Secret) but knows neither
//! the call history nor the other nodes' calls, so the router decides what such a call may
//! do, with the same rules as a callback ([`super::call_control`]): the caller ID is the
//! PhoneNumber the client last called (else the first PhoneNumber), the carriers are those of
//! that number (else every carrier) in priority-then-weight order, and the agent is reserved
//! for the call so that no inbound call rings them meanwhile beyond `maxConcurrentCalls`. The
//! node reports the agent answered (a leg event of the call) once the client answers, and
//! releases the reservation when the call ends.
//!
//! Unlike a callback, the reservation is the agent's own call
//! ([`crate::presence::Presence::reserve_outbound`]): wrap-up, DND and away do not refuse it
//! (calling a client back during wrap-up is the normal case); logged out, not registered or
//! at `maxConcurrentCalls` do.

use std::sync::Arc;

use dialtone_proto::v1 as pb;
use tonic::Status;

use super::call_control::{caller_id, client_carriers, is_e164};
use super::core::RouterCore;
use crate::presence::UnavailableReason;

/// How long the reservation holds when the node does not say: the client's phone rings for
/// a minute at most on the node, plus a margin.
const DEFAULT_HOLD_SECS: u32 = 75;
/// The longest hold a node may ask for.
const MAX_HOLD_SECS: u32 = 600;

/// Plans an agent's call out (see the module documentation).
pub(super) fn plan_outbound(
    core: &Arc<RouterCore>,
    r: pb::PlanOutboundRequest,
) -> Result<pb::PlanOutboundResponse, Status> {
    if r.call_id.is_empty() || r.agent.is_empty() {
        return Err(Status::invalid_argument("call_id and agent are required"));
    }
    let number = crate::plan::normalize_number(&r.dialled);
    let refuse = |refused: pb::OutboundRefusal, reason: String| {
        tracing::info!(call_id = %r.call_id, agent = %r.agent, dialled = %r.dialled, ?refused, %reason, "call out refused");
        Ok(pb::PlanOutboundResponse {
            refused: refused as i32,
            reason,
            number: number.clone(),
            ..Default::default()
        })
    };
    if !is_e164(&number) {
        return refuse(
            pb::OutboundRefusal::InvalidNumber,
            format!(
                "{:?} is not a phone number Dialtone dials: dial it in E.164 (+380501234567)",
                r.dialled
            ),
        );
    }
    let applied = core.lock().applied.clone();
    if !applied.agents.contains_key(&r.agent) {
        return Err(Status::not_found(format!(
            "Agent/{} does not exist",
            r.agent
        )));
    }
    if let Some(rule) = applied.blocked(&number) {
        return refuse(
            pb::OutboundRefusal::BlockedDestination,
            format!("{number} is blocklisted: {}", rule.reason),
        );
    }
    let caller_id = match caller_id(core, "", &number) {
        Ok(c) => c,
        Err(status) => return refuse(pb::OutboundRefusal::NoRoute, status.message().to_owned()),
    };
    let now = core.clock.now();
    let carriers = client_carriers(&applied, &caller_id, &number, now);
    if carriers.is_empty() {
        return refuse(
            pb::OutboundRefusal::NoRoute,
            "no Carrier is configured to reach the client".into(),
        );
    }
    let hold = r
        .hold
        .as_ref()
        .map_or(DEFAULT_HOLD_SECS, super::convert::to_secs)
        .clamp(1, MAX_HOLD_SECS);
    // The reservation is what keeps inbound calls (and other callbacks) off the agent while
    // they are dialling and talking, within maxConcurrentCalls.
    let mut st = core.lock();
    match st
        .presence
        .reserve_outbound(&r.agent, &r.call_id, hold, now)
    {
        Ok(token) => {
            st.legs.insert((r.call_id.clone(), r.agent.clone()), token);
            core.publish(&mut st, now);
        }
        Err(e) => {
            drop(st);
            let refused = match e.reason {
                UnavailableReason::Busy { .. } | UnavailableReason::AlreadyOffered => {
                    pb::OutboundRefusal::AgentBusy
                }
                _ => pb::OutboundRefusal::AgentUnavailable,
            };
            let why = match e.reason {
                UnavailableReason::Offline => "logged out or not registered".to_owned(),
                other => other.to_string(),
            };
            return refuse(
                refused,
                format!("Agent/{} cannot make a call now: {why}", r.agent),
            );
        }
    }
    tracing::info!(call_id = %r.call_id, agent = %r.agent, %number, %caller_id, ?carriers, "call out planned");
    Ok(pb::PlanOutboundResponse {
        refused: pb::OutboundRefusal::Unspecified as i32,
        reason: String::new(),
        number,
        caller_id,
        carriers,
    })
}
