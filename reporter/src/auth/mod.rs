//! Access control for the dashboard and the client-facing gRPC API.
//!
//! Everything a supervisor or an integrator reaches needs a credential: a bearer token from
//! the [`TokenStore`] (standalone: `supervisor.token` in the data folder; a cluster: the
//! `tokens` key of a Secret the CallCenter references). Each token carries a [`Role`]:
//! `viewer` reads, `supervisor` also handles groups and orders callbacks.
//!
//! - Browsers sign in once at `/login` with a token and then carry a session cookie (see
//!   [`session`]); every state change also needs the session's CSRF token.
//! - API clients send `Authorization: Bearer <token>` (HTTP) or the `authorization` metadata
//!   (gRPC: [`Auth::check_grpc`], [`GrpcGuard`]).
//!
//! Wrong credentials get one answer whatever was wrong (unknown token, altered token, no
//! token), so an answer never tells a guesser which part was right; and repeated failures from
//! one address are slowed down ([`throttle`]).

mod grpc;
mod session;
mod throttle;
mod tokens;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

pub use grpc::{GrpcGuard, required_role};
pub use throttle::{FORGET_AFTER, FREE_FAILURES, MAX_BLOCK};
pub use tokens::{
    MIN_TOKEN_LEN, SUPERVISOR_NAME, SUPERVISOR_TOKEN_FILE, TOKENS_SECRET_KEY, TokenError,
    TokenStore,
};

/// What a credential allows. Ordered: a supervisor may do everything a viewer may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads every page and report.
    Viewer,
    /// Also handles unprocessed groups and orders callbacks.
    Supervisor,
}

impl Role {
    /// The code used in token files and messages.
    pub fn code(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Supervisor => "supervisor",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "supervisor" => Ok(Role::Supervisor),
            other => Err(format!("unknown role {other:?} (viewer or supervisor)")),
        }
    }
}

/// Who a credential belongs to: the name recorded as `by` when they handle a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Settings of the login and the cookie.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Mark the session cookie `Secure` (and name it `__Host-…`): set it when the dashboard is
    /// reached over https (an Ingress with TLS); leave it off for plain http on loopback,
    /// where browsers would otherwise drop the cookie.
    pub secure_cookie: bool,
    /// How long a session lasts after login.
    pub session_ttl: Duration,
    /// Count failures against the address in the last `X-Forwarded-For` hop instead of the
    /// TCP peer: set it only behind a proxy that sets that header, or a client could pick its
    /// own address.
    pub trust_forwarded_for: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secure_cookie: false,
            session_ttl: Duration::from_secs(12 * 3600),
            trust_forwarded_for: false,
        }
    }
}

/// Why a credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Missing, unknown or wrong: one answer for all.
    Unauthenticated,
    /// Too many failures from this address; try again after this long.
    Throttled(Duration),
}

/// A signed-in browser session, as found from its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Who.
    pub principal: Principal,
    /// The session's id (to end it).
    pub id: String,
    /// The token every form of this session must carry.
    pub csrf: String,
}

