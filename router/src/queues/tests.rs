//! Tests of the queues core.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use dialtone_model::snapshot::{AgentConfig, Destination};

use super::*;
use crate::presence::tests::{demo, mobile, snapshot, t};
use crate::presence::{AgentState, ContactAddr, Manual};

/// Presence and a queue "q" whose members are the agents `(name, max)` in that order.
struct Bench {
    p: Presence,
    e: QueueEngine,
}

fn bench(strategy: QueueStrategy, agents: &[(&str, u32)]) -> Bench {
    let agents = agents.iter().map(|(n, max)| mobile(n, *max)).collect();
    bench_with(|q| QueueConfig { strategy, ..q }, agents)
}

fn bench_with(tweak: impl FnOnce(QueueConfig) -> QueueConfig, agents: Vec<AgentConfig>) -> Bench {
    let config = tweak(QueueConfig {
        name: "q".to_owned(),
        members: agents.iter().map(|a| a.name.clone()).collect(),
        strategy: QueueStrategy::Linear,
        ring_timeout_seconds: 20,
        max_wait_seconds: 300,
        wrap_up_seconds: 0,
        hold_music: None,
        announce_position: false,
        callback_digit: None,
        overflow: None,
    });
    let s = snapshot(agents, vec![config]);
    Bench {
        p: Presence::new(&s, t(0)),
        e: QueueEngine::new(&s),
    }
}

fn seeded() -> fastrand::Rng {
    fastrand::Rng::with_seed(7)
}

fn wait(position: u32, reason: WaitReason) -> Offer {
    Offer::Wait { position, reason }
}

fn names(legs: &[LegToken]) -> Vec<&str> {
    legs.iter().map(LegToken::agent).collect()
}

impl Bench {
    fn join(&mut self, call: &str, now: Timestamp) -> u32 {
        self.e
            .join("q", call, &format!("+38044{call}"), now)
            .expect("queue exists")
            .position
    }
    fn offer(&mut self, call: &str, now: Timestamp) -> Offer {
        self.e
            .next_offer("q", call, &mut self.p, now, &mut seeded())
            .expect("queued")
    }
    /// The reserved legs, empty when told to wait.
    fn ring(&mut self, call: &str, now: Timestamp) -> Vec<LegToken> {
        match self.offer(call, now) {
            Offer::Ring { legs, .. } => legs,
            Offer::Wait { .. } => Vec::new(),
        }
    }
    fn set(&mut self, agent: &str, manual: Manual, now: Timestamp) {
        self.p.set_state(agent, manual, now).expect("known agent");
    }
    /// One whole call at `now`: joins, rings, the first agent answers, the call ends.
    fn take(&mut self, call: &str, now: Timestamp) -> String {
        self.join(call, now);
        let legs = self.ring(call, now);
        let (first, rest) = legs.split_first().expect("an agent rang");
        self.p.answered(first, now).expect("known leg");
        self.e
            .answered("q", call, first.agent())
            .expect("queue exists");
        for leg in rest {
            self.p.released(leg, now).expect("known leg");
        }
        self.p.ended(first, now, 0).expect("known leg");
        first.agent().to_owned()
    }
}

#[test]
fn ring_all_reserves_every_available_member() {
    let mut b = bench(QueueStrategy::RingAll, &[("a", 1), ("b", 1), ("c", 1)]);
    b.set("b", Manual::Dnd, t(0));
    b.join("c1", t(1));
    let Offer::Ring {
        legs,
        attempt,
        callback,
        ring_timeout_seconds: secs,
        ..
    } = b.offer("c1", t(1))
    else {
        panic!("a and c are available");
    };
    assert_eq!(
        (names(&legs), attempt, callback, secs),
        (vec!["a", "c"], 1, false, 20)
    );
    assert_eq!(b.p.active_legs("a", t(1)), 1);
}

#[test]
fn linear_takes_the_first_available_in_listed_order() {
    let mut b = bench(QueueStrategy::Linear, &[("c", 1), ("a", 1), ("b", 1)]);
    assert_eq!(b.take("c1", t(1)), "c");
    b.p.reserve("c", "elsewhere", t(2)).expect("free");
    assert_eq!(b.take("c2", t(2)), "a");
}

