//! Report summaries (schema 4), written in the ingestion transaction.
//!
//! A CDR *contributes* to the summaries: its settled offers to `agent_hours` / `agent_days`
//! (by UTC hour and day of its start, our number and agent), its inbound and missed counts to
//! `call_hours`, its missed offers to `miss_offers`, its dial of a client to `dials`, a queue
//! callback choice to `callback_choices`. When a call is rebuilt, [`SummaryWriter::apply`]
//! subtracts the old CDR's contribution and adds the new one, so the sums are a function of
//! the set of stored CDRs — whatever the order or repetition of events.
//!
//! The sums are only as good as the policy they were counted with (short calls depend on
//! `shortCallSeconds`): `summary_state.short_call_seconds` records it, and reports fall back to
//! reading CDRs when the policy in force differs (until [`super::Store::rebuild_cdrs`] runs).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::StoreError;
use super::codec::to_ns;
use crate::cdr::{Cdr, Direction, OfferOutcome};
use crate::policy::Policy;
use crate::reports::{AgentTally, offer_tallies};

pub(crate) const HOUR_NS: i64 = 3_600_000_000_000;
pub(crate) const DAY_NS: i64 = 24 * HOUR_NS;

/// Key of an agent summary row: bucket start, our number, number name ('' when unknown), agent.
type AgentKey = (i64, String, String, String);
/// Key of a call summary row: hour start, our number, number name.
type CallKey = (i64, String, String);

/// What one CDR adds to the summaries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Contribution {
    hour_agents: BTreeMap<AgentKey, AgentTally>,
    day_agents: BTreeMap<AgentKey, AgentTally>,
    calls: BTreeMap<CallKey, (i64, i64)>,
    /// (agent, missed offers), with the call's client, start, number, name.
    miss_offers: Vec<(String, i64)>,
    miss_client: Option<(String, i64, String, String)>,
    /// (client, start) of an outbound call that dialled the client.
    dial: Option<(String, i64)>,
    /// Start of a missed inbound call whose caller chose a queue callback.
    chosen: Option<i64>,
}

pub(crate) fn floor_to(ns: i64, unit: i64) -> i64 {
    ns.div_euclid(unit) * unit
}

impl Contribution {
    pub(crate) fn of(cdr: &Cdr, policy: &Policy) -> Contribution {
        let mut c = Contribution::default();
        let start = to_ns(cdr.started_at);
        let number = cdr.number.clone();
        let name = cdr.number_name.clone().unwrap_or_default();
        if cdr.is_inbound_call() {
            let missed = i64::from(cdr.missed.is_some());
            c.calls.insert(
                (floor_to(start, HOUR_NS), number.clone(), name.clone()),
                (1, missed),
            );
            for (agent, t) in offer_tallies(cdr, policy) {
                let key = |unit| {
                    (
                        floor_to(start, unit),
                        number.clone(),
                        name.clone(),
                        agent.to_owned(),
                    )
                };
                c.hour_agents.insert(key(HOUR_NS), t);
                c.day_agents.insert(key(DAY_NS), t);
            }
            if cdr.missed.is_some() {
                if let Some(client) = cdr.client() {
                    let mut misses: BTreeMap<&str, i64> = BTreeMap::new();
                    for offer in cdr.offers() {
                        if matches!(offer.outcome, OfferOutcome::Missed | OfferOutcome::Declined) {
                            *misses.entry(offer.agent).or_default() += 1;
                        }
                    }
                    c.miss_offers = misses.into_iter().map(|(a, n)| (a.to_owned(), n)).collect();
                    c.miss_client = Some((client.to_owned(), start, number, name));
                }
                if cdr.callback_chosen {
                    c.chosen = Some(start);
                }
            }
        } else if cdr.direction == Direction::Outbound
            && cdr.attempted_client()
            && let Some(client) = cdr.client()
        {
            c.dial = Some((client.to_owned(), start));
        }
        c
    }
}

/// The agent and call tallies of many replaced contributions, summed by row: a transaction
/// that rebuilds hundreds of calls writes each summary row once, in a few multi-row upserts,
/// instead of a statement per call and row (each statement is a round trip to the database).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tallies {
    hour_agents: BTreeMap<AgentKey, AgentTally>,
    day_agents: BTreeMap<AgentKey, AgentTally>,
    calls: BTreeMap<CallKey, (i64, i64)>,
}

