//! Writes: events (and the CDRs they change), manual handlings, retention.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dialtone_proto::v1::{self, IngestEvent, RejectedEvent};
use jiff::{SignedDuration, Timestamp};
use prost::Message as _;
use sqlx::Row as _;

use super::codec::{CdrRow, Checked, cdr_from_json, check, kind_name, to_ns};
use super::groups::{GroupDirty, GroupWriter};
use super::summary::{Change, Contribution, SummaryWriter, Tallies};
use super::webhooks::{INSERT_WEBHOOK_EVENT, targets_column};
use super::{Backend, Store, StoreError};
use crate::assemble_call;
use crate::error::AssembleError;
use crate::policy::Policy;
use crate::reports::{HandleTarget, Handling};

/// Events per transaction: big enough to amortise a commit (an fsync), small enough that a
/// spool flush of a long outage does not hold the writer for long.
const CHUNK: usize = 10_000;

/// How often a transaction that lost a race (deadlock, serialization) is tried again.
const ATTEMPTS: u32 = 5;

/// What [`Store::ingest`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Events now stored: new ones and those stored before (duplicates). The sender may
    /// forget them.
    pub acked: Vec<String>,
    /// Events refused for good: malformed, or an id already stored with different content.
    pub rejected: Vec<RejectedEvent>,
    /// How many of the acknowledged events were new.
    pub new_events: usize,
    /// How many CDRs were (re)written.
    pub cdrs_written: usize,
}

impl IngestOutcome {
    fn absorb(&mut self, other: IngestOutcome) {
        self.acked.extend(other.acked);
        self.rejected.extend(other.rejected);
        self.new_events += other.new_events;
        self.cdrs_written += other.cdrs_written;
    }
}

/// What [`Store::delete_older_than`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// CDRs of calls started before the cutoff.
    pub cdrs: u64,
    /// Their events, and any other event before the cutoff.
    pub events: u64,
    /// Agent state changes before the cutoff (each agent's last one before it is kept).
    pub agent_states: u64,
    /// Handlings before the cutoff.
    pub handlings: u64,
}

/// Rows per multi-row event insert (8 parameters each).
const INSERT_ROWS: usize = 250;

const EVENT_COLUMNS: &str =
    "INSERT INTO events (event_id, call_id, node_id, sequence, at, kind, payload, received_at) ";

const STATE_COLUMNS: &str =
    "INSERT INTO agent_states (event_id, agent, state, away_label, at, source, sequence, payload) ";

const CDR_COLUMNS: &str = "INSERT INTO cdrs (call_id, started_at, ended_at, direction, caller, \
    number, number_name, client, agent, status, missed_reason, answered_by, complete, json, \
    updated_at) ";
const CDR_CONFLICT: &str = " ON CONFLICT (call_id) DO UPDATE SET started_at = excluded.started_at, \
    ended_at = excluded.ended_at, direction = excluded.direction, caller = excluded.caller, \
    number = excluded.number, number_name = excluded.number_name, client = excluded.client, \
    agent = excluded.agent, status = excluded.status, missed_reason = excluded.missed_reason, \
    answered_by = excluded.answered_by, complete = excluded.complete, json = excluded.json, \
    updated_at = excluded.updated_at";

/// Serializes PostgreSQL transactions that rebuild the same call (see the module docs).
const LOCK_CALL: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(what, e)
}

/// The oldest call event still enqueued for webhooks when ingesting at `now_ns`:
/// [`crate::webhooks::MAX_EVENT_AGE`] before it.
fn webhook_horizon(now_ns: i64) -> Timestamp {
    let age = i64::try_from(crate::webhooks::MAX_EVENT_AGE.as_nanos()).unwrap_or(i64::MAX);
    Timestamp::from_nanosecond(i128::from(now_ns.saturating_sub(age))).unwrap_or(Timestamp::MIN)
}

fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Calls rebuilt per round of reads and writes: their events and old CDRs are read with one
/// query each and their CDRs written with one multi-row upsert. 200 calls of ~8 events keep
/// each statement well inside both databases' limits on bound parameters.
const REBUILD_GROUP: usize = 200;

