//! Tests of the presence core.

use std::path::Path;
use std::sync::OnceLock;

use dialtone_model::{Environment, PromptCatalog, SourceFile, load};

use super::UnavailableReason as Why;
use super::*;

/// 2026-11-23T09:00:00Z plus `secs`.
pub(crate) fn t(secs: i64) -> Timestamp {
    let base: Timestamp = "2026-11-23T09:00:00Z".parse().expect("valid instant");
    base.checked_add(SignedDuration::from_secs(secs))
        .expect("in range")
}

/// The demo manifests through the real loader, loaded once.
pub(crate) fn demo() -> Snapshot {
    static DEMO: OnceLock<Snapshot> = OnceLock::new();
    let load_demo = || {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("demo folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        let files: Vec<SourceFile> = paths
            .iter()
            .map(|p| SourceFile {
                text: std::fs::read_to_string(p).expect("readable"),
                path: p.display().to_string(),
            })
            .collect();
        let env = Environment {
            prompts: PromptCatalog::Unchecked,
        };
        load(&files, &env).snapshot.expect("demo loads")
    };
    DEMO.get_or_init(load_demo).clone()
}

/// An agent reachable without registering (a mobile number).
pub(crate) fn mobile(name: &str, max: u32) -> AgentConfig {
    AgentConfig {
        name: name.to_owned(),
        display_name: name.to_owned(),
        extension: None,
        labels: BTreeMap::new(),
        destinations: vec![Destination::Number("+380670000000".into())],
        max_concurrent_calls: max,
        sip: None,
    }
}

/// The demo snapshot with its agents (and queues) replaced.
pub(crate) fn snapshot(
    agents: Vec<AgentConfig>,
    queues: Vec<dialtone_model::snapshot::QueueConfig>,
) -> Snapshot {
    let mut s = demo();
    s.agents = agents.into_iter().map(|a| (a.name.clone(), a)).collect();
    s.queues = queues.into_iter().map(|q| (q.name.clone(), q)).collect();
    s
}

/// Drained changes as `agent from>to@seconds`, to compare histories in one line.
fn log(p: &mut Presence) -> Vec<String> {
    let show = |s: &AgentState| s.code();
    let at = |c: &StateChange| c.at.duration_since(t(0)).as_secs();
    let changes = p.drain_changes();
    let line = |c: &StateChange| format!("{} {}>{}@{}", c.agent, show(&c.from), show(&c.to), at(c));
    changes.iter().map(line).collect()
}

/// Presence over mobile agents `(name, max)`.
fn mobiles(agents: &[(&str, u32)]) -> Presence {
    let agents = agents.iter().map(|(n, max)| mobile(n, *max)).collect();
    Presence::new(&snapshot(agents, vec![]), t(0))
}

fn addr(uri: &str) -> ContactAddr {
    ContactAddr {
        uri: uri.to_owned(),
        source: "192.0.2.7:5060".to_owned(),
    }
}

fn refused(p: &mut Presence, agent: &str, call: &str, now: Timestamp) -> Why {
    p.reserve(agent, call, now).expect_err("refused").reason
}

fn code(p: &mut Presence, agent: &str, now: Timestamp) -> &'static str {
    p.state(agent, now).expect("known agent").0.code()
}

#[test]
fn demo_agents_start_offline_unless_reachable_by_number() {
    let mut p = Presence::new(&demo(), t(0));
    let came_in = [
        "head-of-sales offline>available@0",
        "olena offline>available@0",
    ];
    assert_eq!(log(&mut p), came_in);
    assert_eq!(p.state("anna", t(0)), Ok((AgentState::Offline, t(0))));
    assert_eq!(refused(&mut p, "anna", "c1", t(1)), Why::Offline);
    assert!(p.availability("olena", t(1)).available);
    assert_eq!(refused(&mut p, "nobody", "c1", t(1)), Why::Unknown);
}

#[test]
fn registration_expiry_turns_agent_offline_and_records_change() {
    let mut p = Presence::new(&demo(), t(0));
    p.drain_changes();
    let contacts = p.register("anna", addr("sip:anna@10.0.0.5"), 60, "node-a", t(0));
    assert_eq!(contacts.expect("known").len(), 1);
    // A refresh moves the expiry and keeps the first registration instant.
    let refreshed = p.register("anna", addr("sip:anna@10.0.0.5"), 60, "node-b", t(30));
    let c = &refreshed.expect("known")[0];
    assert_eq!(
        (c.node.as_str(), c.registered_at, c.expires_at),
        ("node-b", t(0), t(90))
    );
    assert_eq!(p.next_deadline(), Some(t(90)));
    assert!(p.expire(t(89)).is_empty());
    // Noticed late, stamped at the real expiry instant.
    assert_eq!(p.expire(t(200)).len(), 1);
    assert_eq!(
        log(&mut p),
        ["anna offline>available@0", "anna available>offline@90"]
    );
    assert!(p.contacts("anna", t(200)).expect("known").is_empty());
    assert_eq!(refused(&mut p, "anna", "c1", t(200)), Why::Offline);
}

