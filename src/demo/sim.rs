//! Simulated peers for `dialtone demo`, speaking real SIP over UDP on loopback: a carrier that
//! places calls and softphones that register with digest authentication and answer, ring
//! forever or refuse. Deliberately small — text templates and a line scanner, enough for the
//! demo's flows against Dialtone's own media node (which does the hard parts).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

/// What a simulated agent does when called.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// Rings for this long, then answers.
    After(Duration),
    /// Rings until the caller gives up (or the node cancels).
    Never,
    /// Refuses at once with 486 Busy Here.
    Busy,
}

/// A SIP message as text: the first line and header lookup.
pub(super) struct Msg<'a>(pub(super) &'a str);

impl<'a> Msg<'a> {
    pub(super) fn first(&self) -> &'a str {
        self.0.lines().next().unwrap_or_default()
    }

    pub(super) fn status(&self) -> Option<u16> {
        let f = self.first();
        f.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    pub(super) fn method(&self) -> Option<&'a str> {
        let f = self.first();
        (!f.starts_with("SIP/")).then(|| f.split(' ').next().unwrap_or_default())
    }

    pub(super) fn headers(&self, name: &str) -> Vec<&'a str> {
        self.0
            .lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
            .collect()
    }

    pub(super) fn header(&self, name: &str) -> Option<&'a str> {
        self.headers(name).into_iter().next()
    }

    #[cfg(test)]
    fn tag(&self, header: &str) -> Option<&'a str> {
        let v = self.header(header)?;
        v.split(';').find_map(|p| p.trim().strip_prefix("tag="))
    }
}

pub(super) fn branch() -> String {
    format!("z9hG4bK{:016x}", fastrand_u64())
}

pub(super) fn fastrand_u64() -> u64 {
    // Good enough for branches and tags in a demo; uniqueness, not secrecy.
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let x = N.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    (x ^ t).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

pub(super) fn sdp(local: SocketAddr) -> String {
    format!(
        "v=0\r\no=sim 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        ip = local.ip(),
        port = local.port()
    )
}

fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest `Authorization` for a challenge (MD5, `qop=auth` when offered).
fn authorization(challenge: &str, user: &str, password: &str, uri: &str) -> Option<String> {
    let param = |name: &str| {
        challenge.split(',').find_map(|p| {
            let (k, v) = p.trim().trim_start_matches("Digest ").split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
        })
    };
    let realm = param("realm")?;
    let nonce = param("nonce")?;
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let qop = param("qop").filter(|q| q.split(',').any(|x| x.trim() == "auth"));
    let cnonce = format!("{:08x}", fastrand_u64() as u32);
    Some(match qop {
        Some(_) => {
            let response = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
            format!(
                "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\""
            )
        }
        None => {
            let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
            format!(
                "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5"
            )
        }
    })
}

pub(super) async fn recv(sock: &UdpSocket, wait: Duration) -> Option<(String, SocketAddr)> {
    let mut buf = vec![0u8; 8192];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from)),
        _ => None,
    }
}

/// A softphone: registers, then answers calls as its [`Answer`] says.
pub struct Softphone {
    user: String,
    sock: Arc<UdpSocket>,
    node: SocketAddr,
    answer: Arc<Mutex<Answer>>,
}

impl Softphone {
    /// Binds a loopback socket and registers `user` with `password` at `node`.
    pub async fn register(
        user: &str,
        password: &str,
        node: SocketAddr,
        answer: Answer,
    ) -> std::io::Result<Self> {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        let local = sock.local_addr()?;
        let uri = format!("sip:{}", node);
        let call_id = format!("reg-{user}-{:x}", fastrand_u64());
        let mut auth: Option<String> = None;
        for cseq in 1..=3 {
            let auth_line = auth
                .as_ref()
                .map(|a| format!("Authorization: {a}\r\n"))
                .unwrap_or_default();
            let msg = format!(
                "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{host}>;tag=r{cseq}{tag:x}\r\nTo: <sip:{user}@{host}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\nExpires: 3600\r\n{auth_line}User-Agent: dialtone-demo\r\nContent-Length: 0\r\n\r\n",
                b = branch(),
                host = node.ip(),
                tag = fastrand_u64() as u32,
            );
            sock.send_to(msg.as_bytes(), node).await?;
            let Some((resp, _)) = recv(&sock, Duration::from_secs(5)).await else {
                return Err(std::io::Error::other("no answer to REGISTER"));
            };
            let m = Msg(&resp);
            match m.status() {
                Some(200) => {
                    return Ok(Softphone {
                        user: user.to_owned(),
                        sock: Arc::new(sock),
                        node,
                        answer: Arc::new(Mutex::new(answer)),
                    });
                }
                Some(401) | Some(407) => {
                    let challenges = m.headers("WWW-Authenticate");
                    let md5 = challenges
                        .iter()
                        .find(|c| c.contains("MD5") || !c.contains("algorithm"))
                        .or(challenges.first())
                        .copied()
                        .unwrap_or_default();
                    auth = authorization(md5, user, password, &uri);
                }
                other => {
                    return Err(std::io::Error::other(format!(
                        "REGISTER {user} answered {other:?}"
                    )));
                }
            }
        }
        Err(std::io::Error::other(format!(
            "REGISTER {user}: authentication failed"
        )))
    }

