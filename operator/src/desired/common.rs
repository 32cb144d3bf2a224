//! What every desired object shares: names, labels, owner references, pod security, probes, the
//! environment contract between the operator and the `dialtone` component entry points, and the
//! configuration volume.

use std::collections::BTreeMap;

use dialtone_model::resources::{API_VERSION, CallCenter};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext, Probe,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretProjection, SecurityContext,
    Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{BuildContext, BuildError};

/// gRPC port of the router and the reporter (plain HTTP/2; health checking and reflection are
/// served on it, so `grpcurl` and `grpc_health_probe` work).
pub const GRPC_PORT: i32 = 50051;
/// The ops port every component serves: `/metrics`, `/healthz`, `/readyz`.
pub const OPS_PORT: i32 = 9090;
/// The reporter's HTTP port: the supervisor dashboard.
pub const HTTP_PORT: i32 = 8080;
/// Writable data folder (`DIALTONE_DATA`): SQLite, the event spool, recordings by default.
pub const DATA_DIR: &str = "/var/lib/dialtone";
/// Where the snapshot is mounted (`DIALTONE_CONFIG`): `manifests.yaml` and `secrets.yaml`, the
/// same shape as a standalone manifest folder.
pub const CONFIG_DIR: &str = "/etc/dialtone/config";
/// Where the prompts ConfigMap is mounted (`DIALTONE_PROMPTS`): `<name>.wav` files.
pub const PROMPTS_DIR: &str = "/etc/dialtone/prompts";
/// The field manager of every server-side apply, and the `managed-by` label's value.
pub const MANAGER: &str = "dialtone-operator";
/// The user and group the components run as (distroless `nonroot`).
pub const RUN_AS: i64 = 65532;

/// Which part of the platform an object belongs to (`app.kubernetes.io/component`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The routing service.
    Router,
    /// Call records and reports.
    Reporter,
    /// SIP/RTP media nodes.
    MediaNode,
    /// The configuration snapshot.
    Snapshot,
    /// The shared recordings volume.
    Recordings,
    /// The generated internal token (see [`super::access`]).
    Access,
}

impl Component {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Router => "router",
            Self::Reporter => "reporter",
            Self::MediaNode => "media-node",
            Self::Snapshot => "snapshot",
            Self::Recordings => "recordings",
            Self::Access => "access",
        }
    }
}

/// The `CallCenter` an object belongs to: the owner reference's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The CallCenter's name; every derived name starts with it.
    pub name: String,
    /// Its namespace; every object lives there.
    pub namespace: String,
    /// Its uid, which owner references need.
    pub uid: String,
}

impl Owner {
    /// The owner of a `CallCenter` read from the API (name, namespace and uid are required).
    pub fn of(cc: &CallCenter) -> Result<Self, BuildError> {
        let m = &cc.metadata;
        Ok(Self {
            name: m
                .name
                .clone()
                .ok_or(BuildError::MissingMetadata("metadata.name"))?,
            namespace: m
                .namespace
                .clone()
                .ok_or(BuildError::MissingMetadata("metadata.namespace"))?,
            uid: m
                .uid
                .clone()
                .ok_or(BuildError::MissingMetadata("metadata.uid"))?,
        })
    }

    /// The owner reference every object carries. `controller: true` makes the operator's
    /// owned-object watches map changes back to this CallCenter; `blockOwnerDeletion: true`
    /// keeps a foreground deletion of the CallCenter waiting until its objects are gone.
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: API_VERSION.to_owned(),
            kind: "CallCenter".to_owned(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// Metadata for an owned object of `component` named `name`.
    pub fn meta(&self, name: &str, component: Component) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(&self.name, component)),
            owner_references: Some(vec![self.reference()]),
            ..ObjectMeta::default()
        }
    }
}

