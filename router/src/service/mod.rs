//! The gRPC edge of the router: `dialtone.v1.Router` over the sans-IO cores.
//!
//! One `std::sync::Mutex` guards presence, queues and owners together: every RPC is a short
//! critical section with no `.await` inside, which is what makes "no agent is ever offered more
//! calls than `maxConcurrentCalls`, even when several media nodes ask at the same moment" hold
//! by construction. Time comes from an injectable [`Clock`]; time-driven changes (registration
//! expiry, wrap-up ends, lapsed reservations) are applied by [`RouterCore::run_timers`].

mod agents;
mod call_control;
mod calls;
pub mod convert;
mod core;
mod nodes;
mod outbound;
mod owners;
mod queue_callbacks;
mod queues;
mod trace;

use dialtone_proto::v1 as pb;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub use self::call_control::CallControlService;
pub use self::core::{Clock, RouterCore, SystemClock};
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

// Each method hands its request to the file of its concern: planning and legs (`calls`),
// contacts, states and the board (`agents`), queues (`queues`), owners (`owners`) and the
// media nodes' session (`nodes`).
#[tonic::async_trait]
impl pb::router_server::Router for RouterService {
    async fn plan_call(
        &self,
        req: Request<pb::PlanCallRequest>,
    ) -> Result<Response<pb::PlanCallResponse>, Status> {
        calls::plan_call(&self.core, req)
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
        calls::explain_route(&self.core, req)
    }

    async fn reserve_agents(
        &self,
        req: Request<pb::ReserveAgentsRequest>,
    ) -> Result<Response<pb::ReserveAgentsResponse>, Status> {
        calls::reserve_agents(&self.core, req)
    }

    async fn release_agents(
        &self,
        req: Request<pb::ReleaseAgentsRequest>,
    ) -> Result<Response<pb::ReleaseAgentsResponse>, Status> {
        calls::release_agents(&self.core, req)
    }

    async fn report_leg_event(
        &self,
        req: Request<pb::LegEvent>,
    ) -> Result<Response<pb::ReportLegEventResponse>, Status> {
        calls::report_leg_event(&self.core, req)
    }

    async fn report_agent_event(
        &self,
        req: Request<pb::AgentEvent>,
    ) -> Result<Response<pb::ReportAgentEventResponse>, Status> {
        calls::report_agent_event(&self.core, req)
    }

    async fn register_contact(
        &self,
        req: Request<pb::RegisterContactRequest>,
    ) -> Result<Response<pb::RegisterContactResponse>, Status> {
        agents::register_contact(&self.core, req)
    }

    async fn remove_contact(
        &self,
        req: Request<pb::RemoveContactRequest>,
    ) -> Result<Response<pb::RemoveContactResponse>, Status> {
        agents::remove_contact(&self.core, req)
    }

    async fn lookup_contacts(
        &self,
        req: Request<pb::LookupContactsRequest>,
    ) -> Result<Response<pb::LookupContactsResponse>, Status> {
        agents::lookup_contacts(&self.core, req)
    }

    async fn sync_contacts(
        &self,
        req: Request<pb::SyncContactsRequest>,
    ) -> Result<Response<pb::SyncContactsResponse>, Status> {
        agents::sync_contacts(&self.core, req)
    }

    async fn set_agent_state(
        &self,
        req: Request<pb::SetAgentStateRequest>,
    ) -> Result<Response<pb::AgentPresence>, Status> {
        agents::set_agent_state(&self.core, req)
    }

    async fn get_live_board(
        &self,
        req: Request<pb::GetLiveBoardRequest>,
    ) -> Result<Response<pb::LiveBoard>, Status> {
        agents::get_live_board(&self.core, req)
    }

    type WatchPresenceStream = BoxStream<pb::PresenceUpdate>;

    async fn watch_presence(
        &self,
        req: Request<pb::WatchPresenceRequest>,
    ) -> Result<Response<Self::WatchPresenceStream>, Status> {
        agents::watch_presence(&self.core, req)
    }

    async fn queue_join(
        &self,
        req: Request<pb::QueueJoinRequest>,
    ) -> Result<Response<pb::QueueJoinResponse>, Status> {
        queues::queue_join(&self.core, req)
    }

    async fn queue_leave(
        &self,
        req: Request<pb::QueueLeaveRequest>,
    ) -> Result<Response<pb::QueueLeaveResponse>, Status> {
        queues::queue_leave(&self.core, req)
    }

    async fn queue_next_agent(
        &self,
        req: Request<pb::QueueNextAgentRequest>,
    ) -> Result<Response<pb::QueueNextAgentResponse>, Status> {
        queues::queue_next_agent(&self.core, req)
    }

    async fn queue_position(
        &self,
        req: Request<pb::QueuePositionRequest>,
    ) -> Result<Response<pb::QueuePositionResponse>, Status> {
        queues::queue_position(&self.core, req)
    }

    async fn queue_request_callback(
        &self,
        req: Request<pb::QueueRequestCallbackRequest>,
    ) -> Result<Response<pb::QueueRequestCallbackResponse>, Status> {
        queues::queue_request_callback(&self.core, req)
    }

    async fn set_owner(
        &self,
        req: Request<pb::SetOwnerRequest>,
    ) -> Result<Response<pb::OwnerResponse>, Status> {
        owners::set_owner(&self.core, req)
    }

    async fn get_owner(
        &self,
        req: Request<pb::GetOwnerRequest>,
    ) -> Result<Response<pb::OwnerResponse>, Status> {
        owners::get_owner(&self.core, req).await
    }

    type NodeSessionStream = BoxStream<pb::NodeCommand>;

    async fn node_session(
        &self,
        req: Request<tonic::Streaming<pb::NodeMessage>>,
    ) -> Result<Response<Self::NodeSessionStream>, Status> {
        nodes::node_session(&self.core, req)
    }
}
