//! Cluster mode's configuration source: the snapshot the operator publishes — the ConfigMap
//! `dialtone-snapshot` (key `manifests.yaml`) and the Secret of the same name (key
//! `secrets.yaml`), together a manifest folder — read and watched through the Kubernetes API, so
//! that a change (a ForwardingScheme edit) reaches the router, the reporter and the media nodes
//! within seconds, without a restart and without waiting for the kubelet to refresh the
//! mounted copy (about a minute).
//!
//! Same semantics as the folder source ([`crate::config_watch`]):
//!
//! - [`load_snapshot`] at start: the snapshot, or every problem (a component refuses to start
//!   on a snapshot with errors);
//! - [`watch_snapshot`] afterwards: one watch per object, on the field selector
//!   `metadata.name=<name>` (which is what the components' Roles allow: `get`, `list` and
//!   `watch` on these two names only); every change of either payload is loaded with the shared
//!   loader and published on the `watch` channel when good; a snapshot with errors is refused,
//!   each problem logged, and the last good one kept. [`ReloadStatus`] counts the attempts and
//!   holds the latest one's problems.
//!
//! Consistency between the two objects: the operator writes the Secret first, then the
//! ConfigMap, whose `dialtone.dev/secrets-hash` annotation names the content hash of the
//! Secret payload it was built with. A pair whose hashes disagree is in the middle of a
//! publication: it is not loaded (no attempt, no error) until the other half arrives. A
//! ConfigMap without the annotation (written by hand) is loaded with whatever Secret there is.
//!
//! Prompts are not checked ([`PromptCatalog::Unchecked`]): the operator validated the snapshot
//! against the prompts ConfigMap before publishing it, and the components' Roles do not grant
//! reading that ConfigMap (the kubelet mounts it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dialtone_model::Snapshot;
use dialtone_model::loader::{Environment, PromptCatalog, SourceFile, load};
use dialtone_operator::desired::snapshot::{
    MANIFESTS_KEY, SECRETS_HASH_ANNOTATION, SECRETS_KEY, content_hash,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_stream::StreamExt;

use crate::config_watch::ReloadStatus;

/// The environment variable naming the snapshot (set by the operator on every component).
pub const SNAPSHOT_ENV: &str = "DIALTONE_SNAPSHOT";
/// The environment variable holding the pod's namespace (set by the operator, downward API).
pub const NAMESPACE_ENV: &str = "DIALTONE_NAMESPACE";

/// How often, and how long apart, [`load_snapshot`] re-reads a pair caught in the middle of a
/// publication before loading it anyway.
const CONSISTENCY_RETRIES: u32 = 10;
const CONSISTENCY_PAUSE: Duration = Duration::from_millis(200);

/// Where a component reads its snapshot in a cluster: a namespace and the name of the
/// ConfigMap and Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSource {
    /// The namespace.
    pub namespace: String,
    /// The ConfigMap's and the Secret's name (`dialtone-snapshot`).
    pub name: String,
}

impl SnapshotSource {
    /// Parses `configmap:<namespace>/<name>`, `<namespace>/<name>` or `<name>` (in
    /// `default_namespace`).
    pub fn parse(text: &str, default_namespace: Option<&str>) -> Result<Self, String> {
        let text = text.trim();
        let rest = text.strip_prefix("configmap:").unwrap_or(text);
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, name)) => (ns.to_owned(), name.to_owned()),
            None => match default_namespace.filter(|ns| !ns.is_empty()) {
                Some(ns) => (ns.to_owned(), rest.to_owned()),
                None => {
                    return Err(format!(
                        "{text:?} names no namespace: use <namespace>/<name> or set {NAMESPACE_ENV}"
                    ));
                }
            },
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        };
        if !valid(&namespace) || !valid(&name) {
            return Err(format!(
                "{text:?} is not configmap:<namespace>/<name> with Kubernetes names"
            ));
        }
        Ok(Self { namespace, name })
    }

    /// The source the environment names: [`SNAPSHOT_ENV`] (in [`NAMESPACE_ENV`] unless it
    /// names a namespace itself); `None` when it is unset or empty (standalone: the folder).
    pub fn from_env() -> Result<Option<Self>, String> {
        let Some(text) = std::env::var(SNAPSHOT_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
        else {
            return Ok(None);
        };
        let namespace = std::env::var(NAMESPACE_ENV).ok();
        Self::parse(&text, namespace.as_deref()).map(Some)
    }
}