#[test]
fn round_robin_continues_after_the_last_answerer_and_wraps() {
    let mut b = bench(QueueStrategy::RoundRobin, &[("a", 1), ("b", 1), ("c", 1)]);
    let order: Vec<String> = (1..=4).map(|i| b.take(&format!("c{i}"), t(i))).collect();
    assert_eq!(order, ["a", "b", "c", "a"]);
    // b is away: after a comes c, then the round wraps to a again.
    b.set("b", Manual::Away("lunch".into()), t(10));
    assert_eq!(
        (b.take("c5", t(11)), b.take("c6", t(12))),
        ("c".into(), "a".into())
    );
}

#[test]
fn longest_idle_prefers_never_called_then_the_oldest_last_call() {
    let mut b = bench(
        QueueStrategy::LongestIdle,
        &[("d", 1), ("c", 1), ("b", 1), ("a", 1)],
    );
    // Never called: ties go by name, whatever the member order. Then a (ended at 10)
    // comes before b (ended at 20).
    let order: Vec<String> = (1..=6)
        .map(|i| b.take(&format!("c{i}"), t(i * 10)))
        .collect();
    assert_eq!(order, ["a", "b", "c", "d", "a", "b"]);
    assert_eq!(b.p.last_call_ended_at("b"), Some(t(60)));
}

#[test]
fn fewest_calls_counts_answers_today_and_resets_on_a_new_day() {
    let mut b = bench(QueueStrategy::FewestCalls, &[("a", 1), ("b", 1), ("c", 1)]);
    for (i, agent) in ["a", "a", "b"].into_iter().enumerate() {
        let leg = b.p.reserve(agent, &format!("x{i}"), t(1)).expect("free");
        b.p.answered(&leg, t(1)).expect("known leg");
        b.p.ended(&leg, t(2), 0).expect("known leg");
    }
    assert_eq!(
        (b.take("c1", t(3)), b.take("c2", t(4))),
        ("c".into(), "b".into())
    );
    assert_eq!(b.p.answered_today("b", t(4)), 2);
    // The next (UTC) day everyone is back at zero: ties go by name.
    assert_eq!(b.p.answered_today("a", t(86_400)), 0);
    assert_eq!(b.take("c3", t(86_400)), "a");
}

#[test]
fn random_with_a_seed_offers_only_available_members_and_covers_all() {
    let mut b = bench(
        QueueStrategy::Random,
        &[("a", 1), ("b", 1), ("c", 1), ("d", 1)],
    );
    b.set("c", Manual::Dnd, t(0));
    let mut draw = |rng: &mut fastrand::Rng, i: i64| {
        let call = format!("r{i}");
        b.join(&call, t(i));
        let Ok(Offer::Ring { legs, .. }) = b.e.next_offer("q", &call, &mut b.p, t(i), rng) else {
            panic!("a, b and d are available");
        };
        b.p.released(&legs[0], t(i)).expect("known leg");
        b.e.leave(&call);
        legs[0].agent().to_owned()
    };
    let (mut rng, mut again) = (seeded(), seeded());
    let picks: Vec<String> = (0..300).map(|i| draw(&mut rng, i)).collect();
    let replay: Vec<String> = (0..300).map(|i| draw(&mut again, i)).collect();
    assert_eq!(picks, replay, "the same seed draws the same agents");
    let seen: BTreeSet<&str> = picks.iter().map(String::as_str).collect();
    assert_eq!(seen, BTreeSet::from(["a", "b", "d"]));
    for agent in seen {
        let n = picks.iter().filter(|p| *p == agent).count();
        assert!((60..140).contains(&n), "{agent} drawn {n} times of 300");
    }
}

#[test]
fn wrap_up_blocks_offers_until_it_ends() {
    let wrap = |q| QueueConfig {
        wrap_up_seconds: 15,
        ..q
    };
    let mut b = bench_with(wrap, vec![mobile("a", 2)]);
    b.join("c1", t(0));
    let Offer::Ring {
        legs,
        wrap_up_seconds,
        ..
    } = b.offer("c1", t(0))
    else {
        panic!("a is available");
    };
    b.p.answered(&legs[0], t(1)).expect("known leg");
    b.e.answered("q", "c1", "a").expect("queue exists");
    b.p.ended(&legs[0], t(10), wrap_up_seconds)
        .expect("known leg");
    b.join("c2", t(11));
    assert_eq!(b.offer("c2", t(24)), wait(1, WaitReason::NoMemberAvailable));
    assert_eq!(names(&b.ring("c2", t(25))), ["a"]);
}

