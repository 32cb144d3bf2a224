//! The router's shared state behind one lock, and the logic the gRPC methods call.

use super::convert::{self, from_ts, ts};
use crate::owner::OwnerSource;
use crate::persist;
use crate::plan::{self, AgentAvailability, PlanRequest};
use crate::presence::{self, AgentState, LegToken, Manual, Presence, StateChange};
use crate::queues::QueueEngine;
use dialtone_model::Snapshot;
use dialtone_proto::v1 as pb;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tonic::Status;

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
pub(super) struct Owner {
    pub(super) agent: String,
    pub(super) source: String,
    pub(super) set_at: Timestamp,
}

/// Everything behind the one lock.
pub(super) struct State {
    pub(super) applied: Arc<Snapshot>,
    pub(super) generation: u64,
    pub(super) presence: Presence,
    pub(super) queues: QueueEngine,
    pub(super) rng: fastrand::Rng,
    pub(super) revision: u64,
    pub(super) owners: BTreeMap<String, Owner>,
    /// Reservations made through `ReserveAgents`, by (call, agent), until a leg event or
    /// `ReleaseAgents` consumes them.
    pub(super) legs: BTreeMap<(String, String), LegToken>,
    /// Queue callbacks under way: the callback call's id → the queue entry it serves.
    pub(super) queue_callbacks: BTreeMap<String, super::queue_callbacks::QueueCallback>,
}

/// The router's shared state and logic; [`RouterService`] is its gRPC face.
pub struct RouterCore {
    pub(super) snapshot: watch::Receiver<Arc<Snapshot>>,
    pub(super) state: Mutex<State>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) updates: broadcast::Sender<pb::PresenceUpdate>,
    pub(super) state_changes: Option<mpsc::UnboundedSender<StateChange>>,
    pub(super) owner_source: Arc<dyn OwnerSource>,
    pub(super) timer: Notify,
    /// Where agents' choices, registrations and owners are persisted, if anywhere.
    pub(super) state_file: Option<std::path::PathBuf>,
    /// Signals the persister that something worth saving changed.
    pub(super) dirty: Notify,
    /// Every agent's availability as of the last change, for plans: planning reads this
    /// instead of taking the lock, so plans never queue behind presence updates.
    pub(super) view: std::sync::RwLock<Arc<AvailabilityView>>,
    /// The media nodes connected through `NodeSession`, which carry out callbacks.
    pub nodes: super::nodes::NodeRegistry,
    /// Each client's last dialled PhoneNumber (client → number), the caller ID a callback
    /// shows so the client recognises who calls back. Memory only, bounded.
    pub(super) dialled: Mutex<std::collections::HashMap<String, String>>,
}

/// Most clients whose last dialled number is remembered; past it the map starts over (a
/// callback then shows the first PhoneNumber, which is still ours).
const DIALLED_MAX: usize = 200_000;

/// Agent name → availability, as of the last change.
type AvailabilityView = std::collections::HashMap<String, AgentAvailability>;

pub(super) fn build_view(st: &State, now: Timestamp) -> AvailabilityView {
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
            queue_callbacks: BTreeMap::new(),
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
            nodes: super::nodes::NodeRegistry::default(),
            dialled: Mutex::new(std::collections::HashMap::new()),
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
    pub(super) fn touch(&self) {
        if self.state_file.is_some() {
            self.dirty.notify_one();
        }
    }

    /// The lock, with the newest snapshot applied and due timers fired.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
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
    pub(super) fn refresh_view(&self, st: &State, now: Timestamp) {
        let view = Arc::new(build_view(st, now));
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = view;
    }

    pub(super) fn publish(&self, st: &mut State, now: Timestamp) {
        let changes = st.presence.drain_changes();
        self.touch();
        // Legs and reservations change who is free even when no board state changes.
        self.refresh_view(st, now);
        if changes.is_empty() {
            return;
        }
        // Deadlines due now are applied (their changes go out with the next publish), as the
        // whole board would; then only the changed agents' lines are built.
        st.presence.expire(now);
        for change in &changes {
            if let Some(line) = st.presence.board_line(&change.agent, now) {
                st.revision += 1;
                let agent = st.applied.agents.get(&line.agent);
                let update = pb::PresenceUpdate {
                    at: Some(ts(now)),
                    revision: st.revision,
                    update: Some(pb::presence_update::Update::Agent(convert::presence_line(
                        &line,
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

    pub(super) fn publish_queue(&self, st: &mut State, queue: &str, now: Timestamp) {
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

    /// Remembers the number a client dialled (for a callback's caller ID).
    pub fn note_dialled(&self, client: &str, number: &str) {
        if client.is_empty() {
            return;
        }
        let mut map = self.dialled.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= DIALLED_MAX && !map.contains_key(client) {
            map.clear();
        }
        map.insert(client.to_owned(), number.to_owned());
    }

    /// The PhoneNumber a client last dialled, if known.
    pub fn last_dialled(&self, client: &str) -> Option<String> {
        self.dialled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client)
            .cloned()
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

pub(super) fn plan_state(s: &AgentState) -> plan::AgentState {
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

pub(super) fn presence_status(e: presence::PresenceError) -> Status {
    match e {
        presence::PresenceError::UnknownAgent(a) => {
            Status::not_found(format!("no Agent named {a:?} in the configuration"))
        }
        other => Status::not_found(other.to_string()),
    }
}

pub(super) fn queue_status_err(e: crate::queues::QueueError) -> Status {
    use crate::queues::QueueError as E;
    match e {
        E::InAnotherQueue { .. } => Status::failed_precondition(e.to_string()),
        _ => Status::not_found(e.to_string()),
    }
}

pub(super) fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field} is required")))
    } else {
        Ok(())
    }
}

pub(super) fn instant(
    t: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<Timestamp>, Status> {
    t.map(|t| {
        from_ts(t).ok_or_else(|| Status::invalid_argument(format!("{field} is out of range")))
    })
    .transpose()
}

/// A ring target for an agent with availability now.
pub(super) fn target_now(st: &mut State, agent: &str, now: Timestamp) -> pb::RingTarget {
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
                    node_address: c.node_address.clone(),
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

pub(super) fn owner_response(
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
