//! `CallQueue`: callers waiting for the next free agent.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LabelSelector, ResourceStatus, TargetSpec};

/// Callers wait in arrival order with hold music; agents are offered calls by a strategy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dialtone.dev",
    version = "v1alpha1",
    kind = "CallQueue",
    doc = "Callers waiting in arrival order for the next free member agent, chosen by a strategy, with hold music, position announcements and overflow.",
    namespaced,
    status = "ResourceStatus",
    category = "dialtone",
    printcolumn(name = "Strategy", type_ = "string", json_path = ".spec.strategy"),
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
pub struct CallQueueSpec {
    /// The agents who take this queue's calls.
    pub members: QueueMembers,
    /// How the next agent is chosen.
    #[serde(default)]
    pub strategy: QueueStrategy,
    /// How long one offer rings before the next agent is tried.
    #[serde(default = "default_ring_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub ring_timeout_seconds: i32,
    /// Longest a caller waits before the queue gives up (then the scheme's next step).
    #[serde(default = "default_max_wait")]
    #[schemars(range(min = 1, max = 86400))]
    pub max_wait_seconds: i32,
    /// Pause after a call before an agent is offered the next one.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub wrap_up_seconds: i32,
    /// Prompt played in a loop while the caller waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_music: Option<String>,
    /// Tell callers their position ("you are number 3 in the queue").
    #[serde(default)]
    pub announce_position: bool,
    /// A digit a waiting caller presses to hang up and be called back, keeping their place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9*#]$"))]
    pub callback_digit: Option<String>,
    /// Where a caller goes after waiting too long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<OverflowSpec>,
}

fn default_ring_timeout() -> i32 {
    20
}
fn default_max_wait() -> i32 {
    300
}

/// The queue's agents: by name, by label selector, or both (the union).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.agents) || has(self.selector)",
    "message": "name the member agents or give a selector"
}]))]
pub struct QueueMembers {
    /// Agent names, in the order `linear` rings them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Agents carrying these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// How a queue picks the agent to offer a call to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum QueueStrategy {
    /// Everyone at once until someone answers.
    #[default]
    RingAll,
    /// The agent who has gone longest without a call.
    LongestIdle,
    /// The agent with the fewest answered calls today.
    FewestCalls,
    /// Any available agent, at random.
    Random,
    /// The agent after the one who answered last.
    RoundRobin,
    /// Agents in the listed order.
    Linear,
}

/// Where a caller goes after waiting `afterSeconds`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverflowSpec {
    /// Seconds of waiting before overflow.
    #[schemars(range(min = 1, max = 86400))]
    pub after_seconds: i32,
    /// The overflow target.
    pub to: TargetSpec,
}
