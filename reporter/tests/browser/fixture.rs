//! A dashboard on loopback over a real store, for the HTTP and browser tests: the corpus day
//! (plus, for screenshots, a generated week), the demo configuration, a fake live board the
//! test drives, and two tokens — the standalone `supervisor.token` and a viewer from a tokens
//! Secret text.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use dialtone_proto::v1::{self as pb, AgentState};
use dialtone_reporter::Policy;
use dialtone_reporter::auth::{Auth, AuthConfig, TokenStore};
use dialtone_reporter::dashboard::{self, DashboardState};
use dialtone_reporter::reports_service::{LiveSource, PresenceStream, ReportsService};
use dialtone_reporter::store::Store;
use dialtone_reporter::time::to_proto_timestamp;
use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Status;

use crate::support::reporter::{agent, call, demo_snapshot, sqlite_url};
use crate::support::t;
use crate::{data, day};

/// The reports' "now": 20:00 in Kyiv on the corpus day, after the office closed.
pub const NOW: &str = "2026-11-23T18:00:00Z";

/// The supervisor's token (written to `supervisor.token`).
pub const SUPERVISOR_TOKEN: &str = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5";
/// The viewer's token (from the tokens text).
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";
/// The tokens Secret text.
const TOKENS_TEXT: &str = "# dashboard tokens\nivan:viewer:viewer-token-0123456789abcdef\n";

/// A live board the test changes: `set_agent` replaces an agent's line and pushes the change
/// to every open watch, like the router's presence stream.
pub struct FakeLive {
    board: Mutex<pb::LiveBoard>,
    watchers: Mutex<Vec<mpsc::UnboundedSender<Result<pb::PresenceUpdate, Status>>>>,
    revision: Mutex<u64>,
}

impl FakeLive {
    /// A board with these agents and queues.
    pub fn new(board: pb::LiveBoard) -> Arc<Self> {
        Arc::new(FakeLive {
            board: Mutex::new(board),
            watchers: Mutex::new(Vec::new()),
            revision: Mutex::new(0),
        })
    }

    fn next_revision(&self) -> u64 {
        let mut r = self.revision.lock().expect("lock");
        *r += 1;
        *r
    }

    /// Replaces `a.agent`'s line and tells every watcher.
    pub fn set_agent(&self, a: pb::AgentPresence) {
        {
            let mut board = self.board.lock().expect("lock");
            match board.agents.iter_mut().find(|x| x.agent == a.agent) {
                Some(x) => *x = a.clone(),
                None => board.agents.push(a.clone()),
            }
        }
        let update = pb::PresenceUpdate {
            at: Some(to_proto_timestamp(t(NOW))),
            revision: self.next_revision(),
            update: Some(pb::presence_update::Update::Agent(a)),
        };
        self.watchers
            .lock()
            .expect("lock")
            .retain(|w| w.send(Ok(update.clone())).is_ok());
    }
}

#[tonic::async_trait]
impl LiveSource for FakeLive {
    async fn board(&self, _omit_contacts: bool) -> Result<pb::LiveBoard, Status> {
        Ok(self.board.lock().expect("lock").clone())
    }

    async fn watch(&self, _omit_contacts: bool) -> Result<PresenceStream, Status> {
        let (tx, rx) = mpsc::unbounded_channel();
        let snapshot = pb::PresenceUpdate {
            at: Some(to_proto_timestamp(t(NOW))),
            revision: self.next_revision(),
            update: Some(pb::presence_update::Update::Snapshot(
                self.board.lock().expect("lock").clone(),
            )),
        };
        let _ = tx.send(Ok(snapshot));
        self.watchers.lock().expect("lock").push(tx);
        Ok(Box::pin(UnboundedReceiverStream::new(rx)))
    }
}

/// An agent's line on the board.
pub fn presence(
    name: &str,
    display: &str,
    ext: &str,
    state: AgentState,
    since: &str,
) -> pb::AgentPresence {
    pb::AgentPresence {
        agent: name.into(),
        display_name: display.into(),
        extension: ext.into(),
        state: state as i32,
        since: Some(to_proto_timestamp(t(since))),
        max_concurrent_calls: 1,
        reachable: true,
        ..Default::default()
    }
}

