//! Owner routing: who owns a client, from the API or from the CRM.
//!
//! The CRM is asked with an HTTP POST of the caller's number, signed like every Dialtone
//! webhook, and the answer is bounded by the step's `timeoutMs` at the caller (the service
//! wraps [`OwnerSource::lookup`] in a timeout), so a slow or failing CRM never delays a call.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a lookup gave no owner.
#[derive(Debug, thiserror::Error)]
pub enum OwnerLookupError {
    /// No answer within the step's timeout.
    #[error("the CRM did not answer within the timeout")]
    Timeout,
    /// The request failed (connection refused, TLS, …).
    #[error("the CRM request failed: {0}")]
    Request(String),
    /// The CRM answered with an error status.
    #[error("the CRM answered HTTP {0}")]
    Status(u16),
    /// The answer was not the expected JSON.
    #[error("the CRM's answer is not JSON with an \"agent\" field: {0}")]
    Body(String),
}

/// A boxed future, so the trait stays object-safe without a macro.
pub type LookupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<String>, OwnerLookupError>> + Send + 'a>>;

/// Asks someone who owns a client.
pub trait OwnerSource: Send + Sync + 'static {
    /// The owning agent's name for `client`, or `None` when the CRM knows none.
    fn lookup<'a>(
        &'a self,
        url: &'a str,
        hmac_key: Option<&'a str>,
        client: &'a str,
        call_id: &'a str,
    ) -> LookupFuture<'a>;
}

/// Header carrying the HMAC-SHA256 of the body, as `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-dialtone-signature";

/// `sha256=<hex of HMAC-SHA256(key, body)>`.
pub fn sign(key: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC takes keys of any length; this arm cannot happen but must not panic.
        Err(_) => String::new(),
    }
}

/// The CRM webhook over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpOwnerSource {
    client: reqwest::Client,
}

impl HttpOwnerSource {
    /// A client with a hard ceiling on every request, independent of the step's timeout, so a
    /// lookup can never outlive a call.
    pub fn new() -> Result<Self, OwnerLookupError> {
        // reqwest is built without a default crypto provider; use ring, as kube does.
        // Installing twice is harmless: the second call reports the first provider.
        let _ = rustls_crate::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map(|client| Self { client })
            .map_err(|e| OwnerLookupError::Request(e.to_string()))
    }
}

impl OwnerSource for HttpOwnerSource {
    fn lookup<'a>(
        &'a self,
        url: &'a str,
        hmac_key: Option<&'a str>,
        client: &'a str,
        call_id: &'a str,
    ) -> LookupFuture<'a> {
        Box::pin(async move {
            let body = serde_json::json!({
                "event": "owner.lookup",
                "client": client,
                "call_id": call_id,
            })
            .to_string();
            let mut req = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if let Some(key) = hmac_key {
                req = req.header(SIGNATURE_HEADER, sign(key, body.as_bytes()));
            }
            let resp = req
                .body(body)
                .send()
                .await
                .map_err(|e| OwnerLookupError::Request(e.to_string()))?;
            match resp.status().as_u16() {
                404 | 204 => return Ok(None),
                s if !(200..300).contains(&s) => return Err(OwnerLookupError::Status(s)),
                _ => {}
            }
            let json: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| OwnerLookupError::Body(e.to_string()))?;
            match json.get("agent") {
                Some(serde_json::Value::String(a)) if !a.is_empty() => Ok(Some(a.clone())),
                Some(serde_json::Value::Null) | None => Ok(None),
                Some(serde_json::Value::String(_)) => Ok(None),
                Some(other) => Err(OwnerLookupError::Body(format!("agent is {other}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
