//! A reporter on loopback for the tests (store + ingestor + journal drainer + gRPC), the demo
//! configuration, and a sender that behaves like a media node's spool: it keeps every event
//! until it is acknowledged and resends the rest after a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dialtone_model::{Environment, PromptCatalog, Snapshot, SourceFile, load};
use dialtone_proto::v1::ingest_client::IngestClient;
use dialtone_proto::v1::reports_client::ReportsClient;
use dialtone_proto::v1::{
    AgentStateEvent, CallEvent, IngestEvent, RejectedEvent, ingest_event::Event,
};
use dialtone_reporter::ingest::Ingestor;
use dialtone_reporter::reports_service::ReportsService;
use dialtone_reporter::store::Store;
use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The demo manifests through the real loader, loaded once.
pub fn demo_snapshot() -> Snapshot {
    static DEMO: OnceLock<Snapshot> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("the demo folder")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        let files: Vec<SourceFile> = paths
            .iter()
            .map(|p| SourceFile {
                text: std::fs::read_to_string(p).expect("readable"),
                path: p.display().to_string(),
            })
            .collect();
        let env = Environment {
            prompts: PromptCatalog::Unchecked,
        };
        load(&files, &env).snapshot.expect("the demo loads")
    })
    .clone()
}

/// `sqlite://<dir>/dialtone.db?mode=rwc`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/dialtone.db?mode=rwc", dir.display())
}

/// A call event in its envelope.
pub fn call(e: CallEvent) -> IngestEvent {
    IngestEvent {
        event: Some(Event::Call(e)),
    }
}

/// An agent state event in its envelope.
pub fn agent(e: AgentStateEvent) -> IngestEvent {
    IngestEvent {
        event: Some(Event::AgentState(e)),
    }
}

/// An envelope's event id.
pub fn id_of(e: &IngestEvent) -> String {
    match &e.event {
        Some(Event::Call(c)) => c.event_id.clone(),
        Some(Event::AgentState(s)) => s.event_id.clone(),
        None => String::new(),
    }
}

/// A reporter serving Ingest and Reports on a loopback port.
pub struct TestReporter {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its store.
    pub store: Store,
    /// Its ingestor.
    pub ingestor: Arc<Ingestor>,
    /// Its configuration (send a new snapshot to reload).
    pub config: watch::Sender<Arc<Snapshot>>,
    server: JoinHandle<()>,
    drainer: JoinHandle<()>,
    _stop: watch::Sender<bool>,
}

impl TestReporter {
    /// Opens the store at `url`, journals under `data`, serves on a free port; "now" is `now`
    /// (real time when `None`).
    pub async fn start(url: &str, data: &Path, now: Option<Timestamp>) -> TestReporter {
        let store = Store::open(url).await.expect("the store opens");
        let (config, rx) = watch::channel(Arc::new(demo_snapshot()));
        let ingestor = Arc::new(
            Ingestor::open(store.clone(), data, rx.clone())
                .expect("the journal opens")
                .with_retry_every(Duration::from_millis(200)),
        );
        let (stop, stop_rx) = watch::channel(false);
        let drainer = tokio::spawn(ingestor.clone().run(stop_rx));
        let mut reports = ReportsService::new(store.clone(), rx);
        if let Some(now) = now {
            reports = reports.with_clock(move || now);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("an address");
        let server = tokio::spawn({
            let ingest = ingestor.service();
            async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(ingest)
                    .add_service(reports.into_server())
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await;
            }
        });
        TestReporter {
            addr,
            store,
            ingestor,
            config,
            server,
            drainer,
            _stop: stop,
        }
    }

    /// A Reports client.
    pub async fn reports(&self) -> ReportsClient<Channel> {
        ReportsClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connects")
    }

    /// An Ingest client.
    pub async fn ingest(&self) -> IngestClient<Channel> {
        IngestClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connects")
    }

    /// Stops serving and draining at once, flushing nothing.
    pub fn abort(self) {
        self.server.abort();
        self.drainer.abort();
    }
}

