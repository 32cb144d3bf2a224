//! The same events, in any order and any number of times, give the same CDRs and reports.

use dialtone_proto::v1::CallEvent;
use dialtone_reporter::reports::{self, Filter, View};
use dialtone_reporter::{Added, CallAssembler, Cdr, EventError, Policy, assemble_call};

use crate::support::t;
use crate::{NOW, day, day_cdrs};

fn all_events() -> Vec<CallEvent> {
    day::calls().into_iter().flatten().collect()
}

#[test]
fn shuffled_and_duplicated_events_give_the_same_cdrs() {
    let reference = day_cdrs();
    let policy = Policy::default();
    let handlings = day::handlings();
    let report = |cdrs: &[Cdr]| {
        (
            reports::missed(cdrs, &Filter::default()),
            reports::unprocessed(
                cdrs,
                &handlings,
                &policy,
                t(NOW),
                &Filter::default(),
                View::All,
            ),
            reports::agents(cdrs, &policy, &Filter::default()),
            reports::calls(cdrs, &Filter::default(), None),
        )
    };
    let expected = report(&reference);
    for seed in 0..25 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut events = all_events();
        // About a third of the events arrive twice, some three times (spool resends).
        let again: Vec<CallEvent> = events
            .iter()
            .filter(|_| rng.u8(..3) == 0)
            .cloned()
            .collect();
        let thrice: Vec<CallEvent> = again.iter().filter(|_| rng.bool()).cloned().collect();
        let duplicates = again.len() + thrice.len();
        events.extend(again);
        events.extend(thrice);
        rng.shuffle(&mut events);

        let mut assembler = CallAssembler::new(&policy);
        let mut seen_twice = 0;
        for event in events {
            if assembler.add(event).expect("valid") == Added::Duplicate {
                seen_twice += 1;
            }
        }
        assert_eq!(seen_twice, duplicates, "seed {seed}");
        let cdrs = assembler.cdrs();
        assert_eq!(cdrs, reference, "seed {seed}");
        assert!(report(&cdrs) == expected, "seed {seed}");
    }
}

#[test]
fn one_call_in_reverse_with_duplicates() {
    for call in day::calls() {
        let in_order = assemble_call(&call, &Policy::default()).expect("complete");
        let mut scrambled: Vec<CallEvent> = call.iter().rev().cloned().collect();
        scrambled.extend(call.iter().step_by(2).cloned());
        assert_eq!(assemble_call(&scrambled, &Policy::default()), Ok(in_order));
    }
}

#[test]
fn a_reused_event_id_with_other_content_is_refused() {
    let mut events = all_events();
    let mut assembler = CallAssembler::new(&Policy::default());
    let first = events.remove(0);
    let mut forged = first.clone();
    forged.sequence += 100;
    assert_eq!(assembler.add(first), Ok(Added::New));
    assert!(matches!(
        assembler.add(forged.clone()),
        Err(EventError::Conflict { .. })
    ));
    let mut across = forged;
    across.call_id = "another-call".into();
    assert!(matches!(
        assembler.add(across),
        Err(EventError::Conflict { .. })
    ));
    let mut no_id = events.remove(0);
    no_id.event_id.clear();
    assert_eq!(assembler.add(no_id), Err(EventError::MissingEventId));
    let mut no_time = events.remove(0);
    no_time.at = None;
    assert!(matches!(
        assembler.add(no_time),
        Err(EventError::MissingTimestamp { .. })
    ));
}

#[test]
fn cdrs_round_trip_through_json() {
    let cdrs = day_cdrs();
    let json = serde_json::to_string(&cdrs).expect("serializes");
    let back: Vec<Cdr> = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, cdrs);
}
