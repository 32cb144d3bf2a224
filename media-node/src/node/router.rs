//! Talking to the router without ever blocking the actor.
//!
//! Questions (PlanCall, ReserveAgents, queue calls and callbacks, owner lookups) each run in
//! a task of their own with a deadline; the answer comes back to the actor as
//! [`Input::Router`] tagged with the call and the call's *stage generation*, so an answer
//! that arrives after the call moved on is recognised as stale. Reports (leg events,
//! releases, queue leaves, registrations and contacts syncs) go through one ordered queue: the router must see a leg's
//! created → alerting → answered → ended in that order.
//!
//! Every request of a call carries the call's trace context (its `sip.invite` span, noted
//! when the plan is asked for) as W3C `traceparent` metadata, so the router's spans join the
//! call's trace whichever span the actor happens to be in when it reports a leg.

use dialtone_proto::internal::InternalChannel;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use tokio::sync::mpsc;

use super::actor::Input;
use super::node_link::{FIRST_BACKOFF, MAX_BACKOFF};
use super::trace;

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
    Outbound(Result<pb::PlanOutboundResponse, String>),
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
    /// Every binding the node holds; retried (see [`sync_contacts`]) rather than dropped,
    /// since nothing else would tell a restarted router about quiet softphones.
    Sync {
        generation: u64,
        request: pb::SyncContactsRequest,
    },
}

/// The actor's handle on the router.
pub(super) struct RouterLink {
    client: RouterClient<InternalChannel>,
    inbox: mpsc::Sender<Input>,
    reports: mpsc::UnboundedSender<(Report, opentelemetry::Context)>,
    timeout: Duration,
    traces: Mutex<CallTraces>,
    /// The generation of the latest contacts sync queued: an older one still being retried
    /// gives way to it.
    latest_sync: Arc<AtomicU64>,
}

/// How many calls' trace contexts are kept: far more than a node's concurrent calls, so a
/// call's context is forgotten only long after it ended.
const TRACED_CALLS: usize = 16_384;

/// The trace context of each recent call, by call id, oldest forgotten first.
#[derive(Default)]
struct CallTraces {
    by_call: HashMap<String, opentelemetry::Context>,
    order: VecDeque<String>,
}

impl CallTraces {
    fn note(&mut self, call: &str, cx: opentelemetry::Context) {
        if self.by_call.insert(call.to_owned(), cx).is_none() {
            self.order.push_back(call.to_owned());
        }
        while self.order.len() > TRACED_CALLS {
            if let Some(old) = self.order.pop_front() {
                self.by_call.remove(&old);
            }
        }
    }
}

fn status_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

impl RouterLink {
    pub(super) fn new(
        client: RouterClient<InternalChannel>,
        inbox: mpsc::Sender<Input>,
        timeout: Duration,
    ) -> Self {
        let (reports, rx) = mpsc::unbounded_channel();
        let latest_sync = Arc::new(AtomicU64::new(0));
        tokio::spawn(report_worker(
            client.clone(),
            rx,
            timeout,
            Arc::clone(&latest_sync),
        ));
        RouterLink {
            client,
            inbox,
            reports,
            timeout,
            traces: Mutex::new(CallTraces::default()),
            latest_sync,
        }
    }

    /// The trace context of `call`: the one noted when its plan was asked for, else the
    /// current span's.
    fn trace_of(&self, call: &str) -> opentelemetry::Context {
        let traces = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
        traces
            .by_call
            .get(call)
            .cloned()
            .unwrap_or_else(trace::current)
    }

