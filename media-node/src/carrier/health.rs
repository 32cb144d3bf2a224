//! Which carriers an outbound leg may use now: up by their OPTIONS probes (RFC 3261 §11) and
//! under their `maxChannels` on this node.
//!
//! A carrier starts up (a fresh node must not refuse calls while it waits for its first
//! probes); `failuresToDown` failed probes in a row mark it down, `successesToUp` answered
//! probes in a row mark it up again. Any response below 500 is an answer — a carrier that
//! says 404 or 405 to OPTIONS is alive; a 5xx or no response at all is a failure. Carriers
//! without `probe` are never probed and always up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dialtone_model::Snapshot;
use dialtone_model::snapshot::ProbeConfig;

/// Why a carrier is skipped for a new leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Down by its probes.
    Down,
    /// Every one of its `maxChannels` is in use on this node.
    Full,
    /// Not (or no longer) configured.
    Unknown,
}

/// A carrier went up or down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// It answers again.
    Up(String),
    /// It stopped answering.
    Down(String),
}

#[derive(Debug, Clone)]
struct Health {
    up: bool,
    failures: u32,
    successes: u32,
    probe: Option<ProbeConfig>,
    next_probe: Option<Instant>,
    /// A probe is in flight (sent, not yet answered nor failed).
    awaiting: bool,
    max_channels: Option<u32>,
    channels: u32,
}

/// Every carrier's health and channel count on this node.
#[derive(Debug, Clone, Default)]
pub struct CarrierBook {
    carriers: BTreeMap<String, Health>,
}

impl CarrierBook {
    /// Follows a new configuration: new carriers start up (and are probed at once), removed
    /// ones are forgotten, kept ones keep their state and channels.
    pub fn apply(&mut self, snapshot: &Snapshot, now: Instant) {
        self.carriers
            .retain(|name, _| snapshot.carriers.contains_key(name));
        for (name, c) in &snapshot.carriers {
            let h = self.carriers.entry(name.clone()).or_insert(Health {
                up: true,
                failures: 0,
                successes: 0,
                probe: None,
                next_probe: None,
                awaiting: false,
                max_channels: None,
                channels: 0,
            });
            if h.probe != c.probe {
                h.next_probe = c.probe.map(|_| now);
            }
            if c.probe.is_none() {
                h.up = true;
            }
            h.probe = c.probe;
            h.max_channels = c.max_channels;
        }
    }

    /// Carriers whose probe in flight went unanswered until the next one is due: each counts
    /// as failed (feed [`CarrierBook::probe_result`] with `false`), and its transaction
    /// should be forgotten so that a late answer is not taken for the next probe's.
    pub fn overdue_probes(&mut self, now: Instant) -> Vec<String> {
        let mut overdue = Vec::new();
        for (name, h) in &mut self.carriers {
            if h.awaiting && h.next_probe.is_some_and(|at| at <= now) {
                h.awaiting = false;
                overdue.push(name.clone());
            }
        }
        overdue
    }

    /// A probe left for `name`: it is awaited until its answer or the next probe.
    pub fn probe_sent(&mut self, name: &str) {
        if let Some(h) = self.carriers.get_mut(name) {
            h.awaiting = true;
        }
    }

    /// Carriers whose probe is due; their next probe is scheduled.
    pub fn due_probes(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        for (name, h) in &mut self.carriers {
            if let (Some(p), Some(at)) = (h.probe, h.next_probe)
                && at <= now
            {
                h.next_probe =
                    Some(now + Duration::from_secs(u64::from(p.interval_seconds.max(1))));
                due.push(name.clone());
            }
        }
        due
    }

