//! The missed-call policy of a CallCenter (`spec.missedCalls`) in the units the reporter
//! computes with.

use dialtone_model::resources::call_center::MissedCallPolicy;
use jiff::SignedDuration;

/// How missed calls are judged and followed up. Defaults are PRODUCT.md's: 10 s short abandon,
/// 5 s short call, 10 min callback SLA, 30 days of unprocessed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A caller who hangs up within this many seconds of the INVITE's arrival (the
    /// `CallStarted` event's time) is `abandoned_short` — when no earlier reason applies.
    pub short_abandon_seconds: u32,
    /// An answered call with less talk time than this is a short call.
    pub short_call_seconds: u32,
    /// A missed client should get a first callback attempt within this many minutes of the
    /// group's first miss.
    pub callback_sla_minutes: u32,
    /// How many days back the unprocessed to-do list reaches.
    pub unprocessed_window_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            short_abandon_seconds: 10,
            short_call_seconds: 5,
            callback_sla_minutes: 10,
            unprocessed_window_days: 30,
        }
    }
}

impl Policy {
    /// The short-abandon threshold.
    pub fn short_abandon(&self) -> SignedDuration {
        SignedDuration::from_secs(i64::from(self.short_abandon_seconds))
    }

    /// The short-call threshold.
    pub fn short_call(&self) -> SignedDuration {
        SignedDuration::from_secs(i64::from(self.short_call_seconds))
    }

    /// The callback SLA.
    pub fn callback_sla(&self) -> SignedDuration {
        SignedDuration::from_secs(i64::from(self.callback_sla_minutes) * 60)
    }

    /// The unprocessed window.
    pub fn unprocessed_window(&self) -> SignedDuration {
        SignedDuration::from_hours(i64::from(self.unprocessed_window_days) * 24)
    }
}

impl From<&MissedCallPolicy> for Policy {
    /// The manifest's integers are validated non-negative by the loader; a negative value
    /// reaching here anyway is read as 0 rather than wrapping around.
    fn from(p: &MissedCallPolicy) -> Self {
        let n = |v: i32| u32::try_from(v).unwrap_or(0);
        Policy {
            short_abandon_seconds: n(p.short_abandon_seconds),
            short_call_seconds: n(p.short_call_seconds),
            callback_sla_minutes: n(p.callback_sla_minutes),
            unprocessed_window_days: n(p.unprocessed_window_days),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_manifest_defaults() {
        assert_eq!(
            Policy::from(&MissedCallPolicy::default()),
            Policy::default()
        );
    }
}
