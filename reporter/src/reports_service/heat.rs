//! The heat map over the configured numbers, each in its own schedule's time zone.
//!
//! The pure [`reports::heatmap`] draws one map in one zone against one schedule. PRODUCT.md
//! says the heat map "uses each number's schedule time zone", so the numbers are grouped by
//! schedule and each group's calls are placed in that schedule's zone; their inbound and
//! missed counts are summed cell by cell. Open hours, agents on duty and the days per cell
//! come from the *main* schedule — the one most numbers (in the filter) use — because a cell
//! can show one set of open hours; with a number filter that is the number's own schedule.
//! Calls to numbers no longer configured count in the main zone.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use dialtone_model::Snapshot;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::cdr::{Cdr, Direction};
use crate::error::ReportError;
use crate::reports::{self, AgentStateChange, Filter, Heatmap, HeatmapOptions};

/// The merged heat map and the zones used.
pub(crate) struct Merged {
    pub map: Heatmap,
    pub time_zones: Vec<String>,
}

/// The heat map of `[from, to)` over `cdrs`.
/// The zone the merged heat map places a number's calls in.
pub(crate) fn zone_of(
    snapshot: &Snapshot,
    filter: &Filter,
) -> impl Fn(&str) -> TimeZone + Send + Sync {
    let (groups, main) = schedule_groups(snapshot, filter);
    let zone = |name: &str| {
        snapshot
            .schedules
            .get(name)
            .map_or(TimeZone::UTC, |s| s.tz.clone())
    };
    let main_tz = zone(&main);
    let by_number: BTreeMap<String, TimeZone> = groups
        .iter()
        .flat_map(|(name, numbers)| numbers.iter().map(|n| (n.clone(), zone(name))))
        .collect();
    move |number: &str| {
        by_number
            .get(number)
            .cloned()
            .unwrap_or_else(|| main_tz.clone())
    }
}

/// The numbers grouped by time zone for summing the heat map's hours: the main zone (which
/// also takes every number not configured) and the other zones with their numbers; `None`
/// when a zone has no IANA name to compare by.
pub(crate) fn zone_sets(snapshot: &Snapshot, filter: &Filter) -> Option<ZoneSets> {
    let (groups, main) = schedule_groups(snapshot, filter);
    let zone = |name: &str| {
        snapshot
            .schedules
            .get(name)
            .map_or(TimeZone::UTC, |s| s.tz.clone())
    };
    let main_tz = zone(&main);
    let main_name = main_tz.iana_name()?.to_owned();
    let mut others: BTreeMap<String, (TimeZone, Vec<String>)> = BTreeMap::new();
    for (name, numbers) in &groups {
        let tz = zone(name);
        let iana = tz.iana_name()?.to_owned();
        if iana != main_name {
            let entry = others
                .entry(iana)
                .or_insert_with(|| (tz.clone(), Vec::new()));
            entry.1.extend(numbers.iter().cloned());
        }
    }
    Some(ZoneSets {
        main: main_tz,
        others: others.into_values().collect(),
    })
}

/// See [`zone_sets`].
pub(crate) struct ZoneSets {
    /// The main zone: every number not in `others`.
    pub main: TimeZone,
    /// Other zones and their numbers.
    pub others: Vec<(TimeZone, Vec<String>)>,
}

/// Our numbers in the filter grouped by schedule name ("" for none), and the main schedule.
fn schedule_groups(
    snapshot: &Snapshot,
    filter: &Filter,
) -> (BTreeMap<String, BTreeSet<String>>, String) {
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for n in snapshot.numbers.values() {
        if filter
            .number
            .as_deref()
            .is_none_or(|f| f == n.number || f == n.name)
        {
            let schedule = n.schedule.clone().unwrap_or_default();
            groups.entry(schedule).or_default().insert(n.number.clone());
        }
    }
    let main = groups
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
        .map(|(name, _)| name.clone())
        .unwrap_or_default();
    if groups.is_empty() {
        groups.insert(String::new(), BTreeSet::new());
    }
    (groups, main)
}