#[test]
fn dnd_away_and_offline_agents_are_never_offered() {
    let off = AgentConfig {
        destinations: vec![Destination::Softphone],
        ..mobile("off", 1)
    };
    let agents = vec![mobile("dnd", 1), mobile("away", 1), off, mobile("ok", 1)];
    let ring_all = |q| QueueConfig {
        strategy: QueueStrategy::RingAll,
        ..q
    };
    let mut b = bench_with(ring_all, agents);
    b.set("dnd", Manual::Dnd, t(0));
    b.set("away", Manual::Away("lunch".into()), t(0));
    b.join("c1", t(1));
    assert_eq!(names(&b.ring("c1", t(1))), ["ok"]);
    b.join("c2", t(2));
    b.e.leave("c1");
    assert_eq!(b.offer("c2", t(2)), wait(1, WaitReason::NoMemberAvailable));
    // Registering brings the softphone agent online.
    let contact = ContactAddr {
        uri: "sip:off@10.0.0.9".into(),
        source: "10.0.0.9:5060".into(),
    };
    b.p.register("off", contact, 60, "n1", t(3)).expect("known");
    assert_eq!(names(&b.ring("c2", t(3))), ["off"]);
}

#[test]
fn an_agent_with_max_one_never_gets_a_second_call() {
    let mut b = bench(QueueStrategy::RingAll, &[("a", 1)]);
    b.join("c1", t(0));
    b.join("c2", t(0));
    let legs = b.ring("c1", t(1));
    b.p.answered(&legs[0], t(2)).expect("known leg");
    b.e.answered("q", "c1", "a").expect("queue exists");
    assert!(b.ring("c2", t(3)).is_empty(), "a is on c1");
    assert!(
        b.p.reserve("a", "direct", t(3)).is_err(),
        "nor through a ring step"
    );
    b.p.ended(&legs[0], t(4), 0).expect("known leg");
    assert_eq!(names(&b.ring("c2", t(5))), ["a"]);
}

#[test]
fn callers_are_served_in_arrival_order() {
    let mut b = bench(QueueStrategy::RingAll, &[("a", 1), ("b", 1)]);
    b.join("c1", t(0));
    b.join("c2", t(1));
    assert_eq!(
        b.offer("c2", t(2)),
        wait(2, WaitReason::NotFirst),
        "c1 came first"
    );
    let legs = b.ring("c1", t(3));
    assert_eq!(names(&legs), ["a", "b"]);
    assert_eq!(b.offer("c2", t(4)), wait(2, WaitReason::NotFirst));
    // c1 hangs up while ringing: its legs are released and c2 is first.
    b.e.leave("c1");
    for leg in &legs {
        b.p.released(leg, t(5)).expect("known leg");
    }
    assert_eq!(names(&b.ring("c2", t(5))), ["a", "b"]);
}

#[test]
fn positions_update_when_someone_leaves() {
    let mut b = bench(QueueStrategy::Linear, &[("a", 1)]);
    assert_eq!(
        [b.join("c1", t(0)), b.join("c2", t(1)), b.join("c3", t(2))],
        [1, 2, 3]
    );
    assert_eq!(b.e.leave("c2"), Some("q".to_owned()));
    let place = b.e.position("c3").expect("waiting");
    assert_eq!(
        (place.position, place.waiting, place.joined_at),
        (2, 2, t(2))
    );
    // Joining again keeps the place; another queue is refused.
    let again =
        b.e.join("q", "c1", "", t(9))
            .map(|p| (p.position, p.joined_at));
    assert_eq!(again, Ok((1, t(0))));
    let other = b.e.join("other", "c1", "", t(9));
    assert!(matches!(other, Err(QueueError::InAnotherQueue { .. })));
    let waiting = b.e.waiting("q", t(10)).expect("queue exists");
    let waits: Vec<_> = waiting
        .iter()
        .map(|w| (w.call_id.as_str(), w.waited.as_secs()))
        .collect();
    assert_eq!(waits, [("c1", 10), ("c3", 8)]);
    assert_eq!(
        b.e.longest_wait("q", t(10)),
        Ok(Some(SignedDuration::from_secs(10)))
    );
    b.e.leave("c1");
    b.e.leave("c3");
    assert_eq!(b.e.longest_wait("q", t(10)), Ok(None));
}

