//! Missed groups kept by ingestion (schema 5): each client's groups over the whole stored
//! history, rebuilt with [`crate::reports`]' own grouping whenever one of the client's calls
//! or handlings changes, so that the unprocessed list and the callbacks report read a few
//! group rows instead of every call of every client with a miss.
//!
//! Which clients to rebuild ([`GroupDirty`]): the client of every rebuilt CDR (as stored before
//! and after) that is a miss, or that already has groups (an answered call or a dial may close
//! or extend one); anonymous misses are groups of their own, rebuilt by call id. Handlings and
//! retention rebuild the clients they touch.
//!
//! Groups are built as of the end of time; a report as of an earlier `now` reads them only
//! when no group holds a fact after `now` ([`Store::groups_usable`]), else it builds the groups
//! from the CDRs as before.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec::{cdr_from_json, from_ns, to_ns};
use super::read::handling_from_row;
use super::{Store, StoreError};
use crate::cdr::{Cdr, Direction, MissedReason};
use crate::reports::callbacks::Tally;
use crate::reports::groups::{Group, GroupAttempt, GroupMiss, build_groups};
use crate::reports::{Dataset, HandleReason, Handling, ProcessedHow, Processing};

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(what, e)
}

/// Clients (and anonymous calls) per statement.
const CLIENTS_PER_QUERY: usize = 500;
/// Group rows per multi-row insert (9 parameters each).
const INSERT_ROWS: usize = 500;
/// A day in nanoseconds: the `miss_groups_long` index's span (see the migration).
pub(crate) const LONG_SPAN_NS: i64 = 86_400_000_000_000;
const STATE: &str = "miss_groups";

/// Serializes PostgreSQL transactions that rebuild the same client's groups.
const LOCK_CLIENT: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 1))";

/// What a transaction changed that the groups depend on.
#[derive(Debug, Default)]
pub(crate) struct GroupDirty {
    /// Clients to rebuild.
    clients: BTreeSet<String>,
    /// Clients to rebuild only if they have groups already.
    maybe: BTreeSet<String>,
    /// Anonymous calls to rebuild (by call id).
    anonymous: BTreeSet<String>,
}

impl GroupDirty {
    /// A CDR as stored before or after a change.
    pub(crate) fn note(&mut self, cdr: &Cdr) {
        let missed = cdr.direction == Direction::Inbound && cdr.missed.is_some();
        match cdr.client() {
            None if cdr.direction == Direction::Inbound => {
                self.anonymous.insert(cdr.call_id.clone());
            }
            None => {}
            Some(c) if missed => {
                self.clients.insert(c.to_owned());
            }
            Some(c) => {
                self.maybe.insert(c.to_owned());
            }
        }
    }

    /// A handling: its client, or the call its group id names.
    pub(crate) fn client(&mut self, client: &str) {
        self.clients.insert(client.to_owned());
    }

    fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.maybe.is_empty() && self.anonymous.is_empty()
    }
}

