//! SDP offer/answer (RFC 4566, RFC 3264) for G.711 audio with telephone events: what the
//! B2BUA needs to relay or transcode between two legs, nothing more.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// An audio codec Dialtone speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// The static payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    fn from_payload(pt: u8, rtpmap: Option<&(String, u32)>) -> Option<Codec> {
        match rtpmap {
            Some((name, 8000)) if name.eq_ignore_ascii_case("PCMU") => Some(Codec::Pcmu),
            Some((name, 8000)) if name.eq_ignore_ascii_case("PCMA") => Some(Codec::Pcma),
            Some(_) => None,
            None => match pt {
                0 => Some(Codec::Pcmu),
                8 => Some(Codec::Pcma),
                _ => None,
            },
        }
    }
}

/// Media direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both ways.
    #[default]
    SendRecv,
    /// We only send (the far end put us on hold).
    SendOnly,
    /// We only receive.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The answerer's direction for an offered one (RFC 3264 §6.1).
    pub fn answer_to(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// `audio`, `video`, …
    pub kind: String,
    /// Port; 0 means rejected.
    pub port: u16,
    /// `RTP/AVP`, …
    pub proto: String,
    /// Payload types in preference order.
    pub formats: Vec<u8>,
    /// `a=rtpmap` by payload type: (encoding, clock rate).
    pub rtpmap: BTreeMap<u8, (String, u32)>,
    /// Section-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Direction attribute.
    pub direction: Direction,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Media sections.
    pub media: Vec<MediaSection>,
}

/// Why an SDP body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Malformed line.
    #[error("malformed SDP line {0}: {1}")]
    Malformed(usize, String),
    /// No audio with an address.
    #[error("the SDP has no usable audio stream")]
    NoAudio,
    /// No codec in common: the answer is 488 Not Acceptable Here.
    #[error("no common codec: Dialtone speaks PCMU and PCMA")]
    NoCommonCodec,
}

/// What offer/answer settled for one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec both sides use.
    pub codec: Codec,
    /// Payload type for telephone-event, when both support it.
    pub telephone_event: Option<u8>,
    /// Where the far end wants media (before latching on its real source).
    pub remote: Option<SocketAddr>,
    /// Our direction toward that far end.
    pub direction: Direction,
}

fn parse_addr(v: &str) -> Option<IpAddr> {
    // c=IN IP4 198.51.100.1 (multicast TTL suffixes are ignored).
    let mut it = v.split_whitespace();
    let (_net, _kind, addr) = (it.next()?, it.next()?, it.next()?);
    addr.split('/').next()?.parse().ok()
}

/// Parses an SDP body.
pub fn parse(text: &str) -> Result<Session, SdpError> {
    let mut session = Session {
        connection: None,
        media: Vec::new(),
    };
    let mut session_direction = Direction::SendRecv;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(SdpError::Malformed(i + 1, line.to_owned()));
        };
        let current = session.media.last_mut();
        match (key, current) {
            ("c", None) => session.connection = parse_addr(value),
            ("c", Some(m)) => m.connection = parse_addr(value),
            ("m", _) => {
                let mut it = value.split_whitespace();
                let kind = it.next().unwrap_or_default().to_owned();
                let port = it
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| SdpError::Malformed(i + 1, line.to_owned()))?;
                let proto = it.next().unwrap_or_default().to_owned();
                let formats = it.filter_map(|f| f.parse().ok()).collect();
                session.media.push(MediaSection {
                    kind,
                    port,
                    proto,
                    formats,
                    rtpmap: BTreeMap::new(),
                    connection: None,
                    direction: session_direction,
                });
            }
            ("a", current) => {
                let dir = match value {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                match (dir, current) {
                    (Some(d), Some(m)) => m.direction = d,
                    (Some(d), None) => session_direction = d,
                    (None, Some(m)) => {
                        if let Some(map) = value.strip_prefix("rtpmap:") {
                            let mut it = map.splitn(2, ' ');
                            let pt = it.next().and_then(|p| p.parse().ok());
                            let enc = it.next().map(|e| {
                                let mut p = e.split('/');
                                let name = p.next().unwrap_or_default().to_owned();
                                let rate = p.next().and_then(|r| r.parse().ok()).unwrap_or(0);
                                (name, rate)
                            });
                            if let (Some(pt), Some(enc)) = (pt, enc) {
                                m.rtpmap.insert(pt, enc);
                            }
                        }
                    }
                    (None, None) => {}
                }
            }
            _ => {}
        }
    }
    Ok(session)
}

