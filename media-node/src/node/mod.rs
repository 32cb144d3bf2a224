//! The media node's runtime: sockets, the B2BUA and the RTP relay around the sans-IO core.
//!
//! # Shape
//!
//! One task, the *actor* ([`actor`]), owns everything that changes: the
//! [`TransactionLayer`](crate::sip::transaction::TransactionLayer), the dialogs, every call and
//! the RTP port pool. Everything else talks to it through one channel ([`Input`]):
//!
//! - a receive task per UDP socket and per TCP connection (each TCP connection cuts its stream
//!   with its own [`StreamFramer`](crate::sip::message::StreamFramer)),
//! - router RPCs, each run in a task of its own with a deadline, whose replies come back as
//!   messages (the actor never awaits the router, so a slow router delays one call, not the
//!   node),
//! - a media task per call ([`session`]), which owns the caller's RTP sockets: it plays
//!   prompts paced every 20 ms, hears DTMF, records voicemail, and once an agent answers
//!   relays (and records) between caller and agent; it reports prompts played to their end,
//!   key presses, messages ended and media inactivity.
//!
//! # The media plane, as the caller hears it
//!
//! A call whose plan starts with ringing stays unanswered while agents ring: the caller's
//! carrier plays its own ringback on our 180, and a call nobody answers is never billed. As
//! soon as the plan needs the caller to hear or press something — the number's welcome
//! prompt, a `play`, `menu`, `queue` or `voicemail` step — the node answers (200 with its
//! SDP) and plays it. Agents rung after that are announced with a ringback tone the node
//! synthesises (425 Hz, 1 s on, 4 s off) rather than with early media, which would need the
//! call unanswered again. Queued callers hear the queue's hold music (the ringback tone
//! without one) and, with `announcePosition`, `queue-position-N` (N ≤ 9) or
//! `queue-position-many`. Menus take RFC 4733 telephone events and SIP INFO
//! (`application/dtmf-relay`, `application/dtmf`); a key pressed during the menu prompt
//! stops it. Voicemail plays the greeting (which ends with its own beep, as the demo's do; a
//! synthesised beep when there is no greeting), then records the caller until
//! `silenceSeconds` of silence, `maxSeconds` or the hang-up. Recordings are 2-channel WAV,
//! caller left, agent right ([`record`]).
//!
//! The actor sleeps until the earliest of the transaction layer's
//! [`next_timer`](crate::sip::transaction::TransactionLayer::next_timer) and its own call
//! timers (ring timeouts, queue polls, the drain deadline). No lock is held anywhere across an
//! `.await`: there is no shared mutable state but the metrics and the readiness flag.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo(
//! #   snapshot: tokio::sync::watch::Receiver<std::sync::Arc<dialtone_model::Snapshot>>,
//! #   shutdown: tokio::sync::watch::Receiver<bool>,
//! # ) -> Result<(), dialtone_media_node::node::NodeError> {
//! use dialtone_media_node::node::{self, LogSink, MediaNode, NodeConfig};
//! let mut registry = prometheus_client::registry::Registry::default();
//! let health = node::Health::new(&mut registry);
//! let config = NodeConfig::new("node-a", "http://127.0.0.1:50051");
//! let router = node::connect_router(&config.router_url, None)?;
//! let node = MediaNode::start(config, snapshot, router, std::sync::Arc::new(LogSink), health, shutdown).await?;
//! println!("SIP on {:?}", node.udp_addrs());
//! node.join().await
//! # }
//! ```

mod actor;
mod agent_dial;
mod audio;
mod backup;
mod bridge;
mod call;
mod carriers;
mod config;
mod dialog_ops;
mod ending;
mod events;
mod health;
mod hold;
mod ivr;
mod legs;
mod node_link;
mod outbound;
mod owner;
mod plan;
mod prompts;
mod queue;
mod record;
mod registrar;
mod router;
mod rtp;
mod session;
mod sipmsg;
mod trace;
mod transport;
mod voicemail;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure stops the test with the error
mod tests_media;

