//! Standalone mode's wiring: the router and the reporter (and the media node, once it runs) in
//! one process, on one gRPC port, sharing one configuration snapshot and one shutdown signal.
//!
//! `dialtone up` and `dialtone demo` both start from [`start`]; the cluster components
//! (`dialtone router`, `dialtone reporter`) wire the same pieces separately.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dialtone_model::Snapshot;
use dialtone_reporter::auth::{Auth, AuthConfig, TokenStore};
use dialtone_reporter::dashboard::{self, DashboardState};
use dialtone_reporter::ingest::Ingestor;
use dialtone_reporter::reports_service::ReportsService;
use dialtone_reporter::retention;
use dialtone_reporter::store::{OpenOptions, Store};
use dialtone_router::owner::HttpOwnerSource;
use dialtone_router::service::{CallControlService, RouterCore, RouterService, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::agent_events;
use crate::config_watch::{self, ReloadStatus};
use crate::grpc_server::{self, Services};
use crate::live::LocalRouter;
use crate::shutdown::Shutdown;
use crate::telemetry::{self, Metrics, Readiness};

/// What standalone mode needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The manifest folder.
    pub config: PathBuf,
    /// The data folder (SQLite, journal, router state, recordings, `supervisor.token`).
    pub data: PathBuf,
    /// A PostgreSQL URL instead of SQLite under `data`.
    pub database_url: Option<String>,
    /// gRPC listen address (router, ingest, reports, health, reflection).
    pub grpc: SocketAddr,
    /// HTTP listen address (`/metrics`, `/healthz`, `/readyz`; the dashboard).
    pub http: SocketAddr,
    /// SIP listen address (UDP and TCP); no media node when absent.
    pub sip: Option<SocketAddr>,
}

