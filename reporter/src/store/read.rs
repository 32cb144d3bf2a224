//! Reads: the CDRs a report needs, agent state history, handlings, counts.

use dialtone_proto::v1;
use jiff::Timestamp;
use prost::Message as _;
use sqlx::Row as _;

use super::codec::{cdr_from_json, from_ns, to_ns};
use super::{Store, StoreError, sort_cdrs};
use crate::Cdr;
use crate::reports::{AgentStateChange, HandleReason, HandleTarget, Handling};

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(what, e)
}

/// The CDRs a report reads: the period's calls, and around them the other calls of the same
/// clients that the definitions look at — earlier misses (is an outbound call a callback? which
/// group does a miss join?) and later calls up to now (was the miss called back? was the group
/// processed?).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportWindow {
    /// Calls started at or after this instant…
    pub from: Timestamp,
    /// …and before this one are the period's.
    pub to: Timestamp,
    /// Calls of the period's clients started at or after this instant…
    pub context_from: Timestamp,
    /// …and before this one come along.
    pub context_to: Timestamp,
}

/// Row counts, for tests, `dialtone reporter` logs and the durability checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Stored call events.
    pub events: u64,
    /// CDRs.
    pub cdrs: u64,
    /// Stored agent state changes.
    pub agent_states: u64,
    /// Handlings.
    pub handlings: u64,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

pub(crate) fn decode_cdrs<R: sqlx::Row>(rows: &[R]) -> Result<Vec<Cdr>, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut cdrs = Vec::with_capacity(rows.len());
    for row in rows {
        let call_id: String = row.try_get(0).map_err(db("reading a CDR"))?;
        let json: String = row.try_get(1).map_err(db("reading a CDR"))?;
        cdrs.push(cdr_from_json(&call_id, &json)?);
    }
    sort_cdrs(&mut cdrs);
    Ok(cdrs)
}

impl Store {
    /// The CDRs of a report window, by start then call id.
    ///
    /// # Errors
    ///
    /// A database error, or a stored CDR that does not decode ([`StoreError::Corrupt`]).
    pub async fn report_cdrs(&self, window: &ReportWindow) -> Result<Vec<Cdr>, StoreError> {
        let rows = with_pool!(self, read, |pool| {
            sqlx::query(
                "SELECT call_id, json FROM cdrs \
                 WHERE (started_at >= $1 AND started_at < $2) \
                    OR (started_at >= $3 AND started_at < $4 AND client IN \
                        (SELECT client FROM cdrs WHERE started_at >= $1 AND started_at < $2 \
                         AND client IS NOT NULL))",
            )
            .bind(to_ns(window.from))
            .bind(to_ns(window.to))
            .bind(to_ns(window.context_from))
            .bind(to_ns(window.context_to))
            .fetch_all(pool)
            .await
            .map_err(db("reading CDRs"))
            .and_then(|rows| decode_cdrs(&rows))
        })?;
        Ok(rows)
    }

    /// The CDRs of calls started in `[from, to)`, by start then call id.
    ///
    /// # Errors
    ///
    /// As [`Store::report_cdrs`].
    pub async fn cdrs_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Cdr>, StoreError> {
        with_pool!(self, read, |pool| {
            sqlx::query("SELECT call_id, json FROM cdrs WHERE started_at >= $1 AND started_at < $2")
                .bind(to_ns(from))
                .bind(to_ns(to))
                .fetch_all(pool)
                .await
                .map_err(db("reading CDRs"))
                .and_then(|rows| decode_cdrs(&rows))
        })
    }

    /// One call's CDR; `None` when the call is unknown or its `CallStarted` has not arrived.
    ///
    /// # Errors
    ///
    /// As [`Store::report_cdrs`].
    pub async fn cdr(&self, call_id: &str) -> Result<Option<Cdr>, StoreError> {
        let cdrs = with_pool!(self, read, |pool| {
            sqlx::query("SELECT call_id, json FROM cdrs WHERE call_id = $1")
                .bind(call_id)
                .fetch_all(pool)
                .await
                .map_err(db("reading a CDR"))
                .and_then(|rows| decode_cdrs(&rows))
        })?;
        Ok(cdrs.into_iter().next())
    }

