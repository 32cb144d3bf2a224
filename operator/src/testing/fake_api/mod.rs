//! An in-process fake Kubernetes API server for end-to-end tests of the operator (and the
//! components' cluster configuration source) and for the `operator_apply` benchmark.
//!
//! It speaks the real HTTP API (axum on `127.0.0.1:0`, plain HTTP) to a real `kube::Client`, and
//! is generic over resource kinds: any `/api/v1/...` or `/apis/{group}/{version}/...` path is a
//! resource, stored as JSON. Served:
//!
//! - **get**, **list** (with `resourceVersion` in the list metadata, label and field selectors),
//!   **watch** (`?watch=true`: newline-delimited `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` events
//!   from `resourceVersion` on, `allowWatchBookmarks`, `timeoutSeconds`; objects entering or
//!   leaving a label selection appear as ADDED/DELETED);
//! - **create** (POST), **replace** (PUT; a stale `metadata.resourceVersion` is a 409 Conflict),
//!   **merge patch**, **server-side apply** (`application/apply-patch+yaml`: the applied fields
//!   merge into the object, lists replace whole, fields the same manager stopped applying are
//!   removed; creates the object when missing; no managedFields, no conflict detection between
//!   managers), **delete** (finalizers respected; background garbage collection of objects whose
//!   ownerReferences all point at deleted owners; `propagationPolicy: Orphan` honored);
//! - the **`/status` subresource** (GET/PUT/PATCH): writes to the main resource keep the stored
//!   status, writes to `/status` change only the status;
//! - one global resourceVersion counter; uid, creationTimestamp and generation (bumped when
//!   anything but metadata and status changes); Secrets' `stringData` folded into `data`.
//!
//! Every request is counted by verb and path ([`FakeApi::requests`]), so tests and benchmarks can
//! assert how many requests a controller made. [`FakeApi::wait_until`] waits for a condition on
//! the stored objects without sleeping: it re-checks on every change.

#![allow(dead_code)]

pub mod http;
pub mod merge;
pub mod selector;
pub mod store;
pub mod types;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kube::Resource;
// Through k8s-openapi's re-export, so this module also compiles where it is included by path in
// a crate without a direct serde dependency (the root crate's `tests/cluster_config.rs`).
use k8s_openapi::serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use store::{ResourceId, Store};

/// What the server shares between requests.
pub struct Shared {
    store: Mutex<Store>,
    requests: Mutex<BTreeMap<(String, String), u64>>,
    version: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, verb: &str, path: &str) {
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((verb.to_owned(), path.to_owned()))
            .or_insert(0) += 1;
    }

    fn changed(&self, rv: u64) {
        self.version.send_if_modified(|v| {
            let changed = *v != rv;
            *v = rv;
            changed
        });
    }
}

/// Requests counted by `(verb, path)`; verbs as in the API server's audit log (`get`, `list`,
/// `watch`, `create`, `update`, `patch`, `delete`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `(verb, path)` → count.
    pub by_verb_path: BTreeMap<(String, String), u64>,
}

/// Verbs that change the store.
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

impl RequestCounts {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.by_verb_path.values().sum()
    }

    /// Requests with this verb.
    pub fn verb(&self, verb: &str) -> u64 {
        self.matching(|v, _| v == verb)
    }

    /// Create, update, patch and delete requests.
    pub fn writes(&self) -> u64 {
        self.matching(|v, _| WRITE_VERBS.contains(&v))
    }

    /// Requests whose verb and path satisfy `f`.
    pub fn matching(&self, f: impl Fn(&str, &str) -> bool) -> u64 {
        self.by_verb_path
            .iter()
            .filter(|((v, p), _)| f(v, p))
            .map(|(_, n)| n)
            .sum()
    }

    /// The requests made since `earlier` was taken.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        let by_verb_path = self
            .by_verb_path
            .iter()
            .filter_map(|(k, n)| {
                let before = earlier.by_verb_path.get(k).copied().unwrap_or(0);
                (*n > before).then(|| (k.clone(), n - before))
            })
            .collect();
        RequestCounts { by_verb_path }
    }

    /// Totals per verb.
    pub fn per_verb(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((verb, _), n) in &self.by_verb_path {
            *out.entry(verb.clone()).or_insert(0) += n;
        }
        out
    }
}

/// The resource id (`group/version/plural`) of a kind.
pub fn resource_id<K: Resource<DynamicType = ()>>() -> ResourceId {
    format!("{}/{}/{}", K::group(&()), K::version(&()), K::plural(&()))
}

/// A running fake API server. Dropping it stops the server.
pub struct FakeApi {
    shared: Arc<Shared>,
    url: String,
    server: JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeApi {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Self {
        let (version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            requests: Mutex::new(BTreeMap::new()),
            version,
        });
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("a local address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            shared,
            url: format!("http://{addr}"),
            server,
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A real kube client talking to this server.
    pub fn client(&self) -> kube::Client {
        let uri = self.url.parse().expect("a valid URL");
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".to_owned();
        kube::Client::try_from(config).expect("a kube client")
    }

    /// The requests counted so far.
    pub fn requests(&self) -> RequestCounts {
        RequestCounts {
            by_verb_path: self
                .shared
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// The current (last handed out) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// One object, typed.
    pub fn get<K>(&self, ns: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let store = self.shared.lock();
        let value = store.get(&resource_id::<K>(), ns, name)?.clone();
        drop(store);
        Some(serde_json::from_value(value).expect("a stored object deserializes"))
    }

    /// Objects of a kind in a namespace (`None`: all), typed.
    pub fn list<K>(&self, ns: Option<&str>) -> Vec<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let values: Vec<Value> = self
            .shared
            .lock()
            .list(&resource_id::<K>(), ns)
            .into_iter()
            .cloned()
            .collect();
        values
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("a stored object deserializes"))
            .collect()
    }

    /// Every stored object as `(resource, namespace, name)`.
    pub fn keys(&self) -> Vec<(ResourceId, String, String)> {
        self.shared.lock().objects.keys().cloned().collect()
    }

    /// A stored object as JSON.
    pub fn get_json(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.shared.lock().get(resource, ns, name).cloned()
    }

    /// How many stored objects of `resource` in `ns` (`None`: every namespace) satisfy `f`,
    /// checked under the store's lock without copying them: cheap enough to poll thousands of
    /// objects (the benchmark's readiness check).
    pub fn count(
        &self,
        resource: &str,
        ns: Option<&str>,
        mut f: impl FnMut(&Value) -> bool,
    ) -> usize {
        self.shared
            .lock()
            .list(resource, ns)
            .into_iter()
            .filter(|o| f(o))
            .count()
    }

    /// Waits until `condition` holds, re-checking after every change of the store, for at most
    /// `timeout`. Panics naming `what` on timeout.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl FnMut(&FakeApi) -> bool,
    ) {
        let mut changes = self.shared.version.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if condition(self) {
                return;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("the fake API stopped while waiting for {what}"),
                Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
            }
        }
    }
}
