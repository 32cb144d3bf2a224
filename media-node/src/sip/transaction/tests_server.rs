//! Server transactions: every state, transition and timer, with simulated time.

use std::time::Instant;

use rsipstack::sip::Request;

use super::test_support::*;
use super::{Action, Timeout, TransactionLayer, TuEvent, TxId};
use crate::sip::message::response_to;

/// Feeds an incoming request and returns the new transaction and the request.
fn accept(
    l: &mut TransactionLayer,
    now: Instant,
    bytes: &[u8],
    peer: crate::sip::Peer,
) -> (TxId, Request, Vec<Action>) {
    let mut out = l.on_datagram(now, bytes, peer);
    let pos = out
        .iter()
        .position(|a| matches!(a, Action::Tu(TuEvent::Request { .. })))
        .expect("request for the TU");
    match out.remove(pos) {
        Action::Tu(TuEvent::Request { tx, request, .. }) => (tx, *request, out),
        _ => unreachable!(),
    }
}

#[test]
fn invite_server_sends_100_at_once_and_repeats_it_on_retransmission() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = incoming("INVITE", "z9hG4bKc1", "");
    let (_, request, out) = accept(&mut l, t0, &invite, udp());
    assert_eq!(lines(&out), vec!["SIP/2.0 100 Trying"]);
    let trying = &sent(&out)[0];
    assert_eq!(
        header(trying, "To").as_deref(),
        Some("<sip:node@192.0.2.1>"),
        "no tag on 100"
    );
    assert!(header(trying, "Via").unwrap().contains("branch=z9hG4bKc1"));
    assert_eq!(request.method, rsipstack::sip::Method::Invite);
    let again = l.on_datagram(t0 + ms(500), &invite, udp());
    assert_eq!(lines(&again), vec!["SIP/2.0 100 Trying"]);
    assert!(
        events(&again).is_empty(),
        "a retransmission is not a new request"
    );
}

#[test]
fn invite_server_retransmits_a_final_with_timer_g_until_timer_h() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, request, _) = accept(&mut l, t0, &incoming("INVITE", "z9hG4bKc2", ""), udp());
    l.send_response(t0 + ms(10), tx, response_to(&request, 180, Some("n1")))
        .unwrap();
    let out = l
        .send_response(t0 + ms(20), tx, response_to(&request, 486, Some("n1")))
        .unwrap();
    assert_eq!(lines(&out), vec!["SIP/2.0 486 Busy Here"]);
    let again = l.on_datagram(t0 + ms(30), &incoming("INVITE", "z9hG4bKc2", ""), udp());
    assert_eq!(lines(&again), vec!["SIP/2.0 486 Busy Here"]);
    let run = run(&mut l, t0, ms(60_000));
    // G doubles up to T2: 0.5, 1, 2, 4, 4, ... after the 486 sent at 20 ms.
    assert_eq!(
        send_times(&run),
        vec![
            520, 1_520, 3_520, 7_520, 11_520, 15_520, 19_520, 23_520, 27_520, 31_520
        ]
    );
    let timeout = run.iter().find(|(_, a)| is_timeout(a)).unwrap();
    assert_eq!(timeout.0, ms(32_020));
    assert!(matches!(
        timeout.1,
        Action::Tu(TuEvent::Timeout {
            kind: Timeout::NoAck,
            ..
        })
    ));
    assert_eq!(l.transaction_count(), 0);
}