#[test]
fn overflow_and_max_wait_after_their_seconds() {
    let to = Target::Scheme("voicemail".into());
    let overflow = Some((60, to.clone()));
    let tweak = |q| QueueConfig {
        overflow,
        max_wait_seconds: 90,
        ..q
    };
    let mut b = bench_with(tweak, vec![mobile("a", 1)]);
    b.join("c1", t(100));
    assert_eq!(b.e.overflow_due("q", "c1", t(159)), Ok(None));
    assert_eq!(b.e.overflow_due("q", "c1", t(160)), Ok(Some(to)));
    assert_eq!(b.e.max_wait_reached("q", "c1", t(189)), Ok(false));
    assert_eq!(b.e.max_wait_reached("q", "c1", t(190)), Ok(true));
    let nobody = b.e.overflow_due("q", "nobody", t(190));
    assert!(matches!(nobody, Err(QueueError::NotQueued { .. })));
}

#[test]
fn a_callback_request_keeps_the_place() {
    let overflow = Some((60, Target::Queue("other".into())));
    let mut b = bench_with(|q| QueueConfig { overflow, ..q }, vec![mobile("a", 1)]);
    b.set("a", Manual::Dnd, t(0));
    b.join("c1", t(0));
    b.join("c2", t(1));
    let place = b.e.request_callback("c1").expect("waiting");
    assert_eq!((place.position, place.callback), (1, true));
    assert_eq!(
        b.e.overflow_due("q", "c1", t(500)),
        Ok(None),
        "no overflow for a callback"
    );
    assert_eq!(b.e.max_wait_reached("q", "c1", t(500)), Ok(false));
    assert!(b.e.waiting("q", t(2)).expect("queue exists")[0].callback);
    assert_eq!(b.offer("c2", t(600)), wait(2, WaitReason::NotFirst));
    b.set("a", Manual::Available, t(600));
    let Offer::Ring {
        callback: true,
        caller,
        legs,
        ..
    } = b.offer("c1", t(600))
    else {
        panic!("expected a callback offer");
    };
    assert_eq!((caller.as_str(), names(&legs)), ("+38044c1", vec!["a"]));
    assert_eq!(
        b.e.request_callback("ghost"),
        Err(QueueError::UnknownCall("ghost".into()))
    );
}

#[test]
fn callback_heads_are_the_routers_to_dial_once_at_a_time() {
    let mut b = bench_with(|q| q, vec![mobile("a", 1)]);
    b.join("c1", t(0));
    b.join("c2", t(1));
    assert!(b.e.callback_heads().is_empty(), "nobody chose a callback");
    b.e.request_callback("c2").expect("waiting");
    assert!(b.e.callback_heads().is_empty(), "c2 is not at the head");
    b.e.leave("c1");
    assert_eq!(
        b.e.callback_heads(),
        vec![("q".to_owned(), "c2".to_owned(), "+38044c2".to_owned())]
    );
    b.e.set_dialling("c2", true);
    assert!(b.e.callback_heads().is_empty(), "one callback at a time");
    b.e.set_dialling("c2", false);
    assert_eq!(
        b.e.callback_heads().len(),
        1,
        "a failed callback is due again"
    );
}

