//! Schedules as parsed values, and the open / closed / holiday state at an instant.
//!
//! Windows are local wall-clock times in the schedule's IANA zone, so a DST change moves them in
//! UTC but not on the office clock: the state is computed from the instant's local date and time
//! of day, never by adding durations to a UTC midnight.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, Weekday as CivilWeekday};
use jiff::tz::TimeZone;

/// Minutes since local midnight; `1440` is `24:00`, the end of the day.
pub type Minute = u16;

/// An open window `[open, close)` in local minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    /// Opening minute.
    pub open: Minute,
    /// Closing minute (exclusive).
    pub close: Minute,
}

impl Window {
    fn contains(&self, minute: Minute) -> bool {
        self.open <= minute && minute < self.close
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}–{:02}:{:02}",
            self.open / 60,
            self.open % 60,
            self.close / 60,
            self.close % 60
        )
    }
}

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// Its name.
    pub name: String,
    /// IANA zone name as written.
    pub timezone: String,
    /// The zone.
    pub tz: TimeZone,
    /// Windows per weekday, Monday first, sorted.
    pub weekly: [Vec<Window>; 7],
    /// Holidays: date → name.
    pub holidays: BTreeMap<Date, String>,
    /// Date exceptions: date → that day's windows (empty: closed all day).
    pub exceptions: BTreeMap<Date, Vec<Window>>,
}

/// Open, closed or holiday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleState {
    /// Inside an open window.
    Open,
    /// Outside every window.
    Closed,
    /// A holiday.
    Holiday,
}

impl ScheduleState {
    /// `open`, `closed` or `holiday` — the route names.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Open => "open",
            ScheduleState::Closed => "closed",
            ScheduleState::Holiday => "holiday",
        }
    }
}

/// The state at an instant and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateAt {
    /// The state.
    pub state: ScheduleState,
    /// Human-readable reason, e.g. `Mon 09:00–19:00 (local 10:15 Europe/Kyiv)`.
    pub why: String,
}

/// Index of a weekday with Monday = 0.
pub fn weekday_index(day: CivilWeekday) -> usize {
    usize::from(day.to_monday_zero_offset().unsigned_abs())
}

impl ScheduleConfig {
    /// The windows that apply on a local date: the exception's if there is one, else the
    /// weekday's.
    pub fn windows_on(&self, date: Date) -> &[Window] {
        match self.exceptions.get(&date) {
            Some(windows) => windows,
            None => &self.weekly[weekday_index(date.weekday())],
        }
    }

    /// The state at an instant.
    pub fn state_at(&self, at: Timestamp) -> StateAt {
        let local = self.tz.to_datetime(at);
        let date = local.date();
        let minute = Minute::from(local.hour().unsigned_abs()) * 60
            + Minute::from(local.minute().unsigned_abs());
        let clock = format!(
            "local {} {:02}:{:02} {}",
            date,
            local.hour(),
            local.minute(),
            self.timezone
        );
        if let Some(name) = self.holidays.get(&date) {
            return StateAt {
                state: ScheduleState::Holiday,
                why: format!("holiday {name} ({clock})"),
            };
        }
        let windows = self.windows_on(date);
        let source = if self.exceptions.contains_key(&date) {
            "exception"
        } else {
            "weekly"
        };
        match windows.iter().find(|w| w.contains(minute)) {
            Some(w) => StateAt {
                state: ScheduleState::Open,
                why: format!("{source} window {w} ({clock})"),
            },
            None => StateAt {
                state: ScheduleState::Closed,
                why: if windows.is_empty() {
                    format!("no {source} window that day ({clock})")
                } else {
                    let list: Vec<String> = windows.iter().map(ToString::to_string).collect();
                    format!("outside {source} windows {} ({clock})", list.join(", "))
                },
            },
        }
    }
}

