//! The fast paths of the reports: the same rows as the pure functions of [`crate::reports`]
//! over the report window's CDRs, without reading every CDR of the window.
//!
//! - **agents, top missers**: sums of the store's hourly and daily summaries, plus the CDRs of
//!   the partial hours at the period's edges, plus the uncalled misses
//!   (`missedWithoutCallback`) from `miss_offers`.
//! - **heat map counts**: `call_hours` placed in each number's zone, the edges from CDRs, and
//!   the few misses whose caller chose a queue callback judged one by one.
//! - **missed, calls**: pages of CDRs newest first (by index), each page judged by the pure
//!   function over the page's clients' calls in the report's context window — which is exactly
//!   what the full computation sees of those clients, since every judgement (called back?
//!   callback answered? a callback attempt?) looks at one client's calls only.
//! - **unprocessed, callbacks**: the groups the store keeps (rebuilt by ingestion for every
//!   client whose calls change): whole groups that begin in the window by index, in pages,
//!   plus the groups that began before the window and go on into it, cut at its start
//!   ([`Group::since`]); the callbacks report's sums are summed by the database. Without
//!   usable stored groups (a fact after `now`, a database being upgraded, a group that cannot
//!   be cut exactly) or with filters beyond the period (callbacks), only the clients with a
//!   miss in the period are read, with their calls in the context window.
//!
//! A fast path answers `None` when it cannot be exact — summaries counted with another
//! `shortCallSeconds`, outbound calls stored after the report's context window (the full
//! computation would not see them), a zone whose hours are not whole UTC hours — and the
//! caller then reads the window's CDRs as before.

use std::collections::{BTreeSet, HashSet};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tonic::Status;

use super::convert::{Query, store_status};
use super::heat::ZoneSets;
use crate::cdr::{Cdr, Direction};
use crate::policy::Policy;
use crate::reports::callbacks::{self, Tally, callback_row};
use crate::reports::groups::{Group, NotCuttable};
use crate::reports::{
    self, AgentTally, AgentsReport, CallRow, CallbacksReport, Dataset, Filter, Handling, MissedRow,
    UnprocessedGroup, View,
};
use crate::store::{GroupsOf, PageFilter, Store, StoreError};

fn st(e: &StoreError) -> Status {
    store_status(e)
}

/// The context window of a report (see the module docs of [`super`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// The agents table from the summaries; `None` when they cannot be exact.
pub(crate) async fn agents(
    store: &Store,
    q: &Query,
    policy: &Policy,
    ctx: Context,
) -> Result<Option<AgentsReport>, Status> {
    if !store.summaries_match(policy).await.map_err(|e| st(&e))?
        || store.dials_since(ctx.to).await.map_err(|e| st(&e))?
    {
        return Ok(None);
    }
    let number = q.filter.number.as_deref();
    let agent = q.filter.agent.as_deref();
    let cuts = store.summary_cuts(q.from, q.to);
    let mut tallies = store
        .agent_sums(&cuts, number, agent)
        .await
        .map_err(|e| st(&e))?;
    for (a, b) in cuts.raw() {
        let cdrs = store.cdrs_between(*a, *b).await.map_err(|e| st(&e))?;
        for cdr in &cdrs {
            if !cdr.is_inbound_call() || !q.filter.number_matches(cdr) {
                continue;
            }
            for (name, t) in reports::offer_tallies(cdr, policy) {
                if agent.is_none_or(|a| a == name) {
                    tallies.entry(name.to_owned()).or_default().add(&t, 1);
                }
            }
        }
    }
    let uncalled = store
        .uncalled_misses(q.from, q.to, number, agent)
        .await
        .map_err(|e| st(&e))?;
    for (name, n) in uncalled {
        tallies.entry(name).or_default().missed_without_callback += n;
    }
    // Rows whose calls moved elsewhere (a CDR rebuilt with another number name) sum to zero.
    tallies.retain(|_, t| *t != AgentTally::default());
    Ok(Some(reports::agents_from_tallies(&tallies)))
}

