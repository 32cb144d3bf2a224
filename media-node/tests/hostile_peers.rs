//! Hostile traffic against a running node over live loopback sockets (torture.rs drives the
//! same messages through the sans-IO core; here they cross real UDP and TCP sockets):
//! the RFC 4475 torture messages one by one, malformed requests, a flood, password
//! guessing, and SIPp dropping packets on both ends of a call.

#![allow(clippy::unwrap_used)] // tests: a failure stops the test with the error

mod node_support;

#[path = "torture/cases.rs"]
#[allow(dead_code)] // the RFC 5118 table is driven by torture.rs
mod cases;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cases::Outcome::{self, *};
use cases::RFC4475;
use md5::{Digest, Md5};
use node_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

const WAIT: Duration = Duration::from_secs(5);

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rfc4475")
        .join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn options(to: SocketAddr, from: SocketAddr, call_id: &str, transport: &str) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/{transport} {from};branch=z9hG4bK{call_id};rport\r\nFrom: <sip:probe@{from}>;tag=p{call_id}\r\nTo: <sip:{to}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The status code of a response.
fn status(text: &str) -> Option<u16> {
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Every response status in a TCP byte stream, in order.
fn statuses(stream: &str) -> Vec<u16> {
    stream
        .match_indices("SIP/2.0 ")
        .filter(|(i, _)| *i == 0 || stream[..*i].ends_with('\n'))
        .filter_map(|(i, _)| status(&stream[i..]))
        .collect()
}

/// What a live node did with one torture message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Answered by the node itself or its TU: every status received, in order.
    Answered(Vec<u16>),
    /// Nothing came back; the probe sent after it was answered.
    Silent,
    /// (TCP) the node closed the connection.
    Closed(Vec<u16>),
    /// (TCP) the node is still reading the message (the probe on another connection is
    /// answered, nothing arrived on this one).
    Waiting,
}

/// Whether what the node did is what the RFC table expects of the core: `Tu` means the TU
/// (the node's call handling, registrar, OPTIONS) answered it with some final response.
fn matches(expected: &Outcome, seen: &Seen) -> bool {
    match (expected, seen) {
        (Answer(code), Seen::Answered(got)) => got.contains(code),
        (Answer(code), Seen::Closed(got)) => got.contains(code),
        (Tu, Seen::Answered(got)) => got.iter().any(|s| *s >= 200),
        (Drop | Accepted, Seen::Silent) => true,
        (Closed, Seen::Closed(_)) => true,
        (Waiting, Seen::Waiting) => true,
        _ => false,
    }
}

/// Sends a torture message over UDP from a fresh socket, then a probe, and reports what
/// came back. `want_final` waits for a final response (the TU answers some requests after
/// asking the router).
async fn torture_udp(node: SocketAddr, bytes: &[u8], n: usize, want_final: bool) -> Seen {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = socket.local_addr().unwrap();
    socket.send_to(bytes, node).await.unwrap();
    let probe_id = format!("probe-udp-{n}");
    socket
        .send_to(options(node, me, &probe_id, "UDP").as_bytes(), node)
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut probe_answered = false;
    let mut buf = vec![0u8; 65535];
    loop {
        let done_waiting = probe_answered && (!want_final || got.iter().any(|s| *s >= 200));
        if done_waiting {
            break;
        }
        let Ok(r) = timeout_at(deadline, socket.recv_from(&mut buf)).await else {
            break;
        };
        let (len, _) = r.unwrap();
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        if text.contains(&probe_id) {
            probe_answered = probe_answered || status(&text) == Some(200);
        } else if let Some(s) = status(&text) {
            got.push(s);
        }
    }
    assert!(probe_answered, "the probe after message {n} was answered");
    if got.is_empty() {
        Seen::Silent
    } else {
        Seen::Answered(got)
    }
}

