//! Answering a carrier's digest challenge (RFC 3261 §22.2, RFC 2617, RFC 8760): a `401` with
//! `WWW-Authenticate` or a `407` with `Proxy-Authenticate` to an INVITE or REGISTER we sent is
//! answered once with `Authorization` / `Proxy-Authorization` computed from the Carrier's
//! Secret.

use crate::registrar::digest::{self, Algorithm, DigestInput, Qop};

/// A challenge we cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a Digest challenge, or a parameter is missing.
    #[error("the carrier's challenge is not a usable Digest challenge: {0}")]
    Malformed(String),
    /// An algorithm we do not implement.
    #[error(
        "the carrier asks for digest algorithm {0}, which Dialtone does not implement (MD5 and SHA-256 are)"
    )]
    Algorithm(String),
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `algorithm` (MD5 when absent).
    pub algorithm: Algorithm,
    /// The challenge offers `qop=auth`.
    pub qop_auth: bool,
    /// `opaque`, echoed back.
    pub opaque: Option<String>,
}

impl Challenge {
    /// Parses a challenge header's value.
    ///
    /// # Errors
    ///
    /// [`AuthError`] when it is not a Digest challenge we can answer.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let value = value.trim_start();
        let (scheme, rest) = value
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or_else(|| AuthError::Malformed(value.to_owned()))?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(AuthError::Malformed(format!("scheme {scheme}")));
        }
        let params = digest::params(rest).ok_or_else(|| AuthError::Malformed(value.to_owned()))?;
        let (mut realm, mut nonce, mut algorithm, mut qop_auth, mut opaque) =
            (None, None, Algorithm::Md5, false, None);
        for (name, v) in params {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "algorithm" => {
                    algorithm = Algorithm::parse(&v).ok_or(AuthError::Algorithm(v))?;
                }
                "qop" => qop_auth = v.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")),
                "opaque" => opaque = Some(v),
                _ => {}
            }
        }
        Ok(Challenge {
            realm: realm.ok_or_else(|| AuthError::Malformed("no realm".into()))?,
            nonce: nonce.ok_or_else(|| AuthError::Malformed("no nonce".into()))?,
            algorithm,
            qop_auth,
            opaque,
        })
    }

    /// The credentials header value answering this challenge for `method` on `uri`.
    /// `cnonce` is only used with `qop=auth` (the nonce count is always 1: every challenge is
    /// answered once).
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> String {
        let qop = self.qop_auth.then_some(Qop {
            nc: "00000001",
            cnonce,
            qop: "auth",
        });
        let response = digest::response(&DigestInput {
            algorithm: self.algorithm,
            username,
            realm: &self.realm,
            password,
            method,
            uri,
            nonce: &self.nonce,
            qop,
        });
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            quote(username),
            quote(&self.realm),
            quote(&self.nonce),
            self.algorithm.token()
        );
        if qop.is_some() {
            out.push_str(&format!(
                ", qop=auth, nc=00000001, cnonce=\"{}\"",
                quote(cnonce)
            ));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{}\"", quote(o)));
        }
        out
    }
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests {
    use super::*;
    use crate::registrar::digest::Credentials;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5: Mufasa / Circle Of Life.
        let c = Challenge::parse(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert!(c.qop_auth);
        let v = c.answer(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
        );
        assert!(
            v.contains(r#"response="6629fae49393a05397450978507c4ef1""#),
            "{v}"
        );
        assert!(v.contains(r#"opaque="5ccc069c403ebaf9f0171e9517f40e41""#));
    }

    #[test]
    fn our_registrar_accepts_our_answer() {
        // The answer parses as credentials and verifies like the registrar verifies.
        let c =
            Challenge::parse(r#"Digest realm="dialtone", nonce="abc", algorithm=SHA-256"#).unwrap();
        let v = c.answer(
            "anna",
            "s3cret",
            "INVITE",
            "sip:+380501234567@10.0.0.1",
            "x",
        );
        let creds = Credentials::parse(&v).unwrap();
        let expected = digest::response(&DigestInput {
            algorithm: Algorithm::Sha256,
            username: "anna",
            realm: "dialtone",
            password: "s3cret",
            method: "INVITE",
            uri: "sip:+380501234567@10.0.0.1",
            nonce: "abc",
            qop: None,
        });
        assert_eq!(creds.response, expected);
        assert_eq!(creds.algorithm(), Algorithm::Sha256);
    }

    #[test]
    fn unusable_challenges_are_named() {
        assert!(matches!(
            Challenge::parse("Basic realm=\"x\""),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=AKAv1-MD5"),
            Err(AuthError::Algorithm(_))
        ));
    }
}
