//! The layer as a whole: timer queue, dispatch, loop detection, stateless answers, and
//! fuzzing with simulated time (never a panic, never a hung transaction).

use std::time::{Duration, Instant};

use super::test_support::*;
use super::{Action, TuEvent};
use crate::sip::message::{Frame, StreamFramer, response_to};

#[test]
fn next_timer_is_the_earliest_deadline_and_skips_stale_entries() {
    let mut l = layer();
    let t0 = Instant::now();
    assert_eq!(l.next_timer(), None);
    l.send_request(t0 + ms(100), tu_request("OPTIONS"), udp())
        .unwrap();
    l.send_request(t0, tu_request("INVITE"), tcp()).unwrap();
    assert_eq!(
        l.next_timer(),
        Some(t0 + ms(600)),
        "E of the OPTIONS before B of the INVITE"
    );
    let out = l.on_timer(t0 + ms(600));
    assert_eq!(lines(&out), vec!["OPTIONS sip:bob@192.0.2.50 SIP/2.0"]);
    assert_eq!(l.next_timer(), Some(t0 + ms(1_600)));
    assert!(l.on_timer(t0 + ms(1_000)).is_empty(), "nothing due yet");
    // A late wake-up handles everything due, once.
    let out = l.on_timer(t0 + ms(40_000));
    assert_eq!(
        events(&out)
            .iter()
            .filter(|e| matches!(e, TuEvent::Timeout { .. }))
            .count(),
        2
    );
    assert_eq!(l.transaction_count(), 0);
    assert_eq!(l.next_timer(), None);
}

#[test]
fn a_request_of_ours_that_comes_back_is_a_loop() {
    let mut l = layer();
    let t0 = Instant::now();
    let (_, out) = l.send_request(t0, tu_request("INVITE"), udp()).unwrap();
    let looped = sent(&out).remove(0);
    let mut with_our_via =
        b"INVITE sip:bob@192.0.2.50 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKproxy\r\n"
            .to_vec();
    with_our_via
        .extend_from_slice(&looped[looped.windows(2).position(|w| w == b"\r\n").unwrap() + 2..]);
    let out = l.on_datagram(t0, &with_our_via, udp());
    assert_eq!(lines(&out), vec!["SIP/2.0 482 Loop Detected"]);
}

#[test]
fn stray_and_mismatched_responses_reach_the_tu_as_strays() {
    let mut l = layer();
    let t0 = Instant::now();
    let (_, out) = l.send_request(t0, tu_request("OPTIONS"), udp()).unwrap();
    let options = sent(&out).remove(0);
    let wrong_method = String::from_utf8(reply(&options, 200, Some("x")))
        .unwrap()
        .replace("7 OPTIONS", "7 INFO");
    let out = l.on_datagram(t0, wrong_method.as_bytes(), udp());
    assert!(matches!(events(&out)[..], [TuEvent::StrayResponse { .. }]));
    assert_eq!(l.transaction_count(), 1);
}

#[test]
fn malformed_requests_get_stateless_answers_and_leave_no_state() {
    let mut l = layer();
    let t0 = Instant::now();
    let bad = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKb1\r\nMax-Forwards: 70\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCSeq: 1 INVITE\r\n\r\n";
    let out = l.on_datagram(t0, bad, udp());
    assert_eq!(lines(&out), vec!["SIP/2.0 400 Missing Call-ID Header"]);
    let again = l.on_datagram(t0, bad, udp());
    assert_eq!(sent(&out), sent(&again), "same answer, same tag, no state");
    assert_eq!(l.transaction_count(), 0);
    let ack = b"ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKb1\r\n\r\n";
    assert!(
        sent(&l.on_datagram(t0, ack, udp())).is_empty(),
        "ACK never answered"
    );
}

