//! The heat map: the corpus day, and the daylight-saving changes in Europe/Kyiv: Sunday
//! 2026-03-29 (03:00 EET → 04:00 EEST: local hour 3 does not exist) and Sunday 2026-10-25
//! (04:00 EEST → 03:00 EET: local hour 3 happens twice).

use dialtone_model::schedule::{ScheduleConfig, Window};
use dialtone_proto::v1::AgentState;
use dialtone_reporter::reports::{self, AgentStateChange, Filter, HeatmapOptions};
use dialtone_reporter::{CallAssembler, Cdr, Policy};
use jiff::tz::TimeZone;

use crate::support::{ADS, inbound, state, t};
use crate::{day, day_cdrs};

fn kyiv() -> TimeZone {
    TimeZone::get("Europe/Kyiv").expect("bundled tzdb has Europe/Kyiv")
}

fn window(open: u16, close: u16) -> Window {
    Window { open, close }
}

/// The demo's office hours: Mon–Fri 09:00–19:00, Sat 10:00–15:00, closed Sunday.
pub fn office_hours() -> ScheduleConfig {
    let weekday = vec![window(9 * 60, 19 * 60)];
    ScheduleConfig {
        name: "office-hours".into(),
        timezone: "Europe/Kyiv".into(),
        tz: kyiv(),
        weekly: [
            weekday.clone(),
            weekday.clone(),
            weekday.clone(),
            weekday.clone(),
            weekday,
            vec![window(10 * 60, 15 * 60)],
            vec![],
        ],
        holidays: Default::default(),
        exceptions: Default::default(),
    }
}

/// A night line: Sundays 02:30–03:30 and 20:00–24:00.
fn night_line() -> ScheduleConfig {
    let mut s = office_hours();
    s.weekly[6] = vec![window(150, 210), window(20 * 60, 1440)];
    s
}

/// A missed call (all agents unavailable) at `at`.
fn missed_at(id: &str, at: &str) -> Vec<dialtone_proto::v1::CallEvent> {
    inbound(id)
        .from("+380501112233")
        .to(ADS)
        .at(at)
        .closed()
        .wait(20.0)
        .system_hangs_up()
        .events()
}

fn cdrs(calls: Vec<Vec<dialtone_proto::v1::CallEvent>>) -> Vec<Cdr> {
    let mut a = CallAssembler::new(&Policy::default());
    for event in calls.into_iter().flatten() {
        a.add(event).expect("valid");
    }
    a.cdrs()
}

fn sunday(map: &reports::Heatmap, hour: usize) -> &reports::HeatmapCell {
    &map.cells[6 * 24 + hour]
}

