//! Test support: a tracing subscriber that keeps every event's target, level and message,
//! so tests can check that a limit wrote its log line (tracing-subscriber is no dependency
//! of this crate, and the line is what an operator greps for).

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, span};

/// The events seen while installed with `tracing::subscriber::with_default`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<(String, Level, String)>>>);

impl Capture {
    /// Events with target `security` at `level` whose message contains `text`.
    pub(crate) fn security(&self, level: Level, text: &str) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(target, l, message)| {
                target == "security" && *l == level && message.contains(text)
            })
            .count()
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let meta = event.metadata();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push((
            meta.target().to_owned(),
            *meta.level(),
            message.0,
        ));
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}
