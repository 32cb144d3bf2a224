//! The small closed vocabularies of a CDR, with their snake_case codes (the codes reports
//! print and the JSON keys carry) and their conversions from the wire enums.

use std::fmt;
use std::str::FromStr;

use dialtone_proto::v1;
use serde::{Deserialize, Serialize};

use crate::error::ReportError;

/// Why a call was missed.
///
/// The declaration order of the first seven is PRODUCT.md's precedence ("the first that
/// applies, in this order"); `ForbiddenDestination` is the reason of failed callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedReason {
    /// No scheme resolves for the number at that instant (missing route, broken reference).
    NoForwardingScheme,
    /// The schedule was closed or on holiday.
    OutsideBusinessHours,
    /// The caller hung up while the welcome prompt played.
    AbandonedDuringWelcome,
    /// The caller hung up in an IVR menu.
    AbandonedInIvr,
    /// The caller hung up within `shortAbandonSeconds` of the INVITE's arrival.
    AbandonedShort,
    /// No agent was ever alerted.
    AllAgentsUnavailable,
    /// At least one agent was alerted, none answered.
    NotAnswered,
    /// An outbound call to a client failed because the destination is invalid or refused by
    /// policy or carrier (4xx such as 403/404/484).
    ForbiddenDestination,
}

impl MissedReason {
    /// Every reason, in precedence order then `forbidden_destination`.
    pub const ALL: [MissedReason; 8] = [
        MissedReason::NoForwardingScheme,
        MissedReason::OutsideBusinessHours,
        MissedReason::AbandonedDuringWelcome,
        MissedReason::AbandonedInIvr,
        MissedReason::AbandonedShort,
        MissedReason::AllAgentsUnavailable,
        MissedReason::NotAnswered,
        MissedReason::ForbiddenDestination,
    ];

    /// The code reports print.
    pub fn code(self) -> &'static str {
        match self {
            MissedReason::NoForwardingScheme => "no_forwarding_scheme",
            MissedReason::OutsideBusinessHours => "outside_business_hours",
            MissedReason::AbandonedDuringWelcome => "abandoned_during_welcome",
            MissedReason::AbandonedInIvr => "abandoned_in_ivr",
            MissedReason::AbandonedShort => "abandoned_short",
            MissedReason::AllAgentsUnavailable => "all_agents_unavailable",
            MissedReason::NotAnswered => "not_answered",
            MissedReason::ForbiddenDestination => "forbidden_destination",
        }
    }
}

impl fmt::Display for MissedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for MissedReason {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MissedReason::ALL
            .into_iter()
            .find(|r| r.code() == s)
            .ok_or_else(|| ReportError::UnknownReason(s.to_owned()))
    }
}

/// Direction relative to Dialtone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From a carrier to one of our numbers.
    Inbound,
    /// From Dialtone to a client (an agent dialling out, or a callback).
    Outbound,
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupParty {
    /// The client (caller of an inbound call, callee of an outbound call).
    Client,
    /// The agent (or the external number bridged in an agent's place).
    Agent,
    /// Dialtone.
    System,
}

impl HangupParty {
    pub(crate) fn from_proto(p: v1::HangupParty) -> Option<Self> {
        match p {
            v1::HangupParty::Unspecified => None,
            v1::HangupParty::Client => Some(HangupParty::Client),
            v1::HangupParty::Agent => Some(HangupParty::Agent),
            v1::HangupParty::System => Some(HangupParty::System),
        }
    }

    /// `client`, `agent` or `system`.
    pub fn code(self) -> &'static str {
        match self {
            HangupParty::Client => "client",
            HangupParty::Agent => "agent",
            HangupParty::System => "system",
        }
    }
}

/// The schedule's state at a call's instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    /// Open.
    Open,
    /// Closed.
    Closed,
    /// Holiday.
    Holiday,
}

impl ScheduleState {
    pub(crate) fn from_proto(s: v1::ScheduleState) -> Option<Self> {
        match s {
            v1::ScheduleState::Unspecified => None,
            v1::ScheduleState::Open => Some(ScheduleState::Open),
            v1::ScheduleState::Closed => Some(ScheduleState::Closed),
            v1::ScheduleState::Holiday => Some(ScheduleState::Holiday),
        }
    }
}

