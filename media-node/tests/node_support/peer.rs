//! A small SIP/RTP peer on real UDP sockets, for the checks SIPp cannot make: what RTP
//! arrives (payloads compared byte for byte), DTMF in SIP INFO, keys sent while audio plays.
//! It speaks just enough SIP for one call: a caller (INVITE, ACK, INFO, BYE) and an agent's
//! softphone (180, 200, ACK, BYE). Loopback does not lose datagrams, so it never retransmits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialtone_media_node::media::rtp::{self, TelephoneEvent};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A SIP message as text, with helpers to read it.
#[derive(Debug, Clone)]
pub struct Message(pub String);

impl Message {
    /// The first line.
    pub fn start(&self) -> &str {
        self.0.lines().next().unwrap_or_default()
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.start()
            .strip_prefix("SIP/2.0 ")?
            .get(..3)?
            .parse()
            .ok()
    }

    /// Whether this is a request with this method.
    pub fn is(&self, method: &str) -> bool {
        self.start().starts_with(&format!("{method} "))
    }

    /// Every value of a header (compact forms understood).
    pub fn headers(&self, name: &str) -> Vec<String> {
        let compact = match name.to_ascii_lowercase().as_str() {
            "via" => "v",
            "from" => "f",
            "to" => "t",
            "call-id" => "i",
            "contact" => "m",
            "content-type" => "c",
            _ => "",
        };
        self.0
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                let n = n.trim();
                (n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact))
                    .then(|| v.trim().to_owned())
            })
            .collect()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> String {
        self.headers(name).into_iter().next().unwrap_or_default()
    }

    /// The body.
    pub fn body(&self) -> &str {
        self.0.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    /// The RTP address its SDP names.
    pub fn sdp_addr(&self) -> Option<SocketAddr> {
        let body = self.body();
        let ip = body
            .lines()
            .find_map(|l| l.strip_prefix("c=IN IP4 "))?
            .trim()
            .to_owned();
        let port = body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))?
            .split_whitespace()
            .next()?
            .to_owned();
        format!("{ip}:{port}").parse().ok()
    }

    /// A response to this request, echoing what RFC 3261 §8.2.6 says to echo.
    pub fn response(&self, code: u16, reason: &str, to_tag: Option<&str>, extra: &str) -> String {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for via in self.headers("Via") {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        let to = self.header("To");
        let to = match to_tag {
            Some(tag) if !to.contains("tag=") => format!("{to};tag={tag}"),
            _ => to,
        };
        out.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}",
            self.header("From"),
            self.header("Call-ID"),
            self.header("CSeq")
        ));
        if !out.contains("Content-Length") {
            out.push_str("Content-Length: 0\r\n\r\n");
        }
        out
    }
}

/// An SDP offer or answer with one PCMU stream and telephone-event 101.
pub fn sdp(rtp: SocketAddr) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
        ip = rtp.ip(),
        port = rtp.port()
    )
}

/// RTP packets received: (payload type, payload).
pub type Received = Arc<Mutex<Vec<(u8, Vec<u8>)>>>;

/// One endpoint: its SIP socket and its RTP socket.
pub struct Peer {
    pub sip: Arc<UdpSocket>,
    pub rtp: Arc<UdpSocket>,
    pub received: Received,
    _collector: JoinHandle<()>,
}

