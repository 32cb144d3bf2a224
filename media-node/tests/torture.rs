//! RFC 4475 (SIP torture tests) and RFC 5118 (IPv6 torture tests) through the whole sans-IO
//! core: every message gets the answer the RFC calls for (or is dropped where it allows),
//! the node keeps serving afterwards, and nothing panics — whole, truncated or mutated,
//! over UDP and over a TCP stream. Run with `--nocapture` to print the outcome table.
//!
//! The fixtures were typed from the RFCs; tests/rfc4475/README.md lists where they differ.

#![allow(clippy::unwrap_used)] // tests: a failure stops the test with the error

use std::path::Path;
use std::time::{Duration, Instant};

use dialtone_media_node::sip::Peer;
use dialtone_media_node::sip::message::StreamFramer;
use dialtone_media_node::sip::transaction::{Action, LayerConfig, TransactionLayer, TuEvent};

#[path = "torture/cases.rs"]
mod cases;

use cases::Outcome::{self, *};
use cases::{Case, RFC4475, RFC5118};

fn layer() -> TransactionLayer {
    TransactionLayer::new(LayerConfig::new("192.0.2.1:5060", "torture", 7))
}

fn udp() -> Peer {
    Peer::udp("192.0.2.99:5060".parse().expect("addr"))
}

fn tcp() -> Peer {
    Peer::tcp("192.0.2.99:5061".parse().expect("addr"))
}

fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn classify(actions: &[Action]) -> (Outcome, Option<Vec<u8>>) {
    for action in actions {
        if let Action::Tu(TuEvent::Request { .. }) = action {
            return (Tu, None);
        }
    }
    for action in actions {
        match action {
            Action::Send { bytes, .. } if status_of(bytes).is_some_and(|s| s >= 200) => {
                return (Answer(status_of(bytes).unwrap_or(0)), Some(bytes.clone()));
            }
            Action::Tu(TuEvent::StrayResponse { .. }) => return (Accepted, None),
            _ => {}
        }
    }
    (Drop, None)
}

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(dir)
        .join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const OPTIONS: &[u8] = b"OPTIONS sip:node@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKafter\r\nMax-Forwards: 70\r\nFrom: <sip:probe@192.0.2.99>;tag=p\r\nTo: <sip:node@192.0.2.1>\r\nCall-ID: after-torture\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn still_serves(l: &mut TransactionLayer, now: Instant) {
    let out = l.on_datagram(now, OPTIONS, udp());
    assert_eq!(
        classify(&out).0,
        Tu,
        "the node must keep serving after a torture message"
    );
}

fn over_udp(bytes: &[u8]) -> (Outcome, Option<Vec<u8>>) {
    let mut l = layer();
    let now = Instant::now();
    let result = classify(&l.on_datagram(now, bytes, udp()));
    still_serves(&mut l, now);
    result
}

fn over_tcp(bytes: &[u8]) -> Outcome {
    let mut l = layer();
    let now = Instant::now();
    let mut framer = StreamFramer::default();
    // The outcome of the first frame; a framing error after it closes the connection.
    let result = match framer.feed(bytes) {
        (frames, error) if frames.is_empty() => match error {
            Some(_) => Closed,
            None => Waiting,
        },
        (frames, _) => {
            let mut outcome = Drop;
            for (i, frame) in frames.into_iter().enumerate() {
                let o = classify(&l.on_frame(now, frame, tcp())).0;
                if i == 0 {
                    outcome = o;
                }
            }
            outcome
        }
    };
    still_serves(&mut l, now);
    result
}

fn header(bytes: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}

