//! Instants and lengths of time: conversions from the wire types and the serde shapes used in
//! CDRs and report rows.
//!
//! Instants are [`jiff::Timestamp`] everywhere (UTC, nanosecond precision). They serialize as
//! RFC 3339 strings (`2026-11-23T09:00:00Z`) because that is what the CLI prints and what
//! PRODUCT.md's precise rules name for `started_at`. Lengths of time inside a [`crate::Cdr`]
//! are [`jiff::SignedDuration`] serialized as ISO 8601 (`PT12.5S`), which round-trips exactly;
//! report rows carry plain `*_seconds` numbers instead, because that is what a spreadsheet or a
//! CRM wants.

use jiff::{SignedDuration, Timestamp};

use crate::error::EventError;

/// Converts a protobuf timestamp, rejecting values jiff cannot represent (instead of
/// panicking or silently clamping: an event with a nonsense clock is a sender bug to surface).
pub(crate) fn from_proto_timestamp(ts: &prost_types::Timestamp) -> Result<Timestamp, EventError> {
    Timestamp::new(ts.seconds, ts.nanos).map_err(|_| EventError::BadTimestamp {
        seconds: ts.seconds,
        nanos: ts.nanos,
    })
}

/// Converts a protobuf duration. Out-of-range nanoseconds (which a correct sender never
/// produces) are folded into range instead of overflowing: a duration is informative only and
/// never decides a report figure.
pub(crate) fn from_proto_duration(d: &prost_types::Duration) -> SignedDuration {
    SignedDuration::new(d.seconds, d.nanos % 1_000_000_000)
}

/// A timestamp as a `prost_types::Timestamp`, for callers building events or gRPC rows.
pub fn to_proto_timestamp(ts: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ts.as_second(),
        nanos: ts.subsec_nanosecond(),
    }
}

/// Seconds as a float, the unit of every `*_seconds` field of the report rows.
pub(crate) fn seconds(d: SignedDuration) -> f64 {
    d.as_secs_f64()
}

/// Serde for `Timestamp` as an RFC 3339 string.
pub mod rfc3339 {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as RFC 3339.
    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(ts)
    }

    /// Parses RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }

    /// Serde for `Option<Timestamp>` (null when absent).
    pub mod option {
        use jiff::Timestamp;
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serializes as RFC 3339 or null.
        pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match ts {
                Some(ts) => s.collect_str(ts),
                None => s.serialize_none(),
            }
        }

        /// Parses RFC 3339 or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            let text = Option::<String>::deserialize(d)?;
            text.map(|t| t.parse().map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// Serde for `SignedDuration` as an ISO 8601 duration string (exact round trip).
pub mod iso8601 {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as ISO 8601 (`PT12.5S`).
    pub fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }

    /// Parses ISO 8601.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_conversions() {
        let ts: Timestamp = "2026-11-23T09:00:00.25Z".parse().expect("valid");
        let back = from_proto_timestamp(&to_proto_timestamp(ts)).expect("in range");
        assert_eq!(back, ts);
        let bad = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(from_proto_timestamp(&bad).is_err());
        let d = from_proto_duration(&prost_types::Duration {
            seconds: 12,
            nanos: 1_500_000_000,
        });
        assert_eq!(d, SignedDuration::new(12, 500_000_000));
    }
}
