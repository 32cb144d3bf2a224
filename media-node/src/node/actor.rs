//! The actor: the one task that owns the transaction layer, the dialogs and every call.
//!
//! It is fed by [`Input`]s (socket reads, router answers, media tasks' reports) and by time (the
//! transaction layer's timers and its own call timers), and it never awaits anything but its
//! next input or timer: sending is non-blocking (UDP `try_send_to`, TCP through each
//! connection's queue) and router questions run in tasks of their own.

use dialtone_proto::internal::InternalChannel;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use dialtone_model::Snapshot;
use dialtone_proto::v1::router_client::RouterClient;
use rsipstack::sip::Request;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::NodeConfig;
use super::call::{Call, CallKey, Side};
use super::events::EventSink;
use super::health::Health;
use super::router::{Reply, RouterLink};
use super::rtp::PortPool;
use super::sipmsg;
use super::transport::{Bound, Transports};
use crate::guard::{Guard, Verdict};
use crate::registrar::Registrar;
use crate::sip::dialog::{DialogId, Dialogs};
use crate::sip::message::Frame;
use crate::sip::message::raw;
use crate::sip::transaction::{Action, LayerConfig, TransactionLayer, TuEvent, TxId};
use crate::sip::{Peer, Transport};

/// Capacity of the actor's inbox; past it, datagrams are shed (and counted).
const INBOX: usize = 8192;
/// How often lapsed registrations and idle guard entries are swept.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything the actor reacts to.
#[derive(Debug)]
pub(super) enum Input {
    /// A UDP datagram.
    Datagram { bytes: Vec<u8>, source: Peer },
    /// A frame cut from a TCP stream.
    Frame { frame: Frame, source: Peer },
    /// A TCP connection was accepted; send to it through `out`.
    TcpAccepted {
        addr: SocketAddr,
        out: mpsc::UnboundedSender<(Vec<u8>, Option<TxId>)>,
    },
    /// A TCP connection ended.
    TcpClosed { addr: SocketAddr },
    /// Sending for this transaction failed.
    SendFailed { tx: TxId },
    /// A router answer.
    Router(Box<Reply>),
    /// A call's media task reports (prompt played, key pressed, message recorded…).
    Media {
        call: CallKey,
        event: super::session::MediaEvent,
    },
    /// Carrier host names resolved: carrier name → addresses.
    CarrierAddrs(HashMap<String, Vec<SocketAddr>>),
    /// The node session opened, or brought an order from the router.
    Session(super::node_link::SessionEvent),
}

/// What a transaction is for.
#[derive(Debug)]
pub(super) enum TxRole {
    /// The caller's INVITE (server).
    CallerInvite(CallKey),
    /// An INVITE toward an agent or carrier (client), for leg `usize` of the call.
    LegInvite(CallKey, usize),
    /// An INVITE of a call that has ended: a 2xx still gets ACK and BYE.
    Orphan {
        invite: Box<Request>,
        dest: Peer,
        contact: String,
    },
    /// A request relayed from one side to the other (re-INVITE, UPDATE, INFO): answer
    /// `server` with the response.
    PassThrough {
        call: CallKey,
        server: TxId,
        request: Box<Request>,
        /// The side the request came from (whose dialog answers).
        from: Side,
    },
    /// An OPTIONS probe of this carrier.
    Probe(String),
    /// A registration trunk's REGISTER to this carrier.
    Trunk(String),
    /// A request whose answer does not matter (BYE, ACKed INVITE…).
    Fire,
}

/// Call timers.
#[derive(Debug, Clone)]
pub(super) enum TimerKind {
    /// The ring step (or sequential target, or queue offer) of this generation is over.
    Stage,
    /// Ask the queue again.
    QueuePoll,
    /// The queue's max wait passed.
    QueueMaxWait,
    /// The queue's overflow time passed.
    QueueOverflow,
    /// A menu's digit or inter-digit timeout (the menu's timer number: only the latest counts).
    Menu(u64),
    /// A carrier leg's INVITE (this transaction) heard nothing yet: time to try the next one.
    CarrierSilence(usize, TxId),
}

#[derive(Debug, Clone)]
pub(super) struct Timer {
    pub(super) call: CallKey,
    pub(super) generation: u64,
    pub(super) kind: TimerKind,
}

