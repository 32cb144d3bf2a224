//! The eight Dialtone kinds (group `dialtone.dev`, version `v1alpha1`) as Rust types. The CRDs in
//! `crds/` are generated from these; their doc comments are `kubectl explain`'s text.

// kube's `printcolumn(name = .., type_ = ..)` repeats keys across columns, which clippy
// mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod agent;
pub mod blocklist;
pub mod call_center;
pub mod carrier;
pub mod common;
pub mod phone_number;
pub mod queue;
pub mod schedule;
pub mod scheme;

pub use agent::{Agent, AgentSpec, DestinationSpec};
pub use blocklist::{BlockEntry, Blocklist, BlocklistSpec};
pub use call_center::{CallCenter, CallCenterSpec};
pub use carrier::{Carrier, CarrierSpec};
pub use common::{Condition, LabelSelector, ResourceStatus, SecretKeyRef, SecretRef, TargetSpec};
pub use phone_number::{PhoneNumber, PhoneNumberSpec};
pub use queue::{CallQueue, CallQueueSpec};
pub use schedule::{Schedule, ScheduleSpec};
pub use scheme::{ForwardingScheme, ForwardingSchemeSpec, StepSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every Dialtone kind.
pub const GROUP: &str = "dialtone.dev";
/// The served version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "dialtone.dev/v1alpha1";

/// The kinds, in the order reports and summaries list them.
pub const KINDS: [&str; 8] = [
    "CallCenter",
    "Carrier",
    "Schedule",
    "Agent",
    "CallQueue",
    "ForwardingScheme",
    "PhoneNumber",
    "Blocklist",
];

/// Every CRD, generated from the types, in [`KINDS`] order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        CallCenter::crd(),
        Carrier::crd(),
        Schedule::crd(),
        Agent::crd(),
        CallQueue::crd(),
        ForwardingScheme::crd(),
        PhoneNumber::crd(),
        Blocklist::crd(),
    ]
}