/// Parses `HH:MM` (and `24:00` when `allow_end_of_day`).
pub fn parse_hhmm(text: &str, allow_end_of_day: bool) -> Option<Minute> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())) {
        return None;
    }
    let h: Minute = h.parse().ok()?;
    let m: Minute = m.parse().ok()?;
    if h == 24 && m == 0 && allow_end_of_day {
        return Some(1440);
    }
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office() -> ScheduleConfig {
        let w = |o: &str, c: &str| Window {
            open: parse_hhmm(o, false).unwrap_or_default(),
            close: parse_hhmm(c, true).unwrap_or_default(),
        };
        let weekdays = vec![w("09:00", "19:00")];
        let tz = TimeZone::get("Europe/Kyiv").expect("bundled tzdb has Europe/Kyiv");
        ScheduleConfig {
            name: "office".into(),
            timezone: "Europe/Kyiv".into(),
            tz,
            weekly: [
                weekdays.clone(),
                weekdays.clone(),
                weekdays.clone(),
                weekdays.clone(),
                weekdays,
                vec![w("10:00", "15:00")],
                vec![w("20:00", "24:00")],
            ],
            holidays: [(Date::constant(2026, 12, 25), "Christmas".to_owned())].into(),
            exceptions: [(Date::constant(2026, 12, 31), vec![w("09:00", "14:00")])].into(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }

    #[test]
    fn open_closed_holiday_exception() {
        let s = office();
        // Monday 2026-11-23 10:15 Kyiv = 08:15Z (UTC+2 in winter).
        assert_eq!(
            s.state_at(at("2026-11-23T08:15:00Z")).state,
            ScheduleState::Open
        );
        assert_eq!(
            s.state_at(at("2026-11-23T06:59:00Z")).state,
            ScheduleState::Closed
        );
        assert_eq!(
            s.state_at(at("2026-11-23T07:00:00Z")).state,
            ScheduleState::Open
        );
        assert_eq!(
            s.state_at(at("2026-11-23T17:00:00Z")).state,
            ScheduleState::Closed
        );
        assert_eq!(
            s.state_at(at("2026-12-25T10:00:00Z")).state,
            ScheduleState::Holiday
        );
        // The short day: open 09–14 local instead of 09–19.
        assert_eq!(
            s.state_at(at("2026-12-31T11:59:00Z")).state,
            ScheduleState::Open
        );
        assert_eq!(
            s.state_at(at("2026-12-31T12:00:00Z")).state,
            ScheduleState::Closed
        );
    }

    #[test]
    fn window_to_midnight_and_dst() {
        let s = office();
        // Sunday 23:59 local is inside 20:00–24:00; Monday 00:00 is not.
        assert_eq!(
            s.state_at(at("2026-11-29T21:59:00Z")).state,
            ScheduleState::Open
        );
        assert_eq!(
            s.state_at(at("2026-11-29T22:00:00Z")).state,
            ScheduleState::Closed
        );
        // Summer time (UTC+3): Monday 2026-06-01 09:00 local = 06:00Z.
        assert_eq!(
            s.state_at(at("2026-06-01T06:00:00Z")).state,
            ScheduleState::Open
        );
        assert_eq!(
            s.state_at(at("2026-06-01T05:59:00Z")).state,
            ScheduleState::Closed
        );
    }

    fn every_day(tz: &str, open: &str, close: &str) -> ScheduleConfig {
        let w = vec![Window {
            open: parse_hhmm(open, false).unwrap_or_default(),
            close: parse_hhmm(close, true).unwrap_or_default(),
        }];
        ScheduleConfig {
            name: "s".into(),
            timezone: tz.into(),
            tz: TimeZone::get(tz).expect("bundled tzdb"),
            weekly: std::array::from_fn(|_| w.clone()),
            holidays: BTreeMap::new(),
            exceptions: BTreeMap::new(),
        }
    }

    #[test]
    fn dst_transition_days_both_ways() {
        // Kyiv springs forward on 2026-03-29 at 03:00 (→ 04:00): a 02:00–05:00 window is open
        // 3 real hours on a normal day but only 2 that day, and 09:00 local moves to 06:00Z.
        let s = every_day("Europe/Kyiv", "02:00", "05:00");
        assert_eq!(
            s.state_at(at("2026-03-29T00:30:00Z")).state,
            ScheduleState::Open
        ); // 02:30 EET
        assert_eq!(
            s.state_at(at("2026-03-29T01:30:00Z")).state,
            ScheduleState::Open
        ); // 04:30 EEST
        assert_eq!(
            s.state_at(at("2026-03-29T02:00:00Z")).state,
            ScheduleState::Closed
        ); // 05:00
        let office = every_day("Europe/Kyiv", "09:00", "19:00");
        assert_eq!(
            office.state_at(at("2026-03-29T05:59:00Z")).state,
            ScheduleState::Closed
        );
        assert_eq!(
            office.state_at(at("2026-03-29T06:00:00Z")).state,
            ScheduleState::Open
        );
        // Falls back on 2026-10-25 at 04:00 (→ 03:00): 03:30 local happens twice, both open.
        assert_eq!(
            s.state_at(at("2026-10-25T00:30:00Z")).state,
            ScheduleState::Open
        ); // 03:30 EEST
        assert_eq!(
            s.state_at(at("2026-10-25T01:30:00Z")).state,
            ScheduleState::Open
        ); // 03:30 EET
        assert_eq!(
            s.state_at(at("2026-10-25T03:00:00Z")).state,
            ScheduleState::Closed
        ); // 05:00 EET
        assert_eq!(
            office.state_at(at("2026-10-25T07:00:00Z")).state,
            ScheduleState::Open
        );
        assert_eq!(
            office.state_at(at("2026-10-25T06:59:00Z")).state,
            ScheduleState::Closed
        );
        // New York: 2026-03-08 spring forward, 2026-11-01 fall back.
        let ny = every_day("America/New_York", "09:00", "17:00");
        assert_eq!(
            ny.state_at(at("2026-03-08T13:00:00Z")).state,
            ScheduleState::Open
        ); // 09:00 EDT
        assert_eq!(
            ny.state_at(at("2026-03-08T12:59:00Z")).state,
            ScheduleState::Closed
        );
        assert_eq!(
            ny.state_at(at("2026-11-01T14:00:00Z")).state,
            ScheduleState::Open
        ); // 09:00 EST
        assert_eq!(
            ny.state_at(at("2026-11-01T13:59:00Z")).state,
            ScheduleState::Closed
        );
    }

    #[test]
    fn zones_far_from_utc() {
        // Kiritimati is UTC+14: Monday 09:00 local is Sunday 19:00Z.
        let kiri = every_day("Pacific/Kiritimati", "09:00", "10:00");
        assert_eq!(
            kiri.state_at(at("2026-11-22T19:00:00Z")).state,
            ScheduleState::Open
        );
        assert_eq!(
            kiri.state_at(at("2026-11-22T20:00:00Z")).state,
            ScheduleState::Closed
        );
        // Pago Pago is UTC−11; Kathmandu is UTC+5:45.
        let pago = every_day("Pacific/Pago_Pago", "09:00", "10:00");
        assert_eq!(
            pago.state_at(at("2026-11-23T20:00:00Z")).state,
            ScheduleState::Open
        );
        let ktm = every_day("Asia/Kathmandu", "09:00", "10:00");
        assert_eq!(
            ktm.state_at(at("2026-11-23T03:15:00Z")).state,
            ScheduleState::Open
        );
        assert_eq!(
            ktm.state_at(at("2026-11-23T03:14:00Z")).state,
            ScheduleState::Closed
        );
        // A holiday is the local date, not the UTC one: 25 Dec 00:30 in Kiritimati is
        // 24 Dec 10:30Z.
        let mut h = every_day("Pacific/Kiritimati", "00:00", "24:00");
        h.holidays
            .insert(Date::constant(2026, 12, 25), "Christmas".into());
        assert_eq!(
            h.state_at(at("2026-12-24T10:30:00Z")).state,
            ScheduleState::Holiday
        );
        assert_eq!(
            h.state_at(at("2026-12-24T09:30:00Z")).state,
            ScheduleState::Open
        );
    }

    #[test]
    fn hhmm_parsing() {
        assert_eq!(parse_hhmm("09:30", false), Some(570));
        assert_eq!(parse_hhmm("24:00", true), Some(1440));
        assert_eq!(parse_hhmm("24:00", false), None);
        assert_eq!(parse_hhmm("9:30", false), None);
        assert_eq!(parse_hhmm("12:60", false), None);
        assert_eq!(parse_hhmm("ab:cd", false), None);
        assert_eq!(parse_hhmm("+9:00", false), None);
    }
}
