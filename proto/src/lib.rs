//! The gRPC contracts of Dialtone: package `dialtone.v1`, compiled at build
//! time from `proto/dialtone/v1/*.proto` (with protox, so no `protoc` is
//! needed) into prost messages and tonic clients and servers.
//!
//! # Services
//!
//! - [`v1::router_server::Router`] — *media nodes ↔ router*. A media node
//!   asks for a call's plan (`PlanCall`: schedule state and why, the scheme's
//!   steps with concrete targets, welcome prompt, backup scheme, recording
//!   policy, or a rejection: blocked, not found, no forwarding scheme),
//!   reserves agents before ringing them, reports leg and agent events,
//!   registers its softphones' contacts, runs queues (`QueueJoin`,
//!   `QueueNextAgent`, ...) and keeps a `NodeSession` open through which the
//!   router sends it commands (callbacks, hang-ups). Agents' states are set
//!   and watched here too (`SetAgentState`, `WatchPresence`), and
//!   `ExplainRoute` backs `dialtone route`.
//! - [`v1::ingest_server::Ingest`] — *events → reporter*. Media nodes stream
//!   [`v1::CallEvent`]s and the router streams [`v1::AgentStateEvent`]s; the
//!   reporter acknowledges each `event_id` once it is stored durably, and
//!   stores each id once (senders spool and resend until acknowledged).
//! - [`v1::reports_server::Reports`] — *clients*. Every report of PRODUCT.md
//!   (missed, unprocessed, agents, callbacks, calls, heatmap, live,
//!   top-missers) and `HandleGroup` for `dialtone handle`.
//! - [`v1::call_control_server::CallControl`] — *clients*. Order a callback,
//!   hang up a call, list the calls in progress.
//!
//! # Data flow
//!
//! ```text
//! carrier ──SIP──▶ media node ──Router.PlanCall / QueueNextAgent / ...──▶ router
//!                     │  ▲                                                  │
//!                     │  └────────── Router.NodeSession commands ───────────┤
//!                     │                                                     │
//!                     └──Ingest.Publish (CallEvent)──▶ reporter ◀──Ingest (AgentStateEvent)
//!                                                        │
//!           CLI / dashboard / CRM ◀──Reports, CallControl─┘
//! ```
//!
//! [`FILE_DESCRIPTOR_SET`] holds the encoded descriptors of every file
//! (well-known types included) for `tonic-reflection`.
//!
//! Report rows carry codes as plain strings (`not_answered`, `called_back`,
//! ...), listed in [`codes`]; the enums of the internal services convert to
//! the same codes with `code()` / `from_code()`.

pub mod internal;

/// Who made a client-facing gRPC request, as the credential check found it: the guard in front
/// of `Reports` and `CallControl` puts it in the request's extensions, so services in any crate
/// can credit an action to a person without depending on the crate that checks credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated(pub String);

/// Generated messages, clients (`*_client`) and servers (`*_server`) of
/// package `dialtone.v1`. `google.protobuf` types are those of `prost_types`.
pub mod v1 {
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::pedantic,
        clippy::nursery,
        clippy::unwrap_used,
        rustdoc::all
    )]
    tonic::include_proto!("dialtone.v1");
}

/// The encoded `google.protobuf.FileDescriptorSet` of every Dialtone proto
/// file and its imports, for `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/dialtone_descriptor.bin"));

/// Fully qualified names of the services, as reflection and health checking
/// know them.
pub mod service_names {
    /// `dialtone.v1.Router`.
    pub const ROUTER: &str = "dialtone.v1.Router";
    /// `dialtone.v1.Ingest`.
    pub const INGEST: &str = "dialtone.v1.Ingest";
    /// `dialtone.v1.Reports`.
    pub const REPORTS: &str = "dialtone.v1.Reports";
    /// `dialtone.v1.CallControl`.
    pub const CALL_CONTROL: &str = "dialtone.v1.CallControl";
    /// All four.
    pub const ALL: [&str; 4] = [ROUTER, INGEST, REPORTS, CALL_CONTROL];
}

