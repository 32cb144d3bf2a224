//! RTP packets (RFC 3550) and telephone events (RFC 4733): parsed and built without copying
//! more than the payload, and never trusting a length field.

/// A parsed RTP packet, borrowing its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Marker bit (start of a talk spurt or of a telephone event).
    pub marker: bool,
    /// Payload type (0 PCMU, 8 PCMA, dynamic for telephone-event).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp (8 kHz clock for G.711).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

/// Why a datagram is not an RTP packet we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the fixed header or its declared CSRCs/extension/padding.
    #[error("truncated RTP packet")]
    Truncated,
    /// Not version 2.
    #[error("not RTP version 2")]
    Version,
}

/// Whether a datagram on an RTP port is RTCP (payload types 200–204 in the second byte,
/// RFC 5761's rule for telling them apart on one port).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (200..=204).contains(&datagram[1])
}

/// Parses an RTP packet.
pub fn parse(d: &[u8]) -> Result<Packet<'_>, RtpError> {
    if d.len() < 12 {
        return Err(RtpError::Truncated);
    }
    if d[0] >> 6 != 2 {
        return Err(RtpError::Version);
    }
    let padding = d[0] & 0x20 != 0;
    let extension = d[0] & 0x10 != 0;
    let csrcs = usize::from(d[0] & 0x0F);
    let mut start = 12 + 4 * csrcs;
    if d.len() < start {
        return Err(RtpError::Truncated);
    }
    if extension {
        if d.len() < start + 4 {
            return Err(RtpError::Truncated);
        }
        let words = usize::from(u16::from_be_bytes([d[start + 2], d[start + 3]]));
        start += 4 + 4 * words;
        if d.len() < start {
            return Err(RtpError::Truncated);
        }
    }
    let mut end = d.len();
    if padding {
        let pad = usize::from(d[d.len() - 1]);
        if pad == 0 || end - start < pad {
            return Err(RtpError::Truncated);
        }
        end -= pad;
    }
    Ok(Packet {
        marker: d[1] & 0x80 != 0,
        payload_type: d[1] & 0x7F,
        sequence: u16::from_be_bytes([d[2], d[3]]),
        timestamp: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
        ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
        payload: &d[start..end],
    })
}

/// Writes an RTP packet (no CSRCs, no extension) into `out`, replacing its contents.
pub fn build(
    out: &mut Vec<u8>,
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.clear();
    out.push(0x80);
    out.push((u8::from(marker) << 7) | (payload_type & 0x7F));
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An RFC 4733 telephone event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0–9 digits, 10 `*`, 11 `#`, 12–15 A–D, 16 flash.
    pub event: u8,
    /// End of the event (sent three times).
    pub end: bool,
    /// Volume (−dBm0).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the 4-byte payload.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        if payload.len() < 4 {
            return None;
        }
        Some(TelephoneEvent {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    /// The 4-byte payload.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    /// The key the event stands for (`0`–`9`, `*`, `#`, `A`–`D`).
    pub fn key(self) -> Option<char> {
        match self.event {
            0..=9 => char::from_digit(u32::from(self.event), 10),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + (self.event - 12))),
            _ => None,
        }
    }

    /// The event for a key.
    pub fn for_key(key: char) -> Option<u8> {
        match key {
            '0'..='9' => key.to_digit(10).and_then(|d| u8::try_from(d).ok()),
            '*' => Some(10),
            '#' => Some(11),
            'A'..='D' => Some(12 + (key as u8 - b'A')),
            _ => None,
        }
    }
}

/// Turns a stream of telephone-event packets into key presses: one press per event, however
/// many times its packets (and its end packet, sent thrice) arrive.
///
/// An event is identified by its RTP timestamp (RFC 4733 §2.5.1.2) *and* its event code: a
/// sender that reuses one timestamp for consecutive keys (replayed captures do, e.g. SIPp's
/// `dtmf_2833_*.pcap`, which all carry the same timestamp) still yields each key once.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// (RTP timestamp, event code) of the event being received.
    current: Option<(u32, u8)>,
}

impl DtmfReceiver {
    /// Feeds one telephone-event packet; returns a key when a new event is recognised.
    pub fn on_packet(&mut self, timestamp: u32, ev: TelephoneEvent) -> Option<char> {
        let id = (timestamp, ev.event);
        if self.current == Some(id) {
            return None;
        }
        self.current = Some(id);
        ev.key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse() {
        let mut buf = Vec::new();
        build(&mut buf, true, 0, 65535, 160, 0xdead_beef, &[0xFF; 160]);
        let p = parse(&buf).expect("valid");
        assert!(p.marker);
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (0, 65535, 160, 0xdead_beef)
        );
        assert_eq!(p.payload.len(), 160);
        assert!(!is_rtcp(&buf));
    }

    #[test]
    fn hostile_lengths_are_errors() {
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::Version));
        // 15 CSRCs declared, none present.
        assert_eq!(
            parse(&[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Truncated)
        );
        // Padding longer than the payload.
        let mut p = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 200];
        assert_eq!(parse(&p), Err(RtpError::Truncated));
        p[13] = 2;
        assert_eq!(parse(&p).map(|x| x.payload.len()), Ok(0));
        // An extension whose length runs past the end.
        let ext = [
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0xFF, 0xFF,
        ];
        assert_eq!(parse(&ext), Err(RtpError::Truncated));
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 73 + 11) as u8).collect();
            let _ = parse(&junk);
        }
    }

    #[test]
    fn telephone_events_become_one_key_each() {
        let press = |end, duration| TelephoneEvent {
            event: 2,
            end,
            volume: 10,
            duration,
        };
        assert_eq!(
            TelephoneEvent::parse(&press(true, 800).to_bytes()),
            Some(press(true, 800))
        );
        let mut rx = DtmfReceiver::default();
        let keys: Vec<char> = [
            (1000, press(false, 160)),
            (1000, press(false, 320)),
            (1000, press(true, 800)),
            (1000, press(true, 800)),
            (1000, press(true, 800)),
            (
                5000,
                TelephoneEvent {
                    event: 11,
                    end: false,
                    volume: 10,
                    duration: 160,
                },
            ),
            (
                9000,
                TelephoneEvent {
                    event: 2,
                    end: true,
                    volume: 10,
                    duration: 800,
                },
            ),
        ]
        .into_iter()
        .filter_map(|(ts, ev)| rx.on_packet(ts, ev))
        .collect();
        assert_eq!(keys, vec!['2', '#', '2']);
        // Replayed captures: one timestamp, different keys (1, 0, 3 dials extension 103).
        let mut rx = DtmfReceiver::default();
        let keys: String = [1u8, 1, 0, 0, 3, 3]
            .into_iter()
            .filter_map(|event| {
                let ev = TelephoneEvent {
                    event,
                    end: false,
                    volume: 10,
                    duration: 160,
                };
                rx.on_packet(13280, ev)
            })
            .collect();
        assert_eq!(keys, "103");
        assert_eq!(TelephoneEvent::for_key('#'), Some(11));
        assert_eq!(TelephoneEvent::for_key('x'), None);
    }
}