    /// Changes how the phone answers.
    pub async fn set_answer(&self, answer: Answer) {
        *self.answer.lock().await = answer;
    }

    /// Answers calls until the task is dropped.
    pub async fn serve(self) {
        let local = match self.sock.local_addr() {
            Ok(a) => a,
            Err(_) => return,
        };
        let media = UdpSocket::bind("127.0.0.1:0").await.ok();
        let media_addr = media
            .as_ref()
            .and_then(|m| m.local_addr().ok())
            .unwrap_or(local);
        // Call-ID → our To tag, for CANCEL and BYE.
        let calls: Arc<Mutex<HashMap<String, (String, bool)>>> = Arc::default();
        loop {
            let Some((text, from)) = recv(&self.sock, Duration::from_secs(3600)).await else {
                continue;
            };
            let m = Msg(&text);
            let Some(method) = m.method() else { continue };
            let call_id = m.header("Call-ID").unwrap_or_default().to_owned();
            match method {
                "INVITE" => {
                    let tag = format!("a{:x}", fastrand_u64() as u32);
                    calls
                        .lock()
                        .await
                        .insert(call_id.clone(), (tag.clone(), false));
                    let answer = *self.answer.lock().await;
                    let reply = response_for(&text, &tag, local, media_addr);
                    let sock = self.sock.clone();
                    let calls = calls.clone();
                    tokio::spawn(async move {
                        match answer {
                            Answer::Busy => {
                                let _ = sock
                                    .send_to(reply(486, "Busy Here", false).as_bytes(), from)
                                    .await;
                            }
                            Answer::Never => {
                                let _ = sock
                                    .send_to(reply(180, "Ringing", false).as_bytes(), from)
                                    .await;
                            }
                            Answer::After(d) => {
                                let _ = sock
                                    .send_to(reply(180, "Ringing", false).as_bytes(), from)
                                    .await;
                                tokio::time::sleep(d).await;
                                // Cancelled meanwhile (a colleague answered, the caller left)?
                                let still = calls.lock().await.get(&call_id).is_some_and(|c| !c.1);
                                if still {
                                    let _ =
                                        sock.send_to(reply(200, "OK", true).as_bytes(), from).await;
                                }
                            }
                        }
                    });
                }
                "CANCEL" => {
                    if let Some(entry) = calls.lock().await.get_mut(&call_id) {
                        entry.1 = true;
                        let tag = entry.0.clone();
                        let ok = plain_response(&text, 200, "OK", None);
                        let _ = self.sock.send_to(ok.as_bytes(), from).await;
                        let terminated = plain_response(
                            &text
                                .replacen("CANCEL", "INVITE", 1)
                                .replace("CANCEL\r\n", "INVITE\r\n"),
                            487,
                            "Request Terminated",
                            Some(&tag),
                        );
                        let _ = self.sock.send_to(terminated.as_bytes(), from).await;
                    }
                }
                "BYE" => {
                    calls.lock().await.remove(&call_id);
                    let ok = plain_response(&text, 200, "OK", None);
                    let _ = self.sock.send_to(ok.as_bytes(), from).await;
                }
                "OPTIONS" => {
                    let ok = plain_response(&text, 200, "OK", None);
                    let _ = self.sock.send_to(ok.as_bytes(), from).await;
                }
                _ => {}
            }
            let _ = (&self.user, self.node);
        }
    }
}

