//! Transaction matching keys (RFC 3261 §17.1.3 and §17.2.3).

use crate::sip::message::RequestMeta;
use crate::sip::message::grammar::MAGIC_COOKIE;

/// Matches a request to a server transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ServerKey {
    /// RFC 3261: branch (with magic cookie) + sent-by + method (ACK counts as INVITE).
    Branch {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543 fallback for requests without the magic cookie: Request-URI, From tag,
    /// Call-ID, CSeq number, top Via and method. The To tag is left out so that the ACK
    /// of a non-2xx response (which carries our tag) finds its INVITE.
    Legacy {
        uri: String,
        from_tag: Option<String>,
        call_id: String,
        cseq: u32,
        via: String,
        method: String,
    },
}

impl ServerKey {
    /// The key of `meta` as a request of method `method` (pass "INVITE" to find the INVITE
    /// that an ACK or a CANCEL refers to).
    pub(super) fn of(meta: &RequestMeta, method: &str) -> Self {
        let via = &meta.top_via;
        match via.branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) => ServerKey::Branch {
                branch: b.to_string(),
                sent_by: via.sent_by(),
                method: method.to_string(),
            },
            branch => ServerKey::Legacy {
                uri: meta.uri.clone(),
                from_tag: meta.from_tag.clone(),
                call_id: meta.call_id.clone(),
                cseq: meta.cseq,
                via: format!(
                    "{}/{}/{}",
                    via.transport,
                    via.sent_by(),
                    branch.unwrap_or("")
                ),
                method: method.to_string(),
            },
        }
    }

    /// The key of the transaction `meta` belongs to (ACK maps to INVITE).
    pub(super) fn for_request(meta: &RequestMeta) -> Self {
        let method = if meta.method == "ACK" {
            "INVITE"
        } else {
            meta.method.as_str()
        };
        ServerKey::of(meta, method)
    }
}

/// Matches a response to a client transaction: our branch and the CSeq method (a CANCEL
/// shares the branch of its INVITE).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ClientKey {
    pub(super) branch: String,
    pub(super) method: String,
}

/// Identifies the ACK of a 2xx, which has a branch of its own (RFC 3261 §17.1.1.3): the
/// dialog's Call-ID and From tag with the INVITE's CSeq number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct AckKey {
    pub(super) call_id: String,
    pub(super) cseq: u32,
    pub(super) from_tag: Option<String>,
}

impl AckKey {
    pub(super) fn of(meta: &RequestMeta) -> Self {
        AckKey {
            call_id: meta.call_id.clone(),
            cseq: meta.cseq,
            from_tag: meta.from_tag.clone(),
        }
    }
}
