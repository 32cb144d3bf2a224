//! Applying the desired objects: server-side apply with the field manager `dialtone-operator`
//! and `force` (the operator owns these objects; a hand edit of a field it sets is reverted),
//! in the order [`crate::desired`] returns them — but only objects whose cached copy does not
//! already contain every field the operator would apply, so a reconcile with nothing to change
//! makes no request.
//!
//! "Contains" is a subset comparison: every field of the desired object is present in the live
//! one with the same value (lists element by element), and anything else the API server or
//! other controllers added (defaults, status, other managers' fields) is ignored.
//!
//! A [`DesiredObject::GeneratedSecret`] is the exception: it is created when absent and never
//! patched (see [`crate::desired::access`]).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;

use super::cache::Part;
use super::reconcile::{Context, ReconcileError, ReconcileReport};
use super::watches::Stores;
use crate::desired::DesiredObject;
use crate::desired::common::MANAGER;

/// Whether `live` has every field of `desired` with the same value.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(l), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| l.get(k).map_or(dv.is_null(), |lv| contains(lv, dv))),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains(lv, dv))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        _ => live == desired,
    }
}

fn cached<K>(store: &Store<K>, ns: &str, name: &str) -> Option<(Option<String>, Value)>
where
    K: Resource<DynamicType = ()> + Clone + Serialize,
{
    let object = store.get(&ObjectRef::new(name).within(ns))?;
    let value = serde_json::to_value(&*object).ok()?;
    Some((object.resource_version(), value))
}

/// The cached copy of a desired object, and the API resource to apply it through.
fn lookup(
    stores: &Stores,
    object: &DesiredObject,
    ns: &str,
) -> (ApiResource, Option<(Option<String>, Value)>) {
    let name = object.name();
    macro_rules! pick {
        ($store:ident, $ty:ty) => {
            (
                ApiResource::erase::<$ty>(&()),
                cached(&stores.$store, ns, name),
            )
        };
    }
    match object {
        DesiredObject::ServiceAccount(_) => pick!(service_accounts, ServiceAccount),
        DesiredObject::Role(_) => pick!(roles, Role),
        DesiredObject::RoleBinding(_) => pick!(role_bindings, RoleBinding),
        DesiredObject::Secret(_) | DesiredObject::GeneratedSecret(_) => pick!(secrets, Secret),
        DesiredObject::ConfigMap(_) => pick!(config_maps, ConfigMap),
        DesiredObject::PersistentVolumeClaim(_) => pick!(volumes, PersistentVolumeClaim),
        DesiredObject::Service(_) => pick!(services, Service),
        DesiredObject::Deployment(_) => pick!(deployments, Deployment),
        DesiredObject::PodDisruptionBudget(_) => pick!(budgets, PodDisruptionBudget),
        DesiredObject::HorizontalPodAutoscaler(_) => pick!(autoscalers, HorizontalPodAutoscaler),
    }
}

/// Applies, in order, every desired object not already in shape. Returns the kinds and names
/// applied.
pub async fn apply_all(
    ctx: &Arc<Context>,
    ns: &str,
    desired: &[DesiredObject],
    report: &mut ReconcileReport,
) -> Result<Vec<String>, ReconcileError> {
    let mut applied = Vec::new();
    for object in desired {
        let name = object.name().to_owned();
        let kind = object.kind();
        let body = object.to_json().map_err(ReconcileError::Build)?;
        let (resource, live) = lookup(&ctx.stores, object, ns);
        let key = (kind, ns.to_owned(), name.clone(), Part::Object);
        let (rv, live_value) = live.unwrap_or((None, Value::Null));
        let current = ctx.written.current(&key, rv.as_deref(), live_value);
        if contains(&current, &body) {
            continue;
        }
        if let DesiredObject::GeneratedSecret(secret) = object {
            // Create-only: once it exists (or this operator created it and the watch has not
            // caught up), its value is what the pods hold; never overwrite it.
            if !current.is_null() || !create(ctx, ns, secret).await? {
                continue;
            }
            ctx.written.wrote(key, rv, body);
            report.applies += 1;
            applied.push(format!("{kind}/{name}"));
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &resource);
        let params = PatchParams::apply(MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|source| ReconcileError::Kube {
                what: format!("apply {kind}/{name}"),
                source,
            })?;
        ctx.written.wrote(key, rv, body);
        report.applies += 1;
        applied.push(format!("{kind}/{name}"));
    }
    Ok(applied)
}

/// Creates `secret` (verb `create` only, which the operator's RBAC grants for any Secret name).
/// `false` when it already exists: the watch cache lags behind, and the next reconcile reads
/// the existing value.
async fn create(ctx: &Arc<Context>, ns: &str, secret: &Secret) -> Result<bool, ReconcileError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let params = PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api.create(&params, secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(source) => Err(ReconcileError::Kube {
            what: format!("create Secret/{}", secret.name_any()),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_comparison_ignores_what_the_server_adds() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 5060}]}});
        let live = json!({
            "spec": {"replicas": 2, "ports": [{"port": 5060, "protocol": "UDP"}], "x": 1},
            "status": {"ready": 1}
        });
        assert!(contains(&live, &desired));
        assert!(!contains(&json!({"spec": {"replicas": 3}}), &desired));
        assert!(!contains(&Value::Null, &desired));
        assert!(contains(&json!({"a": 1.0}), &json!({"a": 1})));
        assert!(!contains(&json!({"l": [1, 2]}), &json!({"l": [1]})));
    }
}
