//! The desired state of one `CallCenter`: typed Kubernetes objects built by pure functions.
//!
//! [`desired_objects`] turns a `CallCenter` and a [`BuildContext`] into every workload object the
//! operator keeps in shape; [`snapshot::desired_snapshot_objects`] turns the validated manifests
//! of the namespace into the configuration snapshot the components read. Both are separate
//! because they change at different rates: workloads change when the `CallCenter` (or the
//! operator's image) changes, the snapshot whenever any of the eight kinds changes — a
//! ForwardingScheme edit must update the snapshot without touching a single pod template.
//!
//! Every object carries an owner reference to the `CallCenter` (`controller: true`,
//! `blockOwnerDeletion: true`) so deleting the `CallCenter` garbage-collects everything — and the
//! standard `app.kubernetes.io/*` labels. The returned order is the apply order: identities
//! and permissions first, then storage, Services, workloads, and the disruption budget and
//! autoscaler that act on the workloads.
//!
//! Layout: [`common`] (names, labels, metadata, pod security, probes, env), [`access`] (the
//! internal token and the tokens file), [`router`],
//! [`reporter`], [`media_node`], [`scaling`] (campaign floors, the autoscaler, pod-deletion
//! cost), [`rbac`] (the components' ServiceAccounts and Roles) and [`snapshot`].

pub mod access;
pub mod common;
pub mod media_node;
pub mod rbac;
pub mod reporter;
pub mod router;
pub mod scaling;
pub mod snapshot;

use std::fmt;
use std::str::FromStr;

use dialtone_model::resources::CallCenter;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};

pub use common::Names;
pub use scaling::{
    deletion_cost_update_due, effective_min_replicas, next_floor_change, pod_deletion_cost,
};
pub use snapshot::{
    SnapshotBundle, desired_snapshot_configmap, desired_snapshot_objects, desired_snapshot_secret,
};

/// What the build needs besides the `CallCenter`: the operator's own settings and the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildContext {
    /// The `dialtone` image every component runs (the operator's own image: one binary, one
    /// version across the platform).
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
    /// The instant the build is for; campaign floors are evaluated at it. Injected so tests (and
    /// the controller's requeue logic) control time.
    pub now: Timestamp,
    /// Where the operator runs; recorded on the snapshot objects so `kubectl describe` says who
    /// writes them.
    pub operator_namespace: String,
    /// The SIP Service's type when the `CallCenter` does not say otherwise through the
    /// [`SIP_SERVICE_TYPE_ANNOTATION`] annotation.
    pub sip_service_type: SipServiceType,
    /// `RUST_LOG` for the components (`info`, `dialtone=debug`, …).
    pub log_level: String,
    /// OTLP collector endpoint for traces and metrics; `None` exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Size of the reporter's SQLite volume (when no database URL is given).
    pub sqlite_volume_size: String,
    /// Size of the shared recordings volume (when `spec.recordings` is set).
    pub recordings_volume_size: String,
    /// StorageClass for the volumes; `None` uses the cluster's default. The recordings volume is
    /// `ReadWriteMany`, so this class must support it when recordings are on.
    pub storage_class: Option<String>,
}

impl BuildContext {
    /// The operator's defaults for `image` at `now`.
    pub fn new(image: impl Into<String>, now: Timestamp) -> Self {
        Self {
            image: image.into(),
            image_pull_policy: "IfNotPresent".to_owned(),
            now,
            operator_namespace: "dialtone-system".to_owned(),
            sip_service_type: SipServiceType::LoadBalancer,
            log_level: "info".to_owned(),
            otlp_endpoint: None,
            sqlite_volume_size: "10Gi".to_owned(),
            recordings_volume_size: "100Gi".to_owned(),
            storage_class: None,
        }
    }
}

/// Annotation on a `CallCenter` that overrides [`BuildContext::sip_service_type`] for it, e.g.
/// `dialtone.dev/sip-service-type: NodePort`.
///
/// An annotation rather than a spec field: the Service type is an infrastructure choice of the
/// cluster (is there a cloud load balancer? a MetalLB pool?) more than of the call center, so the
/// operator-wide default (a chart value) is the normal knob and the annotation the exception.
pub const SIP_SERVICE_TYPE_ANNOTATION: &str = "dialtone.dev/sip-service-type";

/// How carriers reach the media nodes' SIP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SipServiceType {
    /// A cloud (or MetalLB) load balancer: the default, carriers need a stable public address.
    #[default]
    LoadBalancer,
    /// A port on every node, for clusters without load balancers or with an external one.
    NodePort,
    /// Cluster-internal only: carriers (or an SBC) inside the cluster network.
    ClusterIP,
}

