//! Call detail records: what one call was, assembled from its events.
//!
//! A [`Cdr`] is a pure function of the *set* of a call's events (ordered by `sequence`), so
//! events that arrive late, out of order or twice give the same record — the ingestion layer can
//! re-assemble a call whenever one of its events arrives. The CDR states facts and the missed
//! reason its own events give; what depends on *other* calls (was the client called back? was
//! a queue callback answered?) is decided by the reports, which see every CDR.

mod assemble;
mod build;
mod codes;
mod legs;
mod reason;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

pub use assemble::{Added, CallAssembler, assemble_call, validate_event};
pub use codes::{
    CallPhase, CancelCause, DestinationKind, Direction, HangupParty, MissedReason, NoAnswerCause,
    ScheduleState,
};
pub use legs::{Leg, LegOutcome, Offer, OfferOutcome};

use crate::time::{iso8601, rfc3339};

/// One call, inbound or outbound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    /// The call's id.
    pub call_id: String,
    /// Inbound (a client called one of our numbers) or outbound (Dialtone dialled a client).
    pub direction: Direction,
    /// Inbound: the client's number. Outbound: the caller ID presented to the client.
    /// `None` when withheld (anonymous).
    pub caller: Option<String>,
    /// True when the caller withheld their number (inbound).
    pub anonymous: bool,
    /// Inbound: the PhoneNumber dialled (E.164). Outbound: the client's number dialled.
    pub number: String,
    /// The PhoneNumber resource name, when the router named it.
    pub number_name: Option<String>,
    /// The carrier the call came in through (inbound) or first went out through (outbound).
    pub carrier: Option<String>,
    /// Outbound: the agent who dialled, or for whom the callback rang first.
    pub agent: Option<String>,
    /// When the INVITE arrived (inbound) or was sent (outbound): the `CallStarted` time.
    #[serde(with = "rfc3339")]
    pub started_at: Timestamp,
    /// Inbound: when media was first bridged with an agent (or an external target in an
    /// agent's place). Outbound: when the client answered.
    #[serde(with = "rfc3339::option")]
    pub answered_at: Option<Timestamp>,
    /// When the call ended; `None` while it is in progress.
    #[serde(with = "rfc3339::option")]
    pub ended_at: Option<Timestamp>,
    /// The schedule's state at the call's instant, as the router saw it.
    pub schedule_state: Option<ScheduleState>,
    /// The ForwardingScheme that ran (the first one the router chose).
    pub scheme: Option<String>,
    /// True when the number's backup scheme ran.
    pub backup: bool,
    /// Set when the caller was blocklisted (such a call is not missed).
    pub blocked: Option<Blocked>,
    /// What became of the call, judged from its own events.
    pub status: CdrStatus,
    /// The missed reason: inbound missed calls by PRODUCT.md's precedence; outbound calls to a
    /// destination that was invalid or refused get `forbidden_destination`. For a queue caller
    /// who chose a callback this is the reason the path gives; the reports drop it when the
    /// callback is answered (see [`crate::reports::Dataset`]).
    pub missed: Option<MissedReason>,
    /// When and where the caller hung up before being bridged.
    pub caller_hangup: Option<CallerHangup>,
    /// The voicemail message the caller left.
    pub voicemail: Option<Voicemail>,
    /// The recording of the bridged call.
    pub recording: Option<Recording>,
    /// Every leg (INVITE toward an agent, an external target, or the client of an outbound
    /// call), in order of creation.
    pub legs: Vec<Leg>,
    /// The W3C trace id of the call; `None` when untraced.
    pub trace_id: Option<String>,
    /// Who hung up, from `CallEnded`.
    pub hangup_party: Option<HangupParty>,
    /// The agent on the bridged leg (inbound), or the calling agent of an answered outbound
    /// call; `None` for external targets and unanswered calls.
    pub answered_by: Option<String>,
    /// Bridged time: end − answer; zero when unanswered or still in progress.
    #[serde(with = "iso8601")]
    pub talk: SignedDuration,
    /// Outbound: the callback this call carries out (`CallStarted.callback_id`).
    pub callback_id: Option<String>,
    /// A callback order made on this call: the queue caller's order (inbound), or the API
    /// order of this outbound callback.
    pub callback_order: Option<CallbackOrder>,
    /// Inbound: the caller chose a queue callback and hung up.
    pub callback_chosen: bool,
    /// The first queue the call joined.
    pub queue: Option<String>,
    /// The final SIP code of the call's end: the rejection sent to the caller, or (outbound)
    /// the client leg's final failure.
    pub end_sip_code: Option<u16>,
    /// True when `CallEnded` arrived and no sequence number before it is missing: the record
    /// will not change any more.
    pub complete: bool,
}