/// The heat map of `[from, to)` over `cdrs`; with `counts` (per cell, from the summaries) the
/// inbound and missed counts are those and `cdrs` are not read.
pub(crate) fn heatmap(
    cdrs: &[Cdr],
    filter: &Filter,
    (from, to): (Timestamp, Timestamp),
    snapshot: &Snapshot,
    states: &[AgentStateChange],
    counts: Option<Vec<(u32, u32)>>,
) -> Result<Merged, ReportError> {
    if let Some(counts) = counts {
        let (groups, main) = schedule_groups(snapshot, filter);
        let schedule = snapshot.schedules.get(&main);
        let tz = schedule.map_or(TimeZone::UTC, |s| s.tz.clone());
        let mut map = reports::heatmap(
            &[],
            filter,
            &HeatmapOptions {
                from,
                to,
                tz: &tz,
                schedule,
                agent_states: states,
            },
        )?;
        for (cell, (inbound, missed)) in map.cells.iter_mut().zip(counts) {
            cell.inbound = inbound;
            cell.missed = missed;
        }
        let mut time_zones: Vec<String> = Vec::new();
        for name in groups.keys() {
            let zone = snapshot
                .schedules
                .get(name)
                .and_then(|s| s.tz.iana_name().map(str::to_owned))
                .unwrap_or_else(|| "UTC".to_owned());
            if !time_zones.contains(&zone) {
                time_zones.push(zone);
            }
        }
        return Ok(Merged { map, time_zones });
    }
    // Our numbers in the filter, grouped by schedule name ("" for none: always open, UTC).
    let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for n in snapshot.numbers.values() {
        if filter
            .number
            .as_deref()
            .is_none_or(|f| f == n.number || f == n.name)
        {
            let schedule = n.schedule.as_deref().unwrap_or_default();
            groups.entry(schedule).or_default().insert(&n.number);
        }
    }
    let main = groups
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
        .map(|(name, _)| *name)
        .unwrap_or_default();
    if groups.is_empty() {
        groups.insert("", BTreeSet::new());
    }
    let group_of = |number: &str| -> &str {
        groups
            .iter()
            .find(|(_, numbers)| numbers.contains(number))
            .map_or(main, |(name, _)| *name)
    };

    let mut time_zones = Vec::new();
    let mut base: Option<Heatmap> = None;
    let mut counts = vec![(0u32, 0u32); 168];
    for name in groups.keys() {
        let schedule = snapshot.schedules.get(*name);
        let tz = schedule.map_or(TimeZone::UTC, |s| s.tz.clone());
        // This group's inbound calls, and every outbound call (callbacks decide whether a
        // queue caller's miss stands).
        let subset: Cow<'_, [Cdr]> = if groups.len() == 1 {
            Cow::Borrowed(cdrs)
        } else {
            Cow::Owned(
                cdrs.iter()
                    .filter(|c| c.direction == Direction::Outbound || group_of(&c.number) == *name)
                    .cloned()
                    .collect(),
            )
        };
        let map = reports::heatmap(
            &subset,
            filter,
            &HeatmapOptions {
                from,
                to,
                tz: &tz,
                schedule,
                agent_states: states,
            },
        )?;
        for (sum, cell) in counts.iter_mut().zip(&map.cells) {
            sum.0 += cell.inbound;
            sum.1 += cell.missed;
        }
        if !time_zones.contains(&map.time_zone) {
            time_zones.push(map.time_zone.clone());
        }
        if *name == main {
            base = Some(map);
        }
    }
    // `main` is always one of the groups, so `base` is set; an empty period is the only way
    // the loop can have produced nothing (and `reports::heatmap` has said so already).
    let Some(mut map) = base else {
        return Err(ReportError::EmptyPeriod { from, to });
    };
    for (cell, (inbound, missed)) in map.cells.iter_mut().zip(counts) {
        cell.inbound = inbound;
        cell.missed = missed;
    }
    Ok(Merged { map, time_zones })
}