#[test]
fn demo_support_queue_offers_registered_members_longest_idle_first() {
    let s = demo();
    let (mut p, mut e) = (Presence::new(&s, t(0)), QueueEngine::new(&s));
    e.join("support", "c1", "+380441234567", t(1))
        .expect("demo queue");
    let mut next = |p: &mut Presence, now| e.next_offer("support", "c1", p, now, &mut seeded());
    let nobody = wait(1, WaitReason::NoMemberAvailable);
    assert_eq!(next(&mut p, t(1)), Ok(nobody), "nobody registered yet");
    for agent in ["taras", "iryna"] {
        let contact = ContactAddr {
            uri: format!("sip:{agent}@10.0.0.2"),
            source: "10.0.0.2:5060".into(),
        };
        p.register(agent, contact, 300, "node-a", t(2))
            .expect("demo agent");
    }
    let Ok(Offer::Ring {
        legs,
        wrap_up_seconds,
        ..
    }) = next(&mut p, t(3))
    else {
        panic!("both are available");
    };
    assert_eq!((names(&legs), wrap_up_seconds), (vec!["iryna"], 15));
    let status = e.status(&p, t(4));
    let support = status
        .iter()
        .find(|q| q.queue == "support")
        .expect("demo queue");
    assert_eq!(
        (support.members, support.available, support.callers.len()),
        (2, 1, 1)
    );
    assert_eq!(p.state("iryna", t(4)).map(|s| s.0), Ok(AgentState::Ringing));
}

/// Shared by the threads: the cores, a clock, and what the tokens say each agent holds.
struct World {
    b: Bench,
    clock: i64,
    rng: fastrand::Rng,
    held: HashMap<String, u32>,
    max: HashMap<String, u32>,
}

impl World {
    /// Advances the clock and checks the bound through both the tokens and the core.
    fn tick(&mut self) -> Timestamp {
        self.clock += 1;
        let now = t(self.clock);
        for (agent, max) in &self.max {
            let held = self.held.get(agent).copied().unwrap_or(0);
            assert!(held <= *max, "{agent} holds {held} legs, max {max}");
            assert!(self.b.p.active_legs(agent, now) <= *max);
        }
        now
    }
    fn count(&mut self, leg: &LegToken, delta: i32) {
        let n = self.held.entry(leg.agent().to_owned()).or_default();
        *n = n.saturating_add_signed(delta);
    }
}

#[test]
fn concurrent_offers_never_exceed_max_concurrent_calls() {
    let strategies = [
        QueueStrategy::RingAll,
        QueueStrategy::Random,
        QueueStrategy::LongestIdle,
    ];
    for strategy in strategies {
        let agents = [("a", 1), ("b", 2), ("c", 1), ("d", 3)];
        let max = agents.iter().map(|(n, m)| ((*n).to_owned(), *m)).collect();
        let (b, rng, held) = (bench(strategy, &agents), seeded(), HashMap::new());
        let world = Arc::new(Mutex::new(World {
            b,
            clock: 0,
            rng,
            held,
            max,
        }));
        let threads: Vec<_> = (0..16)
            .map(|n| {
                let world = Arc::clone(&world);
                std::thread::spawn(move || {
                    (0..40).for_each(|k| serve(&world, &format!("t{n}-{k}")))
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no thread saw an over-offer");
        }
        let mut w = world.lock().expect("not poisoned");
        let now = w.tick();
        assert!(w.held.values().all(|n| *n == 0));
        assert!(w.b.p.board(now).iter().all(|l| l.active_legs == 0));
    }
}

/// One caller: join, ask until offered, answer, hold the call a little, end it.
fn serve(world: &Mutex<World>, call: &str) {
    let lock = || world.lock().expect("not poisoned");
    let mut w = lock();
    let now = w.tick();
    w.b.join(call, now);
    drop(w);
    let answered = loop {
        let mut w = lock();
        let now = w.tick();
        let World { b, rng, .. } = &mut *w;
        let Offer::Ring { legs, .. } =
            b.e.next_offer("q", call, &mut b.p, now, rng)
                .expect("queued")
        else {
            drop(w);
            std::thread::yield_now();
            continue;
        };
        legs.iter().for_each(|leg| w.count(leg, 1));
        w.tick(); // every reservation is checked while it is held
        let (first, rest) = legs.split_first().expect("a ring offer has legs");
        w.b.p.answered(first, now).expect("known leg");
        w.b.e
            .answered("q", call, first.agent())
            .expect("queue exists");
        for leg in rest {
            w.b.p.released(leg, now).expect("known leg");
            w.count(leg, -1);
        }
        break first.clone();
    };
    (0..3).for_each(|_| std::thread::yield_now());
    let mut w = lock();
    let now = w.tick();
    w.b.p.ended(&answered, now, 0).expect("known leg");
    w.count(&answered, -1);
}
