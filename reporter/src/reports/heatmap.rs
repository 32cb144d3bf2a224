//! The load heat map: inbound and missed calls per weekday × hour in a time zone, against
//! open hours and agents on duty — the blind zones where clients call and nobody is there.
//!
//! # Semantics
//!
//! - **Cells are local wall-clock hours.** The period is cut into *slots*: for each local date
//!   and hour `h`, the instants from local `h:00` to local `h+1:00` (clipped to the period).
//!   On a spring-forward day the skipped hour is an empty slot and does not exist that day (its
//!   cell does not count the day); on a fall-back day the repeated hour is one two-hour slot.
//!   A call goes to the cell of its local start time, so the two 03:30s of a fall-back night
//!   share a cell, as they share a label on the office clock.
//! - **`days`**: how many non-empty slots the cell has in the period.
//! - **`inbound`** counts inbound calls (not blocked, not to unknown numbers) started in the
//!   period; **`missed`** those of them that are missed (see [`super::Dataset::missed`]).
//! - **`open_share`**: the open time of the schedule within the cell's slots divided by their
//!   total length (so 1.0 is "open the whole hour every such day"); `None` without a schedule.
//!   Windows are evaluated in the schedule's own zone, so a schedule in another zone than the
//!   map still lands on the right instants.
//! - **`available_agents`**: for each slot, the number of agents who were *on duty* at some
//!   moment of it — in state `available`, `ringing`, `on_call` or `wrap_up` — averaged over
//!   the cell's slots. "At some moment" answers the heat map's question (was anybody there to
//!   take a call in that hour?) without punishing an agent for spending the whole hour on
//!   calls: `ringing`, `on_call` and `wrap_up` are states the router only derives from an
//!   available agent. `dnd`, `away` and `offline` are off duty. Before an agent's first known
//!   state change the agent counts as offline, so pass the last change *before* the period
//!   too.

use std::collections::BTreeMap;

use dialtone_model::schedule::ScheduleConfig;
use dialtone_proto::v1;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::{Dataset, Filter};
use crate::cdr::Cdr;
use crate::error::{EventError, ReportError};
use crate::time::from_proto_timestamp;

/// One agent's change of state (from the router's `AgentStateEvent`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStateChange {
    /// The agent.
    pub agent: String,
    /// The new state.
    pub state: v1::AgentState,
    /// When the agent entered it.
    pub at: Timestamp,
    /// The router instance; with `sequence`, orders changes at the same instant.
    pub source: String,
    /// Position among this agent's changes from `source`.
    pub sequence: u64,
}

impl TryFrom<&v1::AgentStateEvent> for AgentStateChange {
    type Error = EventError;

    fn try_from(e: &v1::AgentStateEvent) -> Result<Self, Self::Error> {
        let at = e.at.as_ref().ok_or_else(|| EventError::MissingTimestamp {
            event_id: e.event_id.clone(),
        })?;
        Ok(AgentStateChange {
            agent: e.agent.clone(),
            state: e.state(),
            at: from_proto_timestamp(at)?,
            source: e.source.clone(),
            sequence: e.sequence,
        })
    }
}

fn on_duty(state: v1::AgentState) -> bool {
    matches!(
        state,
        v1::AgentState::Available
            | v1::AgentState::Ringing
            | v1::AgentState::OnCall
            | v1::AgentState::WrapUp
    )
}

/// What the heat map is computed over.
#[derive(Debug, Clone, Copy)]
pub struct HeatmapOptions<'a> {
    /// Start of the period, inclusive.
    pub from: Timestamp,
    /// End of the period, exclusive.
    pub to: Timestamp,
    /// The zone of the cells (the number's schedule zone).
    pub tz: &'a TimeZone,
    /// The schedule whose open hours to show, if any.
    pub schedule: Option<&'a ScheduleConfig>,
    /// The agents' state history (any order).
    pub agent_states: &'a [AgentStateChange],
}

