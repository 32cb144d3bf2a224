//! Configuration delivery: the operator publishes one compiled snapshot per namespace.
//!
//! # Why a published snapshot, not reflectors in every component
//!
//! - **One writer, validated once.** The operator validates the namespace's resources with the
//!   standalone loader and publishes only what passed. Components with their own reflectors would
//!   each see a different moment of a `kubectl apply -f dir/` in flight (a PhoneNumber before
//!   the scheme it names) and disagree about what is valid.
//! - **One object to watch.** N media nodes watching eight kinds plus Secrets is 9N watches on
//!   the API server; watching the snapshot is two each, and the API server serves those from its
//!   watch cache.
//! - **Least privilege.** The components read two named objects instead of every Secret of the
//!   namespace: no credentials they do not use, no access to the CRDs.
//! - **Standalone parity.** The snapshot has the shape of a standalone manifest folder
//!   (`manifests.yaml`, `secrets.yaml`), so a component mounts it and loads and reloads it with
//!   the same loader and folder watcher as `dialtone up`.
//!
//! # How a ForwardingScheme change reaches calls without a restart
//!
//! The operator rewrites the snapshot (Secret first, then the ConfigMap). Components watch both
//! objects by name through the API (see [`super::rbac`]) and swap their in-memory snapshot within
//! seconds; calls in progress keep the snapshot they started with. The mounted copy (a projected
//! volume, no `subPath`) follows within the kubelet's sync period (about a minute) and serves as
//! the source at start. Pod templates never reference the snapshot's content (no checksum
//! annotation), so no change of configuration restarts a pod.
//!
//! The ConfigMap's [`SECRETS_HASH_ANNOTATION`] names the content hash of the Secret it was built
//! with: a watcher that sees the ConfigMap first waits for the matching Secret. A reader of the
//! mounted folder that catches a new `manifests.yaml` with an old `secrets.yaml` gets a loader
//! error for the new Secret reference, keeps its last good snapshot, and reloads when the Secret
//! arrives — the standalone rule for a reload with errors.
//!
//! The cost: a Kubernetes object holds at most about 1 MiB, so a namespace's manifests must fit
//! (about 2,000 typical resources; [`BuildError::SnapshotTooLarge`] says so when not).

use std::collections::{BTreeMap, BTreeSet};

use dialtone_model::loader::Manifests;
use dialtone_model::resources::{CallCenter, CallCenterSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::common::{Component, MANAGER, Owner};
use super::{BuildContext, BuildError, DesiredObject};

/// Name of the snapshot ConfigMap and of the snapshot Secret: fixed, because the snapshot
/// belongs to the namespace (one CallCenter per namespace) and a fixed name lets the chart's RBAC
/// restrict the operator's writes to Secrets to this one name.
pub const SNAPSHOT_NAME: &str = "dialtone-snapshot";
/// The ConfigMap key holding the validated manifests.
pub const MANIFESTS_KEY: &str = "manifests.yaml";
/// The Secret key holding the Secrets those manifests reference.
pub const SECRETS_KEY: &str = "secrets.yaml";
/// Content hash of the object's payload (FNV-1a, 64 bits, hex).
pub const CONTENT_HASH_ANNOTATION: &str = "dialtone.dev/content-hash";
/// On the ConfigMap: the content hash of the Secret it goes with.
pub const SECRETS_HASH_ANNOTATION: &str = "dialtone.dev/secrets-hash";
/// Who writes the snapshot (`<namespace>/dialtone-operator`): hand edits are overwritten.
pub const PUBLISHED_BY_ANNOTATION: &str = "dialtone.dev/published-by";
/// Most payload bytes per object, leaving room for metadata under the API server's 1 MiB.
pub const MAX_PAYLOAD_BYTES: usize = 1_000_000;

const BUNDLE_HEADER: &str =
    "# Published by the dialtone operator from the namespace's validated resources. Do not edit.\n";

/// The snapshot's two payloads, as rendered by [`render_manifests`] and [`render_secrets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotBundle {
    /// Multi-document YAML of the validated resources.
    pub manifests_yaml: String,
    /// Multi-document YAML of the Secrets they reference.
    pub secrets_yaml: String,
}

impl SnapshotBundle {
    /// Renders both payloads from validated manifests.
    pub fn render(manifests: &Manifests) -> Result<Self, BuildError> {
        Ok(Self {
            manifests_yaml: render_manifests(manifests)?,
            secrets_yaml: render_secrets(manifests)?,
        })
    }
}

