//! The media nodes: a Deployment scaled by the autoscaler, the SIP Service carriers send INVITEs
//! to, a headless peer Service, the shared recordings volume and a PodDisruptionBudget.
//!
//! # Why a Deployment, not a StatefulSet
//!
//! Media nodes are interchangeable: a node keeps no state that outlives its calls (its event
//! spool is flushed while it drains, recordings go to the shared volume), needs no stable name or
//! per-pod volume, and any node can take any call. What matters is *which* node goes on
//! scale-down: the idlest, so the fewest calls wait on a drain. The ReplicaSet controller honours
//! `controller.kubernetes.io/pod-deletion-cost` when it picks pods to remove, which the operator
//! keeps near each node's active-call count ([`super::scaling::pod_deletion_cost`], applied by
//! [`crate::controller::deletion_cost`]); a StatefulSet always removes the highest ordinal,
//! however busy. Deployments also surge on rollouts (new nodes come up before old ones start
//! their hour-long drains), where a StatefulSet replaces pods one by one, deleting first — a
//! rollout of N nodes would take N drain timeouts with one node missing throughout.
//!
//! # Draining
//!
//! Scale-down, rollouts and node drains stop a pod the same way: the kubelet runs the `preStop`
//! hook `dialtone media-node drain`, which asks the node on its ops port to stop taking new calls
//! (its `/readyz` turns 503, so the SIP Service stops sending it INVITEs while in-dialog requests
//! still reach it directly) and waits until its active calls end or `drainTimeoutSeconds` pass.
//! Then SIGTERM: the node ends what is left, flushes its event spool to the reporter and exits.
//! An exec hook rather than an `httpGet` one because the wait can last an hour: the command polls
//! and survives a dropped connection, where an HTTP hook is a single request held open that long.
//! `terminationGracePeriodSeconds` is `drainTimeoutSeconds` + [`DRAIN_MARGIN_SECONDS`], the
//! margin covering the spool flush after the hook; the node also drains on a bare SIGTERM, so a
//! `kubectl delete pod` without the hook loses no events either.
//!
//! # RTP
//!
//! A Service cannot expose a 10,000-port range (each port is an entry, and load balancers
//! cap them far lower), and RTP must reach the node that holds the call anyway. So RTP never
//! goes through a Service: each node advertises its own address (`DIALTONE_ADVERTISE_ADDR`, the
//! pod IP) in SDP and in its SIP `Contact`, and carriers send media and in-dialog requests there.
//! - With `spec.mediaNodes.rtp.hostNetwork: true` the pod IP is the node's IP and the ports are
//!   the node's: nodes need addresses the carriers can reach, and at most one media node runs per
//!   Kubernetes node (a required anti-affinity says so; the SIP ports would clash anyway).
//! - Without it, the pod IP must be routable from the carriers (a flat/VPC-native pod network or
//!   carriers inside the cluster network). The SIP Service alone does **not** make calls work
//!   from outside an overlay network: signalling arrives, audio does not. This is the documented
//!   limitation of the default.

use dialtone_model::resources::CallCenterSpec;
use dialtone_model::resources::call_center::SipTransport;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, ExecAction, Lifecycle, LifecycleHandler,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSpec,
    PodTemplateSpec, Service, ServicePort, ServiceSpec, Volume, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{
    self, Component, DATA_DIR, Names, OPS_PORT, Owner, PROMPTS_DIR, env, env_field, mount, port,
    requests, selector, selector_labels,
};
use super::reporter::claim;
use super::router::ops_service_port;
use super::{BuildContext, BuildError, SipServiceType, access};

/// Seconds granted after `drainTimeoutSeconds` for the node to flush its spool and exit.
pub const DRAIN_MARGIN_SECONDS: i64 = 30;

/// The `preStop` command that drains a node (see the module documentation).
pub const DRAIN_COMMAND: [&str; 3] = ["dialtone", "media-node", "drain"];

/// An RTP port range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port.
    pub high: u16,
}

