//! Client transactions: every state, transition and timer, with simulated time.

use std::time::Instant;

use super::test_support::*;
use super::{Action, Timeout, TuEvent};

#[test]
fn invite_client_udp_retransmits_with_timer_a_until_timer_b() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, out) = l.send_request(t0, tu_request("INVITE"), udp()).unwrap();
    assert_eq!(lines(&out), vec!["INVITE sip:bob@192.0.2.50 SIP/2.0"]);
    let via = header(&sent(&out)[0], "Via").unwrap();
    assert!(
        via.starts_with("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-n1-"),
        "{via}"
    );
    assert_eq!(l.next_timer(), Some(t0 + ms(500)));
    let run = run(&mut l, t0, ms(40_000));
    // Timer A doubles without a cap (RFC 3261 §17.1.1.2): 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    assert_eq!(
        send_times(&run),
        vec![500, 1_500, 3_500, 7_500, 15_500, 31_500]
    );
    let ends: Vec<_> = run
        .iter()
        .filter(|(_, a)| is_timeout(a) || is_terminated(a))
        .collect();
    assert_eq!(ends.len(), 2);
    assert_eq!(ends[0].0, ms(32_000));
    assert!(
        matches!(ends[0].1, Action::Tu(TuEvent::Timeout { tx: t, kind: Timeout::NoFinal }) if t == tx)
    );
    assert_eq!(l.transaction_count(), 0);
    assert_eq!(l.next_timer(), None);
}

#[test]
fn invite_client_tcp_never_retransmits() {
    let mut l = layer();
    let t0 = Instant::now();
    let (_, out) = l.send_request(t0, tu_request("INVITE"), tcp()).unwrap();
    assert!(
        header(&sent(&out)[0], "Via")
            .unwrap()
            .starts_with("SIP/2.0/TCP ")
    );
    let run = run(&mut l, t0, ms(40_000));
    assert_eq!(send_times(&run), Vec::<u128>::new());
    assert!(run.iter().any(|(t, a)| *t == ms(32_000) && is_timeout(a)));
}

#[test]
fn invite_client_provisional_stops_retransmission_and_the_guard_ends_it() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, out) = l.send_request(t0, tu_request("INVITE"), udp()).unwrap();
    let invite = sent(&out).remove(0);
    let out = l.on_datagram(t0 + ms(200), &reply(&invite, 180, Some("b1")), udp());
    assert!(
        matches!(events(&out)[..], [TuEvent::Response { tx: t, response }] if *t == tx && response.status_code.code() == 180)
    );
    let run = run(&mut l, t0, ms(200_000));
    assert_eq!(
        send_times(&run),
        Vec::<u128>::new(),
        "no retransmission in Proceeding"
    );
    // The guard (180 s after the first provisional) stands in for RFC 3261's missing timer.
    let timeout = run.iter().find(|(_, a)| is_timeout(a)).unwrap();
    assert_eq!(timeout.0, ms(180_200));
    assert_eq!(l.transaction_count(), 0);
}

#[test]
fn invite_client_acks_a_non_2xx_with_the_same_branch_and_absorbs_retransmissions() {
    for reliable in [false, true] {
        let mut l = layer();
        let t0 = Instant::now();
        let peer = if reliable { tcp() } else { udp() };
        let (tx, out) = l.send_request(t0, tu_request("INVITE"), peer).unwrap();
        let invite = sent(&out).remove(0);
        let busy = reply(&invite, 486, Some("b1"));
        let out = l.on_datagram(t0 + ms(100), &busy, peer);
        let acks = sent(&out);
        assert_eq!(lines(&out), vec!["ACK sip:bob@192.0.2.50 SIP/2.0"]);
        assert_eq!(
            header(&acks[0], "Via"),
            header(&invite, "Via"),
            "same branch"
        );
        assert_eq!(header(&acks[0], "CSeq").as_deref(), Some("7 ACK"));
        assert_eq!(
            header(&acks[0], "To").as_deref(),
            Some("<sip:bob@192.0.2.50>;tag=b1")
        );
        assert_eq!(
            header(&acks[0], "Route").as_deref(),
            Some("<sip:proxy.example;lr>")
        );
        assert!(
            events(&out)
                .iter()
                .any(|e| matches!(e, TuEvent::Response { tx: t, .. } if *t == tx))
        );
        if reliable {
            // Timer D is zero over TCP.
            assert!(out.iter().any(is_terminated));
            continue;
        }
        let out = l.on_datagram(t0 + ms(900), &busy, peer);
        assert_eq!(
            lines(&out),
            vec!["ACK sip:bob@192.0.2.50 SIP/2.0"],
            "ACK repeated"
        );
        assert!(
            events(&out).is_empty(),
            "retransmission not passed to the TU"
        );
        let run = run(&mut l, t0, ms(60_000));
        assert_eq!(send_times(&run), Vec::<u128>::new());
        let end = run.iter().find(|(_, a)| is_terminated(a)).unwrap();
        assert_eq!(end.0, ms(32_100), "Timer D");
    }
}