impl std::fmt::Display for SnapshotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "configmap:{}/{}", self.namespace, self.name)
    }
}

/// Why no snapshot could be read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterConfigError {
    /// No Kubernetes client could be configured (not in a cluster, no kubeconfig).
    #[error("cannot configure the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// An API request failed.
    #[error("cannot read the {what} {namespace}/{name}: {error}")]
    Api {
        /// `snapshot ConfigMap` or `snapshot Secret`.
        what: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client's error.
        #[source]
        error: kube::Error,
    },
    /// The ConfigMap does not exist: the operator has not published a snapshot (yet).
    #[error(
        "the snapshot ConfigMap {namespace}/{name} does not exist: the operator publishes it once \
         the namespace's CallCenter is valid (see `kubectl describe callcenter`)"
    )]
    Missing {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The snapshot has errors: every problem, formatted `file:line: Kind/name: message`.
    #[error("{origin} has {} problem(s):\n{}", .problems.len(), .problems.join("\n"))]
    Invalid {
        /// `configmap:<namespace>/<name>`.
        origin: String,
        /// The problems, one per line.
        problems: Vec<String>,
    },
}

impl ClusterConfigError {
    /// Every problem, one per line (for printing at start).
    pub fn problems(&self) -> Vec<String> {
        match self {
            Self::Invalid { problems, .. } => problems.clone(),
            other => vec![other.to_string()],
        }
    }
}

/// The two payloads of one ConfigMap + Secret pair.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Payloads {
    manifests: String,
    secrets: String,
}

/// What a pair holds: the payloads, whether they belong together, and problems with the
/// objects themselves (a missing key, a payload that is not UTF-8).
struct Pair {
    payloads: Payloads,
    consistent: bool,
    problems: Vec<String>,
}

fn pair(source: &SnapshotSource, config_map: Option<&ConfigMap>, secret: Option<&Secret>) -> Pair {
    let mut problems = Vec::new();
    let manifests = match config_map {
        None => {
            problems.push(format!(
                "{source}: the snapshot ConfigMap {}/{} does not exist",
                source.namespace, source.name
            ));
            String::new()
        }
        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(MANIFESTS_KEY)) {
            Some(text) => text.clone(),
            None => {
                problems.push(format!(
                    "{source}: the snapshot ConfigMap has no key {MANIFESTS_KEY}"
                ));
                String::new()
            }
        },
    };
    let secrets = match secret
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(SECRETS_KEY))
    {
        Some(bytes) => match String::from_utf8(bytes.0.clone()) {
            Ok(text) => text,
            Err(_) => {
                problems.push(format!(
                    "{source}: the snapshot Secret's {SECRETS_KEY} is not UTF-8 text"
                ));
                String::new()
            }
        },
        // No Secret (or no key): no credentials; the loader reports every reference to one.
        None => String::new(),
    };
    let expected = config_map
        .and_then(|cm| cm.metadata.annotations.as_ref())
        .and_then(|a| a.get(SECRETS_HASH_ANNOTATION));
    let consistent = expected.is_none_or(|h| *h == content_hash(secrets.as_bytes()));
    Pair {
        payloads: Payloads { manifests, secrets },
        consistent,
        problems,
    }
}

/// Loads the payloads with the shared loader: the snapshot, or every problem.
fn load_payloads(source: &SnapshotSource, payloads: &Payloads) -> Result<Snapshot, Vec<String>> {
    let origin = format!("{source}");
    let files = [
        SourceFile {
            path: format!("{origin}/{MANIFESTS_KEY}"),
            text: payloads.manifests.clone(),
        },
        SourceFile {
            path: format!("{origin}/{SECRETS_KEY}"),
            text: payloads.secrets.clone(),
        },
    ];
    let report = load(
        &files,
        &Environment {
            prompts: PromptCatalog::Unchecked,
        },
    );
    for w in report.warnings() {
        tracing::warn!(source = %origin, problem = %w, "snapshot warning");
    }
    let problems: Vec<String> = report.errors().map(ToString::to_string).collect();
    match report.snapshot {
        Some(snapshot) if problems.is_empty() => Ok(snapshot),
        _ if problems.is_empty() => Err(vec![format!("{origin}: the loader gave no snapshot")]),
        _ => Err(problems),
    }
}