#[test]
fn invite_server_ack_confirms_then_timer_i() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, request, _) = accept(&mut l, t0, &incoming("INVITE", "z9hG4bKc3", ""), udp());
    l.send_response(t0, tx, response_to(&request, 603, Some("n1")))
        .unwrap();
    assert_eq!(send_times(&run(&mut l, t0, ms(600))), vec![500]);
    let ack = incoming("ACK", "z9hG4bKc3", ";tag=n1");
    let out = l.on_datagram(t0 + ms(700), &ack, udp());
    assert!(out.is_empty(), "ACK for a non-2xx is absorbed: {out:?}");
    let out = l.on_datagram(t0 + ms(800), &ack, udp());
    assert!(out.is_empty(), "retransmitted ACK absorbed in Confirmed");
    let run = run(&mut l, t0, ms(60_000));
    assert_eq!(send_times(&run), Vec::<u128>::new(), "no G after the ACK");
    assert_eq!(
        run.iter().find(|(_, a)| is_terminated(a)).unwrap().0,
        ms(5_700),
        "Timer I = T4"
    );
}

#[test]
fn invite_server_over_tcp_never_retransmits_and_ends_on_ack() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, request, _) = accept(&mut l, t0, &incoming("INVITE", "z9hG4bKc4", ""), tcp());
    l.send_response(t0, tx, response_to(&request, 480, Some("n1")))
        .unwrap();
    let out = l.on_datagram(
        t0 + ms(100),
        &incoming("ACK", "z9hG4bKc4", ";tag=n1"),
        tcp(),
    );
    assert!(out.iter().any(is_terminated), "Timer I is zero over TCP");
    let (tx, request, _) = accept(&mut l, t0, &incoming("INVITE", "z9hG4bKc5", ""), tcp());
    l.send_response(t0, tx, response_to(&request, 480, Some("n1")))
        .unwrap();
    let run = run(&mut l, t0, ms(60_000));
    assert_eq!(send_times(&run), Vec::<u128>::new());
    assert_eq!(
        run.iter().find(|(_, a)| is_timeout(a)).unwrap().0,
        ms(32_000),
        "Timer H still ends it"
    );
}

#[test]
fn invite_server_2xx_is_retransmitted_until_its_ack_and_the_ack_goes_to_the_tu() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = incoming("INVITE", "z9hG4bKc6", "");
    let (tx, request, _) = accept(&mut l, t0, &invite, udp());
    let out = l
        .send_response(t0, tx, response_to(&request, 200, Some("n1")))
        .unwrap();
    assert_eq!(lines(&out), vec!["SIP/2.0 200 OK"]);
    let first = run(&mut l, t0, ms(2_000));
    assert_eq!(send_times(&first), vec![500, 1_500]);
    assert!(
        l.on_datagram(t0 + ms(2_100), &invite, udp()).is_empty(),
        "absorbed in Accepted"
    );
    // The ACK of a 2xx has a branch of its own: matched by Call-ID, CSeq and From tag.
    let out = l.on_datagram(
        t0 + ms(2_200),
        &incoming("ACK", "z9hG4bKnew", ";tag=n1"),
        udp(),
    );
    assert!(matches!(events(&out)[..], [TuEvent::Ack { tx: Some(t), .. }] if *t == tx));
    let rest = run(&mut l, t0, ms(60_000));
    assert_eq!(send_times(&rest), Vec::<u128>::new(), "stopped by the ACK");
    assert!(!rest.iter().any(|(_, a)| is_timeout(a)));
    assert_eq!(
        rest.iter().find(|(_, a)| is_terminated(a)).unwrap().0,
        ms(32_000),
        "Timer L"
    );
}