impl Peer {
    /// Binds SIP and RTP on loopback and starts collecting RTP.
    pub async fn bind() -> Peer {
        let sip = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind sip"));
        let rtp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind rtp"));
        let received: Received = Arc::default();
        let (socket, sink) = (rtp.clone(), received.clone());
        let collector = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                if let Ok(p) = rtp::parse(&buf[..n]) {
                    let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                    sink.push((p.payload_type, p.payload.to_vec()));
                }
            }
        });
        Peer {
            sip,
            rtp,
            received,
            _collector: collector,
        }
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.sip.local_addr().expect("addr")
    }

    pub fn rtp_addr(&self) -> SocketAddr {
        self.rtp.local_addr().expect("addr")
    }

    /// The next SIP message, within `limit`.
    pub async fn recv(&self, limit: Duration) -> (Message, SocketAddr) {
        let mut buf = vec![0u8; 65535];
        let (n, from) = tokio::time::timeout(limit, self.sip.recv_from(&mut buf))
            .await
            .expect("a SIP message in time")
            .expect("recv");
        (
            Message(String::from_utf8_lossy(&buf[..n]).into_owned()),
            from,
        )
    }

    /// The next message matching `want`, answering anything else that needs it (a BYE gets
    /// 200; retransmitted 2xx and provisional responses are skipped).
    pub async fn expect(
        &self,
        limit: Duration,
        want: impl Fn(&Message) -> bool,
    ) -> (Message, SocketAddr) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (m, from) = self.recv(left).await;
            if want(&m) {
                return (m, from);
            }
        }
    }

    pub async fn send(&self, text: &str, to: SocketAddr) {
        self.sip.send_to(text.as_bytes(), to).await.expect("send");
    }

    /// Sends `payloads` as PCMU RTP to `to`, one every 20 ms, in a task.
    pub fn stream(&self, to: SocketAddr, payloads: Vec<Vec<u8>>) -> JoinHandle<()> {
        let socket = self.rtp.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let ssrc = fastrand::u32(..);
            let mut packet = Vec::new();
            for (i, payload) in payloads.iter().enumerate() {
                tick.tick().await;
                let seq = i as u16;
                rtp::build(&mut packet, i == 0, 0, seq, 160 * i as u32, ssrc, payload);
                let _ = socket.send_to(&packet, to).await;
            }
        })
    }

    /// Sends one key as RFC 4733 events (three packets, then the end three times).
    pub async fn key(&self, to: SocketAddr, key: char, timestamp: u32) {
        let event = TelephoneEvent::for_key(key).expect("a key");
        let mut packet = Vec::new();
        for (i, end) in [false, false, false, true, true, true]
            .into_iter()
            .enumerate()
        {
            let ev = TelephoneEvent {
                event,
                end,
                volume: 10,
                duration: 160 * (i as u16 + 1),
            };
            rtp::build(
                &mut packet,
                i == 0,
                101,
                1000 + i as u16,
                timestamp,
                77,
                &ev.to_bytes(),
            );
            let _ = self.rtp.send_to(&packet, to).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The RTP received so far.
    pub fn taken(&self) -> Vec<(u8, Vec<u8>)> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A caller's dialog with the node.
pub struct Call {
    pub peer: Peer,
    pub node: SocketAddr,
    pub call_id: String,
    from: String,
    to: String,
    uri: String,
    cseq: u32,
    /// Where the node wants our RTP.
    pub media: SocketAddr,
}

impl Call {
    /// Calls `number` through the node and waits for the 200 (ACKed at once).
    pub async fn dial(node: SocketAddr, number: &str) -> Call {
        let peer = Peer::bind().await;
        let me = peer.sip_addr();
        let call_id = format!("{:016x}@peer", fastrand::u64(..));
        let uri = format!("sip:{number}@{node}");
        let from = format!("<sip:+380501234567@{me}>;tag=peer{:08x}", fastrand::u32(..));
        let body = sdp(peer.rtp_addr());
        let invite = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{:x};rport\r\nFrom: {from}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:peer@{me}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            fastrand::u64(..),
            body.len()
        );
        peer.send(&invite, node).await;
        let (ok, _) = peer
            .expect(Duration::from_secs(10), |m| {
                m.status().is_some_and(|s| s >= 200)
            })
            .await;
        assert_eq!(ok.status(), Some(200), "the node answers: {}", ok.0);
        let media = ok.sdp_addr().expect("SDP in the 200");
        let mut call = Call {
            peer,
            node,
            call_id,
            from,
            to: ok.header("To"),
            uri,
            cseq: 1,
            media,
        };
        call.request("ACK", 1, "", "").await;
        call
    }

    async fn request(&mut self, method: &str, cseq: u32, content_type: &str, body: &str) {
        let me = self.peer.sip_addr();
        let ct = if content_type.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        let text = format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{:x};rport\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:peer@{me}>\r\nMax-Forwards: 70\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            self.uri,
            fastrand::u64(..),
            self.from,
            self.to,
            self.call_id,
            body.len()
        );
        self.peer.send(&text, self.node).await;
    }

    /// Sends an in-dialog request and waits for its final response.
    pub async fn ask(&mut self, method: &str, content_type: &str, body: &str) -> Message {
        self.cseq += 1;
        let cseq = self.cseq;
        self.request(method, cseq, content_type, body).await;
        let want = format!("{cseq} {method}");
        let (m, _) = self
            .peer
            .expect(Duration::from_secs(5), |m| {
                m.status().is_some_and(|s| s >= 200) && m.header("CSeq") == want
            })
            .await;
        m
    }

    /// Waits for the node's BYE and answers it.
    pub async fn await_bye(&self, limit: Duration) {
        let (bye, from) = self.peer.expect(limit, |m| m.is("BYE")).await;
        self.peer
            .send(&bye.response(200, "OK", None, ""), from)
            .await;
    }
}

/// An agent's softphone that answers one call.
pub struct Agent {
    pub peer: Peer,
}

/// The agent's side of an answered call.
pub struct Answered {
    /// Where the node wants the agent's RTP.
    pub media: SocketAddr,
}

impl Agent {
    pub async fn bind() -> Agent {
        Agent {
            peer: Peer::bind().await,
        }
    }

    /// Waits for the INVITE, rings, answers with PCMU, waits for the ACK.
    pub async fn answer(&self, limit: Duration) -> Answered {
        self.answer_after(limit, Duration::ZERO).await
    }

    /// Like [`Agent::answer`], ringing for `ring` before answering.
    pub async fn answer_after(&self, limit: Duration, ring: Duration) -> Answered {
        let (invite, from) = self.peer.expect(limit, |m| m.is("INVITE")).await;
        let media = invite.sdp_addr().expect("SDP offer");
        let me = self.peer.sip_addr();
        let contact = format!("Contact: <sip:agent@{me}>\r\n");
        self.peer
            .send(
                &invite.response(180, "Ringing", Some("agent1"), &contact),
                from,
            )
            .await;
        tokio::time::sleep(ring).await;
        let body = sdp(self.peer.rtp_addr());
        let extra = format!(
            "{contact}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.peer
            .send(&invite.response(200, "OK", Some("agent1"), &extra), from)
            .await;
        self.peer
            .expect(Duration::from_secs(5), |m| m.is("ACK"))
            .await;
        Answered { media }
    }

    /// Waits for the node's BYE and answers it.
    pub async fn await_bye(&self, limit: Duration) {
        let (bye, from) = self.peer.expect(limit, |m| m.is("BYE")).await;
        self.peer
            .send(&bye.response(200, "OK", None, ""), from)
            .await;
    }
}