/// A response to a request, copying Via, From, To (adding `tag`), Call-ID and CSeq.
pub(super) fn plain_response(req: &str, code: u16, reason: &str, tag: Option<&str>) -> String {
    let m = Msg(req);
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for v in m.headers("Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    let to = m.header("To").unwrap_or_default();
    let to = match tag {
        Some(t) if !to.contains("tag=") => format!("{to};tag={t}"),
        _ => to.to_owned(),
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        m.header("From").unwrap_or_default(),
        m.header("Call-ID").unwrap_or_default(),
        m.header("CSeq").unwrap_or_default(),
    ));
    out
}

pub(super) fn response_for(
    req: &str,
    tag: &str,
    local: SocketAddr,
    media: SocketAddr,
) -> impl Fn(u16, &str, bool) -> String + Send + 'static {
    let req = req.to_owned();
    let tag = tag.to_owned();
    move |code, reason, with_sdp| {
        let base = plain_response(&req, code, reason, Some(&tag));
        let head = base
            .trim_end_matches("Content-Length: 0\r\n\r\n")
            .to_owned();
        if with_sdp {
            let body = sdp(media);
            format!(
                "{head}Contact: <sip:agent@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            format!("{head}Contact: <sip:agent@{local}>\r\nContent-Length: 0\r\n\r\n")
        }
    }
}

/// How a simulated caller behaves.
#[derive(Debug, Clone)]
pub struct Caller {
    /// How long the caller waits for the call to be connected before hanging up.
    pub patience: Duration,
    /// How long the caller stays once connected (Dialtone answers to play prompts and menus,
    /// then bridges an agent), unless Dialtone hangs up first.
    pub stay: Duration,
    /// Keys pressed (RFC 4733 telephone events), each at an offset from the connection.
    pub keys: Vec<(Duration, char)>,
}

impl Caller {
    /// Stays `stay` once connected, pressing nothing.
    pub fn stays(stay: Duration) -> Self {
        Caller {
            patience: Duration::from_secs(60),
            stay,
            keys: Vec::new(),
        }
    }

    /// Gives up ringing after `patience`.
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Presses `keys` (one every 300 ms) `after` the connection.
    pub fn presses(mut self, after: Duration, keys: &str) -> Self {
        for (i, k) in keys.chars().enumerate() {
            self.keys
                .push((after + Duration::from_millis(300 * i as u64), k));
        }
        self
    }
}

/// What happened to a simulated call, for the demo's narration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Connected; the caller hung up after staying.
    CallerHungUp,
    /// Connected; Dialtone ended the call.
    DialtoneHungUp,
    /// Refused with this SIP status.
    Refused(u16),
    /// The caller hung up before the call was connected.
    GaveUp,
}

/// The far end's RTP address from an SDP body.
fn rtp_target(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .trim();
    let port = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?;
    format!("{ip}:{port}").parse().ok()
}

