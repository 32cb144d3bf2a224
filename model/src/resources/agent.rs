//! `Agent`: a manager who answers calls.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ResourceStatus, SecretRef};

/// A manager: how to reach them, their extension, and how many calls they take at once.
/// Labels on the Agent (`metadata.labels`) form the teams that schemes and queues select.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dialtone.dev",
    version = "v1alpha1",
    kind = "Agent",
    doc = "A manager who answers calls: display name, extension, SIP credentials, destinations (softphone, mobile number, SIP URI), max concurrent calls; labels form teams.",
    namespaced,
    status = "ResourceStatus",
    category = "dialtone",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Extension", type_ = "string", json_path = ".spec.extension"),
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
pub struct AgentSpec {
    /// The name shown on the live board and in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Digits callers dial in a menu with extension dialing; unique across Agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]{2,6}$"))]
    pub extension: Option<String>,
    /// Secret with the SIP `username` (defaults to the Agent's name) and `password` the
    /// softphone registers with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_credentials_secret_ref: Option<SecretRef>,
    /// Where the agent is rung, all at once.
    #[schemars(length(min = 1, max = 10))]
    pub destinations: Vec<DestinationSpec>,
    /// Calls the agent may have at once (ringing or talking).
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1, max = 100))]
    pub max_concurrent_calls: i32,
}

fn default_max_concurrent() -> i32 {
    1
}

/// One way to reach an agent. Exactly one is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.softphone), has(self.number), has(self.sipUri)].filter(x, x).size() == 1",
    "message": "set exactly one of softphone, number or sipUri"
}]))]
pub struct DestinationSpec {
    /// Wherever the agent's softphone registers (`softphone: {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softphone: Option<Softphone>,
    /// A phone number in E.164 (`+380671234567`), rung through a carrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^\+[1-9][0-9]{6,14}$"))]
    pub number: Option<String>,
    /// A desk phone or another PBX at a fixed address, rung without registration:
    /// `sip:user@host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^sips?:[^@\s]+@[^\s]+$"))]
    pub sip_uri: Option<String>,
}

/// The softphone destination carries no settings: the registration says where it is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::common::empty_object_schema)]
pub struct Softphone {}