/// A group as kept in `miss_groups.detail`: instants in nanoseconds, short keys (there are
/// millions of rows).
#[derive(Debug, Serialize, Deserialize)]
struct Detail {
    m: Vec<MissDetail>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    a: Vec<AttemptDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<ProcessingDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ps: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MissDetail {
    id: String,
    at: i64,
    r: MissedReason,
    n: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ag: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AttemptDetail {
    id: String,
    at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ag: Option<String>,
    ok: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProcessingDetail {
    how: ProcessedHow,
    at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<HandleReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call: Option<String>,
}

/// One `miss_groups` row to write.
struct GroupRow {
    id: String,
    client: Option<String>,
    first: i64,
    last: i64,
    fact: i64,
    processed: Option<i64>,
    first_attempt: Option<i64>,
    callback_agent: Option<String>,
    detail: String,
    agents: Vec<String>,
}

impl GroupRow {
    fn of(g: &Group) -> Result<GroupRow, StoreError> {
        let detail = Detail {
            m: g.misses
                .iter()
                .map(|m| MissDetail {
                    id: m.call_id.clone(),
                    at: to_ns(m.started_at),
                    r: m.reason,
                    n: m.number.clone(),
                    nn: m.number_name.clone(),
                    ag: m.agents.clone(),
                })
                .collect(),
            a: g.attempts
                .iter()
                .map(|a| AttemptDetail {
                    id: a.call_id.clone(),
                    at: to_ns(a.started_at),
                    ag: a.agent.clone(),
                    ok: a.answered,
                })
                .collect(),
            p: g.processed.as_ref().map(|p| ProcessingDetail {
                how: p.how,
                at: to_ns(p.at),
                by: p.by.clone(),
                reason: p.reason,
                note: p.note.clone(),
                call: p.call_id.clone(),
            }),
            ps: g.processed_by_call_started_at.map(to_ns),
        };
        let detail = serde_json::to_string(&detail)
            .map_err(|e| StoreError::corrupt_row(format!("group {}", g.id), e))?;
        Ok(GroupRow {
            id: g.id.clone(),
            client: g.client.clone(),
            first: to_ns(g.first_missed_at()),
            last: to_ns(g.last_missed_at()),
            fact: to_ns(g.last_fact_at()),
            processed: g.processed.as_ref().map(|p| to_ns(p.at)),
            first_attempt: g.attempts.first().map(|a| to_ns(a.started_at)),
            callback_agent: g.attempts.first().and_then(|a| a.agent.clone()),
            detail,
            agents: g.agents(),
        })
    }
}

/// Decodes a stored group.
fn group_from_row(id: String, client: Option<String>, json: &str) -> Result<Group, StoreError> {
    let what = || format!("group {id}");
    let d: Detail = serde_json::from_str(json).map_err(|e| StoreError::corrupt_row(what(), e))?;
    let at = |ns: i64| from_ns(ns, "a group");
    let misses =
        d.m.into_iter()
            .map(|m| {
                Ok(GroupMiss {
                    call_id: m.id,
                    started_at: at(m.at)?,
                    reason: m.r,
                    number: m.n,
                    number_name: m.nn,
                    agents: m.ag,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
    let attempts =
        d.a.into_iter()
            .map(|a| {
                Ok(GroupAttempt {
                    call_id: a.id,
                    started_at: at(a.at)?,
                    agent: a.ag,
                    answered: a.ok,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
    let processed = match d.p {
        Some(p) => Some(Processing {
            how: p.how,
            at: at(p.at)?,
            by: p.by,
            reason: p.reason,
            note: p.note,
            call_id: p.call,
        }),
        None => None,
    };
    Ok(Group {
        id,
        client,
        misses,
        attempts,
        processed,
        processed_by_call_started_at: d.ps.map(at).transpose()?,
    })
}

/// Rebuilds groups on one backend's connection (SQLite or PostgreSQL: the same texts).
pub(crate) trait GroupWriter {
    /// Rebuilds the groups `dirty` names, from the CDRs and handlings stored so far in this
    /// transaction.
    async fn refresh_groups(&mut self, dirty: &GroupDirty, pg: bool) -> Result<(), StoreError>;

    /// Builds every group when the database comes from before schema 5.
    async fn ensure_groups(&mut self, pg: bool) -> Result<(), StoreError>;
}

macro_rules! group_writer {
    ($conn:ty, $db:ty) => {
        impl GroupWriter for $conn {
            async fn refresh_groups(
                &mut self,
                dirty: &GroupDirty,
                pg: bool,
            ) -> Result<(), StoreError> {
                if dirty.is_empty() {
                    return Ok(());
                }
                let mut clients = dirty.clients.clone();
                let maybe: Vec<&String> = dirty
                    .maybe
                    .iter()
                    .filter(|c| !clients.contains(*c))
                    .collect();
                for chunk in maybe.chunks(CLIENTS_PER_QUERY) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT DISTINCT client FROM miss_groups WHERE client IN (",
                    );
                    let mut list = q.separated(", ");
                    for c in chunk {
                        list.push_bind(c.as_str());
                    }
                    q.push(")");
                    let found: Vec<(String,)> = q
                        .build_query_as()
                        .fetch_all(&mut *self)
                        .await
                        .map_err(db("reading groups"))?;
                    clients.extend(found.into_iter().map(|(c,)| c));
                }
                if pg {
                    for c in &clients {
                        sqlx::query(LOCK_CLIENT)
                            .bind(c.as_str())
                            .execute(&mut *self)
                            .await
                            .map_err(db("locking a client"))?;
                    }
                }
                // Every group named goes first: a call whose client changed moves its group.
                let clients: Vec<&str> = clients.iter().map(String::as_str).collect();
                let anonymous: Vec<&str> = dirty.anonymous.iter().map(String::as_str).collect();
                for chunk in clients.chunks(CLIENTS_PER_QUERY) {
                    for (text, close, what) in [
                        (
                            "DELETE FROM miss_group_agents WHERE group_id IN \
                             (SELECT id FROM miss_groups WHERE client IN (",
                            "))",
                            "deleting groups' agents",
                        ),
                        (
                            "DELETE FROM miss_groups WHERE client IN (",
                            ")",
                            "deleting groups",
                        ),
                    ] {
                        let mut q = sqlx::QueryBuilder::<$db>::new(text);
                        let mut list = q.separated(", ");
                        for c in chunk {
                            list.push_bind(*c);
                        }
                        q.push(close);
                        q.build().execute(&mut *self).await.map_err(db(what))?;
                    }
                }
                for chunk in anonymous.chunks(CLIENTS_PER_QUERY) {
                    for (text, close, what) in [
                        (
                            "DELETE FROM miss_group_agents WHERE group_id IN (",
                            ")",
                            "deleting groups' agents",
                        ),
                        (
                            "DELETE FROM miss_groups WHERE client IS NULL AND id IN (",
                            ")",
                            "deleting groups",
                        ),
                    ] {
                        let mut q = sqlx::QueryBuilder::<$db>::new(text);
                        let mut list = q.separated(", ");
                        for c in chunk {
                            list.push_bind(*c);
                        }
                        q.push(close);
                        q.build().execute(&mut *self).await.map_err(db(what))?;
                    }
                }
                // Handlings that name a group by id: few, and any client's group may be named.
                let rows = sqlx::query(
                    "SELECT client, group_id, reason, note, by_user, at FROM handlings \
                     WHERE group_id IS NOT NULL",
                )
                .fetch_all(&mut *self)
                .await
                .map_err(db("reading handlings"))?;
                let by_id = rows
                    .iter()
                    .map(handling_from_row)
                    .collect::<Result<Vec<Handling>, _>>()?;
                let mut groups: Vec<Group> = Vec::new();
                for chunk in clients.chunks(CLIENTS_PER_QUERY) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT call_id, json FROM cdrs WHERE client IN (",
                    );
                    let mut list = q.separated(", ");
                    for c in chunk {
                        list.push_bind(*c);
                    }
                    q.push(")");
                    let rows: Vec<(String, String)> = q
                        .build_query_as()
                        .fetch_all(&mut *self)
                        .await
                        .map_err(db("reading clients' CDRs"))?;
                    let mut cdrs = rows
                        .iter()
                        .map(|(id, json)| cdr_from_json(id, json))
                        .collect::<Result<Vec<Cdr>, _>>()?;
                    super::sort_cdrs(&mut cdrs);
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT client, group_id, reason, note, by_user, at FROM handlings \
                         WHERE client IN (",
                    );
                    let mut list = q.separated(", ");
                    for c in chunk {
                        list.push_bind(*c);
                    }
                    q.push(")");
                    let rows = q
                        .build()
                        .fetch_all(&mut *self)
                        .await
                        .map_err(db("reading handlings"))?;
                    let mut handlings = rows
                        .iter()
                        .map(handling_from_row)
                        .collect::<Result<Vec<Handling>, _>>()?;
                    handlings.extend(by_id.iter().cloned());
                    let ds = Dataset::new(&cdrs);
                    groups.extend(
                        build_groups(&ds, &handlings, None, Timestamp::MAX)
                            .into_iter()
                            .filter(|g| g.client.is_some()),
                    );
                }
                for chunk in anonymous.chunks(CLIENTS_PER_QUERY) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT call_id, json FROM cdrs WHERE client IS NULL AND call_id IN (",
                    );
                    let mut list = q.separated(", ");
                    for c in chunk {
                        list.push_bind(*c);
                    }
                    q.push(")");
                    let rows: Vec<(String, String)> = q
                        .build_query_as()
                        .fetch_all(&mut *self)
                        .await
                        .map_err(db("reading anonymous CDRs"))?;
                    let cdrs = rows
                        .iter()
                        .map(|(id, json)| cdr_from_json(id, json))
                        .collect::<Result<Vec<Cdr>, _>>()?;
                    let ds = Dataset::new(&cdrs);
                    groups.extend(
                        build_groups(&ds, &by_id, None, Timestamp::MAX)
                            .into_iter()
                            .filter(|g| g.client.is_none()),
                    );
                }
                let rows = groups.iter().map(GroupRow::of).collect::<Result<Vec<_>, _>>()?;
                for chunk in rows.chunks(INSERT_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO miss_groups (id, client, first_missed_at, last_missed_at, \
                         last_fact_at, processed_at, first_attempt_at, callback_agent, detail) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(r.id.as_str())
                            .push_bind(r.client.as_deref())
                            .push_bind(r.first)
                            .push_bind(r.last)
                            .push_bind(r.fact)
                            .push_bind(r.processed)
                            .push_bind(r.first_attempt)
                            .push_bind(r.callback_agent.as_deref())
                            .push_bind(r.detail.as_str());
                    });
                    // A group id is a call id: unique unless the call changed client in a
                    // way the deletes above did not see.
                    q.push(
                        " ON CONFLICT (id) DO UPDATE SET client = excluded.client, \
                         first_missed_at = excluded.first_missed_at, \
                         last_missed_at = excluded.last_missed_at, \
                         last_fact_at = excluded.last_fact_at, \
                         processed_at = excluded.processed_at, \
                         first_attempt_at = excluded.first_attempt_at, \
                         callback_agent = excluded.callback_agent, detail = excluded.detail",
                    );
                    q.build()
                        .execute(&mut *self)
                        .await
                        .map_err(db("writing groups"))?;
                }
                let agents: Vec<(&str, &str)> = rows
                    .iter()
                    .flat_map(|r| r.agents.iter().map(|a| (r.id.as_str(), a.as_str())))
                    .collect();
                for chunk in agents.chunks(INSERT_ROWS * 4) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO miss_group_agents (group_id, agent) ",
                    );
                    q.push_values(chunk, |mut b, (id, agent)| {
                        b.push_bind(*id).push_bind(*agent);
                    });
                    q.push(" ON CONFLICT (group_id, agent) DO NOTHING");
                    q.build()
                        .execute(&mut *self)
                        .await
                        .map_err(db("writing groups' agents"))?;
                }
                Ok(())
            }

            async fn ensure_groups(&mut self, pg: bool) -> Result<(), StoreError> {
                let built: Option<i64> =
                    sqlx::query_scalar("SELECT value FROM summary_state WHERE name = $1")
                        .bind(STATE)
                        .fetch_optional(&mut *self)
                        .await
                        .map_err(db("reading the groups' state"))?;
                if built == Some(1) {
                    return Ok(());
                }
                let mut after = String::new();
                loop {
                    let ids: Vec<(String, Option<String>)> = sqlx::query_as(
                        "SELECT call_id, client FROM cdrs WHERE call_id > $1 \
                         AND direction = 'inbound' AND missed_reason IS NOT NULL \
                         ORDER BY call_id LIMIT 5000",
                    )
                    .bind(&after)
                    .fetch_all(&mut *self)
                    .await
                    .map_err(db("listing missed calls"))?;
                    let Some((last, _)) = ids.last() else { break };
                    after = last.clone();
                    let mut dirty = GroupDirty::default();
                    for (call_id, client) in ids {
                        match client {
                            Some(c) => dirty.clients.insert(c),
                            None => dirty.anonymous.insert(call_id),
                        };
                    }
                    self.refresh_groups(&dirty, pg).await?;
                }
                sqlx::query(
                    "INSERT INTO summary_state (name, value) VALUES ($1, 1) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(STATE)
                .execute(&mut *self)
                .await
                .map_err(db("recording the groups' state"))?;
                Ok(())
            }
        }
    };
}

group_writer!(sqlx::SqliteConnection, sqlx::Sqlite);
group_writer!(sqlx::PgConnection, sqlx::Postgres);

/// Which stored groups a page reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupsOf {
    /// Every group (the unprocessed list's `all` view).
    All,
    /// Groups not processed (`open`).
    Open,
    /// Processed groups.
    Processed,
    /// Groups of known clients (the callbacks report).
    Clients,
}

impl GroupsOf {
    fn condition(self) -> &'static str {
        match self {
            GroupsOf::All => "",
            GroupsOf::Open => " AND processed_at IS NULL",
            GroupsOf::Processed => " AND processed_at IS NOT NULL",
            GroupsOf::Clients => " AND client IS NOT NULL",
        }
    }
}

/// The callbacks report's sums over stored groups.
#[derive(Debug, Clone, Default)]
pub struct CallbackSums {
    /// Per agent.
    pub(crate) per_agent: BTreeMap<String, Tally>,
    /// The team.
    pub(crate) total: Tally,
}

impl Store {
    /// The stored groups are complete and hold no fact after `now`: a report as of `now` may
    /// read them.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn groups_usable(&self, now: Timestamp) -> Result<bool, StoreError> {
        with_pool!(self, read, |pool| {
            let built: Option<i64> =
                sqlx::query_scalar("SELECT value FROM summary_state WHERE name = $1")
                    .bind(STATE)
                    .fetch_optional(pool)
                    .await
                    .map_err(db("reading the groups' state"))?;
            if built != Some(1) {
                return Ok(false);
            }
            let later: Option<i64> = sqlx::query_scalar(
                "SELECT last_fact_at FROM miss_groups WHERE last_fact_at > $1 LIMIT 1",
            )
            .bind(to_ns(now))
            .fetch_optional(pool)
            .await
            .map_err(db("reading groups"))?;
            Ok(later.is_none())
        })
    }

    /// Up to about `limit` groups whose first miss is in `[from, to)`, oldest first — completed
    /// with every group sharing the last one's first miss, so that the next page (`from` just
    /// after it) neither repeats nor skips one.
    ///
    /// # Errors
    ///
    /// A database error, or a group that does not decode.
    pub async fn group_page(
        &self,
        (from, to): (Timestamp, Timestamp),
        which: GroupsOf,
        limit: usize,
    ) -> Result<Vec<Group>, StoreError> {
        let base = format!(
            "SELECT id, client, detail FROM miss_groups WHERE first_missed_at >= $1 \
             AND first_missed_at < $2{}",
            which.condition()
        );
        let page = format!("{base} ORDER BY first_missed_at LIMIT $3");
        let mut rows: Vec<(String, Option<String>, String)> = with_pool!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(page))
                .bind(to_ns(from))
                .bind(to_ns(to))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await
                .map_err(db("reading groups"))
        })?;
        if rows.len() >= limit
            && let Some((id, client, json)) = rows.last()
        {
            let last = group_from_row(id.clone(), client.clone(), json)?.first_missed_at();
            let known: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
            let tie = format!("{base} AND first_missed_at = $1");
            let more: Vec<(String, Option<String>, String)> = with_pool!(self, read, |pool| {
                sqlx::query_as(sqlx::AssertSqlSafe(tie))
                    .bind(to_ns(last))
                    .bind(to_ns(to))
                    .fetch_all(pool)
                    .await
                    .map_err(db("reading groups"))
            })?;
            rows.extend(more.into_iter().filter(|r| !known.contains(&r.0)));
        }
        let mut groups = rows
            .into_iter()
            .map(|(id, client, json)| group_from_row(id, client, &json))
            .collect::<Result<Vec<_>, _>>()?;
        crate::reports::groups::sort_groups(&mut groups);
        Ok(groups)
    }

    /// How many groups `which` names have their first miss in `[from, to)`.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn count_groups(
        &self,
        (from, to): (Timestamp, Timestamp),
        which: GroupsOf,
    ) -> Result<u64, StoreError> {
        let text = format!(
            "SELECT COUNT(*) FROM miss_groups WHERE first_missed_at >= $1 \
             AND first_missed_at < $2{}",
            which.condition()
        );
        let n: i64 = with_pool!(self, read, |pool| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(text))
                .bind(to_ns(from))
                .bind(to_ns(to))
                .fetch_one(pool)
                .await
                .map_err(db("counting groups"))
        })?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Groups that began before `first_before` and have a miss at or after `last_from`: the
    /// groups a window starting at `first_before` cuts in two. Those spanning less than a day
    /// began in the day before `first_before` (an index range); the others are few
    /// (`miss_groups_long`).
    ///
    /// # Errors
    ///
    /// A database error, or a group that does not decode.
    pub async fn cut_groups(
        &self,
        first_before: Timestamp,
        last_from: Timestamp,
    ) -> Result<Vec<Group>, StoreError> {
        // The same condition text as the partial index's, so that both databases use it.
        let long = format!(
            "SELECT id, client, detail FROM miss_groups \
             WHERE last_missed_at - first_missed_at >= {LONG_SPAN_NS} \
             AND last_missed_at >= $1 AND first_missed_at < $2"
        );
        let short = "SELECT id, client, detail FROM miss_groups WHERE first_missed_at >= $3 \
             AND first_missed_at < $2 AND last_missed_at >= $1";
        let day_before = to_ns(first_before).saturating_sub(LONG_SPAN_NS);
        let rows: Vec<(String, Option<String>, String)> = with_pool!(self, read, |pool| {
            let mut rows: Vec<(String, Option<String>, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(long))
                    .bind(to_ns(last_from))
                    .bind(to_ns(first_before))
                    .fetch_all(pool)
                    .await
                    .map_err(db("reading groups"))?;
            let mut more: Vec<(String, Option<String>, String)> = sqlx::query_as(short)
                .bind(to_ns(last_from))
                .bind(to_ns(first_before))
                .bind(day_before)
                .fetch_all(pool)
                .await
                .map_err(db("reading groups"))?;
            rows.append(&mut more);
            Ok::<_, StoreError>(rows)
        })?;
        let mut rows = rows;
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.dedup_by(|a, b| a.0 == b.0);
        rows.into_iter()
            .map(|(id, client, json)| group_from_row(id, client, &json))
            .collect()
    }

    /// The callbacks report's sums over the known clients' groups whose first miss is in
    /// `[from, to)`, with `sla`.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn callback_sums(
        &self,
        (from, to): (Timestamp, Timestamp),
        sla: jiff::SignedDuration,
    ) -> Result<CallbackSums, StoreError> {
        let sla_ns = i64::try_from(sla.as_nanos()).unwrap_or(i64::MAX);
        type CalledRow = (Option<String>, i64, i64, i64);
        let (called, never, never_total): (Vec<CalledRow>, Vec<(String, i64)>, i64) =
            with_pool!(self, read, |pool| {
                let called: Vec<CalledRow> = sqlx::query_as(
                    "SELECT callback_agent, COUNT(*), \
                     SUM(CASE WHEN first_attempt_at - first_missed_at <= $3 THEN 1 ELSE 0 END), \
                     CAST(SUM(first_attempt_at - first_missed_at) AS BIGINT) \
                     FROM miss_groups WHERE first_missed_at >= $1 AND first_missed_at < $2 \
                     AND client IS NOT NULL AND first_attempt_at IS NOT NULL \
                     GROUP BY callback_agent",
                )
                .bind(to_ns(from))
                .bind(to_ns(to))
                .bind(sla_ns)
                .fetch_all(pool)
                .await
                .map_err(db("summing callbacks"))?;
                let never: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT a.agent, COUNT(*) FROM miss_groups g \
                     JOIN miss_group_agents a ON a.group_id = g.id \
                     WHERE g.first_missed_at >= $1 AND g.first_missed_at < $2 \
                     AND g.client IS NOT NULL AND g.first_attempt_at IS NULL GROUP BY a.agent",
                )
                .bind(to_ns(from))
                .bind(to_ns(to))
                .fetch_all(pool)
                .await
                .map_err(db("summing callbacks"))?;
                let never_total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM miss_groups WHERE first_missed_at >= $1 \
                     AND first_missed_at < $2 AND client IS NOT NULL \
                     AND first_attempt_at IS NULL",
                )
                .bind(to_ns(from))
                .bind(to_ns(to))
                .fetch_one(pool)
                .await
                .map_err(db("summing callbacks"))?;
                Ok::<_, StoreError>((called, never, never_total))
            })?;
        let n = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        let mut sums = CallbackSums::default();
        for (agent, count, within, total_ns) in called {
            let t = Tally {
                called_back: n(count),
                within_sla: n(within),
                late: n(count - within),
                never: 0,
                time_ns: total_ns,
            };
            sums.total.called_back += t.called_back;
            sums.total.within_sla += t.within_sla;
            sums.total.late += t.late;
            sums.total.time_ns += t.time_ns;
            if let Some(agent) = agent {
                let e = sums.per_agent.entry(agent).or_default();
                e.called_back += t.called_back;
                e.within_sla += t.within_sla;
                e.late += t.late;
                e.time_ns += t.time_ns;
            }
        }
        for (agent, count) in never {
            sums.per_agent.entry(agent).or_default().never += n(count);
        }
        sums.total.never = n(never_total);
        Ok(sums)
    }
}