/// Rebuilds the CDRs of `$calls` inside the transaction `$tx` from every stored event of each
/// call, returning how many were written. A macro so that it expands for both backends.
///
/// Calls are handled in groups of [`REBUILD_GROUP`]: one query reads the group's events, one
/// its CDRs as stored before, the summaries' tallies are summed over the group and written
/// once ([`Tallies`]), and the CDRs go in one multi-row upsert — a statement per call and row
/// made ingestion wait on round trips to the database's thread, not on the database.
///
/// With `$webhooks`, the call events of each rebuilt CDR ([`crate::webhooks::call_events`])
/// are enqueued in the same transaction, once by id, unless they happened more than
/// [`crate::webhooks::MAX_EVENT_AGE`] before `$now` (a backfill or a late journal replay is
/// no news to a CRM).
macro_rules! rebuild_calls {
    ($tx:expr, $calls:expr, $policy:expr, $pg:expr, $now:expr, $webhooks:expr, $dirty:expr) => {{
        let mut written = 0usize;
        let calls: Vec<&str> = $calls.iter().map(|c| c.as_ref()).collect();
        for group in calls.chunks(REBUILD_GROUP) {
            if $pg {
                for call_id in group {
                    sqlx::query(LOCK_CALL)
                        .bind(*call_id)
                        .execute(&mut *$tx)
                        .await
                        .map_err(db("locking a call"))?;
                }
            }
            let mut q = sqlx::QueryBuilder::new(
                "SELECT call_id, event_id, payload FROM events WHERE call_id IN (",
            );
            let mut list = q.separated(", ");
            for call_id in group {
                list.push_bind(*call_id);
            }
            q.push(")");
            let rows = q
                .build()
                .fetch_all(&mut *$tx)
                .await
                .map_err(db("reading calls' events"))?;
            let mut events: BTreeMap<String, Vec<v1::CallEvent>> = BTreeMap::new();
            for row in &rows {
                let call: String = row.try_get(0).map_err(db("reading a call id"))?;
                let id: String = row.try_get(1).map_err(db("reading an event id"))?;
                let payload: Vec<u8> = row.try_get(2).map_err(db("reading an event"))?;
                match v1::CallEvent::decode(payload.as_slice()) {
                    Ok(event) => events.entry(call).or_default().push(event),
                    Err(e) => {
                        return Err(StoreError::corrupt_row(format!("event {id}"), e));
                    }
                }
            }
            // The CDRs as stored before: their contribution to the summaries is replaced.
            let mut q = sqlx::QueryBuilder::new("SELECT call_id, json FROM cdrs WHERE call_id IN (");
            let mut list = q.separated(", ");
            for call_id in group {
                list.push_bind(*call_id);
            }
            q.push(")");
            let before: Vec<(String, String)> = q
                .build_query_as()
                .fetch_all(&mut *$tx)
                .await
                .map_err(db("reading CDRs"))?;
            let before: BTreeMap<String, String> = before.into_iter().collect();
            let mut tallies = Tallies::default();
            let mut cdrs = Vec::with_capacity(group.len());
            let mut contributions: Vec<(&str, Contribution, Contribution)> =
                Vec::with_capacity(group.len());
            for call_id in group {
                let old = match before.get(*call_id) {
                    Some(json) => {
                        let old = cdr_from_json(call_id, json)?;
                        $dirty.note(&old);
                        Contribution::of(&old, $policy)
                    }
                    None => Contribution::default(),
                };
                let stored = events.remove(*call_id).unwrap_or_default();
                match assemble_call(&stored, $policy) {
                    Ok(cdr) => {
                        $dirty.note(&cdr);
                        let new = Contribution::of(&cdr, $policy);
                        tallies.replace(&old, &new);
                        contributions.push((*call_id, old, new));
                        if $webhooks {
                            let oldest = webhook_horizon($now);
                            for event in crate::webhooks::payload::call_events_since(&cdr, oldest) {
                                sqlx::query(INSERT_WEBHOOK_EVENT)
                                    .bind(&event.id)
                                    .bind(&event.event)
                                    .bind(to_ns(event.occurred_at))
                                    .bind(&event.payload)
                                    .bind(targets_column(event.targets.as_ref()))
                                    .bind($now)
                                    .execute(&mut *$tx)
                                    .await
                                    .map_err(db("enqueueing a webhook event"))?;
                            }
                        }
                        cdrs.push(cdr);
                    }
                    // The call's CallStarted is still in a spool; its CDR comes with it.
                    Err(AssembleError::NotStarted { .. }) => {}
                    Err(e) => {
                        // Events are checked before they are stored, so this is a bug; keep the
                        // events (they are the truth) and say so, rather than refuse the batch.
                        tracing::error!(call_id = %call_id, error = %e, "cannot assemble a stored call");
                    }
                }
            }
            let changes: Vec<Change<'_>> = contributions
                .iter()
                .map(|(call_id, old, new)| Change { call_id, old, new })
                .collect();
            SummaryWriter::apply_links(&mut *$tx, &changes).await?;
            SummaryWriter::apply_tallies(&mut *$tx, &tallies).await?;
            if !cdrs.is_empty() {
                let rows = cdrs.iter().map(CdrRow::new).collect::<Result<Vec<_>, _>>()?;
                let mut q = sqlx::QueryBuilder::new(CDR_COLUMNS);
                q.push_values(&rows, |mut b, row| {
                    b.push_bind(row.call_id)
                        .push_bind(row.started_at)
                        .push_bind(row.ended_at)
                        .push_bind(row.direction)
                        .push_bind(row.caller)
                        .push_bind(row.number)
                        .push_bind(row.number_name)
                        .push_bind(row.client)
                        .push_bind(row.agent)
                        .push_bind(row.status)
                        .push_bind(row.missed_reason)
                        .push_bind(row.answered_by)
                        .push_bind(row.complete)
                        .push_bind(row.json.as_str())
                        .push_bind($now);
                });
                q.push(CDR_CONFLICT);
                q.build()
                    .execute(&mut *$tx)
                    .await
                    .map_err(db("writing CDRs"))?;
                written += rows.len();
            }
        }
        written
    }};
}

