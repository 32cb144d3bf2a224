//! `PhoneNumber`: an E.164 number and how its calls are routed.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ResourceStatus;

/// An E.164 number: which carriers deliver it, which scheme runs when open, closed or on a
/// holiday, the welcome prompt and the recording policy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dialtone.dev",
    version = "v1alpha1",
    kind = "PhoneNumber",
    doc = "An E.164 number: carriers, schedule, the scheme per schedule state (open / closed / holiday), backup scheme, welcome prompt and recording policy.",
    namespaced,
    status = "ResourceStatus",
    shortname = "pn",
    category = "dialtone",
    printcolumn(name = "Number", type_ = "string", json_path = ".spec.number"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Open", type_ = "string", json_path = ".spec.routes.open"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhoneNumberSpec {
    /// The number in E.164, e.g. `+380441234567`.
    #[schemars(pattern(r"^\+[1-9][0-9]{6,14}$"))]
    pub number: String,
    /// Carriers that deliver this number; outbound legs with it as caller ID use them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carriers: Vec<String>,
    /// The Schedule deciding open / closed / holiday. Absent: always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The scheme for each schedule state. A missing route is allowed: calls arriving in that
    /// state are recorded `no_forwarding_scheme`.
    #[serde(default)]
    pub routes: Routes,
    /// Scheme used when the chosen one cannot reach anyone (every target unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Prompt played before the first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<String>,
    /// Call recording.
    #[serde(default)]
    pub recording: RecordingPolicy,
}

/// Scheme names per schedule state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Routes {
    /// When the schedule is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<String>,
    /// When it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
    /// On a holiday.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holiday: Option<String>,
}

/// The recording policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.mode != 'first' || has(self.seconds)",
    "message": "mode first needs seconds"
}]))]
pub struct RecordingPolicy {
    /// `none`, `full`, or the `first` N seconds.
    #[serde(default)]
    pub mode: RecordingMode,
    /// With `first`: how many seconds are recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub seconds: Option<i32>,
}

/// Recording modes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RecordingMode {
    /// No recording.
    #[default]
    None,
    /// The whole call.
    Full,
    /// The first `seconds` of the call.
    First,
}