fn check_table(dir: &str, table: &[Case]) {
    println!(
        "\n{dir}\n{:<30} {:<9} {:<14} {:<14} {:<14} note",
        "message", "section", "expected", "got (UDP)", "got (TCP)"
    );
    let mut failures = Vec::new();
    for (name, section, expected, expected_tcp, note) in table {
        let bytes = fixture(dir, name);
        let (got, answer) = over_udp(&bytes);
        let got_tcp = over_tcp(&bytes);
        let want_tcp = expected_tcp.clone().unwrap_or_else(|| expected.clone());
        println!(
            "{name:<30} {section:<9} {:<14} {:<14} {:<14} {note}",
            format!("{expected:?}"),
            format!("{got:?}"),
            format!("{got_tcp:?}")
        );
        if got != *expected || got_tcp != want_tcp {
            failures.push(format!(
                "{name}: UDP {got:?} (want {expected:?}), TCP {got_tcp:?} (want {want_tcp:?})"
            ));
        }
        if let (Some(answer), Answer(code)) = (answer, expected) {
            let required = match code {
                405 | 501 => Some("Allow"),
                415 => Some("Accept"),
                420 => Some("Unsupported"),
                _ => None,
            };
            if let Some(h) = required {
                assert!(header(&answer, h).is_some(), "{name}: {code} without {h}");
            }
            assert!(
                header(&answer, "Via").is_some(),
                "{name}: answer without Via"
            );
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn rfc4475_messages_get_the_answer_the_rfc_calls_for() {
    check_table("tests/rfc4475", RFC4475);
}

#[test]
fn rfc5118_messages_get_the_answer_the_rfc_calls_for() {
    check_table("tests/rfc5118", RFC5118);
}

#[test]
fn answers_name_what_is_wrong() {
    let reason = |name: &str| {
        let (_, answer) = over_udp(&fixture("tests/rfc4475", name));
        let answer = answer.expect("an answer");
        String::from_utf8_lossy(&answer)
            .split("\r\n")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(reason("insuf"), "SIP/2.0 400 Missing To Header");
    assert_eq!(reason("multi01"), "SIP/2.0 400 Multiple To Headers");
    assert_eq!(
        reason("mismatch01"),
        "SIP/2.0 400 CSeq Method Does Not Match Request-Line"
    );
    assert_eq!(reason("scalar02"), "SIP/2.0 400 CSeq Number Out Of Range");
    assert_eq!(reason("ncl"), "SIP/2.0 400 Negative Content-Length");
    assert_eq!(
        reason("mcl01"),
        "SIP/2.0 400 Multiple Content-Length Headers"
    );
    let (_, bext) = over_udp(&fixture("tests/rfc4475", "bext01"));
    assert_eq!(
        header(&bext.unwrap_or_default(), "Unsupported").as_deref(),
        Some("nothingSupportsThis, nothingSupportsThisEither")
    );
}

#[test]
fn bodies_reach_the_tu_intact() {
    let mut l = layer();
    for (name, len) in [
        ("wsinv", 150),
        ("inv2543", 105),
        ("longreq", 150),
        ("esc01", 150),
    ] {
        let out = l.on_datagram(Instant::now(), &fixture("tests/rfc4475", name), udp());
        let body = out.iter().find_map(|a| match a {
            Action::Tu(TuEvent::Request { request, .. }) => Some(request.body.len()),
            _ => None,
        });
        assert_eq!(body, Some(len), "{name}");
    }
}

#[test]
fn truncated_and_mutated_torture_messages_never_panic_or_hang() {
    let mut rng = fastrand::Rng::with_seed(4475);
    let mut l = layer();
    let start = Instant::now();
    let mut now = start;
    let names = RFC4475
        .iter()
        .map(|t| ("tests/rfc4475", t.0))
        .chain(RFC5118.iter().map(|t| ("tests/rfc5118", t.0)));
    for (dir, name) in names {
        let bytes = fixture(dir, name);
        for cut in (0..=bytes.len()).step_by(3) {
            l.on_datagram(now, &bytes[..cut], udp());
        }
        for _ in 0..200 {
            let mut m = bytes.clone();
            for _ in 0..rng.usize(1..4) {
                let i = rng.usize(0..m.len().max(1));
                if i < m.len() {
                    m[i] = rng.u8(..);
                }
            }
            now += Duration::from_millis(rng.u64(0..20));
            l.on_datagram(now, &m, udp());
            let mut framer = StreamFramer::new(4096, 4096);
            for chunk in m.chunks(rng.usize(1..64)) {
                let (frames, error) = framer.feed(chunk);
                for f in frames {
                    l.on_frame(now, f, tcp());
                }
                if error.is_some() {
                    break;
                }
            }
            l.on_timer(now);
        }
    }
    let deadline = now + Duration::from_secs(600);
    while let Some(at) = l.next_timer() {
        assert!(at <= deadline, "hung transaction");
        l.on_timer(at);
    }
    assert_eq!(l.transaction_count(), 0);
}