impl Store {
    /// Stores events idempotently and rebuilds the CDRs of the calls that got new events, in
    /// transactions of up to 1000 events. Everything in [`IngestOutcome::acked`] is durable
    /// when this returns.
    ///
    /// Malformed events and ids already stored with different content are listed in
    /// [`IngestOutcome::rejected`]; the rest of the batch is stored regardless.
    ///
    /// # Errors
    ///
    /// A database error; events of transactions committed before it stay stored (and are
    /// acknowledged again when resent).
    pub async fn ingest(
        &self,
        events: &[IngestEvent],
        policy: &Policy,
    ) -> Result<IngestOutcome, StoreError> {
        let mut outcome = IngestOutcome::default();
        // Sorted by id and unique: PostgreSQL then takes row locks in one order in every
        // transaction, so concurrent batches sharing events cannot deadlock on them.
        let mut unique: BTreeMap<&str, Checked<'_>> = BTreeMap::new();
        for event in events {
            match check(event) {
                Err(rejection) => outcome.rejected.push(rejection),
                Ok(checked) => match unique.get(checked.event_id()) {
                    None => {
                        unique.insert(checked_id(event), checked);
                    }
                    Some(kept) if same(kept, &checked) => {}
                    Some(_) => outcome.rejected.push(conflict(checked.event_id())),
                },
            }
        }
        let checked: Vec<Checked<'_>> = unique.into_values().collect();
        for chunk in checked.chunks(CHUNK) {
            let mut attempt = 1;
            let done = loop {
                match self.write_chunk(chunk, policy).await {
                    Err(StoreError::Conflict { what, source }) if attempt < ATTEMPTS => {
                        tracing::debug!(what, error = %source, attempt, "retrying an ingest transaction");
                        tokio::time::sleep(Duration::from_millis(
                            10 * u64::from(attempt) + jitter_ms(),
                        ))
                        .await;
                        attempt += 1;
                    }
                    other => break other?,
                }
            };
            outcome.absorb(done);
        }
        Ok(outcome)
    }

