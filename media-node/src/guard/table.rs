//! A bounded table of per-source sliding windows and bans, shared by the flood guard and
//! the registrar's failure limiter.
//!
//! Hostile traffic can come from very many addresses (a spoofed-source UDP flood costs
//! the attacker nothing per address), so the table has a hard cap: when it is full the
//! source tracked for the longest time is forgotten. Memory stays bounded at the price of
//! forgetting, under such a flood, some sources (even banned ones) — the right trade: a
//! node that runs out of memory serves nobody.
//!
//! Generic over the clock (`Instant` for the guard, `SystemTime` for the registrar, whose
//! nonces need wall time anyway): the caller passes `now` and the window's start.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// What is known about one source.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    /// Times of the recent events (oldest first), at most the limit + 1.
    pub hits: VecDeque<T>,
    /// Banned until then, if banned.
    pub banned_until: Option<T>,
    generation: u64,
}

/// Per-source windows, capped.
#[derive(Debug)]
pub(crate) struct SourceTable<T> {
    entries: HashMap<IpAddr, Entry<T>>,
    /// Insertion order, with the generation of the entry it was pushed for; entries
    /// removed since leave stale items that are skipped.
    order: VecDeque<(IpAddr, u64)>,
    next_generation: u64,
    cap: usize,
    /// Sources forgotten because the table was full.
    pub evicted: u64,
    /// Entries whose ban has not been seen to end (a ban ends when `banned` or `sweep`
    /// looks at it after its time): the banned-sources gauge, kept without a scan.
    bans: usize,
}

impl<T: Copy + Ord> SourceTable<T> {
    /// A table holding at most `cap` sources (at least one).
    pub fn new(cap: usize) -> Self {
        SourceTable {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
            cap: cap.max(1),
            evicted: 0,
            bans: 0,
        }
    }

    /// Sources tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sources under a ban (up to the next `sweep` for bans whose time is over).
    pub fn banned_count(&self) -> usize {
        self.bans
    }

    /// The entry of `ip`, if tracked.
    #[cfg(test)]
    pub fn get(&self, ip: &IpAddr) -> Option<&Entry<T>> {
        self.entries.get(ip)
    }

    /// The ban end of `ip` if it is banned at `now` (a ban that ended is cleared).
    pub fn banned(&mut self, ip: &IpAddr, now: T) -> Option<T> {
        let entry = self.entries.get_mut(ip)?;
        match entry.banned_until {
            Some(until) if until > now => Some(until),
            Some(_) => {
                entry.banned_until = None;
                entry.hits.clear();
                self.bans -= 1;
                None
            }
            None => None,
        }
    }

    /// Records an event of `ip` at `now`, forgets events at or before `window_start` (the
    /// window is `(window_start, now]`), and
    /// returns how many remain (this one included). At most `keep` times are stored: the
    /// caller only needs to know whether the count went over its limit.
    pub fn hit(&mut self, ip: IpAddr, now: T, window_start: T, keep: usize) -> usize {
        let entry = self.entry(ip);
        while entry.hits.front().is_some_and(|t| *t <= window_start) {
            entry.hits.pop_front();
        }
        entry.hits.push_back(now);
        while entry.hits.len() > keep.max(1) {
            entry.hits.pop_front();
        }
        entry.hits.len()
    }

    /// Bans `ip` until `until` and forgets its events.
    pub fn ban(&mut self, ip: IpAddr, until: T) {
        let entry = self.entry(ip);
        let new_ban = entry.banned_until.is_none();
        entry.banned_until = Some(until);
        entry.hits.clear();
        if new_ban {
            self.bans += 1;
        }
    }

    /// Forgets sources with no event after `window_start` and no ban beyond `now`. The edge
    /// may call this now and then; the cap bounds memory without it.
    pub fn sweep(&mut self, now: T, window_start: T) {
        let mut ended = 0;
        self.entries.retain(|_, e| {
            if e.banned_until.is_some_and(|u| u <= now) {
                e.banned_until = None;
                e.hits.clear();
                ended += 1;
            }
            e.banned_until.is_some() || e.hits.back().is_some_and(|t| *t > window_start)
        });
        self.bans -= ended;
        self.compact_order();
    }