/// One weekday × hour cell, summed over the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeatmapCell {
    /// ISO weekday: 1 Monday … 7 Sunday.
    pub weekday: u8,
    /// Local hour, 0 to 23.
    pub hour: u8,
    /// Inbound calls started in this cell.
    pub inbound: u32,
    /// Of those, missed.
    pub missed: u32,
    /// Share of the cell's time that was open, 0 to 1; `None` without a schedule.
    pub open_share: Option<f64>,
    /// Average number of agents on duty at some moment of the hour, over the cell's days.
    pub available_agents: f64,
    /// How many such hours the period contains.
    pub days: u32,
}

/// The heat map: 168 cells, Monday 00 first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heatmap {
    /// The zone of the cells.
    pub time_zone: String,
    /// Weekday then hour.
    pub cells: Vec<HeatmapCell>,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    inbound: u32,
    missed: u32,
    open: SignedDuration,
    length: SignedDuration,
    on_duty_total: u32,
    days: u32,
}

/// The index of the cell (weekday × hour, Monday 00 first) of a local time.
pub fn cell_of(dt: DateTime) -> usize {
    let weekday = usize::from(dt.weekday().to_monday_zero_offset().unsigned_abs());
    let hour = usize::from(dt.hour().unsigned_abs());
    weekday * 24 + hour
}

/// The instant of a local wall-clock time; in a gap the instant after it, in a fold the first.
fn instant(tz: &TimeZone, date: Date, hour: i8) -> Option<Timestamp> {
    let dt = if hour >= 24 {
        date.tomorrow().ok()?.at(0, 0, 0, 0)
    } else {
        date.at(hour, 0, 0, 0)
    };
    tz.to_timestamp(dt).ok()
}

/// The last instant of a period ending (exclusively) at `t`.
fn just_before(t: Timestamp) -> Timestamp {
    t.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(t)
}

/// Whether `schedule` is open at `t`, by the same rule as the router's
/// [`ScheduleConfig::state_at`] (local date and minute of day), without building its
/// explanation text.
fn is_open(schedule: &ScheduleConfig, t: Timestamp) -> bool {
    let local = schedule.tz.to_datetime(t);
    let date = local.date();
    if schedule.holidays.contains_key(&date) {
        return false;
    }
    let minute =
        u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
    schedule
        .windows_on(date)
        .iter()
        .any(|w| w.open <= minute && minute < w.close)
}

/// Open time of `schedule` within `[a, b)`, minute by minute: windows are whole minutes and
/// zone offsets change on whole minutes, so this is exact — including the repeated hour of a
/// fall-back night, where the router judges by the local clock as well.
fn open_within(schedule: &ScheduleConfig, a: Timestamp, b: Timestamp) -> SignedDuration {
    if let Some(open) = open_within_one_date(schedule, a, b) {
        return open;
    }
    let mut total = SignedDuration::ZERO;
    let mut t = a;
    while t < b {
        let into_minute = t.as_second().rem_euclid(60);
        let next = Timestamp::from_second(t.as_second() - into_minute + 60).map_or(b, |n| n.min(b));
        if next <= t {
            break;
        }
        if is_open(schedule, t) {
            total += next.duration_since(t);
        }
        t = next;
    }
    total
}