/// Sends one key as RFC 4733 telephone events (payload type 101): three updates, then the
/// end packet three times, 20 ms apart, as phones do.
async fn send_key(media: &UdpSocket, to: SocketAddr, key: char, seq: &mut u16, ts: &mut u32) {
    let event = match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        _ => return,
    };
    let packet = |marker: bool, end: bool, duration: u16, seq: u16, ts: u32| {
        let mut p = vec![0x80, if marker { 0x80 | 101 } else { 101 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x5eed_d00du32.to_be_bytes());
        p.extend_from_slice(&[event, (u8::from(end) << 7) | 10]);
        p.extend_from_slice(&duration.to_be_bytes());
        p
    };
    for i in 0..6u16 {
        let end = i >= 3;
        let duration = 160 * (i.min(3) + 1);
        let p = packet(i == 0, end, duration, *seq, *ts);
        let _ = media.send_to(&p, to).await;
        *seq = seq.wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    *ts = ts.wrapping_add(800);
}

/// The carrier side: places one call from `caller` to `number` at `node`.
pub async fn call(
    node: SocketAddr,
    caller: &str,
    number: &str,
    how: Caller,
) -> std::io::Result<Outcome> {
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let local = sock.local_addr()?;
    let media = UdpSocket::bind("127.0.0.1:0").await?;
    let body = sdp(media.local_addr()?);
    let call_id = format!("demo-{:x}", fastrand_u64());
    let from_tag = format!("c{:x}", fastrand_u64() as u32);
    let b = branch();
    let ruri = format!("sip:{number}@{node}");
    let ip = local.ip();
    let invite = format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{caller}@{ip}>;tag={from_tag}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:carrier@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
    );
    sock.send_to(invite.as_bytes(), node).await?;
    let ack = |to: &str, via_branch: &str| {
        format!(
            "ACK {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={via_branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{caller}@{ip}>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let deadline = tokio::time::Instant::now() + how.patience;
    // Ringing (or early media) until a final answer or the caller's patience ends.
    let (to, answer_sdp) = loop {
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        let got = if wait.is_zero() {
            None
        } else {
            recv(&sock, wait).await
        };
        let Some((text, _)) = got else {
            let cancel = format!(
                "CANCEL {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{caller}@{ip}>;tag={from_tag}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
            );
            sock.send_to(cancel.as_bytes(), node).await?;
            for _ in 0..4 {
                let Some((text, _)) = recv(&sock, Duration::from_secs(3)).await else {
                    break;
                };
                let m = Msg(&text);
                if m.status().is_some_and(|s| s >= 300)
                    && m.header("CSeq").is_some_and(|c| c.contains("INVITE"))
                {
                    let to = m.header("To").unwrap_or_default().to_owned();
                    sock.send_to(ack(&to, &b).as_bytes(), node).await?;
                    break;
                }
            }
            return Ok(Outcome::GaveUp);
        };
        let m = Msg(&text);
        let Some(status) = m.status() else { continue };
        if status < 200 {
            continue;
        }
        let to = m.header("To").unwrap_or_default().to_owned();
        if status >= 300 {
            sock.send_to(ack(&to, &b).as_bytes(), node).await?;
            return Ok(Outcome::Refused(status));
        }
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        break (to, body);
    };
    sock.send_to(ack(&to, &branch()).as_bytes(), node).await?;
    // Connected: press the keys at their times, stay, hang up — or Dialtone hangs up first.
    let connected = tokio::time::Instant::now();
    let target = rtp_target(&answer_sdp);
    let (mut seq, mut ts) = (1u16, 16_000u32);
    let mut keys = how.keys.clone();
    keys.sort_by_key(|k| k.0);
    let mut keys = keys.into_iter().peekable();
    let end = connected + how.stay;
    loop {
        let next_key = keys.peek().map(|k| connected + k.0);
        let until = next_key.map_or(end, |k| k.min(end));
        let wait = until.saturating_duration_since(tokio::time::Instant::now());
        match recv(&sock, wait.max(Duration::from_millis(1))).await {
            Some((text, _)) => {
                let m = Msg(&text);
                if m.method() == Some("BYE") {
                    sock.send_to(plain_response(&text, 200, "OK", None).as_bytes(), node)
                        .await?;
                    return Ok(Outcome::DialtoneHungUp);
                }
                if matches!(m.method(), Some("INVITE" | "UPDATE" | "OPTIONS" | "INFO")) {
                    // Refreshes and probes: accept without changing anything.
                    sock.send_to(plain_response(&text, 200, "OK", None).as_bytes(), node)
                        .await?;
                }
            }
            None => {
                let now = tokio::time::Instant::now();
                if now >= end {
                    break;
                }
                if next_key.is_some_and(|k| now >= k)
                    && let Some((_, key)) = keys.next()
                    && let Some(to) = target
                {
                    send_key(&media, to, key, &mut seq, &mut ts).await;
                }
            }
        }
    }
    let bye = format!(
        "BYE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{caller}@{ip}>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        branch(),
    );
    sock.send_to(bye.as_bytes(), node).await?;
    let _ = recv(&sock, Duration::from_secs(2)).await;
    Ok(Outcome::CallerHungUp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_rfc_2617() {
        // RFC 2617 §3.5's example, method and URI adapted: the HA1 part is the same function.
        assert_eq!(
            md5_hex("Mufasa:testrealm@host.com:Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
        let auth = authorization(
            "Digest realm=\"dialtone\", nonce=\"abc\", algorithm=MD5, qop=\"auth\"",
            "anna",
            "secret",
            "sip:127.0.0.1:5060",
        )
        .expect("a challenge");
        assert!(auth.contains("username=\"anna\"") && auth.contains("qop=auth"));
    }

    #[test]
    fn responses_copy_the_dialog_headers() {
        let req = "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let r = plain_response(req, 486, "Busy Here", Some("t9"));
        assert!(r.starts_with("SIP/2.0 486 Busy Here\r\n"));
        assert!(r.contains("To: <sip:a@b>;tag=t9\r\n"));
        assert_eq!(Msg(&r).status(), Some(486));
        assert_eq!(Msg(req).tag("From"), Some("1"));
    }
}