/// The actor's state.
pub(super) struct Node {
    pub(super) cfg: Arc<NodeConfig>,
    pub(super) layer: TransactionLayer,
    pub(super) dialogs: Dialogs,
    pub(super) dialog_owner: HashMap<DialogId, (CallKey, Side)>,
    pub(super) tx_role: HashMap<TxId, TxRole>,
    pub(super) calls: HashMap<CallKey, Call>,
    pub(super) transports: Transports,
    pub(super) router: RouterLink,
    pub(super) sink: Arc<dyn EventSink>,
    pub(super) health: Health,
    pub(super) ports: PortPool,
    pub(super) snapshot: watch::Receiver<Arc<Snapshot>>,
    pub(super) inbox: mpsc::Sender<Input>,
    pub(super) carrier_addrs: HashMap<String, Vec<SocketAddr>>,
    /// Local SIP ports by transport (for Contact).
    pub(super) udp_port: u16,
    pub(super) tcp_port: u16,
    pub(super) draining: Option<Instant>,
    pub(super) guard: Guard,
    pub(super) registrar: Registrar,
    /// Prompts read from the prompts folder, shared with the calls' media tasks.
    pub(super) prompts: Arc<super::prompts::Prompts>,
    /// The session with the router that carries its orders.
    pub(super) link: super::node_link::NodeLink,
    /// Carriers' health (probes) and channels in use.
    pub(super) carrier_book: crate::carrier::CarrierBook,
    /// Registration trunks by carrier.
    pub(super) trunks: HashMap<String, crate::carrier::Trunk>,
    last_sweep: Instant,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_map: HashMap<u64, Timer>,
    timer_seq: u64,
    call_seq: u64,
}

