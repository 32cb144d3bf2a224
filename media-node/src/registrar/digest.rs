//! HTTP Digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 8760).
//!
//! - [`Algorithm`]: MD5 (what every softphone speaks) and SHA-256 (RFC 8760), with their
//!   `-sess` variants.
//! - [`Credentials::parse`]: the `Authorization` header's value.
//! - [`response`]: the `response` a client must send, computed the same way on both sides.
//! - [`NonceKey`]: stateless, self-validating nonces. A nonce is
//!   `hex(timestamp) hex(salt) hex(HMAC-SHA-256(secret, timestamp ‖ salt ‖ realm))`: any
//!   media node sharing the secret can verify a nonce another node issued (a softphone's
//!   REGISTER refresh may land on a different node after a scale-out), and the node keeps
//!   no per-challenge state that a flood of unauthenticated REGISTERs could grow.

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm (the `algorithm` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617; the default when the parameter is absent).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 8760 / RFC 7616).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// The token on the wire.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Reads the token (case-insensitive, as RFC 2617 tokens are).
    pub fn parse(token: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.token().eq_ignore_ascii_case(token))
    }

    /// The same algorithm without `-sess`: what a challenge offers.
    pub fn base(self) -> Algorithm {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Algorithm::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Algorithm::Sha256,
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex_hash(self, data: &str) -> String {
        match self.base() {
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
            _ => hex::encode(Md5::digest(data.as_bytes())),
        }
    }
}

/// The parameters of an `Authorization: Digest …` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri` (the digest-uri).
    pub uri: String,
    /// `response`.
    pub response: String,
    /// `algorithm`; MD5 when absent.
    pub algorithm: Option<Algorithm>,
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `qop`.
    pub qop: Option<String>,
    /// `nc` (8 hex digits).
    pub nc: Option<String>,
    /// `opaque`.
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses the value of an `Authorization` header. `None` when it is not a Digest
    /// credential, lacks a mandatory parameter, or names an unknown algorithm.
    pub fn parse(value: &str) -> Option<Credentials> {
        let value = value.trim_start();
        let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut c = Credentials::default();
        let (mut username, mut realm, mut nonce, mut uri, mut response) =
            (None, None, None, None, None);
        for (name, value) in params(rest)? {
            match name.to_ascii_lowercase().as_str() {
                "username" => username = Some(value),
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "uri" => uri = Some(value),
                "response" => response = Some(value),
                "algorithm" => c.algorithm = Some(Algorithm::parse(&value)?),
                "cnonce" => c.cnonce = Some(value),
                "qop" => c.qop = Some(value),
                "nc" => c.nc = Some(value),
                "opaque" => c.opaque = Some(value),
                _ => {}
            }
        }
        c.username = username?;
        c.realm = realm?;
        c.nonce = nonce?;
        c.uri = uri?;
        c.response = response?;
        Some(c)
    }

    /// The algorithm in effect (MD5 when the parameter is absent).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm.unwrap_or(Algorithm::Md5)
    }
}

/// Splits `name=value, name="quoted \"value\"", …`. `None` on broken syntax.
pub(crate) fn params(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if s.is_empty() {
            return Some(out);
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim().to_owned();
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace() || c == ',') {
            return None;
        }
        s = s[eq + 1..].trim_start();
        let value;
        if let Some(rest) = s.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = rest.char_indices();
            let mut end = None;
            while let Some((i, ch)) = chars.next() {
                match ch {
                    '\\' => v.push(chars.next()?.1),
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => v.push(ch),
                }
            }
            s = &rest[end? + 1..];
            value = v;
        } else {
            let end = s.find(',').unwrap_or(s.len());
            value = s[..end].trim().to_owned();
            s = &s[end..];
        }
        out.push((name, value));
    }
}

/// What a `qop=auth` response adds.
#[derive(Debug, Clone, Copy)]
pub struct Qop<'a> {
    /// `nc`.
    pub nc: &'a str,
    /// `cnonce`.
    pub cnonce: &'a str,
    /// `qop` (only `auth` is offered).
    pub qop: &'a str,
}

/// The input of a digest computation.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// `username`.
    pub username: &'a str,
    /// `realm`.
    pub realm: &'a str,
    /// The shared secret.
    pub password: &'a str,
    /// Request method (`REGISTER`).
    pub method: &'a str,
    /// digest-uri.
    pub uri: &'a str,
    /// `nonce`.
    pub nonce: &'a str,
    /// Present with `qop`; `None` for the RFC 2069 form.
    pub qop: Option<Qop<'a>>,
}

/// The `response` value for `input` (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1).
pub fn response(input: &DigestInput<'_>) -> String {
    let h = |s: String| input.algorithm.hex_hash(&s);
    let mut ha1 = h(format!(
        "{}:{}:{}",
        input.username, input.realm, input.password
    ));
    if input.algorithm.is_sess() {
        let cnonce = input.qop.map_or("", |q| q.cnonce);
        ha1 = h(format!("{ha1}:{}:{cnonce}", input.nonce));
    }
    let ha2 = h(format!("{}:{}", input.method, input.uri));
    match input.qop {
        Some(q) => h(format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            input.nonce, q.nc, q.cnonce, q.qop
        )),
        None => h(format!("{ha1}:{}:{ha2}", input.nonce)),
    }
}

