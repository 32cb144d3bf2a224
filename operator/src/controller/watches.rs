//! What the controller watches, and how a change becomes a reconcile of a CallCenter.
//!
//! Per watched scope (one namespace, or all) the operator keeps one reflector — a watch plus an
//! in-memory cache — per kind it reads: the eight `dialtone.dev` kinds, Secrets (credentials the
//! loader checks and the snapshot copies), ConfigMaps (the prompts ConfigMap; the snapshot) and
//! the kinds it creates (ServiceAccounts, Roles, RoleBindings, PersistentVolumeClaims, Services,
//! Deployments, PodDisruptionBudgets, HorizontalPodAutoscalers — watched with the
//! `app.kubernetes.io/managed-by=dialtone-operator` label selector only). A reconcile reads
//! every object from these caches: it makes no read request of its own.
//!
//! Every change is mapped to the CallCenter it concerns: an owned object to its controlling
//! owner, anything else to the CallCenter(s) of its namespace, since one object's validity
//! depends on the others. Changes that cannot matter are dropped before they reach the
//! scheduler: for objects with a `metadata.generation` (the eight kinds, Deployments, …), a
//! change of status only — which is what the operator's own status writes are; for the others,
//! nothing (any new resourceVersion counts). Deletions always count, and also make the
//! [`WriteCache`] forget what was written to the object.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use dialtone_model::resources::{
    API_VERSION, Agent, Blocklist, CallCenter, CallQueue, Carrier, ForwardingScheme, PhoneNumber,
    Schedule,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_stream::{Stream, StreamExt};

use super::cache::WriteCache;
use super::validate::NamespaceObjects;
use crate::desired::common::MANAGER;
use crate::desired::snapshot::SNAPSHOT_NAME;

/// The label selector of the owned-object watches.
pub fn managed_selector() -> String {
    format!("app.kubernetes.io/managed-by={MANAGER}")
}

/// A namespace, or every namespace.
pub type Scope = Option<String>;

/// An `Api` over the scope.
pub fn api<K>(client: Client, scope: &Scope) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match scope {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// The caches of one scope.
#[derive(Clone)]
pub struct Stores {
    pub call_centers: Store<CallCenter>,
    pub carriers: Store<Carrier>,
    pub schedules: Store<Schedule>,
    pub agents: Store<Agent>,
    pub queues: Store<CallQueue>,
    pub schemes: Store<ForwardingScheme>,
    pub numbers: Store<PhoneNumber>,
    pub blocklists: Store<Blocklist>,
    pub secrets: Store<Secret>,
    pub config_maps: Store<ConfigMap>,
    pub service_accounts: Store<ServiceAccount>,
    pub roles: Store<Role>,
    pub role_bindings: Store<RoleBinding>,
    pub volumes: Store<PersistentVolumeClaim>,
    pub services: Store<Service>,
    pub deployments: Store<Deployment>,
    pub budgets: Store<PodDisruptionBudget>,
    pub autoscalers: Store<HorizontalPodAutoscaler>,
}

/// The caches never filled because their watch stopped (the controller is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("a watch cache was dropped before it was filled")]
pub struct StoresGone;

fn in_namespace<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>, ns: &str) -> Vec<Arc<K>> {
    let mut objects = store.state_filter(|o| o.meta().namespace.as_deref() == Some(ns));
    objects.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    objects
}

impl Stores {
    /// Waits until every cache holds its first complete list.
    pub async fn wait_ready(&self) -> Result<(), StoresGone> {
        macro_rules! ready {
            ($($field:ident),*) => {
                $(self.$field.wait_until_ready().await.map_err(|_| StoresGone)?;)*
            };
        }
        ready!(
            call_centers,
            carriers,
            schedules,
            agents,
            queues,
            schemes,
            numbers,
            blocklists,
            secrets,
            config_maps,
            service_accounts,
            roles,
            role_bindings,
            volumes,
            services,
            deployments,
            budgets,
            autoscalers
        );
        Ok(())
    }