/// FNV-1a, 64 bits, as 16 hex digits: a cheap content fingerprint (not a security measure).
pub fn content_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn render_error(what: &str, e: impl std::fmt::Display) -> BuildError {
    BuildError::Render {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

/// Metadata as published: name, namespace, labels (queues and ring steps select agents by
/// them) and annotations, without what the API server adds.
fn published_meta(meta: &ObjectMeta) -> ObjectMeta {
    let annotations = meta.annotations.as_ref().map(|a| {
        a.iter()
            .filter(|(k, _)| *k != "kubectl.kubernetes.io/last-applied-configuration")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    });
    ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        labels: meta.labels.clone().filter(|l| !l.is_empty()),
        annotations: annotations.filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    }
}

/// The validated resources as one multi-document YAML text, in kind order then by name, without
/// status and server-side metadata, so equal resources always give equal bytes whatever order
/// the operator's caches hold them in. Name order is also the API server's list order, so agents
/// selected by labels expand in the same order in every component.
pub fn render_manifests(m: &Manifests) -> Result<String, BuildError> {
    let mut docs = Vec::new();
    macro_rules! kind {
        ($field:ident) => {
            kind!($field, |_| {})
        };
        ($field:ident, $scrub:expr) => {{
            let mut objects: Vec<_> = m.$field.iter().map(|o| o.resource.clone()).collect();
            objects.iter_mut().for_each($scrub);
            objects.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            for mut object in objects {
                object.metadata = published_meta(&object.metadata);
                object.status = None;
                let name = object.metadata.name.clone().unwrap_or_default();
                docs.push(serde_saphyr::to_string(&object).map_err(|e| render_error(&name, e))?);
            }
        }};
    }
    kind!(call_centers, |cc| cc.spec =
        published_call_center_spec(&cc.spec));
    kind!(carriers);
    kind!(schedules);
    kind!(agents);
    kind!(queues);
    kind!(schemes);
    kind!(numbers);
    kind!(blocklists);
    Ok(format!("{BUNDLE_HEADER}{}", docs.join("---\n")))
}

/// A CallCenter's spec as published: without `spec.access`. The components receive their
/// access credentials from the kubelet ([`super::access`]: the internal token as an environment
/// variable, the tokens file as a mounted Secret key), so the snapshot neither references nor
/// copies those Secrets — the dashboard tokens would otherwise reach every media node.
pub fn published_call_center_spec(spec: &CallCenterSpec) -> CallCenterSpec {
    CallCenterSpec {
        access: None,
        ..spec.clone()
    }
}

/// Which Secrets the resources reference, and which of their keys (`None`: the whole Secret,
/// as for SIP credentials, which use `username` and `password`); `spec.access` of the
/// CallCenter excepted (see [`published_call_center_spec`]).
///
/// Found by walking the specs for fields named `secretRef` or `…SecretRef`, so a reference added
/// to a kind later is copied without a change here.
pub fn referenced_secrets(m: &Manifests) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let mut refs: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut specs = Vec::new();
    macro_rules! kind {
        ($field:ident) => {
            specs.extend(
                m.$field
                    .iter()
                    .filter_map(|o| serde_json::to_value(&o.resource.spec).ok()),
            );
        };
    }
    specs.extend(
        m.call_centers.iter().filter_map(|o| {
            serde_json::to_value(published_call_center_spec(&o.resource.spec)).ok()
        }),
    );
    kind!(carriers);
    kind!(schedules);
    kind!(agents);
    kind!(queues);
    kind!(schemes);
    kind!(numbers);
    kind!(blocklists);
    for spec in &specs {
        collect_refs(spec, &mut refs);
    }
    refs
}

