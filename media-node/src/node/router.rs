//! Talking to the router without ever blocking the actor.
//!
//! Questions (PlanCall, ReserveAgents, queue calls and callbacks, owner lookups) each run in
//! a task of their own with a deadline; the answer comes back to the actor as
//! [`Input::Router`] tagged with the call and the call's *stage generation*, so an answer
//! that arrives after the call moved on is recognised as stale. Reports (leg events,
//! releases, queue leaves, registrations) go through one ordered queue: the router must see a leg's
//! created → alerting → answered → ended in that order.

use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::actor::Input;

/// A router answer for the actor.
#[derive(Debug)]
pub(super) struct Reply {
    /// The call it belongs to (empty for registrations).
    pub(super) call: String,
    /// The stage generation it was asked in.
    pub(super) generation: u64,
    /// The answer, or why there is none ("timeout", the gRPC status…).
    pub(super) body: ReplyBody,
}

/// The answers the actor waits for.
#[derive(Debug)]
pub(super) enum ReplyBody {
    Plan(Box<Result<pb::PlanCallResponse, String>>),
    Reserved(Result<pb::ReserveAgentsResponse, String>),
    QueueJoined(Result<pb::QueueJoinResponse, String>),
    QueueNext(Result<pb::QueueNextAgentResponse, String>),
    Owner(Result<pb::OwnerResponse, String>),
    Callback(Result<pb::QueueRequestCallbackResponse, String>),
}

/// Reports sent in order, fire and forget (failures are logged: presence heals from the
/// reservation's hold time and the next registration).
#[derive(Debug)]
pub(super) enum Report {
    Leg(pb::LegEvent),
    Release(pb::ReleaseAgentsRequest),
    QueueLeave(pb::QueueLeaveRequest),
    Register(pb::RegisterContactRequest),
    Remove(pb::RemoveContactRequest),
}

/// The actor's handle on the router.
pub(super) struct RouterLink {
    client: RouterClient<Channel>,
    inbox: mpsc::Sender<Input>,
    reports: mpsc::UnboundedSender<Report>,
    timeout: Duration,
}

fn status_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

impl RouterLink {
    pub(super) fn new(
        client: RouterClient<Channel>,
        inbox: mpsc::Sender<Input>,
        timeout: Duration,
    ) -> Self {
        let (reports, rx) = mpsc::unbounded_channel();
        tokio::spawn(report_worker(client.clone(), rx, timeout));
        RouterLink {
            client,
            inbox,
            reports,
            timeout,
        }
    }

    /// Runs one RPC in its own task and sends the answer back tagged.
    fn ask<T, F, Fut>(
        &self,
        call: &str,
        generation: u64,
        deadline: Duration,
        rpc: F,
        wrap: fn(Result<T, String>) -> ReplyBody,
    ) where
        T: Send + 'static,
        F: FnOnce(RouterClient<Channel>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send,
    {
        let client = self.client.clone();
        let inbox = self.inbox.clone();
        let call = call.to_owned();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(deadline, rpc(client)).await {
                Ok(Ok(r)) => Ok(r.into_inner()),
                Ok(Err(s)) => Err(status_text(&s)),
                Err(_) => Err(format!("timeout after {deadline:?}")),
            };
            let reply = Reply {
                call,
                generation,
                body: wrap(result),
            };
            let _ = inbox.send(Input::Router(Box::new(reply))).await;
        });
    }

    pub(super) fn plan(&self, call: &str, req: pb::PlanCallRequest, deadline: Duration) {
        self.ask(
            call,
            0,
            deadline,
            move |mut c| async move { c.plan_call(req).await },
            |r| ReplyBody::Plan(Box::new(r)),
        );
    }

    pub(super) fn reserve(&self, call: &str, generation: u64, req: pb::ReserveAgentsRequest) {
        self.ask(
            call,
            generation,
            self.timeout,
            move |mut c| async move { c.reserve_agents(req).await },
            ReplyBody::Reserved,
        );
    }

    pub(super) fn queue_join(&self, call: &str, generation: u64, req: pb::QueueJoinRequest) {
        self.ask(
            call,
            generation,
            self.timeout,
            move |mut c| async move { c.queue_join(req).await },
            ReplyBody::QueueJoined,
        );
    }

    pub(super) fn queue_next(&self, call: &str, generation: u64, req: pb::QueueNextAgentRequest) {
        self.ask(
            call,
            generation,
            self.timeout,
            move |mut c| async move { c.queue_next_agent(req).await },
            ReplyBody::QueueNext,
        );
    }

    pub(super) fn queue_callback(
        &self,
        call: &str,
        generation: u64,
        req: pb::QueueRequestCallbackRequest,
    ) {
        self.ask(
            call,
            generation,
            self.timeout,
            move |mut c| async move { c.queue_request_callback(req).await },
            ReplyBody::Callback,
        );
    }

    pub(super) fn owner(
        &self,
        call: &str,
        generation: u64,
        req: pb::GetOwnerRequest,
        deadline: Duration,
    ) {
        self.ask(
            call,
            generation,
            deadline,
            move |mut c| async move { c.get_owner(req).await },
            ReplyBody::Owner,
        );
    }

    /// Queues an ordered report.
    pub(super) fn report(&self, report: Report) {
        if self.reports.send(report).is_err() {
            tracing::warn!("router report dropped: the report worker is gone");
        }
    }
}

async fn report_worker(
    mut client: RouterClient<Channel>,
    mut rx: mpsc::UnboundedReceiver<Report>,
    timeout: Duration,
) {
    while let Some(report) = rx.recv().await {
        let (what, result) = match report {
            Report::Leg(ev) => (
                "ReportLegEvent",
                tokio::time::timeout(timeout, client.report_leg_event(ev))
                    .await
                    .map(|r| r.map(|_| ())),
            ),
            Report::Release(req) => (
                "ReleaseAgents",
                tokio::time::timeout(timeout, client.release_agents(req))
                    .await
                    .map(|r| r.map(|_| ())),
            ),
            Report::Register(req) => (
                "RegisterContact",
                tokio::time::timeout(timeout, client.register_contact(req))
                    .await
                    .map(|r| r.map(|_| ())),
            ),
            Report::Remove(req) => (
                "RemoveContact",
                tokio::time::timeout(timeout, client.remove_contact(req))
                    .await
                    .map(|r| r.map(|_| ())),
            ),
            Report::QueueLeave(req) => (
                "QueueLeave",
                tokio::time::timeout(timeout, client.queue_leave(req))
                    .await
                    .map(|r| r.map(|_| ())),
            ),
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(s)) => {
                tracing::warn!(rpc = what, status = %status_text(&s), "router report failed")
            }
            Err(_) => tracing::warn!(rpc = what, "router report timed out"),
        }
    }
}