/// The access-control state of one process: tokens, sessions, failure counts. Cheap to clone
/// (shared).
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    tokens: RwLock<Arc<TokenStore>>,
    sessions: session::Sessions,
    throttle: throttle::Throttle,
    config: AuthConfig,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens().len())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The address failures are counted against when the peer is unknown (a server started
/// without connection info): everybody shares it, which errs on the side of slowing guessers.
pub const UNKNOWN_PEER: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl Auth {
    /// Access control with `tokens`.
    pub fn new(tokens: TokenStore, config: AuthConfig) -> Self {
        Auth {
            inner: Arc::new(Inner {
                tokens: RwLock::new(Arc::new(tokens)),
                sessions: session::Sessions::new(),
                throttle: throttle::Throttle::default(),
                config,
            }),
        }
    }

    /// Replaces the tokens (the Secret changed). Sessions opened with a token that is gone —
    /// or whose role changed — end at their next request.
    pub fn set_tokens(&self, tokens: TokenStore) {
        *self
            .inner
            .tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(tokens);
    }

    fn tokens(&self) -> Arc<TokenStore> {
        self.inner
            .tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Checks a presented token (`None`: none presented) from `peer`, counting failures.
    ///
    /// # Errors
    ///
    /// [`Denied::Throttled`] while `peer` is blocked (the token is not even looked at);
    /// [`Denied::Unauthenticated`] otherwise when the token is missing or unknown.
    pub fn authenticate(&self, peer: IpAddr, token: Option<&str>) -> Result<Principal, Denied> {
        self.verify(peer, token).map(|(p, _)| p)
    }

    fn verify(
        &self,
        peer: IpAddr,
        token: Option<&str>,
    ) -> Result<(Principal, tokens::TokenDigest), Denied> {
        self.inner.throttle.check(peer).map_err(Denied::Throttled)?;
        match token.and_then(|t| self.tokens().lookup(t.trim())) {
            Some(found) => {
                self.inner.throttle.success(peer);
                Ok(found)
            }
            None => {
                self.inner.throttle.failure(peer);
                Err(Denied::Unauthenticated)
            }
        }
    }

    /// Signs in with `token`: the session cookie's value on success.
    ///
    /// # Errors
    ///
    /// As [`Auth::authenticate`].
    pub fn login(&self, peer: IpAddr, token: &str) -> Result<(Principal, String), Denied> {
        let (principal, digest) = self.verify(peer, Some(token))?;
        let cookie =
            self.inner
                .sessions
                .create(principal.clone(), digest, self.inner.config.session_ttl);
        Ok((principal, cookie))
    }

    /// The session a cookie value names, if it is valid, unexpired and its token still exists.
    pub fn session(&self, cookie: &str) -> Option<SessionInfo> {
        let (id, s) = self.inner.sessions.get(cookie)?;
        if !self.tokens().holds(&s.token, &s.principal) {
            self.inner.sessions.remove(&id);
            return None;
        }
        Some(SessionInfo {
            principal: s.principal,
            csrf: self.inner.sessions.csrf(&id),
            id,
        })
    }

    /// Whether `presented` is the CSRF token of session `id` (constant-time).
    pub fn check_csrf(&self, id: &str, presented: &str) -> bool {
        self.inner.sessions.check_csrf(id, presented)
    }

    /// Ends session `id`.
    pub fn logout(&self, id: &str) {
        self.inner.sessions.remove(id);
    }

    /// The session cookie's name: `__Host-` prefixed when secure, which makes browsers refuse
    /// it unless it is `Secure`, host-only and for `/`.
    pub fn cookie_name(&self) -> &'static str {
        if self.inner.config.secure_cookie {
            "__Host-dialtone_session"
        } else {
            "dialtone_session"
        }
    }

    /// The `Set-Cookie` value that stores `value`: always `HttpOnly` (scripts cannot read it)
    /// and `SameSite=Strict` (other sites cannot make the browser send it), `Secure` when
    /// configured.
    pub fn set_cookie(&self, value: &str) -> String {
        let secure = if self.inner.config.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            self.cookie_name(),
            self.inner.config.session_ttl.as_secs()
        )
    }

    /// The `Set-Cookie` value that deletes the session cookie.
    pub fn clear_cookie(&self) -> String {
        let secure = if self.inner.config.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}",
            self.cookie_name()
        )
    }

    /// The address failures are counted against, given the TCP peer and the request's
    /// `X-Forwarded-For` header (used only when [`AuthConfig::trust_forwarded_for`]).
    pub fn client_address(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> IpAddr {
        let forwarded = forwarded_for
            .filter(|_| self.inner.config.trust_forwarded_for)
            .and_then(|v| v.rsplit(',').next())
            .and_then(|hop| hop.trim().parse().ok());
        forwarded.or(peer).unwrap_or(UNKNOWN_PEER)
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}
