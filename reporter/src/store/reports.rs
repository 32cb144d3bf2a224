//! Reads for the fast report paths: summary sums, uncalled misses, pages of CDRs newest first,
//! and the calls of a few clients. [`crate::reports_service`] assembles the reports from them;
//! what each read must equal is stated there.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::codec::to_ns;
use super::read::decode_cdrs;
use super::summary::{Cuts, cut};
use super::{Store, StoreError};
use crate::Cdr;
use crate::policy::Policy;
use crate::reports::AgentTally;

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(what, e)
}

/// One row of `call_hours`: hour start (ns), number, number name, inbound, missed.
pub type CallHour = (i64, String, String, i64, i64);

/// Which calls a page of the missed report or the call log may come from; every field narrows
/// (`None` does not). The caller checks each row against the whole filter again.
#[derive(Debug, Clone, Default)]
pub struct PageFilter {
    /// Only CDRs with a missed reason (the missed report).
    pub missed_only: bool,
    /// This missed reason.
    pub reason: Option<String>,
    /// Our number: the number dialled (inbound), the caller ID (outbound), or the name.
    pub number: Option<String>,
    /// The client.
    pub client: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<&'static str>,
}

type AgentSumRow = (String, i64, i64, i64, i64, i64, i64, i64, i64);

const AGENT_SUMS: &str = "SELECT agent, CAST(SUM(offered) AS BIGINT), \
    CAST(SUM(answered) AS BIGINT), CAST(SUM(missed) AS BIGINT), CAST(SUM(declined) AS BIGINT), \
    CAST(SUM(answer_ns) AS BIGINT), CAST(SUM(short_calls) AS BIGINT), \
    CAST(SUM(short_agent) AS BIGINT), CAST(SUM(short_client) AS BIGINT) FROM {table} \
    WHERE bucket >= $1 AND bucket < $2 AND ($3 = '' OR number = $3 OR number_name = $3) \
    AND ($4 = '' OR agent = $4) GROUP BY agent";