/// Where a call was (when the caller hung up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    /// Waiting for the plan, or between steps.
    Routing,
    /// The welcome prompt.
    Welcome,
    /// A `play` step.
    Play,
    /// An IVR menu.
    Menu,
    /// Waiting in a queue.
    Queue,
    /// Agents or external numbers ringing.
    Ringing,
    /// Voicemail greeting or recording.
    Voicemail,
    /// Bridged.
    Bridged,
    /// Tearing down.
    Ending,
}

impl CallPhase {
    pub(crate) fn from_proto(p: v1::CallPhase) -> Option<Self> {
        Some(match p {
            v1::CallPhase::Unspecified => return None,
            v1::CallPhase::Routing => CallPhase::Routing,
            v1::CallPhase::Welcome => CallPhase::Welcome,
            v1::CallPhase::Play => CallPhase::Play,
            v1::CallPhase::Menu => CallPhase::Menu,
            v1::CallPhase::Queue => CallPhase::Queue,
            v1::CallPhase::Ringing => CallPhase::Ringing,
            v1::CallPhase::Voicemail => CallPhase::Voicemail,
            v1::CallPhase::Bridged => CallPhase::Bridged,
            v1::CallPhase::Ending => CallPhase::Ending,
        })
    }

    /// The phase a scheme step puts the call in.
    pub(crate) fn of_step(kind: v1::StepKind) -> Option<Self> {
        Some(match kind {
            v1::StepKind::Unspecified => return None,
            v1::StepKind::Play => CallPhase::Play,
            v1::StepKind::Menu => CallPhase::Menu,
            v1::StepKind::Ring | v1::StepKind::OwnerLookup => CallPhase::Ringing,
            v1::StepKind::Queue => CallPhase::Queue,
            v1::StepKind::Voicemail => CallPhase::Voicemail,
            v1::StepKind::Hangup => CallPhase::Ending,
        })
    }
}

/// What kind of endpoint a leg rang.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// A registered softphone contact.
    Softphone,
    /// A phone number through a carrier.
    Number,
    /// A SIP URI.
    SipUri,
    /// Not stated (or `LegCreated` missing).
    Unknown,
}

impl DestinationKind {
    pub(crate) fn from_proto(k: v1::DestinationKind) -> Self {
        match k {
            v1::DestinationKind::Unspecified => DestinationKind::Unknown,
            v1::DestinationKind::Softphone => DestinationKind::Softphone,
            v1::DestinationKind::Number => DestinationKind::Number,
            v1::DestinationKind::SipUri => DestinationKind::SipUri,
        }
    }
}

/// Why a leg that was never alerted stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelCause {
    /// A colleague answered first.
    ColleagueAnswered,
    /// The caller hung up.
    CallerHungUp,
    /// The ring timeout passed.
    Timeout,
    /// Dialtone decided (hang-up through CallControl, shutdown, unstated cause).
    System,
    /// No final event for the leg: the call ended around it.
    CallEnded,
}

impl CancelCause {
    pub(crate) fn from_proto(c: v1::LegCancelCause) -> Self {
        match c {
            v1::LegCancelCause::ColleagueAnswered => CancelCause::ColleagueAnswered,
            v1::LegCancelCause::CallerHungUp => CancelCause::CallerHungUp,
            v1::LegCancelCause::Timeout => CancelCause::Timeout,
            v1::LegCancelCause::System | v1::LegCancelCause::Unspecified => CancelCause::System,
        }
    }
}

/// Why an alerted leg was not answered (a miss for its agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoAnswerCause {
    /// The ring timeout passed.
    Timeout,
    /// The caller hung up while it rang.
    CallerHungUp,
    /// Dialtone cancelled it (hang-up through CallControl, shutdown).
    System,
    /// The call ended without a final event for the leg.
    CallEnded,
    /// A final error other than the agent's rejection (480, 408 after 180, ...).
    Failed {
        /// The SIP code; 0 when there was no response.
        sip_code: u16,
    },
}
