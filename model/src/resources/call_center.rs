//! `CallCenter`: the deployment-level settings of one namespace's platform.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ResourceStatus, SecretKeyRef};

/// One per namespace: the media-node pool, the router, the reporter's database, the missed-call
/// policy, prompts, recordings, webhooks and alerts.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dialtone.dev",
    version = "v1alpha1",
    kind = "CallCenter",
    doc = "One per namespace: the media-node pool, router, reporter database, missed-call policy, prompts, recordings, webhooks and alerts of a Dialtone call center.",
    namespaced,
    status = "ResourceStatus",
    shortname = "cc",
    category = "dialtone",
    printcolumn(
        name = "Min",
        type_ = "integer",
        json_path = ".spec.mediaNodes.minReplicas"
    ),
    printcolumn(
        name = "Max",
        type_ = "integer",
        json_path = ".spec.mediaNodes.maxReplicas"
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
pub struct CallCenterSpec {
    /// The SIP/RTP media-node pool and how it scales.
    #[serde(default)]
    pub media_nodes: MediaNodesSpec,
    /// The routing service shared by all media nodes.
    #[serde(default)]
    pub router: RouterSpec,
    /// The reporter: call records and reports.
    #[serde(default)]
    pub reporter: ReporterSpec,
    /// How missed calls are judged and followed up.
    #[serde(default)]
    pub missed_calls: MissedCallPolicy,
    /// Where prompts (8 kHz mono WAV) come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<PromptsSpec>,
    /// Where call recordings and voicemails are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recordings: Option<RecordingsSpec>,
    /// CRM webhooks that receive call events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookSpec>,
    /// Alerts sent to webhooks when a threshold is crossed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertSpec>,
    /// Who may use the platform in a cluster: the dashboard and client API credentials, and the
    /// token Dialtone's components show each other. Standalone mode (`dialtone up`) does not
    /// read it: it writes `supervisor.token` and serves internal gRPC to loopback peers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
}

/// Access control in a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessSpec {
    /// Secret key holding the dashboard and client gRPC API credentials: one `name:role:token`
    /// line per person or tool, roles `viewer` or `supervisor`, tokens of at least 16
    /// characters; `#` starts a comment line. Mounted as a file into the reporter (dashboard,
    /// Reports API) and the router (CallControl API). Absent: nobody can sign in to the
    /// dashboard and the router does not serve CallControl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the shared token the router, the reporter and the media nodes show
    /// each other on their internal gRPC services (at least 16 printable ASCII characters, no
    /// spaces). Absent: the operator generates one into the Secret `<callcenter>-internal-token`
    /// (key `token`), keeps it across reconciles, and deletes it with the CallCenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_token_secret_ref: Option<SecretKeyRef>,
}

/// The media-node pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.maxReplicas >= self.minReplicas",
    "message": "maxReplicas must be at least minReplicas"
}]))]
pub struct MediaNodesSpec {
    /// Fewest media nodes kept running.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most media nodes the autoscaler may start.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Active calls per node the autoscaler aims for.
    #[serde(default = "default_target_calls")]
    #[schemars(range(min = 1, max = 10000))]
    pub target_active_calls_per_node: i32,
    /// Known ad campaigns: between `from` and `to` the pool never shrinks below `minReplicas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub campaigns: Vec<CampaignSpec>,
    /// SIP listening port and transports.
    #[serde(default)]
    pub sip: SipSpec,
    /// RTP media ports.
    #[serde(default)]
    pub rtp: RtpSpec,
    /// How long a node being scaled down waits for its calls to end before it exits.
    #[serde(default = "default_drain_timeout")]
    #[schemars(range(min = 0, max = 86400))]
    pub drain_timeout_seconds: i64,
}

fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    1
}
fn default_target_calls() -> i32 {
    200
}
fn default_drain_timeout() -> i64 {
    3600
}

impl Default for MediaNodesSpec {
    fn default() -> Self {
        Self {
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_active_calls_per_node: default_target_calls(),
            campaigns: Vec::new(),
            sip: SipSpec::default(),
            rtp: RtpSpec::default(),
            drain_timeout_seconds: default_drain_timeout(),
        }
    }
}

/// A scheduled floor for the media-node pool during an ad campaign.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "timestamp(self.to) > timestamp(self.from)",
    "message": "a campaign must end (to) after it starts (from)"
}]))]
pub struct CampaignSpec {
    /// The campaign's name, for logs and events.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Start, RFC 3339 with an offset, e.g. `2026-11-27T08:00:00+02:00`.
    #[schemars(extend("format" = "date-time"), length(max = 40))]
    pub from: String,
    /// End, RFC 3339 with an offset.
    #[schemars(extend("format" = "date-time"), length(max = 40))]
    pub to: String,
    /// The pool's floor between `from` and `to`.
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
}

/// SIP listening settings of every media node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SipSpec {
    /// SIP port (UDP and TCP).
    #[serde(default = "default_sip_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Transports the nodes listen on.
    #[serde(default = "default_transports")]
    #[schemars(length(min = 1))]
    pub transports: Vec<SipTransport>,
}

fn default_sip_port() -> i32 {
    5060
}
fn default_transports() -> Vec<SipTransport> {
    vec![SipTransport::Udp, SipTransport::Tcp]
}

impl Default for SipSpec {
    fn default() -> Self {
        Self {
            port: default_sip_port(),
            transports: default_transports(),
        }
    }
}

/// A SIP transport.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
}