fn audio(session: &Session) -> Option<&MediaSection> {
    session
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0 && m.proto.starts_with("RTP/AVP"))
}

fn telephone_event(m: &MediaSection) -> Option<u8> {
    m.formats.iter().copied().find(|pt| {
        m.rtpmap
            .get(pt)
            .is_some_and(|(n, r)| n.eq_ignore_ascii_case("telephone-event") && *r == 8000)
    })
}

/// Reads what an answer settled (we offered `ours`).
pub fn negotiated(session: &Session, ours: &[Codec]) -> Result<Negotiated, SdpError> {
    let m = audio(session).ok_or(SdpError::NoAudio)?;
    let codec = m
        .formats
        .iter()
        .find_map(|pt| Codec::from_payload(*pt, m.rtpmap.get(pt)).filter(|c| ours.contains(c)))
        .ok_or(SdpError::NoCommonCodec)?;
    let addr = m.connection.or(session.connection);
    Ok(Negotiated {
        codec,
        telephone_event: telephone_event(m),
        remote: addr
            .filter(|a| !a.is_unspecified())
            .map(|a| SocketAddr::new(a, m.port)),
        direction: m.direction.answer_to(),
    })
}

/// Writes our SDP: one audio stream at `local` with `codecs` in preference order and
/// telephone-event at `te_pt`.
pub fn write(
    local: SocketAddr,
    session_id: u64,
    version: u64,
    codecs: &[Codec],
    te_pt: Option<u8>,
    direction: Direction,
) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut fmts: Vec<String> = codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    if let Some(te) = te_pt {
        fmts.push(te.to_string());
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "v=0\r\no=dialtone {session_id} {version} IN {family} {ip}\r\ns=dialtone\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
        local.port(),
        fmts.join(" ")
    );
    for c in codecs {
        let _ = write!(s, "a=rtpmap:{} {}/8000\r\n", c.payload_type(), c.name());
    }
    if let Some(te) = te_pt {
        let _ = write!(
            s,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    let _ = write!(s, "a=ptime:20\r\na={}\r\n", direction.attr());
    s
}

/// Answers an offer: the first offered codec we speak, telephone-event if offered.
pub fn answer(
    offer: &Session,
    local: SocketAddr,
    ours: &[Codec],
    session_id: u64,
) -> Result<(String, Negotiated), SdpError> {
    let n = negotiated(offer, ours)?;
    // In an answer the direction attribute is ours toward them.
    let body = write(
        local,
        session_id,
        1,
        &[n.codec],
        n.telephone_event,
        n.direction,
    );
    Ok((body, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

    #[test]
    fn answers_with_the_first_common_codec() {
        let offer = parse(SIPP_OFFER).expect("valid");
        let local: SocketAddr = "127.0.0.1:20000".parse().expect("addr");
        let (body, n) = answer(&offer, local, &[Codec::Pcmu, Codec::Pcma], 7).expect("common");
        assert_eq!(n.codec, Codec::Pcma, "the offerer's preference wins");
        assert_eq!(n.telephone_event, Some(101));
        assert_eq!(n.remote, Some("127.0.0.1:6000".parse().expect("addr")));
        assert!(body.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{body}");
        let back = negotiated(&parse(&body).expect("ours parses"), &[Codec::Pcma]).expect("ok");
        assert_eq!(back.codec, Codec::Pcma);
    }

    #[test]
    fn no_common_codec_and_hold() {
        let g729 = SIPP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 18");
        let offer = parse(&g729).expect("parses");
        let local: SocketAddr = "127.0.0.1:20000".parse().expect("addr");
        assert_eq!(
            answer(&offer, local, &[Codec::Pcmu], 1).map(|x| x.1),
            Err(SdpError::NoCommonCodec)
        );
        let hold = format!("{SIPP_OFFER}a=sendonly\r\n");
        let n = negotiated(&parse(&hold).expect("parses"), &[Codec::Pcmu]).expect("ok");
        assert_eq!(n.direction, Direction::RecvOnly);
        let old_hold = SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let n = negotiated(&parse(&old_hold).expect("parses"), &[Codec::Pcmu]).expect("ok");
        assert_eq!(n.remote, None);
        assert!(parse("garbage").is_err());
        assert_eq!(parse("v=0\r\n").map(|s| audio(&s).is_none()), Ok(true));
    }
}
