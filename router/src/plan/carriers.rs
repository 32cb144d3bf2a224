//! The order in which an outbound leg tries carriers: lowest `priority` first; among carriers
//! of one priority, a weighted draw by `weight` (RFC 2782's rule for SRV records), so that
//! traffic splits in proportion to the weights across calls while each call still tries every
//! carrier once. A weight of 0 means "only when the others of its priority failed".
//!
//! The draw is seeded by the caller, so planning stays a pure function: the same call gets the
//! same order, different calls spread.

use dialtone_model::Snapshot;

/// `names` in the order to try them. Names that are no Carrier go last, in their order (the
/// loader rejects such references; a plan never carries one).
pub fn order_carriers(snapshot: &Snapshot, names: &[String], seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let key = |n: &String| {
        snapshot
            .carriers
            .get(n)
            .map_or((u32::MAX, 0), |c| (u32::from(c.priority), c.weight))
    };
    let mut sorted: Vec<(u32, u16, String)> = names
        .iter()
        .map(|n| {
            let (p, w) = key(n);
            (p, w, n.clone())
        })
        .collect();
    sorted.sort_by_key(|(p, _, _)| *p);
    let mut out = Vec::with_capacity(sorted.len());
    let mut i = 0;
    while i < sorted.len() {
        let priority = sorted[i].0;
        let mut group: Vec<(u16, String)> = sorted[i..]
            .iter()
            .take_while(|(p, _, _)| *p == priority)
            .map(|(_, w, n)| (*w, n.clone()))
            .collect();
        i += group.len();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|(w, _)| u32::from(*w)).sum();
            let idx = if total == 0 {
                0
            } else {
                let mut ticket = rng.u32(0..total);
                group
                    .iter()
                    .position(|(w, _)| {
                        let w = u32::from(*w);
                        if ticket < w {
                            true
                        } else {
                            ticket -= w;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(idx).1);
        }
    }
    out
}

/// A seed for one call: its caller and instant.
pub fn call_seed(caller: Option<&str>, at_nanos: i128) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    caller.hash(&mut h);
    at_nanos.hash(&mut h);
    h.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests {
    use super::*;
    use dialtone_model::snapshot::CarrierConfig;

    fn snapshot(carriers: &[(&str, u16, u16)]) -> Snapshot {
        let mut s = crate::plan::tests::demo();
        s.carriers.clear();
        for (name, priority, weight) in carriers {
            s.carriers.insert(
                (*name).to_owned(),
                CarrierConfig {
                    name: (*name).to_owned(),
                    host: "127.0.0.1".into(),
                    port: 5060,
                    transport: dialtone_model::resources::carrier::CarrierTransport::Udp,
                    priority: *priority,
                    weight: *weight,
                    max_channels: None,
                    inbound_sources: Vec::new(),
                    credentials: None,
                    register: false,
                    probe: None,
                },
            );
        }
        s
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn priority_first_and_every_carrier_once() {
        let s = snapshot(&[("backup", 20, 1), ("main", 10, 1), ("other", 10, 1)]);
        for seed in 0..50 {
            let order = order_carriers(&s, &names(&["backup", "main", "other"]), seed);
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], "backup", "{order:?}");
        }
    }

    #[test]
    fn weights_split_first_choices_in_proportion() {
        let s = snapshot(&[("a", 10, 3), ("b", 10, 1), ("z", 10, 0)]);
        let mut a_first = 0;
        for seed in 0..4000 {
            let order = order_carriers(&s, &names(&["a", "b", "z"]), seed);
            assert_eq!(
                order.last().map(String::as_str),
                Some("z"),
                "weight 0 goes last"
            );
            if order[0] == "a" {
                a_first += 1;
            }
        }
        // 3:1 → 75 % ± a generous margin.
        assert!((2700..3300).contains(&a_first), "a first {a_first} of 4000");
    }

    #[test]
    fn the_same_seed_gives_the_same_order() {
        let s = snapshot(&[("a", 1, 5), ("b", 1, 5), ("c", 1, 5)]);
        let n = names(&["a", "b", "c"]);
        assert_eq!(order_carriers(&s, &n, 7), order_carriers(&s, &n, 7));
    }
}
