//! Fuzz harnesses for the media node's sans-IO SIP core.
//!
//! Both functions take arbitrary bytes and must never panic; each also asserts the
//! properties a hostile peer must not be able to break (bounded buffers, every transaction
//! ending). The fuzz targets in `fuzz_targets/` only call them, so a crash file replays with
//! any driver (`cargo fuzz run <target> <file>` or the built binary given the file).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use dialtone_media_node::guard::{Guard, GuardConfig};
use dialtone_media_node::registrar::RegisterRequest;
use dialtone_media_node::registrar::digest::Credentials;
use dialtone_media_node::sip::Peer;
use dialtone_media_node::sip::message::{
    self, Frame, ParseConfig, Parsed, StreamFramer, Verdict, grammar, raw, response_to,
};
use dialtone_media_node::sip::transaction::{Action, LayerConfig, TransactionLayer, TuEvent, TxId};
use rsipstack::sip::{Request, SipMessage};

include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// The framer limits of the node's TCP connections (`StreamFramer::default()`).
const NODE_HEAD: usize = 16 * 1024;
const NODE_BODY: usize = 48 * 1024;
/// Small limits, so that inputs of libFuzzer's default sizes reach the limit paths too.
const SMALL_HEAD: usize = 256;
const SMALL_BODY: usize = 512;

fn udp_peer() -> Peer {
    Peer::udp(SocketAddr::from(([192, 0, 2, 50], 5060)))
}

fn tcp_peer() -> Peer {
    Peer::tcp(SocketAddr::from(([192, 0, 2, 51], 40_000)))
}

/// One datagram / stream chunk through everything the node does with it before the
/// transaction layer takes over.
pub fn sip_message(data: &[u8]) {
    let node = ParseConfig::default();
    // Tight limits reach the 513 and header-count paths with short inputs.
    let tight = ParseConfig {
        max_message_bytes: 300,
        max_headers: 6,
        ..ParseConfig::default()
    };

    // 1. The guard's look at a request (node::actor's `admitted`): a raw scan for the
    //    User-Agent, then the flood and scanner checks.
    let mut guard = Guard::new(GuardConfig::default());
    let scanned = raw::scan(data, 64);
    if scanned.start_line.is_some() && !scanned.is_response() {
        let ip = IpAddr::from([192, 0, 2, 50]);
        guard.check(ip, scanned.named("User-Agent"), Instant::now());
    }

    // 2. As a UDP datagram, with the node's limits and with tight ones.
    judge(message::parse(data, udp_peer(), &node));
    judge(message::parse(data, udp_peer(), &tight));

    // 3. As a TCP byte stream, cut where the first byte says, through the node's framer and
    //    a small one. The framer must never hold more than one partial message.
    let step = data.first().map_or(1, |b| usize::from(*b % 64) + 1);
    for (head, body) in [(NODE_HEAD, NODE_BODY), (SMALL_HEAD, SMALL_BODY)] {
        let mut framer = StreamFramer::new(head, body);
        for chunk in data.chunks(step) {
            let (frames, error) = framer.feed(chunk);
            for frame in frames {
                match frame {
                    Frame::Message(bytes) => {
                        judge(message::parse(&bytes, tcp_peer(), &node));
                    }
                    Frame::Oversized(head) => {
                        judge(message::parse_oversized(&head, tcp_peer(), &node));
                    }
                    Frame::Ping => {}
                }
            }
            assert!(
                framer.buffered() <= head + body + 4,
                "framer holds {} bytes with limits {head}/{body}",
                framer.buffered()
            );
            if error.is_some() {
                break;
            }
        }
    }
}

/// What the node does next with a parse result, minus the transaction layer: build the
/// answers it would send and, for a REGISTER, read the registrar's headers.
fn judge(parsed: Parsed) {
    match parsed {
        Parsed::Request(r) => match r.verdict {
            Verdict::Accept(request) => {
                // The TU answers from the parsed request.
                let _ = response_to(&request, 200, Some("fz")).to_bytes();
                if r.meta.method == "REGISTER" {
                    register_headers(&request, r.meta.source.addr);
                }
            }
            Verdict::Refuse(refusal) => {
                assert!(
                    (400..=699).contains(&refusal.status),
                    "refusal with status {}",
                    refusal.status
                );
            }
        },
        Parsed::Reject(reject) => {
            assert!(
                (400..=599).contains(&reject.status),
                "stateless reject with status {}",
                reject.status
            );
            // The answer must at least be a status line with that code. (Not a full
            // response: a request over the header limit is answered from the headers read
            // before it, which may lack Call-ID or CSeq.)
            let answer = raw::scan(&reject.bytes, 8);
            let code = answer.start_line.map(grammar::status_line);
            assert_eq!(
                code,
                Some(Ok(reject.status)),
                "our own answer has a bad status line:\n{}",
                String::from_utf8_lossy(&reject.bytes)
            );
        }
        Parsed::Response(_) | Parsed::Drop(_) => {}
    }
}

