//! Helpers for the transaction tests: a layer, peers, canned messages and a timer driver.

use std::time::{Duration, Instant};

use rsipstack::sip::{Request, SipMessage};

use super::{Action, LayerConfig, TransactionLayer, TuEvent};
use crate::sip::Peer;

pub(super) fn layer() -> TransactionLayer {
    TransactionLayer::new(LayerConfig::new("192.0.2.1:5060", "n1", 1))
}

pub(super) fn udp() -> Peer {
    Peer::udp("192.0.2.50:5060".parse().expect("addr"))
}

pub(super) fn tcp() -> Peer {
    Peer::tcp("192.0.2.50:5060".parse().expect("addr"))
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A request built by a TU: no Via (the layer adds it).
pub(super) fn tu_request(method: &str) -> Request {
    let text = format!(
        "{method} sip:bob@192.0.2.50 SIP/2.0\r\nFrom: <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:bob@192.0.2.50>\r\nCall-ID: call-1\r\nCSeq: 7 {method}\r\nRoute: <sip:proxy.example;lr>\r\nContact: <sip:alice@192.0.2.1>\r\n\r\n"
    );
    match SipMessage::try_from(text.as_str()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad fixture: {other:?}"),
    }
}

/// A request as a client would send it to us.
pub(super) fn incoming(method: &str, branch: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} sip:node@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5060;branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:carrier@192.0.2.50>;tag=c1\r\nTo: <sip:node@192.0.2.1>{extra}\r\nCall-ID: in-1\r\nCSeq: 3 {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A response to a request we sent (`sent`): copies its top Via, From, To, Call-ID, CSeq.
pub(super) fn reply(sent: &[u8], code: u16, to_tag: Option<&str>) -> Vec<u8> {
    let text = String::from_utf8_lossy(sent);
    let mut out = format!("SIP/2.0 {code} Whatever\r\n");
    for line in text.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("via:") {
            out.push_str(line);
            out.push_str("\r\n");
            break;
        }
    }
    for line in text.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("to:") {
            match to_tag {
                Some(tag) => out.push_str(&format!("{line};tag={tag}\r\n")),
                None => out.push_str(&format!("{line}\r\n")),
            }
        } else if lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

pub(super) fn sent(actions: &[Action]) -> Vec<Vec<u8>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => Some(bytes.clone()),
            Action::Tu(_) => None,
        })
        .collect()
}

pub(super) fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

pub(super) fn lines(actions: &[Action]) -> Vec<String> {
    sent(actions).iter().map(|b| first_line(b)).collect()
}

pub(super) fn events(actions: &[Action]) -> Vec<&TuEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Tu(e) => Some(e),
            Action::Send { .. } => None,
        })
        .collect()
}

pub(super) fn header(bytes: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}

/// Runs every timer up to `start + until`, returning each action with its offset.
pub(super) fn run(
    layer: &mut TransactionLayer,
    start: Instant,
    until: Duration,
) -> Vec<(Duration, Action)> {
    let mut out = Vec::new();
    while let Some(at) = layer.next_timer() {
        if at > start + until {
            break;
        }
        for action in layer.on_timer(at) {
            out.push((at - start, action));
        }
    }
    out
}

/// Offsets (ms) of the sends in a timer run.
pub(super) fn send_times(run: &[(Duration, Action)]) -> Vec<u128> {
    run.iter()
        .filter(|(_, a)| matches!(a, Action::Send { .. }))
        .map(|(t, _)| t.as_millis())
        .collect()
}

pub(super) fn is_timeout(a: &Action) -> bool {
    matches!(a, Action::Tu(TuEvent::Timeout { .. }))
}

pub(super) fn is_terminated(a: &Action) -> bool {
    matches!(a, Action::Tu(TuEvent::Terminated { .. }))
}
