//! `Carrier`: a SIP trunk that delivers inbound calls and carries outbound legs.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ResourceStatus, SecretRef};

/// A SIP trunk: where it is, how outbound legs pick it, who may send calls through it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dialtone.dev",
    version = "v1alpha1",
    kind = "Carrier",
    doc = "A SIP trunk: address, transport, priority and weight for outbound legs, credentials, registration, allowed inbound sources, OPTIONS probing and channel cap.",
    namespaced,
    status = "ResourceStatus",
    category = "dialtone",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address"),
    printcolumn(name = "Transport", type_ = "string", json_path = ".spec.transport"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
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
pub struct CarrierSpec {
    /// The trunk's SIP address, `host:port` (port defaults to 5060 when left out).
    #[schemars(length(min = 1, max = 261))]
    pub address: String,
    /// Transport toward the trunk.
    #[serde(default)]
    pub transport: CarrierTransport,
    /// Outbound legs try carriers with the lowest priority first.
    #[serde(default)]
    #[schemars(range(min = 0, max = 65535))]
    pub priority: i32,
    /// Share of outbound legs among carriers of the same priority.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0, max = 65535))]
    pub weight: i32,
    /// Most simultaneous calls through this trunk. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_channels: Option<i32>,
    /// Source addresses or CIDR ranges inbound INVITEs may come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound_sources: Vec<String>,
    /// Secret with `username` and `password` for digest authentication toward the trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Register with the trunk (a registration-based trunk); inbound calls then arrive on the
    /// registration's connection or from its address.
    #[serde(default)]
    pub register: bool,
    /// OPTIONS health probing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSpec>,
}

fn default_weight() -> i32 {
    100
}

/// Transport toward a carrier.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CarrierTransport {
    /// SIP over UDP.
    #[default]
    Udp,
    /// SIP over TCP.
    Tcp,
}

/// OPTIONS probing of a carrier.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeSpec {
    /// Seconds between probes.
    #[serde(default = "default_probe_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: i32,
    /// Consecutive failures that mark the carrier down.
    #[serde(default = "default_failures")]
    #[schemars(range(min = 1, max = 100))]
    pub failures_to_down: i32,
    /// Consecutive successes that mark it up again.
    #[serde(default = "default_successes")]
    #[schemars(range(min = 1, max = 100))]
    pub successes_to_up: i32,
}

fn default_probe_interval() -> i32 {
    10
}
fn default_failures() -> i32 {
    3
}
fn default_successes() -> i32 {
    2
}