fn collect_refs(value: &Value, refs: &mut BTreeMap<String, Option<BTreeSet<String>>>) {
    match value {
        Value::Object(map) => {
            for (field, v) in map {
                let is_ref = field == "secretRef" || field.ends_with("SecretRef");
                if let (true, Some(name)) = (is_ref, v.get("name").and_then(Value::as_str)) {
                    let key = v.get("key").and_then(Value::as_str);
                    let entry = refs
                        .entry(name.to_owned())
                        .or_insert_with(|| Some(BTreeSet::new()));
                    match (key, entry.as_mut()) {
                        (Some(key), Some(keys)) => {
                            keys.insert(key.to_owned());
                        }
                        (None, _) => *entry = None,
                        (Some(_), None) => {}
                    }
                } else {
                    collect_refs(v, refs);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

/// The referenced Secrets, reduced to the referenced keys, as multi-document YAML (`data`,
/// base64, with `stringData` folded in as the API server would). Unreferenced Secrets and keys
/// never leave their namespace's Secret objects.
pub fn render_secrets(m: &Manifests) -> Result<String, BuildError> {
    let refs = referenced_secrets(m);
    let mut docs = Vec::new();
    let mut secrets: Vec<&Secret> = m.secrets.iter().map(|o| &o.resource).collect();
    secrets.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for secret in secrets {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let Some(wanted) = refs.get(&name) else {
            continue;
        };
        let mut values: BTreeMap<String, ByteString> = secret.data.clone().unwrap_or_default();
        if let Some(string_data) = &secret.string_data {
            for (k, v) in string_data {
                values.insert(k.clone(), ByteString(v.clone().into_bytes()));
            }
        }
        if let Some(keys) = wanted {
            values.retain(|k, _| keys.contains(k));
        }
        let published = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: secret.metadata.namespace.clone(),
                ..ObjectMeta::default()
            },
            type_: secret.type_.clone(),
            data: Some(values),
            ..Secret::default()
        };
        docs.push(serde_saphyr::to_string(&published).map_err(|e| render_error(&name, e))?);
    }
    Ok(format!("{BUNDLE_HEADER}{}", docs.join("---\n")))
}

fn snapshot_meta(owner: &Owner, ctx: &BuildContext, hash: &str) -> ObjectMeta {
    let mut meta = owner.meta(SNAPSHOT_NAME, Component::Snapshot);
    meta.annotations = Some(BTreeMap::from([
        (CONTENT_HASH_ANNOTATION.to_owned(), hash.to_owned()),
        (
            PUBLISHED_BY_ANNOTATION.to_owned(),
            format!("{}/{MANAGER}", ctx.operator_namespace),
        ),
    ]));
    meta
}

fn check_size(object: &'static str, payload: &str) -> Result<(), BuildError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(BuildError::SnapshotTooLarge {
            object,
            bytes: payload.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

/// The snapshot Secret holding `secrets_yaml` under [`SECRETS_KEY`].
pub fn desired_snapshot_secret(
    cc: &CallCenter,
    secrets_yaml: &str,
    ctx: &BuildContext,
) -> Result<Secret, BuildError> {
    let owner = Owner::of(cc)?;
    check_size("Secret", secrets_yaml)?;
    Ok(Secret {
        metadata: snapshot_meta(&owner, ctx, &content_hash(secrets_yaml.as_bytes())),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            SECRETS_KEY.to_owned(),
            ByteString(secrets_yaml.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    })
}

/// The snapshot ConfigMap holding `manifests_yaml` under [`MANIFESTS_KEY`], annotated with the
/// hash of the secrets payload it goes with.
pub fn desired_snapshot_configmap(
    cc: &CallCenter,
    manifests_yaml: &str,
    secrets_yaml: &str,
    ctx: &BuildContext,
) -> Result<ConfigMap, BuildError> {
    let owner = Owner::of(cc)?;
    check_size("ConfigMap", manifests_yaml)?;
    let mut metadata = snapshot_meta(&owner, ctx, &content_hash(manifests_yaml.as_bytes()));
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            SECRETS_HASH_ANNOTATION.to_owned(),
            content_hash(secrets_yaml.as_bytes()),
        );
    Ok(ConfigMap {
        metadata,
        data: Some(BTreeMap::from([(
            MANIFESTS_KEY.to_owned(),
            manifests_yaml.to_owned(),
        )])),
        ..ConfigMap::default()
    })
}

/// Both snapshot objects, Secret first: a reader that sees the new ConfigMap can already find
/// the Secrets it references.
pub fn desired_snapshot_objects(
    cc: &CallCenter,
    bundle: &SnapshotBundle,
    ctx: &BuildContext,
) -> Result<Vec<DesiredObject>, BuildError> {
    Ok(vec![
        DesiredObject::Secret(desired_snapshot_secret(cc, &bundle.secrets_yaml, ctx)?),
        DesiredObject::ConfigMap(desired_snapshot_configmap(
            cc,
            &bundle.manifests_yaml,
            &bundle.secrets_yaml,
            ctx,
        )?),
    ])
}
