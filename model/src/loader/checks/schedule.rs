//! Checks of Schedules: times, dates, windows, time zones.

use super::*;

pub(super) fn window(
    c: &mut Checker<'_>,
    s: &Site<'_>,
    field: &str,
    open: &str,
    close: &str,
) -> Option<Window> {
    let o = parse_hhmm(open, false);
    if o.is_none() {
        c.error(
            s,
            &format!("{field}.open"),
            format!("{open:?} is not a time: write HH:MM, e.g. 09:00"),
        );
    }
    let cl = parse_hhmm(close, true);
    if cl.is_none() {
        c.error(
            s,
            &format!("{field}.close"),
            format!("{close:?} is not a time: write HH:MM, e.g. 19:00, or 24:00 for midnight"),
        );
    }
    let (open_m, close_m): (Minute, Minute) = (o?, cl?);
    if close_m <= open_m {
        c.error(
            s,
            &format!("{field}.close"),
            format!(
                "close {close} is not after open {open}: a window past midnight is written as two \
                 windows (…–24:00 and 00:00–…)"
            ),
        );
        return None;
    }
    Some(Window {
        open: open_m,
        close: close_m,
    })
}

pub(super) fn parse_date(
    c: &mut Checker<'_>,
    s: &Site<'_>,
    field: &str,
    text: &str,
) -> Option<Date> {
    let ok = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    match text.parse::<Date>() {
        Ok(d) if ok => Some(d),
        _ => {
            c.error(
                s,
                field,
                format!("{text:?} is not a date: write YYYY-MM-DD, e.g. 2026-12-25"),
            );
            None
        }
    }
}

pub(super) fn schedule(c: &mut Checker<'_>, obj: &Obj<Schedule>) -> Option<ScheduleConfig> {
    let s = site(obj);
    let spec = &obj.resource.spec;
    let tz = match TimeZone::get(&spec.timezone) {
        Ok(tz) => Some(tz),
        Err(_) => {
            c.error(
                &s,
                "spec.timezone",
                format!(
                    "{:?} is not an IANA time zone (e.g. Europe/Kyiv, America/New_York, UTC)",
                    spec.timezone
                ),
            );
            None
        }
    };
    let mut weekly: [Vec<(Window, usize)>; 7] = Default::default();
    for (i, w) in spec.weekly.iter().enumerate() {
        let f = format!("spec.weekly[{i}]");
        if w.days.is_empty() {
            c.error(
                &s,
                &format!("{f}.days"),
                "name at least one day (mon … sun)",
            );
        }
        let Some(win) = window(c, &s, &f, &w.open, &w.close) else {
            continue;
        };
        for day in &w.days {
            let idx = weekday_idx(*day);
            if let Some((other, j)) = weekly[idx]
                .iter()
                .find(|(o, _)| o.open < win.close && win.open < o.close)
            {
                let (other, j) = (*other, *j);
                c.error(
                    &s,
                    &f,
                    format!(
                        "window {win} on {} overlaps spec.weekly[{j}] ({other}): merge them or \
                         make them disjoint",
                        day_name(*day)
                    ),
                );
                continue;
            }
            weekly[idx].push((win, i));
        }
    }
    let mut holidays = BTreeMap::new();
    for (i, h) in spec.holidays.iter().enumerate() {
        let f = format!("spec.holidays[{i}].date");
        if let Some(d) = parse_date(c, &s, &f, &h.date)
            && holidays
                .insert(d, h.name.clone().unwrap_or_else(|| "holiday".to_owned()))
                .is_some()
        {
            c.error(&s, &f, format!("{d} is listed twice"));
        }
    }
    let mut exceptions = BTreeMap::new();
    for (i, e) in spec.exceptions.iter().enumerate() {
        let f = format!("spec.exceptions[{i}]");
        let date = parse_date(c, &s, &format!("{f}.date"), &e.date);
        let windows = match (&e.open, &e.close) {
            (Some(o), Some(cl)) => window(c, &s, &f, o, cl).map(|w| vec![w]),
            (None, None) => Some(Vec::new()),
            _ => {
                c.error(
                    &s,
                    &f,
                    "give both open and close, or neither (closed all day)",
                );
                None
            }
        };
        if let (Some(d), Some(w)) = (date, windows) {
            if holidays.contains_key(&d) {
                c.warn(
                    &s,
                    &format!("{f}.date"),
                    format!("{d} is also a holiday; the holiday wins"),
                );
            }
            if exceptions.insert(d, w).is_some() {
                c.error(&s, &format!("{f}.date"), format!("{d} has two exceptions"));
            }
        }
    }
    let weekly = weekly.map(|mut v| {
        v.sort();
        v.into_iter().map(|(w, _)| w).collect()
    });
    Some(ScheduleConfig {
        name: name_of(&obj.resource).to_owned(),
        timezone: spec.timezone.clone(),
        tz: tz?,
        weekly,
        holidays,
        exceptions,
    })
}

pub(super) fn weekday_idx(d: Weekday) -> usize {
    match d {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

pub(super) fn day_name(d: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][weekday_idx(d)]
}