    /// Runs one RPC in its own task and sends the answer back tagged. The request carries
    /// the call's trace context.
    fn ask<M, T, F, Fut>(
        &self,
        call: &str,
        generation: u64,
        deadline: Duration,
        message: M,
        rpc: F,
        wrap: fn(Result<T, String>) -> ReplyBody,
    ) where
        T: Send + 'static,
        M: Send + 'static,
        F: FnOnce(RouterClient<InternalChannel>, tonic::Request<M>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send,
    {
        let client = self.client.clone();
        let inbox = self.inbox.clone();
        let call = call.to_owned();
        let request = trace::request(&self.trace_of(&call), message);
        tokio::spawn(async move {
            let result = match tokio::time::timeout(deadline, rpc(client, request)).await {
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

    /// Asks for the plan of a new call; the current span (the call's `sip.invite`) becomes
    /// the trace every later request of the call carries.
    pub(super) fn plan(&self, call: &str, req: pb::PlanCallRequest, deadline: Duration) {
        self.traces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(call, trace::current());
        self.ask(
            call,
            0,
            deadline,
            req,
            |mut c, r| async move { c.plan_call(r).await },
            |r| ReplyBody::Plan(Box::new(r)),
        );
    }

    /// Asks how an agent's call out may go; like [`RouterLink::plan`], the current span (the
    /// call's `sip.agent_dial`) becomes the call's trace.
    pub(super) fn plan_outbound(
        &self,
        call: &str,
        req: pb::PlanOutboundRequest,
        deadline: Duration,
    ) {
        self.traces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(call, trace::current());
        self.ask(
            call,
            0,
            deadline,
            req,
            |mut c, r| async move { c.plan_outbound(r).await },
            ReplyBody::Outbound,
        );
    }

    pub(super) fn reserve(&self, call: &str, generation: u64, req: pb::ReserveAgentsRequest) {
        self.ask(
            call,
            generation,
            self.timeout,
            req,
            |mut c, r| async move { c.reserve_agents(r).await },
            ReplyBody::Reserved,
        );
    }

    pub(super) fn queue_join(&self, call: &str, generation: u64, req: pb::QueueJoinRequest) {
        self.ask(
            call,
            generation,
            self.timeout,
            req,
            |mut c, r| async move { c.queue_join(r).await },
            ReplyBody::QueueJoined,
        );
    }

    pub(super) fn queue_next(&self, call: &str, generation: u64, req: pb::QueueNextAgentRequest) {
        self.ask(
            call,
            generation,
            self.timeout,
            req,
            |mut c, r| async move { c.queue_next_agent(r).await },
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
            req,
            |mut c, r| async move { c.queue_request_callback(r).await },
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
            req,
            |mut c, r| async move { c.get_owner(r).await },
            ReplyBody::Owner,
        );
    }

    /// Queues an ordered report.
    pub(super) fn report(&self, report: Report) {
        let cx = match &report {
            Report::Leg(ev) => self.trace_of(&ev.call_id),
            Report::Release(req) => self.trace_of(&req.call_id),
            Report::QueueLeave(req) => self.trace_of(&req.call_id),
            Report::Register(_) | Report::Remove(_) | Report::Sync { .. } => trace::current(),
        };
        if self.reports.send((report, cx)).is_err() {
            tracing::warn!("router report dropped: the report worker is gone");
        }
    }

    /// Queues the list of every binding the node holds, in order with the other reports.
    pub(super) fn sync(&self, request: pb::SyncContactsRequest) {
        let generation = self.latest_sync.fetch_add(1, Ordering::AcqRel) + 1;
        self.report(Report::Sync {
            generation,
            request,
        });
    }
}

/// Sends one contacts sync, retrying with the node session's backoff until the router takes
/// it, a newer sync is queued (it tells the same story, more recently) or the node stops.
/// The reports queued behind it wait meanwhile: they amend this list, so they must reach the
/// router after it.
async fn sync_contacts(
    client: &mut RouterClient<InternalChannel>,
    rx: &mpsc::UnboundedReceiver<(Report, opentelemetry::Context)>,
    latest: &AtomicU64,
    generation: u64,
    request: pb::SyncContactsRequest,
    cx: &opentelemetry::Context,
    timeout: Duration,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let call = client.sync_contacts(trace::request(cx, request.clone()));
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(_)) => {
                tracing::info!(
                    contacts = request.contacts.len(),
                    "contacts synced with the router"
                );
                return;
            }
            // A router that cannot take it (older, or refusing the list) would refuse it
            // again: the reports behind must not wait for ever.
            Ok(Err(s))
                if matches!(
                    s.code(),
                    tonic::Code::Unimplemented | tonic::Code::InvalidArgument
                ) =>
            {
                tracing::warn!(status = %status_text(&s), "contacts sync refused");
                return;
            }
            Ok(Err(s)) => {
                tracing::warn!(status = %status_text(&s), "contacts sync failed; retrying")
            }
            Err(_) => tracing::warn!("contacts sync timed out; retrying"),
        }
        tokio::time::sleep(backoff).await;
        if latest.load(Ordering::Acquire) != generation || rx.is_closed() {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn report_worker(
    mut client: RouterClient<InternalChannel>,
    mut rx: mpsc::UnboundedReceiver<(Report, opentelemetry::Context)>,
    timeout: Duration,
    latest_sync: Arc<AtomicU64>,
) {
    while let Some((report, cx)) = rx.recv().await {
        let (what, result) = match report {
            Report::Sync {
                generation,
                request,
            } => {
                let latest = &latest_sync;
                sync_contacts(&mut client, &rx, latest, generation, request, &cx, timeout).await;
                continue;
            }
            Report::Leg(ev) => (
                "ReportLegEvent",
                tokio::time::timeout(timeout, client.report_leg_event(trace::request(&cx, ev)))
                    .await
                    .map(|r| r.map(|_| ())),
            ),
            Report::Release(req) => (
                "ReleaseAgents",
                tokio::time::timeout(timeout, client.release_agents(trace::request(&cx, req)))
                    .await
                    .map(|r| r.map(|_| ())),
            ),
            Report::Register(req) => (
                "RegisterContact",
                tokio::time::timeout(timeout, client.register_contact(trace::request(&cx, req)))
                    .await
                    .map(|r| r.map(|_| ())),
            ),
            Report::Remove(req) => (
                "RemoveContact",
                tokio::time::timeout(timeout, client.remove_contact(trace::request(&cx, req)))
                    .await
                    .map(|r| r.map(|_| ())),
            ),
            Report::QueueLeave(req) => (
                "QueueLeave",
                tokio::time::timeout(timeout, client.queue_leave(trace::request(&cx, req)))
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
