//! The router: a Deployment and a ClusterIP Service on the gRPC port.
//!
//! The router holds agent presence, reservations and queues in one process: that single
//! critical section is what guarantees no agent is offered more than `maxConcurrentCalls`.
//! Two routers behind one Service would each hand out the same agent, so the Deployment runs
//! exactly one replica whatever `spec.router.replicas` says (until an active/standby router
//! lands), and rolls by recreating: for the seconds a new router takes to start, media nodes
//! route calls with each number's backup scheme, as they do whenever the router is away.

use dialtone_model::resources::CallCenterSpec;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    LifecycleHandler, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec, SleepAction,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{
    self, Component, GRPC_PORT, Names, OPS_PORT, Owner, env, mount, port, requests, selector,
    selector_labels,
};
use super::{BuildContext, access};

/// Seconds a stopping pod of the router or reporter keeps serving after it is removed from the
/// Service endpoints, so clients that still hold the old endpoint list are not refused.
pub const ENDPOINT_GRACE_SECONDS: i64 = 5;

/// A `preStop` hook that only waits [`ENDPOINT_GRACE_SECONDS`] (the kubelet's built-in sleep
/// action: the image needs no shell).
pub fn endpoint_grace_hook() -> k8s_openapi::api::core::v1::Lifecycle {
    k8s_openapi::api::core::v1::Lifecycle {
        pre_stop: Some(LifecycleHandler {
            sleep: Some(SleepAction {
                seconds: ENDPOINT_GRACE_SECONDS,
            }),
            ..LifecycleHandler::default()
        }),
        ..k8s_openapi::api::core::v1::Lifecycle::default()
    }
}

/// A `gRPC` Service port; `appProtocol: kubernetes.io/h2c` tells gateways and meshes that it
/// is cleartext HTTP/2.
pub fn grpc_service_port() -> ServicePort {
    ServicePort {
        name: Some("grpc".to_owned()),
        port: GRPC_PORT,
        target_port: Some(IntOrString::String("grpc".to_owned())),
        protocol: Some("TCP".to_owned()),
        app_protocol: Some("kubernetes.io/h2c".to_owned()),
        ..ServicePort::default()
    }
}

/// The ops Service port (`/metrics`), for a ServiceMonitor.
pub fn ops_service_port() -> ServicePort {
    ServicePort {
        name: Some("ops".to_owned()),
        port: OPS_PORT,
        target_port: Some(IntOrString::String("ops".to_owned())),
        protocol: Some("TCP".to_owned()),
        app_protocol: Some("http".to_owned()),
        ..ServicePort::default()
    }
}

/// The router Deployment.
pub fn deployment(
    owner: &Owner,
    names: &Names,
    spec: &CallCenterSpec,
    ctx: &BuildContext,
) -> Deployment {
    let mut container = common::container("router", &["router"], ctx);
    container.ports = Some(vec![
        port("grpc", GRPC_PORT, "TCP"),
        port("ops", OPS_PORT, "TCP"),
    ]);
    let env_vars = container.env.get_or_insert_with(Vec::new);
    env_vars.push(env("DIALTONE_GRPC_ADDR", format!("0.0.0.0:{GRPC_PORT}")));
    // Agent state changes are events too (the heat map's "agents available per hour").
    env_vars.push(env("DIALTONE_REPORTER_URL", names.reporter_url()));
    // Media nodes must show it to the router's Router service; the router shows it to the
    // reporter's Ingest service.
    env_vars.push(access::internal_token_env(names, spec));
    let mut mounts = vec![
        mount("config", common::CONFIG_DIR, true),
        mount("tmp", "/tmp", false),
    ];
    let mut volumes = vec![common::config_volume(), common::empty_dir("tmp")];
    // The CallControl API's credentials (no tokens file: the router does not serve it).
    if let Some((volume, tokens_mount, tokens_env)) = access::tokens_file(spec) {
        env_vars.push(tokens_env);
        mounts.push(tokens_mount);
        volumes.push(volume);
    }
    container.volume_mounts = Some(mounts);
    container.lifecycle = Some(endpoint_grace_hook());
    container.resources = Some(requests("100m", "128Mi"));
    Deployment {
        metadata: owner.meta(&names.router, Component::Router),
        spec: Some(DeploymentSpec {
            // One router: presence and reservations must live in one process (see above).
            replicas: Some(spec.router.replicas.min(1)),
            selector: selector(&owner.name, Component::Router),
            // Never two routers at once, not even during a rollout.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(common::labels(&owner.name, Component::Router)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(names.router.clone()),
                    security_context: Some(common::pod_security()),
                    affinity: Some(common::spread_over_nodes(&owner.name, Component::Router)),
                    termination_grace_period_seconds: Some(30),
                    // Service links would inject an env var per Service of the namespace.
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

/// The router Service: media nodes and clients reach the router through it.
pub fn service(owner: &Owner, names: &Names) -> Service {
    Service {
        metadata: owner.meta(&names.router, Component::Router),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&owner.name, Component::Router)),
            ports: Some(vec![grpc_service_port(), ops_service_port()]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// At most one router pod down at a time during node drains and cluster upgrades.
pub fn disruption_budget(owner: &Owner, names: &Names) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owner.meta(&names.router, Component::Router),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(&owner.name, Component::Router)),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
