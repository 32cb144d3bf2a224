//! Every precedence rule and leg rule of PRODUCT.md, one small call each.

use dialtone_proto::v1::{CallEvent, HangupParty, ScheduleState};
use dialtone_reporter::cdr::{CancelCause, NoAnswerCause, OfferOutcome};
use dialtone_reporter::reports::{self, CallStatus, Filter, View};
use dialtone_reporter::{
    AssembleError, Cdr, CdrStatus, LegOutcome, MissedReason, Policy, assemble_call,
};

use crate::support::{ADS, CallBuilder, MAIN, inbound, outbound};

const CLIENT: &str = "+380671112233";

fn call(id: &str) -> CallBuilder {
    inbound(id).from(CLIENT).to(ADS).at("2026-11-24T08:00:00Z")
}

fn cdr(events: Vec<CallEvent>) -> Cdr {
    cdr_with(events, &Policy::default())
}

fn cdr_with(events: Vec<CallEvent>, policy: &Policy) -> Cdr {
    assemble_call(&events, policy).expect("a complete call")
}

fn reason(events: Vec<CallEvent>) -> Option<MissedReason> {
    cdr(events).missed
}

#[test]
fn every_reason_by_precedence() {
    use MissedReason::*;
    let cases: Vec<(&str, Vec<CallEvent>, MissedReason)> = vec![
        // 1 before 2: no closed route at night.
        (
            "no scheme while closed",
            call("r1").no_scheme(ScheduleState::Closed).events(),
            NoForwardingScheme,
        ),
        // 2 before 3 and 5: a holiday caller who hangs up 2 s into the welcome.
        (
            "holiday, welcome hang-up",
            call("r2")
                .holiday()
                .welcome_starts()
                .wait(2.0)
                .caller_hangs_up()
                .events(),
            OutsideBusinessHours,
        ),
        // 2 before 7: the after-hours scheme rang olena, nobody answered, voicemail.
        (
            "closed, rang, voicemail",
            call("r3")
                .closed()
                .ring(&["olena"])
                .wait(1.0)
                .alert("olena")
                .wait(20.0)
                .timeout()
                .voicemail(3.0, 15.0)
                .events(),
            OutsideBusinessHours,
        ),
        // 3 before 5: hang-up 3 s into the welcome.
        (
            "welcome hang-up at 3 s",
            call("r4")
                .open("main-menu")
                .welcome_starts()
                .wait(3.0)
                .caller_hangs_up()
                .events(),
            AbandonedDuringWelcome,
        ),
        // 4 before 5: welcome 4 s, menu hang-up at 6 s.
        (
            "menu hang-up at 6 s",
            call("r5")
                .open("main-menu")
                .welcome(4.0)
                .menu_starts()
                .wait(2.0)
                .caller_hangs_up()
                .events(),
            AbandonedInIvr,
        ),
        // 4: listened to all options for 40 s and left.
        (
            "menu hang-up at 44 s",
            call("r6")
                .open("main-menu")
                .welcome(4.0)
                .menu_starts()
                .wait(40.0)
                .caller_hangs_up()
                .events(),
            AbandonedInIvr,
        ),
        // 5 before 7: an agent was alerted, the caller left at 8 s.
        (
            "alerted, hang-up at 8 s",
            call("r7")
                .open("sales")
                .ring(&["anna"])
                .wait(1.0)
                .alert("anna")
                .wait(7.0)
                .caller_hangs_up()
                .events(),
            AbandonedShort,
        ),
        // 5: "within" 10 s includes 10 s itself.
        (
            "hang-up at exactly 10 s",
            call("r8")
                .open("sales")
                .ring(&["anna"])
                .wait(1.0)
                .alert("anna")
                .wait(9.0)
                .caller_hangs_up()
                .events(),
            AbandonedShort,
        ),
        // 7: 10.5 s is past the threshold.
        (
            "hang-up at 10.5 s",
            call("r9")
                .open("sales")
                .ring(&["anna"])
                .wait(1.0)
                .alert("anna")
                .wait(9.5)
                .caller_hangs_up()
                .events(),
            NotAnswered,
        ),
        // 5 before 6: nobody alerted yet (waiting in the queue), left at 9 s.
        (
            "queue, hang-up at 9 s",
            call("r10")
                .open("support")
                .queue("support")
                .wait(9.0)
                .caller_hangs_up()
                .events(),
            AbandonedShort,
        ),
        // 6: waited 30 s in the queue, nobody was free.
        (
            "queue, hang-up at 30 s",
            call("r11")
                .open("support")
                .queue("support")
                .wait(30.0)
                .caller_hangs_up()
                .events(),
            AllAgentsUnavailable,
        ),
        // Counted from the INVITE, not from the end of the welcome: 6 s welcome + 8 s ringing.
        (
            "welcome 6 s, ring 8 s",
            call("r12")
                .open("main-menu")
                .welcome(6.0)
                .ring(&["anna"])
                .alert("anna")
                .wait(8.0)
                .caller_hangs_up()
                .events(),
            NotAnswered,
        ),
        // A voicemail message left within 10 s is not an abandon: the path's reason.
        (
            "quick voicemail, nobody alerted",
            call("r13")
                .open("sales")
                .ring(&["anna"])
                .wait(0.5)
                .fail("anna", 480)
                .voicemail(2.0, 5.0)
                .events(),
            AllAgentsUnavailable,
        ),
        // 6: a 183 never came, the 408 does not alert.
        (
            "408 without 180",
            call("r14")
                .open("sales")
                .ring(&["anna"])
                .wait(32.0)
                .fail("anna", 408)
                .system_hangs_up()
                .events(),
            AllAgentsUnavailable,
        ),
        // 7: a 183 alerts as a 180 does.
        (
            "183 then timeout",
            call("r15")
                .open("sales")
                .ring(&["anna"])
                .wait(1.0)
                .progress("anna")
                .wait(15.0)
                .timeout()
                .system_hangs_up()
                .events(),
            NotAnswered,
        ),
    ];
    for (name, events, expected) in cases {
        assert_eq!(reason(events), Some(expected), "{name}");
    }
}

