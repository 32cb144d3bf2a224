//! The gRPC edge of the router: `dialtone.v1.Router` over the sans-IO cores.
//!
//! One `std::sync::Mutex` guards presence, queues and owners together: every RPC is a short
//! critical section with no `.await` inside, which is what makes "no agent is ever offered more
//! calls than `maxConcurrentCalls`, even when several media nodes ask at the same moment" hold
//! by construction. Time comes from an injectable [`Clock`]; time-driven changes (registration
//! expiry, wrap-up ends, lapsed reservations) are applied by [`RouterCore::run_timers`].

pub mod convert;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dialtone_model::Snapshot;
use dialtone_proto::v1 as pb;
use jiff::Timestamp;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::owner::{OwnerLookupError, OwnerSource};
use crate::persist;
use crate::plan::{self, AgentAvailability, PlanRequest};
use crate::presence::{self, AgentState, ContactAddr, LegToken, Manual, Presence, StateChange};
use crate::queues::{Offer, QueueEngine};
use convert::{from_ts, secs, ts};

/// Where the router gets the time; tests drive a manual clock.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A client's owner, as stored.
#[derive(Debug, Clone)]
struct Owner {
    agent: String,
    source: String,
    set_at: Timestamp,
}

/// Everything behind the one lock.
struct State {
    applied: Arc<Snapshot>,
    generation: u64,
    presence: Presence,
    queues: QueueEngine,
    rng: fastrand::Rng,
    revision: u64,
    owners: BTreeMap<String, Owner>,
    /// Reservations made through `ReserveAgents`, by (call, agent), until a leg event or
    /// `ReleaseAgents` consumes them.
    legs: BTreeMap<(String, String), LegToken>,
}

/// The router's shared state and logic; [`RouterService`] is its gRPC face.
pub struct RouterCore {
    snapshot: watch::Receiver<Arc<Snapshot>>,
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    updates: broadcast::Sender<pb::PresenceUpdate>,
    state_changes: Option<mpsc::UnboundedSender<StateChange>>,
    owner_source: Arc<dyn OwnerSource>,
    timer: Notify,
    /// Where agents' choices, registrations and owners are persisted, if anywhere.
    state_file: Option<std::path::PathBuf>,
    /// Signals the persister that something worth saving changed.
    dirty: Notify,
    /// Every agent's availability as of the last change, for plans: planning reads this
    /// instead of taking the lock, so plans never queue behind presence updates.
    view: std::sync::RwLock<Arc<AvailabilityView>>,
}

/// Agent name → availability, as of the last change.
type AvailabilityView = std::collections::HashMap<String, AgentAvailability>;

fn build_view(st: &State, now: Timestamp) -> AvailabilityView {
    st.presence
        .agent_names()
        .into_iter()
        .filter_map(|agent| {
            let (state, reachable) = st.presence.peek(&agent, now)?;
            let available = st.presence.availability(&agent, now).available;
            let av = AgentAvailability {
                state: plan_state(&state),
                reachable,
                available,
            };
            Some((agent, av))
        })
        .collect()
}

impl std::fmt::Debug for RouterCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterCore").finish_non_exhaustive()
    }
}

/// Capacity of the live-board broadcast; a watcher that falls further behind gets a fresh
/// snapshot instead of the missed changes.
const UPDATE_BUFFER: usize = 1024;

impl RouterCore {
    /// A router over a configuration that may change. `state_changes` receives every agent
    /// state change (for the reporter's "agents available per hour").
    pub fn new(
        snapshot: watch::Receiver<Arc<Snapshot>>,
        clock: Arc<dyn Clock>,
        owner_source: Arc<dyn OwnerSource>,
        state_changes: Option<mpsc::UnboundedSender<StateChange>>,
    ) -> Arc<Self> {
        Self::build(snapshot, clock, owner_source, state_changes, None)
    }

    /// Like [`RouterCore::new`], restoring agents' choices, registrations and owners from
    /// `state_file` (when it exists) and saving them there on every change; run
    /// [`RouterCore::run_persister`] to save.
    pub fn with_state_file(
        snapshot: watch::Receiver<Arc<Snapshot>>,
        clock: Arc<dyn Clock>,
        owner_source: Arc<dyn OwnerSource>,
        state_changes: Option<mpsc::UnboundedSender<StateChange>>,
        state_file: std::path::PathBuf,
    ) -> Arc<Self> {
        Self::build(
            snapshot,
            clock,
            owner_source,
            state_changes,
            Some(state_file),
        )
    }