/// The names of everything a `CallCenter` owns, derived from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Router Deployment, Service, ServiceAccount, Role, RoleBinding, PDB.
    pub router: String,
    /// Reporter Deployment, Service, ServiceAccount, Role, RoleBinding.
    pub reporter: String,
    /// The reporter's SQLite PersistentVolumeClaim.
    pub reporter_data: String,
    /// Media-node Deployment, ServiceAccount, Role, RoleBinding, PDB, HPA.
    pub media_node: String,
    /// The SIP Service carriers send INVITEs to.
    pub sip: String,
    /// The headless Service through which media nodes find each other and Prometheus finds them.
    pub media_peers: String,
    /// The shared recordings PersistentVolumeClaim.
    pub recordings: String,
    /// The generated internal-token Secret (when `spec.access.internalTokenSecretRef` is
    /// absent). A Secret name, so not held to the DNS-1035 rule of the others.
    pub internal_token: String,
}

impl Names {
    /// Derives and checks the names. Service names must be DNS-1035 labels (a letter first, at
    /// most 63 characters), which is stricter than a CallCenter's own name.
    pub fn of(cc: &str) -> Result<Self, BuildError> {
        let names = Self {
            router: format!("{cc}-router"),
            reporter: format!("{cc}-reporter"),
            reporter_data: format!("{cc}-reporter-data"),
            media_node: format!("{cc}-media-node"),
            sip: format!("{cc}-sip"),
            media_peers: format!("{cc}-media-nodes"),
            recordings: format!("{cc}-recordings"),
            internal_token: format!("{cc}-internal-token"),
        };
        for name in [
            &names.router,
            &names.reporter,
            &names.reporter_data,
            &names.media_node,
            &names.sip,
            &names.media_peers,
            &names.recordings,
        ] {
            check_dns1035(cc, name)?;
        }
        Ok(names)
    }

    /// `http://<service>:<grpc port>`: how components reach the router.
    pub fn router_url(&self) -> String {
        format!("http://{}:{GRPC_PORT}", self.router)
    }

    /// `http://<service>:<grpc port>`: how components reach the reporter.
    pub fn reporter_url(&self) -> String {
        format!("http://{}:{GRPC_PORT}", self.reporter)
    }
}

fn check_dns1035(cc: &str, name: &str) -> Result<(), BuildError> {
    let invalid = |reason| BuildError::InvalidName {
        cc: cc.to_owned(),
        name: name.to_owned(),
        reason,
    };
    if name.len() > 63 {
        return Err(invalid(
            "longer than 63 characters (shorten the CallCenter's name to at most 49)",
        ));
    }
    let bytes = name.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_lowercase) {
        return Err(invalid("must start with a lowercase letter"));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err(invalid(
            "only lowercase letters, digits and '-' are allowed",
        ));
    }
    Ok(())
}

/// The standard labels of an object of `component` belonging to CallCenter `instance`.
pub fn labels(instance: &str, component: Component) -> BTreeMap<String, String> {
    let mut labels = selector_labels(instance, component);
    labels.insert(
        "app.kubernetes.io/component".to_owned(),
        component.as_str().to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/part-of".to_owned(),
        "dialtone".to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGER.to_owned(),
    );
    labels
}

/// The labels that select a component's pods: name and instance. Kept minimal because a
/// Deployment's selector can never change.
pub fn selector_labels(instance: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            format!("dialtone-{}", component.as_str()),
        ),
        ("app.kubernetes.io/instance".to_owned(), instance.to_owned()),
    ])
}

/// A label selector on [`selector_labels`].
pub fn selector(instance: &str, component: Component) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(instance, component)),
        ..LabelSelector::default()
    }
}