/// Inbound and missed counts per cell (weekday × hour, Monday 00 first) for the heat map,
/// each number in the zone `zone_of` gives it; `None` when they cannot be exact.
pub(crate) async fn heat_counts(
    store: &Store,
    filter: &Filter,
    (from, to): (Timestamp, Timestamp),
    ctx: Context,
    zone_of: &(dyn Fn(&str) -> TimeZone + Sync),
    zones: Option<&ZoneSets>,
) -> Result<Option<Vec<(u32, u32)>>, Status> {
    let mut counts = vec![(0i64, 0i64); 168];
    let cell = |tz: &TimeZone, t: Timestamp| reports::heatmap::cell_of(tz.to_datetime(t));
    // Adds an hour's counts in `tz`; false when the hour is not one local hour.
    let mut add = |tz: &TimeZone, bucket: i64, inbound: i64, missed: i64| {
        let Ok(start) = Timestamp::from_nanosecond(i128::from(bucket)) else {
            return false;
        };
        // A UTC hour lands in one local hour only in zones offset by whole hours (with
        // transitions on the hour); others are left to the full computation.
        let local = tz.to_datetime(start);
        let end = tz.to_datetime(start + SignedDuration::from_mins(59));
        if local.minute() != 0 || local.second() != 0 || end.hour() != local.hour() {
            return false;
        }
        let c = &mut counts[cell(tz, start)];
        c.0 += inbound;
        c.1 += missed;
        true
    };
    let cuts = store.summary_cuts(from, to);
    for range in cuts.hour_ranges() {
        match zones.filter(|_| filter.number.is_none()) {
            // Without a number filter, numbers sharing a zone are summed by the database.
            Some(zones) => {
                let mut all_others = Vec::new();
                for (tz, numbers) in &zones.others {
                    all_others.extend(numbers.iter().cloned());
                    let rows = store
                        .call_hour_sums(range, numbers, true)
                        .await
                        .map_err(|e| st(&e))?;
                    for (bucket, inbound, missed) in rows {
                        if !add(tz, bucket, inbound, missed) {
                            return Ok(None);
                        }
                    }
                }
                let rows = store
                    .call_hour_sums(range, &all_others, false)
                    .await
                    .map_err(|e| st(&e))?;
                for (bucket, inbound, missed) in rows {
                    if !add(&zones.main, bucket, inbound, missed) {
                        return Ok(None);
                    }
                }
            }
            None => {
                let rows = store
                    .call_hours(range.0, range.1)
                    .await
                    .map_err(|e| st(&e))?;
                for (bucket, number, name, inbound, missed) in rows {
                    let named = filter
                        .number
                        .as_deref()
                        .is_none_or(|n| n == number || n == name);
                    if named && !add(&zone_of(&number), bucket, inbound, missed) {
                        return Ok(None);
                    }
                }
            }
        }
    }
    for (a, b) in cuts.raw() {
        let cdrs = store.cdrs_between(*a, *b).await.map_err(|e| st(&e))?;
        for cdr in cdrs
            .iter()
            .filter(|c| c.is_inbound_call() && filter.number_matches(c))
        {
            let c = &mut counts[cell(&zone_of(&cdr.number), cdr.started_at)];
            c.0 += 1;
            c.1 += i64::from(cdr.missed.is_some());
        }
    }
    // Queue callers who chose a callback: missed unless the callback was answered.
    let chosen = store.callback_choices(from, to).await.map_err(|e| st(&e))?;
    if !chosen.is_empty() {
        let calls = store.cdrs_by_id(&chosen).await.map_err(|e| st(&e))?;
        let ds_cdrs = with_clients(store, calls.clone(), ctx).await?;
        let ds = Dataset::new(&ds_cdrs);
        for cdr in calls
            .iter()
            .filter(|c| c.is_inbound_call() && filter.number_matches(c))
        {
            let judged = ds_cdrs
                .iter()
                .find(|c| c.call_id == cdr.call_id)
                .unwrap_or(cdr);
            if cdr.missed.is_some() && ds.missed(judged).is_none() {
                counts[cell(&zone_of(&cdr.number), cdr.started_at)].1 -= 1;
            }
        }
    }
    Ok(Some(
        counts
            .into_iter()
            .map(|(i, m)| {
                let n = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
                (n(i), n(m))
            })
            .collect(),
    ))
}

/// `cdrs` and every call of their clients in the context window, each once, in order.
async fn with_clients(store: &Store, cdrs: Vec<Cdr>, ctx: Context) -> Result<Vec<Cdr>, Status> {
    let clients: BTreeSet<&str> = cdrs.iter().filter_map(Cdr::client).collect();
    let clients: Vec<&str> = clients.into_iter().collect();
    let mut all = store
        .client_cdrs(&clients, ctx.from, ctx.to)
        .await
        .map_err(|e| st(&e))?;
    let known: HashSet<String> = all.iter().map(|c| c.call_id.clone()).collect();
    all.extend(cdrs.into_iter().filter(|c| !known.contains(&c.call_id)));
    all.sort_by(|a, b| (a.started_at, &a.call_id).cmp(&(b.started_at, &b.call_id)));
    Ok(all)
}