    fn build(
        snapshot: watch::Receiver<Arc<Snapshot>>,
        clock: Arc<dyn Clock>,
        owner_source: Arc<dyn OwnerSource>,
        state_changes: Option<mpsc::UnboundedSender<StateChange>>,
        state_file: Option<std::path::PathBuf>,
    ) -> Arc<Self> {
        let now = clock.now();
        let applied = snapshot.borrow().clone();
        let mut presence = Presence::new(&applied, now);
        let mut owners = BTreeMap::new();
        if let Some(path) = &state_file {
            match persist::read(path) {
                Ok(Some(saved)) => {
                    persist::restore(&saved, &mut presence, now);
                    for o in saved.owners {
                        owners.insert(
                            o.client,
                            Owner {
                                agent: o.agent,
                                source: o.source,
                                set_at: o.set_at,
                            },
                        );
                    }
                    tracing::info!(path = %path.display(), agents = saved.agents.len(), "router state restored");
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "router state not restored"),
            }
        }
        let state = State {
            presence,
            queues: QueueEngine::new(&applied),
            applied,
            generation: 1,
            rng: fastrand::Rng::new(),
            revision: 0,
            owners,
            legs: BTreeMap::new(),
        };
        let (updates, _) = broadcast::channel(UPDATE_BUFFER);
        let view = std::sync::RwLock::new(Arc::new(build_view(&state, now)));
        Arc::new(Self {
            snapshot,
            state: Mutex::new(state),
            clock,
            updates,
            state_changes,
            owner_source,
            timer: Notify::new(),
            state_file,
            dirty: Notify::new(),
            view,
        })
    }