#[test]
fn unregister_one_all_or_with_zero_expiry() {
    let mut p = Presence::new(&demo(), t(0));
    p.register("anna", addr("sip:a@1"), 300, "n", t(0))
        .expect("known");
    p.register("anna", addr("sip:a@2"), 300, "n", t(0))
        .expect("known");
    assert_eq!(
        p.unregister("anna", "sip:a@1", t(1)).expect("known").len(),
        1
    );
    assert_eq!(code(&mut p, "anna", t(1)), "available");
    assert_eq!(
        p.register("anna", addr("sip:a@2"), 0, "n", t(2)),
        Ok(vec![])
    );
    assert_eq!(code(&mut p, "anna", t(2)), "offline");
    p.register("anna", addr("sip:a@3"), 300, "n", t(3))
        .expect("known");
    p.unregister_all("anna", t(4)).expect("known");
    assert_eq!(code(&mut p, "anna", t(4)), "offline");
    let ghost = p.unregister_all("ghost", t(4));
    assert_eq!(ghost, Err(PresenceError::UnknownAgent("ghost".into())));
}

#[test]
fn max_concurrent_calls_bounds_reservations() {
    let mut p = mobiles(&[("one", 1), ("two", 2)]);
    let leg = p.reserve("one", "c1", t(1)).expect("free");
    assert_eq!(code(&mut p, "one", t(1)), "ringing");
    let busy = |active, max| Why::Busy { active, max };
    assert_eq!(refused(&mut p, "one", "c2", t(2)), busy(1, 1));
    p.alerting(&leg).expect("known leg");
    p.answered(&leg, t(3)).expect("known leg");
    assert_eq!(refused(&mut p, "one", "c2", t(4)), busy(1, 1));
    p.ended(&leg, t(5), 0).expect("known leg");
    assert!(p.reserve("one", "c2", t(5)).is_ok());
    // A duplicate event for a finished leg is reported, not counted twice.
    assert!(matches!(
        p.ended(&leg, t(6), 0),
        Err(PresenceError::UnknownLeg { .. })
    ));
    // Two slots: two calls, never the same call twice, never a third.
    let first = p.reserve("two", "c1", t(7)).expect("free");
    assert_eq!(refused(&mut p, "two", "c1", t(7)), Why::AlreadyOffered);
    p.reserve("two", "c3", t(7)).expect("second slot");
    assert_eq!(refused(&mut p, "two", "c4", t(8)), busy(2, 2));
    p.released(&first, t(9)).expect("known leg");
    assert_eq!(p.active_legs("two", t(9)), 1);
    assert_eq!(
        p.find_leg("one", "c2").map(|l| l.call_id().to_owned()),
        Some("c2".into())
    );
}

#[test]
fn manual_states_block_offers_and_are_recorded() {
    let mut p = mobiles(&[("a", 1)]);
    p.drain_changes();
    assert_eq!(p.set_state("a", Manual::Dnd, t(1)), Ok(AgentState::Dnd));
    assert_eq!(refused(&mut p, "a", "c", t(2)), Why::Dnd);
    let lunch = AgentState::Away {
        label: "lunch".into(),
    };
    assert_eq!(
        p.set_state("a", Manual::Away("lunch".into()), t(3)),
        Ok(lunch)
    );
    let away = Why::Away {
        label: "lunch".into(),
    };
    assert_eq!(refused(&mut p, "a", "c", t(4)), away);
    assert_eq!(
        p.set_state("a", Manual::Offline, t(5)),
        Ok(AgentState::Offline)
    );
    assert_eq!(refused(&mut p, "a", "c", t(6)), Why::Offline);
    assert_eq!(
        p.set_state("a", Manual::Available, t(7)),
        Ok(AgentState::Available)
    );
    let history = [
        "a available>dnd@1",
        "a dnd>away@3",
        "a away>offline@5",
        "a offline>available@7",
    ];
    assert_eq!(log(&mut p), history);
    // DND during a call stops new offers, not the call.
    let leg = p.reserve("a", "c", t(8)).expect("free");
    p.answered(&leg, t(9)).expect("known leg");
    assert_eq!(p.set_state("a", Manual::Dnd, t(10)), Ok(AgentState::OnCall));
    p.ended(&leg, t(11), 0).expect("known leg");
    assert_eq!(code(&mut p, "a", t(11)), "dnd");
}