/// Standalone mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The manifests have errors.
    #[error("{0}")]
    Config(#[from] config_watch::LoadFailure),
    /// The data folder is not usable.
    #[error("data folder {path}: {source}")]
    Data {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error("database: {0}")]
    Store(#[from] dialtone_reporter::store::StoreError),
    /// The ingestion journal could not be opened.
    #[error("ingestion: {0}")]
    Ingest(#[from] dialtone_reporter::ingest::IngestError),
    /// A listener could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another Dialtone running? pass another address)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The CRM client could not be built.
    #[error("owner lookup client: {0}")]
    Owner(#[from] dialtone_router::owner::OwnerLookupError),
    /// The dashboard's tokens could not be read.
    #[error("credentials: {0}")]
    Tokens(#[from] dialtone_reporter::auth::TokenError),
    /// The webhook client could not be built.
    #[error("webhooks: {0}")]
    Webhooks(#[from] reqwest::Error),
    /// The media node could not start (SIP port taken, bad RTP range, …).
    #[error("media node: {0}")]
    MediaNode(#[from] dialtone_media_node::node::NodeError),
    /// The event spool could not be opened.
    #[error("event spool: {0}")]
    Spool(#[from] dialtone_media_node::spool::SpoolError),
}

/// A running standalone Dialtone.
pub struct Running {
    /// Where gRPC listens.
    pub grpc: SocketAddr,
    /// Where HTTP listens.
    pub http: SocketAddr,
    /// Where SIP listens (UDP), when a media node runs.
    pub sip_udp: Vec<SocketAddr>,
    /// Where SIP listens (TCP), when a media node runs.
    pub sip_tcp: Vec<SocketAddr>,
    /// The supervisor's token file.
    pub token_file: PathBuf,
    /// The configuration in use (swapped on reload).
    pub config: watch::Receiver<Arc<Snapshot>>,
    /// The router, for in-process callers such as the demo.
    pub router: Arc<RouterCore>,
    /// The reporter's store.
    pub store: Store,
    /// The shutdown signal.
    pub shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Waits until every task has stopped (after the shutdown signal fired).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.close().await;
    }
}

/// Writes `supervisor.token` (supervisor role) on first start; later starts keep it.
pub fn ensure_supervisor_token(data: &Path) -> std::io::Result<PathBuf> {
    let path = data.join("supervisor.token");
    if path.exists() {
        return Ok(path);
    }
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, format!("{token}\n"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(path)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Starts router and reporter; the returned handle's tasks stop when `shutdown` fires.
pub async fn start(settings: &Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    let since = config_watch::fingerprint(&settings.config);
    let snapshot = config_watch::load_dir(&settings.config)?;
    let data_err = |source| StartError::Data {
        path: settings.data.clone(),
        source,
    };
    std::fs::create_dir_all(&settings.data).map_err(data_err)?;
    let token_file = ensure_supervisor_token(&settings.data).map_err(data_err)?;
    let auth = Auth::new(
        TokenStore::standalone(&settings.data)?,
        AuthConfig::default(),
    );

    let (config_tx, config_rx) = watch::channel(snapshot);
    let (status_tx, _status_rx) = watch::channel(ReloadStatus::default());
    let mut tasks = vec![tokio::spawn(config_watch::watch_dir(
        settings.config.clone(),
        since,
        Duration::from_secs(1),
        config_tx,
        status_tx,
        shutdown.receiver(),
    ))];

    let store = match &settings.database_url {
        Some(url) => Store::open(url).await?,
        None => {
            Store::open_sqlite_file(&settings.data.join("dialtone.db"), &OpenOptions::default())
                .await?
        }
    };
    let ingestor = Arc::new(Ingestor::open(
        store.clone(),
        &settings.data,
        config_rx.clone(),
    )?);
    tasks.push(tokio::spawn(ingestor.clone().run(shutdown.receiver())));
    tasks.push(tokio::spawn(retention::run(
        store.clone(),
        config_rx.clone(),
        Duration::from_secs(3600),
        shutdown.receiver(),
    )));

    let (state_tx, state_rx) = mpsc::unbounded_channel();
    let router = RouterCore::with_state_file(
        config_rx.clone(),
        Arc::new(SystemClock),
        Arc::new(HttpOwnerSource::new()?),
        Some(state_tx),
        settings.data.join("router-state.json"),
    );
    tasks.push(tokio::spawn(router.clone().run_timers(shutdown.receiver())));
    tasks.push(tokio::spawn(
        router.clone().run_queue_callbacks(shutdown.receiver()),
    ));
    tasks.push(tokio::spawn(
        router.clone().run_persister(shutdown.receiver()),
    ));
    let ing = ingestor.clone();
    let deliver: agent_events::Deliver = Box::new(move |batch| {
        let ing = ing.clone();
        Box::pin(async move {
            ing.ingest(batch)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    });
    tasks.push(tokio::spawn(agent_events::forward(
        state_rx,
        agent_events::source_name("router"),
        deliver,
        shutdown.receiver(),
    )));

    let router_service = RouterService::new(router.clone());
    // Recording links point at the dashboard's media route, on the same site as its pages.
    let reports = ReportsService::new(store.clone(), config_rx.clone())
        .with_live(Arc::new(LocalRouter(router_service.clone())))
        .with_media_base_url("/media");
    let grpc = bind(settings.grpc).await?;
    let http = bind(settings.http).await?;
    let grpc_addr = grpc.local_addr().map_err(data_err)?;
    let http_addr = http.local_addr().map_err(data_err)?;
    let dashboard = dashboard::router(
        DashboardState::new(reports.clone(), config_rx.clone(), auth.clone())
            .with_media_root(recordings_dir(&config_rx.borrow(), settings)),
    );
    let services = Services {
        router: Some(router_service),
        ingest: Some(ingestor.service()),
        reports: Some(reports),
        call_control: Some(CallControlService::new(router.clone())),
        auth: Some(auth),
        // One process on loopback: the internal services take loopback peers only.
        internal_token: None,
    };
    let grpc_shutdown = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = grpc_server::serve(grpc, services, grpc_shutdown.clone()).await {
            tracing::error!(error = %e, "gRPC server stopped");
            grpc_shutdown.fire();
        }
    }));
    let metrics = Metrics::new();
    // Webhooks to CRMs: a durable outbox, delivered without ever blocking ingestion.
    // CRMs fetch recordings from the dashboard's media route, so their links are absolute.
    let dispatcher = dialtone_reporter::webhooks::Dispatcher::with_options(
        store.clone(),
        config_rx.clone(),
        dialtone_reporter::webhooks::Options {
            media_base_url: Some(format!("http://{http_addr}/media")),
            ..dialtone_reporter::webhooks::Options::default()
        },
    );
    metrics.with_registry(|r| dispatcher.metrics().register(r));
    tasks.push(telemetry::serve_reporter_metrics(
        &metrics,
        &ingestor,
        shutdown.receiver(),
    ));
    tasks.push(tokio::spawn(dispatcher.run(
        dialtone_reporter::webhooks::http_client()?,
        shutdown.receiver(),
    )));
    let (sip_udp, sip_tcp) = match settings.sip {
        Some(sip) => {
            start_media_node(
                settings, sip, grpc_addr, &config_rx, &metrics, &shutdown, &mut tasks,
            )
            .await?
        }
        None => (Vec::new(), Vec::new()),
    };
    let readiness = Readiness::new();
    readiness.set_ready();
    let http_shutdown = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let app = telemetry::ops_router(metrics, readiness).merge(dashboard);
        if let Err(e) = axum::serve(
            crate::telemetry::nodelay(http),
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { http_shutdown.fired().await })
        .await
        {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }));
    Ok(Running {
        grpc: grpc_addr,
        http: http_addr,
        sip_udp,
        sip_tcp,
        token_file,
        config: config_rx,
        router,
        store,
        shutdown,
        tasks,
    })
}

/// The media node of standalone mode: SIP on `sip`, the router and the reporter reached over
/// this process's own gRPC port (the same paths as in a cluster), events through a durable
/// spool under the data folder.
async fn start_media_node(
    settings: &Settings,
    sip: SocketAddr,
    grpc: SocketAddr,
    config: &watch::Receiver<Arc<Snapshot>>,
    metrics: &Metrics,
    shutdown: &Shutdown,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(Vec<SocketAddr>, Vec<SocketAddr>), StartError> {
    use dialtone_media_node::node::{self, Health, MediaNode, NodeConfig, SpoolSink};
    use dialtone_media_node::spool::{self, Spool};

    let url = format!("http://{grpc}");
    let mut cfg = NodeConfig::new(format!("node-{}", std::process::id()), url.clone());
    cfg.udp = vec![sip];
    cfg.tcp = vec![sip];
    cfg.prompts_dir = Some(settings.config.join("prompts"));
    {
        let snap = config.borrow();
        let media = &snap.call_center.spec.media_nodes;
        if let Some((lo, hi)) = media.rtp.port_range.split_once('-')
            && let (Ok(lo), Ok(hi)) = (lo.parse(), hi.parse())
        {
            cfg.rtp_ports = (lo, hi);
        }
        cfg.drain_timeout =
            Duration::from_secs(u64::try_from(media.drain_timeout_seconds).unwrap_or(0));
        cfg.recordings_dir = Some(recordings_dir(&snap, settings));
    }
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|source| StartError::Data {
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
    cfg.registrar.nonce_secret = secret.to_vec();
    let spool = Arc::new(std::sync::Mutex::new(Spool::open(
        settings.data.join("spool"),
    )?));
    let notify = Arc::new(tokio::sync::Notify::new());
    tasks.push(tokio::spawn(spool::deliver(
        spool.clone(),
        url.clone(),
        notify.clone(),
        shutdown.receiver(),
    )));
    let health = metrics.with_registry(Health::new);
    let started = MediaNode::start(
        cfg,
        config.clone(),
        node::connect_router(&url, None)?,
        Arc::new(SpoolSink::new(spool, notify)),
        health,
        shutdown.receiver(),
    )
    .await?;
    let addrs = (started.udp_addrs(), started.tcp_addrs());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = started.join().await {
            tracing::error!(error = %e, "media node stopped");
        }
    }));
    Ok(addrs)
}

/// Where recordings and voicemail go: under --data, unless the CallCenter names a folder this
/// process can write to (PRODUCT.md's rule). The media node writes there and the dashboard
/// serves it under `/media/`.
fn recordings_dir(snap: &Snapshot, settings: &Settings) -> PathBuf {
    snap.call_center
        .spec
        .recordings
        .as_ref()
        .map(|r| PathBuf::from(&r.storage))
        .filter(|p| std::fs::create_dir_all(p).is_ok())
        .unwrap_or_else(|| settings.data.join("recordings"))
}
