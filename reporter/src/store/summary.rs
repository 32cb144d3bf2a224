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

use std::collections::BTreeMap;

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
            && cdr.dialled_client()
            && let Some(client) = cdr.client()
        {
            c.dial = Some((client.to_owned(), start));
        }
        c
    }
}

fn delta<K: Ord + Clone>(
    old: Option<&BTreeMap<K, AgentTally>>,
    new: Option<&BTreeMap<K, AgentTally>>,
) -> BTreeMap<K, AgentTally> {
    let mut out: BTreeMap<K, AgentTally> = BTreeMap::new();
    for (map, sign) in [(old, -1), (new, 1)] {
        for (k, t) in map.into_iter().flatten() {
            out.entry(k.clone()).or_default().add(t, sign);
        }
    }
    out.retain(|_, t| *t != AgentTally::default());
    out
}

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(what, e)
}

const UPSERT_AGENT: &str = "INSERT INTO {table} (bucket, number, number_name, agent, offered, \
    answered, missed, declined, answer_ns, short_calls, short_agent, short_client) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
    ON CONFLICT (bucket, number, number_name, agent) DO UPDATE SET \
    offered = {table}.offered + excluded.offered, answered = {table}.answered + excluded.answered, \
    missed = {table}.missed + excluded.missed, declined = {table}.declined + excluded.declined, \
    answer_ns = {table}.answer_ns + excluded.answer_ns, \
    short_calls = {table}.short_calls + excluded.short_calls, \
    short_agent = {table}.short_agent + excluded.short_agent, \
    short_client = {table}.short_client + excluded.short_client";

const UPSERT_CALLS: &str = "INSERT INTO call_hours (bucket, number, number_name, inbound, missed) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (bucket, number, number_name) DO UPDATE SET \
    inbound = call_hours.inbound + excluded.inbound, missed = call_hours.missed + excluded.missed";

/// Recomputes `called` for a client's missed offers after its dials changed.
const RECHECK_CALLED: &str = "UPDATE miss_offers SET called = CASE WHEN EXISTS \
    (SELECT 1 FROM dials d WHERE d.client = miss_offers.client \
     AND d.started_at > miss_offers.started_at) THEN 1 ELSE 0 END WHERE client = $1";

/// Writes contributions on one backend's connection (SQLite or PostgreSQL: the same texts).
pub(crate) trait SummaryWriter {
    /// Replaces `old` by `new` for the call `call_id`.
    async fn apply(
        &mut self,
        call_id: &str,
        old: &Contribution,
        new: &Contribution,
    ) -> Result<(), StoreError>;

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
    ($conn:ty) => {
        impl SummaryWriter for $conn {
            async fn apply(
                &mut self,
                call_id: &str,
                old: &Contribution,
                new: &Contribution,
            ) -> Result<(), StoreError> {
                if old == new {
                    return Ok(());
                }
                for (table, o, n) in [
                    ("agent_hours", &old.hour_agents, &new.hour_agents),
                    ("agent_days", &old.day_agents, &new.day_agents),
                ] {
                    let text = UPSERT_AGENT.replace("{table}", table);
                    for ((bucket, number, name, agent), t) in delta(Some(o), Some(n)) {
                        sqlx::query(sqlx::AssertSqlSafe(text.clone()))
                            .bind(bucket)
                            .bind(number)
                            .bind(name)
                            .bind(agent)
                            .bind(t.offered)
                            .bind(t.answered)
                            .bind(t.missed)
                            .bind(t.declined)
                            .bind(t.answer_ns)
                            .bind(t.short_calls)
                            .bind(t.short_agent)
                            .bind(t.short_client)
                            .execute(&mut *self)
                            .await
                            .map_err(db("updating agent summaries"))?;
                    }
                }
                let mut calls: BTreeMap<&CallKey, (i64, i64)> = BTreeMap::new();
                for (map, sign) in [(&old.calls, -1), (&new.calls, 1)] {
                    for (k, (i, m)) in map {
                        let e = calls.entry(k).or_default();
                        e.0 += sign * i;
                        e.1 += sign * m;
                    }
                }
                for ((bucket, number, name), (inbound, missed)) in calls {
                    if (inbound, missed) == (0, 0) {
                        continue;
                    }
                    sqlx::query(UPSERT_CALLS)
                        .bind(bucket)
                        .bind(number)
                        .bind(name)
                        .bind(inbound)
                        .bind(missed)
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating call summaries"))?;
                }
                if old.dial != new.dial {
                    sqlx::query("DELETE FROM dials WHERE call_id = $1")
                        .bind(call_id)
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating dials"))?;
                    if let Some((client, at)) = &new.dial {
                        sqlx::query(
                            "INSERT INTO dials (call_id, client, started_at) VALUES ($1, $2, $3)",
                        )
                        .bind(call_id)
                        .bind(client)
                        .bind(*at)
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating dials"))?;
                    }
                }
                if (&old.miss_offers, &old.miss_client) != (&new.miss_offers, &new.miss_client) {
                    sqlx::query("DELETE FROM miss_offers WHERE call_id = $1")
                        .bind(call_id)
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating missed offers"))?;
                    if let Some((client, at, number, name)) = &new.miss_client {
                        for (agent, misses) in &new.miss_offers {
                            sqlx::query(
                                "INSERT INTO miss_offers (call_id, agent, started_at, client, \
                                 number, number_name, misses, called) VALUES ($1, $2, $3, $4, \
                                 $5, $6, $7, CASE WHEN EXISTS (SELECT 1 FROM dials d \
                                 WHERE d.client = $4 AND d.started_at > $3) THEN 1 ELSE 0 END)",
                            )
                            .bind(call_id)
                            .bind(agent)
                            .bind(*at)
                            .bind(client)
                            .bind(number)
                            .bind(name)
                            .bind(*misses)
                            .execute(&mut *self)
                            .await
                            .map_err(db("updating missed offers"))?;
                        }
                    }
                }
                if old.dial != new.dial {
                    let clients = [&old.dial, &new.dial];
                    for (client, _) in clients.into_iter().flatten() {
                        sqlx::query(RECHECK_CALLED)
                            .bind(client)
                            .execute(&mut *self)
                            .await
                            .map_err(db("updating missed offers"))?;
                    }
                }
                if old.chosen != new.chosen {
                    sqlx::query("DELETE FROM callback_choices WHERE call_id = $1")
                        .bind(call_id)
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating callback choices"))?;
                    if let Some(at) = new.chosen {
                        sqlx::query(
                            "INSERT INTO callback_choices (call_id, started_at) VALUES ($1, $2)",
                        )
                        .bind(call_id)
                        .bind(at)
                        .execute(&mut *self)
                        .await
                        .map_err(db("updating callback choices"))?;
                    }
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
                    for (call_id, json) in &rows {
                        let cdr = super::codec::cdr_from_json(call_id, json)?;
                        let new = Contribution::of(&cdr, policy);
                        self.apply(call_id, &Contribution::default(), &new).await?;
                    }
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
                for (call_id, json) in &rows {
                    let old = Contribution::of(&super::codec::cdr_from_json(call_id, json)?, &policy);
                    self.apply(call_id, &old, &Contribution::default()).await?;
                }
                Ok(())
            }
        }
    };
}

summary_writer!(sqlx::SqliteConnection);
summary_writer!(sqlx::PgConnection);

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
