//! The operator's clock, injectable so tests control time.
//!
//! Everything in the operator that depends on the time of day goes through a [`Clock`]: campaign
//! floors (the autoscaler's `minReplicas` between a campaign's `from` and `to`), the periodic
//! resync, condition transition times, and the leader-election Lease (renewals, expiry). The
//! [`SystemClock`] is the wall clock with tokio timers; the [`ManualClock`] only moves when a
//! test calls [`ManualClock::advance`] or [`ManualClock::set`], and wakes every sleeper whose
//! deadline has passed, so a test can jump a week ahead to a campaign's start without waiting.
//!
//! Not on the clock: exponential backoff after errors and the controller's debounce, which are
//! about the API server's pace rather than the calendar and stay on tokio's timer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// A future the clock returns for sleeping: `'static`, so it can be spawned.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of the current instant and of timers on it.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;

    /// Completes once [`Clock::now`] has reached `deadline` (at once if it has already).
    fn sleep_until(&self, deadline: Timestamp) -> Sleep;

    /// Completes after `duration` on this clock.
    fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(add(self.now(), duration))
    }
}

/// `t + d`, saturating at the largest instant.
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `later - earlier` as a non-negative duration (zero when `later` is not after `earlier`).
pub fn until(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// The wall clock, with tokio timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let wait = until(Timestamp::now(), deadline);
        Box::pin(async move {
            tokio::time::sleep(wait).await;
            // The wall clock may lag the monotonic timer a little: finish the wait on it.
            let rest = until(Timestamp::now(), deadline);
            if !rest.is_zero() {
                tokio::time::sleep(rest).await;
            }
        })
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<Timestamp>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &*self.now.borrow())
            .finish()
    }
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        let (now, _) = watch::channel(start);
        Self { now: Arc::new(now) }
    }

    /// Moves the clock forward by `duration`, waking the sleepers whose deadline passed.
    pub fn advance(&self, duration: Duration) {
        self.now.send_modify(|now| *now = add(*now, duration));
    }

    /// Moves the clock to `instant` (never backwards: an earlier instant is ignored).
    pub fn set(&self, instant: Timestamp) {
        self.now.send_if_modified(|now| {
            if instant > *now {
                *now = instant;
                true
            } else {
                false
            }
        });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= deadline {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The clock is gone: time will never come; sleep forever.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleepers_wake_when_the_clock_passes_their_deadline() {
        let start: Timestamp = "2026-11-20T12:00:00Z".parse().expect("an instant");
        let clock = ManualClock::new(start);
        let sleeper = tokio::spawn(clock.sleep(Duration::from_secs(60)));
        clock.advance(Duration::from_secs(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(30));
        sleeper.await.expect("the sleeper wakes");
        assert_eq!(clock.now(), add(start, Duration::from_secs(60)));
        clock.set(start);
        assert_eq!(
            clock.now(),
            add(start, Duration::from_secs(60)),
            "never back"
        );
    }
}