    /// Forgets `ip`.
    pub fn remove(&mut self, ip: &IpAddr) {
        if self
            .entries
            .remove(ip)
            .is_some_and(|e| e.banned_until.is_some())
        {
            self.bans -= 1;
        }
        self.compact_order();
    }

    fn entry(&mut self, ip: IpAddr) -> &mut Entry<T> {
        if !self.entries.contains_key(&ip) {
            while self.entries.len() >= self.cap {
                let Some((oldest, generation)) = self.order.pop_front() else {
                    break;
                };
                if self
                    .entries
                    .get(&oldest)
                    .is_some_and(|e| e.generation == generation)
                {
                    if self
                        .entries
                        .remove(&oldest)
                        .is_some_and(|e| e.banned_until.is_some())
                    {
                        self.bans -= 1;
                    }
                    self.evicted += 1;
                }
            }
            self.next_generation += 1;
            self.order.push_back((ip, self.next_generation));
        }
        let generation = self.next_generation;
        self.entries.entry(ip).or_insert_with(|| Entry {
            hits: VecDeque::new(),
            banned_until: None,
            generation,
        })
    }

    /// Drops stale order items once they outnumber live ones, so the queue stays bounded
    /// by about twice the cap.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(ip, g)| entries.get(ip).is_some_and(|e| e.generation == *g));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn window_counts_and_cap_evicts_the_oldest() {
        let mut t: SourceTable<u64> = SourceTable::new(3);
        assert_eq!(t.hit(ip(1), 10, 0, 5), 1);
        assert_eq!(t.hit(ip(1), 11, 0, 5), 2);
        // Events before the window's start are forgotten.
        assert_eq!(t.hit(ip(1), 30, 20, 5), 1);
        t.hit(ip(2), 31, 20, 5);
        t.hit(ip(3), 32, 20, 5);
        t.hit(ip(4), 33, 20, 5);
        assert_eq!(t.len(), 3);
        assert!(t.get(&ip(1)).is_none(), "the oldest source was evicted");
        assert_eq!(t.evicted, 1);
        t.ban(ip(4), 100);
        t.ban(ip(4), 110);
        assert_eq!(
            t.banned_count(),
            1,
            "a ban extended is still one banned source"
        );
        assert_eq!(t.banned(&ip(4), 50), Some(110));
        assert_eq!(t.banned(&ip(4), 110), None);
        assert_eq!(t.banned_count(), 0, "an ended ban leaves the count");
        // Bans that end unobserved leave it at the sweep; evicted and removed ones at once.
        t.ban(ip(2), 120);
        t.ban(ip(3), 300);
        t.ban(ip(4), 300);
        assert_eq!(t.banned_count(), 3);
        t.remove(&ip(3));
        assert_eq!(t.banned_count(), 2, "ip(3) removed");
        t.hit(ip(5), 40, 20, 5);
        t.hit(ip(7), 40, 20, 5);
        assert_eq!(t.banned_count(), 1, "ip(2), the oldest, evicted");
        assert_eq!(t.banned(&ip(4), 50), Some(300));
        t.remove(&ip(5));
        t.ban(ip(6), 130);
        assert_eq!(t.banned_count(), 2);
        t.sweep(150, 140);
        assert_eq!(t.banned_count(), 1, "ip(6)'s ended ban is swept");
        t.remove(&ip(4));
        assert_eq!(t.banned_count(), 0);
        t.sweep(200, 150);
        assert_eq!(t.len(), 0);
        // Re-inserting after a sweep works and the order queue stays small.
        for n in 0..100u8 {
            t.hit(ip(n % 5), 300 + u64::from(n), 290, 5);
            t.remove(&ip(n % 5));
        }
        assert!(t.order.len() <= 2 * t.len() + 17);
    }
}
