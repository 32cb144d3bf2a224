//! The reporter: a Deployment, a Service (gRPC and the HTTP dashboard) and, without a database
//! URL, the PersistentVolumeClaim holding its SQLite database.
//!
//! The reporter runs one replica: it is the single sender of webhooks and alerts, and with SQLite
//! the single writer of the database. With PostgreSQL (`spec.reporter.database.urlSecretRef`)
//! the URL reaches the process as `DIALTONE_DATABASE_URL` through a `secretKeyRef`, so the URL is
//! never copied into the Deployment, and rollouts surge a new pod before stopping the old one
//! (ingestion is idempotent, so the short overlap cannot double-count a call).

use dialtone_model::resources::CallCenterSpec;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, SecretKeySelector, Service,
    ServicePort, ServiceSpec, Volume, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{
    self, Component, DATA_DIR, GRPC_PORT, HTTP_PORT, Names, OPS_PORT, Owner, env, mount, port,
    requests, selector, selector_labels,
};
use super::router::{endpoint_grace_hook, grpc_service_port, ops_service_port};
use super::{BuildContext, access};

/// The environment variable holding the PostgreSQL URL.
pub const DATABASE_URL_ENV: &str = "DIALTONE_DATABASE_URL";

/// Whether the reporter uses SQLite on a volume (no database URL given).
pub fn uses_sqlite(spec: &CallCenterSpec) -> bool {
    spec.reporter.database.url_secret_ref.is_none()
}

/// The SQLite volume, when the reporter uses SQLite. `ReadWriteOnce`: one node mounts it.
///
/// It is owned by the CallCenter like everything else, so deleting the CallCenter deletes the
/// call records with it (the "nothing left behind"); the operator never deletes it on
/// its own — switching to PostgreSQL leaves it in place until the CallCenter goes.
pub fn sqlite_volume(
    owner: &Owner,
    names: &Names,
    spec: &CallCenterSpec,
    ctx: &BuildContext,
) -> Option<PersistentVolumeClaim> {
    uses_sqlite(spec).then(|| PersistentVolumeClaim {
        metadata: owner.meta(&names.reporter_data, Component::Reporter),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: ctx.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(
                    [(
                        "storage".to_owned(),
                        Quantity(ctx.sqlite_volume_size.clone()),
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

pub(crate) fn claim(volume: &str, claim_name: &str, read_only: bool) -> Volume {
    Volume {
        name: volume.to_owned(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim_name.to_owned(),
            read_only: read_only.then_some(true),
        }),
        ..Volume::default()
    }
}

/// The reporter Deployment.
pub fn deployment(
    owner: &Owner,
    names: &Names,
    spec: &CallCenterSpec,
    ctx: &BuildContext,
) -> Deployment {
    let sqlite = uses_sqlite(spec);
    let mut container = common::container("reporter", &["reporter"], ctx);
    container.ports = Some(vec![
        port("grpc", GRPC_PORT, "TCP"),
        port("http", HTTP_PORT, "TCP"),
        port("ops", OPS_PORT, "TCP"),
    ]);
    let mut mounts = vec![
        mount("config", common::CONFIG_DIR, true),
        mount("data", DATA_DIR, false),
        mount("tmp", "/tmp", false),
    ];
    let mut volumes = vec![
        common::config_volume(),
        if sqlite {
            claim("data", &names.reporter_data, false)
        } else {
            common::empty_dir("data")
        },
        common::empty_dir("tmp"),
    ];
    let env_vars = container.env.get_or_insert_with(Vec::new);
    env_vars.push(env("DIALTONE_GRPC_ADDR", format!("0.0.0.0:{GRPC_PORT}")));
    env_vars.push(env("DIALTONE_HTTP_ADDR", format!("0.0.0.0:{HTTP_PORT}")));
    env_vars.push(env("DIALTONE_DATA", DATA_DIR));
    if let Some(secret) = &spec.reporter.database.url_secret_ref {
        env_vars.push(EnvVar {
            name: DATABASE_URL_ENV.to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    // Media nodes and the router must show it to the reporter's Ingest service.
    env_vars.push(access::internal_token_env(names, spec));
    // The dashboard's and the Reports API's credentials.
    if let Some((volume, tokens_mount, tokens_env)) = access::tokens_file(spec) {
        env_vars.push(tokens_env);
        mounts.push(tokens_mount);
        volumes.push(volume);
    }
    if let Some(recordings) = &spec.recordings {
        // The reporter links recordings in webhooks and the dashboard plays them: it reads the
        // media nodes' shared volume, never writes it.
        env_vars.push(env("DIALTONE_RECORDINGS", recordings.storage.clone()));
        mounts.push(mount("recordings", &recordings.storage, true));
        volumes.push(claim("recordings", &names.recordings, true));
    }
    container.volume_mounts = Some(mounts);
    container.lifecycle = Some(endpoint_grace_hook());
    container.resources = Some(requests("100m", "256Mi"));
    let strategy = if sqlite {
        // SQLite on a ReadWriteOnce volume: the old pod must let go of the volume (and of the
        // database file) before the new one starts. A surge pod scheduled on another node would
        // hang on a Multi-Attach error and stall the rollout; two processes writing one SQLite
        // file is how databases get corrupted. Recreate stops first; meanwhile media nodes spool
        // their events, so the gap loses nothing.
        DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            rolling_update: None,
        }
    } else {
        DeploymentStrategy {
            type_: Some("RollingUpdate".to_owned()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        }
    };
    Deployment {
        metadata: owner.meta(&names.reporter, Component::Reporter),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: selector(&owner.name, Component::Reporter),
            strategy: Some(strategy),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(common::labels(&owner.name, Component::Reporter)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(names.reporter.clone()),
                    security_context: Some(common::pod_security()),
                    termination_grace_period_seconds: Some(30),
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

/// The reporter Service: gRPC (ingestion from media nodes, reports for clients), the dashboard
/// over HTTP, and the ops port.
pub fn service(owner: &Owner, names: &Names) -> Service {
    Service {
        metadata: owner.meta(&names.reporter, Component::Reporter),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&owner.name, Component::Reporter)),
            ports: Some(vec![
                grpc_service_port(),
                ServicePort {
                    name: Some("http".to_owned()),
                    port: HTTP_PORT,
                    target_port: Some(IntOrString::String("http".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    app_protocol: Some("http".to_owned()),
                    ..ServicePort::default()
                },
                ops_service_port(),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
