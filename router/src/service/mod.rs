//! The gRPC edge of the router: `dialtone.v1.Router` over the sans-IO cores.
//!
//! One `std::sync::Mutex` guards presence, queues and owners together: every RPC is a short
//! critical section with no `.await` inside, which is what makes "no agent is ever offered more
//! calls than `maxConcurrentCalls`, even when several media nodes ask at the same moment" hold
//! by construction. Time comes from an injectable [`Clock`]; time-driven changes (registration
//! expiry, wrap-up ends, lapsed reservations) are applied by [`RouterCore::run_timers`].

mod call_control;
pub mod convert;
mod core;
mod nodes;
mod outbound;
mod queue_callbacks;
mod trace;

use crate::owner::OwnerLookupError;
use crate::plan::{self};
use crate::presence::{self, ContactAddr, Manual};
use crate::queues::Offer;
use convert::{from_ts, secs, ts};
use dialtone_proto::v1 as pb;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub use self::call_control::CallControlService;
pub use self::core::{Clock, RouterCore, SystemClock};
use self::core::{
    Owner, instant, owner_response, presence_status, queue_status_err, required, target_now,
};
pub use self::nodes::{CommandError, NodeRegistry};

/// `dialtone.v1.Router` served over a [`RouterCore`].
#[derive(Debug, Clone)]
pub struct RouterService {
    core: Arc<RouterCore>,
}