#[test]
fn stream_frames_pings_and_oversized_messages() {
    let mut l = layer();
    let t0 = Instant::now();
    let mut framer = StreamFramer::new(4_096, 1_000);
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend_from_slice(&incoming("OPTIONS", "z9hG4bKt1", ""));
    let big = String::from_utf8(incoming("MESSAGE", "z9hG4bKt2", ""))
        .unwrap()
        .replace("Content-Length: 0", "Content-Length: 5000");
    stream.extend_from_slice(big.as_bytes());
    stream.extend_from_slice(&[b'x'; 5_000]);
    stream.extend_from_slice(&incoming("OPTIONS", "z9hG4bKt3", ""));
    let mut out = Vec::new();
    for chunk in stream.chunks(700) {
        let (frames, error) = framer.feed(chunk);
        assert_eq!(error, None);
        for frame in frames {
            out.extend(l.on_frame(t0, frame, tcp()));
        }
    }
    assert_eq!(lines(&out), vec!["", "SIP/2.0 513 Message Too Large"]);
    assert_eq!(sent(&out)[0], b"\r\n", "pong");
    let requests = events(&out)
        .iter()
        .filter(|e| matches!(e, TuEvent::Request { .. }))
        .count();
    assert_eq!(requests, 2);
    assert_eq!(l.on_frame(t0, Frame::Ping, tcp()).len(), 1);
}

fn mutate(rng: &mut fastrand::Rng, base: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    for _ in 0..rng.usize(1..6) {
        if m.is_empty() {
            break;
        }
        let i = rng.usize(0..m.len());
        match rng.u8(0..6) {
            0 => m[i] = rng.u8(..),
            1 => {
                m.remove(i);
            }
            2 => m.insert(i, b"\r\n :;,<>\"%@\x00\xff"[rng.usize(0..13)]),
            3 => m.truncate(i),
            4 => {
                let j = rng.usize(0..m.len());
                let chunk: Vec<u8> = m[i.min(j)..i.max(j)].to_vec();
                m.splice(i..i, chunk);
            }
            _ => {
                let j = rng.usize(0..m.len());
                m.swap(i, j)
            }
        }
    }
    m
}

#[test]
fn fuzzing_never_panics_and_every_transaction_ends() {
    let mut rng = fastrand::Rng::with_seed(2024);
    let mut l = layer();
    let t0 = Instant::now();
    let mut now = t0;
    let seeds: Vec<Vec<u8>> = vec![
        incoming("INVITE", "z9hG4bKf1", ""),
        incoming("OPTIONS", "z9hG4bKf2", ""),
        incoming("CANCEL", "z9hG4bKf1", ""),
        incoming("ACK", "z9hG4bKf1", ";tag=x"),
        incoming("BYE", "f3", ";tag=x"),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-n1-0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ];
    let mut pending = Vec::new();
    for round in 0..20_000 {
        now += Duration::from_millis(rng.u64(0..50));
        let input = if rng.u8(0..10) == 0 {
            (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect()
        } else {
            let pick = rng.usize(0..seeds.len());
            mutate(&mut rng, &seeds[pick])
        };
        let peer = if rng.bool() { udp() } else { tcp() };
        for action in l.on_datagram(now, &input, peer) {
            if let Action::Tu(TuEvent::Request { tx, request, .. }) = action {
                pending.push((tx, request));
            }
        }
        if round % 7 == 0
            && let Some((tx, request)) = pending.pop()
        {
            let code = [100, 180, 200, 404, 486, 603][rng.usize(0..6)];
            let _ = l.send_response(now, tx, response_to(&request, code, Some("fz")));
        }
        if round % 11 == 0 {
            let _ = l.send_request(now, tu_request("INVITE"), peer);
        }
        l.on_timer(now);
    }
    // Ten minutes later every transaction has ended by itself.
    let end = now + Duration::from_secs(600);
    while let Some(at) = l.next_timer() {
        assert!(at <= end, "a transaction outlives every timer");
        l.on_timer(at);
    }
    assert_eq!(l.transaction_count(), 0);
}

#[test]
fn random_bytes_never_panic_the_parser_or_the_framer() {
    let mut rng = fastrand::Rng::with_seed(99);
    let mut l = layer();
    let t0 = Instant::now();
    for _ in 0..20_000 {
        let len = rng.usize(0..512);
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        l.on_datagram(t0, &bytes, udp());
        let mut framer = StreamFramer::new(256, 256);
        for f in framer.feed(&bytes).0 {
            l.on_frame(t0, f, tcp());
        }
    }
}