impl SipServiceType {
    /// The Service `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoadBalancer => "LoadBalancer",
            Self::NodePort => "NodePort",
            Self::ClusterIP => "ClusterIP",
        }
    }

    /// Whether traffic comes from outside the cluster through node ports, so the source address
    /// must be preserved with `externalTrafficPolicy: Local`.
    pub fn is_external(self) -> bool {
        !matches!(self, Self::ClusterIP)
    }
}

impl fmt::Display for SipServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SipServiceType {
    type Err = BuildError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "LoadBalancer" => Ok(Self::LoadBalancer),
            "NodePort" => Ok(Self::NodePort),
            "ClusterIP" => Ok(Self::ClusterIP),
            other => Err(BuildError::InvalidAnnotation {
                key: SIP_SERVICE_TYPE_ANNOTATION.to_owned(),
                value: other.to_owned(),
                expected: "LoadBalancer, NodePort or ClusterIP",
            }),
        }
    }
}

/// Why the desired objects could not be built. Most of these are also rejected earlier by the
/// CRD schema or the loader; the build checks again because it must never emit an object the
/// API server would refuse half-way through an apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The `CallCenter` lacks metadata only the API server fills in (uid) or the user must give.
    #[error("CallCenter has no {0}: it must come from the API server")]
    MissingMetadata(&'static str),
    /// A derived object name is not a valid Kubernetes name.
    #[error("CallCenter name {cc:?} gives the invalid object name {name:?}: {reason}")]
    InvalidName {
        /// The CallCenter's name.
        cc: String,
        /// The derived name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An annotation has a value the operator does not understand.
    #[error("annotation {key}={value:?} is not one of {expected}")]
    InvalidAnnotation {
        /// The annotation key.
        key: String,
        /// Its value.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// `spec.mediaNodes.rtp.portRange` is not `low-high`.
    #[error("spec.mediaNodes.rtp.portRange {0:?} is not low-high within 1024-65535")]
    InvalidPortRange(String),
    /// A campaign's `from` or `to` is not an RFC 3339 instant.
    #[error("campaign {campaign:?}: {field} {value:?} is not an RFC 3339 instant: {message}")]
    InvalidCampaignTime {
        /// The campaign's name.
        campaign: String,
        /// `from` or `to`.
        field: &'static str,
        /// The value.
        value: String,
        /// The parser's message.
        message: String,
    },
    /// Rendering the snapshot bundle failed (a bug in the types, not in the input).
    #[error("cannot render {what}: {message}")]
    Render {
        /// What was being rendered.
        what: String,
        /// Why.
        message: String,
    },
    /// The snapshot does not fit in one ConfigMap or Secret.
    #[error(
        "the snapshot {object} would hold {bytes} bytes, over the {limit}-byte limit of one \
         Kubernetes object: split the namespace's resources across namespaces"
    )]
    SnapshotTooLarge {
        /// `ConfigMap` or `Secret`.
        object: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

/// One object the operator applies, typed.
// A reconcile builds about twenty of these; boxing the Deployment would save nothing worth the
// noise at every construction.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DesiredObject {
    /// A component's identity.
    ServiceAccount(ServiceAccount),
    /// A component's permissions.
    Role(Role),
    /// Binds a Role to a component's ServiceAccount.
    RoleBinding(RoleBinding),
    /// The snapshot's secret part (credentials), applied before the ConfigMap that needs it.
    Secret(Secret),
    /// A Secret whose value the operator generated once (the internal token, see [`access`]):
    /// created when absent, never patched. Its value must not change under running pods, and
    /// the operator's RBAC allows patching no Secret but the snapshot.
    GeneratedSecret(Secret),
    /// The snapshot (validated manifests).
    ConfigMap(ConfigMap),
    /// The reporter's SQLite volume or the shared recordings volume.
    PersistentVolumeClaim(PersistentVolumeClaim),
    /// The router's, the reporter's, the SIP and the media-node peer Services.
    Service(Service),
    /// The router, the reporter and the media nodes.
    Deployment(Deployment),
    /// Limits voluntary disruptions of the router and the media nodes.
    PodDisruptionBudget(PodDisruptionBudget),
    /// Scales the media nodes on active calls.
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
}

macro_rules! each_object {
    ($self:expr, $obj:ident => $body:expr) => {
        match $self {
            DesiredObject::ServiceAccount($obj) => $body,
            DesiredObject::Role($obj) => $body,
            DesiredObject::RoleBinding($obj) => $body,
            DesiredObject::Secret($obj) => $body,
            DesiredObject::GeneratedSecret($obj) => $body,
            DesiredObject::ConfigMap($obj) => $body,
            DesiredObject::PersistentVolumeClaim($obj) => $body,
            DesiredObject::Service($obj) => $body,
            DesiredObject::Deployment($obj) => $body,
            DesiredObject::PodDisruptionBudget($obj) => $body,
            DesiredObject::HorizontalPodAutoscaler($obj) => $body,
        }
    };
}

fn kind_of<T: Resource>(_: &T) -> &'static str {
    T::KIND
}