/// Starts the actor on the bound listeners.
pub(super) fn spawn(
    cfg: NodeConfig,
    bound: Bound,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    router: RouterClient<InternalChannel>,
    sink: Arc<dyn EventSink>,
    health: Health,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let (inbox, rx) = mpsc::channel(INBOX);
    let udp_port = bound.udp_addrs().first().map_or(5060, SocketAddr::port);
    let tcp_port = bound.tcp_addrs().first().map_or(udp_port, SocketAddr::port);
    let advertised = cfg.advertised();
    let host = host_text(advertised);
    let mut layer_cfg = LayerConfig::new(
        format!("{host}:{udp_port}"),
        token(&cfg.node_id),
        fastrand::u64(..),
    );
    layer_cfg.timers = cfg.sip_timers;
    let cfg_guard = cfg.guard.clone();
    // The guard and the registrar move their limits' metrics themselves (guard::metrics).
    let security = health.metrics().security.clone();
    let mut cfg_registrar = cfg.registrar.clone();
    if cfg_registrar.nonce_secret.is_empty() {
        // One node alone: a random secret. Nodes sharing registrations need the same one.
        cfg_registrar.nonce_secret = (0..32).map(|_| fastrand::u8(..)).collect();
    }
    let ports = PortPool::new(cfg.rtp_bind_ip(), cfg.rtp_ports.0, cfg.rtp_ports.1);
    let transports = Transports::start(
        bound,
        inbox.clone(),
        health.metrics().inbound_dropped.clone(),
    );
    let link = super::node_link::NodeLink::start(
        router.clone(),
        dialtone_proto::v1::NodeHello {
            node_id: cfg.node_id.clone(),
            sip_address: format!("{host}:{udp_port}"),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        inbox.clone(),
    );
    let router = RouterLink::new(router, inbox.clone(), cfg.router_timeout);
    let prompts = Arc::new(super::prompts::Prompts::new(cfg.prompts_dir.clone()));
    let node = Node {
        cfg: Arc::new(cfg),
        layer: TransactionLayer::new(layer_cfg),
        dialogs: Dialogs::default(),
        dialog_owner: HashMap::new(),
        tx_role: HashMap::new(),
        calls: HashMap::new(),
        transports,
        router,
        sink,
        health,
        ports,
        snapshot,
        inbox,
        carrier_addrs: HashMap::new(),
        udp_port,
        tcp_port,
        draining: None,
        guard: Guard::new(cfg_guard).with_metrics(security.clone()),
        registrar: Registrar::new(cfg_registrar).with_metrics(security),
        prompts,
        link,
        carrier_book: crate::carrier::CarrierBook::default(),
        trunks: HashMap::new(),
        last_sweep: Instant::now(),
        timers: BinaryHeap::new(),
        timer_map: HashMap::new(),
        timer_seq: 0,
        call_seq: 0,
    };
    tokio::spawn(node.run(rx, shutdown))
}

/// A host for URIs: IPv6 in brackets.
pub(super) fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// A branch-safe token from the node id (part of every branch we generate, for loop
/// detection).
fn token(node_id: &str) -> String {
    let t: String = node_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    if t.is_empty() { "dt".into() } else { t }
}

impl Node {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>, mut shutdown: watch::Receiver<bool>) {
        let span = tracing::info_span!("media_node", node_id = %self.cfg.node_id);
        span.in_scope(|| {
            self.resolve_carriers();
            self.on_snapshot();
            self.apply_carriers();
        });
        let mut shutdown_seen = *shutdown.borrow();
        if shutdown_seen {
            self.start_drain();
        }
        loop {
            if self.draining.is_some() && self.calls.is_empty() {
                break;
            }
            let next = self.next_deadline();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = rx.recv() => {
                    let Some(input) = input else { break };
                    span.in_scope(|| self.on_input(input));
                }
                _ = sleep => span.in_scope(|| self.on_timers()),
                changed = shutdown.changed(), if !shutdown_seen => {
                    if changed.is_err() || *shutdown.borrow() {
                        shutdown_seen = true;
                        span.in_scope(|| self.start_drain());
                    }
                }
                changed = self.snapshot.changed() => {
                    if changed.is_ok() {
                        // Prompts may have been edited with the manifests: read them again.
                        self.prompts.clear();
                        span.in_scope(|| {
                            self.resolve_carriers();
                            self.on_snapshot();
                            self.apply_carriers();
                        });
                    }
                }
            }
        }
        // Let the last BYEs / responses leave through the TCP connection tasks.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        tracing::info!(node_id = %self.cfg.node_id, "media node stopped");
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let layer = self.layer.next_timer();
        let own = self.timers.peek().map(|Reverse((at, _))| *at);
        let drain = self.draining;
        let sweep = Some(self.last_sweep + SWEEP_EVERY);
        let carriers = self.carrier_deadline();
        [layer, own, drain, sweep, carriers]
            .into_iter()
            .flatten()
            .min()
    }

    fn start_drain(&mut self) {
        if self.draining.is_some() {
            return;
        }
        let deadline = Instant::now() + self.cfg.drain_timeout;
        self.draining = Some(deadline);
        self.health.readiness().set(false);
        tracing::info!(active_calls = self.calls.len(), timeout = ?self.cfg.drain_timeout, "draining: new INVITEs get 503");
        self.publish_status();
    }

    /// Whether the node refuses new calls.
    pub(super) fn is_draining(&self) -> bool {
        self.draining.is_some()
    }

    /// Resolves carrier host names in the background (the actor never waits on DNS).
    fn resolve_carriers(&mut self) {
        let snapshot = self.snapshot.borrow().clone();
        let inbox = self.inbox.clone();
        let targets: Vec<(String, String, u16)> = snapshot
            .carriers
            .values()
            .map(|c| (c.name.clone(), c.host.clone(), c.port))
            .collect();
        tokio::spawn(async move {
            let mut out = HashMap::new();
            for (name, host, port) in targets {
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                if let Ok(ip) = host.parse::<IpAddr>() {
                    out.insert(name, vec![SocketAddr::new(ip, port)]);
                    continue;
                }
                let lookup = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    tokio::net::lookup_host((host.as_str(), port)),
                )
                .await;
                if let Ok(Ok(addrs)) = lookup {
                    out.insert(name, addrs.collect());
                }
            }
            let _ = inbox.send(Input::CarrierAddrs(out)).await;
        });
    }

    fn on_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Datagram { bytes, source } => {
                if !self.admitted(&bytes, source, now) {
                    return;
                }
                let actions = self.layer.on_datagram(now, &bytes, source);
                self.execute(actions);
            }
            Input::Frame { frame, source } => {
                if let Frame::Message(bytes) = &frame
                    && !self.admitted(bytes, source, now)
                {
                    return;
                }
                let actions = self.layer.on_frame(now, frame, source);
                self.execute(actions);
            }
            Input::TcpAccepted { addr, out } => self.transports.accepted(addr, out),
            Input::TcpClosed { addr } => self.transports.closed(addr),
            Input::SendFailed { tx } => {
                let actions = self.layer.on_transport_error(tx);
                self.execute(actions);
            }
            Input::Router(reply) => self.on_router(*reply),
            Input::Media { call, event } => self.on_media(&call, event),
            Input::CarrierAddrs(addrs) => {
                self.carrier_addrs = addrs;
                self.publish_carrier_states();
            }
            Input::Session(event) => self.on_session(event),
        }
    }

    /// The guard's verdict on a request before it costs anything (responses pass: they
    /// answer our own requests).
    fn admitted(&mut self, bytes: &[u8], source: Peer, now: Instant) -> bool {
        let scanned = raw::scan(bytes, 64);
        if scanned.start_line.is_none() || scanned.is_response() {
            return true;
        }
        match self
            .guard
            .check(source.addr.ip(), scanned.named("User-Agent"), now)
        {
            Verdict::Pass => true,
            Verdict::DropScanner | Verdict::Banned { .. } => false,
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            self.sweep();
            self.publish_status();
        }
        let actions = self.layer.on_timer(now);
        self.execute(actions);
        self.carrier_timers(now);
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(timer) = self.timer_map.remove(&id) {
                self.on_call_timer(timer);
            }
        }
        if let Some(deadline) = self.draining
            && deadline <= now
            && !self.calls.is_empty()
        {
            tracing::warn!(
                calls = self.calls.len(),
                "drain timeout: ending the remaining calls"
            );
            let keys: Vec<CallKey> = self.calls.keys().cloned().collect();
            for key in keys {
                self.end_call(&key, super::ending::Ending::shutdown());
            }
        }
    }

    /// Arms a call timer.
    pub(super) fn arm(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq)));
        self.timer_map.insert(self.timer_seq, timer);
    }

    /// A new call id: node id, time and a counter, unique across nodes and restarts.
    pub(super) fn new_call_key(&mut self) -> CallKey {
        self.call_seq += 1;
        let ms = jiff::Timestamp::now().as_millisecond();
        format!("{}-{ms:x}-{}", token(&self.cfg.node_id), self.call_seq)
    }

    /// Our Contact URI for a transport.
    pub(super) fn contact(&self, transport: Transport) -> String {
        let host = host_text(self.cfg.advertised());
        match transport {
            Transport::Udp => format!("sip:{}@{host}:{}", self.cfg.contact_user, self.udp_port),
            Transport::Tcp => format!(
                "sip:{}@{host}:{};transport=tcp",
                self.cfg.contact_user, self.tcp_port
            ),
        }
    }

    /// Executes what the transaction layer asked for.
    pub(super) fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, bytes, tx } => {
                    if let Some(code) = sipmsg::status_of(&bytes) {
                        self.health.metrics().response_sent(code);
                    }
                    if !self.transports.send(to, bytes, tx)
                        && let Some(tx) = tx
                        && to.transport == Transport::Tcp
                    {
                        let more = self.layer.on_transport_error(tx);
                        self.execute(more);
                    }
                }
                Action::Tu(event) => self.on_tu(event),
            }
        }
    }

    fn on_tu(&mut self, event: TuEvent) {
        match event {
            TuEvent::Request {
                tx,
                request,
                source,
            } => self.on_request(tx, request, source),
            TuEvent::Ack {
                tx,
                request,
                source,
            } => self.on_ack(tx, &request, source),
            TuEvent::Cancelled { tx, terminated } => {
                if let Some(TxRole::CallerInvite(key)) = self.tx_role.get(&tx) {
                    let key = key.clone();
                    self.on_caller_cancel(&key, terminated);
                }
            }
            TuEvent::Response { tx, response } => self.on_response(tx, *response),
            TuEvent::StrayResponse { response, source } => self.on_stray(&response, source),
            TuEvent::Rejected {
                status,
                method,
                source,
            } => {
                tracing::debug!(status, method = ?method, %source, "request refused by the SIP core");
            }
            TuEvent::Discarded { reason, source } => {
                tracing::trace!(reason, %source, "message discarded");
            }
            TuEvent::Timeout { tx, kind } => self.on_timeout(tx, kind),
            TuEvent::TransportError { tx } => self.on_transport_error(tx),
            TuEvent::Terminated { tx } => {
                // Nothing more comes for it; a late 2xx arrives as a stray response.
                self.tx_role.remove(&tx);
            }
        }
    }

    fn on_call_timer(&mut self, timer: Timer) {
        let Some(call) = self.calls.get(&timer.call) else {
            return;
        };
        match timer.kind {
            TimerKind::Stage | TimerKind::QueuePoll => {
                if call.exec.generation != timer.generation {
                    return;
                }
                let span = call.span.clone();
                let _g = span.enter();
                if matches!(timer.kind, TimerKind::Stage) {
                    self.stage_timeout(&timer.call);
                } else {
                    self.queue_poll(&timer.call);
                }
            }
            TimerKind::Menu(seq) => {
                if call.exec.generation != timer.generation {
                    return;
                }
                let span = call.span.clone();
                let _g = span.enter();
                self.menu_timer(&timer.call, seq);
            }
            TimerKind::QueueMaxWait | TimerKind::QueueOverflow => {
                if call.queue.as_ref().map(|q| q.id) != Some(timer.generation) {
                    return;
                }
                let span = call.span.clone();
                let _g = span.enter();
                let overflow = matches!(timer.kind, TimerKind::QueueOverflow);
                self.queue_timeout(&timer.call, overflow);
            }
            TimerKind::CarrierSilence(idx, tx) => {
                let span = call.span.clone();
                let _g = span.enter();
                self.carrier_silent(&timer.call, idx, tx);
            }
        }
    }

    pub(super) fn on_media_timeout(&mut self, key: &str) {
        if let Some(call) = self.calls.get(key) {
            let span = call.span.clone();
            let _g = span.enter();
            tracing::warn!(call_id = %key, timeout = ?self.cfg.media_timeout, "no RTP: ending the call");
            self.end_call(key, super::ending::Ending::media_timeout());
        }
    }

    /// The snapshot now.
    pub(super) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }
}