/// Loads off the async runtime (a large namespace takes milliseconds to validate).
async fn load_blocking(
    source: &SnapshotSource,
    payloads: Payloads,
) -> Result<Snapshot, Vec<String>> {
    let source2 = source.clone();
    match tokio::task::spawn_blocking(move || load_payloads(&source2, &payloads)).await {
        Ok(result) => result,
        Err(e) => Err(vec![format!("{source}: the load task failed: {e}")]),
    }
}

/// Reads the snapshot ConfigMap and Secret `name` of `namespace` once and loads them: what a
/// component does at start. A pair caught in the middle of a publication (hashes disagree) is
/// re-read for up to two seconds, then loaded as it is.
pub async fn load_snapshot(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<Arc<Snapshot>, ClusterConfigError> {
    let source = SnapshotSource {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let api_error = |what, error| ClusterConfigError::Api {
        what,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        error,
    };
    let mut attempt = 0;
    let pair = loop {
        let config_map = config_maps
            .get_opt(name)
            .await
            .map_err(|e| api_error("snapshot ConfigMap", e))?
            .ok_or_else(|| ClusterConfigError::Missing {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|e| api_error("snapshot Secret", e))?;
        let pair = pair(&source, Some(&config_map), secret.as_ref());
        attempt += 1;
        if pair.consistent || attempt > CONSISTENCY_RETRIES {
            if !pair.consistent {
                tracing::warn!(%source, "the snapshot ConfigMap and Secret still disagree; loading them as they are");
            }
            break pair;
        }
        tokio::time::sleep(CONSISTENCY_PAUSE).await;
    };
    if !pair.problems.is_empty() {
        return Err(ClusterConfigError::Invalid {
            origin: source.to_string(),
            problems: pair.problems,
        });
    }
    load_blocking(&source, pair.payloads)
        .await
        .map(Arc::new)
        .map_err(|problems| ClusterConfigError::Invalid {
            origin: source.to_string(),
            problems,
        })
}

/// One watched object: what the watch has shown of it, and whether its initial list is done.
struct Watched<K> {
    current: Option<K>,
    pending: Option<K>,
    synced: bool,
}

impl<K> Default for Watched<K> {
    fn default() -> Self {
        Self {
            current: None,
            pending: None,
            synced: false,
        }
    }
}

impl<K> Watched<K> {
    /// Takes a watch event; whether the object may have changed.
    fn take(&mut self, event: watcher::Event<K>) -> bool {
        match event {
            watcher::Event::Init => {
                self.pending = None;
                false
            }
            watcher::Event::InitApply(o) => {
                self.pending = Some(o);
                false
            }
            watcher::Event::InitDone => {
                self.current = self.pending.take();
                self.synced = true;
                true
            }
            watcher::Event::Apply(o) => {
                self.current = Some(o);
                true
            }
            watcher::Event::Delete(_) => {
                self.current = None;
                true
            }
        }
    }
}

enum Update {
    ConfigMap(Result<watcher::Event<ConfigMap>, watcher::Error>),
    Secret(Result<watcher::Event<Secret>, watcher::Error>),
}

/// Resolves when shutdown is requested (the flag turns true or its sender is dropped).
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Watches the snapshot ConfigMap and Secret `name` of `namespace` until `shutdown`, loading
/// every change with the shared loader: good snapshots are published on `tx`; a snapshot with
/// errors is refused, each problem logged, and the last good one kept (as
/// [`crate::config_watch::watch_dir`] does for a folder). `status` counts the attempts and holds
/// the latest one's problems.
///
/// The first attempt comes when both watches have listed their object: it loads what
/// [`load_snapshot`] loaded at start, unless something changed in between, and publishes it
/// again (an equal snapshot). Watch errors (API server restarts, expired resourceVersions) are
/// logged and retried with backoff; the watches resume where they stopped.
pub async fn watch_snapshot(
    client: Client,
    namespace: &str,
    name: &str,
    tx: watch::Sender<Arc<Snapshot>>,
    status: watch::Sender<ReloadStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let source = SnapshotSource {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let config_maps = watcher(
        Api::<ConfigMap>::namespaced(client.clone(), namespace),
        by_name.clone(),
    )
    .default_backoff()
    .map(Update::ConfigMap);
    let secrets = watcher(Api::<Secret>::namespaced(client, namespace), by_name)
        .default_backoff()
        .map(Update::Secret);
    let mut updates = std::pin::pin!(config_maps.merge(secrets));
    let mut config_map = Watched::<ConfigMap>::default();
    let mut secret = Watched::<Secret>::default();
    // What the last attempt was made on, and the last pair seen waiting for its other half.
    let mut attempted: Option<(Payloads, Vec<String>)> = None;
    let mut waiting: Option<Payloads> = None;
    loop {
        let update = tokio::select! {
            u = updates.next() => u,
            () = shutdown_requested(&mut shutdown) => return,
        };
        let changed = match update {
            None => return,
            Some(Update::ConfigMap(Ok(event))) => config_map.take(event),
            Some(Update::Secret(Ok(event))) => secret.take(event),
            Some(Update::ConfigMap(Err(e)) | Update::Secret(Err(e))) => {
                tracing::warn!(%source, error = %e, "snapshot watch failed; retrying");
                false
            }
        };
        if !changed || !config_map.synced || !secret.synced {
            continue;
        }
        let pair = pair(
            &source,
            config_map.current.as_ref(),
            secret.current.as_ref(),
        );
        let key = (pair.payloads.clone(), pair.problems.clone());
        if attempted.as_ref() == Some(&key) {
            continue; // metadata only, or the same state seen again
        }
        if !pair.consistent && pair.problems.is_empty() {
            if waiting.as_ref() != Some(&pair.payloads) {
                tracing::info!(%source, "the snapshot ConfigMap and Secret are being published; waiting for the other half");
                waiting = Some(pair.payloads);
            }
            continue;
        }
        waiting = None;
        attempted = Some(key);
        let result = if pair.problems.is_empty() {
            load_blocking(&source, pair.payloads).await
        } else {
            Err(pair.problems)
        };
        // The status first, then the snapshot: whoever sees a new snapshot finds the status
        // that goes with it.
        match result {
            Ok(snapshot) => {
                tracing::info!(%source, "configuration snapshot reloaded");
                status.send_modify(|s| {
                    s.attempts += 1;
                    s.errors = Vec::new();
                });
                tx.send_replace(Arc::new(snapshot));
            }
            Err(problems) => {
                for p in &problems {
                    tracing::error!(%source, problem = %p, "snapshot reload refused; keeping the last good configuration");
                }
                status.send_modify(|s| {
                    s.attempts += 1;
                    s.errors = problems;
                });
            }
        }
    }
}

/// Where a component reads its configuration: `DIALTONE_CONFIG` (a folder) or, when
/// `DIALTONE_SNAPSHOT` is set, the snapshot objects through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A manifest folder, loaded at start and polled every second ([`crate::config_watch`]).
    Folder(PathBuf),
    /// The snapshot ConfigMap and Secret, loaded at start and watched ([`watch_snapshot`]).
    Cluster(SnapshotSource),
}

impl ConfigSource {
    /// The cluster source when `snapshot` (`DIALTONE_SNAPSHOT`: `<name>`, `<namespace>/<name>`
    /// or `configmap:<namespace>/<name>`; `<name>` is looked up in `namespace`,
    /// `DIALTONE_NAMESPACE`) is given and not empty, the folder `config` otherwise.
    pub fn select(
        config: &Path,
        snapshot: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Self, String> {
        match snapshot.filter(|s| !s.trim().is_empty()) {
            Some(text) => SnapshotSource::parse(text, namespace)
                .map(Self::Cluster)
                .map_err(|e| format!("{SNAPSHOT_ENV}: {e}")),
            None => Ok(Self::Folder(config.to_owned())),
        }
    }
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Folder(dir) => write!(f, "{}", dir.display()),
            Self::Cluster(source) => write!(f, "{source}"),
        }
    }
}

/// The snapshot channel and the reload status of a running configuration source.
pub type Channels = (
    watch::Receiver<Arc<Snapshot>>,
    watch::Receiver<ReloadStatus>,
);

/// Opens a component's configuration source: loads it (every problem on failure, for the
/// component to print before exiting) and starts the task that reloads it until `shutdown`.
/// What `dialtone router`, `reporter` and `media-node` do at start, whichever the source.
pub async fn open(
    source: &ConfigSource,
    shutdown: watch::Receiver<bool>,
) -> Result<Channels, Vec<String>> {
    match source {
        ConfigSource::Folder(dir) => {
            let since = crate::config_watch::fingerprint(dir);
            let snapshot = crate::config_watch::load_dir(dir).map_err(|f| f.problems)?;
            let (tx, rx) = watch::channel(snapshot);
            let (status_tx, status_rx) = watch::channel(ReloadStatus::default());
            tokio::spawn(crate::config_watch::watch_dir(
                dir.clone(),
                since,
                Duration::from_secs(1),
                tx,
                status_tx,
                shutdown,
            ));
            Ok((rx, status_rx))
        }
        ConfigSource::Cluster(snapshot) => {
            start(snapshot, shutdown).await.map_err(|e| e.problems())
        }
    }
}

/// Everything a component needs for the cluster source: a client from the environment (in
/// cluster, or the kubeconfig), the snapshot loaded once, and a task watching it until
/// `shutdown`. Returns the snapshot channel and the reload status.
pub async fn start(
    source: &SnapshotSource,
    shutdown: watch::Receiver<bool>,
) -> Result<
    (
        watch::Receiver<Arc<Snapshot>>,
        watch::Receiver<ReloadStatus>,
    ),
    ClusterConfigError,
> {
    let client = Client::try_default()
        .await
        .map_err(ClusterConfigError::Client)?;
    start_with(client, source, shutdown).await
}

/// [`start`] with a given client.
pub async fn start_with(
    client: Client,
    source: &SnapshotSource,
    shutdown: watch::Receiver<bool>,
) -> Result<
    (
        watch::Receiver<Arc<Snapshot>>,
        watch::Receiver<ReloadStatus>,
    ),
    ClusterConfigError,
> {
    let snapshot = load_snapshot(client.clone(), &source.namespace, &source.name).await?;
    let (tx, rx) = watch::channel(snapshot);
    let (status_tx, status_rx) = watch::channel(ReloadStatus::default());
    let source = source.clone();
    tokio::spawn(async move {
        watch_snapshot(
            client,
            &source.namespace,
            &source.name,
            tx,
            status_tx,
            shutdown,
        )
        .await;
    });
    Ok((rx, status_rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        let s = |t: &str, ns: Option<&str>| SnapshotSource::parse(t, ns);
        let expected = SnapshotSource {
            namespace: "telephony".to_owned(),
            name: "dialtone-snapshot".to_owned(),
        };
        assert_eq!(
            s("configmap:telephony/dialtone-snapshot", None),
            Ok(expected.clone())
        );
        assert_eq!(
            s("telephony/dialtone-snapshot", Some("other")),
            Ok(expected.clone())
        );
        assert_eq!(
            s("dialtone-snapshot", Some("telephony")),
            Ok(expected.clone())
        );
        assert_eq!(
            expected.to_string(),
            "configmap:telephony/dialtone-snapshot"
        );
        assert!(s("dialtone-snapshot", None).is_err());
        assert!(s("configmap:Tele/x", None).is_err());
        assert!(s("configmap:/x", None).is_err());

        let dir = Path::new("/etc/dialtone/config");
        assert_eq!(
            ConfigSource::select(dir, None, Some("telephony")),
            Ok(ConfigSource::Folder(dir.to_owned()))
        );
        assert_eq!(
            ConfigSource::select(dir, Some(" "), None),
            Ok(ConfigSource::Folder(dir.to_owned()))
        );
        assert_eq!(
            ConfigSource::select(dir, Some("dialtone-snapshot"), Some("telephony")),
            Ok(ConfigSource::Cluster(expected))
        );
        assert!(ConfigSource::select(dir, Some("dialtone-snapshot"), None).is_err());
    }
}
