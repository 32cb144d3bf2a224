//! The controller: a `kube::runtime::Controller` on CallCenters that validates every object of
//! their namespaces, writes their status, and keeps the desired objects in shape — run only by
//! the replica that holds the leader Lease.
//!
//! Layout: [`watches`] (caches and what triggers a reconcile), [`validate`] (the shared loader,
//! and what is published when something is broken), [`status`] (conditions and Events),
//! [`apply`] (server-side apply of the desired objects), [`reconcile`] (the pipeline, requeue
//! and backoff), [`access`] (the generated internal token's read phase), [`cache`] (idempotence and clock-driven wake-ups), [`deletion_cost`] (the
//! media-node pods' `controller.kubernetes.io/pod-deletion-cost`, from their active calls).
//!
//! Finalizers: none. Everything the operator creates carries an owner reference to its
//! CallCenter, so the garbage collector removes it; the operator keeps nothing outside the API
//! (its caches are rebuilt from watches).

pub mod access;
pub mod apply;
pub mod cache;
pub mod deletion_cost;
pub mod reconcile;
pub mod status;
pub mod validate;
pub mod watches;

use std::sync::Arc;
use std::time::Duration;

use dialtone_model::resources::{
    Agent, Blocklist, CallCenter, CallQueue, Carrier, ForwardingScheme, PhoneNumber, Schedule,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, controller, watcher};
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::clock::{Clock, SystemClock};
use crate::desired::SipServiceType;
use crate::desired::common::MANAGER;
use crate::leader::{Attempt, LeaderElector, LeaseTimings};
use cache::{Timers, WriteCache};
pub use reconcile::ReconcileReport;
use reconcile::{Context, error_policy, reconcile};
use watches::{Scope, Stores, api, call_centers_of, managed_selector, owner_of, reflect};

