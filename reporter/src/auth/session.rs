//! Browser sessions and their CSRF tokens.
//!
//! A login creates a server-side session (who, with which token, until when) under a random
//! id. The cookie carries `<id>.<expiry>.<signature>`, the signature an HMAC-SHA256 of id and
//! expiry under a key drawn when the process starts: a forged or altered cookie is refused
//! before any lookup, and a restart (new key) signs everybody out — sessions live in memory
//! only, which is what a restart means anyway.
//!
//! The CSRF token of a session is an HMAC of its id under the same key: nothing to store, the
//! same for every form of the session, and useless to anyone who cannot read the page.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use super::Principal;
use super::tokens::TokenDigest;

/// More live sessions than this and the oldest-expiring ones are dropped: a flood of logins
/// cannot grow memory without bound.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub principal: Principal,
    /// The token it signed in with: the session ends when that token is removed.
    pub token: TokenDigest,
    /// Unix seconds.
    pub expires: u64,
}

/// The live sessions and the process's signing key.
pub(crate) struct Sessions {
    key: [u8; 32],
    counter: AtomicU64,
    map: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sessions {
    pub fn new() -> Self {
        Sessions {
            key: random_key(),
            counter: AtomicU64::new(0),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a usable map; signing everybody in again
        // would be worse.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length: `new_from_slice` cannot fail for 32 bytes.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        for p in parts {
            mac.update(p);
            mac.update(b"\0");
        }
        mac
    }

    /// Starts a session; returns the cookie value.
    pub fn create(&self, principal: Principal, token: TokenDigest, ttl: Duration) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let now = unix_now();
        // Unpredictable without the key; unique through the counter.
        let id_mac = self.mac(&[b"sid", &n.to_be_bytes(), &now.to_be_bytes()]);
        let id = hex::encode(&id_mac.finalize().into_bytes()[..16]);
        let expires = now.saturating_add(ttl.as_secs());
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                principal,
                token,
                expires,
            },
        );
        format!("{id}.{expires}.{}", self.sign(&id, expires))
    }

    fn sign(&self, id: &str, expires: u64) -> String {
        hex::encode(
            self.mac(&[b"session", id.as_bytes(), &expires.to_be_bytes()])
                .finalize()
                .into_bytes(),
        )
    }

    /// The session a cookie value names, when its signature holds and it has not expired;
    /// with its id.
    pub fn get(&self, cookie: &str) -> Option<(String, Session)> {
        let mut parts = cookie.split('.');
        let (Some(id), Some(expires), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expires: u64 = expires.parse().ok()?;
        let sig = hex::decode(sig).ok()?;
        self.mac(&[b"session", id.as_bytes(), &expires.to_be_bytes()])
            .verify_slice(&sig)
            .ok()?;
        if expires <= unix_now() {
            return None;
        }
        let session = self.lock().get(id).cloned()?;
        Some((id.to_owned(), session))
    }

    /// Ends the session `id`.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The CSRF token of session `id`.
    pub fn csrf(&self, id: &str) -> String {
        hex::encode(self.mac(&[b"csrf", id.as_bytes()]).finalize().into_bytes())
    }

    /// Whether `presented` is the CSRF token of session `id` (compared in constant time).
    pub fn check_csrf(&self, id: &str, presented: &str) -> bool {
        hex::decode(presented.trim())
            .ok()
            .is_some_and(|p| self.mac(&[b"csrf", id.as_bytes()]).verify_slice(&p).is_ok())
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    // Documented by the hmac crate: HMAC takes keys of any length.
    panic!("HMAC-SHA256 refused a 32-byte key")
}

/// 32 random bytes for the signing key: the kernel's generator, or — where there is none —
/// std's per-process random hash seeds mixed with the clock and the process id.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .is_ok()
    {
        return key;
    }
    use sha2::Digest as _;
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = Sha256::new();
    for i in 0..8u64 {
        let mut s = std::collections::hash_map::RandomState::new().build_hasher();
        s.write_u64(i);
        h.update(s.finish().to_le_bytes());
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn cookies_verify_and_tampering_fails() {
        let s = Sessions::new();
        let p = Principal {
            name: "marta".into(),
            role: Role::Supervisor,
        };
        let cookie = s.create(p.clone(), [0; 32], Duration::from_secs(60));
        let (id, got) = s.get(&cookie).expect("valid");
        assert_eq!(got.principal, p);
        let csrf = s.csrf(&id);
        assert!(s.check_csrf(&id, &csrf));
        assert!(!s.check_csrf(&id, "00"));
        assert!(!s.check_csrf("other", &csrf));
        // A longer expiry with the old signature.
        let mut parts: Vec<&str> = cookie.split('.').collect();
        let later = (unix_now() + 999_999).to_string();
        parts[1] = &later;
        assert!(s.get(&parts.join(".")).is_none());
        // Another process's key.
        assert!(Sessions::new().get(&cookie).is_none());
        s.remove(&id);
        assert!(s.get(&cookie).is_none());
    }
}