impl Tallies {
    /// Adds the change from `old` to `new`.
    pub(crate) fn replace(&mut self, old: &Contribution, new: &Contribution) {
        for (c, sign) in [(old, -1), (new, 1)] {
            for (k, t) in &c.hour_agents {
                self.hour_agents.entry(k.clone()).or_default().add(t, sign);
            }
            for (k, t) in &c.day_agents {
                self.day_agents.entry(k.clone()).or_default().add(t, sign);
            }
            for (k, (i, m)) in &c.calls {
                let e = self.calls.entry(k.clone()).or_default();
                e.0 += sign * i;
                e.1 += sign * m;
            }
        }
    }

    /// The agent rows that change (sums of zero are no change).
    fn agent_rows(map: &BTreeMap<AgentKey, AgentTally>) -> Vec<(&AgentKey, &AgentTally)> {
        map.iter()
            .filter(|(_, t)| **t != AgentTally::default())
            .collect()
    }

    /// The call rows that change.
    fn call_rows(&self) -> Vec<(&CallKey, &(i64, i64))> {
        self.calls.iter().filter(|(_, c)| **c != (0, 0)).collect()
    }
}

/// Rows per multi-row upsert: 12 parameters each stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters.
const UPSERT_ROWS: usize = 500;

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(what, e)
}

const AGENT_COLUMNS: &str = "INSERT INTO {table} (bucket, number, number_name, agent, offered, \
    answered, missed, declined, answer_ns, short_calls, short_agent, short_client) ";
const AGENT_CONFLICT: &str = " ON CONFLICT (bucket, number, number_name, agent) DO UPDATE SET \
    offered = {table}.offered + excluded.offered, answered = {table}.answered + excluded.answered, \
    missed = {table}.missed + excluded.missed, declined = {table}.declined + excluded.declined, \
    answer_ns = {table}.answer_ns + excluded.answer_ns, \
    short_calls = {table}.short_calls + excluded.short_calls, \
    short_agent = {table}.short_agent + excluded.short_agent, \
    short_client = {table}.short_client + excluded.short_client";

const CALLS_COLUMNS: &str =
    "INSERT INTO call_hours (bucket, number, number_name, inbound, missed) ";
const CALLS_CONFLICT: &str = " ON CONFLICT (bucket, number, number_name) DO UPDATE SET \
    inbound = call_hours.inbound + excluded.inbound, missed = call_hours.missed + excluded.missed";

/// Recomputes `called` for clients' missed offers after their dials changed; the list of
/// clients and its closing parenthesis follow.
const RECHECK_CALLED: &str = "UPDATE miss_offers SET called = CASE WHEN EXISTS \
    (SELECT 1 FROM dials d WHERE d.client = miss_offers.client \
     AND d.started_at > miss_offers.started_at) THEN 1 ELSE 0 END WHERE client IN (";

/// One call's contribution replaced: `old` (as stored before) by `new`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    pub call_id: &'a str,
    pub old: &'a Contribution,
    pub new: &'a Contribution,
}

/// Deletes the rows of `$calls` from `$table` (keyed by `call_id`), a few hundred at a time.
macro_rules! delete_calls {
    ($conn:expr, $db:ty, $table:literal, $calls:expr, $what:literal) => {
        for group in $calls.chunks(UPSERT_ROWS) {
            let mut q = sqlx::QueryBuilder::<$db>::new(concat!(
                "DELETE FROM ",
                $table,
                " WHERE call_id IN ("
            ));
            let mut list = q.separated(", ");
            for call_id in group {
                list.push_bind(*call_id);
            }
            q.push(")");
            q.build().execute(&mut *$conn).await.map_err(db($what))?;
        }
    };
}

