//! `ForwardingScheme`: the ordered steps a call goes through.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LabelSelector, ResourceStatus, TargetSpec};

/// An ordered list of steps; a call runs them in turn until an agent answers or a step ends it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dialtone.dev",
    version = "v1alpha1",
    kind = "ForwardingScheme",
    doc = "An ordered list of steps a call runs through: play, menu, ring, queue, ownerLookup, voicemail, hangup.",
    namespaced,
    status = "ResourceStatus",
    shortname = "fs",
    category = "dialtone",
    printcolumn(
        name = "Steps",
        type_ = "integer",
        json_path = ".spec.steps.length()",
        priority = 1
    ),
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
pub struct ForwardingSchemeSpec {
    /// The steps, run in order.
    #[schemars(length(min = 1, max = 64))]
    pub steps: Vec<StepSpec>,
}

/// One step: exactly one key, e.g. `- play: {prompt: welcome}` or `- hangup: {}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.play), has(self.menu), has(self.ring), has(self.queue), has(self.ownerLookup), has(self.voicemail), has(self.hangup)].filter(x, x).size() == 1",
    "message": "a step has exactly one of play, menu, ring, queue, ownerLookup, voicemail or hangup"
}]))]
pub struct StepSpec {
    /// Play a prompt to the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play: Option<PlayStep>,
    /// A voice menu (IVR): digit options and extension dialing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub menu: Option<MenuStep>,
    /// Ring agents, numbers or SIP URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<RingStep>,
    /// Put the caller in a CallQueue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStep>,
    /// Ask the CRM who owns this client and ring that agent first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_lookup: Option<OwnerLookupStep>,
    /// Record a voicemail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail: Option<VoicemailStep>,
    /// End the call (`hangup: {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangup: Option<HangupStep>,
}

/// Play a prompt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlayStep {
    /// Prompt name (`prompts/<name>.wav`).
    #[schemars(length(min = 1))]
    pub prompt: String,
}

/// A voice menu.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MenuStep {
    /// The menu prompt.
    #[schemars(length(min = 1))]
    pub prompt: String,
    /// Digit → where the call goes. Keys are one of `0`–`9`, `*`, `#`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 12))]
    pub options: BTreeMap<String, TargetSpec>,
    /// Let callers dial an agent's extension directly.
    #[serde(default)]
    pub extension_dialing: bool,
    /// Seconds after the prompt ends before `default` is taken.
    #[serde(default = "default_digit_timeout")]
    #[schemars(range(min = 1, max = 60))]
    pub digit_timeout_seconds: i32,
    /// When a digit is an option and also starts an extension, how long to wait for more digits.
    #[serde(default = "default_inter_digit")]
    #[schemars(range(min = 1, max = 10))]
    pub inter_digit_seconds: i32,
    /// Where the call goes when nothing is pressed. Absent: the scheme's next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<TargetSpec>,
}

fn default_digit_timeout() -> i32 {
    5
}
fn default_inter_digit() -> i32 {
    2
}

/// Ring one or more targets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingStep {
    /// Who is rung.
    #[schemars(length(min = 1, max = 100))]
    pub targets: Vec<RingTargetSpec>,
    /// All at once, or one after another (each for `timeoutSeconds`).
    #[serde(default)]
    pub mode: RingMode,
    /// How long the step (or, sequentially, each target) rings.
    #[serde(default = "default_ring_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: i32,
}

fn default_ring_timeout() -> i32 {
    20
}

/// Simultaneous or sequential ringing.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RingMode {
    /// Every target at once; the first to answer wins.
    #[default]
    Simultaneous,
    /// One target after another.
    Sequential,
}

/// A ring target. Exactly one is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.agent), has(self.agentSelector), has(self.number), has(self.sipUri)].filter(x, x).size() == 1",
    "message": "set exactly one of agent, agentSelector, number or sipUri"
}]))]
pub struct RingTargetSpec {
    /// An Agent by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Every Agent carrying these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_selector: Option<LabelSelector>,
    /// An external number in E.164, through a carrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^\+[1-9][0-9]{6,14}$"))]
    pub number: Option<String>,
    /// A SIP URI rung directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^sips?:[^@\s]+@[^\s]+$"))]
    pub sip_uri: Option<String>,
}

/// Put the caller in a queue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueStep {
    /// The CallQueue's name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Owner routing: ask the CRM who owns this client.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerLookupStep {
    /// The CallCenter webhook asked (HTTP POST with the caller's number).
    #[schemars(length(min = 1))]
    pub webhook: String,
    /// The lookup's time limit; past it the call moves on.
    #[serde(default = "default_lookup_timeout")]
    #[schemars(range(min = 50, max = 10000))]
    pub timeout_ms: i32,
    /// How long the owner is rung.
    #[serde(default = "default_ring_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub ring_seconds: i32,
}

fn default_lookup_timeout() -> i32 {
    800
}

/// Record a voicemail.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoicemailStep {
    /// Greeting prompt played before the tone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// Longest message recorded.
    #[serde(default = "default_voicemail_max")]
    #[schemars(range(min = 5, max = 3600))]
    pub max_seconds: i32,
    /// Seconds of silence that end the message.
    #[serde(default = "default_voicemail_silence")]
    #[schemars(range(min = 1, max = 60))]
    pub silence_seconds: i32,
}

fn default_voicemail_max() -> i32 {
    120
}
fn default_voicemail_silence() -> i32 {
    5
}

/// End the call. The empty object is the whole step: `hangup: {}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::common::empty_object_schema)]
pub struct HangupStep {}