impl PortRange {
    /// Parses `low-high` (both within 1024–65535, `low < high`), as the loader requires.
    pub fn parse(text: &str) -> Result<Self, BuildError> {
        let invalid = || BuildError::InvalidPortRange(text.to_owned());
        let (low, high) = text.split_once('-').ok_or_else(invalid)?;
        let low: u16 = low.parse().map_err(|_| invalid())?;
        let high: u16 = high.parse().map_err(|_| invalid())?;
        if low < 1024 || low >= high {
            return Err(invalid());
        }
        Ok(Self { low, high })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

/// `terminationGracePeriodSeconds`: the drain timeout plus [`DRAIN_MARGIN_SECONDS`].
pub fn termination_grace_seconds(spec: &CallCenterSpec) -> i64 {
    spec.media_nodes.drain_timeout_seconds.max(0) + DRAIN_MARGIN_SECONDS
}

fn transport_ports(spec: &CallCenterSpec) -> Vec<(&'static str, &'static str)> {
    let mut transports = spec.media_nodes.sip.transports.clone();
    transports.sort();
    transports.dedup();
    transports
        .into_iter()
        .map(|t| match t {
            SipTransport::Udp => ("sip-udp", "UDP"),
            SipTransport::Tcp => ("sip-tcp", "TCP"),
        })
        .collect()
}

fn sip_service_ports(spec: &CallCenterSpec) -> Vec<ServicePort> {
    transport_ports(spec)
        .into_iter()
        .map(|(name, protocol)| ServicePort {
            name: Some(name.to_owned()),
            port: spec.media_nodes.sip.port,
            target_port: Some(IntOrString::String(name.to_owned())),
            protocol: Some(protocol.to_owned()),
            ..ServicePort::default()
        })
        .collect()
}

/// The shared recordings volume, when `spec.recordings` is set: `ReadWriteMany`, because every
/// media node writes it and the reporter reads it. Owned by the CallCenter (deleting the
/// CallCenter deletes the recordings); the operator never deletes it otherwise.
pub fn recordings_volume(
    owner: &Owner,
    names: &Names,
    spec: &CallCenterSpec,
    ctx: &BuildContext,
) -> Option<PersistentVolumeClaim> {
    spec.recordings.as_ref().map(|_| PersistentVolumeClaim {
        metadata: owner.meta(&names.recordings, Component::Recordings),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteMany".to_owned()]),
            storage_class_name: ctx.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(
                    [(
                        "storage".to_owned(),
                        Quantity(ctx.recordings_volume_size.clone()),
                    )]
                    .into(),
                ),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

/// The media-node Deployment. `replicas` is left out on purpose: the autoscaler owns it, and a
/// value in the operator's apply would reset the pool on every reconcile.
pub fn deployment(
    owner: &Owner,
    names: &Names,
    spec: &CallCenterSpec,
    ctx: &BuildContext,
    rtp: PortRange,
) -> Deployment {
    let m = &spec.media_nodes;
    let host_network = m.rtp.host_network;
    let mut container = common::container("media-node", &["media-node"], ctx);
    let mut ports: Vec<_> = transport_ports(spec)
        .into_iter()
        .map(|(name, protocol)| port(name, m.sip.port, protocol))
        .collect();
    ports.push(port("ops", OPS_PORT, "TCP"));
    container.ports = Some(ports);
    let transports: Vec<&str> = transport_ports(spec)
        .iter()
        .map(|(name, _)| name.trim_start_matches("sip-"))
        .collect();
    let mut mounts = vec![
        mount("config", common::CONFIG_DIR, true),
        mount("data", DATA_DIR, false),
        mount("tmp", "/tmp", false),
    ];
    let mut volumes = vec![
        common::config_volume(),
        // The event spool (and recordings when spec.recordings is unset): node-local, flushed
        // to the reporter before the node exits.
        common::empty_dir("data"),
        common::empty_dir("tmp"),
    ];
    let env_vars = container.env.get_or_insert_with(Vec::new);
    env_vars.extend([
        env("DIALTONE_SIP_PORT", m.sip.port.to_string()),
        env("DIALTONE_SIP_TRANSPORTS", transports.join(",")),
        env("DIALTONE_RTP_PORTS", rtp.to_string()),
        // The address put in SDP and Contact headers (see "RTP" above).
        env_field("DIALTONE_ADVERTISE_ADDR", "status.podIP"),
        env(
            "DIALTONE_DRAIN_TIMEOUT_SECONDS",
            m.drain_timeout_seconds.to_string(),
        ),
        env("DIALTONE_ROUTER_URL", names.router_url()),
        env("DIALTONE_REPORTER_URL", names.reporter_url()),
        env("DIALTONE_DATA", DATA_DIR),
        // Shown to the router's Router and the reporter's Ingest services.
        access::internal_token_env(names, spec),
    ]);
    if let Some(config_map) = spec.prompts.as_ref().and_then(|p| p.config_map.as_ref()) {
        env_vars.push(env("DIALTONE_PROMPTS", PROMPTS_DIR));
        mounts.push(mount("prompts", PROMPTS_DIR, true));
        // Optional: a missing prompts ConfigMap is reported on the CallCenter's status by the
        // operator; nodes still start and take calls that need no prompt.
        volumes.push(Volume {
            name: "prompts".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.clone(),
                optional: Some(true),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    if let Some(recordings) = &spec.recordings {
        env_vars.push(env("DIALTONE_RECORDINGS", recordings.storage.clone()));
        mounts.push(mount("recordings", &recordings.storage, false));
        volumes.push(claim("recordings", &names.recordings, false));
    }
    container.volume_mounts = Some(mounts);
    container.lifecycle = Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(DRAIN_COMMAND.iter().map(|s| (*s).to_owned()).collect()),
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    });
    container.resources = Some(requests("500m", "256Mi"));

    let affinity = if host_network {
        // One media node per Kubernetes node: they would share the node's SIP and RTP ports.
        Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(selector(&owner.name, Component::MediaNode)),
                    topology_key: "kubernetes.io/hostname".to_owned(),
                    ..PodAffinityTerm::default()
                }]),
                ..PodAntiAffinity::default()
            }),
            ..Affinity::default()
        }
    } else {
        common::spread_over_nodes(&owner.name, Component::MediaNode)
    };
    Deployment {
        metadata: owner.meta(&names.media_node, Component::MediaNode),
        spec: Some(DeploymentSpec {
            replicas: None,
            selector: selector(&owner.name, Component::MediaNode),
            // Surge, never remove first: old nodes drain while new ones already take calls.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".to_owned())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(common::labels(&owner.name, Component::MediaNode)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(names.media_node.clone()),
                    security_context: Some(common::pod_security()),
                    host_network: host_network.then_some(true),
                    // On the host network the pod would otherwise resolve with the node's DNS
                    // and not find the router and reporter Services.
                    dns_policy: host_network.then(|| "ClusterFirstWithHostNet".to_owned()),
                    affinity: Some(affinity),
                    termination_grace_period_seconds: Some(termination_grace_seconds(spec)),
                    enable_service_links: Some(false),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The SIP Service: where carriers send new calls, one port per configured transport.
///
/// `externalTrafficPolicy: Local` whenever traffic enters through node ports (LoadBalancer and
/// NodePort): with the default `Cluster` policy kube-proxy SNATs packets and the media node would
/// see a node's address instead of the carrier's, and reject every call whose source is not in a
/// Carrier's `inboundSources`. No session affinity: a carrier's few addresses would pin all its
/// calls to one node; in-dialog requests go to the node's own `Contact` address instead.
/// Draining nodes are not ready, so new INVITEs avoid them.
pub fn sip_service(
    owner: &Owner,
    names: &Names,
    spec: &CallCenterSpec,
    type_: SipServiceType,
) -> Service {
    Service {
        metadata: owner.meta(&names.sip, Component::MediaNode),
        spec: Some(ServiceSpec {
            type_: Some(type_.as_str().to_owned()),
            external_traffic_policy: type_.is_external().then(|| "Local".to_owned()),
            selector: Some(selector_labels(&owner.name, Component::MediaNode)),
            ports: Some(sip_service_ports(spec)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// A headless Service listing every media node, ready or draining: nodes reach each other for
/// calls whose agent registered through another node, and Prometheus discovers them to scrape
/// `dialtone_active_calls`, which the autoscaler and the deletion cost are computed from.
/// `publishNotReadyAddresses` keeps draining nodes listed: their calls are still running.
pub fn peer_service(owner: &Owner, names: &Names, spec: &CallCenterSpec) -> Service {
    let mut ports = sip_service_ports(spec);
    ports.push(ops_service_port());
    Service {
        metadata: owner.meta(&names.media_peers, Component::MediaNode),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&owner.name, Component::MediaNode)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// At most one media node evicted at a time (node drains, cluster upgrades): each eviction
/// starts an up-to-`drainTimeoutSeconds` drain, and capacity must not fall by more than a node.
pub fn disruption_budget(owner: &Owner, names: &Names) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owner.meta(&names.media_node, Component::MediaNode),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(&owner.name, Component::MediaNode)),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