/// [`open_within`] without walking minutes, where that gives the same answer: `[a, b)` on
/// whole minutes, within one local date of the schedule's zone and without an offset change
/// (every hour of the year but the few around DST changes and the period's clipped edges).
/// The open time is then the overlap of the local minutes with that date's windows. `None`
/// otherwise: the caller walks the minutes.
fn open_within_one_date(
    schedule: &ScheduleConfig,
    a: Timestamp,
    b: Timestamp,
) -> Option<SignedDuration> {
    let whole = |t: Timestamp| t.subsec_nanosecond() == 0 && t.as_second().rem_euclid(60) == 0;
    if !whole(a) || !whole(b) || a >= b {
        return None;
    }
    let (la, lb) = (schedule.tz.to_datetime(a), schedule.tz.to_datetime(b));
    if la.duration_until(lb) != b.duration_since(a) {
        return None;
    }
    let date = la.date();
    let minute_of = |dt: DateTime| i64::from(dt.hour()) * 60 + i64::from(dt.minute());
    let from = minute_of(la);
    let to = if lb.date() == date {
        minute_of(lb)
    } else if date.tomorrow().ok() == Some(lb.date()) && minute_of(lb) == 0 {
        24 * 60
    } else {
        return None;
    };
    if schedule.holidays.contains_key(&date) {
        return Some(SignedDuration::ZERO);
    }
    // The union of the windows' overlaps (windows may overlap; a minute counts once).
    let mut spans: Vec<(i64, i64)> = schedule
        .windows_on(date)
        .iter()
        .map(|w| (i64::from(w.open).max(from), i64::from(w.close).min(to)))
        .filter(|(lo, hi)| lo < hi)
        .collect();
    spans.sort_unstable();
    let (mut minutes, mut reached) = (0i64, from);
    for (lo, hi) in spans {
        let lo = lo.max(reached);
        if hi > lo {
            minutes += hi - lo;
            reached = hi;
        }
    }
    Some(SignedDuration::from_mins(minutes))
}