/// Rows of a paged report: at least `limit + 1` of them when there are that many (so that the
/// caller knows whether it truncated), newest first.
async fn paged<R>(
    store: &Store,
    q: &Query,
    ctx: Context,
    page_filter: &PageFilter,
    judge: impl Fn(&[Cdr]) -> Vec<R>,
    id_of: impl Fn(&R) -> &str,
    key: impl Fn(&R) -> (Timestamp, String),
) -> Result<Vec<R>, Status> {
    let page_size = q.limit.saturating_add(1).clamp(50, 5000);
    let mut rows: Vec<R> = Vec::new();
    let mut before = q.to;
    loop {
        let page = store
            .cdr_page(q.from, before, page_size, page_filter)
            .await
            .map_err(|e| st(&e))?;
        let Some(oldest) = page.first().map(|c| c.started_at) else {
            break;
        };
        let exhausted = page.len() < page_size;
        let ids: HashSet<String> = page.iter().map(|c| c.call_id.clone()).collect();
        let all = with_clients(store, page, ctx).await?;
        rows.extend(judge(&all).into_iter().filter(|r| ids.contains(id_of(r))));
        if exhausted || rows.len() > q.limit {
            break;
        }
        before = oldest;
    }
    rows.sort_by_key(|r| std::cmp::Reverse(key(r)));
    Ok(rows)
}

/// The missed-calls report, newest first (at least `limit + 1` rows when there are).
pub(crate) async fn missed(
    store: &Store,
    q: &Query,
    ctx: Context,
) -> Result<Vec<MissedRow>, Status> {
    let pf = PageFilter {
        missed_only: true,
        reason: q.filter.reason.map(|r| r.code().to_owned()),
        number: q.filter.number.clone(),
        client: q.filter.caller.clone(),
        direction: None,
    };
    paged(
        store,
        q,
        ctx,
        &pf,
        |cdrs| reports::missed(cdrs, &q.filter),
        |r| &r.call_id,
        |r| (r.started_at, r.call_id.clone()),
    )
    .await
}

/// The call log, newest first (at least `limit + 1` rows when there are).
pub(crate) async fn calls(
    store: &Store,
    q: &Query,
    ctx: Context,
    direction: Option<Direction>,
) -> Result<Vec<CallRow>, Status> {
    let pf = PageFilter {
        missed_only: q.filter.reason.is_some(),
        reason: q.filter.reason.map(|r| r.code().to_owned()),
        number: q.filter.number.clone(),
        client: q.filter.caller.clone(),
        direction: direction.map(|d| match d {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }),
    };
    paged(
        store,
        q,
        ctx,
        &pf,
        |cdrs| reports::calls(cdrs, &q.filter, direction),
        |r| &r.call_id,
        |r| (r.started_at, r.call_id.clone()),
    )
    .await
}

/// The CDRs the groups of `[from, to)` are made of: the calls in the context window of every
/// client with a miss in the period, and the period's anonymous misses.
pub(crate) async fn group_cdrs(
    store: &Store,
    (from, to): (Timestamp, Timestamp),
    ctx: Context,
) -> Result<Vec<Cdr>, Status> {
    let (clients, anonymous) = store.missed_clients(from, to).await.map_err(|e| st(&e))?;
    let clients: Vec<&str> = clients.iter().map(String::as_str).collect();
    let mut cdrs = store
        .client_cdrs(&clients, ctx.from, ctx.to)
        .await
        .map_err(|e| st(&e))?;
    cdrs.extend(store.cdrs_by_id(&anonymous).await.map_err(|e| st(&e))?);
    cdrs.sort_by(|a, b| (a.started_at, &a.call_id).cmp(&(b.started_at, &b.call_id)));
    Ok(cdrs)
}

/// Whole stored groups whose first miss is in `[from, to)`, oldest first, each made a row by
/// `row` (`None`: filtered out) — paged until more than `limit` rows or none left.
async fn group_rows<R>(
    store: &Store,
    (from, to): (Timestamp, Timestamp),
    which: GroupsOf,
    limit: usize,
    row: impl Fn(&Group) -> Option<R>,
) -> Result<Vec<R>, Status> {
    let page = limit.saturating_add(1).clamp(50, 5000);
    let mut rows = Vec::new();
    let mut start = from;
    loop {
        let groups = store
            .group_page((start, to), which, page)
            .await
            .map_err(|e| st(&e))?;
        let Some(last) = groups.last().map(Group::first_missed_at) else {
            break;
        };
        let exhausted = groups.len() < page;
        rows.extend(groups.iter().filter_map(&row));
        if exhausted || rows.len() > limit {
            break;
        }
        start = last + SignedDuration::from_nanos(1);
    }
    Ok(rows)
}

