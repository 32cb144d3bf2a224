//! The `dialtone.v1.Reports` service: each report loads the CDRs of its window from the
//! [`Store`] and runs the pure report functions of [`crate::reports`] on them, so the gRPC
//! answers are exactly what those functions (and their corpus) say.
//!
//! Windows: a report over `[from, to)` reads the calls started in it, plus the other calls of
//! the same clients from `unprocessedWindowDays` before `from` up to now — earlier misses
//! (which group a miss joins, whether an outbound call is a callback) and later calls (was the
//! miss called back, was the group processed). The unprocessed list reads the last
//! `unprocessedWindowDays` up to now. The CallCenter's `missedCalls` policy and the schedules
//! (for the heat map) come from the configuration snapshot in force.
//!
//! The live board belongs to the router: a [`LiveSource`] passes it through. Authentication
//! is the server's business (an interceptor); `HandleGroup` reads the caller's name from a
//! [`Caller`] request extension when the request's `by` is empty.

pub mod convert;
pub(crate) mod fast;
mod heat;

use std::pin::Pin;
use std::sync::Arc;

use dialtone_model::Snapshot;
use dialtone_proto::v1 as pb;
use dialtone_proto::v1::reports_server::{Reports, ReportsServer};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::cdr::{Cdr, Direction};
use crate::policy::Policy;
use crate::reports::{self, HandleReason, HandleTarget, Handling, View};
use crate::store::{ReportWindow, Store};
use convert::{Links, Query, meta, parse_filter, store_status, truncate};

/// A stream of live-board changes.
pub type PresenceStream = Pin<Box<dyn Stream<Item = Result<pb::PresenceUpdate, Status>> + Send>>;

/// Where the live board comes from: the router (in-process in standalone mode, a
/// `RouterClient` in a cluster). The lead wires it; without one, `Live` and `WatchLive` answer
/// `FAILED_PRECONDITION`.
#[tonic::async_trait]
pub trait LiveSource: Send + Sync + 'static {
    /// The board now.
    async fn board(&self, omit_contacts: bool) -> Result<pb::LiveBoard, Status>;
    /// A snapshot, then changes.
    async fn watch(&self, omit_contacts: bool) -> Result<PresenceStream, Status>;
}

/// The authenticated user, put into the request's extensions by the server's auth layer; the
/// default `by` of a handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// `dialtone.v1.Reports` over a store.
#[derive(Clone)]
pub struct ReportsService {
    store: Store,
    config: watch::Receiver<Arc<Snapshot>>,
    live: Option<Arc<dyn LiveSource>>,
    clock: Clock,
    links: Links,
}