impl Store {
    /// Whether the summaries were counted with `policy` (else reports read CDRs).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn summaries_match(&self, policy: &Policy) -> Result<bool, StoreError> {
        let v: Option<i64> = with_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT value FROM summary_state WHERE name = 'short_call_seconds'")
                .fetch_optional(pool)
                .await
                .map_err(db("reading the summaries' state"))
        })?;
        Ok(v == Some(i64::from(policy.short_call_seconds)))
    }

    /// The period cut into raw edges, whole hours and whole days (UTC).
    pub fn summary_cuts(&self, from: Timestamp, to: Timestamp) -> SummaryCuts {
        SummaryCuts(cut(from, to))
    }

    /// Per-agent offer sums over the whole hours and days of `cuts` (not its raw edges), for
    /// our number `number` (number or name) and agent `agent` when given.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn agent_sums(
        &self,
        cuts: &SummaryCuts,
        number: Option<&str>,
        agent: Option<&str>,
    ) -> Result<BTreeMap<String, AgentTally>, StoreError> {
        let mut sums: BTreeMap<String, AgentTally> = BTreeMap::new();
        let parts = cuts
            .0
            .hours
            .iter()
            .map(|r| ("agent_hours", r))
            .chain(cuts.0.days.iter().map(|r| ("agent_days", r)));
        for (table, (a, b)) in parts {
            let text = AGENT_SUMS.replace("{table}", table);
            let rows: Vec<AgentSumRow> = with_pool!(self, read, |pool| {
                sqlx::query_as(sqlx::AssertSqlSafe(text.clone()))
                    .bind(*a)
                    .bind(*b)
                    .bind(number.unwrap_or_default())
                    .bind(agent.unwrap_or_default())
                    .fetch_all(pool)
                    .await
                    .map_err(db("summing agent figures"))
            })?;
            for (name, offered, answered, missed, declined, answer_ns, short, sa, sc) in rows {
                let t = AgentTally {
                    offered,
                    answered,
                    missed,
                    declined,
                    answer_ns,
                    short_calls: short,
                    short_agent: sa,
                    short_client: sc,
                    missed_without_callback: 0,
                };
                sums.entry(name).or_default().add(&t, 1);
            }
        }
        Ok(sums)
    }

    /// Per agent, missed offers of calls started in `[from, to)` whose client no outbound call
    /// dialled afterwards (`missedWithoutCallback`).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn uncalled_misses(
        &self,
        from: Timestamp,
        to: Timestamp,
        number: Option<&str>,
        agent: Option<&str>,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT agent, CAST(SUM(misses) AS BIGINT) FROM miss_offers \
                 WHERE called = 0 AND started_at >= $1 AND started_at < $2 \
                 AND ($3 = '' OR number = $3 OR number_name = $3) AND ($4 = '' OR agent = $4) \
                 GROUP BY agent",
            )
            .bind(to_ns(from))
            .bind(to_ns(to))
            .bind(number.unwrap_or_default())
            .bind(agent.unwrap_or_default())
            .fetch_all(pool)
            .await
            .map_err(db("counting uncalled misses"))
        })?;
        Ok(rows.into_iter().collect())
    }

    /// Whether an outbound call that dialled a client started at or after `t`.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn dials_since(&self, t: Timestamp) -> Result<bool, StoreError> {
        let n: Option<String> = with_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT call_id FROM dials WHERE started_at >= $1 LIMIT 1")
                .bind(to_ns(t))
                .fetch_optional(pool)
                .await
                .map_err(db("looking for dials"))
        })?;
        Ok(n.is_some())
    }

    /// `call_hours` rows of the whole hours in `[from, to)` (ns, hour-aligned).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn call_hours(&self, from: i64, to: i64) -> Result<Vec<CallHour>, StoreError> {
        with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT bucket, number, number_name, inbound, missed FROM call_hours \
                 WHERE bucket >= $1 AND bucket < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await
            .map_err(db("reading call summaries"))
        })
    }

    /// Inbound and missed calls per whole hour in `[from, to)` (ns, hour-aligned), summed over
    /// the numbers `numbers` (`inside`) or over every other number (not `inside`): the heat
    /// map of numbers that share a time zone needs the hours, not the numbers.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn call_hour_sums(
        &self,
        (from, to): (i64, i64),
        numbers: &[String],
        inside: bool,
    ) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        if inside && numbers.is_empty() {
            return Ok(Vec::new());
        }
        let condition = if numbers.is_empty() {
            String::new()
        } else {
            format!(
                " AND number {}IN ({})",
                if inside { "" } else { "NOT " },
                placeholders(3, numbers.len())
            )
        };
        let text = format!(
            "SELECT bucket, CAST(SUM(inbound) AS BIGINT), CAST(SUM(missed) AS BIGINT) \
             FROM call_hours WHERE bucket >= $1 AND bucket < $2{condition} GROUP BY bucket"
        );
        with_pool!(self, read, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(text.clone()))
                .bind(from)
                .bind(to);
            for n in numbers {
                q = q.bind(n.as_str());
            }
            q.fetch_all(pool)
                .await
                .map_err(db("reading call summaries"))
        })
    }

    /// Missed inbound calls started in `[from, to)` whose caller chose a queue callback.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn callback_choices(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        with_pool!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT call_id FROM callback_choices WHERE started_at >= $1 AND started_at < $2",
            )
            .bind(to_ns(from))
            .bind(to_ns(to))
            .fetch_all(pool)
            .await
            .map_err(db("reading callback choices"))
        })
    }

    /// CDRs by id, by start then call id.
    ///
    /// # Errors
    ///
    /// A database error, or a CDR that does not decode.
    pub async fn cdrs_by_id(&self, ids: &[String]) -> Result<Vec<Cdr>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let text = format!(
                "SELECT call_id, json FROM cdrs WHERE call_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut cdrs = with_pool!(self, read, |pool| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(text.clone()));
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(pool)
                    .await
                    .map_err(db("reading CDRs"))
                    .and_then(|rows| decode_cdrs(&rows))
            })?;
            out.append(&mut cdrs);
        }
        super::sort_cdrs(&mut out);
        Ok(out)
    }

    /// Every call of the clients `clients` started in `[from, to)`, by start then call id.
    ///
    /// # Errors
    ///
    /// A database error, or a CDR that does not decode.
    pub async fn client_cdrs(
        &self,
        clients: &[&str],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Cdr>, StoreError> {
        let mut out = Vec::new();
        if let super::Pools::Postgres(pool) = &self.inner.pools {
            // One query with an array: PostgreSQL plans a long IN list of parameters badly
            // (and re-plans it for every chunk size), which made a year's callbacks report take
            // seconds.
            let clients: Vec<String> = clients.iter().map(|c| (*c).to_owned()).collect();
            let rows = sqlx::query(
                "SELECT call_id, json FROM cdrs WHERE client = ANY($3) \
                 AND started_at >= $1 AND started_at < $2",
            )
            .bind(to_ns(from))
            .bind(to_ns(to))
            .bind(clients)
            .fetch_all(pool)
            .await
            .map_err(db("reading CDRs"))?;
            let mut cdrs = decode_cdrs(&rows)?;
            super::sort_cdrs(&mut cdrs);
            return Ok(cdrs);
        }
        for chunk in clients.chunks(500) {
            let text = format!(
                "SELECT call_id, json FROM cdrs WHERE started_at >= $1 AND started_at < $2 \
                 AND client IN ({})",
                placeholders(3, chunk.len())
            );
            let mut cdrs = with_pool!(self, read, |pool| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(text.clone()))
                    .bind(to_ns(from))
                    .bind(to_ns(to));
                for c in chunk {
                    q = q.bind(*c);
                }
                q.fetch_all(pool)
                    .await
                    .map_err(db("reading CDRs"))
                    .and_then(|rows| decode_cdrs(&rows))
            })?;
            out.append(&mut cdrs);
        }
        super::sort_cdrs(&mut out);
        Ok(out)
    }

    /// Up to about `limit` CDRs started in `[from, before)` that `filter` allows, newest first
    /// — completed with every CDR sharing the oldest one's start, so that the next page
    /// (`before` = that start) neither repeats nor skips a call.
    ///
    /// # Errors
    ///
    /// A database error, or a CDR that does not decode.
    pub async fn cdr_page(
        &self,
        from: Timestamp,
        before: Timestamp,
        limit: usize,
        filter: &PageFilter,
    ) -> Result<Vec<Cdr>, StoreError> {
        let conditions = "($3 = 0 OR missed_reason IS NOT NULL) \
            AND ($4 = '' OR missed_reason = $4) \
            AND ($5 = '' OR number_name = $5 \
                 OR (direction = 'inbound' AND number = $5) \
                 OR (direction = 'outbound' AND caller = $5)) \
            AND ($6 = '' OR client = $6) AND ($7 = '' OR direction = $7)";
        let page = format!(
            "SELECT call_id, json FROM cdrs WHERE started_at >= $1 AND started_at < $2 AND \
             {conditions} ORDER BY started_at DESC LIMIT $8"
        );
        let ties = format!(
            "SELECT call_id, json FROM cdrs WHERE started_at = $1 AND started_at < $2 AND \
             {conditions} AND $8 >= 0"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut cdrs = self
            .page_query(&page, to_ns(from), to_ns(before), limit, filter)
            .await?;
        if i64::try_from(cdrs.len()).unwrap_or(i64::MAX) >= limit
            && let Some(oldest) = cdrs.first().map(|c| c.started_at)
        {
            cdrs.retain(|c| c.started_at != oldest);
            let mut same = self
                .page_query(&ties, to_ns(oldest), to_ns(before), 0, filter)
                .await?;
            cdrs.append(&mut same);
            super::sort_cdrs(&mut cdrs);
        }
        Ok(cdrs)
    }

    async fn page_query(
        &self,
        text: &str,
        a: i64,
        b: i64,
        limit: i64,
        f: &PageFilter,
    ) -> Result<Vec<Cdr>, StoreError> {
        with_pool!(self, read, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(text.to_owned()))
                .bind(a)
                .bind(b)
                .bind(i64::from(f.missed_only))
                .bind(f.reason.as_deref().unwrap_or_default())
                .bind(f.number.as_deref().unwrap_or_default())
                .bind(f.client.as_deref().unwrap_or_default())
                .bind(f.direction.unwrap_or_default())
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(db("reading a page of CDRs"))
                .and_then(|rows| decode_cdrs(&rows))
        })
    }
}