    /// What validation needs of namespace `ns`.
    pub fn namespace_objects(&self, ns: &str) -> NamespaceObjects {
        let mut call_centers = in_namespace(&self.call_centers, ns);
        // The oldest CallCenter is the namespace's; the loader reports the others.
        call_centers.sort_by(|a, b| {
            let key = |cc: &CallCenter| {
                (
                    cc.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    cc.metadata.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        let prompts = call_centers
            .first()
            .and_then(|cc| cc.spec.prompts.as_ref())
            .and_then(|p| p.config_map.as_deref())
            .and_then(|name| self.config_maps.get(&ObjectRef::new(name).within(ns)));
        NamespaceObjects {
            namespace: ns.to_owned(),
            call_centers,
            carriers: in_namespace(&self.carriers, ns),
            schedules: in_namespace(&self.schedules, ns),
            agents: in_namespace(&self.agents, ns),
            queues: in_namespace(&self.queues, ns),
            schemes: in_namespace(&self.schemes, ns),
            numbers: in_namespace(&self.numbers, ns),
            blocklists: in_namespace(&self.blocklists, ns),
            secrets: in_namespace(&self.secrets, ns)
                .into_iter()
                .filter(|s| s.name_any() != SNAPSHOT_NAME)
                .collect(),
            prompts,
        }
    }
}

/// What decides whether a change may matter: generation, labels and annotations for objects
/// that have a generation (so status-only changes do not count), the resourceVersion otherwise.
pub fn fingerprint<K: Resource>(object: &K) -> u64 {
    let meta = object.meta();
    let mut h = DefaultHasher::new();
    match meta.generation {
        Some(generation) => {
            generation.hash(&mut h);
            meta.labels.hash(&mut h);
            meta.annotations.hash(&mut h);
            meta.deletion_timestamp.is_some().hash(&mut h);
            meta.uid.hash(&mut h);
        }
        None => meta.resource_version.hash(&mut h),
    }
    h.finish()
}

/// A boxed stream of objects that changed.
pub type Changes<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// One reflector: its cache, and the changes that may matter, as objects.
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    written: Arc<WriteCache>,
) -> (Store<K>, Changes<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let events = reflector::reflector(writer, watcher(api, config).default_backoff());
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    let changes = events.filter_map(move |event| match event {
        Err(e) => Some(Err(e)),
        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
            let key = (o.namespace().unwrap_or_default(), o.name_any());
            let fp = fingerprint(&o);
            (seen.insert(key, fp) != Some(fp)).then_some(Ok(o))
        }
        Ok(watcher::Event::Delete(o)) => {
            let (ns, name) = (o.namespace().unwrap_or_default(), o.name_any());
            written.forget(kind, &ns, &name);
            seen.remove(&(ns, name));
            Some(Ok(o))
        }
        Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
    });
    (reader, Box::pin(changes))
}

/// The CallCenters of an object's namespace.
pub fn call_centers_of<K: Resource>(
    call_centers: &Store<CallCenter>,
    object: &K,
) -> Vec<ObjectRef<CallCenter>> {
    let ns = object.meta().namespace.clone();
    call_centers
        .state_filter(|cc| cc.metadata.namespace == ns)
        .iter()
        .map(|cc| ObjectRef::from_obj(&**cc))
        .collect()
}

/// The CallCenter controlling an owned object.
pub fn owner_of<K: Resource>(object: &K) -> Vec<ObjectRef<CallCenter>> {
    let Some(ns) = object.meta().namespace.as_deref() else {
        return Vec::new();
    };
    object
        .owner_references()
        .iter()
        .filter(|r| r.controller == Some(true))
        .filter(|r| r.kind == "CallCenter" && r.api_version == API_VERSION)
        .map(|r| ObjectRef::new(&r.name).within(ns))
        .collect()
}
