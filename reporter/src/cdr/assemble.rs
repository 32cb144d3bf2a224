//! Idempotent, order-independent assembly of events into CDRs.

use std::collections::{BTreeMap, HashMap};

use dialtone_proto::v1::CallEvent;
use jiff::{SignedDuration, Timestamp};

use super::Cdr;
use super::build::{Timed, build};
use crate::error::{AssembleError, EventError};
use crate::policy::Policy;
use crate::time::from_proto_timestamp;

/// What [`CallAssembler::add`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The event was new.
    New,
    /// The same event had already arrived; nothing changed. (At-least-once delivery makes
    /// this normal, so it is not an error.)
    Duplicate,
}

/// Checks an event on its own (ids, sequence, kind, timestamp) and returns its instant. The
/// storage layer calls this before storing an event, so that an event it accepts can always be
/// assembled.
///
/// # Errors
///
/// The first thing wrong with the event.
pub fn validate_event(event: &CallEvent) -> Result<Timestamp, EventError> {
    if event.event_id.is_empty() {
        return Err(EventError::MissingEventId);
    }
    let id = || event.event_id.clone();
    if event.call_id.is_empty() {
        return Err(EventError::MissingCallId { event_id: id() });
    }
    if event.sequence == 0 {
        return Err(EventError::ZeroSequence { event_id: id() });
    }
    if event.kind.is_none() {
        return Err(EventError::MissingKind { event_id: id() });
    }
    let at = event
        .at
        .as_ref()
        .ok_or_else(|| EventError::MissingTimestamp { event_id: id() })?;
    from_proto_timestamp(at)
}

/// The order of a call's events: by `sequence` (the emitting node's order), then — only for a
/// sender that broke the no-duplicate-sequence promise — by time and id, so that even then the
/// order does not depend on arrival.
fn sort(events: &mut [Timed<'_>]) {
    events.sort_by(|(a_at, a), (b_at, b)| {
        (a.sequence, a_at, &a.event_id).cmp(&(b.sequence, b_at, &b.event_id))
    });
}

/// Assembles one call from its events, given in any order and possibly repeated.
///
/// # Errors
///
/// An invalid event, events of several calls, two different events under one id, or no
/// `CallStarted` yet.
pub fn assemble_call(events: &[CallEvent], policy: &Policy) -> Result<Cdr, AssembleError> {
    let mut unique: BTreeMap<&str, Timed<'_>> = BTreeMap::new();
    for event in events {
        let at = validate_event(event)?;
        if let Some((_, first)) = unique.values().next()
            && first.call_id != event.call_id
        {
            return Err(AssembleError::MixedCalls {
                first: first.call_id.clone(),
                other: event.call_id.clone(),
            });
        }
        match unique.get(event.event_id.as_str()) {
            Some((_, kept)) if *kept != event => {
                return Err(EventError::Conflict {
                    event_id: event.event_id.clone(),
                }
                .into());
            }
            Some(_) => {}
            None => {
                unique.insert(&event.event_id, (at, event));
            }
        }
    }
    let mut timed: Vec<Timed<'_>> = unique.into_values().collect();
    sort(&mut timed);
    build(&timed, policy.short_abandon())
}

/// Holds the events of many calls and yields their CDRs.
///
/// Feed it events in any order and any number of times; [`CallAssembler::cdrs`] gives the same
/// records whatever the arrival order. It is the in-memory reference the storage layer must
/// agree with (which stores events by id, and re-assembles a call when one arrives).
#[derive(Debug, Clone)]
pub struct CallAssembler {
    short_abandon: SignedDuration,
    /// call id → event id → (instant, event).
    calls: BTreeMap<String, BTreeMap<String, (Timestamp, CallEvent)>>,
    /// event id → call id, so that an id reused across calls is caught.
    seen: HashMap<String, String>,
}

impl CallAssembler {
    /// An empty assembler judging missed reasons with `policy`.
    pub fn new(policy: &Policy) -> Self {
        CallAssembler {
            short_abandon: policy.short_abandon(),
            calls: BTreeMap::new(),
            seen: HashMap::new(),
        }
    }

    /// Takes one event.
    ///
    /// # Errors
    ///
    /// The event is invalid, or its id was seen before with different content (the first copy
    /// is kept).
    pub fn add(&mut self, event: CallEvent) -> Result<Added, EventError> {
        let at = validate_event(&event)?;
        if let Some(call_id) = self.seen.get(&event.event_id) {
            let same = self
                .calls
                .get(call_id)
                .and_then(|events| events.get(&event.event_id))
                .is_some_and(|(_, kept)| *kept == event);
            return if same {
                Ok(Added::Duplicate)
            } else {
                Err(EventError::Conflict {
                    event_id: event.event_id,
                })
            };
        }
        self.seen
            .insert(event.event_id.clone(), event.call_id.clone());
        self.calls
            .entry(event.call_id.clone())
            .or_default()
            .insert(event.event_id.clone(), (at, event));
        Ok(Added::New)
    }

    /// Takes many events; returns the errors of those refused (the others are kept).
    pub fn extend<I: IntoIterator<Item = CallEvent>>(&mut self, events: I) -> Vec<EventError> {
        events
            .into_iter()
            .filter_map(|e| self.add(e).err())
            .collect()
    }

    /// Number of calls with at least one event.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True before the first event.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The ids of the calls seen, sorted.
    pub fn call_ids(&self) -> impl Iterator<Item = &str> {
        self.calls.keys().map(String::as_str)
    }

    /// The CDR of one call.
    ///
    /// # Errors
    ///
    /// [`AssembleError::NoEvents`] for an unknown call, [`AssembleError::NotStarted`] while its
    /// `CallStarted` has not arrived.
    pub fn cdr(&self, call_id: &str) -> Result<Cdr, AssembleError> {
        let events = self.calls.get(call_id).ok_or(AssembleError::NoEvents)?;
        let mut timed: Vec<Timed<'_>> = events.values().map(|(at, e)| (*at, e)).collect();
        sort(&mut timed);
        build(&timed, self.short_abandon)
    }

    /// Every call's CDR, by start time then call id. Calls whose `CallStarted` has not arrived
    /// yet are left out (see [`CallAssembler::not_started`]).
    pub fn cdrs(&self) -> Vec<Cdr> {
        let mut cdrs: Vec<Cdr> = self
            .calls
            .keys()
            .filter_map(|id| self.cdr(id).ok())
            .collect();
        cdrs.sort_by(|a, b| (a.started_at, &a.call_id).cmp(&(b.started_at, &b.call_id)));
        cdrs
    }

    /// Calls with events but no `CallStarted` yet.
    pub fn not_started(&self) -> Vec<&str> {
        self.calls
            .keys()
            .filter(|id| matches!(self.cdr(id), Err(AssembleError::NotStarted { .. })))
            .map(String::as_str)
            .collect()
    }
}