/// A blocklisted caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// The entry's mandatory reason.
    pub reason: String,
    /// The Blocklist resource.
    pub blocklist: String,
    /// The entry that matched.
    pub entry: String,
}

/// What became of a call, from its own events only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CdrStatus {
    /// Not ended and not answered yet.
    InProgress,
    /// Inbound: bridged with an agent. Outbound: the client answered.
    Answered,
    /// Inbound, not blocked, never bridged; [`Cdr::missed`] holds the reason.
    Missed,
    /// Inbound from a blocklisted caller: rejected, not a missed call.
    Blocked,
    /// Inbound to a number Dialtone does not serve (ended 404 without any routing): not an
    /// inbound call in PRODUCT.md's sense, so neither answered nor missed.
    Rejected,
    /// Outbound: the client did not answer, or the call failed.
    NotAnswered,
}

/// The caller hanging up before being bridged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerHangup {
    /// When.
    #[serde(with = "rfc3339")]
    pub at: Timestamp,
    /// Where the call was.
    pub phase: CallPhase,
}

/// A voicemail message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voicemail {
    /// WAV file, relative to the recordings storage.
    pub path: String,
    /// Length of the message.
    #[serde(with = "iso8601")]
    pub duration: SignedDuration,
}

/// A call recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// WAV file, relative to the recordings storage.
    pub path: String,
    /// Length.
    #[serde(with = "iso8601")]
    pub duration: SignedDuration,
}

/// A callback order (`CallbackOrdered`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackOrder {
    /// The callback's id; the callback call's `CallStarted.callback_id` carries it.
    pub callback_id: String,
    /// `api` or `queue`.
    pub origin: String,
    /// The agent to ring first, when known.
    pub agent: Option<String>,
    /// The client's number.
    pub to: String,
    /// Who ordered it.
    pub ordered_by: String,
    /// When.
    #[serde(with = "rfc3339")]
    pub at: Timestamp,
}

impl Cdr {
    /// The client: the caller of an inbound call, the dialled number of an outbound call.
    /// `None` for anonymous callers.
    pub fn client(&self) -> Option<&str> {
        match self.direction {
            Direction::Inbound => self.caller.as_deref(),
            Direction::Outbound => Some(self.number.as_str()).filter(|n| !n.is_empty()),
        }
    }

    /// Our side: the PhoneNumber dialled (inbound) or the caller ID shown (outbound).
    pub fn our_number(&self) -> Option<&str> {
        match self.direction {
            Direction::Inbound => Some(self.number.as_str()),
            Direction::Outbound => self.caller.as_deref(),
        }
    }

    /// An inbound call that was not blocked or rejected.
    pub fn is_inbound_call(&self) -> bool {
        self.direction == Direction::Inbound
            && !matches!(self.status, CdrStatus::Blocked | CdrStatus::Rejected)
    }

    /// An outbound call that tried the client: Dialtone dialled them (a leg toward the client
    /// was created), or an agent's call out to them was refused by policy before any leg (the
    /// number blocklisted or invalid: `forbidden_destination`, which PRODUCT.md counts as an
    /// attempt). Such a call is a callback attempt when it follows a miss of that client; an
    /// outbound callback whose agent never picked up never tried the client, so it is no
    /// attempt.
    pub fn attempted_client(&self) -> bool {
        self.direction == Direction::Outbound
            && (self.legs.iter().any(|l| l.agent.is_none()) || self.refused_by_policy())
    }

    /// An outbound call refused by policy before anything was dialled: no leg at all, ended
    /// with a `forbidden_destination` code (the router's blocklist or number check). A
    /// callback whose agent leg failed has a leg, so it is not one.
    pub fn refused_by_policy(&self) -> bool {
        self.direction == Direction::Outbound
            && self.legs.is_empty()
            && self.missed == Some(MissedReason::ForbiddenDestination)
    }

    /// Names of the agents alerted, in order of first alert, each once.
    pub fn agents_alerted(&self) -> Vec<&str> {
        let mut alerted: Vec<(&Timestamp, usize, &str)> = self
            .legs
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((l.alerted_at.as_ref()?, i, l.agent.as_deref()?)))
            .collect();
        alerted.sort();
        let mut names: Vec<&str> = Vec::new();
        for (_, _, name) in alerted {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Names of the agents who missed this call (alerted, not answered, not cancelled because
    /// a colleague answered; declined counts), in order of first alert.
    pub fn agents_missed(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for offer in self.offers() {
            if offer.outcome.is_miss() && !names.contains(&offer.agent) {
                names.push(offer.agent);
            }
        }
        names
    }

    /// Start to answer, or to the end when unanswered (how long the client waited).
    pub fn wait(&self) -> SignedDuration {
        match self.answered_at.or(self.ended_at) {
            Some(t) => t.duration_since(self.started_at),
            None => SignedDuration::ZERO,
        }
    }
}