#[test]
fn short_abandon_follows_the_policy() {
    let events = || {
        call("p1")
            .open("main-menu")
            .welcome(6.0)
            .ring(&["anna"])
            .alert("anna")
            .wait(8.0)
            .caller_hangs_up()
            .events()
    };
    let strict = Policy {
        short_abandon_seconds: 20,
        ..Policy::default()
    };
    assert_eq!(
        cdr_with(events(), &strict).missed,
        Some(MissedReason::AbandonedShort)
    );
    assert_eq!(cdr(events()).missed, Some(MissedReason::NotAnswered));
}

#[test]
fn blocked_and_unknown_numbers_are_not_missed() {
    let blocked = cdr(call("b1").blocked().events());
    assert_eq!((blocked.status, blocked.missed), (CdrStatus::Blocked, None));
    assert!(blocked.blocked.is_some());
    let unknown = cdr(call("u1")
        .end(
            HangupParty::System,
            dialtone_proto::v1::CallDisposition::NotAnswered,
            404,
        )
        .events());
    assert_eq!(
        (unknown.status, unknown.missed),
        (CdrStatus::Rejected, None)
    );
    assert!(reports::missed(&[blocked, unknown], &Filter::default()).is_empty());
}

#[test]
fn leg_rules() {
    let c = cdr(call("l1")
        .open("sales")
        .ring(&["anna", "bohdan", "olena", "taras", "iryna"])
        .wait(0.1)
        .fail("anna", 486) // busy at once: never alerted
        .wait(0.9)
        .alert("bohdan")
        .alert("olena")
        .alert("iryna")
        .wait(2.0)
        .fail("bohdan", 603) // declined
        .wait(1.0)
        .fail("olena", 480) // alerted, then unavailable: a miss, not a decline
        .wait(1.0)
        .answer("iryna") // taras (never alerted) is cancelled: not offered
        .talk(30.0, HangupParty::Client)
        .events());
    let outcome = |agent: &str| {
        c.legs
            .iter()
            .find(|l| l.agent.as_deref() == Some(agent))
            .map(|l| l.outcome)
            .expect("leg")
    };
    assert_eq!(
        outcome("anna"),
        LegOutcome::FailedBeforeAlert { sip_code: 486 }
    );
    assert_eq!(outcome("bohdan"), LegOutcome::Declined { sip_code: 603 });
    assert_eq!(
        outcome("olena"),
        LegOutcome::NoAnswer {
            cause: NoAnswerCause::Failed { sip_code: 480 }
        }
    );
    assert_eq!(
        outcome("taras"),
        LegOutcome::CancelledBeforeAlert {
            cause: CancelCause::ColleagueAnswered
        }
    );
    assert_eq!(outcome("iryna"), LegOutcome::Answered);
    assert_eq!(c.agents_alerted(), ["bohdan", "olena", "iryna"]);
    assert_eq!(c.agents_missed(), ["bohdan", "olena"]);
    assert_eq!(c.answered_by.as_deref(), Some("iryna"));
    let table = reports::agents(
        std::slice::from_ref(&c),
        &Policy::default(),
        &Filter::default(),
    );
    let brief: Vec<_> = table
        .agents
        .iter()
        .map(|r| {
            (
                r.agent.as_str(),
                r.offered,
                r.answered,
                r.missed,
                r.declined,
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            ("bohdan", 1, 0, 1, 1),
            ("iryna", 1, 1, 0, 0),
            ("olena", 1, 0, 1, 0)
        ]
    );
    // Alerted at 1 s, answered at 5 s.
    assert_eq!(table.agents[1].avg_time_to_answer_seconds, 4.0);
}

#[test]
fn answered_without_provisional_response_is_alerted_at_the_answer() {
    let c = cdr(call("l2")
        .open("sales")
        .ring(&["anna"])
        .wait(2.0)
        .answer("anna")
        .talk(10.0, HangupParty::Agent)
        .events());
    assert_eq!(c.legs[0].alerted_at, c.legs[0].answered_at);
    let offers = c.offers();
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].outcome, OfferOutcome::Answered);
    let table = reports::agents(&[c], &Policy::default(), &Filter::default());
    assert_eq!(table.total.avg_time_to_answer_seconds, 0.0);
    assert_eq!(table.total.short_calls, 0, "10 s of talk is not short");
}

