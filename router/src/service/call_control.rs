//! `dialtone.v1.CallControl`: what clients (the CLI, the dashboard, a CRM) ask of calls.
//!
//! A callback is decided here and carried out by a media node: the router checks the agent and
//! the numbers, reserves the agent (so no inbound call rings them meanwhile), chooses the
//! caller ID and the carriers, picks a node (the one holding the agent's softphone
//! registration when there is one) and sends it `OriginateCallback` over its `NodeSession`.
//! The answer returns once the node has taken the order; the call's progress shows in the
//! call events and so in the reports.

use std::sync::Arc;
use std::time::Duration;

use dialtone_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::core::{RouterCore, target_now};
use super::nodes::CommandError;
use crate::plan::carriers::{call_seed, order_carriers};

/// How long the agent rings when the order does not say.
const DEFAULT_AGENT_RING: Duration = Duration::from_secs(30);
/// Longest agent ring an order may ask for.
const MAX_AGENT_RING: Duration = Duration::from_secs(300);
/// How long a node gets to take an order.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// `dialtone.v1.CallControl` over a [`RouterCore`].
#[derive(Debug, Clone)]
pub struct CallControlService {
    core: Arc<RouterCore>,
}

impl CallControlService {
    /// The service over a core (the same core the `Router` service uses: its node sessions
    /// carry the orders).
    pub fn new(core: Arc<RouterCore>) -> Self {
        Self { core }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> pb::call_control_server::CallControlServer<Self> {
        pb::call_control_server::CallControlServer::new(self)
    }
}

/// `+` and 7 to 15 digits, the first not 0.
pub(super) fn is_e164(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or("");
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn command_status(e: CommandError) -> Status {
    match e {
        CommandError::NotConnected(_) | CommandError::Timeout { .. } => {
            Status::unavailable(e.to_string())
        }
        CommandError::Failed { .. } => Status::failed_precondition(e.to_string()),
    }
}

/// The caller ID a call to `client` shows (a callback, or an agent dialling out): the one
/// asked for (which must be one of our numbers), else the number the client last dialled,
/// else the first PhoneNumber.
pub(super) fn caller_id(core: &RouterCore, asked: &str, client: &str) -> Result<String, Status> {
    let snapshot = core.lock().applied.clone();
    if !asked.is_empty() {
        return match snapshot.number(asked) {
            Some(n) => Ok(n.number.clone()),
            None => Err(Status::invalid_argument(format!(
                "caller ID {asked} is not one of the PhoneNumbers: show a number of ours, or leave it empty for the number {client} last called"
            ))),
        };
    }
    if let Some(n) = core
        .last_dialled(client)
        .filter(|n| snapshot.number(n).is_some())
    {
        return Ok(n);
    }
    snapshot
        .numbers
        .keys()
        .next()
        .cloned()
        .ok_or_else(|| Status::failed_precondition("no PhoneNumber is configured to call from"))
}

/// The carriers a call to `to` showing `caller_id` leaves through, in the order to try them:
/// the carriers of the number shown, else any.
pub(super) fn client_carriers(
    applied: &dialtone_model::Snapshot,
    caller_id: &str,
    to: &str,
    now: jiff::Timestamp,
) -> Vec<String> {
    let names: Vec<String> = match applied.number(caller_id) {
        Some(n) if !n.carriers.is_empty() => n.carriers.clone(),
        _ => applied.carriers.keys().cloned().collect(),
    };
    order_carriers(applied, &names, call_seed(Some(to), now.as_nanosecond()))
}

#[tonic::async_trait]
impl pb::call_control_server::CallControl for CallControlService {
    async fn order_callback(
        &self,
        req: Request<pb::OrderCallbackRequest>,
    ) -> Result<Response<pb::OrderCallbackResponse>, Status> {
        let by = req
            .extensions()
            .get::<dialtone_proto::Authenticated>()
            .map(|a| a.0.clone());
        let r = req.into_inner();
        if r.agent.is_empty() {
            return Err(Status::invalid_argument(
                "agent is required: the Agent to ring first (--agent NAME)",
            ));
        }
        let to = crate::plan::normalize_number(&r.to);
        if !is_e164(&to) {
            return Err(Status::invalid_argument(format!(
                "{:?} is not a phone number: give the client's number in E.164 (+380501234567)",
                r.to
            )));
        }
        let ring = match r.agent_ring_timeout.as_ref() {
            Some(d) if d.seconds > 0 => Duration::from_secs(d.seconds.unsigned_abs()),
            _ => DEFAULT_AGENT_RING,
        };
        if ring > MAX_AGENT_RING {
            return Err(Status::invalid_argument(format!(
                "agent ring timeout {} s is longer than the {} s allowed",
                ring.as_secs(),
                MAX_AGENT_RING.as_secs()
            )));
        }
        let caller_id = caller_id(&self.core, &r.caller_id, &to)?;
        let ordered_by = if r.ordered_by.is_empty() {
            by.unwrap_or_else(|| "api".to_owned())
        } else {
            r.ordered_by.clone()
        };
        let now = self.core.clock.now();
        let callback_id = format!("cb-{}", uuid_like(now.as_nanosecond(), &to));
        let call_id = format!("callback-{}", &callback_id[3..]);
        let span =
            tracing::info_span!("router.callback", call_id = %call_id, agent = %r.agent, to = %to);
        let _g = span.enter();

        // Reserve the agent and resolve where to ring them, in one critical section.
        let (target, carriers) = {
            let mut st = self.core.lock();
            let applied = st.applied.clone();
            if !applied.agents.contains_key(&r.agent) {
                return Err(Status::not_found(format!(
                    "Agent/{} does not exist: check the name (dialtone report live lists the agents)",
                    r.agent
                )));
            }
            let hold = u32::try_from(ring.as_secs() + 15).unwrap_or(u32::MAX);
            let token = st
                .presence
                .reserve_for(&r.agent, &call_id, hold, now)
                .map_err(|e| {
                    Status::failed_precondition(format!(
                        "Agent/{} cannot take a callback now: {}",
                        r.agent, e.reason
                    ))
                })?;
            let target = target_now(&mut st, &r.agent, now);
            let reachable = target.destinations.iter().any(|d| d.reachable);
            if !reachable {
                let _ = st.presence.released(&token, now);
                self.core.publish(&mut st, now);
                return Err(Status::failed_precondition(format!(
                    "Agent/{} has no reachable destination: register a softphone or give the agent a mobile number",
                    r.agent
                )));
            }
            st.legs.insert((call_id.clone(), r.agent.clone()), token);
            self.core.publish(&mut st, now);
            (target, client_carriers(&applied, &caller_id, &to, now))
        };
        let release = || {
            let mut st = self.core.lock();
            if let Some(token) = st.legs.remove(&(call_id.clone(), r.agent.clone())) {
                let _ = st.presence.released(&token, now);
            }
            self.core.publish(&mut st, now);
        };
        if carriers.is_empty() {
            release();
            return Err(Status::failed_precondition(
                "no Carrier is configured to reach the client",
            ));
        }
        let preferred: Vec<String> = target
            .destinations
            .iter()
            .filter(|d| !d.node_id.is_empty())
            .map(|d| d.node_id.clone())
            .collect();
        let Some(node) = self.core.nodes.pick(&preferred) else {
            release();
            return Err(Status::unavailable(
                "no media node is connected to the router: start one (dialtone media-node) or wait until it reconnects",
            ));
        };
        let command = pb::node_command::Command::OriginateCallback(pb::OriginateCallback {
            callback_id: callback_id.clone(),
            agent: Some(target),
            to: to.clone(),
            caller_id: caller_id.clone(),
            agent_ring_timeout: Some(prost_types::Duration {
                seconds: i64::try_from(ring.as_secs()).unwrap_or(30),
                nanos: 0,
            }),
            carriers,
            ordered_by,
            call_id: call_id.clone(),
            origin: pb::CallbackOrigin::Api as i32,
        });
        match self
            .core
            .nodes
            .command(&node, command, COMMAND_TIMEOUT)
            .await
        {
            Ok(result) => {
                tracing::info!(%node, %callback_id, "callback ordered");
                Ok(Response::new(pb::OrderCallbackResponse {
                    callback_id,
                    call_id: if result.call_id.is_empty() {
                        call_id
                    } else {
                        result.call_id
                    },
                    node_id: node,
                    caller_id,
                }))
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "callback not taken");
                release();
                Err(command_status(e))
            }
        }
    }

    async fn hang_up(
        &self,
        req: Request<pb::HangUpRequest>,
    ) -> Result<Response<pb::HangUpResponse>, Status> {
        let r = req.into_inner();
        if r.call_id.is_empty() {
            return Err(Status::invalid_argument("call_id is required"));
        }
        let Some(node) = self.core.nodes.node_of_call(&r.call_id) else {
            return Err(Status::not_found(format!(
                "call {} is not in progress on any connected media node",
                r.call_id
            )));
        };
        let command = pb::node_command::Command::HangUp(pb::HangUpCall {
            call_id: r.call_id,
            reason: if r.reason.is_empty() {
                "hung up through CallControl".into()
            } else {
                r.reason
            },
        });
        self.core
            .nodes
            .command(&node, command, COMMAND_TIMEOUT)
            .await
            .map_err(command_status)?;
        Ok(Response::new(pb::HangUpResponse {}))
    }

    async fn list_active_calls(
        &self,
        req: Request<pb::ListActiveCallsRequest>,
    ) -> Result<Response<pb::ListActiveCallsResponse>, Status> {
        let r = req.into_inner();
        let calls = self
            .core
            .nodes
            .active_calls()
            .into_iter()
            .filter(|c| r.agent.is_empty() || c.agents.contains(&r.agent))
            .filter(|c| r.number.is_empty() || c.number == r.number || c.caller == r.number)
            .collect();
        Ok(Response::new(pb::ListActiveCallsResponse { calls }))
    }
}

/// A callback id that is unique enough across restarts: time and client mixed, in hex.
fn uuid_like(nanos: i128, to: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    to.hash(&mut h);
    nanos.hash(&mut h);
    fastrand::u64(..).hash(&mut h);
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_check() {
        assert!(is_e164("+380501234567"));
        assert!(!is_e164("380501234567"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+12"));
        assert!(!is_e164("+38050abc4567"));
    }
}