#[test]
fn spring_forward_day_has_no_hour_three() {
    let tz = kyiv();
    let cdrs = cdrs(vec![
        // 02:59 EET.
        missed_at("s1", "2026-03-29T00:59:00Z"),
        // 04:00 EEST: one minute of clock time later the wall clock shows 04:00.
        missed_at("s2", "2026-03-29T01:00:00Z"),
        // 04:30 EEST.
        missed_at("s3", "2026-03-29T01:30:00Z"),
    ]);
    let states: Vec<AgentStateChange> = [
        state("anna", AgentState::Available, "2026-03-29T00:30:00Z", 1),
        state("anna", AgentState::Offline, "2026-03-29T01:10:00Z", 2),
    ]
    .iter()
    .map(|e| AgentStateChange::try_from(e).expect("valid"))
    .collect();
    let schedule = night_line();
    let options = HeatmapOptions {
        // Sunday 00:00 EET → Monday 00:00 EEST: a 23-hour day.
        from: t("2026-03-28T22:00:00Z"),
        to: t("2026-03-29T21:00:00Z"),
        tz: &tz,
        schedule: Some(&schedule),
        agent_states: &states,
    };
    let map = reports::heatmap(&cdrs, &Filter::default(), &options).expect("a period");
    // 23 slots: hour 3 has no day.
    let days: Vec<u32> = (0..24).map(|h| sunday(&map, h).days).collect();
    let mut want = vec![1; 24];
    want[3] = 0;
    assert_eq!(days, want);
    assert_eq!(
        (
            sunday(&map, 2).inbound,
            sunday(&map, 3).inbound,
            sunday(&map, 4).inbound
        ),
        (1, 0, 2)
    );
    assert_eq!(sunday(&map, 4).missed, 2);
    // anna was on duty 02:30 EET – 04:10 EEST: hours 2 and 4 (hour 3 does not exist).
    let available: Vec<f64> = (0..6).map(|h| sunday(&map, h).available_agents).collect();
    assert_eq!(available, [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    // The window 02:30–03:30 is open from 02:30 to the jump (03:00 EET = 04:00 EEST): half of
    // hour 2; the clock never shows 03:00–03:30.
    let open: Vec<f64> = (0..5)
        .map(|h| sunday(&map, h).open_share.unwrap_or(-1.0))
        .collect();
    assert_eq!(open, [0.0, 0.0, 0.5, 0.0, 0.0]);
    assert_eq!(sunday(&map, 21).open_share, Some(1.0));
}

#[test]
fn fall_back_day_has_a_two_hour_hour_three() {
    let tz = kyiv();
    let cdrs = cdrs(vec![
        // 03:30 EEST, then 03:30 EET an hour later: the same cell.
        missed_at("f1", "2026-10-25T00:30:00Z"),
        missed_at("f2", "2026-10-25T01:30:00Z"),
        // 04:00 EET.
        missed_at("f3", "2026-10-25T02:00:00Z"),
    ]);
    let states: Vec<AgentStateChange> = [
        // On duty 03:45–03:50 EET (the second 03:xx).
        state("bohdan", AgentState::Available, "2026-10-25T01:45:00Z", 1),
        state("bohdan", AgentState::Dnd, "2026-10-25T01:50:00Z", 2),
    ]
    .iter()
    .map(|e| AgentStateChange::try_from(e).expect("valid"))
    .collect();
    let schedule = night_line();
    let options = HeatmapOptions {
        // Sunday 00:00 EEST → Monday 00:00 EET: a 25-hour day.
        from: t("2026-10-24T21:00:00Z"),
        to: t("2026-10-25T22:00:00Z"),
        tz: &tz,
        schedule: Some(&schedule),
        agent_states: &states,
    };
    let map = reports::heatmap(&cdrs, &Filter::default(), &options).expect("a period");
    assert!((0..24).all(|h| sunday(&map, h).days == 1));
    assert_eq!((sunday(&map, 3).inbound, sunday(&map, 4).inbound), (2, 1));
    assert_eq!(sunday(&map, 3).available_agents, 1.0);
    assert_eq!(sunday(&map, 4).available_agents, 0.0);
    // 02:30–03:30 by the local clock: 02:30–03:00 (half of hour 2), then 03:00–03:30 twice
    // (EEST and EET): 1 h open of the 2 h slot of hour 3 — as the router judges each instant.
    assert_eq!(sunday(&map, 2).open_share, Some(0.5));
    assert_eq!(sunday(&map, 3).open_share, Some(0.5));
    assert_eq!(sunday(&map, 4).open_share, Some(0.0));
    // The router agrees at 01:15Z (03:15 EET): open.
    let at = t("2026-10-25T01:15:00Z");
    assert_eq!(
        schedule.state_at(at).state,
        dialtone_model::schedule::ScheduleState::Open
    );
}

#[test]
fn averages_over_the_weeks_of_a_period() {
    // Two Mondays; anna on duty at 10:xx on the first only: 0.5 agents on average.
    let tz = kyiv();
    let states: Vec<AgentStateChange> = [
        state("anna", AgentState::Available, "2026-11-16T08:10:00Z", 1),
        state("anna", AgentState::Offline, "2026-11-16T08:20:00Z", 2),
    ]
    .iter()
    .map(|e| AgentStateChange::try_from(e).expect("valid"))
    .collect();
    let schedule = office_hours();
    let options = HeatmapOptions {
        from: t("2026-11-15T22:00:00Z"),
        to: t("2026-11-29T22:00:00Z"),
        tz: &tz,
        schedule: Some(&schedule),
        agent_states: &states,
    };
    let map = reports::heatmap(&[], &Filter::default(), &options).expect("a period");
    let monday_10 = &map.cells[10];
    assert_eq!((monday_10.days, monday_10.available_agents), (2, 0.5));
    assert_eq!(
        map.cells[5 * 24 + 12].open_share,
        Some(1.0),
        "Saturday 12:00"
    );
    assert_eq!(
        map.cells[5 * 24 + 15].open_share,
        Some(0.0),
        "Saturday 15:00"
    );
    assert!(map.cells.iter().all(|c| c.days == 2));
    assert!(
        reports::heatmap(
            &[],
            &Filter::default(),
            &HeatmapOptions {
                to: options.from,
                ..options
            }
        )
        .is_err()
    );
}

#[test]
fn heatmap_of_the_day() {
    let cdrs = day_cdrs();
    let tz = kyiv();
    let schedule = office_hours();
    let states: Vec<AgentStateChange> = day::agent_states()
        .iter()
        .map(|e| AgentStateChange::try_from(e).expect("valid"))
        .collect();
    let options = HeatmapOptions {
        // Monday 00:00 → Tuesday 00:00 local.
        from: t("2026-11-22T22:00:00Z"),
        to: t("2026-11-23T22:00:00Z"),
        tz: &tz,
        schedule: Some(&schedule),
        agent_states: &states,
    };
    let map = reports::heatmap(&cdrs, &Filter::default(), &options).expect("a period");
    assert_eq!(map.time_zone, "Europe/Kyiv");
    assert_eq!(map.cells.len(), 168);
    let monday = &map.cells[..24];
    let inbound: Vec<u32> = monday.iter().map(|c| c.inbound).collect();
    let missed: Vec<u32> = monday.iter().map(|c| c.missed).collect();
    // Local hours: c02 07:30; c01 c03 c04 c05 c06 at 09:xx; c07 c07b c08 c09 c10 at 10:xx
    // (c09 and c10 answered); c11 c12 c13 at 11:xx (c13 answered); c14a c15 c16 at 12:xx
    // (c17 blocked is not an inbound call); c14b c18 c19 at 13:xx (c18 not missed).
    let mut want_inbound = [0u32; 24];
    let mut want_missed = [0u32; 24];
    for (h, i, m) in [
        (7, 1, 1),
        (9, 5, 5),
        (10, 5, 3),
        (11, 3, 2),
        (12, 3, 3),
        (13, 3, 2),
    ] {
        want_inbound[h] = i;
        want_missed[h] = m;
    }
    assert_eq!(inbound, want_inbound);
    assert_eq!(missed, want_missed);
    assert!(
        map.cells[24..]
            .iter()
            .all(|c| c.days == 0 && c.inbound == 0)
    );
    assert!(monday.iter().all(|c| c.days == 1));
    // Open 09:00–19:00 on Mondays.
    let open: Vec<f64> = monday
        .iter()
        .map(|c| c.open_share.unwrap_or(-1.0))
        .collect();
    let want_open: Vec<f64> = (0..24)
        .map(|h| if (9..19).contains(&h) { 1.0 } else { 0.0 })
        .collect();
    assert_eq!(open, want_open);
    // On duty: olena all day (available since Sunday); anna 08:55–13:00 and 14:00–18:00;
    // bohdan 09:00–16:30 (on a call and in wrap-up count as on duty).
    let available: Vec<f64> = monday.iter().map(|c| c.available_agents).collect();
    let mut want = [1.0; 24];
    for (h, n) in [
        (8, 2.0),
        (9, 3.0),
        (10, 3.0),
        (11, 3.0),
        (12, 3.0),
        (13, 2.0),
    ] {
        want[h] = n;
    }
    for (h, n) in [(14, 3.0), (15, 3.0), (16, 3.0), (17, 2.0)] {
        want[h] = n;
    }
    assert_eq!(available, want);
}