    /// The earliest probe due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.carriers.values().filter_map(|h| h.next_probe).min()
    }

    /// A probe's outcome: `answered` when a final response below 500 came back.
    pub fn probe_result(&mut self, name: &str, answered: bool) -> Option<Transition> {
        let h = self.carriers.get_mut(name)?;
        h.awaiting = false;
        let p = h.probe?;
        if answered {
            h.failures = 0;
            h.successes = h.successes.saturating_add(1);
            if !h.up && h.successes >= p.successes_to_up.max(1) {
                h.up = true;
                return Some(Transition::Up(name.to_owned()));
            }
        } else {
            h.successes = 0;
            h.failures = h.failures.saturating_add(1);
            if h.up && h.failures >= p.failures_to_down.max(1) {
                h.up = false;
                return Some(Transition::Down(name.to_owned()));
            }
        }
        None
    }

    /// Whether a new leg may leave through `name` now.
    ///
    /// # Errors
    ///
    /// Why it is skipped.
    pub fn usable(&self, name: &str) -> Result<(), Skip> {
        let h = self.carriers.get(name).ok_or(Skip::Unknown)?;
        if !h.up {
            return Err(Skip::Down);
        }
        if h.max_channels.is_some_and(|max| h.channels >= max) {
            return Err(Skip::Full);
        }
        Ok(())
    }

    /// Whether the carrier is up (unknown carriers are not).
    pub fn is_up(&self, name: &str) -> bool {
        self.carriers.get(name).is_some_and(|h| h.up)
    }

    /// A leg took one of the carrier's channels.
    pub fn acquire(&mut self, name: &str) {
        if let Some(h) = self.carriers.get_mut(name) {
            h.channels = h.channels.saturating_add(1);
        }
    }

    /// A leg gave its channel back.
    pub fn release(&mut self, name: &str) {
        if let Some(h) = self.carriers.get_mut(name) {
            h.channels = h.channels.saturating_sub(1);
        }
    }

    /// Channels in use through `name` on this node.
    pub fn channels(&self, name: &str) -> u32 {
        self.carriers.get(name).map_or(0, |h| h.channels)
    }

    /// Every carrier with whether it is up, for the metrics.
    pub fn states(&self) -> impl Iterator<Item = (&str, bool)> {
        self.carriers.iter().map(|(n, h)| (n.as_str(), h.up))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests {
    use super::*;

    fn snapshot(probe: Option<ProbeConfig>, max_channels: Option<u32>) -> Snapshot {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
        let mut files: Vec<dialtone_model::SourceFile> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| dialtone_model::SourceFile {
                path: p.display().to_string(),
                text: std::fs::read_to_string(&p).unwrap(),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let env = dialtone_model::Environment {
            prompts: dialtone_model::PromptCatalog::Unchecked,
        };
        let mut s = dialtone_model::load(&files, &env).snapshot.unwrap();
        let mut c = s.carriers.values().next().unwrap().clone();
        s.carriers.clear();
        c.name = "trunk".into();
        c.probe = probe;
        c.max_channels = max_channels;
        s.carriers.insert("trunk".into(), c);
        s
    }

    const PROBE: ProbeConfig = ProbeConfig {
        interval_seconds: 10,
        failures_to_down: 3,
        successes_to_up: 2,
    };

    #[test]
    fn down_after_failures_in_a_row_up_after_successes() {
        let now = Instant::now();
        let mut book = CarrierBook::default();
        book.apply(&snapshot(Some(PROBE), None), now);
        assert!(book.is_up("trunk"), "a new carrier starts up");
        assert_eq!(book.due_probes(now), ["trunk"]);
        assert!(
            book.due_probes(now).is_empty(),
            "the next probe is scheduled"
        );
        assert_eq!(book.next_deadline(), Some(now + Duration::from_secs(10)));
        assert_eq!(book.probe_result("trunk", false), None);
        assert_eq!(book.probe_result("trunk", true), None, "a success resets");
        assert_eq!(book.probe_result("trunk", false), None);
        assert_eq!(book.probe_result("trunk", false), None);
        assert_eq!(
            book.probe_result("trunk", false),
            Some(Transition::Down("trunk".into()))
        );
        assert_eq!(book.usable("trunk"), Err(Skip::Down));
        assert_eq!(book.probe_result("trunk", true), None);
        assert_eq!(
            book.probe_result("trunk", true),
            Some(Transition::Up("trunk".into()))
        );
        assert_eq!(book.usable("trunk"), Ok(()));
    }

    #[test]
    fn a_probe_unanswered_until_the_next_is_due_has_failed() {
        let t0 = Instant::now();
        let probe = ProbeConfig {
            interval_seconds: 1,
            failures_to_down: 2,
            successes_to_up: 1,
        };
        let mut book = CarrierBook::default();
        book.apply(&snapshot(Some(probe), None), t0);
        assert_eq!(book.due_probes(t0), ["trunk"]);
        book.probe_sent("trunk");
        let t1 = t0 + Duration::from_millis(500);
        assert!(book.overdue_probes(t1).is_empty(), "not due yet");
        let t2 = t0 + Duration::from_secs(1);
        assert_eq!(book.overdue_probes(t2), ["trunk"]);
        assert!(book.overdue_probes(t2).is_empty(), "counted once");
        assert_eq!(book.probe_result("trunk", false), None);
        assert_eq!(book.due_probes(t2), ["trunk"]);
        book.probe_sent("trunk");
        // Answered in time: nothing overdue at the next round.
        assert_eq!(book.probe_result("trunk", true), None);
        let t3 = t0 + Duration::from_secs(2);
        assert!(book.overdue_probes(t3).is_empty());
        assert_eq!(book.due_probes(t3), ["trunk"]);
        book.probe_sent("trunk");
        assert_eq!(book.overdue_probes(t0 + Duration::from_secs(3)), ["trunk"]);
        assert_eq!(book.probe_result("trunk", false), None);
        assert_eq!(book.due_probes(t0 + Duration::from_secs(3)), ["trunk"]);
        book.probe_sent("trunk");
        assert_eq!(book.overdue_probes(t0 + Duration::from_secs(4)), ["trunk"]);
        assert_eq!(
            book.probe_result("trunk", false),
            Some(Transition::Down("trunk".into()))
        );
    }

    #[test]
    fn max_channels_per_node() {
        let now = Instant::now();
        let mut book = CarrierBook::default();
        book.apply(&snapshot(None, Some(2)), now);
        book.acquire("trunk");
        book.acquire("trunk");
        assert_eq!(book.usable("trunk"), Err(Skip::Full));
        book.release("trunk");
        assert_eq!(book.usable("trunk"), Ok(()));
        assert_eq!(book.channels("trunk"), 1);
        // A reload keeps the count; an unprobed carrier is never probed.
        book.apply(&snapshot(None, Some(2)), now);
        assert_eq!(book.channels("trunk"), 1);
        assert!(book.due_probes(now).is_empty());
        assert_eq!(book.usable("gone"), Err(Skip::Unknown));
    }
}