#[test]
fn invite_client_passes_every_2xx_to_the_tu_until_timer_m() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, out) = l.send_request(t0, tu_request("INVITE"), udp()).unwrap();
    let invite = sent(&out).remove(0);
    let ok = reply(&invite, 200, Some("b1"));
    let out = l.on_datagram(t0 + ms(300), &ok, udp());
    assert!(
        sent(&out).is_empty(),
        "the TU, not the transaction, ACKs a 2xx"
    );
    assert_eq!(events(&out).len(), 1);
    let out = l.on_datagram(t0 + ms(800), &ok, udp());
    assert!(matches!(events(&out)[..], [TuEvent::Response { tx: t, .. }] if *t == tx));
    let run = run(&mut l, t0, ms(60_000));
    assert_eq!(send_times(&run), Vec::<u128>::new());
    assert_eq!(
        run.iter().find(|(_, a)| is_terminated(a)).unwrap().0,
        ms(32_300)
    );
    let out = l.on_datagram(t0 + ms(40_000), &ok, udp());
    assert!(matches!(events(&out)[..], [TuEvent::StrayResponse { .. }]));
}

#[test]
fn non_invite_client_udp_doubles_timer_e_up_to_t2_until_timer_f() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, _) = l.send_request(t0, tu_request("OPTIONS"), udp()).unwrap();
    let run = run(&mut l, t0, ms(40_000));
    assert_eq!(
        send_times(&run),
        vec![
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    let timeout = run.iter().find(|(_, a)| is_timeout(a)).unwrap();
    assert_eq!(timeout.0, ms(32_000));
    assert!(
        matches!(timeout.1, Action::Tu(TuEvent::Timeout { tx: t, kind: Timeout::NoFinal }) if t == tx)
    );
}

#[test]
fn non_invite_client_in_proceeding_retransmits_every_t2() {
    let mut l = layer();
    let t0 = Instant::now();
    let (_, out) = l.send_request(t0, tu_request("BYE"), udp()).unwrap();
    let bye = sent(&out).remove(0);
    let out = l.on_datagram(t0 + ms(200), &reply(&bye, 100, None), udp());
    assert_eq!(events(&out).len(), 1);
    let run = run(&mut l, t0, ms(40_000));
    // E fires at 0.5 s in Proceeding and is then reset to T2.
    assert_eq!(
        send_times(&run),
        vec![500, 4_500, 8_500, 12_500, 16_500, 20_500, 24_500, 28_500]
    );
    assert_eq!(
        run.iter().find(|(_, a)| is_timeout(a)).unwrap().0,
        ms(32_000)
    );
}

#[test]
fn non_invite_client_final_response_then_timer_k() {
    for (peer, end) in [(udp(), Some(5_700)), (tcp(), None)] {
        let mut l = layer();
        let t0 = Instant::now();
        let (tx, out) = l.send_request(t0, tu_request("OPTIONS"), peer).unwrap();
        let options = sent(&out).remove(0);
        let ok = reply(&options, 200, Some("x"));
        let out = l.on_datagram(t0 + ms(700), &ok, peer);
        assert!(matches!(events(&out)[0], TuEvent::Response { tx: t, .. } if *t == tx));
        match end {
            None => assert!(out.iter().any(is_terminated), "Timer K is zero over TCP"),
            Some(end) => {
                let again = l.on_datagram(t0 + ms(900), &ok, peer);
                assert!(again.is_empty(), "absorbed in Completed");
                let run = run(&mut l, t0, ms(60_000));
                assert_eq!(send_times(&run), Vec::<u128>::new());
                assert_eq!(
                    run.iter().find(|(_, a)| is_terminated(a)).unwrap().0,
                    ms(end)
                );
            }
        }
    }
}

#[test]
fn cancel_waits_for_a_provisional_then_the_487_is_acked() {
    let mut l = layer();
    let t0 = Instant::now();
    let (invite_tx, out) = l.send_request(t0, tu_request("INVITE"), udp()).unwrap();
    let invite = sent(&out).remove(0);
    assert!(
        l.cancel(t0 + ms(10), invite_tx).unwrap().is_empty(),
        "no CANCEL before a 1xx"
    );
    let out = l.on_datagram(t0 + ms(100), &reply(&invite, 180, Some("b1")), udp());
    let cancel = sent(&out)
        .into_iter()
        .next()
        .expect("CANCEL sent on the 1xx");
    assert_eq!(first_line(&cancel), "CANCEL sip:bob@192.0.2.50 SIP/2.0");
    assert_eq!(header(&cancel, "Via"), header(&invite, "Via"));
    assert_eq!(header(&cancel, "CSeq").as_deref(), Some("7 CANCEL"));
    assert_eq!(
        header(&cancel, "To").as_deref(),
        Some("<sip:bob@192.0.2.50>")
    );
    let out = l.on_datagram(t0 + ms(150), &reply(&cancel, 200, Some("b1")), udp());
    assert!(matches!(events(&out)[0], TuEvent::Response { tx, .. } if *tx != invite_tx));
    let out = l.on_datagram(t0 + ms(160), &reply(&invite, 487, Some("b1")), udp());
    assert_eq!(lines(&out), vec!["ACK sip:bob@192.0.2.50 SIP/2.0"]);
    assert!(
        matches!(events(&out)[0], TuEvent::Response { tx, response } if *tx == invite_tx && response.status_code.code() == 487)
    );
    run(&mut l, t0, ms(100_000));
    assert_eq!(l.transaction_count(), 0);
}

#[test]
fn a_cancelled_invite_without_final_response_ends_after_64_t1() {
    let mut l = layer();
    let t0 = Instant::now();
    let (invite_tx, out) = l.send_request(t0, tu_request("INVITE"), udp()).unwrap();
    let invite = sent(&out).remove(0);
    l.on_datagram(t0 + ms(100), &reply(&invite, 180, Some("b1")), udp());
    let out = l.cancel(t0 + ms(1_000), invite_tx).unwrap();
    assert_eq!(lines(&out), vec!["CANCEL sip:bob@192.0.2.50 SIP/2.0"]);
    let run = run(&mut l, t0, ms(200_000));
    let invite_timeout = run
        .iter()
        .find(|(_, a)| matches!(a, Action::Tu(TuEvent::Timeout { tx, .. }) if *tx == invite_tx))
        .unwrap();
    assert_eq!(invite_timeout.0, ms(33_000));
    assert!(l.cancel(t0, invite_tx).is_err(), "gone");
}

#[test]
fn a_transport_error_ends_the_transaction() {
    let mut l = layer();
    let t0 = Instant::now();
    let (tx, _) = l.send_request(t0, tu_request("INVITE"), tcp()).unwrap();
    let out = l.on_transport_error(tx);
    assert!(
        matches!(events(&out)[..], [TuEvent::TransportError { tx: a }, TuEvent::Terminated { tx: b }] if *a == tx && *b == tx)
    );
    assert_eq!(l.next_timer(), None);
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let mut l = layer();
    let t0 = Instant::now();
    assert!(l.send_request(t0, tu_request("ACK"), udp()).is_err());
    let mut bad = tu_request("OPTIONS");
    bad.headers
        .retain(|h| !matches!(h, rsipstack::sip::Header::CallId(_)));
    assert!(l.send_request(t0, bad, udp()).is_err());
    let (tx, _) = l.send_request(t0, tu_request("OPTIONS"), udp()).unwrap();
    assert!(l.cancel(t0, tx).is_err(), "not an INVITE");
    assert!(
        l.send_response(t0, tx, rsipstack::sip::Response::default())
            .is_err()
    );
    assert!(l.send_ack(tu_request("BYE"), udp()).is_err());
    let ack = l.send_ack(tu_request("ACK"), udp()).unwrap();
    assert!(
        header(&sent(&ack)[0], "Via")
            .unwrap()
            .contains(";branch=z9hG4bK-n1-")
    );
}
