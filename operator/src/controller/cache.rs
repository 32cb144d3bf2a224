//! Bookkeeping that keeps reconciles idempotent and timely: what the operator last wrote
//! ([`WriteCache`]) and when each CallCenter must be looked at again ([`Timers`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use dialtone_model::resources::CallCenter;
use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::Clock;

/// Which part of an object a write went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The object (server-side apply of a desired object).
    Object,
    /// Its status subresource.
    Status,
}

/// `(kind, namespace, name, part)`.
pub type WriteKey = (&'static str, String, String, Part);

/// One write the operator made.
#[derive(Debug, Clone)]
struct Written {
    /// The object's resourceVersion the write was decided on (`None`: it did not exist).
    before: Option<String>,
    /// What was written (for comparison with the next desired value).
    value: Value,
}

/// What the operator last wrote to each object, so that a reconcile running before the watch
/// caches have caught up with the operator's own writes does not write the same thing again.
///
/// A cached object still at the resourceVersion a write was decided on is stale: the write is
/// taken as the current value. At any other resourceVersion the cache is fresh (it has seen the
/// write, or someone else's change after it) and is compared instead. A deletion seen by a
/// watch forgets the entry, so a deleted object is recreated.
#[derive(Debug, Default)]
pub struct WriteCache {
    entries: Mutex<HashMap<WriteKey, Written>>,
}

impl WriteCache {
    /// Records a write decided on an object at resourceVersion `before`.
    pub fn wrote(&self, key: WriteKey, before: Option<String>, value: Value) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Written { before, value });
    }

    /// The value to compare a desired value with: the last write when the cached object (at
    /// `cached_rv`) predates it, otherwise `cached` itself.
    pub fn current(&self, key: &WriteKey, cached_rv: Option<&str>, cached: Value) -> Value {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some(w) if w.before.as_deref() == cached_rv => w.value.clone(),
            _ => cached,
        }
    }

    /// Forgets every write to `kind/namespace/name` (the object was deleted).
    pub fn forget(&self, kind: &'static str, namespace: &str, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for part in [Part::Object, Part::Status] {
            entries.remove(&(kind, namespace.to_owned(), name.to_owned(), part));
        }
    }

    /// How many writes are remembered.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A scheduled wake-up: when, and the task that waits for it.
type Wakeup = (Timestamp, JoinHandle<()>);

/// One pending wake-up per CallCenter, on the operator's [`Clock`]: at the next campaign floor
/// change or after the resync interval, whichever comes first. A wake-up sends the CallCenter to
/// the controller (`Controller::reconcile_on`).
#[derive(Debug)]
pub struct Timers {
    clock: Arc<dyn Clock>,
    tx: mpsc::UnboundedSender<ObjectRef<CallCenter>>,
    tasks: Mutex<HashMap<ObjectRef<CallCenter>, Wakeup>>,
}

impl Timers {
    /// Timers sending to `tx`.
    pub fn new(clock: Arc<dyn Clock>, tx: mpsc::UnboundedSender<ObjectRef<CallCenter>>) -> Self {
        Self {
            clock,
            tx,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// Wakes `cc` at `at`, replacing its earlier wake-up.
    pub fn schedule(&self, cc: ObjectRef<CallCenter>, at: Timestamp) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((when, task)) = tasks.get(&cc)
            && *when == at
            && !task.is_finished()
        {
            return;
        }
        let sleep = self.clock.sleep_until(at);
        let tx = self.tx.clone();
        let target = cc.clone();
        let task = tokio::spawn(async move {
            sleep.await;
            // The controller is gone when this fails: nothing to wake.
            let _ = tx.send(target);
        });
        if let Some((_, old)) = tasks.insert(cc, (at, task)) {
            old.abort();
        }
    }

    /// Drops the wake-up of a CallCenter that is gone.
    pub fn cancel(&self, cc: &ObjectRef<CallCenter>) {
        if let Some((_, task)) = self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(cc)
        {
            task.abort();
        }
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        for (_, (_, task)) in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            task.abort();
        }
    }
}