/// `$first, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A report period cut for the summaries: raw edges (read from CDRs), whole hours, whole days.
#[derive(Debug, Clone)]
pub struct SummaryCuts(Cuts);

impl SummaryCuts {
    /// The partial hours at the edges, read from CDRs.
    pub fn raw(&self) -> &[(Timestamp, Timestamp)] {
        &self.0.raw
    }

    /// The whole hours covered, as `[start, end)` ns ranges (whole days included).
    pub fn hour_ranges(&self) -> Vec<(i64, i64)> {
        let mut v: Vec<(i64, i64)> = self.0.hours.iter().chain(&self.0.days).copied().collect();
        v.sort_unstable();
        v
    }
}

impl Store {
    /// The clients with a missed inbound call started in `[from, to)`, and the ids of such
    /// calls from anonymous callers: whom the unprocessed list and the callbacks report are
    /// about.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn missed_clients(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let rows: Vec<(String, Option<String>)> = with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT call_id, client FROM cdrs WHERE missed_reason IS NOT NULL \
                 AND direction = 'inbound' AND started_at >= $1 AND started_at < $2",
            )
            .bind(to_ns(from))
            .bind(to_ns(to))
            .fetch_all(pool)
            .await
            .map_err(db("reading missed calls"))
        })?;
        let mut clients = std::collections::BTreeSet::new();
        let mut anonymous = Vec::new();
        for (call_id, client) in rows {
            match client {
                Some(c) => {
                    clients.insert(c);
                }
                None => anonymous.push(call_id),
            }
        }
        Ok((clients.into_iter().collect(), anonymous))
    }
}
