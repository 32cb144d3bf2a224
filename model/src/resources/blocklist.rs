//! `Blocklist`: callers who are rejected.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ResourceStatus;

/// Numbers or prefixes whose calls are rejected and recorded as `blocked` (never missed).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dialtone.dev",
    version = "v1alpha1",
    kind = "Blocklist",
    doc = "Caller numbers or prefixes that are rejected, each with a mandatory reason; blocked calls are recorded as blocked, not missed.",
    namespaced,
    status = "ResourceStatus",
    category = "dialtone",
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
pub struct BlocklistSpec {
    /// The blocked callers.
    #[schemars(length(max = 10000))]
    pub entries: Vec<BlockEntry>,
}

/// One blocked number or prefix, with the reason. Exactly one of `number` and `prefix`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.number) != has(self.prefix)",
    "message": "set exactly one of number or prefix"
}]))]
pub struct BlockEntry {
    /// An exact caller number in E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^\+[1-9][0-9]{6,14}$"))]
    pub number: Option<String>,
    /// A prefix of caller numbers, starting with `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^\+[0-9]{1,15}$"))]
    pub prefix: Option<String>,
    /// Why these callers are blocked (mandatory; shown in reports and logs).
    #[schemars(length(min = 1))]
    pub reason: String,
}
