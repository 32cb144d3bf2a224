//! Key presses carried in SIP INFO bodies: the fallback for phones and carriers that do not
//! send RFC 4733 telephone events in RTP. Two bodies are common: `application/dtmf-relay`
//! (`Signal=5\r\nDuration=160`, Cisco's and most softphones') and `application/dtmf` (the key
//! alone).

/// The key an INFO request carries, if its content type is one of the DTMF ones and its body
/// names a key (`0`–`9`, `*`, `#`, `A`–`D`; the numeric codes 10 and 11 some phones send for
/// `*` and `#` are understood too).
pub fn from_info(content_type: &str, body: &[u8]) -> Option<char> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let value = match ct.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| value.trim())
        })?,
        "application/dtmf" => text.trim(),
        _ => return None,
    };
    key(value)
}

fn key(value: &str) -> Option<char> {
    match value {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = value.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        return None;
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_info_bodies() {
        assert_eq!(
            from_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            from_info("Application/DTMF-Relay", b"Duration=100\nsignal= #\n"),
            Some('#')
        );
        assert_eq!(from_info("application/dtmf", b"3\r\n"), Some('3'));
        assert_eq!(from_info("application/dtmf", b"10"), Some('*'));
        assert_eq!(from_info("application/dtmf", b"b"), Some('B'));
        assert_eq!(from_info("application/sdp", b"5"), None);
        assert_eq!(from_info("application/dtmf-relay", b"Signal=55"), None);
        assert_eq!(from_info("application/dtmf-relay", b"Duration=1"), None);
        assert_eq!(from_info("application/dtmf", &[0xff, 0xfe]), None);
    }
}