    async fn write_chunk(
        &self,
        chunk: &[Checked<'_>],
        policy: &Policy,
    ) -> Result<IngestOutcome, StoreError> {
        let pg = self.backend() == Backend::Postgres;
        let now = to_ns(Timestamp::now());
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(db("beginning a transaction"))?;
            SummaryWriter::ensure_summaries(&mut *tx, policy).await?;
            GroupWriter::ensure_groups(&mut *tx, pg).await?;
            let mut out = IngestOutcome::default();
            let mut touched: BTreeSet<&str> = BTreeSet::new();
            // Multi-row inserts that return the ids they stored: the others were stored
            // before (checked one by one below, which is rare).
            let mut stored: BTreeSet<String> = BTreeSet::new();
            let calls: Vec<_> = chunk
                .iter()
                .filter_map(|c| match c {
                    Checked::Call(e, at) => Some((*e, *at)),
                    Checked::State(..) => None,
                })
                .collect();
            for rows in calls.chunks(INSERT_ROWS) {
                let mut q = sqlx::QueryBuilder::new(EVENT_COLUMNS);
                q.push_values(rows, |mut b, (e, at)| {
                    b.push_bind(e.event_id.as_str())
                        .push_bind(e.call_id.as_str())
                        .push_bind(e.node_id.as_str())
                        .push_bind(seq(e.sequence))
                        .push_bind(to_ns(*at))
                        .push_bind(kind_name(e.kind.as_ref()))
                        .push_bind(e.encode_to_vec())
                        .push_bind(now);
                });
                q.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
                let ids: Vec<String> = q
                    .build_query_scalar()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("storing events"))?;
                stored.extend(ids);
            }
            let states: Vec<_> = chunk
                .iter()
                .filter_map(|c| match c {
                    Checked::State(e, at) => Some((*e, *at)),
                    Checked::Call(..) => None,
                })
                .collect();
            for rows in states.chunks(INSERT_ROWS) {
                let mut q = sqlx::QueryBuilder::new(STATE_COLUMNS);
                q.push_values(rows, |mut b, (e, at)| {
                    b.push_bind(e.event_id.as_str())
                        .push_bind(e.agent.as_str())
                        .push_bind(e.state().code())
                        .push_bind(e.away_label.as_str())
                        .push_bind(to_ns(*at))
                        .push_bind(e.source.as_str())
                        .push_bind(seq(e.sequence))
                        .push_bind(e.encode_to_vec());
                });
                q.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
                let ids: Vec<String> = q
                    .build_query_scalar()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("storing agent states"))?;
                stored.extend(ids);
            }
            for item in chunk {
                let id = item.event_id();
                let inserted = stored.contains(id);
                if inserted && let Checked::Call(e, _) = item {
                    touched.insert(&e.call_id);
                }
                if inserted {
                    out.new_events += 1;
                    out.acked.push(id.to_owned());
                    continue;
                }
                // Stored before: the same event again (normal), or a reused id (refused).
                let table = match item {
                    Checked::Call(..) => "SELECT payload FROM events WHERE event_id = $1",
                    Checked::State(..) => "SELECT payload FROM agent_states WHERE event_id = $1",
                };
                let kept: Option<Vec<u8>> = sqlx::query_scalar(table)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("reading a stored event"))?;
                let same = kept.is_some_and(|bytes| match item {
                    Checked::Call(e, _) => {
                        v1::CallEvent::decode(bytes.as_slice()).is_ok_and(|k| k == **e)
                    }
                    Checked::State(e, _) => {
                        v1::AgentStateEvent::decode(bytes.as_slice()).is_ok_and(|k| k == **e)
                    }
                });
                if same {
                    out.acked.push(id.to_owned());
                } else {
                    out.rejected.push(conflict(id));
                }
            }
            let mut dirty = GroupDirty::default();
            out.cdrs_written = rebuild_calls!(tx, &touched, policy, pg, now, true, dirty);
            GroupWriter::refresh_groups(&mut *tx, &dirty, pg).await?;
            tx.commit().await.map_err(db("committing events"))?;
            Ok(out)
        })
    }

    /// Re-assembles every stored call with `policy` (after `shortAbandonSeconds` changed, or
    /// after an upgrade changed how CDRs are built). Returns the number of CDRs written.
    ///
    /// # Errors
    ///
    /// A database error; calls rebuilt before it stay rebuilt.
    pub async fn rebuild_cdrs(&self, policy: &Policy) -> Result<usize, StoreError> {
        let pg = self.backend() == Backend::Postgres;
        let mut after = String::new();
        let mut written = 0;
        loop {
            let now = to_ns(Timestamp::now());
            let (n, last) = with_pool!(self, write, |pool| {
                let mut tx = pool.begin().await.map_err(db("beginning a rebuild"))?;
                SummaryWriter::ensure_summaries(&mut *tx, policy).await?;
                GroupWriter::ensure_groups(&mut *tx, pg).await?;
                let calls: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT call_id FROM events WHERE call_id > $1 \
                     ORDER BY call_id LIMIT 500",
                )
                .bind(&after)
                .fetch_all(&mut *tx)
                .await
                .map_err(db("listing calls"))?;
                // Rebuilding judges old calls anew: no news for webhooks.
                let mut dirty = GroupDirty::default();
                let n = rebuild_calls!(tx, &calls, policy, pg, now, false, dirty);
                GroupWriter::refresh_groups(&mut *tx, &dirty, pg).await?;
                tx.commit().await.map_err(db("committing a rebuild"))?;
                Ok::<_, StoreError>((n, calls.last().cloned()))
            })?;
            written += n;
            match last {
                Some(last) => after = last,
                None => return Ok(written),
            }
        }
    }

    /// Records a manual processing of an unprocessed group.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn add_handling(&self, handling: &Handling) -> Result<(), StoreError> {
        let (client, group) = match &handling.target {
            HandleTarget::Client(c) => (Some(c.as_str()), None),
            HandleTarget::Group(g) => (None, Some(g.as_str())),
        };
        let pg = self.backend() == Backend::Postgres;
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(db("beginning a handling"))?;
            sqlx::query(
                "INSERT INTO handlings (client, group_id, reason, note, by_user, at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(client)
            .bind(group)
            .bind(handling.reason.code())
            .bind(handling.note.as_deref())
            .bind(&handling.by)
            .bind(to_ns(handling.at))
            .execute(&mut *tx)
            .await
            .map_err(db("storing a handling"))?;
            // The groups it may close: the client's, or those of the call its id names.
            let mut dirty = GroupDirty::default();
            if let Some(client) = client {
                dirty.client(client);
            }
            if let Some(id) = group {
                let named: Option<(String, String)> =
                    sqlx::query_as("SELECT call_id, json FROM cdrs WHERE call_id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db("reading a CDR"))?;
                if let Some((call_id, json)) = named {
                    dirty.note(&cdr_from_json(&call_id, &json)?);
                }
            }
            GroupWriter::refresh_groups(&mut *tx, &dirty, pg).await?;
            tx.commit().await.map_err(db("committing a handling"))
        })
    }

    /// Retention: deletes CDRs of calls started more than `days` days before `now` with their
    /// events, other events, agent state changes and handlings older than that. Each agent's
    /// last state change before the cutoff is kept: the heat map needs the state an agent was
    /// in when a period starts.
    ///
    /// # Errors
    ///
    /// A database error (nothing is deleted then: one transaction).
    pub async fn delete_older_than(
        &self,
        days: u32,
        now: Timestamp,
    ) -> Result<Deleted, StoreError> {
        let cutoff = now
            .checked_sub(SignedDuration::from_hours(i64::from(days) * 24))
            .map_or(i64::MIN, to_ns);
        let pg = self.backend() == Backend::Postgres;
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(db("beginning retention"))?;
            SummaryWriter::forget_before(&mut *tx, cutoff).await?;
            // The clients whose old calls go: their groups are rebuilt from what stays.
            let gone: Vec<(String, String)> = sqlx::query_as(
                "SELECT call_id, json FROM cdrs WHERE started_at < $1 \
                 AND (missed_reason IS NOT NULL OR direction = 'outbound')",
            )
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("reading old CDRs"))?;
            let mut dirty = GroupDirty::default();
            for (call_id, json) in &gone {
                dirty.note(&cdr_from_json(call_id, json)?);
            }
            let events = sqlx::query(
                "DELETE FROM events WHERE call_id IN \
                 (SELECT call_id FROM cdrs WHERE started_at < $1)",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting old events"))?
            .rows_affected();
            let cdrs = sqlx::query("DELETE FROM cdrs WHERE started_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(db("deleting old CDRs"))?
                .rows_affected();
            // Events of calls that never got a CDR (their CallStarted never came).
            let orphans = sqlx::query(
                "DELETE FROM events WHERE at < $1 AND call_id NOT IN (SELECT call_id FROM cdrs)",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting old events"))?
            .rows_affected();
            let agent_states = sqlx::query(
                "DELETE FROM agent_states WHERE at < $1 AND at < \
                 (SELECT MAX(s.at) FROM agent_states s \
                  WHERE s.agent = agent_states.agent AND s.at < $1)",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting old agent states"))?
            .rows_affected();
            let handlings = sqlx::query("DELETE FROM handlings WHERE at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(db("deleting old handlings"))?
                .rows_affected();
            GroupWriter::refresh_groups(&mut *tx, &dirty, pg).await?;
            tx.commit().await.map_err(db("committing retention"))?;
            Ok(Deleted {
                cdrs,
                events: events + orphans,
                agent_states,
                handlings,
            })
        })
    }
}

fn checked_id(event: &IngestEvent) -> &str {
    match &event.event {
        Some(v1::ingest_event::Event::Call(e)) => &e.event_id,
        Some(v1::ingest_event::Event::AgentState(e)) => &e.event_id,
        None => "",
    }
}

fn same(a: &Checked<'_>, b: &Checked<'_>) -> bool {
    match (a, b) {
        (Checked::Call(x, _), Checked::Call(y, _)) => x == y,
        (Checked::State(x, _), Checked::State(y, _)) => x == y,
        _ => false,
    }
}

fn conflict(event_id: &str) -> RejectedEvent {
    RejectedEvent {
        event_id: event_id.to_owned(),
        reason: crate::error::EventError::Conflict {
            event_id: event_id.to_owned(),
        }
        .to_string(),
    }
}

/// A little jitter so that two transactions that deadlocked do not retry in lockstep.
fn jitter_ms() -> u64 {
    u64::from(Timestamp::now().subsec_nanosecond().unsigned_abs() % 20)
}