#[test]
fn invite_server_2xx_without_ack_tells_the_tu_at_timer_l() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, request, _) = accept(&mut l, t0, &incoming("INVITE", "z9hG4bKc7", ""), udp());
    l.send_response(t0, tx, response_to(&request, 200, Some("n1")))
        .unwrap();
    let run = run(&mut l, t0, ms(60_000));
    assert_eq!(
        send_times(&run),
        vec![
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    let timeout = run.iter().find(|(_, a)| is_timeout(a)).unwrap();
    assert!(matches!(
        timeout.1,
        Action::Tu(TuEvent::Timeout {
            kind: Timeout::NoAck2xx,
            ..
        })
    ));
    assert!(
        l.send_response(t0, tx, response_to(&request, 200, None))
            .is_err(),
        "gone"
    );
}

#[test]
fn invite_server_guard_answers_408_when_the_tu_is_silent() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, _, _) = accept(&mut l, t0, &incoming("INVITE", "z9hG4bKc8", ""), udp());
    let run = run(&mut l, t0, ms(300_000));
    let first_send = run
        .iter()
        .find(|(_, a)| matches!(a, Action::Send { .. }))
        .unwrap();
    assert_eq!(first_send.0, ms(300_000));
    assert!(
        matches!(&first_send.1, Action::Send { bytes, .. } if first_line(bytes) == "SIP/2.0 408 Request Timeout")
    );
    assert!(run.iter().any(|(_, a)| matches!(a, Action::Tu(TuEvent::Timeout { tx: t, kind: Timeout::TuSilent }) if *t == tx)));
}

#[test]
fn non_invite_server_absorbs_then_repeats_the_final_until_timer_j() {
    let mut l = layer();
    let t0 = Instant::now();
    let options = incoming("OPTIONS", "z9hG4bKo1", "");
    let (tx, request, out) = accept(&mut l, t0, &options, udp());
    assert!(sent(&out).is_empty(), "no 100 for non-INVITE");
    assert!(
        l.on_datagram(t0 + ms(100), &options, udp()).is_empty(),
        "absorbed in Trying"
    );
    l.send_response(t0 + ms(150), tx, response_to(&request, 100, None))
        .unwrap();
    assert_eq!(
        lines(&l.on_datagram(t0 + ms(170), &options, udp())),
        vec!["SIP/2.0 100 Trying"]
    );
    l.send_response(t0 + ms(200), tx, response_to(&request, 200, Some("n1")))
        .unwrap();
    assert_eq!(
        lines(&l.on_datagram(t0 + ms(600), &options, udp())),
        vec!["SIP/2.0 200 OK"]
    );
    assert!(
        l.send_response(t0, tx, response_to(&request, 500, None))
            .is_err(),
        "already final"
    );
    let run = run(&mut l, t0, ms(60_000));
    assert_eq!(
        send_times(&run),
        Vec::<u128>::new(),
        "finals are not retransmitted by servers of non-INVITE"
    );
    assert_eq!(
        run.iter().find(|(_, a)| is_terminated(a)).unwrap().0,
        ms(32_200),
        "Timer J"
    );
}

#[test]
fn non_invite_server_over_tcp_ends_with_its_final_and_guards_a_silent_tu() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, request, _) = accept(&mut l, t0, &incoming("OPTIONS", "z9hG4bKo2", ""), tcp());
    let out = l
        .send_response(t0, tx, response_to(&request, 200, Some("n1")))
        .unwrap();
    assert!(out.iter().any(is_terminated), "Timer J is zero over TCP");
    let (tx, _, _) = accept(&mut l, t0, &incoming("OPTIONS", "z9hG4bKo3", ""), udp());
    let run = run(&mut l, t0, ms(60_000));
    assert!(run.iter().any(|(t, a)| *t == ms(32_000) && matches!(a, Action::Tu(TuEvent::Timeout { tx: x, kind: Timeout::TuSilent }) if *x == tx)));
    assert_eq!(l.transaction_count(), 0);
}