/// Writes contributions on one backend's connection (SQLite or PostgreSQL: the same texts).
pub(crate) trait SummaryWriter {
    /// Replaces each call's `old` contribution by its `new` one in the per-call summaries
    /// (missed offers, dials, callback choices), for many calls in a few statements. The
    /// tallies are summed by the caller into a [`Tallies`] and written with
    /// [`SummaryWriter::apply_tallies`].
    async fn apply_links(&mut self, changes: &[Change<'_>]) -> Result<(), StoreError>;

    /// Adds summed tallies to the per-hour and per-day rows.
    async fn apply_tallies(&mut self, tallies: &Tallies) -> Result<(), StoreError>;

    /// The policy's `shortCallSeconds` the summaries were counted with, if they are sound.
    async fn summary_policy(&mut self) -> Result<Option<u32>, StoreError>;

    /// Makes the summaries those of `policy`: recounts them from every CDR when they were
    /// counted with another policy (or never, on a database from before schema 4).
    async fn ensure_summaries(&mut self, policy: &Policy) -> Result<(), StoreError>;

    /// Subtracts the contributions of the CDRs started before `cutoff` (retention).
    async fn forget_before(&mut self, cutoff: i64) -> Result<(), StoreError>;
}

const SHORT_CALL: &str = "short_call_seconds";

macro_rules! summary_writer {
    ($conn:ty, $db:ty) => {
        impl SummaryWriter for $conn {
            async fn apply_tallies(&mut self, tallies: &Tallies) -> Result<(), StoreError> {
                for (table, rows) in [
                    ("agent_hours", Tallies::agent_rows(&tallies.hour_agents)),
                    ("agent_days", Tallies::agent_rows(&tallies.day_agents)),
                ] {
                    for rows in rows.chunks(UPSERT_ROWS) {
                        let mut q =
                            sqlx::QueryBuilder::<$db>::new(AGENT_COLUMNS.replace("{table}", table));
                        q.push_values(rows, |mut b, ((bucket, number, name, agent), t)| {
                            b.push_bind(*bucket)
                                .push_bind(number.clone())
                                .push_bind(name.clone())
                                .push_bind(agent.clone())
                                .push_bind(t.offered)
                                .push_bind(t.answered)
                                .push_bind(t.missed)
                                .push_bind(t.declined)
                                .push_bind(t.answer_ns)
                                .push_bind(t.short_calls)
                                .push_bind(t.short_agent)
                                .push_bind(t.short_client);
                        });
                        q.push(AGENT_CONFLICT.replace("{table}", table));
                        q.build()
                            .execute(&mut *self)
                            .await
                            .map_err(db("updating agent summaries"))?;
                    }
                }
                for rows in tallies.call_rows().chunks(UPSERT_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(CALLS_COLUMNS);
                    q.push_values(
                        rows,
                        |mut b, ((bucket, number, name), (inbound, missed))| {
                            b.push_bind(*bucket)
                                .push_bind(number.clone())
                                .push_bind(name.clone())
                                .push_bind(*inbound)
                                .push_bind(*missed);
                        },
                    );
                    q.push(CALLS_CONFLICT);
                    q.build()
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating call summaries"))?;
                }
                Ok(())
            }

            async fn apply_links(&mut self, changes: &[Change<'_>]) -> Result<(), StoreError> {
                // Dials first: whether a missed offer was called back depends on every dial
                // of its client, so the offers are written after the dials and the clients
                // whose dials changed are re-checked last. The end state is what one call
                // after the other would leave.
                let dials: Vec<&Change<'_>> = changes
                    .iter()
                    .filter(|c| c.old.dial != c.new.dial)
                    .collect();
                let gone: Vec<&str> = dials
                    .iter()
                    .filter(|c| c.old.dial.is_some())
                    .map(|c| c.call_id)
                    .collect();
                delete_calls!(self, $db, "dials", &gone, "updating dials");
                let added: Vec<(&str, &(String, i64))> = dials
                    .iter()
                    .filter_map(|c| c.new.dial.as_ref().map(|d| (c.call_id, d)))
                    .collect();
                for rows in added.chunks(UPSERT_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO dials (call_id, client, started_at) ",
                    );
                    q.push_values(rows, |mut b, (call_id, (client, at))| {
                        b.push_bind(*call_id)
                            .push_bind(client.as_str())
                            .push_bind(*at);
                    });
                    q.build()
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating dials"))?;
                }

                let offers: Vec<&Change<'_>> = changes
                    .iter()
                    .filter(|c| {
                        (&c.old.miss_offers, &c.old.miss_client)
                            != (&c.new.miss_offers, &c.new.miss_client)
                    })
                    .collect();
                let gone: Vec<&str> = offers
                    .iter()
                    .filter(|c| c.old.miss_client.is_some())
                    .map(|c| c.call_id)
                    .collect();
                delete_calls!(self, $db, "miss_offers", &gone, "updating missed offers");
                let mut added = Vec::new();
                for c in &offers {
                    if let Some((client, at, number, name)) = &c.new.miss_client {
                        for (agent, misses) in &c.new.miss_offers {
                            added.push((c.call_id, agent, *at, client, number, name, *misses));
                        }
                    }
                }
                for rows in added.chunks(UPSERT_ROWS / 2) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO miss_offers (call_id, agent, started_at, client, number, \
                         number_name, misses, called) ",
                    );
                    q.push_values(
                        rows,
                        |mut b, (call_id, agent, at, client, number, name, misses)| {
                            b.push_bind(*call_id)
                                .push_bind(agent.as_str())
                                .push_bind(*at)
                                .push_bind(client.as_str())
                                .push_bind(number.as_str())
                                .push_bind(name.as_str())
                                .push_bind(*misses)
                                .push("CASE WHEN EXISTS (SELECT 1 FROM dials d WHERE d.client = ")
                                .push_bind_unseparated(client.as_str())
                                .push_unseparated(" AND d.started_at > ")
                                .push_bind_unseparated(*at)
                                .push_unseparated(") THEN 1 ELSE 0 END");
                        },
                    );
                    q.build()
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating missed offers"))?;
                }

                let clients: BTreeSet<&str> = dials
                    .iter()
                    .flat_map(|c| [&c.old.dial, &c.new.dial])
                    .flatten()
                    .map(|(client, _)| client.as_str())
                    .collect();
                let clients: Vec<&str> = clients.into_iter().collect();
                for group in clients.chunks(UPSERT_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(RECHECK_CALLED);
                    let mut list = q.separated(", ");
                    for client in group {
                        list.push_bind(*client);
                    }
                    q.push(")");
                    q.build()
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating missed offers"))?;
                }

                let chosen: Vec<&Change<'_>> = changes
                    .iter()
                    .filter(|c| c.old.chosen != c.new.chosen)
                    .collect();
                let gone: Vec<&str> = chosen
                    .iter()
                    .filter(|c| c.old.chosen.is_some())
                    .map(|c| c.call_id)
                    .collect();
                delete_calls!(
                    self,
                    $db,
                    "callback_choices",
                    &gone,
                    "updating callback choices"
                );
                let added: Vec<(&str, i64)> = chosen
                    .iter()
                    .filter_map(|c| c.new.chosen.map(|at| (c.call_id, at)))
                    .collect();
                for rows in added.chunks(UPSERT_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO callback_choices (call_id, started_at) ",
                    );
                    q.push_values(rows, |mut b, (call_id, at)| {
                        b.push_bind(*call_id).push_bind(*at);
                    });
                    q.build()
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating callback choices"))?;
                }
                Ok(())
            }

            async fn summary_policy(&mut self) -> Result<Option<u32>, StoreError> {
                let v: Option<i64> =
                    sqlx::query_scalar("SELECT value FROM summary_state WHERE name = $1")
                        .bind(SHORT_CALL)
                        .fetch_optional(&mut *self)
                        .await
                        .map_err(db("reading the summaries' state"))?;
                Ok(v.and_then(|v| u32::try_from(v).ok()))
            }

            async fn ensure_summaries(&mut self, policy: &Policy) -> Result<(), StoreError> {
                if self.summary_policy().await? == Some(policy.short_call_seconds) {
                    return Ok(());
                }
                for table in [
                    "agent_hours",
                    "agent_days",
                    "call_hours",
                    "miss_offers",
                    "dials",
                    "callback_choices",
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                        .execute(&mut *self)
                        .await
                        .map_err(db("clearing summaries"))?;
                }
                let mut after = String::new();
                loop {
                    let rows: Vec<(String, String)> = sqlx::query_as(
                        "SELECT call_id, json FROM cdrs WHERE call_id > $1 ORDER BY call_id \
                         LIMIT 2000",
                    )
                    .bind(&after)
                    .fetch_all(&mut *self)
                    .await
                    .map_err(db("reading CDRs to summarise"))?;
                    let Some((last, _)) = rows.last() else { break };
                    after = last.clone();
                    let none = Contribution::default();
                    let mut tallies = Tallies::default();
                    let mut news = Vec::with_capacity(rows.len());
                    for (call_id, json) in &rows {
                        let cdr = super::codec::cdr_from_json(call_id, json)?;
                        let new = Contribution::of(&cdr, policy);
                        tallies.replace(&none, &new);
                        news.push(new);
                    }
                    let changes: Vec<Change<'_>> = rows
                        .iter()
                        .zip(&news)
                        .map(|((call_id, _), new)| Change {
                            call_id,
                            old: &none,
                            new,
                        })
                        .collect();
                    self.apply_links(&changes).await?;
                    self.apply_tallies(&tallies).await?;
                }
                sqlx::query(
                    "INSERT INTO summary_state (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(SHORT_CALL)
                .bind(i64::from(policy.short_call_seconds))
                .execute(&mut *self)
                .await
                .map_err(db("recording the summaries' state"))?;
                Ok(())
            }

            async fn forget_before(&mut self, cutoff: i64) -> Result<(), StoreError> {
                let Some(short) = self.summary_policy().await? else {
                    return Ok(());
                };
                let policy = Policy {
                    short_call_seconds: short,
                    ..Policy::default()
                };
                let rows: Vec<(String, String)> =
                    sqlx::query_as("SELECT call_id, json FROM cdrs WHERE started_at < $1")
                        .bind(cutoff)
                        .fetch_all(&mut *self)
                        .await
                        .map_err(db("reading old CDRs"))?;
                let none = Contribution::default();
                let mut tallies = Tallies::default();
                let mut olds = Vec::with_capacity(rows.len());
                for (call_id, json) in &rows {
                    let old =
                        Contribution::of(&super::codec::cdr_from_json(call_id, json)?, &policy);
                    tallies.replace(&old, &none);
                    olds.push(old);
                }
                let changes: Vec<Change<'_>> = rows
                    .iter()
                    .zip(&olds)
                    .map(|((call_id, _), old)| Change {
                        call_id,
                        old,
                        new: &none,
                    })
                    .collect();
                self.apply_links(&changes).await?;
                self.apply_tallies(&tallies).await
            }
        }
    };
}