impl RouterService {
    /// The service over a core.
    pub fn new(core: Arc<RouterCore>) -> Self {
        Self { core }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> pb::router_server::RouterServer<Self> {
        pb::router_server::RouterServer::new(self)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::router_server::Router for RouterService {
    async fn plan_call(
        &self,
        req: Request<pb::PlanCallRequest>,
    ) -> Result<Response<pb::PlanCallResponse>, Status> {
        let span = tracing::info_span!("router.plan", call_id = %req.get_ref().call_id, number = %req.get_ref().number);
        let _guard = trace::follow(req.metadata(), span).entered();
        let r = req.into_inner();
        required("number", &r.number)?;
        let at = instant(r.at.as_ref(), "at")?;
        let caller = (!r.caller.is_empty()).then_some(r.caller);
        if let Some(client) = &caller {
            self.core.note_dialled(client, &r.number);
        }
        let (outcome, generation) = self.core.plan(&r.number, caller, at);
        Ok(Response::new(convert::plan_response(
            &outcome,
            &generation.to_string(),
        )))
    }

    async fn plan_outbound(
        &self,
        req: Request<pb::PlanOutboundRequest>,
    ) -> Result<Response<pb::PlanOutboundResponse>, Status> {
        let span = tracing::info_span!("router.plan_outbound", call_id = %req.get_ref().call_id, agent = %req.get_ref().agent);
        let _guard = trace::follow(req.metadata(), span).entered();
        outbound::plan_outbound(&self.core, req.into_inner()).map(Response::new)
    }

    async fn explain_route(
        &self,
        req: Request<pb::ExplainRouteRequest>,
    ) -> Result<Response<pb::ExplainRouteResponse>, Status> {
        let r = req.into_inner();
        required("number", &r.number)?;
        let at = instant(r.at.as_ref(), "at")?.unwrap_or_else(|| self.core.clock.now());
        let caller = (!r.caller.is_empty()).then_some(r.caller);
        let (outcome, generation) = self.core.plan(&r.number, caller, Some(at));
        Ok(Response::new(pb::ExplainRouteResponse {
            result: Some(convert::plan_response(&outcome, &generation.to_string())),
            at: Some(ts(at)),
            notes: plan::explain(&outcome).lines().map(str::to_owned).collect(),
        }))
    }

    async fn reserve_agents(
        &self,
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
        let mut st = self.core.lock();
        let now = self.core.clock.now();
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
        self.core.publish(&mut st, now);
        Ok(Response::new(out))
    }

    async fn release_agents(
        &self,
        req: Request<pb::ReleaseAgentsRequest>,
    ) -> Result<Response<pb::ReleaseAgentsResponse>, Status> {
        let r = req.into_inner();
        let mut st = self.core.lock();
        let now = self.core.clock.now();
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
        self.core.publish(&mut st, now);
        Ok(Response::new(pb::ReleaseAgentsResponse {}))
    }

    async fn report_leg_event(
        &self,
        req: Request<pb::LegEvent>,
    ) -> Result<Response<pb::ReportLegEventResponse>, Status> {
        let span = tracing::info_span!("router.leg_event", call_id = %req.get_ref().call_id);
        let _guard = trace::follow(req.metadata(), span).entered();
        let r = req.into_inner();
        required("call_id", &r.call_id)?;
        required("agent", &r.agent)?;
        let kind = pb::LegEventKind::try_from(r.kind)
            .map_err(|_| Status::invalid_argument("unknown leg event kind"))?;
        let mut st = self.core.lock();
        let now = instant(r.at.as_ref(), "at")?.unwrap_or_else(|| self.core.clock.now());
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
                    self.core.publish_queue(&mut st, &r.queue, now);
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
        self.core.publish(&mut st, now);
        Ok(Response::new(pb::ReportLegEventResponse {}))
    }

    async fn report_agent_event(
        &self,
        req: Request<pb::AgentEvent>,
    ) -> Result<Response<pb::ReportAgentEventResponse>, Status> {
        let r = req.into_inner();
        required("agent", &r.agent)?;
        let kind = pb::AgentEventKind::try_from(r.kind)
            .map_err(|_| Status::invalid_argument("unknown agent event kind"))?;
        let mut st = self.core.lock();
        let now = instant(r.at.as_ref(), "at")?.unwrap_or_else(|| self.core.clock.now());
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
        self.core.publish(&mut st, now);
        Ok(Response::new(pb::ReportAgentEventResponse {}))
    }

    async fn register_contact(
        &self,
        req: Request<pb::RegisterContactRequest>,
    ) -> Result<Response<pb::RegisterContactResponse>, Status> {
        let r = req.into_inner();
        let agent = if r.agent.is_empty() { &r.aor } else { &r.agent };
        required("agent", agent)?;
        required("uri", &r.uri)?;
        let expires = r.expires.as_ref().map_or(3600, convert::to_secs);
        let mut st = self.core.lock();
        let now = self.core.clock.now();
        let contacts = st
            .presence
            .register_via(
                agent,
                ContactAddr {
                    uri: r.uri.clone(),
                    source: r.source.clone(),
                },
                expires,
                &r.node_id,
                &r.node_address,
                now,
            )
            .map_err(presence_status)?;
        self.core.publish(&mut st, now);
        Ok(Response::new(pb::RegisterContactResponse {
            contacts: contacts.iter().map(convert::contact).collect(),
        }))
    }

    async fn remove_contact(
        &self,
        req: Request<pb::RemoveContactRequest>,
    ) -> Result<Response<pb::RemoveContactResponse>, Status> {
        let r = req.into_inner();
        required("aor", &r.aor)?;
        let mut st = self.core.lock();
        let now = self.core.clock.now();
        let contacts = if r.uri.is_empty() {
            st.presence
                .unregister_all(&r.aor, now)
                .map_err(presence_status)?;
            Vec::new()
        } else {
            st.presence
                .unregister(&r.aor, &r.uri, now)
                .map_err(presence_status)?
        };
        self.core.publish(&mut st, now);
        Ok(Response::new(pb::RemoveContactResponse {
            contacts: contacts.iter().map(convert::contact).collect(),
        }))
    }

    async fn lookup_contacts(
        &self,
        req: Request<pb::LookupContactsRequest>,
    ) -> Result<Response<pb::LookupContactsResponse>, Status> {
        let r = req.into_inner();
        let agent = if r.agent.is_empty() { &r.aor } else { &r.agent };
        required("agent", agent)?;
        let st = self.core.lock();
        let contacts = st
            .presence
            .contacts(agent, self.core.clock.now())
            .map_err(presence_status)?;
        Ok(Response::new(pb::LookupContactsResponse {
            contacts: contacts.iter().map(convert::contact).collect(),
        }))
    }

    async fn sync_contacts(
        &self,
        req: Request<pb::SyncContactsRequest>,
    ) -> Result<Response<pb::SyncContactsResponse>, Status> {
        let r = req.into_inner();
        required("node_id", &r.node_id)?;
        let mut st = self.core.lock();
        let now = self.core.clock.now();
        let live: Vec<(&str, &pb::Contact, u32)> = r
            .contacts
            .iter()
            .filter_map(|c| {
                let agent = if c.agent.is_empty() { &c.aor } else { &c.agent };
                let expires = c
                    .expires_at
                    .as_ref()
                    .and_then(from_ts)
                    .map(|t| t.duration_since(now).as_secs())
                    .unwrap_or(0);
                let expires = u32::try_from(expires).ok().filter(|e| *e > 0)?;
                Some((agent.as_str(), c, expires))
            })
            .collect();
        // The node lists everything it holds: what the router has for it beyond that lapsed
        // or was removed while the two were apart (the file restored at start included).
        let kept = live.iter().map(|(a, c, _)| (*a, c.uri.as_str())).collect();
        st.presence.retain_node_contacts(&r.node_id, &kept, now);
        for (agent, c, expires) in live {
            if let Err(e) = st.presence.register_via(
                agent,
                ContactAddr {
                    uri: c.uri.clone(),
                    source: c.source.clone(),
                },
                expires,
                &r.node_id,
                &c.node_address,
                now,
            ) {
                tracing::warn!(node = %r.node_id, error = %e, "contact from a node ignored");
            }
        }
        self.core.publish(&mut st, now);
        Ok(Response::new(pb::SyncContactsResponse {}))
    }

    async fn set_agent_state(
        &self,
        req: Request<pb::SetAgentStateRequest>,
    ) -> Result<Response<pb::AgentPresence>, Status> {
        let r = req.into_inner();
        required("agent", &r.agent)?;
        let manual = match pb::AgentState::try_from(r.state) {
            Ok(pb::AgentState::Available) => Manual::Available,
            Ok(pb::AgentState::Dnd) => Manual::Dnd,
            Ok(pb::AgentState::Away) => Manual::Away(if r.away_label.is_empty() {
                "away".to_owned()
            } else {
                r.away_label.clone()
            }),
            Ok(pb::AgentState::Offline) => Manual::Offline,
            _ => {
                return Err(Status::invalid_argument(
                    "state must be available, dnd, away or offline; ringing, on_call and \
                     wrap_up follow from calls",
                ));
            }
        };
        self.core.set_state(&r.agent, manual)?;
        tracing::info!(agent = %r.agent, by = %r.set_by, state = r.state, "agent state set");
        let board = self.core.live_board(false);
        board
            .agents
            .into_iter()
            .find(|a| a.agent == r.agent)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no Agent named {:?}", r.agent)))
    }

    async fn get_live_board(
        &self,
        req: Request<pb::GetLiveBoardRequest>,
    ) -> Result<Response<pb::LiveBoard>, Status> {
        Ok(Response::new(
            self.core.live_board(!req.into_inner().omit_contacts),
        ))
    }

    type WatchPresenceStream = BoxStream<pb::PresenceUpdate>;

    async fn watch_presence(
        &self,
        req: Request<pb::WatchPresenceRequest>,
    ) -> Result<Response<Self::WatchPresenceStream>, Status> {
        let with_contacts = !req.into_inner().omit_contacts;
        let core = self.core.clone();
        let mut rx = core.subscribe();
        let (tx, out) = mpsc::channel::<Result<pb::PresenceUpdate, Status>>(64);
        tokio::spawn(async move {
            let first = pb::PresenceUpdate {
                at: Some(ts(core.clock.now())),
                revision: 0,
                update: Some(pb::presence_update::Update::Snapshot(
                    core.live_board(with_contacts),
                )),
            };
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            loop {
                let next = match rx.recv().await {
                    Ok(update) => update,
                    // Fell behind: start over from a fresh snapshot rather than miss changes.
                    Err(broadcast::error::RecvError::Lagged(_)) => pb::PresenceUpdate {
                        at: Some(ts(core.clock.now())),
                        revision: 0,
                        update: Some(pb::presence_update::Update::Snapshot(
                            core.live_board(with_contacts),
                        )),
                    },
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Ok(next)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn queue_join(
        &self,
        req: Request<pb::QueueJoinRequest>,
    ) -> Result<Response<pb::QueueJoinResponse>, Status> {
        let span = tracing::info_span!("router.queue_join", call_id = %req.get_ref().call_id);
        let _guard = trace::follow(req.metadata(), span).entered();
        let r = req.into_inner();
        required("call_id", &r.call_id)?;
        required("queue", &r.queue)?;
        let mut st = self.core.lock();
        let now = self.core.clock.now();
        let place = st
            .queues
            .join(&r.queue, &r.call_id, &r.caller, now)
            .map_err(queue_status_err)?;
        self.core.publish_queue(&mut st, &r.queue, now);
        Ok(Response::new(pb::QueueJoinResponse {
            position: place.position,
            waiting: place.waiting,
            joined_at: Some(ts(place.joined_at)),
        }))
    }

    async fn queue_leave(
        &self,
        req: Request<pb::QueueLeaveRequest>,
    ) -> Result<Response<pb::QueueLeaveResponse>, Status> {
        let r = req.into_inner();
        let mut st = self.core.lock();
        let now = self.core.clock.now();
        if let Some(queue) = st.queues.leave(&r.call_id) {
            self.core.publish_queue(&mut st, &queue, now);
        }
        Ok(Response::new(pb::QueueLeaveResponse {}))
    }

    async fn queue_next_agent(
        &self,
        req: Request<pb::QueueNextAgentRequest>,
    ) -> Result<Response<pb::QueueNextAgentResponse>, Status> {
        let span = tracing::info_span!("router.queue_next", call_id = %req.get_ref().call_id);
        let _guard = trace::follow(req.metadata(), span).entered();
        let r = req.into_inner();
        required("call_id", &r.call_id)?;
        required("queue", &r.queue)?;
        let mut guard = self.core.lock();
        let st = &mut *guard;
        let now = self.core.clock.now();
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
        self.core.publish(st, now);
        self.core.publish_queue(st, &r.queue, now);
        Ok(Response::new(pb::QueueNextAgentResponse {
            outcome: Some(outcome),
        }))
    }

    async fn queue_position(
        &self,
        req: Request<pb::QueuePositionRequest>,
    ) -> Result<Response<pb::QueuePositionResponse>, Status> {
        let r = req.into_inner();
        let st = self.core.lock();
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

    async fn queue_request_callback(
        &self,
        req: Request<pb::QueueRequestCallbackRequest>,
    ) -> Result<Response<pb::QueueRequestCallbackResponse>, Status> {
        let r = req.into_inner();
        required("call_id", &r.call_id)?;
        let mut st = self.core.lock();
        let now = self.core.clock.now();
        let place = st
            .queues
            .request_callback(&r.call_id)
            .map_err(queue_status_err)?;
        self.core.publish_queue(&mut st, &place.queue, now);
        Ok(Response::new(pb::QueueRequestCallbackResponse {
            callback_id: format!("cb-{}", r.call_id),
            position: place.position,
        }))
    }

    async fn set_owner(
        &self,
        req: Request<pb::SetOwnerRequest>,
    ) -> Result<Response<pb::OwnerResponse>, Status> {
        let r = req.into_inner();
        required("client", &r.client)?;
        let client = plan::normalize_number(&r.client);
        let mut st = self.core.lock();
        let now = self.core.clock.now();
        if r.agent.is_empty() {
            st.owners.remove(&client);
            self.core.touch();
            return Ok(Response::new(pb::OwnerResponse {
                client,
                outcome: pb::OwnerLookupOutcome::NotFound as i32,
                ..Default::default()
            }));
        }
        if !st.applied.agents.contains_key(&r.agent) {
            return Err(Status::not_found(format!("no Agent named {:?}", r.agent)));
        }
        let owner = Owner {
            agent: r.agent.clone(),
            source: if r.set_by.is_empty() {
                "api".to_owned()
            } else {
                format!("api:{}", r.set_by)
            },
            set_at: now,
        };
        st.owners.insert(client.clone(), owner.clone());
        self.core.touch();
        Ok(Response::new(owner_response(&mut st, &client, &owner, now)))
    }

    async fn get_owner(
        &self,
        req: Request<pb::GetOwnerRequest>,
    ) -> Result<Response<pb::OwnerResponse>, Status> {
        let r = req.into_inner();
        required("client", &r.client)?;
        let client = plan::normalize_number(&r.client);
        // Stored owners answer at once; the CRM is asked only when none is stored.
        let (webhook, key) = {
            let mut st = self.core.lock();
            let now = self.core.clock.now();
            if let Some(owner) = st.owners.get(&client).cloned() {
                return Ok(Response::new(owner_response(&mut st, &client, &owner, now)));
            }
            if r.webhook.is_empty() {
                return Ok(Response::new(pb::OwnerResponse {
                    client,
                    outcome: pb::OwnerLookupOutcome::NotFound as i32,
                    ..Default::default()
                }));
            }
            let cc = &st.applied.call_center;
            let hook = cc
                .spec
                .webhooks
                .iter()
                .find(|w| w.name == r.webhook)
                .ok_or_else(|| Status::not_found(format!("no webhook named {:?}", r.webhook)))?;
            (hook.url.clone(), cc.webhook_keys.get(&r.webhook).cloned())
        };
        let timeout = r
            .timeout
            .as_ref()
            .and_then(|d| Duration::try_from(*d).ok())
            .unwrap_or(Duration::from_millis(800));
        let span =
            tracing::info_span!("router.owner_lookup", call_id = %r.call_id, webhook = %r.webhook);
        let _guard = span.enter();
        let looked_up = tokio::time::timeout(
            timeout,
            self.core
                .owner_source
                .lookup(&webhook, key.as_deref(), &client, &r.call_id),
        )
        .await;
        let outcome = match looked_up {
            Err(_) => Err(OwnerLookupError::Timeout),
            Ok(result) => result,
        };
        let mut st = self.core.lock();
        let now = self.core.clock.now();
        Ok(Response::new(match outcome {
            Ok(Some(agent)) if st.applied.agents.contains_key(&agent) => {
                let owner = Owner {
                    agent,
                    source: format!("webhook:{}", r.webhook),
                    set_at: now,
                };
                owner_response(&mut st, &client, &owner, now)
            }
            Ok(Some(unknown)) => {
                tracing::warn!(agent = %unknown, "the CRM named an owner who is not an Agent");
                pb::OwnerResponse {
                    client,
                    outcome: pb::OwnerLookupOutcome::NotFound as i32,
                    ..Default::default()
                }
            }
            Ok(None) => pb::OwnerResponse {
                client,
                outcome: pb::OwnerLookupOutcome::NotFound as i32,
                ..Default::default()
            },
            Err(e) => {
                let outcome = match e {
                    OwnerLookupError::Timeout => pb::OwnerLookupOutcome::Timeout,
                    _ => pb::OwnerLookupOutcome::Error,
                };
                tracing::warn!(error = %e, "owner lookup failed; the call moves on");
                pb::OwnerResponse {
                    client,
                    outcome: outcome as i32,
                    ..Default::default()
                }
            }
        }))
    }

    type NodeSessionStream = BoxStream<pb::NodeCommand>;

    async fn node_session(
        &self,
        req: Request<tonic::Streaming<pb::NodeMessage>>,
    ) -> Result<Response<Self::NodeSessionStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, out) = mpsc::channel::<Result<pb::NodeCommand, Status>>(16);
        let core = self.core.clone();
        tokio::spawn(async move {
            let mut session = None;
            while let Ok(Some(msg)) = inbound.message().await {
                match msg.body {
                    Some(pb::node_message::Body::Hello(h)) => {
                        tracing::info!(node = %h.node_id, address = %h.sip_address, "media node connected");
                        let id = core.nodes.connect(&h, tx.clone());
                        session = Some((h.node_id, id));
                    }
                    Some(pb::node_message::Body::Status(s)) => {
                        if let Some((node, id)) = &session {
                            core.nodes.status(node, *id, s);
                        }
                    }
                    Some(pb::node_message::Body::Result(r)) => core.nodes.result(r),
                    None => {}
                }
            }
            if let Some((node, id)) = session {
                core.nodes.disconnect(&node, id);
                tracing::info!(node = %node, "media node disconnected");
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}