/// Reads from a TCP stream until `done` holds for what arrived, EOF, or the deadline.
/// Returns the text and whether the peer closed.
async fn read_until(
    stream: &mut TcpStream,
    text: &mut String,
    deadline: Instant,
    done: impl Fn(&str) -> bool,
) -> bool {
    let mut buf = vec![0u8; 65535];
    while !done(text) {
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    false
}

async fn torture_tcp(node: SocketAddr, bytes: &[u8], n: usize, expected: &Outcome) -> Seen {
    let mut stream = TcpStream::connect(node).await.unwrap();
    let me = stream.local_addr().unwrap();
    stream.write_all(bytes).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let mut text = String::new();
    match expected {
        Answer(code) => {
            let code = *code;
            let closed = read_until(&mut stream, &mut text, deadline, |t| {
                statuses(t).contains(&code)
            })
            .await;
            if closed {
                Seen::Closed(statuses(&text))
            } else {
                Seen::Answered(statuses(&text))
            }
        }
        Tu => {
            let closed = read_until(&mut stream, &mut text, deadline, |t| {
                statuses(t).iter().any(|s| *s >= 200)
            })
            .await;
            if closed {
                Seen::Closed(statuses(&text))
            } else {
                Seen::Answered(statuses(&text))
            }
        }
        Closed => {
            let closed = read_until(&mut stream, &mut text, deadline, |_| false).await;
            assert!(closed, "message {n}: the node closes the connection");
            Seen::Closed(statuses(&text))
        }
        Waiting => {
            // The probe goes on another connection: on this one it would be read as the body.
            let mut other = TcpStream::connect(node).await.unwrap();
            let from = other.local_addr().unwrap();
            let id = format!("probe-tcp-wait-{n}");
            other
                .write_all(options(node, from, &id, "TCP").as_bytes())
                .await
                .unwrap();
            let mut answer = String::new();
            read_until(&mut other, &mut answer, deadline, |t| {
                statuses(t).contains(&200)
            })
            .await;
            assert!(
                statuses(&answer).contains(&200),
                "probe on a second connection"
            );
            let mut buf = [0u8; 1024];
            match stream.try_read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Seen::Waiting,
                Ok(0) => Seen::Closed(Vec::new()),
                Ok(len) => Seen::Answered(statuses(&String::from_utf8_lossy(&buf[..len]))),
                Err(e) => panic!("message {n}: {e}"),
            }
        }
        Drop | Accepted => {
            let id = format!("probe-tcp-{n}");
            stream
                .write_all(options(node, me, &id, "TCP").as_bytes())
                .await
                .unwrap();
            let closed = read_until(&mut stream, &mut text, deadline, |t| t.contains(&id)).await;
            let got: Vec<u16> = statuses(&text);
            if closed {
                Seen::Closed(got)
            } else if got == [200] {
                Seen::Silent
            } else {
                Seen::Answered(got)
            }
        }
    }
}

