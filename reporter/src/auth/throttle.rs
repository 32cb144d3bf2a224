//! Slowing down guessing: per client address, the first [`FREE_FAILURES`] - 1 wrong
//! credentials cost nothing; from then on each failure blocks the address for a doubling time
//! (2 s, 4 s, 8 s … up to [`MAX_BLOCK`]), during which every attempt — right or wrong — is
//! answered "too many attempts" without being checked. A guesser gets a handful of tries per
//! quarter hour instead of thousands per second; a person who mistyped twice notices nothing.
//!
//! IPv6 clients are counted per /64, the block a single host usually owns, so that hopping
//! through its addresses does not reset the count. An address forgets its failures
//! [`FORGET_AFTER`] after the last one, and on a success.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The failure that starts the blocking.
pub const FREE_FAILURES: u32 = 5;
/// The longest block.
pub const MAX_BLOCK: Duration = Duration::from_secs(300);
/// Failures are forgotten this long after the last one.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Past this many addresses, stale entries are pruned on each failure.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Failure counts per client address.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    map: Mutex<HashMap<IpAddr, Entry>>,
}

fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Throttle {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err(retry_after)` while `ip` is blocked.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        match self.lock().get(&bucket(ip)).and_then(|e| e.blocked_until) {
            Some(until) if until > now => {
                // Round up: "retry in 0 s" would invite an immediate retry.
                let left = until - now;
                Err(Duration::from_secs(
                    left.as_secs() + u64::from(left.subsec_nanos() > 0),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Counts a wrong or missing credential from `ip`.
    pub fn failure(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, e| {
                now.duration_since(e.last) < FORGET_AFTER
                    || e.blocked_until.is_some_and(|u| u > now)
            });
        }
        let e = map.entry(bucket(ip)).or_insert(Entry {
            failures: 0,
            last: now,
            blocked_until: None,
        });
        if now.duration_since(e.last) >= FORGET_AFTER {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        if e.failures >= FREE_FAILURES {
            let doublings = (e.failures - FREE_FAILURES + 1).min(16);
            let block = Duration::from_secs(1u64 << doublings).min(MAX_BLOCK);
            e.blocked_until = Some(now + block);
        }
    }

    /// Forgets `ip`'s failures after a good credential.
    pub fn success(&self, ip: IpAddr) {
        self.lock().remove(&bucket(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_from_the_fifth_failure_and_forgets_on_success() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        for _ in 1..FREE_FAILURES {
            t.failure(ip);
            assert!(t.check(ip).is_ok());
        }
        t.failure(ip);
        assert_eq!(t.check(ip), Err(Duration::from_secs(2)));
        t.failure(ip);
        assert_eq!(t.check(ip), Err(Duration::from_secs(4)));
        assert!(t.check("192.0.2.2".parse().expect("ip")).is_ok());
        t.success(ip);
        assert!(t.check(ip).is_ok());
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        for _ in 0..FREE_FAILURES {
            t.failure(a);
        }
        assert!(t.check(b).is_err(), "same /64");
    }
}