/// Pod-level security: non-root, a fixed uid/gid (so volumes are writable through `fsGroup`),
/// the runtime's default seccomp profile. Meets the `restricted` Pod Security Standard.
pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// Container-level security: no privilege escalation, no capabilities (every port is above
/// 1024), a read-only root filesystem (writable paths are explicit volumes).
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// An HTTP GET probe on the ops port.
fn ops_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("ops".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// Readiness: `/readyz` answers 503 while the component starts (no snapshot yet) and while a
/// media node drains, which takes the pod out of its Services' endpoints.
pub fn readiness_probe() -> Probe {
    ops_probe("/readyz", 5, 2)
}

/// Liveness: `/healthz` answers 200 while the process can serve HTTP, also while draining, so
/// a node busy finishing its calls is never restarted for being unready.
pub fn liveness_probe() -> Probe {
    Probe {
        initial_delay_seconds: Some(10),
        ..ops_probe("/healthz", 10, 3)
    }
}

/// A plain environment variable.
pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// An environment variable from the Downward API.
pub fn env_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The environment every component gets. Each `dialtone` flag is also an environment variable,
/// so this list is the contract between the operator and the component entry points:
///
/// - `DIALTONE_NAMESPACE`, `DIALTONE_POD_NAME`: who and where the pod is (Downward API);
/// - `DIALTONE_CONFIG`: the mounted snapshot folder, read like a standalone manifest folder;
/// - `DIALTONE_SNAPSHOT`: the snapshot ConfigMap's and Secret's name, for components that watch
///   them through the API to see changes within seconds instead of the kubelet's sync period;
/// - `DIALTONE_OPS_ADDR`: the ops listener; `RUST_LOG` and `OTEL_EXPORTER_OTLP_ENDPOINT`: logs
///   and telemetry, as `dialtone::telemetry` reads them.
pub fn common_env(ctx: &BuildContext) -> Vec<EnvVar> {
    let mut vars = vec![
        env_field("DIALTONE_NAMESPACE", "metadata.namespace"),
        env_field("DIALTONE_POD_NAME", "metadata.name"),
        env("DIALTONE_CONFIG", CONFIG_DIR),
        env("DIALTONE_SNAPSHOT", super::snapshot::SNAPSHOT_NAME),
        env("DIALTONE_OPS_ADDR", format!("0.0.0.0:{OPS_PORT}")),
        env("RUST_LOG", ctx.log_level.clone()),
    ];
    if let Some(endpoint) = &ctx.otlp_endpoint {
        vars.push(env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()));
    }
    vars
}

/// Resource requests (no limits: a CPU limit throttles media relaying, and memory use follows
/// the call count, which the autoscaler bounds).
pub fn requests(cpu: &str, memory: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])),
        ..ResourceRequirements::default()
    }
}

/// A named container port.
pub fn port(name: &str, number: i32, protocol: &str) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some(protocol.to_owned()),
        ..ContainerPort::default()
    }
}

/// A container running `dialtone <args>` with the shared security context and probes.
pub fn container(name: &str, args: &[&str], ctx: &BuildContext) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(ctx.image.clone()),
        image_pull_policy: Some(ctx.image_pull_policy.clone()),
        command: Some(vec!["dialtone".to_owned()]),
        args: Some(args.iter().map(|a| (*a).to_owned()).collect()),
        env: Some(common_env(ctx)),
        readiness_probe: Some(readiness_probe()),
        liveness_probe: Some(liveness_probe()),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

/// The snapshot volume: the snapshot ConfigMap (`manifests.yaml`) and Secret (`secrets.yaml`)
/// projected into one folder, the same shape as a standalone manifest folder, so the component
/// can load and reload it with the standalone code. Not `optional`: a component must not start
/// before the operator has published a validated snapshot. Mounted as a whole folder, never with
/// `subPath`, so the kubelet updates it in place and no pod restarts on a change.
pub fn config_volume() -> Volume {
    let name = super::snapshot::SNAPSHOT_NAME.to_owned();
    Volume {
        name: "config".to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: name.clone(),
                        ..ConfigMapProjection::default()
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    secret: Some(SecretProjection {
                        name,
                        ..SecretProjection::default()
                    }),
                    ..VolumeProjection::default()
                },
            ]),
            default_mode: Some(0o440),
        }),
        ..Volume::default()
    }
}

/// An `emptyDir` volume.
pub fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// A volume mount.
pub fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// Prefer spreading a component's pods over nodes (a node failure then takes one replica).
pub fn spread_over_nodes(
    instance: &str,
    component: Component,
) -> k8s_openapi::api::core::v1::Affinity {
    use k8s_openapi::api::core::v1::{
        Affinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
    };
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(selector(instance, component)),
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}
