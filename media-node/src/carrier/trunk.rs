//! A registration trunk (`register: true` on a Carrier): the node registers with the carrier
//! as its credentials' user (RFC 3261 §10.2), answers its digest challenge, refreshes before
//! the granted expiry and retries with a growing pause after failures. Sans-IO: the actor asks
//! [`Trunk::due`] when to send, builds and sends the REGISTER, and feeds the response back.

use std::time::{Duration, Instant};

use super::auth::Challenge;

/// The expiry we ask for.
pub const ASKED_EXPIRES: u32 = 3600;
/// First pause after a failure; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(15);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// What to send after a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkAction {
    /// Nothing now.
    Wait,
    /// Send the REGISTER again with this CSeq and credentials header (name, value).
    Send {
        /// CSeq number.
        cseq: u32,
        /// `Authorization` or `Proxy-Authorization`, and its value.
        credentials: (&'static str, String),
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Nothing in flight; `next` says when to register.
    Idle,
    /// A REGISTER is in flight.
    Sent,
}

/// One carrier's registration.
#[derive(Debug, Clone)]
pub struct Trunk {
    state: State,
    next: Instant,
    cseq: u32,
    registered_until: Option<Instant>,
    answered_nonce: Option<String>,
    retry: Duration,
}

impl Trunk {
    /// A trunk to register at once.
    pub fn new(now: Instant) -> Self {
        Trunk {
            state: State::Idle,
            next: now,
            cseq: 0,
            registered_until: None,
            answered_nonce: None,
            retry: FIRST_RETRY,
        }
    }

    /// When to act next (nothing while a REGISTER is in flight: its transaction times out).
    pub fn next_deadline(&self) -> Option<Instant> {
        (self.state == State::Idle).then_some(self.next)
    }

    /// Time to send a REGISTER: its CSeq, or `None` when not due.
    pub fn due(&mut self, now: Instant) -> Option<u32> {
        if self.state != State::Idle || self.next > now {
            return None;
        }
        self.state = State::Sent;
        self.cseq += 1;
        self.answered_nonce = None;
        Some(self.cseq)
    }

    /// Whether the carrier holds a live registration of ours.
    pub fn is_registered(&self, now: Instant) -> bool {
        self.registered_until.is_some_and(|t| t > now)
    }

    /// A final response to our REGISTER. `challenge` is the parsed `WWW-Authenticate` (401)
    /// or `Proxy-Authenticate` (407); `granted` the expiry the 2xx granted; `answer` computes
    /// the credentials for a challenge.
    pub fn on_response(
        &mut self,
        code: u16,
        challenge: Option<&Challenge>,
        granted: Option<u32>,
        answer: impl FnOnce(&Challenge) -> String,
        now: Instant,
    ) -> TrunkAction {
        match code {
            200..=299 => {
                let granted =
                    Duration::from_secs(u64::from(granted.unwrap_or(ASKED_EXPIRES).max(10)));
                self.registered_until = Some(now + granted);
                // Refresh well before it lapses: at 80 %, and never later than 30 s before.
                let refresh =
                    (granted * 4 / 5).min(granted.saturating_sub(Duration::from_secs(30)));
                self.next = now + refresh.max(Duration::from_secs(5));
                self.state = State::Idle;
                self.retry = FIRST_RETRY;
                TrunkAction::Wait
            }
            401 | 407 => match challenge {
                // A challenge is answered once per nonce: a second one for the same nonce means
                // the credentials are wrong.
                Some(c) if self.answered_nonce.as_deref() != Some(&c.nonce) => {
                    self.answered_nonce = Some(c.nonce.clone());
                    self.cseq += 1;
                    let name = if code == 401 {
                        "Authorization"
                    } else {
                        "Proxy-Authorization"
                    };
                    TrunkAction::Send {
                        cseq: self.cseq,
                        credentials: (name, answer(c)),
                    }
                }
                _ => self.failed(now),
            },
            _ => self.failed(now),
        }
    }

    /// No response at all (the transaction timed out, or sending failed).
    pub fn on_timeout(&mut self, now: Instant) {
        self.failed(now);
    }

    fn failed(&mut self, now: Instant) -> TrunkAction {
        self.state = State::Idle;
        self.next = now + self.retry;
        self.retry = (self.retry * 2).min(MAX_RETRY);
        TrunkAction::Wait
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests {
    use super::*;

    fn challenge(nonce: &str) -> Challenge {
        Challenge::parse(&format!("Digest realm=\"carrier\", nonce=\"{nonce}\"")).unwrap()
    }

    #[test]
    fn challenge_then_registered_then_refresh() {
        let t0 = Instant::now();
        let mut trunk = Trunk::new(t0);
        assert_eq!(trunk.due(t0), Some(1));
        assert_eq!(trunk.due(t0), None, "one REGISTER in flight");
        let action = trunk.on_response(401, Some(&challenge("n1")), None, |_| "creds".into(), t0);
        assert_eq!(
            action,
            TrunkAction::Send {
                cseq: 2,
                credentials: ("Authorization", "creds".into())
            }
        );
        let action = trunk.on_response(200, None, Some(600), |_| unreachable!(), t0);
        assert_eq!(action, TrunkAction::Wait);
        assert!(trunk.is_registered(t0));
        assert_eq!(trunk.next_deadline(), Some(t0 + Duration::from_secs(480)));
        let later = t0 + Duration::from_secs(480);
        assert_eq!(trunk.due(later), Some(3));
    }

    #[test]
    fn wrong_credentials_back_off() {
        let t0 = Instant::now();
        let mut trunk = Trunk::new(t0);
        trunk.due(t0);
        let first = trunk.on_response(407, Some(&challenge("n")), None, |_| "x".into(), t0);
        assert!(matches!(
            first,
            TrunkAction::Send {
                credentials: ("Proxy-Authorization", _),
                ..
            }
        ));
        // The same nonce again: the answer was refused.
        let again = trunk.on_response(407, Some(&challenge("n")), None, |_| "x".into(), t0);
        assert_eq!(again, TrunkAction::Wait);
        assert!(!trunk.is_registered(t0));
        assert_eq!(trunk.next_deadline(), Some(t0 + FIRST_RETRY));
        trunk.due(t0 + FIRST_RETRY);
        trunk.on_timeout(t0 + FIRST_RETRY);
        assert_eq!(
            trunk.next_deadline(),
            Some(t0 + FIRST_RETRY * 3),
            "the pause doubles"
        );
    }
}