#[test]
fn cancel_answers_200_and_487_with_the_same_tag() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, request, _) = accept(&mut l, t0, &incoming("INVITE", "z9hG4bKk1", ""), udp());
    l.send_response(t0, tx, response_to(&request, 180, Some("ring1")))
        .unwrap();
    let cancel = incoming("CANCEL", "z9hG4bKk1", "");
    let out = l.on_datagram(t0 + ms(100), &cancel, udp());
    let sends = sent(&out);
    let firsts: Vec<String> = sends.iter().map(|b| first_line(b)).collect();
    assert_eq!(
        firsts,
        vec!["SIP/2.0 487 Request Terminated", "SIP/2.0 200 OK"]
    );
    assert_eq!(header(&sends[0], "CSeq").as_deref(), Some("3 INVITE"));
    assert_eq!(header(&sends[1], "CSeq").as_deref(), Some("3 CANCEL"));
    for s in &sends {
        assert_eq!(
            header(s, "To").as_deref(),
            Some("<sip:node@192.0.2.1>;tag=ring1")
        );
    }
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, TuEvent::Cancelled { tx: t, terminated: true } if *t == tx))
    );
    assert_eq!(
        lines(&l.on_datagram(t0 + ms(200), &cancel, udp())),
        vec!["SIP/2.0 200 OK"],
        "CANCEL retransmission"
    );
    let out = l.on_datagram(
        t0 + ms(300),
        &incoming("ACK", "z9hG4bKk1", ";tag=ring1"),
        udp(),
    );
    assert!(out.is_empty());
    assert!(
        l.send_response(t0, tx, response_to(&request, 200, None))
            .is_err(),
        "too late after 487"
    );
}

#[test]
fn cancel_after_the_final_response_or_without_invite() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, request, _) = accept(&mut l, t0, &incoming("INVITE", "z9hG4bKk2", ""), udp());
    l.send_response(t0, tx, response_to(&request, 200, Some("n1")))
        .unwrap();
    let out = l.on_datagram(t0 + ms(10), &incoming("CANCEL", "z9hG4bKk2", ""), udp());
    assert_eq!(lines(&out), vec!["SIP/2.0 200 OK"]);
    assert!(events(&out).iter().any(|e| matches!(
        e,
        TuEvent::Cancelled {
            terminated: false,
            ..
        }
    )));
    let out = l.on_datagram(t0 + ms(10), &incoming("CANCEL", "z9hG4bKnone", ""), udp());
    assert_eq!(
        lines(&out),
        vec!["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
}

#[test]
fn policy_refusal_of_an_invite_is_retransmitted_until_acked() {
    let mut l = layer();
    let t0 = Instant::now();
    let refused = incoming("INVITE", "z9hG4bKr1", "\r\nRequire: 100rel");
    let out = l.on_datagram(t0, &refused, udp());
    assert_eq!(lines(&out), vec!["SIP/2.0 420 Bad Extension"]);
    assert_eq!(
        header(&sent(&out)[0], "Unsupported").as_deref(),
        Some("100rel")
    );
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, TuEvent::Rejected { status: 420, .. }))
    );
    let tag = header(&sent(&out)[0], "To").unwrap();
    let tag = tag.split("tag=").nth(1).unwrap().to_string();
    let first = run(&mut l, t0, ms(1_000));
    assert_eq!(send_times(&first), vec![500]);
    l.on_datagram(
        t0 + ms(1_100),
        &incoming("ACK", "z9hG4bKr1", &format!(";tag={tag}")),
        udp(),
    );
    let rest = run(&mut l, t0, ms(60_000));
    assert_eq!(send_times(&rest), Vec::<u128>::new());
    assert_eq!(l.transaction_count(), 0);
}

#[test]
fn rfc2543_requests_without_magic_cookie_match_by_their_fields() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = incoming("INVITE", "old1", "");
    let (tx, request, out) = accept(&mut l, t0, &invite, udp());
    assert_eq!(lines(&out), vec!["SIP/2.0 100 Trying"]);
    assert_eq!(
        lines(&l.on_datagram(t0 + ms(400), &invite, udp())),
        vec!["SIP/2.0 100 Trying"]
    );
    l.send_response(t0 + ms(500), tx, response_to(&request, 404, Some("n1")))
        .unwrap();
    let out = l.on_datagram(t0 + ms(600), &incoming("ACK", "old1", ";tag=n1"), udp());
    assert!(out.is_empty(), "the ACK found its INVITE");
    let rest = run(&mut l, t0, ms(60_000));
    assert_eq!(send_times(&rest), Vec::<u128>::new());
}