/// node::registrar's reading of a REGISTER: header pairs, then the digest credentials.
fn register_headers(request: &Request, source: SocketAddr) {
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter_map(|h| {
            let text = h.to_string();
            let (n, v) = text.split_once(':')?;
            Some((n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let parsed = RegisterRequest::from_headers(
        &request.uri.to_string(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        source,
    );
    if let Ok(reg) = parsed
        && let Some(auth) = reg.authorization.as_deref()
    {
        let _ = Credentials::parse(auth);
    }
}

// ---------------------------------------------------------------------------------------
// The transaction layer.
// ---------------------------------------------------------------------------------------

/// Peers: two UDP, two TCP (one IPv6), so retransmission and reliable-transport timers and
/// per-source matching are all reached.
fn peer(n: u8) -> Peer {
    match n % 4 {
        0 => Peer::udp(SocketAddr::from(([192, 0, 2, 50], 5060))),
        1 => Peer::udp(SocketAddr::from(([198, 51, 100, 7], 5080))),
        2 => Peer::tcp(SocketAddr::from(([192, 0, 2, 51], 40_000))),
        _ => Peer::tcp(SocketAddr::from((
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5),
            5060,
        ))),
    }
}

/// Reads the op stream.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

/// The harness's model of the TU: what it sent and what it was given, to answer them.
#[derive(Default)]
struct Tu {
    /// Client transactions (ours, and CANCELs the layer made) with the last bytes sent.
    clients: Vec<(TxId, Peer, Vec<u8>)>,
    /// Server transactions with their request, to answer them.
    servers: Vec<(TxId, Box<Request>)>,
    /// Every id seen, for transport errors on any of them.
    ids: Vec<TxId>,
}

/// Most entries the harness remembers (its own memory stays bounded).
const TU_CAP: usize = 64;

impl Tu {
    fn absorb(&mut self, actions: Vec<Action>) {
        let server_ids: Vec<TxId> = self.servers.iter().map(|(id, _)| *id).collect();
        for action in actions {
            match action {
                Action::Send {
                    to,
                    bytes,
                    tx: Some(tx),
                } if !server_ids.contains(&tx) && is_request(&bytes) => {
                    self.note_id(tx);
                    match self.clients.iter_mut().find(|(id, _, _)| *id == tx) {
                        Some(c) => c.2 = bytes,
                        None => push_capped(&mut self.clients, (tx, to, bytes)),
                    }
                }
                Action::Send { .. } => {}
                Action::Tu(TuEvent::Request { tx, request, .. }) => {
                    self.note_id(tx);
                    push_capped(&mut self.servers, (tx, request));
                }
                Action::Tu(TuEvent::Terminated { tx }) => {
                    self.clients.retain(|(id, _, _)| *id != tx);
                    self.servers.retain(|(id, _)| *id != tx);
                }
                Action::Tu(_) => {}
            }
        }
    }

    fn note_id(&mut self, tx: TxId) {
        if !self.ids.contains(&tx) {
            push_capped(&mut self.ids, tx);
        }
    }
}

fn push_capped<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= TU_CAP {
        list.remove(0);
    }
    list.push(item);
}

fn is_request(bytes: &[u8]) -> bool {
    !bytes.starts_with(b"SIP/")
}

const TU_METHODS: &[&str] = &["INVITE", "OPTIONS", "BYE", "REGISTER", "INFO", "MESSAGE"];
const PEER_METHODS: &[&str] = &[
    "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "PRACK", "FOO", "INFO",
];

/// A request as a TU builds it (the layer adds the Via).
fn tu_request(method: &str, n: u8) -> Option<Request> {
    let text = format!(
        "{method} sip:bob@192.0.2.50 SIP/2.0\r\nFrom: <sip:alice@192.0.2.1>;tag=a{n}\r\nTo: <sip:bob@192.0.2.50>\r\nCall-ID: call-{n}\r\nCSeq: {} {method}\r\nContact: <sip:alice@192.0.2.1>\r\n\r\n",
        u32::from(n) + 1
    );
    match SipMessage::try_from(text.as_str()) {
        Ok(SipMessage::Request(r)) => Some(r),
        _ => None,
    }
}

/// A request from a peer, with a branch out of a small set so that retransmissions, CANCELs
/// and ACKs match earlier requests.
fn peer_request(method: &str, branch: u8, cseq: u8, to_tag: bool, extra: &[u8]) -> Vec<u8> {
    let tag = if to_tag { ";tag=n1" } else { "" };
    let mut out = format!(
        "{method} sip:node@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK-f{branch}\r\nMax-Forwards: 70\r\nFrom: <sip:carrier@192.0.2.50>;tag=c{branch}\r\nTo: <sip:node@192.0.2.1>{tag}\r\nCall-ID: in-{branch}\r\nCSeq: {cseq} {method}\r\n",
    )
    .into_bytes();
    out.extend_from_slice(extra);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// A response to a request we sent: copies its top Via, From, To, Call-ID and CSeq (like a
/// well-behaved peer), with `extra` raw header lines.
fn reply(sent: &[u8], code: u16, to_tag: Option<&str>, extra: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(sent);
    let mut out = format!("SIP/2.0 {code} Fuzz\r\n");
    if let Some(via) = text
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("via:"))
    {
        out.push_str(via);
        out.push_str("\r\n");
    }
    for line in text.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("to:") {
            out.push_str(line);
            if let Some(tag) = to_tag {
                out.push_str(";tag=");
                out.push_str(tag);
            }
            out.push_str("\r\n");
        } else if lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    let mut out = out.into_bytes();
    out.extend_from_slice(extra);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// How long after the last input every transaction must have ended: the longest guard
/// (INVITE server, 300 s) plus Timer H / J and D with margin.
const SETTLE: Duration = Duration::from_secs(3_600);
/// Timer firings allowed while settling: far more than any honest schedule needs.
const MAX_FIRINGS: usize = 100_000;

/// Ops (first byte modulo 12), each followed by its argument bytes (missing bytes read 0):
///
/// | op | arguments | what |
/// |---|---|---|
/// | 0 | peer, len u16, bytes | raw datagram (or stream chunk to a TCP peer's framer) |
/// | 1 | template, peer, pos u16, byte | RFC 4475/5118 message, one byte replaced at `pos` |
/// | 2 | template, peer, cut u16 | the message as a stream cut in two at `cut` |
/// | 3 | amount | the clock advances (quadratic, up to ~11 min) and due timers fire |
/// | 4 | method, peer, n | the TU sends a request (client transaction) |
/// | 5 | client, code u16, tag | a peer answers a client transaction's last request |
/// | 6 | server, code u16 | the TU answers a server transaction |
/// | 7 | client | the TU cancels a client transaction |
/// | 8 | id | the edge reports a transport error for a transaction |
/// | 9 | method, branch, peer, cseq, to-tag | a peer sends a well-formed request |
/// | 10 | peer, n | the TU sends an ACK for a 2xx |
/// | 11 | client, code u16, len, bytes | like 5, with raw extra header bytes |
pub fn transaction_layer(data: &[u8]) {
    let mut input = Input(data);
    let mut layer = TransactionLayer::new(LayerConfig::new("192.0.2.1:5060", "fz", 7));
    let t0 = Instant::now();
    let mut now = t0;
    let mut tu = Tu::default();
    let mut framers = Framers::default();
    let mut ops = 0usize;

    while !input.0.is_empty() {
        ops += 1;
        let actions = match input.byte() % 12 {
            0 => {
                let p = input.byte();
                let len = usize::from(input.u16());
                let bytes = input.bytes(len).to_vec();
                deliver(&mut layer, &mut framers, now, &bytes, peer(p))
            }
            1 => {
                let (name_ix, p) = (input.byte(), input.byte());
                let (pos, byte) = (usize::from(input.u16()), input.byte());
                let mut bytes = template(name_ix).to_vec();
                if let Some(b) = bytes.get_mut(pos) {
                    *b = byte;
                }
                layer.on_datagram(now, &bytes, peer(p))
            }
            2 => {
                let (name_ix, p) = (input.byte(), input.byte());
                let cut = usize::from(input.u16());
                let bytes = template(name_ix);
                let cut = cut.min(bytes.len());
                let p = Peer::tcp(peer(p).addr);
                let mut out = deliver(&mut layer, &mut framers, now, &bytes[..cut], p);
                out.extend(deliver(&mut layer, &mut framers, now, &bytes[cut..], p));
                out
            }
            3 => {
                let a = u64::from(input.byte());
                now += Duration::from_millis(a * a * 10);
                fire(&mut layer, now)
            }
            4 => {
                let method = TU_METHODS[usize::from(input.byte()) % TU_METHODS.len()];
                let (p, n) = (input.byte(), input.byte());
                match tu_request(method, n) {
                    Some(req) => layer
                        .send_request(now, req, peer(p))
                        .map(|(_, out)| out)
                        .unwrap_or_default(),
                    None => Vec::new(),
                }
            }
            op @ (5 | 11) => {
                let which = usize::from(input.byte());
                let code = input.u16();
                let tag = match input.byte() % 3 {
                    0 => None,
                    1 => Some("b1"),
                    _ => Some("b2"),
                };
                let extra = if op == 11 {
                    let len = usize::from(input.byte());
                    input.bytes(len).to_vec()
                } else {
                    Vec::new()
                };
                match pick(&tu.clients, which) {
                    Some((_, to, sent)) => {
                        // Mostly valid codes; raw values now and then (0, 99, 700, 65535).
                        let code = if code >= 60_000 {
                            code
                        } else {
                            100 + code % 600
                        };
                        let bytes = reply(sent, code, tag, &extra);
                        layer.on_datagram(now, &bytes, *to)
                    }
                    None => Vec::new(),
                }
            }
            6 => {
                let which = usize::from(input.byte());
                let code = 100 + input.u16() % 600;
                match pick(&tu.servers, which) {
                    Some((tx, request)) => {
                        let response = response_to(request, code, Some("srv1"));
                        layer.send_response(now, *tx, response).unwrap_or_default()
                    }
                    None => Vec::new(),
                }
            }
            7 => {
                let which = usize::from(input.byte());
                match pick(&tu.clients, which) {
                    Some((tx, _, _)) => layer.cancel(now, *tx).unwrap_or_default(),
                    None => Vec::new(),
                }
            }
            8 => {
                let which = usize::from(input.byte());
                match pick(&tu.ids, which) {
                    Some(tx) => layer.on_transport_error(*tx),
                    None => Vec::new(),
                }
            }
            9 => {
                let method = PEER_METHODS[usize::from(input.byte()) % PEER_METHODS.len()];
                let (branch, p) = (input.byte() % 4, input.byte());
                let (cseq, to_tag) = (input.byte() % 4 + 1, input.byte() % 2 == 1);
                let bytes = peer_request(method, branch, cseq, to_tag, b"");
                deliver(&mut layer, &mut framers, now, &bytes, peer(p))
            }
            _ => {
                let (p, n) = (input.byte(), input.byte());
                match tu_request("ACK", n) {
                    Some(ack) => layer.send_ack(ack, peer(p)).unwrap_or_default(),
                    None => Vec::new(),
                }
            }
        };
        tu.absorb(actions);
        // Each op starts at most two transactions (a request and a CANCEL it triggers).
        assert!(
            layer.transaction_count() <= 2 * ops,
            "{} transactions after {ops} ops",
            layer.transaction_count()
        );
    }

    // No hung transaction: with no more input, every transaction ends by its timers.
    let end = now + SETTLE;
    let mut firings = 0usize;
    while let Some(at) = layer.next_timer() {
        assert!(
            at <= end,
            "a timer is due {:?} after the last input",
            at - now
        );
        firings += 1;
        assert!(firings <= MAX_FIRINGS, "timers keep firing without end");
        tu.absorb(fire(&mut layer, at.max(now)));
    }
    assert_eq!(
        layer.transaction_count(),
        0,
        "transactions left with no timer to end them"
    );
}

/// One stream framer per TCP peer (the edge has one per connection).
#[derive(Default)]
struct Framers(Vec<(SocketAddr, StreamFramer)>);

/// A datagram to a UDP peer, or a chunk of a TCP peer's stream through its framer.
fn deliver(
    layer: &mut TransactionLayer,
    framers: &mut Framers,
    now: Instant,
    bytes: &[u8],
    to: Peer,
) -> Vec<Action> {
    if !to.transport.is_reliable() {
        return layer.on_datagram(now, bytes, to);
    }
    let slot = match framers.0.iter().position(|(addr, _)| *addr == to.addr) {
        Some(i) => i,
        None => {
            framers.0.push((to.addr, StreamFramer::default()));
            framers.0.len() - 1
        }
    };
    let (frames, error) = framers.0[slot].1.feed(bytes);
    let mut out = Vec::new();
    for frame in frames {
        out.extend(layer.on_frame(now, frame, to));
    }
    if error.is_some() {
        // The edge closes the connection; a new one starts with a fresh framer.
        framers.0[slot].1 = StreamFramer::default();
    }
    out
}

/// Fires the timers due at `now`; afterwards none may still be due.
fn fire(layer: &mut TransactionLayer, now: Instant) -> Vec<Action> {
    let out = layer.on_timer(now);
    assert!(
        layer.next_timer().is_none_or(|t| t > now),
        "a timer is still due after on_timer"
    );
    out
}

fn template(n: u8) -> &'static [u8] {
    TEMPLATES
        .get(usize::from(n) % TEMPLATES.len().max(1))
        .map_or(&[], |(_, b)| b)
}

fn pick<T>(list: &[T], n: usize) -> Option<&T> {
    if list.is_empty() {
        None
    } else {
        list.get(n % list.len())
    }
}