/// Publishes `events` over one `Publish` stream and collects every acknowledgement.
pub async fn publish_raw(
    addr: SocketAddr,
    events: Vec<IngestEvent>,
) -> (BTreeSet<String>, Vec<RejectedEvent>) {
    let expected: BTreeSet<String> = events.iter().map(id_of).collect();
    let mut client = IngestClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");
    let mut acks = client
        .publish(tokio_stream::iter(events))
        .await
        .expect("publish")
        .into_inner();
    let mut acked = BTreeSet::new();
    let mut rejected = Vec::new();
    while let Some(ack) = acks.message().await.expect("acks") {
        acked.extend(ack.event_ids);
        rejected.extend(ack.rejected);
    }
    assert!(
        acked.iter().all(|id| expected.contains(id)),
        "acknowledged an event never sent"
    );
    (acked, rejected)
}

/// A media node's spool: events stay until acknowledged; a failed flush keeps them for the
/// next one.
#[derive(Debug, Default)]
pub struct Spool {
    pending: BTreeMap<String, IngestEvent>,
    /// Every id acknowledged so far.
    pub acked: BTreeSet<String>,
    /// Refusals.
    pub rejected: Vec<RejectedEvent>,
    /// Flushes that failed (the reporter was away).
    pub failures: usize,
    client: Option<(String, IngestClient<Channel>)>,
}

impl Spool {
    /// Queues events.
    pub fn push(&mut self, events: impl IntoIterator<Item = IngestEvent>) {
        for e in events {
            self.pending.insert(id_of(&e), e);
        }
    }

    /// Events not acknowledged yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Sends everything pending over one `Publish` stream to `addr` and reads acknowledgements
    /// until all are acknowledged or the stream fails.
    ///
    /// # Errors
    ///
    /// Why the flush stopped (the events not acknowledged stay pending).
    pub async fn flush(&mut self, addr: &str) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.try_flush(addr).await;
        if result.is_err() {
            self.failures += 1;
            self.client = None;
        }
        result
    }

    /// Like [`Spool::flush`], but returns as soon as one acknowledgement has arrived, leaving
    /// the rest of the stream in flight: the reporter is then in the middle of ingesting it.
    ///
    /// # Errors
    ///
    /// As [`Spool::flush`].
    pub async fn flush_until_first_ack(&mut self, addr: &str) -> Result<(), String> {
        self.send(addr, true).await
    }

    async fn try_flush(&mut self, addr: &str) -> Result<(), String> {
        self.send(addr, false).await
    }

    async fn send(&mut self, addr: &str, first_ack_only: bool) -> Result<(), String> {
        let url = format!("http://{addr}");
        let mut client = match self.client.take() {
            Some((a, c)) if a == url => c,
            _ => IngestClient::connect(url.clone())
                .await
                .map_err(|e| e.to_string())?,
        };
        let events: Vec<IngestEvent> = self.pending.values().cloned().collect();
        let mut acks = client
            .publish(tokio_stream::iter(events))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        self.client = Some((url, client));
        while !self.pending.is_empty() {
            match acks.message().await {
                Ok(Some(ack)) => {
                    for id in ack.event_ids {
                        self.pending.remove(&id);
                        self.acked.insert(id);
                    }
                    for r in ack.rejected {
                        self.pending.remove(&r.event_id);
                        self.rejected.push(r);
                    }
                    if first_ack_only {
                        return Ok(());
                    }
                }
                Ok(None) => return Err("the stream ended with events unacknowledged".into()),
                Err(status) => return Err(status.to_string()),
            }
        }
        Ok(())
    }

    /// Flushes until everything is acknowledged, retrying every 100 ms for up to `patience`.
    ///
    /// # Panics
    ///
    /// When events are still pending after that.
    pub async fn flush_all(&mut self, addr: &str, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        while let Err(e) = self.flush(addr).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} events still unacknowledged: {e}",
                self.pending()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