impl std::fmt::Debug for ReportsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportsService")
            .field("store", &self.store)
            .field("live", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

fn days(n: u32) -> SignedDuration {
    SignedDuration::from_hours(i64::from(n) * 24)
}

/// The default period of a report without `from`.
const DEFAULT_SPAN_DAYS: u32 = 30;

impl ReportsService {
    /// Reports over `store`, judged by the configuration in `config`.
    pub fn new(store: Store, config: watch::Receiver<Arc<Snapshot>>) -> Self {
        ReportsService {
            store,
            config,
            live: None,
            clock: Arc::new(Timestamp::now),
            links: Links::default(),
        }
    }

    /// Passes `Live` and `WatchLive` through to `live`.
    #[must_use]
    pub fn with_live(mut self, live: Arc<dyn LiveSource>) -> Self {
        self.live = Some(live);
        self
    }

    /// Uses `clock` for "now" (the end of default periods, the unprocessed list's instant);
    /// tests and `dialtone demo` replays set it.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Recording and voicemail links become `base/<path>` (the reporter's HTTP media route);
    /// without it they are the paths relative to the recordings storage.
    #[must_use]
    pub fn with_media_base_url(mut self, base: impl Into<String>) -> Self {
        self.links = Links(Some(base.into()));
        self
    }

    /// The tonic server.
    pub fn into_server(self) -> ReportsServer<Self> {
        ReportsServer::new(self)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.config.borrow().clone()
    }

    fn policy(&self) -> Policy {
        Policy::from(&self.snapshot().call_center.spec.missed_calls)
    }

    fn query(&self, filter: Option<&pb::ReportFilter>) -> Result<Query, Status> {
        parse_filter(filter, (self.clock)(), days(DEFAULT_SPAN_DAYS))
    }

    /// The context window of a report over `q`'s period (see the module docs).
    fn context(q: &Query, policy: &Policy) -> fast::Context {
        fast::Context {
            from: q
                .from
                .checked_sub(policy.unprocessed_window())
                .unwrap_or(Timestamp::MIN),
            to: after(q.to.max(q.now)),
        }
    }

    /// The period's CDRs with their clients' context (see the module docs).
    async fn cdrs(&self, q: &Query, policy: &Policy) -> Result<Vec<Cdr>, Status> {
        let ctx = Self::context(q, policy);
        let window = ReportWindow {
            from: q.from,
            to: q.to,
            context_from: ctx.from,
            context_to: ctx.to,
        };
        self.store
            .report_cdrs(&window)
            .await
            .map_err(|e| store_status(&e))
    }

    /// The unprocessed list's CDRs and handlings as of `now`.
    async fn unprocessed_input(
        &self,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<(Vec<Cdr>, Vec<Handling>), Status> {
        let since = now
            .checked_sub(policy.unprocessed_window())
            .unwrap_or(Timestamp::MIN);
        // Only the clients with a miss in the window have groups (see `fast`).
        let ctx = fast::Context {
            from: since,
            to: after(now),
        };
        let cdrs = fast::group_cdrs(&self.store, (since, after(now)), ctx).await?;
        let handlings = self.store.handlings_since(since).await;
        Ok((cdrs, handlings.map_err(|e| store_status(&e))?))
    }

    /// The CDRs and handlings that decide the groups `target` may name as of `now`: the
    /// client's calls in the window (a group is one client's), or the anonymous call itself.
    async fn target_input(
        &self,
        target: &HandleTarget,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<(Vec<Cdr>, Vec<Handling>), Status> {
        let since = now
            .checked_sub(policy.unprocessed_window())
            .unwrap_or(Timestamp::MIN);
        let st = |e: crate::store::StoreError| store_status(&e);
        let client = match target {
            HandleTarget::Client(c) => Some(c.clone()),
            HandleTarget::Group(id) => match self.store.cdr(id).await.map_err(st)? {
                Some(cdr) => match cdr.client() {
                    Some(c) => Some(c.to_owned()),
                    None => {
                        let handlings = self.store.handlings_since(since).await.map_err(st)?;
                        return Ok((vec![cdr], handlings));
                    }
                },
                None => None,
            },
        };
        let cdrs = match client {
            Some(c) => self
                .store
                .client_cdrs(&[c.as_str()], since, after(now))
                .await
                .map_err(st)?,
            None => Vec::new(),
        };
        let handlings = self.store.handlings_since(since).await.map_err(st)?;
        Ok((cdrs, handlings))
    }
}

impl ReportsService {
    /// The agents table: from the summaries when they are exact, else from the CDRs.
    async fn agents_report(
        &self,
        q: &Query,
        policy: &Policy,
    ) -> Result<reports::AgentsReport, Status> {
        let ctx = Self::context(q, policy);
        if let Some(report) = fast::agents(&self.store, q, policy, ctx).await? {
            return Ok(report);
        }
        let cdrs = self.cdrs(q, policy).await?;
        Ok(reports::agents(&cdrs, policy, &q.filter))
    }
}

/// The instant just after `t`: the exclusive end that includes `t`.
fn after(t: Timestamp) -> Timestamp {
    t.checked_add(SignedDuration::from_nanos(1)).unwrap_or(t)
}

fn live_missing() -> Status {
    Status::failed_precondition("the live board comes from the router; none is connected")
}

#[tonic::async_trait]
impl Reports for ReportsService {
    async fn missed(
        &self,
        request: Request<pb::MissedRequest>,
    ) -> Result<Response<pb::MissedReport>, Status> {
        let q = self.query(request.get_ref().filter.as_ref())?;
        let ctx = Self::context(&q, &self.policy());
        let mut rows = fast::missed(&self.store, &q, ctx).await?;
        let truncated = truncate(&mut rows, q.limit);
        Ok(Response::new(pb::MissedReport {
            meta: Some(meta(&q, truncated)),
            calls: rows
                .into_iter()
                .map(|r| convert::missed_call(r, &self.links))
                .collect(),
        }))
    }

    async fn unprocessed(
        &self,
        request: Request<pb::UnprocessedRequest>,
    ) -> Result<Response<pb::UnprocessedReport>, Status> {
        let policy = self.policy();
        let req = request.into_inner();
        let mut q = self.query(req.filter.as_ref())?;
        // The list is "as of now" over the window; from/to only filter by last miss.
        let since = q
            .now
            .checked_sub(policy.unprocessed_window())
            .unwrap_or(Timestamp::MIN);
        if !q.explicit.0 {
            q.from = since;
            q.filter.from = None;
        }
        if !q.explicit.1 {
            q.to = q.now;
            q.filter.to = None;
        }
        let view = match req.view() {
            pb::UnprocessedView::Unspecified | pb::UnprocessedView::Open => View::Open,
            pb::UnprocessedView::Processed => View::Processed,
            pb::UnprocessedView::All => View::All,
        };
        let since = q
            .now
            .checked_sub(policy.unprocessed_window())
            .unwrap_or(Timestamp::MIN);
        let handlings = self
            .store
            .handlings_since(since)
            .await
            .map_err(|e| store_status(&e))?;
        let mut groups = match fast::unprocessed(&self.store, &q, &policy, &handlings, view).await?
        {
            Some(groups) => groups,
            None => {
                let (cdrs, handlings) = self.unprocessed_input(q.now, &policy).await?;
                reports::unprocessed(&cdrs, &handlings, &policy, q.now, &q.filter, view)
            }
        };
        let truncated = truncate(&mut groups, q.limit);
        Ok(Response::new(pb::UnprocessedReport {
            meta: Some(meta(&q, truncated)),
            groups: groups.into_iter().map(convert::group).collect(),
        }))
    }

    async fn agents(
        &self,
        request: Request<pb::AgentsRequest>,
    ) -> Result<Response<pb::AgentsReport>, Status> {
        let policy = self.policy();
        let q = self.query(request.get_ref().filter.as_ref())?;
        let report = self.agents_report(&q, &policy).await?;
        let names = convert::display_names(&self.snapshot());
        let mut rows = report.agents;
        let truncated = truncate(&mut rows, q.limit);
        Ok(Response::new(pb::AgentsReport {
            meta: Some(meta(&q, truncated)),
            agents: rows
                .into_iter()
                .map(|r| convert::agent_row(r, &names))
                .collect(),
            total: Some(convert::agent_row(report.total, &Default::default())),
        }))
    }

    async fn callbacks(
        &self,
        request: Request<pb::CallbacksRequest>,
    ) -> Result<Response<pb::CallbacksReport>, Status> {
        let policy = self.policy();
        let q = self.query(request.get_ref().filter.as_ref())?;
        let since = q
            .from
            .checked_sub(policy.unprocessed_window())
            .unwrap_or(Timestamp::MIN);
        let handlings = self
            .store
            .handlings_since(since)
            .await
            .map_err(|e| store_status(&e))?;
        let report = match fast::callbacks(&self.store, &q, &policy, &handlings).await? {
            Some(report) => report,
            None => {
                let ctx = Self::context(&q, &policy);
                let cdrs = fast::group_cdrs(&self.store, (q.from, q.to), ctx).await?;
                reports::callbacks(&cdrs, &handlings, &policy, q.now, &q.filter)
            }
        };
        let mut groups = report.groups;
        let truncated = truncate(&mut groups, q.limit);
        Ok(Response::new(pb::CallbacksReport {
            meta: Some(meta(&q, truncated)),
            sla: Some(convert::duration(policy.callback_sla())),
            groups: groups.into_iter().map(convert::callback_group).collect(),
            agents: report
                .agents
                .into_iter()
                .map(convert::callback_agent)
                .collect(),
            total: Some(convert::callback_agent(report.total)),
        }))
    }

    async fn calls(
        &self,
        request: Request<pb::CallsRequest>,
    ) -> Result<Response<pb::CallsReport>, Status> {
        let q = self.query(request.get_ref().filter.as_ref())?;
        let direction = match request.get_ref().direction() {
            pb::Direction::Unspecified => None,
            pb::Direction::Inbound => Some(Direction::Inbound),
            pb::Direction::Outbound => Some(Direction::Outbound),
        };
        let ctx = Self::context(&q, &self.policy());
        let mut rows = fast::calls(&self.store, &q, ctx, direction).await?;
        let truncated = truncate(&mut rows, q.limit);
        Ok(Response::new(pb::CallsReport {
            meta: Some(meta(&q, truncated)),
            calls: rows
                .into_iter()
                .map(|r| convert::call_row(r, &self.links))
                .collect(),
        }))
    }

    async fn heatmap(
        &self,
        request: Request<pb::HeatmapRequest>,
    ) -> Result<Response<pb::HeatmapReport>, Status> {
        let q = self.query(request.get_ref().filter.as_ref())?;
        let policy = self.policy();
        let snapshot = self.snapshot();
        let ctx = Self::context(&q, &policy);
        let zone_of = heat::zone_of(&snapshot, &q.filter);
        let zones = heat::zone_sets(&snapshot, &q.filter);
        let counts = fast::heat_counts(
            &self.store,
            &q.filter,
            (q.from, q.to),
            ctx,
            &zone_of,
            zones.as_ref(),
        )
        .await?;
        let cdrs = match counts {
            Some(_) => Vec::new(),
            None => self.cdrs(&q, &policy).await?,
        };
        let states = self
            .store
            .agent_states(q.from, q.to)
            .await
            .map_err(|e| store_status(&e))?;
        let merged = heat::heatmap(&cdrs, &q.filter, (q.from, q.to), &snapshot, &states, counts)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(pb::HeatmapReport {
            meta: Some(meta(&q, false)),
            cells: merged
                .map
                .cells
                .into_iter()
                .map(|c| pb::HeatmapCell {
                    weekday: u32::from(c.weekday),
                    hour: u32::from(c.hour),
                    inbound: c.inbound,
                    missed: c.missed,
                    // A number without a schedule is always open.
                    open_share: c.open_share.unwrap_or(1.0),
                    available_agents: c.available_agents,
                    days: c.days,
                })
                .collect(),
            time_zones: merged.time_zones,
        }))
    }

    async fn live(
        &self,
        request: Request<pb::LiveRequest>,
    ) -> Result<Response<pb::LiveBoard>, Status> {
        let live = self.live.as_ref().ok_or_else(live_missing)?;
        live.board(request.get_ref().omit_contacts)
            .await
            .map(Response::new)
    }

    type WatchLiveStream = PresenceStream;

    async fn watch_live(
        &self,
        request: Request<pb::LiveRequest>,
    ) -> Result<Response<Self::WatchLiveStream>, Status> {
        let live = self.live.as_ref().ok_or_else(live_missing)?;
        live.watch(request.get_ref().omit_contacts)
            .await
            .map(Response::new)
    }

    async fn top_missers(
        &self,
        request: Request<pb::TopMissersRequest>,
    ) -> Result<Response<pb::TopMissersReport>, Status> {
        let policy = self.policy();
        let req = request.get_ref();
        let mut q = self.query(req.filter.as_ref())?;
        if req.filter.as_ref().is_none_or(|f| f.limit == 0) {
            q.limit = 5;
        }
        let report = self.agents_report(&q, &policy).await?;
        let mut rows = reports::top_missers_of(report, q.limit + 1, req.min_offered);
        let truncated = truncate(&mut rows, q.limit);
        let names = convert::display_names(&self.snapshot());
        Ok(Response::new(pb::TopMissersReport {
            meta: Some(meta(&q, truncated)),
            agents: rows
                .into_iter()
                .map(|r| convert::agent_row(r, &names))
                .collect(),
        }))
    }

    async fn handle_group(
        &self,
        request: Request<pb::HandleGroupRequest>,
    ) -> Result<Response<pb::HandleGroupResponse>, Status> {
        let caller = request.extensions().get::<Caller>().cloned();
        let req = request.into_inner();
        let reason: HandleReason = req
            .reason
            .trim()
            .parse()
            .map_err(|e: crate::error::ReportError| Status::invalid_argument(e.to_string()))?;
        let target = match (req.client.trim(), req.group_id.trim()) {
            ("", "") => {
                return Err(Status::invalid_argument(
                    "name the group: set client (the client's number) or group_id",
                ));
            }
            (client, "") => HandleTarget::Client(client.to_owned()),
            ("", group) => HandleTarget::Group(group.to_owned()),
            _ => {
                return Err(Status::invalid_argument("set client or group_id, not both"));
            }
        };
        let by = match (req.by.trim(), caller) {
            ("", Some(Caller(name))) => name,
            ("", None) => {
                return Err(Status::invalid_argument(
                    "by is required: who handles the group",
                ));
            }
            (by, _) => by.to_owned(),
        };
        let now = (self.clock)();
        let handling = Handling {
            target,
            reason,
            note: Some(req.note.trim().to_owned()).filter(|n| !n.is_empty()),
            by,
            at: now,
        };
        handling
            .validate()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;

        let policy = self.policy();
        let (cdrs, mut handlings) = self.target_input(&handling.target, now, &policy).await?;
        let open = reports::unprocessed(
            &cdrs,
            &handlings,
            &policy,
            now,
            &reports::Filter::default(),
            View::Open,
        );
        let Some(group) = open.iter().find(|g| match &handling.target {
            HandleTarget::Client(c) => g.client.as_deref() == Some(c.as_str()),
            HandleTarget::Group(id) => g.group_id == *id,
        }) else {
            let what = match &handling.target {
                HandleTarget::Client(c) => format!("client {c}"),
                HandleTarget::Group(id) => format!("group {id}"),
            };
            return Err(Status::not_found(format!(
                "no open unprocessed group for {what} in the last {} days \
                 (no missed call, or already processed)",
                policy.unprocessed_window_days
            )));
        };
        let group_id = group.group_id.clone();
        self.store
            .add_handling(&handling)
            .await
            .map_err(|e| store_status(&e))?;
        handlings.push(handling);
        let processed = reports::unprocessed(
            &cdrs,
            &handlings,
            &policy,
            now,
            &reports::Filter::default(),
            View::Processed,
        );
        let group = processed
            .into_iter()
            .find(|g| g.group_id == group_id)
            .ok_or_else(|| Status::internal(format!("group {group_id} did not close")))?;
        Ok(Response::new(pb::HandleGroupResponse {
            group: Some(convert::group(group)),
        }))
    }
}