/// Compares two strings in time that depends on their lengths only, so that a wrong
/// response does not reveal how much of it was right.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The state of a nonce presented by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Issued by a node with our secret for this realm, within its lifetime.
    Fresh,
    /// Ours, but older than the lifetime (or from the future beyond the clock skew).
    Stale,
    /// Not ours (forged, another realm, a rotated secret, garbage).
    Invalid,
}

/// Issues and verifies nonces with the nodes' shared secret.
#[derive(Clone)]
pub struct NonceKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

/// Hex digits of the timestamp, the salt and the MAC.
const TS_HEX: usize = 16;
const SALT_HEX: usize = 16;
const MAC_HEX: usize = 32;

/// Clock difference between nodes tolerated for a nonce "from the future".
const CLOCK_SKEW_SECS: u64 = 30;

impl NonceKey {
    /// A key from the shared secret.
    pub fn new(secret: &[u8]) -> NonceKey {
        NonceKey {
            secret: secret.to_vec(),
        }
    }

    fn mac(&self, ts: u64, salt: u64, realm: &str) -> String {
        // HMAC takes keys of any length; the error branch cannot happen, and yields a MAC
        // no nonce matches rather than a panic.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return String::new();
        };
        mac.update(&ts.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        mac.update(realm.as_bytes());
        let full = hex::encode(mac.finalize().into_bytes());
        full[..MAC_HEX].to_owned()
    }

    /// A fresh nonce for `realm` issued at `now_secs` (Unix seconds).
    pub fn issue(&self, realm: &str, now_secs: u64) -> String {
        let salt = fastrand::u64(..);
        format!(
            "{now_secs:016x}{salt:016x}{}",
            self.mac(now_secs, salt, realm)
        )
    }

    /// Verifies a nonce and tells its age class.
    pub fn check(&self, realm: &str, nonce: &str, now_secs: u64, ttl_secs: u64) -> NonceState {
        if nonce.len() != TS_HEX + SALT_HEX + MAC_HEX || !nonce.is_ascii() {
            return NonceState::Invalid;
        }
        let (ts, rest) = nonce.split_at(TS_HEX);
        let (salt, mac) = rest.split_at(SALT_HEX);
        let (Ok(ts), Ok(salt)) = (u64::from_str_radix(ts, 16), u64::from_str_radix(salt, 16))
        else {
            return NonceState::Invalid;
        };
        if !constant_time_eq(&self.mac(ts, salt, realm), mac) {
            return NonceState::Invalid;
        }
        let too_old = now_secs.saturating_sub(ts) > ttl_secs;
        let from_future = ts > now_secs.saturating_add(CLOCK_SKEW_SECS);
        if too_old || from_future {
            NonceState::Stale
        } else {
            NonceState::Fresh
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5 (HTTP, so the method is GET).
        let input = DigestInput {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: Some(Qop {
                nc: "00000001",
                cnonce: "0a4f113b",
                qop: "auth",
            }),
        };
        assert_eq!(response(&input), "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn parses_quoted_and_token_params() {
        let c = Credentials::parse(
            r#"Digest username="bob", realm="atlanta.example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", opaque="", uri="sips:ss2.biloxi.example.com", response="dfe56131d1958046689d83306477ecc", algorithm=sha-256,qop=auth,nc=00000001,cnonce="a\"b""#,
        )
        .expect("parses");
        assert_eq!(c.username, "bob");
        assert_eq!(c.algorithm(), Algorithm::Sha256);
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.cnonce.as_deref(), Some("a\"b"));
        assert!(Credentials::parse("Basic Ym9iOnNlY3JldA==").is_none());
        assert!(Credentials::parse(r#"Digest username="bob", realm="x"#).is_none());
        assert!(Credentials::parse("Digest username=\"bob\", algorithm=SHA-512-256").is_none());
    }

    #[test]
    fn nonces_verify_expire_and_resist_forgery() {
        let key = NonceKey::new(b"node secret");
        let nonce = key.issue("dialtone", 1_000);
        assert_eq!(key.check("dialtone", &nonce, 1_100, 300), NonceState::Fresh);
        assert_eq!(key.check("dialtone", &nonce, 1_301, 300), NonceState::Stale);
        assert_eq!(key.check("other", &nonce, 1_100, 300), NonceState::Invalid);
        assert_eq!(
            NonceKey::new(b"another secret").check("dialtone", &nonce, 1_100, 300),
            NonceState::Invalid
        );
        let mut forged = nonce.clone().into_bytes();
        forged[15] = if forged[15] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert_eq!(
            key.check("dialtone", &forged, 1_100, 300),
            NonceState::Invalid
        );
        assert_eq!(
            key.check("dialtone", "short", 1_100, 300),
            NonceState::Invalid
        );
        assert_ne!(key.issue("dialtone", 1_000), nonce, "salted");
    }
}