    /// Saves the state file whenever something changed (at most every 200 ms), and once more
    /// on shutdown. Does nothing without a state file.
    pub async fn run_persister(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        loop {
            let stop = tokio::select! {
                _ = self.dirty.notified() => false,
                _ = shutdown.changed() => true,
            };
            let saved = {
                let st = self.lock();
                let now = self.clock.now();
                persist::capture(
                    &st.presence,
                    st.owners.iter().map(|(client, o)| persist::PersistedOwner {
                        client: client.clone(),
                        agent: o.agent.clone(),
                        source: o.source.clone(),
                        set_at: o.set_at,
                    }),
                    now,
                )
            };
            let p = path.clone();
            match tokio::task::spawn_blocking(move || persist::write(&p, &saved)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "router state not saved"),
                Err(e) => tracing::error!(error = %e, "router state save task failed"),
            }
            if stop {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Marks the persisted state as stale.
    fn touch(&self) {
        if self.state_file.is_some() {
            self.dirty.notify_one();
        }
    }

    /// The lock, with the newest snapshot applied and due timers fired.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot.borrow().clone();
        if !Arc::ptr_eq(&current, &st.applied) {
            let now = self.clock.now();
            st.presence.apply_snapshot(&current, now);
            let dropped = st.queues.apply_snapshot(&current);
            for (queue, call) in dropped {
                tracing::warn!(%queue, call_id = %call, "queue removed from the configuration; caller dropped from it");
            }
            st.applied = current;
            st.generation += 1;
            self.refresh_view(&st, now);
            tracing::info!(
                generation = st.generation,
                "router applied a new configuration"
            );
        }
        st
    }

    /// Sends every state change recorded since the last call to the reporter and the board.
    fn refresh_view(&self, st: &State, now: Timestamp) {
        let view = Arc::new(build_view(st, now));
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = view;
    }

    fn publish(&self, st: &mut State, now: Timestamp) {
        let changes = st.presence.drain_changes();
        self.touch();
        // Legs and reservations change who is free even when no board state changes.
        self.refresh_view(st, now);
        if changes.is_empty() {
            return;
        }
        let board = st.presence.board(now);
        for change in &changes {
            if let Some(line) = board.iter().find(|l| l.agent == change.agent) {
                st.revision += 1;
                let agent = st.applied.agents.get(&line.agent);
                let update = pb::PresenceUpdate {
                    at: Some(ts(now)),
                    revision: st.revision,
                    update: Some(pb::presence_update::Update::Agent(convert::presence_line(
                        line,
                        agent.and_then(|a| a.extension.as_deref()),
                        agent.map(|a| &a.labels).unwrap_or(&BTreeMap::new()),
                        false,
                    ))),
                };
                // No receiver is fine: nobody watches the board right now.
                let _ = self.updates.send(update);
            }
            if let Some(tx) = &self.state_changes
                && tx.send(change.clone()).is_err()
            {
                tracing::warn!(agent = %change.agent, "agent state change not forwarded: the reporter link is closed");
            }
        }
        self.timer.notify_one();
    }

    fn publish_queue(&self, st: &mut State, queue: &str, now: Timestamp) {
        if let Some(status) = st
            .queues
            .status(&st.presence, now)
            .into_iter()
            .find(|q| q.queue == queue)
        {
            st.revision += 1;
            let _ = self.updates.send(pb::PresenceUpdate {
                at: Some(ts(now)),
                revision: st.revision,
                update: Some(pb::presence_update::Update::Queue(convert::queue_status(
                    &status,
                ))),
            });
        }
    }

    /// Fires time-driven changes (registration expiry, wrap-up end, lapsed reservations) when
    /// they are due, until `shutdown` changes.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let wait = {
                let mut st = self.lock();
                let now = self.clock.now();
                st.presence.expire(now);
                self.publish(&mut st, now);
                st.presence
                    .next_deadline()
                    .map(|d| d.duration_since(now))
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(Duration::from_secs(30))
                    .clamp(Duration::from_millis(5), Duration::from_secs(30))
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.timer.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Plans a call (or explains a hypothetical one): the same code path for both. Runs
    /// outside the lock, on the snapshot and the availability view as of the last change.
    pub fn plan(
        &self,
        number: &str,
        caller: Option<String>,
        at: Option<Timestamp>,
    ) -> (plan::PlanOutcome, u64) {
        let (snapshot, generation) = {
            let st = self.lock();
            (st.applied.clone(), st.generation)
        };
        let view = self
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let req = PlanRequest {
            number: number.to_owned(),
            caller,
            at: at.unwrap_or_else(|| self.clock.now()),
        };
        let offline = AgentAvailability::from_state(plan::AgentState::Offline);
        let lookup = |agent: &str| view.get(agent).copied().unwrap_or(offline);
        (plan::plan_call(&snapshot, &req, &lookup), generation)
    }

    /// The live board now.
    pub fn live_board(&self, with_contacts: bool) -> pb::LiveBoard {
        let mut st = self.lock();
        let now = self.clock.now();
        let lines = st.presence.board(now);
        let agents = lines
            .iter()
            .map(|l| {
                let a = st.applied.agents.get(&l.agent);
                convert::presence_line(
                    l,
                    a.and_then(|a| a.extension.as_deref()),
                    a.map(|a| &a.labels).unwrap_or(&BTreeMap::new()),
                    with_contacts,
                )
            })
            .collect();
        let queues = st
            .queues
            .status(&st.presence, now)
            .iter()
            .map(convert::queue_status)
            .collect();
        pb::LiveBoard {
            agents,
            queues,
            at: Some(ts(now)),
        }
    }

    /// Subscribes to board changes.
    pub fn subscribe(&self) -> broadcast::Receiver<pb::PresenceUpdate> {
        self.updates.subscribe()
    }

    /// Sets an agent's manual state.
    pub fn set_state(&self, agent: &str, manual: Manual) -> Result<AgentState, Status> {
        let mut st = self.lock();
        let now = self.clock.now();
        let state = st
            .presence
            .set_state(agent, manual, now)
            .map_err(presence_status)?;
        self.publish(&mut st, now);
        Ok(state)
    }
}

fn plan_state(s: &AgentState) -> plan::AgentState {
    match s {
        AgentState::Available => plan::AgentState::Available,
        AgentState::Ringing => plan::AgentState::Ringing,
        AgentState::OnCall => plan::AgentState::OnCall,
        AgentState::WrapUp => plan::AgentState::WrapUp,
        AgentState::Dnd => plan::AgentState::Dnd,
        AgentState::Away { .. } => plan::AgentState::Away,
        AgentState::Offline => plan::AgentState::Offline,
    }
}

fn presence_status(e: presence::PresenceError) -> Status {
    match e {
        presence::PresenceError::UnknownAgent(a) => {
            Status::not_found(format!("no Agent named {a:?} in the configuration"))
        }
        other => Status::not_found(other.to_string()),
    }
}

fn queue_status_err(e: crate::queues::QueueError) -> Status {
    use crate::queues::QueueError as E;
    match e {
        E::InAnotherQueue { .. } => Status::failed_precondition(e.to_string()),
        _ => Status::not_found(e.to_string()),
    }
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field} is required")))
    } else {
        Ok(())
    }
}

