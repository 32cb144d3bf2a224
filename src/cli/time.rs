//! Times on the command line: RFC 3339 (`2026-11-23T09:00:00Z`) or a date (`2026-11-23`, the
//! whole day, in UTC).

use jiff::Timestamp;
use jiff::civil::Date;

/// A time argument that is neither.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a time: write RFC 3339 (2026-11-23T09:00:00Z) or a date (2026-11-23)")]
pub struct BadTime(pub String);

/// A parsed `--at`/`--from`/`--to`: an instant, or a whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// An instant.
    Instant(Timestamp),
    /// A whole UTC day.
    Day(Date),
}

impl TimeArg {
    /// Parses either form.
    pub fn parse(text: &str) -> Result<Self, BadTime> {
        if let Ok(t) = text.parse::<Timestamp>() {
            return Ok(TimeArg::Instant(t));
        }
        if text.len() == 10
            && let Ok(d) = text.parse::<Date>()
        {
            return Ok(TimeArg::Day(d));
        }
        Err(BadTime(text.to_owned()))
    }

    /// The first instant (for `--at` and `--from`).
    pub fn start(self) -> Timestamp {
        match self {
            TimeArg::Instant(t) => t,
            TimeArg::Day(d) => day_start(d),
        }
    }

    /// The end, exclusive (for `--to`: a date includes the whole day).
    pub fn end(self) -> Timestamp {
        match self {
            TimeArg::Instant(t) => t,
            TimeArg::Day(d) => d.tomorrow().map(day_start).unwrap_or(Timestamp::MAX),
        }
    }
}

fn day_start(d: Date) -> Timestamp {
    jiff::tz::TimeZone::UTC
        .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        assert_eq!(
            TimeArg::parse("2026-11-23T09:00:00Z")
                .map(TimeArg::start)
                .ok(),
            "2026-11-23T09:00:00Z".parse().ok()
        );
        let day = TimeArg::parse("2026-11-23").expect("a date");
        assert_eq!(
            day.start(),
            "2026-11-23T00:00:00Z".parse::<Timestamp>().expect("t")
        );
        assert_eq!(
            day.end(),
            "2026-11-24T00:00:00Z".parse::<Timestamp>().expect("t")
        );
        assert!(TimeArg::parse("yesterday").is_err());
        assert!(TimeArg::parse("2026-13-01").is_err());
    }
}