/// The heat map over `[from, to)`. Filters: `number` only (the period is the options').
///
/// # Errors
///
/// [`ReportError::EmptyPeriod`] when `from` is not before `to`.
pub fn heatmap(
    cdrs: &[Cdr],
    filter: &Filter,
    options: &HeatmapOptions<'_>,
) -> Result<Heatmap, ReportError> {
    let HeatmapOptions {
        from,
        to,
        tz,
        schedule,
        agent_states,
    } = *options;
    if from >= to {
        return Err(ReportError::EmptyPeriod { from, to });
    }
    let mut cells = [Acc::default(); 168];

    let ds = Dataset::new(cdrs);
    for cdr in cdrs {
        if !cdr.is_inbound_call()
            || cdr.started_at < from
            || cdr.started_at >= to
            || !filter.number_matches(cdr)
        {
            continue;
        }
        let cell = &mut cells[cell_of(tz.to_datetime(cdr.started_at))];
        cell.inbound += 1;
        if ds.missed(cdr).is_some() {
            cell.missed += 1;
        }
    }

    // Each agent's changes in order.
    let mut history: BTreeMap<&str, Vec<&AgentStateChange>> = BTreeMap::new();
    for change in agent_states {
        history.entry(&change.agent).or_default().push(change);
    }
    for changes in history.values_mut() {
        changes.sort_by(|a, b| (a.at, &a.source, a.sequence).cmp(&(b.at, &b.source, b.sequence)));
    }
    let on_duty_during = |a: Timestamp, b: Timestamp| -> u32 {
        let mut count = 0;
        for changes in history.values() {
            let start = changes.partition_point(|c| c.at <= a);
            let at_start = start
                .checked_sub(1)
                .and_then(|i| changes.get(i))
                .is_some_and(|c| on_duty(c.state));
            let inside = changes
                .get(start..)
                .unwrap_or(&[])
                .iter()
                .take_while(|c| c.at < b)
                .any(|c| on_duty(c.state));
            if at_start || inside {
                count += 1;
            }
        }
        count
    };

    let mut date = tz.to_datetime(from).date();
    let last = tz.to_datetime(just_before(to)).date();
    while date <= last {
        for hour in 0..24i8 {
            let (Some(start), Some(end)) = (instant(tz, date, hour), instant(tz, date, hour + 1))
            else {
                continue;
            };
            let (a, b) = (start.max(from), end.min(to));
            if a >= b {
                continue;
            }
            let cell = &mut cells[cell_of(date.at(hour, 0, 0, 0))];
            cell.days += 1;
            cell.length += b.duration_since(a);
            if let Some(s) = schedule {
                cell.open += open_within(s, a, b);
            }
            cell.on_duty_total += on_duty_during(a, b);
        }
        let Ok(next) = date.tomorrow() else { break };
        date = next;
    }

    let cells = cells
        .iter()
        .enumerate()
        .map(|(i, acc)| HeatmapCell {
            weekday: u8::try_from(i / 24 + 1).unwrap_or(0),
            hour: u8::try_from(i % 24).unwrap_or(0),
            inbound: acc.inbound,
            missed: acc.missed,
            open_share: schedule.map(|_| {
                if acc.length.is_zero() {
                    0.0
                } else {
                    acc.open.as_secs_f64() / acc.length.as_secs_f64()
                }
            }),
            available_agents: if acc.days == 0 {
                0.0
            } else {
                f64::from(acc.on_duty_total) / f64::from(acc.days)
            },
            days: acc.days,
        })
        .collect();
    Ok(Heatmap {
        time_zone: tz.iana_name().unwrap_or("UTC").to_owned(),
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_model::schedule::Window;

    fn minute_walk(schedule: &ScheduleConfig, a: Timestamp, b: Timestamp) -> SignedDuration {
        let mut total = SignedDuration::ZERO;
        let mut t = a;
        while t < b {
            let next = Timestamp::from_second(t.as_second() - t.as_second().rem_euclid(60) + 60)
                .map_or(b, |n| n.min(b));
            if is_open(schedule, t) {
                total += next.duration_since(t);
            }
            t = next;
        }
        total
    }

    fn kyiv_office() -> ScheduleConfig {
        let w = |open: u16, close: u16| Window { open, close };
        let day = vec![w(9 * 60, 13 * 60), w(12 * 60, 18 * 60 + 30)];
        let date = |s: &str| s.parse::<Date>().expect("date");
        ScheduleConfig {
            name: "office".into(),
            timezone: "Europe/Kyiv".into(),
            tz: TimeZone::get("Europe/Kyiv").expect("zone"),
            weekly: [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                vec![w(0, 90), w(23 * 60, 1440)],
                vec![w(10 * 60 + 15, 14 * 60)],
                vec![],
            ],
            holidays: [(date("2026-03-30"), "spring".to_owned())].into(),
            exceptions: [(date("2026-10-26"), vec![w(3 * 60, 4 * 60 + 20)])].into(),
        }
    }

    /// Every local hour of two DST changes' weeks, in the schedule's zone and in two others,
    /// gives the minute walk's open time (where the fast path answers at all).
    #[test]
    fn open_time_by_windows_matches_the_minute_walk() {
        let schedule = kyiv_office();
        let mut answered = 0;
        for zone in ["Europe/Kyiv", "America/New_York", "UTC"] {
            let tz = TimeZone::get(zone).expect("zone");
            for first in ["2026-03-26", "2026-10-22"] {
                let mut date: Date = first.parse().expect("date");
                for _ in 0..8 {
                    for hour in 0..24i8 {
                        let (Some(a), Some(b)) =
                            (instant(&tz, date, hour), instant(&tz, date, hour + 1))
                        else {
                            continue;
                        };
                        if a >= b {
                            continue;
                        }
                        let walked = minute_walk(&schedule, a, b);
                        assert_eq!(open_within(&schedule, a, b), walked, "{zone} {date} {hour}");
                        if open_within_one_date(&schedule, a, b).is_some() {
                            answered += 1;
                        }
                    }
                    date = date.tomorrow().expect("date");
                }
            }
        }
        // The fast path takes nearly every hour (not those crossing a change or a midnight of
        // the schedule's zone in a zone with another offset's half hours — none here).
        assert!(answered > 3 * 2 * 8 * 24 - 20, "{answered}");
        // Thursday 09:30 in Kyiv (UTC+2): open; two whole minutes; a second off is no fast path.
        let t: Timestamp = "2026-03-26T07:30:00Z".parse().expect("instant");
        let two = t
            .checked_add(SignedDuration::from_mins(2))
            .expect("instant");
        assert_eq!(
            open_within_one_date(&schedule, t, two),
            Some(SignedDuration::from_mins(2))
        );
        let odd = t
            .checked_add(SignedDuration::from_secs(1))
            .expect("instant");
        assert_eq!(open_within_one_date(&schedule, odd, two), None);
    }
}