/// RTP media settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RtpSpec {
    /// Inclusive UDP port range for RTP and RTCP, `low-high`, e.g. `20000-30000`.
    #[serde(default = "default_port_range")]
    #[schemars(pattern(r"^[0-9]{1,5}-[0-9]{1,5}$"))]
    pub port_range: String,
    /// Run media nodes on the host network so RTP ports need no Service.
    #[serde(default)]
    pub host_network: bool,
}

fn default_port_range() -> String {
    "20000-30000".to_owned()
}

impl Default for RtpSpec {
    fn default() -> Self {
        Self {
            port_range: default_port_range(),
            host_network: false,
        }
    }
}

/// The router.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterSpec {
    /// Router replicas.
    #[serde(default = "default_router_replicas")]
    #[schemars(range(min = 1, max = 10))]
    pub replicas: i32,
}

fn default_router_replicas() -> i32 {
    1
}

impl Default for RouterSpec {
    fn default() -> Self {
        Self {
            replicas: default_router_replicas(),
        }
    }
}

/// The reporter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReporterSpec {
    /// The call-record database.
    #[serde(default)]
    pub database: DatabaseSpec,
    /// Call records older than this many days are deleted.
    #[serde(default = "default_retention")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: i32,
}

fn default_retention() -> i32 {
    400
}

impl Default for ReporterSpec {
    fn default() -> Self {
        Self {
            database: DatabaseSpec::default(),
            retention_days: default_retention(),
        }
    }
}

/// The reporter's database: PostgreSQL when a URL is given, else SQLite on a volume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseSpec {
    /// Secret key holding a `postgres://` URL. Absent: SQLite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
}

/// How missed calls are judged and followed up.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MissedCallPolicy {
    /// A caller who hangs up within this many seconds of the INVITE is `abandoned_short`.
    #[serde(default = "default_short_abandon")]
    #[schemars(range(min = 0, max = 600))]
    pub short_abandon_seconds: i32,
    /// An answered call with less talk time than this is a short call.
    #[serde(default = "default_short_call")]
    #[schemars(range(min = 0, max = 600))]
    pub short_call_seconds: i32,
    /// A missed client should be called back within this many minutes.
    #[serde(default = "default_callback_sla")]
    #[schemars(range(min = 1, max = 10080))]
    pub callback_sla_minutes: i32,
    /// How far back the unprocessed to-do list reaches.
    #[serde(default = "default_unprocessed_window")]
    #[schemars(range(min = 1, max = 365))]
    pub unprocessed_window_days: i32,
}

fn default_short_abandon() -> i32 {
    10
}
fn default_short_call() -> i32 {
    5
}
fn default_callback_sla() -> i32 {
    10
}
fn default_unprocessed_window() -> i32 {
    30
}

impl Default for MissedCallPolicy {
    fn default() -> Self {
        Self {
            short_abandon_seconds: default_short_abandon(),
            short_call_seconds: default_short_call(),
            callback_sla_minutes: default_callback_sla(),
            unprocessed_window_days: default_unprocessed_window(),
        }
    }
}

/// Where prompts come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromptsSpec {
    /// ConfigMap whose `<name>.wav` keys are the prompts (in a cluster). Standalone mode reads
    /// `prompts/<name>.wav` beside the manifests instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
}

/// Where recordings are stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordingsSpec {
    /// A folder on the media nodes (a volume in a cluster).
    #[schemars(length(min = 1))]
    pub storage: String,
}

/// A CRM webhook.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSpec {
    /// Name that steps (`ownerLookup.webhook`) and alerts (`notify`) use.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// `https://` (or `http://`) URL that receives signed JSON POSTs.
    #[schemars(pattern(r"^https?://"))]
    pub url: String,
    /// Events sent to it. Empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<WebhookEvent>,
    /// Secret key holding the HMAC-SHA256 signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// Events a webhook can receive.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum WebhookEvent {
    /// A call arrived.
    #[serde(rename = "call.started")]
    CallStarted,
    /// An agent answered.
    #[serde(rename = "call.answered")]
    CallAnswered,
    /// A call was missed, with its reason.
    #[serde(rename = "call.missed")]
    CallMissed,
    /// A call ended (with the recording link).
    #[serde(rename = "call.ended")]
    CallEnded,
    /// A caller left a voicemail.
    #[serde(rename = "voicemail.left")]
    VoicemailLeft,
    /// A missed client passed the callback SLA without a callback.
    #[serde(rename = "callback.due")]
    CallbackDue,
    /// An unprocessed group was processed.
    #[serde(rename = "unprocessed.processed")]
    UnprocessedProcessed,
    /// An alert fired.
    #[serde(rename = "alert")]
    Alert,
    /// The daily summary of the agents with the highest miss rate.
    #[serde(rename = "summary.top_missers")]
    SummaryTopMissers,
}

/// An alert.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertSpec {
    /// The alert's name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The condition that fires it.
    pub when: AlertCondition,
    /// Webhook names to notify.
    #[schemars(length(min = 1))]
    pub notify: Vec<String>,
}

/// What fires an alert. Exactly one threshold is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.agentMissRateAbove) != has(self.unprocessedAbove)",
    "message": "set exactly one of agentMissRateAbove or unprocessedAbove"
}]))]
pub struct AlertCondition {
    /// Fires when an agent's miss rate over `window` exceeds this share (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub agent_miss_rate_above: Option<f64>,
    /// The window for rates, e.g. `30m`, `1h`, `1d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]+(s|m|h|d)$"))]
    pub window: Option<String>,
    /// Fires when the unprocessed to-do list has more groups than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub unprocessed_above: Option<i32>,
}