#[test]
fn sequential_ring_misses_count_even_when_a_colleague_answers_later() {
    // The owner (anna) rings 20 s and times out; then the group rings and bohdan answers.
    // anna missed it (a timeout is not "cancelled because a colleague answered"); anna is
    // rung again in the group step: a second offer, cancelled by bohdan's answer.
    let c = cdr(call("s1")
        .open("sales")
        .ring(&["anna"])
        .wait(1.0)
        .alert("anna")
        .wait(19.0)
        .timeout()
        .ring(&["anna", "bohdan"])
        .wait(1.0)
        .alert("anna")
        .alert("bohdan")
        .wait(3.0)
        .answer("bohdan")
        .talk(4.0, HangupParty::Client)
        .events());
    let outcomes: Vec<(&str, OfferOutcome)> =
        c.offers().iter().map(|o| (o.agent, o.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("anna", OfferOutcome::Missed),
            ("anna", OfferOutcome::ColleagueAnswered),
            ("bohdan", OfferOutcome::Answered)
        ]
    );
    let table = reports::agents(
        std::slice::from_ref(&c),
        &Policy::default(),
        &Filter::default(),
    );
    let anna = &table.agents[0];
    assert_eq!(
        (anna.offered, anna.missed, anna.missed_without_callback),
        (2, 1, 0)
    );
    let bohdan = &table.agents[1];
    // 4 s of talk < 5 s, and the client hung up.
    assert_eq!(
        (bohdan.short_calls, bohdan.short_calls_client_hung_up),
        (1, 1)
    );
    assert_eq!(c.status, CdrStatus::Answered);
}

#[test]
fn queue_callback_not_answered_stays_missed_with_its_path_reason() {
    let queue_call = inbound("q1")
        .from(CLIENT)
        .to(MAIN)
        .at("2026-11-24T08:00:00Z")
        .open("main-menu")
        .welcome(5.0)
        .menu(3.0, "2", "queue support")
        .queue("support")
        .ring(&["taras"])
        .wait(1.0)
        .alert("taras")
        .wait(20.0)
        .timeout()
        .wait(5.0)
        .chooses_callback("cb-q1", "support")
        .events();
    let callback = outbound("q1-cb")
        .by("taras")
        .callback("cb-q1")
        .from(MAIN)
        .to(CLIENT)
        .at("2026-11-24T08:10:00Z")
        .ring(&["taras"])
        .wait(1.0)
        .alert("taras")
        .wait(1.0)
        .pick_up("taras")
        .dial_client()
        .wait(1.0)
        .alert("client")
        .wait(30.0)
        .cancel("client", dialtone_proto::v1::LegCancelCause::Timeout)
        .end(
            HangupParty::System,
            dialtone_proto::v1::CallDisposition::NotAnswered,
            0,
        )
        .events();
    let cdrs = vec![cdr(queue_call), cdr(callback)];
    // Chose a callback at 34 s: not an abandon; taras was alerted: not_answered.
    let missed = reports::missed(&cdrs, &Filter::default());
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0].reason, MissedReason::NotAnswered);
    assert_eq!(missed[0].status, CallStatus::CalledBack);
    let calls = reports::calls(&cdrs, &Filter::default(), None);
    assert_eq!(
        calls[0].status,
        CallStatus::NotAnswered,
        "the callback itself"
    );
    assert!(calls[0].callback);
}