/// A node of its own for one message on one transport: RFC 4475's messages share branches
/// and Call-IDs, and a node that saw one already treats the next as its retransmission.
async fn fresh_node(slot: u16) -> Harness {
    start_with(36200, move |cfg| {
        let base = 40000 + slot * 4;
        cfg.rtp_ports = (base, base + 3);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_messages_over_live_udp_and_tcp_then_options() {
    let mut failures = Vec::new();
    println!(
        "{:<12} {:<9} {:<14} {:<22} {:<14} got (TCP)",
        "message", "section", "expected", "got (UDP)", "expected TCP"
    );
    for (n, (name, section, expected, expected_tcp, _)) in RFC4475.iter().enumerate() {
        let bytes = fixture(name);
        let slot = u16::try_from(n).unwrap() * 2;
        let h = fresh_node(slot).await;
        let seen_udp = torture_udp(h.sip, &bytes, n, *expected == Tu).await;
        let want_tcp = match *name {
            // The core hands the first request to the TU, but the bytes after it break the
            // stream's framing (dblreq: octets beyond the INVITE's Content-Length; inv2543:
            // no Content-Length on a stream), and the node closes the connection at once,
            // before the TU's answer to the first request can be written.
            "dblreq" | "inv2543" => Closed,
            _ => expected_tcp.clone().unwrap_or_else(|| expected.clone()),
        };
        let h = fresh_node(slot + 1).await;
        let tcp = h.node.tcp_addrs()[0];
        let seen_tcp = torture_tcp(tcp, &bytes, n, &want_tcp).await;
        still_serves_tcp(tcp).await;
        println!(
            "{name:<12} {section:<9} {:<14} {:<22} {:<14} {seen_tcp:?}",
            format!("{expected:?}"),
            format!("{seen_udp:?}"),
            format!("{want_tcp:?}")
        );
        if !matches(expected, &seen_udp) {
            failures.push(format!("{name} over UDP: {seen_udp:?}, want {expected:?}"));
        }
        if !matches(&want_tcp, &seen_tcp) {
            failures.push(format!("{name} over TCP: {seen_tcp:?}, want {want_tcp:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// OPTIONS on a new TCP connection is answered 200.
async fn still_serves_tcp(tcp: SocketAddr) {
    let mut stream = TcpStream::connect(tcp).await.unwrap();
    let me = stream.local_addr().unwrap();
    stream
        .write_all(options(tcp, me, "after-tcp", "TCP").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut stream, &mut text, Instant::now() + WAIT, |t| {
        !statuses(t).is_empty()
    })
    .await;
    assert_eq!(
        statuses(&text),
        [200],
        "OPTIONS over TCP after a torture message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_rfc4475_set_on_one_node_leaves_it_serving() {
    // Every message in a row on one node, over both transports: it keeps answering.
    let h = start(36300).await;
    let tcp = h.node.tcp_addrs()[0];
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (name, ..) in RFC4475 {
        let bytes = fixture(name);
        socket.send_to(&bytes, h.sip).await.unwrap();
        let mut stream = TcpStream::connect(tcp).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
    }
    let me = socket.local_addr().unwrap();
    socket
        .send_to(options(h.sip, me, "after-all-udp", "UDP").as_bytes(), h.sip)
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65535];
    loop {
        let (len, _) = timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .expect("OPTIONS over UDP answered after the whole set")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..len]);
        if text.contains("after-all-udp") {
            assert_eq!(status(&text), Some(200));
            break;
        }
    }
    still_serves_tcp(tcp).await;
}

/// A UDP client bound to one loopback address.
struct Client {
    socket: UdpSocket,
    me: SocketAddr,
    node: SocketAddr,
}

impl Client {
    async fn bind(ip: &str, node: SocketAddr) -> Client {
        let socket = UdpSocket::bind((ip, 0)).await.unwrap();
        let me = socket.local_addr().unwrap();
        Client { socket, me, node }
    }

    async fn send(&self, text: &str) {
        self.socket
            .send_to(text.as_bytes(), self.node)
            .await
            .unwrap();
    }

    /// The next datagram, or None by the deadline.
    async fn next(&self, limit: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65535];
        let r = tokio::time::timeout(limit, self.socket.recv_from(&mut buf)).await;
        r.ok().map(|r| {
            let (len, _) = r.unwrap();
            String::from_utf8_lossy(&buf[..len]).into_owned()
        })
    }

    /// Sends and waits for the first final response.
    async fn ask(&self, text: &str) -> String {
        self.send(text).await;
        loop {
            let got = self.next(WAIT).await.expect("a response in time");
            if status(&got).is_some_and(|s| s >= 200) {
                return got;
            }
        }
    }

    /// Datagrams already waiting, without blocking.
    fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65535];
        while let Ok((len, _)) = self.socket.try_recv_from(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        out
    }

    fn options(&self, id: &str) -> String {
        options(self.node, self.me, id, "UDP")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_the_node_keeps_serving() {
    let h = start(36400).await;
    let c = Client::bind("127.0.0.3", h.sip).await;
    let (to, me) = (h.sip, c.me);
    let base = |extra: &str, cseq: &str, call_id: &str| {
        format!(
            "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id};rport\r\nFrom: <sip:x@{me}>;tag=m\r\nTo: <sip:{to}>\r\n{call_id}CSeq: {cseq}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    let cases = [
        ("no Call-ID", base("", "1 OPTIONS", "")),
        (
            "CSeq not a number",
            base("", "one OPTIONS", "Call-ID: m2\r\n"),
        ),
        (
            "CSeq method differs",
            base("", "1 INVITE", "Call-ID: m3\r\n"),
        ),
        (
            "two Content-Length headers",
            base("Content-Length: 5\r\n", "1 OPTIONS", "Call-ID: m4\r\n"),
        ),
        (
            "CSeq beyond 2^31",
            base("", "4294967301 OPTIONS", "Call-ID: m5\r\n"),
        ),
    ];
    for (what, text) in &cases {
        let answer = c.ask(text).await;
        assert_eq!(status(&answer), Some(400), "{what}: {answer}");
    }
    // Bytes that are not SIP at all, and a request without a Via to answer to, get no
    // answer; the node goes on serving this address and others.
    c.send("\u{1}\u{2}garbage\r\n\r\n").await;
    c.send(&format!(
        "OPTIONS sip:{to} SIP/2.0\r\nFrom: <sip:x@{me}>;tag=m\r\nTo: <sip:{to}>\r\nCall-ID: m6\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ))
    .await;
    let ok = c.ask(&c.options("after-garbage")).await;
    assert!(ok.contains("after-garbage"), "{ok}");
    assert_eq!(status(&ok), Some(200));
    assert!(c.drain().is_empty(), "nothing answered the garbage");
    let other = Client::bind("127.0.0.4", h.sip).await;
    assert_eq!(status(&other.ask(&other.options("other")).await), Some(200));
    assert!(
        h.health
            .render()
            .contains("dialtone_sip_responses_total{code=\"400\"} 5"),
        "{}",
        h.health.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_gets_its_source_banned_while_others_are_served() {
    let h = start(36600).await;
    let flooder = Client::bind("127.0.0.2", h.sip).await;
    let bystander = Client::bind("127.0.0.3", h.sip).await;
    let carrier = Client::bind("127.0.0.1", h.sip).await;
    // 40 requests at once from one address: the guard allows 16 within 2 s.
    for i in 0..40 {
        flooder.send(&flooder.options(&format!("flood-{i}"))).await;
    }
    // The bystander's request is handled after the whole burst: once it is answered, every
    // answer the flooder will get is already in its socket.
    let ok = bystander.ask(&bystander.options("bystander")).await;
    assert_eq!(status(&ok), Some(200));
    let answered = flooder.drain();
    assert_eq!(answered.len(), 16, "16 answered, then the source is banned");
    // Still banned: a new request from the flooder gets nothing, the bystander is served.
    flooder.send(&flooder.options("after-ban")).await;
    let ok = bystander.ask(&bystander.options("bystander-2")).await;
    assert_eq!(status(&ok), Some(200));
    assert!(flooder.drain().is_empty(), "a banned source gets no answer");
    // A carrier's address is never banned, however fast it sends.
    for i in 0..40 {
        carrier
            .send(&carrier.options(&format!("carrier-{i}")))
            .await;
    }
    let ok = bystander.ask(&bystander.options("bystander-3")).await;
    assert_eq!(status(&ok), Some(200));
    assert_eq!(carrier.drain().len(), 40, "every carrier request answered");
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// The value of a digest parameter in a WWW-Authenticate header.
fn param(header: &str, name: &str) -> String {
    let start = header.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    header[start..].split('"').next().unwrap().to_owned()
}

fn register_request(c: &Client, user: &str, n: u32, auth: Option<String>) -> String {
    let (to, me) = (c.node, c.me);
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreg{n}{user};rport\r\nFrom: <sip:{user}@{to}>;tag=r{user}\r\nTo: <sip:{user}@{to}>\r\nCall-ID: reg-{user}@{me}\r\nCSeq: {n} REGISTER\r\nContact: <sip:{user}@{me}>\r\nMax-Forwards: 70\r\nExpires: 300\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// RFC 2617 digest (MD5, qop=auth) computed here, independently of the registrar.
fn answer(challenge: &str, user: &str, password: &str, uri: &str) -> String {
    let header = challenge
        .split("\r\n")
        .find(|l| l.starts_with("WWW-Authenticate:") && l.contains("algorithm=MD5"))
        .expect("an MD5 challenge");
    let realm = param(header, "realm");
    let nonce = param(header, "nonce");
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_get_401_then_the_source_is_rate_limited() {
    let h = start(36800).await;
    let guesser = Client::bind("127.0.0.5", h.sip).await;
    let uri = format!("sip:{}", h.sip);
    let mut n = 1;
    let mut statuses_seen = Vec::new();
    for guess in ["123456", "password", "anna", "qwerty", "letmein"] {
        let challenge = guesser
            .ask(&register_request(&guesser, "anna", n, None))
            .await;
        assert_eq!(status(&challenge), Some(401), "{challenge}");
        n += 1;
        let auth = answer(&challenge, "anna", guess, &uri);
        let refused = guesser
            .ask(&register_request(&guesser, "anna", n, Some(auth)))
            .await;
        statuses_seen.push(status(&refused).unwrap());
        n += 1;
    }
    assert_eq!(
        statuses_seen,
        [401, 401, 401, 401, 403],
        "four wrong answers get 401, the fifth blocks the source"
    );
    // Blocked: not even a challenge.
    let blocked = guesser
        .ask(&register_request(&guesser, "anna", n, None))
        .await;
    assert_eq!(status(&blocked), Some(403), "{blocked}");

    // anna's own softphone on another address registers with the right password.
    let anna = Client::bind("127.0.0.6", h.sip).await;
    let challenge = anna.ask(&register_request(&anna, "anna", 1, None)).await;
    let auth = answer(&challenge, "anna", "demo-anna-pass", &uri);
    let ok = anna
        .ask(&register_request(&anna, "anna", 2, Some(auth)))
        .await;
    assert_eq!(status(&ok), Some(200), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_complete_when_sipp_drops_packets_on_both_ends() {
    ensure_sipp();
    let mut h = start(37000).await;
    const CALLS: usize = 5;
    // Both SIPp instances lose 10 % of the messages they send and receive: every lost
    // INVITE, 200, ACK and BYE must be recovered by a retransmission (ours or SIPp's).
    let lossy = |calls: usize| -> Vec<String> {
        vec![
            "-lost".into(),
            "10".into(),
            "-m".into(),
            calls.to_string(),
            "-l".into(),
            "1".into(),
            "-timeout".into(),
            "50s".into(),
        ]
    };
    let mut anna = sipp("anna", "agent_answer.xml", "127.0.0.1", &lossy(CALLS));
    anna.ready(Duration::from_secs(5)).await;
    register(&mut h.router, "anna", anna.port).await;
    let mut args = lossy(CALLS);
    args.extend(["-s".into(), RECORDED.into(), h.sip.to_string()]);
    let carrier = sipp("carrier", "carrier_call.xml", "127.0.0.1", &args);
    let limit = Duration::from_secs(55);
    let (c, a) = tokio::join!(carrier.wait(limit), anna.wait(limit));
    assert_ok(&c, "carrier (5 calls, 10 % loss)");
    assert_ok(&a, "anna (5 calls, 10 % loss)");
    for _ in 0..CALLS {
        let events = call_events(&mut h.events, limit).await;
        assert!(
            in_order(&events, &["leg_answered", "bridged", "call_ended"]),
            "{:?}",
            events.iter().map(kind).collect::<Vec<_>>()
        );
    }
}