fn instant(t: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<Timestamp>, Status> {
    t.map(|t| {
        from_ts(t).ok_or_else(|| Status::invalid_argument(format!("{field} is out of range")))
    })
    .transpose()
}

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
        let r = req.into_inner();
        required("number", &r.number)?;
        let at = instant(r.at.as_ref(), "at")?;
        let caller = (!r.caller.is_empty()).then_some(r.caller);
        let span = tracing::info_span!("router.plan", call_id = %r.call_id, number = %r.number);
        let _guard = span.enter();
        let (outcome, generation) = self.core.plan(&r.number, caller, at);
        Ok(Response::new(convert::plan_response(
            &outcome,
            &generation.to_string(),
        )))
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
            .register(
                agent,
                ContactAddr {
                    uri: r.uri.clone(),
                    source: r.source.clone(),
                },
                expires,
                &r.node_id,
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
        for c in &r.contacts {
            let agent = if c.agent.is_empty() { &c.aor } else { &c.agent };
            let expires = c
                .expires_at
                .as_ref()
                .and_then(from_ts)
                .map(|t| t.duration_since(now).as_secs())
                .unwrap_or(0);
            let Ok(expires) = u32::try_from(expires) else {
                continue;
            };
            if expires == 0 {
                continue;
            }
            if let Err(e) = st.presence.register(
                agent,
                ContactAddr {
                    uri: c.uri.clone(),
                    source: c.source.clone(),
                },
                expires,
                &r.node_id,
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
        tokio::spawn(async move {
            // Commands toward nodes (callbacks, hang-ups) are sent through `tx` once call
            // control lands; until then the session tracks which nodes are connected.
            let _commands = tx;
            let mut node = String::new();
            while let Ok(Some(msg)) = inbound.message().await {
                match msg.body {
                    Some(pb::node_message::Body::Hello(h)) => {
                        node = h.node_id;
                        tracing::info!(node = %node, address = %h.sip_address, "media node connected");
                    }
                    Some(pb::node_message::Body::Status(s)) => {
                        tracing::debug!(node = %node, active = s.active_calls.len(), draining = s.draining, "media node status");
                    }
                    Some(pb::node_message::Body::Result(_)) | None => {}
                }
            }
            tracing::info!(node = %node, "media node disconnected");
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}

/// A ring target for an agent with availability now.
fn target_now(st: &mut State, agent: &str, now: Timestamp) -> pb::RingTarget {
    let applied = st.applied.clone();
    let Some(cfg) = applied.agents.get(agent) else {
        return pb::RingTarget {
            agent: agent.to_owned(),
            unavailable_reason: "no such Agent".to_owned(),
            ..Default::default()
        };
    };
    let av = st.presence.availability(agent, now);
    let state = st
        .presence
        .state(agent, now)
        .map(|(s, _)| s)
        .unwrap_or(AgentState::Offline);
    let contacts = st.presence.contacts(agent, now).unwrap_or_default();
    let destinations = cfg
        .destinations
        .iter()
        .flat_map(|d| match d {
            dialtone_model::snapshot::Destination::Softphone => contacts
                .iter()
                .map(|c| pb::Destination {
                    kind: pb::DestinationKind::Softphone as i32,
                    uri: c.uri.clone(),
                    node_id: c.node.clone(),
                    node_address: String::new(),
                    reachable: true,
                })
                .collect::<Vec<_>>(),
            dialtone_model::snapshot::Destination::Number(n) => vec![pb::Destination {
                kind: pb::DestinationKind::Number as i32,
                uri: n.clone(),
                reachable: true,
                ..Default::default()
            }],
            dialtone_model::snapshot::Destination::SipUri(u) => vec![pb::Destination {
                kind: pb::DestinationKind::SipUri as i32,
                uri: u.clone(),
                reachable: true,
                ..Default::default()
            }],
        })
        .collect();
    pb::RingTarget {
        agent: agent.to_owned(),
        display_name: cfg.display_name.clone(),
        extension: cfg.extension.clone().unwrap_or_default(),
        destinations,
        state: convert::agent_state(&state) as i32,
        available: av.available,
        unavailable_reason: av.reason.map(|r| r.to_string()).unwrap_or_default(),
        active_calls: st.presence.active_legs(agent, now),
        max_concurrent_calls: cfg.max_concurrent_calls,
    }
}

fn owner_response(
    st: &mut State,
    client: &str,
    owner: &Owner,
    now: Timestamp,
) -> pb::OwnerResponse {
    pb::OwnerResponse {
        client: client.to_owned(),
        agent: owner.agent.clone(),
        source: owner.source.clone(),
        set_at: Some(ts(owner.set_at)),
        target: Some(target_now(st, &owner.agent, now)),
        outcome: pb::OwnerLookupOutcome::Found as i32,
    }
}