    /// One call's stored events, in no particular order.
    ///
    /// # Errors
    ///
    /// A database error, or a payload that does not decode.
    pub async fn call_events(&self, call_id: &str) -> Result<Vec<v1::CallEvent>, StoreError> {
        let payloads: Vec<Vec<u8>> = with_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT payload FROM events WHERE call_id = $1")
                .bind(call_id)
                .fetch_all(pool)
                .await
                .map_err(db("reading events"))
        })?;
        payloads
            .iter()
            .map(|p| {
                v1::CallEvent::decode(p.as_slice())
                    .map_err(|e| StoreError::corrupt_row(format!("an event of call {call_id}"), e))
            })
            .collect()
    }

    /// Agent state changes in `[from, to)`, plus each agent's last change before `from` (the
    /// state the agent was in when the period began).
    ///
    /// # Errors
    ///
    /// A database error, or a row that does not decode.
    pub async fn agent_states(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<AgentStateChange>, StoreError> {
        let rows: Vec<(String, String, i64, String, i64)> = with_pool!(self, read, |pool| {
            sqlx::query_as(
                // Each agent's last change before `from` by index seeks: the agents are
                // listed by skipping through the (agent, at) index one agent at a time (a
                // GROUP BY over everything before `from` read years of history for a
                // 30-day heat map).
                "WITH RECURSIVE agents (a) AS ( \
                     SELECT MIN(agent) FROM agent_states \
                     UNION ALL \
                     SELECT (SELECT MIN(agent) FROM agent_states WHERE agent > a) \
                     FROM agents WHERE a IS NOT NULL) \
                 SELECT agent, state, at, source, sequence FROM agent_states \
                 WHERE at >= $1 AND at < $2 \
                 UNION ALL \
                 SELECT s.agent, s.state, s.at, s.source, s.sequence \
                 FROM agents JOIN agent_states s ON s.agent = agents.a AND s.at = \
                     (SELECT MAX(at) FROM agent_states WHERE agent = agents.a AND at < $1)",
            )
            .bind(to_ns(from))
            .bind(to_ns(to))
            .fetch_all(pool)
            .await
            .map_err(db("reading agent states"))
        })?;
        rows.into_iter()
            .map(|(agent, state, at, source, sequence)| {
                let what = || format!("agent state of {agent}");
                let state = v1::AgentState::from_code(&state)
                    .ok_or_else(|| StoreError::corrupt_row(what(), format!("state {state:?}")))?;
                Ok(AgentStateChange {
                    at: from_ns(at, &what())?,
                    agent,
                    state,
                    source,
                    sequence: u64::try_from(sequence).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Handlings made at or after `since`, oldest first.
    ///
    /// # Errors
    ///
    /// A database error, or a row that does not decode.
    pub async fn handlings_since(&self, since: Timestamp) -> Result<Vec<Handling>, StoreError> {
        let rows = with_pool!(self, read, |pool| {
            sqlx::query(
                "SELECT client, group_id, reason, note, by_user, at FROM handlings \
                 WHERE at >= $1 ORDER BY at, id",
            )
            .bind(to_ns(since))
            .fetch_all(pool)
            .await
            .map_err(db("reading handlings"))
            .and_then(|rows| rows.iter().map(handling_from_row).collect())
        })?;
        Ok(rows)
    }

    /// How many rows each table holds.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        with_pool!(self, read, |pool| {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM cdrs), \
                 (SELECT COUNT(*) FROM agent_states), (SELECT COUNT(*) FROM handlings)",
            )
            .fetch_one(pool)
            .await
            .map_err(db("counting rows"))?;
            let get = |i: usize| row.try_get::<i64, _>(i).map(count);
            Ok(Counts {
                events: get(0).map_err(db("counting rows"))?,
                cdrs: get(1).map_err(db("counting rows"))?,
                agent_states: get(2).map_err(db("counting rows"))?,
                handlings: get(3).map_err(db("counting rows"))?,
            })
        })
    }
}

/// A handling from a row of `client, group_id, reason, note, by_user, at`.
pub(crate) fn handling_from_row<R: sqlx::Row>(row: &R) -> Result<Handling, StoreError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let bad = |e: sqlx::Error| StoreError::corrupt_row("a handling", e);
    let client: Option<String> = row.try_get("client").map_err(bad)?;
    let group: Option<String> = row.try_get("group_id").map_err(bad)?;
    let reason: String = row.try_get("reason").map_err(bad)?;
    let note: Option<String> = row.try_get("note").map_err(bad)?;
    let by: String = row.try_get("by_user").map_err(bad)?;
    let at: i64 = row.try_get("at").map_err(bad)?;
    let target = match (client, group) {
        (Some(c), _) => HandleTarget::Client(c),
        (None, Some(g)) => HandleTarget::Group(g),
        (None, None) => {
            return Err(StoreError::corrupt_row("a handling", "no client or group"));
        }
    };
    Ok(Handling {
        target,
        reason: reason
            .parse::<HandleReason>()
            .map_err(|e| StoreError::corrupt_row("a handling", e))?,
        note,
        by,
        at: from_ns(at, "a handling")?,
    })
}
