//! The node's own view of the registrations it accepted.
//!
//! Registrations live in the router (a call on any node reaches an agent registered on
//! any other); this table is what the node itself needs: the Call-ID / CSeq ordering of
//! RFC 3261 §10.3 step 7, the 200 OK's Contact list when the router is unreachable, the
//! registered agents' addresses that the flood guard must never ban, and the whole set for
//! `Router.SyncContacts` after the router restarts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The agent (Agent resource name).
    pub agent: String,
    /// The canonical address-of-record, `sip:<username>@<realm>`.
    pub aor: String,
    /// The Contact URI.
    pub uri: String,
    /// When it lapses.
    pub expires_at: SystemTime,
    /// Where the REGISTER came from.
    pub source: SocketAddr,
    /// `+sip.instance`, if given.
    pub instance_id: Option<String>,
    /// The REGISTER's User-Agent.
    pub user_agent: Option<String>,
    /// Call-ID of the REGISTER that last updated it.
    pub call_id: String,
    /// Its CSeq.
    pub cseq: u32,
    /// When it was last updated (the oldest goes first when an AOR has too many).
    pub updated_at: SystemTime,
}

impl Binding {
    /// Seconds left at `now` (0 once lapsed).
    pub fn expires_in(&self, now: SystemTime) -> u32 {
        self.expires_at
            .duration_since(now)
            .map_or(0, |d| d.as_secs().min(u64::from(u32::MAX)) as u32)
    }
}

/// Contact URIs compare equal per RFC 3261 §19.1.4 closely enough for bindings: scheme and
/// host are case-insensitive; softphones resend their Contact byte for byte, so the whole
/// URI compared case-insensitively is the practical rule.
pub(super) fn same_uri(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Bindings by AOR.
#[derive(Debug, Default)]
pub(super) struct Bindings {
    pub by_aor: HashMap<String, Vec<Binding>>,
}

impl Bindings {
    /// Unexpired bindings of one AOR.
    pub fn current(&self, aor: &str, now: SystemTime) -> Vec<Binding> {
        self.by_aor
            .get(aor)
            .map(|list| {
                list.iter()
                    .filter(|b| b.expires_at > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every unexpired binding.
    pub fn all(&self, now: SystemTime) -> Vec<Binding> {
        self.by_aor
            .values()
            .flatten()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect()
    }

    /// The AOR's list, created empty with room for one binding: most agents register one
    /// softphone, and a vector's first push would otherwise make room for four (a binding is
    /// ~200 bytes, so 10,000 agents wasted 6 MB).
    pub fn list_mut(&mut self, aor: String) -> &mut Vec<Binding> {
        self.by_aor
            .entry(aor)
            .or_insert_with(|| Vec::with_capacity(1))
    }

    /// Removes lapsed bindings and returns them.
    pub fn expire(&mut self, now: SystemTime) -> Vec<Binding> {
        let mut gone = Vec::new();
        // In place: this runs on every timer tick over every AOR, and rebuilding each list
        // reallocated 10,000 vectors a tick (with room for four bindings each).
        for list in self.by_aor.values_mut() {
            list.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    gone.push(b.clone());
                }
                live
            });
        }
        self.by_aor.retain(|_, list| !list.is_empty());
        gone
    }
}
