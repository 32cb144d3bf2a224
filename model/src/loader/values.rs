//! Value formats shared by the checks: E.164 numbers, SIP URIs, host:port, windows.

/// Whether `s` is an E.164 number: `+`, a non-zero digit, 7 to 15 digits in all.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

pub fn is_sip_uri(s: &str) -> bool {
    let rest = s
        .strip_prefix("sip:")
        .or_else(|| s.strip_prefix("sips:"))
        .unwrap_or("");
    match rest.split_once('@') {
        Some((user, host)) => {
            !user.is_empty()
                && !host.is_empty()
                && !rest.contains(char::is_whitespace)
                && parse_host_port(host.split(';').next().unwrap_or(""), 5060).is_some()
        }
        None => false,
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
pub fn parse_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok().filter(|p| *p != 0)?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok().filter(|p| *p != 0)?),
        None => (s, default_port),
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| (host.to_owned(), port))
}

/// `30s`, `15m`, `1h`, `1d` → seconds.
pub fn parse_window(s: &str) -> Option<u64> {
    let unit = s.chars().last()?;
    let digits = s.strip_suffix(unit)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return None,
    };
    (n > 0).then(|| n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        assert!(is_e164("+380441234567"));
        assert!(!is_e164("380441234567"));
        assert!(!is_e164("+0441234567"));
        assert!(!is_e164("+38044"));
        assert!(!is_e164("+3804412345678901"));
        assert!(!is_e164("+38044 123"));
    }

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("sip.example:5070", 5060),
            Some(("sip.example".into(), 5070))
        );
        assert_eq!(
            parse_host_port("10.0.0.1", 5060),
            Some(("10.0.0.1".into(), 5060))
        );
        assert_eq!(
            parse_host_port("[::1]:5062", 5060),
            Some(("::1".into(), 5062))
        );
        assert_eq!(parse_host_port("a b:5060", 5060), None);
        assert_eq!(parse_host_port("host:0", 5060), None);
        assert_eq!(parse_host_port("host:99999", 5060), None);
    }

    #[test]
    fn sip_uris_and_windows() {
        assert!(is_sip_uri("sip:desk@10.0.0.5:5060"));
        assert!(is_sip_uri("sips:pbx@pbx.example;transport=tls"));
        assert!(!is_sip_uri("sip:10.0.0.5"));
        assert!(!is_sip_uri("tel:+380"));
        assert_eq!(parse_window("1h"), Some(3600));
        assert_eq!(parse_window("30m"), Some(1800));
        assert_eq!(parse_window("0h"), None);
        assert_eq!(parse_window("1w"), None);
    }
}
