//! The components' identities and permissions: one ServiceAccount, Role and RoleBinding each.
//!
//! Each component gets its own ServiceAccount even where the rules are alike today, so audit
//! logs name the component and a future need of one does not widen the others. What the
//! components need from the API is small, because the operator does the reading for them:
//!
//! - the snapshot ConfigMap and Secret, by name ([`super::snapshot::SNAPSHOT_NAME`]), to see a
//!   new snapshot within seconds (the mounted copy follows only at the kubelet's sync period).
//!   `list` and `watch` are restricted by `resourceNames` too: the API server applies them when
//!   the request carries `fieldSelector=metadata.name=<name>`, which is how the components watch.
//!
//! Nothing else: the kubelet (not the component) reads the mounted snapshot, the prompts
//! ConfigMap, the database URL Secret and the access Secrets (internal token, tokens file); the operator (not the media node) patches the pods'
//! deletion cost. No rule holds a wildcard.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::DesiredObject;
use super::common::{Component, Names, Owner};
use super::snapshot::SNAPSHOT_NAME;

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

/// The rules a component's Role grants.
pub fn component_rules(component: Component) -> Vec<PolicyRule> {
    match component {
        // Router, reporter and media node alike: their cluster-mode config source watches the
        // snapshot ConfigMap (`manifests.yaml`) and Secret (`secrets.yaml`) named by
        // `DIALTONE_SNAPSHOT`, and reloads the snapshot without a restart. The router needs the
        // credentials too: the loader checks every reference, Secrets included, and refuses a
        // snapshot with a dangling one.
        Component::Router | Component::Reporter | Component::MediaNode => vec![
            // Snapshot manifests (config source: get at start, then list+watch by name).
            PolicyRule {
                api_groups: strings(&[""]),
                resources: strings(&["configmaps"]),
                resource_names: strings(&[SNAPSHOT_NAME]),
                verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
                ..PolicyRule::default()
            },
            // Snapshot credentials (config source, same pattern).
            PolicyRule {
                api_groups: strings(&[""]),
                resources: strings(&["secrets"]),
                resource_names: strings(&[SNAPSHOT_NAME]),
                verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
                ..PolicyRule::default()
            },
        ],
        // Not pods: snapshot, recordings and access objects have no identity of their own.
        Component::Snapshot | Component::Recordings | Component::Access => Vec::new(),
    }
}

/// ServiceAccount, Role and RoleBinding of one component, all named `name`.
fn component_objects(owner: &Owner, name: &str, component: Component) -> [DesiredObject; 3] {
    let meta = owner.meta(name, component);
    [
        DesiredObject::ServiceAccount(ServiceAccount {
            metadata: meta.clone(),
            // The components use their token: the config source watches the snapshot.
            automount_service_account_token: Some(true),
            ..ServiceAccount::default()
        }),
        DesiredObject::Role(Role {
            metadata: meta.clone(),
            rules: Some(component_rules(component)),
        }),
        DesiredObject::RoleBinding(RoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: "Role".to_owned(),
                name: name.to_owned(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: name.to_owned(),
                namespace: Some(owner.namespace.clone()),
                ..Subject::default()
            }]),
        }),
    ]
}

/// The three components' ServiceAccounts, Roles and RoleBindings, in that order (a binding
/// refers to both).
pub fn objects(owner: &Owner, names: &Names) -> Vec<DesiredObject> {
    let mut by_kind: [Vec<DesiredObject>; 3] = Default::default();
    for (name, component) in [
        (&names.router, Component::Router),
        (&names.reporter, Component::Reporter),
        (&names.media_node, Component::MediaNode),
    ] {
        for (i, object) in component_objects(owner, name, component)
            .into_iter()
            .enumerate()
        {
            by_kind[i].push(object);
        }
    }
    by_kind.into_iter().flatten().collect()
}