pub use config::NodeConfig;
pub use events::{ChannelSink, EventSink, LogSink, SpoolSink};
pub use health::{Health, NodeMetrics, Readiness};
pub use rtp::{PortPool, RelayConfig, RelayHandle, RelaySide, spawn_relay};
pub use sipmsg::normalise_number;

use dialtone_proto::internal::InternalChannel;
use std::net::SocketAddr;
use std::sync::Arc;

use dialtone_model::Snapshot;
use dialtone_proto::v1::router_client::RouterClient;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the node could not start or stopped abnormally.
#[derive(Debug, Error)]
pub enum NodeError {
    /// A listener could not be bound.
    #[error("cannot listen on {transport} {addr}: {source}")]
    Bind {
        /// "udp" or "tcp".
        transport: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("invalid media node configuration: {0}")]
    Config(String),
    /// The router URL is not a valid endpoint.
    #[error("invalid router URL {url}: {source}")]
    RouterUrl {
        /// The URL given.
        url: String,
        /// Why tonic refused it.
        source: tonic::transport::Error,
    },
    /// The actor task panicked or was aborted.
    #[error("the media node task failed: {0}")]
    Task(String),
}

/// A router client over a lazily connected channel: the node starts (and answers OPTIONS,
/// rejects strangers, falls back to backup schemes) even when the router is not up yet. Every
/// request shows `internal_token` when there is one (a cluster's shared internal token).
pub fn connect_router(
    url: &str,
    internal_token: Option<&str>,
) -> Result<RouterClient<InternalChannel>, NodeError> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|source| NodeError::RouterUrl {
            url: url.to_owned(),
            source,
        })?
        .connect_timeout(std::time::Duration::from_secs(2));
    let token = dialtone_proto::internal::InternalToken::new(internal_token)
        .map_err(|e| NodeError::Config(e.to_string()))?;
    Ok(RouterClient::new(token.channel(endpoint.connect_lazy())))
}

/// A running media node: the addresses it listens on and its task.
#[derive(Debug)]
pub struct MediaNode {
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    health: Health,
    task: JoinHandle<()>,
}

impl MediaNode {
    /// Binds every listener, then runs the node until `shutdown` turns true and the drain
    /// ends (active calls finished, or `drain_timeout` passed). Binding happens before this
    /// returns, so the addresses (port 0 resolved) can be read at once.
    pub async fn start(
        config: NodeConfig,
        snapshot: watch::Receiver<Arc<Snapshot>>,
        router: RouterClient<InternalChannel>,
        events: Arc<dyn EventSink>,
        health: Health,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, NodeError> {
        config.check()?;
        let bound = transport::bind(&config).await?;
        let udp = bound.udp_addrs();
        let tcp = bound.tcp_addrs();
        let task = actor::spawn(
            config,
            bound,
            snapshot,
            router,
            events,
            health.clone(),
            shutdown,
        );
        health.readiness().set(true);
        Ok(MediaNode {
            udp,
            tcp,
            health,
            task,
        })
    }

    /// The UDP addresses the node listens on (port 0 resolved).
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp.clone()
    }

    /// The TCP addresses the node listens on (port 0 resolved).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp.clone()
    }

    /// The readiness flag and metrics of this node.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Waits until the node has stopped (after shutdown and drain).
    pub async fn join(self) -> Result<(), NodeError> {
        self.task.await.map_err(|e| NodeError::Task(e.to_string()))
    }
}

/// Runs a media node to its end: [`MediaNode::start`] then [`MediaNode::join`].
pub async fn run(
    config: NodeConfig,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    router: RouterClient<InternalChannel>,
    events: Arc<dyn EventSink>,
    health: Health,
    shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    MediaNode::start(config, snapshot, router, events, health, shutdown)
        .await?
        .join()
        .await
}