/// The operator's settings (flags and environment of `dialtone operator`).
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorOptions {
    /// Namespaces to reconcile (`DIALTONE_WATCH_NAMESPACES`, comma-separated); empty: all.
    pub watch_namespaces: Vec<String>,
    /// Where the operator runs and its Lease lives (`DIALTONE_OPERATOR_NAMESPACE`).
    pub operator_namespace: String,
    /// This replica's pod name: the Lease holder identity (`DIALTONE_POD_NAME`).
    pub pod_name: String,
    /// The leader-election Lease (`DIALTONE_LEADER_LEASE`).
    pub lease_name: String,
    /// The image the components run (`DIALTONE_IMAGE`).
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never` (`DIALTONE_IMAGE_PULL_POLICY`).
    pub image_pull_policy: String,
    /// The SIP Services' default type (`DIALTONE_SIP_SERVICE_TYPE`).
    pub sip_service_type: SipServiceType,
    /// How often every CallCenter is reconciled without a change.
    pub resync_interval: Duration,
    /// `RUST_LOG` for the components.
    pub log_level: String,
    /// OTLP endpoint for the components (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub otlp_endpoint: Option<String>,
    /// Leader-election timings.
    pub lease: LeaseTimings,
    /// How long the controller waits for more changes before reconciling (trailing-edge
    /// debounce: `kubectl apply -f dir/` of many objects becomes a few reconciles).
    pub debounce: Duration,
    /// How often the media nodes' active calls are read to keep their pods'
    /// `controller.kubernetes.io/pod-deletion-cost` current (on the operator's clock).
    pub deletion_cost_interval: Duration,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        Self {
            watch_namespaces: Vec::new(),
            operator_namespace: "dialtone-system".to_owned(),
            pod_name: "dialtone-operator".to_owned(),
            lease_name: "dialtone-operator-leader".to_owned(),
            image: format!(
                "ghcr.io/dialtone-dev/dialtone:{}",
                env!("CARGO_PKG_VERSION")
            ),
            image_pull_policy: "IfNotPresent".to_owned(),
            sip_service_type: SipServiceType::LoadBalancer,
            resync_interval: Duration::from_secs(300),
            log_level: "info".to_owned(),
            otlp_endpoint: None,
            lease: LeaseTimings::default(),
            debounce: Duration::from_millis(250),
            deletion_cost_interval: Duration::from_secs(10),
        }
    }
}

impl OperatorOptions {
    /// Checks the settings before anything starts.
    pub fn check(&self) -> Result<(), OperatorError> {
        let bad = |m: String| Err(OperatorError::Options(m));
        if self.pod_name.is_empty() {
            return bad("the pod name (DIALTONE_POD_NAME) is empty".to_owned());
        }
        if self.operator_namespace.is_empty() {
            return bad("the operator namespace (DIALTONE_OPERATOR_NAMESPACE) is empty".to_owned());
        }
        if self.lease_name.is_empty() {
            return bad("the lease name (DIALTONE_LEADER_LEASE) is empty".to_owned());
        }
        if self.image.is_empty() {
            return bad("the image (DIALTONE_IMAGE) is empty".to_owned());
        }
        if !matches!(
            self.image_pull_policy.as_str(),
            "Always" | "IfNotPresent" | "Never"
        ) {
            return bad(format!(
                "image pull policy {:?} is not Always, IfNotPresent or Never",
                self.image_pull_policy
            ));
        }
        if self.resync_interval.is_zero() {
            return bad("the resync interval must be positive".to_owned());
        }
        if self.deletion_cost_interval.is_zero() {
            return bad("the deletion cost interval must be positive".to_owned());
        }
        if let Some(ns) = self.watch_namespaces.iter().find(|n| n.is_empty()) {
            return bad(format!("empty watch namespace in {ns:?}"));
        }
        self.lease.check().map_err(OperatorError::Options)
    }
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The settings are wrong.
    #[error("invalid operator settings: {0}")]
    Options(String),
    /// No Kubernetes client could be configured.
    #[error("cannot configure the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// A controller ended although it should run until shutdown.
    #[error("the controller for {scope} stopped unexpectedly")]
    ControllerStopped {
        /// Its namespace, or "all namespaces".
        scope: String,
    },
}

/// What the operator has been doing: for tests, the benchmark and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// Whether this replica leads.
    pub leader: bool,
    /// Times it became the leader.
    pub elected: u64,
    /// Lease checks made while not leading.
    pub lease_checks: u64,
    /// The holder seen at the last check while standing by.
    pub standing_by_for: Option<String>,
    /// Reconciles completed.
    pub reconciles: u64,
    /// Reconciles that failed.
    pub failures: u64,
    /// Writes of every reconcile so far.
    pub total: ReconcileReport,
    /// Writes of the last reconcile.
    pub last: ReconcileReport,
    /// Deletion-cost rounds completed (every media-node pod scraped once).
    pub cost_rounds: u64,
    /// Pod deletion-cost annotations patched.
    pub cost_patches: u64,
    /// Media-node scrapes that failed.
    pub cost_scrape_failures: u64,
}

/// A shared, observable [`Activity`].
#[derive(Debug, Clone)]
pub struct Observer {
    activity: Arc<watch::Sender<Activity>>,
}

impl Default for Observer {
    fn default() -> Self {
        Self {
            activity: Arc::new(watch::channel(Activity::default()).0),
        }
    }
}

impl Observer {
    /// The activity so far.
    pub fn activity(&self) -> Activity {
        self.activity.borrow().clone()
    }

    /// Waits until `condition` holds (re-checked at every change), for at most `timeout`;
    /// `None` on timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&Activity) -> bool,
    ) -> Option<Activity> {
        let mut rx = self.activity.subscribe();
        let wait = async {
            loop {
                {
                    let a = rx.borrow_and_update();
                    if condition(&a) {
                        return Some(a.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    fn set_leader(&self, leader: bool) {
        self.activity.send_modify(|a| {
            if leader && !a.leader {
                a.elected += 1;
                a.standing_by_for = None;
            }
            a.leader = leader;
        });
    }

    fn lease_checked(&self, holder: Option<String>) {
        self.activity.send_modify(|a| {
            a.lease_checks += 1;
            a.standing_by_for = holder;
        });
    }

    fn cost_round(&self, report: &deletion_cost::RoundReport) {
        self.activity.send_modify(|a| {
            a.cost_rounds += 1;
            a.cost_patches += report.patched;
            a.cost_scrape_failures += report.failed;
        });
    }

    fn record(&self, report: &ReconcileReport, ok: bool) {
        self.activity.send_modify(|a| {
            a.reconciles += 1;
            if !ok {
                a.failures += 1;
            }
            a.total.status_writes += report.status_writes;
            a.total.applies += report.applies;
            a.total.events += report.events;
            a.last = *report;
        });
    }
}

/// Runs the operator with the in-cluster (or kubeconfig) client and the system clock until
/// `shutdown` turns true (or its sender is dropped).
pub async fn run(
    options: OperatorOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), OperatorError> {
    options.check()?;
    let client = Client::try_default().await.map_err(OperatorError::Client)?;
    run_with(
        client,
        options,
        Arc::new(SystemClock),
        Observer::default(),
        shutdown,
    )
    .await
}

/// Resolves when shutdown is requested.
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

/// Runs the operator with a given client, clock and observer: campaigns for the Lease, runs
/// the controllers while leading, stops them when leadership is lost (and campaigns again), and
/// releases the Lease on shutdown. Dropping the future stops everything it started.
pub async fn run_with(
    client: Client,
    options: OperatorOptions,
    clock: Arc<dyn Clock>,
    observer: Observer,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), OperatorError> {
    options.check()?;
    let options = Arc::new(options);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &options.operator_namespace);
    let mut elector = LeaderElector::new(
        leases,
        options.lease_name.clone(),
        options.pod_name.clone(),
        options.lease,
        clock.clone(),
    );
    loop {
        // Campaign until leading.
        loop {
            let attempt = tokio::select! {
                a = elector.try_acquire_or_renew() => a,
                () = shutdown_requested(&mut shutdown) => return Ok(()),
            };
            match attempt {
                Ok(Attempt::Leading) => {
                    tracing::info!(identity = %options.pod_name, "became the leader");
                    observer.lease_checked(Some(options.pod_name.clone()));
                    break;
                }
                Ok(Attempt::Following(holder)) => {
                    tracing::debug!(%holder, "standing by");
                    observer.lease_checked(Some(holder));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the leader lease");
                    observer.lease_checked(None);
                }
            }
            tokio::select! {
                () = clock.sleep(options.lease.retry_period) => {}
                () = shutdown_requested(&mut shutdown) => return Ok(()),
            }
        }
        observer.set_leader(true);
        enum Outcome {
            Stopped(Result<(), OperatorError>),
            Lost(crate::leader::LeadershipLost),
            Shutdown,
        }
        let outcome = tokio::select! {
            r = run_controllers(client.clone(), options.clone(), clock.clone(), observer.clone()) => Outcome::Stopped(r),
            lost = elector.hold() => Outcome::Lost(lost),
            () = shutdown_requested(&mut shutdown) => Outcome::Shutdown,
        };
        observer.set_leader(false);
        match outcome {
            Outcome::Lost(why) => {
                tracing::warn!(%why, "lost leadership: the controllers stopped; standing by");
            }
            Outcome::Shutdown => {
                elector.release().await;
                return Ok(());
            }
            Outcome::Stopped(result) => {
                elector.release().await;
                return result;
            }
        }
    }
}

/// One controller per watched scope, until one of them ends (which they do not, normally).
async fn run_controllers(
    client: Client,
    options: Arc<OperatorOptions>,
    clock: Arc<dyn Clock>,
    observer: Observer,
) -> Result<(), OperatorError> {
    let scopes: Vec<Scope> = if options.watch_namespaces.is_empty() {
        vec![None]
    } else {
        options.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let mut set = JoinSet::new();
    for scope in scopes {
        let name = scope.clone().unwrap_or_else(|| "all namespaces".to_owned());
        let run = run_scope(
            client.clone(),
            scope,
            options.clone(),
            clock.clone(),
            observer.clone(),
        );
        set.spawn(async move {
            run.await;
            name
        });
    }
    // Dropping the set (when this future is dropped) aborts every controller.
    let scope = match set.join_next().await {
        Some(Ok(name)) => name,
        Some(Err(e)) => e.to_string(),
        None => "no scope".to_owned(),
    };
    Err(OperatorError::ControllerStopped { scope })
}

/// The controller of one scope.
async fn run_scope(
    client: Client,
    scope: Scope,
    options: Arc<OperatorOptions>,
    clock: Arc<dyn Clock>,
    observer: Observer,
) {
    let written = Arc::new(WriteCache::default());
    let all = watcher::Config::default();
    let owned = watcher::Config::default().labels(&managed_selector());
    macro_rules! reflect {
        ($ty:ty, $config:expr) => {
            reflect(
                api::<$ty>(client.clone(), &scope),
                $config.clone(),
                stringify!($ty),
                written.clone(),
            )
        };
    }
    let (call_centers, cc_changes) = reflect!(CallCenter, all);
    let (carriers, carrier_changes) = reflect!(Carrier, all);
    let (schedules, schedule_changes) = reflect!(Schedule, all);
    let (agents, agent_changes) = reflect!(Agent, all);
    let (queues, queue_changes) = reflect!(CallQueue, all);
    let (schemes, scheme_changes) = reflect!(ForwardingScheme, all);
    let (numbers, number_changes) = reflect!(PhoneNumber, all);
    let (blocklists, blocklist_changes) = reflect!(Blocklist, all);
    let (secrets, secret_changes) = reflect!(Secret, all);
    let (config_maps, config_map_changes) = reflect!(ConfigMap, all);
    let (service_accounts, sa_changes) = reflect!(ServiceAccount, owned);
    let (roles, role_changes) = reflect!(Role, owned);
    let (role_bindings, binding_changes) = reflect!(RoleBinding, owned);
    let (volumes, volume_changes) = reflect!(PersistentVolumeClaim, owned);
    let (services, service_changes) = reflect!(Service, owned);
    let (deployments, deployment_changes) = reflect!(Deployment, owned);
    let (budgets, budget_changes) = reflect!(PodDisruptionBudget, owned);
    let (autoscalers, autoscaler_changes) = reflect!(HorizontalPodAutoscaler, owned);
    let stores = Stores {
        call_centers: call_centers.clone(),
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
        autoscalers,
    };
    let (wake_tx, wake_rx) = mpsc::unbounded_channel();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER.to_owned(),
            instance: Some(options.pod_name.clone()),
        },
    );
    // The media-node pods' deletion cost is kept beside the controller, as long as it runs.
    let costs = deletion_cost::run(
        client.clone(),
        scope,
        clock.clone(),
        options.deletion_cost_interval,
        observer.clone(),
    );
    let context = Arc::new(Context {
        client: client.clone(),
        options: options.clone(),
        clock: clock.clone(),
        stores,
        recorder,
        written,
        timers: Timers::new(clock, wake_tx),
        failures: Default::default(),
        observer,
    });
    macro_rules! namespace_of {
        ($ty:ty) => {{
            let call_centers = call_centers.clone();
            move |o: $ty| call_centers_of(&call_centers, &o)
        }};
    }
    let controller = Controller::for_stream(cc_changes, call_centers.clone())
        .with_config(controller::Config::default().debounce(options.debounce))
        .watches_stream(carrier_changes, namespace_of!(Carrier))
        .watches_stream(schedule_changes, namespace_of!(Schedule))
        .watches_stream(agent_changes, namespace_of!(Agent))
        .watches_stream(queue_changes, namespace_of!(CallQueue))
        .watches_stream(scheme_changes, namespace_of!(ForwardingScheme))
        .watches_stream(number_changes, namespace_of!(PhoneNumber))
        .watches_stream(blocklist_changes, namespace_of!(Blocklist))
        .watches_stream(secret_changes, namespace_of!(Secret))
        .watches_stream(config_map_changes, namespace_of!(ConfigMap))
        .watches_stream(sa_changes, |o: ServiceAccount| owner_of(&o))
        .watches_stream(role_changes, |o: Role| owner_of(&o))
        .watches_stream(binding_changes, |o: RoleBinding| owner_of(&o))
        .watches_stream(volume_changes, |o: PersistentVolumeClaim| owner_of(&o))
        .watches_stream(service_changes, |o: Service| owner_of(&o))
        .watches_stream(deployment_changes, |o: Deployment| owner_of(&o))
        .watches_stream(budget_changes, |o: PodDisruptionBudget| owner_of(&o))
        .watches_stream(autoscaler_changes, |o: HorizontalPodAutoscaler| {
            owner_of(&o)
        })
        .reconcile_on(UnboundedReceiverStream::new(wake_rx));
    let mut results = std::pin::pin!(controller.run(reconcile, error_policy, context));
    let reconciles = async {
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => {}
                Err(controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(%object, "the object to reconcile is gone");
                }
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => tracing::warn!(error = %e, "controller"),
            }
        }
    };
    tokio::select! {
        () = reconciles => {}
        () = costs => {}
    }
}
