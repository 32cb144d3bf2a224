//! Errors of the reporter's core. Each names what was wrong with the input, so the ingestion
//! layer can reject one event (and tell its sender) without stopping the stream.

/// An event that cannot be accepted. The ingestion layer answers these as rejected events; a
/// well-behaved media node never sends one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// `event_id` is empty: the event cannot be de-duplicated, so it cannot be stored once.
    #[error("event has no event_id")]
    MissingEventId,
    /// `call_id` is empty.
    #[error("event {event_id} has no call_id")]
    MissingCallId {
        /// The event.
        event_id: String,
    },
    /// `sequence` is 0; sequences start at 1.
    #[error("event {event_id} has sequence 0 (sequences start at 1)")]
    ZeroSequence {
        /// The event.
        event_id: String,
    },
    /// `at` is unset.
    #[error("event {event_id} has no timestamp")]
    MissingTimestamp {
        /// The event.
        event_id: String,
    },
    /// `at` is outside the range of representable instants.
    #[error("timestamp {seconds}s {nanos}ns is out of range")]
    BadTimestamp {
        /// Seconds of the offending timestamp.
        seconds: i64,
        /// Nanoseconds of the offending timestamp.
        nanos: i32,
    },
    /// `kind` is unset (or a kind this reporter does not know, from a newer sender).
    #[error("event {event_id} has no kind (unknown to this reporter?)")]
    MissingKind {
        /// The event.
        event_id: String,
    },
    /// The same `event_id` arrived again with different content. The first copy is kept: an
    /// id names one fact, and a sender that reuses ids has a bug that must not silently change
    /// history.
    #[error("event {event_id} arrived twice with different content; the first copy is kept")]
    Conflict {
        /// The event.
        event_id: String,
    },
}

/// A call whose events cannot make a CDR (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// No events at all.
    #[error("no events")]
    NoEvents,
    /// The events belong to more than one call.
    #[error("events of several calls ({first} and {other}) given as one call")]
    MixedCalls {
        /// The first call id seen.
        first: String,
        /// Another call id.
        other: String,
    },
    /// `CallStarted` has not arrived (it may still be in a spool): without it the call has no
    /// direction, numbers or start time.
    #[error("call {call_id} has no CallStarted event (yet)")]
    NotStarted {
        /// The call.
        call_id: String,
    },
    /// One of the events is invalid.
    #[error(transparent)]
    Event(#[from] EventError),
}

/// A report's input that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// A status code that no report knows.
    #[error(
        "unknown status {0:?} (known: missed, called_back, answered, not_answered, blocked, rejected, in_progress, within_sla, late, never)"
    )]
    UnknownStatus(String),
    /// A missed reason code that does not exist.
    #[error("unknown missed reason {0:?}")]
    UnknownReason(String),
    /// A handling reason code that does not exist.
    #[error(
        "unknown handling reason {0:?} (known: spam, wrong_number, resolved_elsewhere, duplicate, other)"
    )]
    UnknownHandleReason(String),
    /// `other` needs a note saying what happened.
    #[error("handling reason other needs a note")]
    OtherNeedsNote,
    /// `from` is not before `to`.
    #[error("period is empty: from {from} is not before to {to}")]
    EmptyPeriod {
        /// Start.
        from: jiff::Timestamp,
        /// End.
        to: jiff::Timestamp,
    },
}