#[test]
fn wrap_up_blocks_offers_until_it_ends() {
    let mut p = mobiles(&[("a", 2)]);
    p.drain_changes();
    let leg = p.reserve("a", "c1", t(0)).expect("free");
    p.answered(&leg, t(10)).expect("known leg");
    p.ended(&leg, t(70), 15).expect("known leg");
    assert_eq!(p.last_call_ended_at("a"), Some(t(70)));
    assert_eq!(
        refused(&mut p, "a", "c2", t(84)),
        Why::WrapUp { until: t(85) }
    );
    assert!(p.reserve("a", "c2", t(100)).is_ok());
    let history = [
        "a available>ringing@0",
        "a ringing>on_call@10",
        "a on_call>wrap_up@70",
        "a wrap_up>available@85",
        "a available>ringing@100",
    ];
    assert_eq!(log(&mut p), history);
    // "I'm ready" ends a wrap-up early.
    let leg = p.find_leg("a", "c2").expect("live leg");
    p.answered(&leg, t(101)).expect("known leg");
    p.ended(&leg, t(102), 60).expect("known leg");
    assert_eq!(
        p.set_state("a", Manual::Available, t(103)),
        Ok(AgentState::Available)
    );
}

#[test]
fn answered_today_resets_when_the_local_day_changes() {
    let kyiv = TimeZone::get("Europe/Kyiv").expect("tzdb");
    let p = mobiles(&[("a", 1)]);
    let mut p = p.with_time_zone(kyiv);
    // 21:30Z is 23:30 in Kyiv; 22:30Z is already tomorrow there, though not in UTC.
    let leg = p.reserve("a", "c1", t(45_000)).expect("free");
    p.answered(&leg, t(45_000)).expect("known leg");
    p.answered(&leg, t(45_001))
        .expect("a duplicate answer is not a second call");
    assert_eq!(p.answered_today("a", t(46_000)), 1);
    assert_eq!(p.answered_today("a", t(48_600)), 0);
}

#[test]
fn unused_reservation_lapses_but_a_late_answer_is_believed() {
    let mut p = mobiles(&[("a", 1)]);
    p.drain_changes();
    let leg = p.reserve_for("a", "c1", 30, t(0)).expect("free");
    assert!(!p.availability("a", t(29)).available);
    p.expire(t(40));
    assert_eq!(
        log(&mut p),
        ["a available>ringing@0", "a ringing>available@30"]
    );
    p.answered(&leg, t(45)).expect("lapsed legs are remembered");
    assert_eq!(code(&mut p, "a", t(45)), "on_call");
    p.ended(&leg, t(50), 0).expect("known leg");
    assert_eq!(p.active_legs("a", t(50)), 0);
}

#[test]
fn apply_snapshot_keeps_the_state_of_agents_that_stay() {
    let mut p = Presence::new(&demo(), t(0));
    p.register("anna", addr("sip:anna@10.0.0.5"), 3600, "node-a", t(0))
        .expect("known");
    p.set_state("anna", Manual::Dnd, t(1)).expect("known");
    p.drain_changes();
    let mut next = demo();
    next.agents.remove("head-of-sales");
    next.agents.insert("zoe".into(), mobile("zoe", 1));
    p.apply_snapshot(&next, t(5));
    let expected = [
        "head-of-sales available>offline@5",
        "zoe offline>available@5",
    ];
    assert_eq!(log(&mut p), expected);
    assert_eq!(p.state("anna", t(6)), Ok((AgentState::Dnd, t(1))));
    let gone = p.availability("head-of-sales", t(6)).reason;
    assert_eq!(gone, Some(Why::Unknown));
}

#[test]
fn board_shows_state_since_label_and_legs() {
    let mut p = mobiles(&[("a", 2), ("b", 1)]);
    p.set_state("b", Manual::Away("lunch".into()), t(3))
        .expect("known");
    p.reserve("a", "c1", t(4)).expect("free");
    let board = p.board(t(5));
    let line = |l: &BoardLine| (l.state.code(), l.since, l.label.clone(), l.active_legs);
    let lines: Vec<_> = board.iter().map(line).collect();
    let lunch = Some("lunch".to_owned());
    assert_eq!(
        lines,
        [("ringing", t(4), None, 1), ("away", t(3), lunch, 0)]
    );
    assert!(board[0].available && !board[1].available);
    assert_eq!(board[0].call_ids, ["c1"]);
}