/// The demo team at 20:00: a realistic mix of states, and two queues.
pub fn demo_board() -> pb::LiveBoard {
    use AgentState::*;
    let mut on_call = presence(
        "bohdan",
        "Bohdan Shevchuk",
        "102",
        OnCall,
        "2026-11-23T17:52:10Z",
    );
    on_call.active_calls = 1;
    on_call.call_ids = vec!["c99".into()];
    let mut away = presence("olena", "Olena Melnyk", "103", Away, "2026-11-23T17:30:00Z");
    away.away_label = "lunch".into();
    let joined = |s: &str| Some(to_proto_timestamp(t(s)));
    pb::LiveBoard {
        agents: vec![
            presence(
                "anna",
                "Anna Kovalenko",
                "101",
                Available,
                "2026-11-23T17:41:00Z",
            ),
            on_call,
            presence(
                "head-of-sales",
                "Head of Sales",
                "100",
                Offline,
                "2026-11-23T16:00:00Z",
            ),
            presence("iryna", "Iryna Lysenko", "105", Dnd, "2026-11-23T17:15:00Z"),
            away,
            presence(
                "taras",
                "Taras Bondar",
                "104",
                WrapUp,
                "2026-11-23T17:59:40Z",
            ),
        ],
        queues: vec![
            pb::QueueStatus {
                queue: "sales".into(),
                members: 3,
                available: 1,
                ..Default::default()
            },
            pb::QueueStatus {
                queue: "support".into(),
                waiting: 2,
                longest_wait: Some(prost_types::Duration {
                    seconds: 95,
                    nanos: 0,
                }),
                oldest_joined_at: joined("2026-11-23T17:58:25Z"),
                members: 2,
                available: 0,
                ..Default::default()
            },
        ],
        at: Some(to_proto_timestamp(t(NOW))),
    }
}

/// Which calls the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    /// The corpus day only (fast; the HTTP tests).
    Day,
    /// The generated week before it too (screenshots).
    Week,
}

/// A dashboard serving on a loopback port.
pub struct Fixture {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The live board.
    pub live: Arc<FakeLive>,
    /// The store (to inspect what a handling wrote).
    pub store: Store,
    /// The access control (to make more tokens).
    pub auth: Auth,
    server: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Stores `data` and the corpus day's handlings.
async fn load(store: &Store, data: Data) {
    let mut calls = day::calls();
    let mut states = day::agent_states();
    if data == Data::Week {
        calls.extend(data::calls());
        states.extend(data::states());
    }
    let events: Vec<pb::IngestEvent> = calls
        .into_iter()
        .flatten()
        .map(call)
        .chain(states.into_iter().map(agent))
        .collect();
    for chunk in events.chunks(500) {
        let outcome = store
            .ingest(chunk, &Policy::default())
            .await
            .expect("the store takes the events");
        assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    }
    for h in day::handlings() {
        store.add_handling(&h).await.expect("handling stored");
    }
}

impl Fixture {
    /// Starts a dashboard over `data`, with `board` as the live board.
    pub async fn start_with(data: Data, board: pb::LiveBoard) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(
            dir.path().join("supervisor.token"),
            format!("{SUPERVISOR_TOKEN}\n"),
        )
        .expect("token written");
        let mut tokens = TokenStore::standalone(dir.path()).expect("supervisor.token loads");
        tokens
            .add_tokens_text(TOKENS_TEXT, "Secret/dashboard-tokens")
            .expect("tokens load");
        let auth = Auth::new(tokens, AuthConfig::default());

        let store = Store::open(&sqlite_url(dir.path()))
            .await
            .expect("the store opens");
        load(&store, data).await;
        let (_config_tx, config) = watch::channel(Arc::new(demo_snapshot()));
        let now: Timestamp = t(NOW);
        let reports = ReportsService::new(store.clone(), config.clone())
            .with_clock(move || now)
            .with_media_base_url("/media");
        let live = FakeLive::new(board);
        let state = DashboardState::new(reports, config, auth.clone()).with_live(live.clone());
        let app = dashboard::router(state)
            .merge(axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" })));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("an address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Fixture {
            base: format!("http://{addr}"),
            live,
            store,
            auth,
            server,
            _dir: dir,
        }
    }

    /// Starts a dashboard over `data` with the demo board.
    pub async fn start(data: Data) -> Fixture {
        Self::start_with(data, demo_board()).await
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// An HTTP client that does not follow redirects (the tests look at them) and keeps no
/// cookies (the tests send them).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}