/// The groups of a window starting at `since` that began before it: stored groups cut at
/// `since` (see [`Group::since`]); `None` when one cannot be cut exactly.
async fn cut(
    store: &Store,
    since: Timestamp,
    last_from: Timestamp,
    handlings: &[Handling],
) -> Result<Option<Vec<Group>>, Status> {
    let mut tails = Vec::new();
    for g in store
        .cut_groups(since, last_from)
        .await
        .map_err(|e| st(&e))?
    {
        match g.since(since, handlings) {
            Ok(Some(tail)) => tails.push(tail),
            Ok(None) => {}
            Err(NotCuttable) => return Ok(None),
        }
    }
    Ok(Some(tails))
}

/// The unprocessed list as of `q.now` from the stored groups (at least `limit + 1` rows when
/// there are that many); `None` when they cannot be exact.
pub(crate) async fn unprocessed(
    store: &Store,
    q: &Query,
    policy: &Policy,
    handlings: &[Handling],
    view: View,
) -> Result<Option<Vec<UnprocessedGroup>>, Status> {
    if !store.groups_usable(q.now).await.map_err(|e| st(&e))? {
        return Ok(None);
    }
    let since = q
        .now
        .checked_sub(policy.unprocessed_window())
        .unwrap_or(Timestamp::MIN);
    let Some(tails) = cut(store, since, since, handlings).await? else {
        return Ok(None);
    };
    let row = |g: &Group| reports::unprocessed::unprocessed_row(g, q.now, &q.filter, view);
    let which = match view {
        View::Open => GroupsOf::Open,
        View::Processed => GroupsOf::Processed,
        View::All => GroupsOf::All,
    };
    let end = q.now + SignedDuration::from_nanos(1);
    let mut rows = group_rows(store, (since, end), which, q.limit, row).await?;
    rows.extend(tails.iter().filter_map(row));
    rows.sort_by(|a, b| (a.first_missed_at, &a.group_id).cmp(&(b.first_missed_at, &b.group_id)));
    Ok(Some(rows))
}

/// The callbacks report from the stored groups (at least `limit + 1` group rows when there
/// are that many; sums over all); `None` when they cannot be exact or a filter other than the
/// period is set.
pub(crate) async fn callbacks(
    store: &Store,
    q: &Query,
    policy: &Policy,
    handlings: &[Handling],
) -> Result<Option<CallbacksReport>, Status> {
    let f = &q.filter;
    if f.number.is_some() || f.agent.is_some() || f.caller.is_some() || f.status.is_some() {
        return Ok(None);
    }
    if !store.groups_usable(q.now).await.map_err(|e| st(&e))? {
        return Ok(None);
    }
    let since = q
        .from
        .checked_sub(policy.unprocessed_window())
        .unwrap_or(Timestamp::MIN);
    let sla = policy.callback_sla();
    let Some(tails) = cut(store, since, q.from, handlings).await? else {
        return Ok(None);
    };
    let sums = store
        .callback_sums((q.from, q.to), sla)
        .await
        .map_err(|e| st(&e))?;
    let (mut per_agent, mut total) = (sums.per_agent, sums.total);
    let row = |g: &Group| callback_row(g, sla, f);
    let mut rows = group_rows(store, (q.from, q.to), GroupsOf::Clients, q.limit, row).await?;
    for tail in &tails {
        if let Some(r) = row(tail) {
            Tally::add_row(&mut total, &mut per_agent, &r);
            rows.push(r);
        }
    }
    rows.sort_by(|a, b| (a.first_missed_at, &a.group_id).cmp(&(b.first_missed_at, &b.group_id)));
    Ok(Some(callbacks::assemble(sla, rows, &per_agent, &total, f)))
}

/// How many groups are open as of `now` (the unprocessed list's length, unfiltered) from the
/// stored groups; `None` when they cannot be exact.
pub(crate) async fn open_groups(
    store: &Store,
    policy: &Policy,
    now: Timestamp,
    handlings: &[Handling],
) -> Result<Option<u64>, StoreError> {
    if !store.groups_usable(now).await? {
        return Ok(None);
    }
    let since = now
        .checked_sub(policy.unprocessed_window())
        .unwrap_or(Timestamp::MIN);
    let mut open = 0u64;
    for g in store.cut_groups(since, since).await? {
        match g.since(since, handlings) {
            Ok(Some(tail)) => open += u64::from(tail.processed.is_none()),
            Ok(None) => {}
            Err(NotCuttable) => return Ok(None),
        }
    }
    let whole = store
        .count_groups((since, now + SignedDuration::from_nanos(1)), GroupsOf::Open)
        .await?;
    Ok(Some(open + whole))
}