#[test]
fn outbound_failures_and_attempts() {
    let miss = call("m1")
        .open("sales")
        .queue("sales")
        .wait(40.0)
        .caller_hangs_up()
        .events();
    let out = |id: &str, at: &str| outbound(id).by("anna").from(ADS).to(CLIENT).at(at);
    // The carrier says 484 (address incomplete): forbidden destination, and an attempt.
    let wrong = out("o1", "2026-11-24T08:05:00Z")
        .dial_client()
        .wait(0.5)
        .client_fails(484)
        .events();
    // Busy: not answered, but not forbidden; an attempt too.
    let busy = out("o2", "2026-11-24T08:20:00Z")
        .dial_client()
        .wait(1.0)
        .alert("client")
        .wait(2.0)
        .fail("client", 486)
        .end(
            HangupParty::Client,
            dialtone_proto::v1::CallDisposition::Failed,
            486,
        )
        .events();
    // A callback whose agent never picked up: the client was never dialled, so no attempt.
    let agent_away = out("o3", "2026-11-24T08:30:00Z")
        .ring(&["anna"])
        .wait(20.0)
        .fail("anna", 408)
        .end(
            HangupParty::System,
            dialtone_proto::v1::CallDisposition::NotAnswered,
            0,
        )
        .events();
    let cdrs: Vec<Cdr> = [miss, wrong, busy, agent_away]
        .into_iter()
        .map(cdr)
        .collect();
    assert_eq!(cdrs[1].missed, Some(MissedReason::ForbiddenDestination));
    assert_eq!(cdrs[1].end_sip_code, Some(484));
    assert_eq!(
        (cdrs[2].status, cdrs[2].missed),
        (CdrStatus::NotAnswered, None)
    );
    let now = crate::support::t("2026-11-24T12:00:00Z");
    let groups = reports::unprocessed(
        &cdrs,
        &[],
        &Policy::default(),
        now,
        &Filter::default(),
        View::Open,
    );
    assert_eq!(
        groups.len(),
        1,
        "the failed callback is not a group of its own"
    );
    assert_eq!(groups[0].callback_attempts, 2);
    assert_eq!(groups[0].last_reason, MissedReason::AllAgentsUnavailable);
    let cb = reports::callbacks(&cdrs, &[], &Policy::default(), now, &Filter::default());
    assert_eq!(cb.groups[0].time_to_callback_seconds, Some(300.0));
    assert!(!cb.groups[0].reached);
}

#[test]
fn incomplete_calls() {
    let events = call("i1")
        .open("sales")
        .ring(&["anna"])
        .wait(1.0)
        .alert("anna")
        .events();
    let c = cdr(events.clone());
    assert_eq!(c.status, CdrStatus::InProgress);
    assert_eq!(c.missed, None);
    assert_eq!(c.legs[0].outcome, LegOutcome::Pending);
    assert!(!c.complete);
    // Without CallStarted (still in a spool somewhere) there is no CDR yet.
    let err = assemble_call(&events[1..], &Policy::default()).expect_err("no CallStarted");
    assert!(matches!(err, AssembleError::NotStarted { .. }));
    // A gap in the sequence: complete only when every event is in.
    let done = call("i2")
        .open("sales")
        .queue("sales")
        .wait(40.0)
        .caller_hangs_up()
        .events();
    let mut gap = done.clone();
    gap.remove(2);
    assert!(!cdr(gap).complete);
    assert!(cdr(done).complete);
    assert_eq!(
        reports::calls(&[c], &Filter::default(), None)[0].status,
        CallStatus::InProgress
    );
}