summary_writer!(sqlx::SqliteConnection, sqlx::Sqlite);
summary_writer!(sqlx::PgConnection, sqlx::Postgres);

/// The `[from, to)` period cut into raw edges (read from CDRs), whole hours and whole days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cuts {
    pub raw: Vec<(Timestamp, Timestamp)>,
    pub hours: Vec<(i64, i64)>,
    pub days: Vec<(i64, i64)>,
}

fn ceil_to(ns: i64, unit: i64) -> i64 {
    let f = floor_to(ns, unit);
    if f == ns { f } else { f.saturating_add(unit) }
}

pub(crate) fn cut(from: Timestamp, to: Timestamp) -> Cuts {
    let (a, b) = (to_ns(from), to_ns(to));
    let mut cuts = Cuts::default();
    let (h0, h1) = (ceil_to(a, HOUR_NS), floor_to(b, HOUR_NS));
    if h0 >= h1 {
        cuts.raw.push((from, to));
        return cuts;
    }
    let ts = |ns: i64| Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(from);
    if a < h0 {
        cuts.raw.push((from, ts(h0)));
    }
    if h1 < b {
        cuts.raw.push((ts(h1), to));
    }
    let (d0, d1) = (ceil_to(h0, DAY_NS), floor_to(h1, DAY_NS));
    if d0 < d1 {
        cuts.days.push((d0, d1));
        if h0 < d0 {
            cuts.hours.push((h0, d0));
        }
        if d1 < h1 {
            cuts.hours.push((d1, h1));
        }
    } else {
        cuts.hours.push((h0, h1));
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    #[test]
    fn periods_cut_into_edges_hours_and_days() {
        let c = cut(t("2026-01-01T10:30:00Z"), t("2026-01-04T05:15:00Z"));
        assert_eq!(c.raw.len(), 2);
        assert_eq!(
            c.days,
            vec![(
                to_ns(t("2026-01-02T00:00:00Z")),
                to_ns(t("2026-01-04T00:00:00Z"))
            )]
        );
        assert_eq!(
            c.hours,
            vec![
                (
                    to_ns(t("2026-01-01T11:00:00Z")),
                    to_ns(t("2026-01-02T00:00:00Z"))
                ),
                (
                    to_ns(t("2026-01-04T00:00:00Z")),
                    to_ns(t("2026-01-04T05:00:00Z"))
                ),
            ]
        );
        let inside = cut(t("2026-01-01T10:30:00Z"), t("2026-01-01T10:45:00Z"));
        assert_eq!((inside.raw.len(), inside.hours.len()), (1, 0));
        let aligned = cut(t("2026-01-01T00:00:00Z"), t("2026-01-02T00:00:00Z"));
        assert_eq!(
            (aligned.raw.len(), aligned.hours.len(), aligned.days.len()),
            (0, 0, 1)
        );
    }
}
