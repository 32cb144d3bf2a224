//! HMAC-SHA256 signatures of webhook bodies.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// The header carrying the signature: `sha256=<hex of HMAC-SHA256(key, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Dialtone-Signature";
/// The header carrying the event name (`call.missed`).
pub const EVENT_HEADER: &str = "X-Dialtone-Event";
/// The header carrying the event's id (the body's `id`): the same on every retry, so a
/// receiver dedupes by it.
pub const DELIVERY_HEADER: &str = "X-Dialtone-Delivery";
/// The header carrying the attempt's number, from 1.
pub const ATTEMPT_HEADER: &str = "X-Dialtone-Attempt";

/// `sha256=<hex>` of the body under `key`.
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

/// Checks a `sha256=<hex>` signature of `body` under `key` in constant time — what a receiver
/// does (the tests' fake CRM uses it).
pub fn verify(key: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(digest) = hex::decode(hex_digest) else {
        return false;
    };
    match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            mac.verify_slice(&digest).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let sig = sign("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify("Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify("Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify("other", b"what do ya want for nothing?", &sig));
        assert!(!verify("Jefe", b"x", "md5=00"));
    }
}