fn api_version_of<T: Resource>(_: &T) -> &'static str {
    T::API_VERSION
}

impl DesiredObject {
    /// `Deployment`, `Service`, …
    pub fn kind(&self) -> &'static str {
        each_object!(self, o => kind_of(o))
    }

    /// `apps/v1`, `v1`, …
    pub fn api_version(&self) -> &'static str {
        each_object!(self, o => api_version_of(o))
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        each_object!(self, o => o.metadata())
    }

    /// `metadata.name` (always set by the builders).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object as JSON, with `apiVersion` and `kind`: the body of a server-side apply patch.
    pub fn to_json(&self) -> Result<serde_json::Value, BuildError> {
        each_object!(self, o => serde_json::to_value(o)).map_err(|e| BuildError::Render {
            what: format!("{} {}", self.kind(), self.name()),
            message: e.to_string(),
        })
    }

    /// The object as YAML, for golden files and `kubectl`-style display.
    pub fn to_yaml(&self) -> Result<String, BuildError> {
        each_object!(self, o => serde_saphyr::to_string(o)).map_err(|e| BuildError::Render {
            what: format!("{} {}", self.kind(), self.name()),
            message: e.to_string(),
        })
    }
}

/// Every workload object of a `CallCenter`, in apply order.
///
/// The snapshot ConfigMap and Secret are not included: they depend on the whole namespace's
/// validated resources, not on the `CallCenter` alone; see [`snapshot`].
pub fn desired_objects(
    cc: &CallCenter,
    ctx: &BuildContext,
) -> Result<Vec<DesiredObject>, BuildError> {
    let owner = common::Owner::of(cc)?;
    let names = Names::of(&owner.name)?;
    let sip_type = match cc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIP_SERVICE_TYPE_ANNOTATION))
    {
        Some(value) => value.parse()?,
        None => ctx.sip_service_type,
    };
    let spec = &cc.spec;
    // Fail on bad campaign times before anything is built, rather than silently ignoring them.
    for campaign in &spec.media_nodes.campaigns {
        scaling::campaign_window(campaign)?;
    }
    let rtp = media_node::PortRange::parse(&spec.media_nodes.rtp.port_range)?;

    let mut out = Vec::new();
    out.extend(rbac::objects(&owner, &names));
    if let Some(pvc) = reporter::sqlite_volume(&owner, &names, spec, ctx) {
        out.push(DesiredObject::PersistentVolumeClaim(pvc));
    }
    if let Some(pvc) = media_node::recordings_volume(&owner, &names, spec, ctx) {
        out.push(DesiredObject::PersistentVolumeClaim(pvc));
    }
    out.push(DesiredObject::Service(router::service(&owner, &names)));
    out.push(DesiredObject::Service(reporter::service(&owner, &names)));
    out.push(DesiredObject::Service(media_node::sip_service(
        &owner, &names, spec, sip_type,
    )));
    out.push(DesiredObject::Service(media_node::peer_service(
        &owner, &names, spec,
    )));
    out.push(DesiredObject::Deployment(router::deployment(
        &owner, &names, spec, ctx,
    )));
    out.push(DesiredObject::Deployment(reporter::deployment(
        &owner, &names, spec, ctx,
    )));
    out.push(DesiredObject::Deployment(media_node::deployment(
        &owner, &names, spec, ctx, rtp,
    )));
    out.push(DesiredObject::PodDisruptionBudget(
        router::disruption_budget(&owner, &names),
    ));
    out.push(DesiredObject::PodDisruptionBudget(
        media_node::disruption_budget(&owner, &names),
    ));
    out.push(DesiredObject::HorizontalPodAutoscaler(scaling::autoscaler(
        &owner,
        &names,
        &spec.media_nodes,
        ctx.now,
    )));
    Ok(out)
}