/// The string codes that reports, the CLI and webhooks use.
pub mod codes {
    /// Missed reasons, in order of precedence (first that applies wins), then
    /// `forbidden_destination` for failed callbacks.
    pub const MISSED_REASONS: [&str; 8] = [
        "no_forwarding_scheme",
        "outside_business_hours",
        "abandoned_during_welcome",
        "abandoned_in_ivr",
        "abandoned_short",
        "all_agents_unavailable",
        "not_answered",
        "forbidden_destination",
    ];
    /// Call statuses of the call log: missed (red), called back (yellow),
    /// answered (green).
    pub const CALL_STATUSES: [&str; 3] = ["missed", "called_back", "answered"];
    /// Reasons for handling an unprocessed group manually (`other` needs a note).
    pub const HANDLE_REASONS: [&str; 5] = [
        "spam",
        "wrong_number",
        "resolved_elsewhere",
        "duplicate",
        "other",
    ];
    /// Callback discipline of a missed group.
    pub const CALLBACK_STATUSES: [&str; 3] = ["within_sla", "late", "never"];
}

/// Maps an enum to and from the snake_case codes shown to people.
macro_rules! codes_for {
    ($enum:ty { $($variant:ident => $code:literal),+ $(,)? }) => {
        impl $enum {
            /// The snake_case code of this value; `""` for `Unspecified`.
            pub fn code(self) -> &'static str {
                match self {
                    Self::Unspecified => "",
                    $(Self::$variant => $code,)+
                }
            }

            /// The value for a snake_case code; `None` for an unknown code.
            pub fn from_code(code: &str) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

codes_for!(v1::AgentState {
    Available => "available",
    Ringing => "ringing",
    OnCall => "on_call",
    WrapUp => "wrap_up",
    Dnd => "dnd",
    Away => "away",
    Offline => "offline",
});

codes_for!(v1::ScheduleState {
    Open => "open",
    Closed => "closed",
    Holiday => "holiday",
});

codes_for!(v1::Direction {
    Inbound => "inbound",
    Outbound => "outbound",
});

codes_for!(v1::HangupParty {
    Client => "client",
    Agent => "agent",
    System => "system",
});

codes_for!(v1::StepKind {
    Play => "play",
    Menu => "menu",
    Ring => "ring",
    Queue => "queue",
    OwnerLookup => "owner_lookup",
    Voicemail => "voicemail",
    Hangup => "hangup",
});

codes_for!(v1::QueueStrategy {
    RingAll => "ring_all",
    LongestIdle => "longest_idle",
    FewestCalls => "fewest_calls",
    Random => "random",
    RoundRobin => "round_robin",
    Linear => "linear",
});

codes_for!(v1::RecordingMode {
    None => "none",
    Full => "full",
    First => "first",
});

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use prost_types::{FileDescriptorSet, Timestamp};

    fn descriptor_set() -> FileDescriptorSet {
        FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
    }

    fn methods_of(fds: &FileDescriptorSet, full_name: &str) -> Vec<String> {
        let (package, name) = full_name.rsplit_once('.').expect("qualified name");
        fds.file
            .iter()
            .filter(|file| file.package() == package)
            .flat_map(|file| file.service.iter())
            .find(|service| service.name() == name)
            .unwrap_or_else(|| panic!("service {full_name} missing"))
            .method
            .iter()
            .map(|method| method.name().to_owned())
            .collect()
    }

    #[test]
    fn descriptor_set_has_the_four_services_and_their_methods() {
        let fds = descriptor_set();
        let expected: [(&str, &[&str]); 4] = [
            (
                service_names::ROUTER,
                &[
                    "PlanCall",
                    "PlanOutbound",
                    "ExplainRoute",
                    "ReserveAgents",
                    "ReleaseAgents",
                    "ReportLegEvent",
                    "ReportAgentEvent",
                    "RegisterContact",
                    "RemoveContact",
                    "LookupContacts",
                    "SyncContacts",
                    "SetAgentState",
                    "GetLiveBoard",
                    "WatchPresence",
                    "QueueJoin",
                    "QueueLeave",
                    "QueueNextAgent",
                    "QueuePosition",
                    "QueueRequestCallback",
                    "SetOwner",
                    "GetOwner",
                    "NodeSession",
                ],
            ),
            (service_names::INGEST, &["Publish", "PublishBatch"]),
            (
                service_names::REPORTS,
                &[
                    "Missed",
                    "Unprocessed",
                    "Agents",
                    "Callbacks",
                    "Calls",
                    "Heatmap",
                    "Live",
                    "WatchLive",
                    "TopMissers",
                    "HandleGroup",
                ],
            ),
            (
                service_names::CALL_CONTROL,
                &["OrderCallback", "HangUp", "ListActiveCalls"],
            ),
        ];
        for (service, methods) in expected {
            assert_eq!(methods_of(&fds, service), methods, "methods of {service}");
        }
    }

    #[test]
    fn descriptor_set_is_self_contained() {
        let fds = descriptor_set();
        let names: Vec<&str> = fds.file.iter().map(|file| file.name()).collect();
        for file in &fds.file {
            for dependency in &file.dependency {
                assert!(
                    names.contains(&dependency.as_str()),
                    "{} imports {dependency}, which is missing",
                    file.name()
                );
            }
        }
        assert!(names.contains(&"google/protobuf/timestamp.proto"));
        // Comments are kept for reflection clients.
        let events = fds
            .file
            .iter()
            .find(|file| file.name() == "dialtone/v1/events.proto")
            .expect("events.proto");
        assert!(events.source_code_info.is_some());
    }

    #[test]
    fn streaming_shapes_are_as_documented() {
        let fds = descriptor_set();
        let method = |service: &str, name: &str| {
            fds.file
                .iter()
                .flat_map(|file| file.service.iter())
                .filter(|s| s.name() == service)
                .flat_map(|s| s.method.iter())
                .find(|m| m.name() == name)
                .cloned()
                .unwrap_or_else(|| panic!("{service}.{name} missing"))
        };
        let publish = method("Ingest", "Publish");
        assert!(publish.client_streaming() && publish.server_streaming());
        let watch = method("Router", "WatchPresence");
        assert!(!watch.client_streaming() && watch.server_streaming());
        let session = method("Router", "NodeSession");
        assert!(session.client_streaming() && session.server_streaming());
        let live = method("Reports", "WatchLive");
        assert!(live.server_streaming());
    }

    #[test]
    fn call_event_round_trips() {
        use v1::call_event::Kind;

        let event = v1::CallEvent {
            event_id: "0190f5a2-0000-7000-8000-000000000001".into(),
            call_id: "0190f5a2-0000-7000-8000-0000000000aa".into(),
            node_id: "media-node-0".into(),
            sequence: 7,
            at: Some(Timestamp {
                seconds: 1_795_424_400,
                nanos: 250_000_000,
            }),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            kind: Some(Kind::LegFailed(v1::LegFailed {
                leg_id: "leg-2".into(),
                sip_code: 486,
                reason: "Busy Here".into(),
            })),
        };
        let bytes = event.encode_to_vec();
        let decoded = v1::CallEvent::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded, event);

        // Inside the ingest envelope too.
        let envelope = v1::IngestEvent {
            event: Some(v1::ingest_event::Event::Call(event.clone())),
        };
        let decoded =
            v1::IngestEvent::decode(envelope.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded, envelope);

        let ended = v1::CallEvent {
            sequence: 8,
            kind: Some(Kind::CallEnded(v1::CallEnded {
                hangup_party: v1::HangupParty::Client as i32,
                disposition: v1::CallDisposition::Abandoned as i32,
                sip_code: 0,
                reason: String::new(),
            })),
            ..event
        };
        let decoded = v1::CallEvent::decode(ended.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded, ended);
        match decoded.kind {
            Some(Kind::CallEnded(end)) => {
                assert_eq!(end.hangup_party(), v1::HangupParty::Client);
                assert_eq!(end.disposition(), v1::CallDisposition::Abandoned);
            }
            other => panic!("unexpected kind {other:?}"),
        }
    }

    #[test]
    fn codes_round_trip() {
        use v1::AgentState;
        for state in [
            AgentState::Available,
            AgentState::Ringing,
            AgentState::OnCall,
            AgentState::WrapUp,
            AgentState::Dnd,
            AgentState::Away,
            AgentState::Offline,
        ] {
            assert_eq!(AgentState::from_code(state.code()), Some(state));
        }
        assert_eq!(AgentState::OnCall.code(), "on_call");
        assert_eq!(AgentState::Unspecified.code(), "");
        assert_eq!(AgentState::from_code(""), None);
        assert_eq!(AgentState::from_code("busy"), None);
        assert_eq!(
            v1::QueueStrategy::from_code("longest_idle"),
            Some(v1::QueueStrategy::LongestIdle)
        );
        assert_eq!(v1::ScheduleState::Holiday.code(), "holiday");
    }
}
