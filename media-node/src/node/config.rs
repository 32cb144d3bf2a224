//! The media node's settings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::guard::GuardConfig;
use crate::registrar::RegistrarConfig;
use crate::sip::transaction::Timers;

use super::NodeError;

/// Everything a media node needs to know that is not in the manifests. Defaults suit one
/// node on one machine; the lead's CLI (`dialtone media-node`, `dialtone up`) fills it from
/// flags and the CallCenter's `mediaNodes` settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's id (pod name in a cluster): in events, leg reports and registrations.
    pub node_id: String,
    /// UDP listen addresses (IPv4 and/or IPv6; port 0 picks a free port).
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// The address written in Contact, Via and SDP. Unset: the first listen address when it is
    /// not a wildcard, else 127.0.0.1 (set it whenever the node is reached from elsewhere).
    pub advertised_ip: Option<IpAddr>,
    /// Where RTP sockets are bound. Unset: the advertised address.
    pub rtp_ip: Option<IpAddr>,
    /// RTP port range (inclusive); each leg takes an even RTP port and the odd RTCP port above.
    pub rtp_ports: (u16, u16),
    /// The router's gRPC URL (for [`super::connect_router`]).
    pub router_url: String,
    /// How long PlanCall may take before the number's backup scheme from the local snapshot
    /// is used instead (the call must not wait on a router that is down).
    pub plan_timeout: Duration,
    /// Deadline of every other router RPC.
    pub router_timeout: Duration,
    /// How long a draining node lets its calls finish before ending them.
    pub drain_timeout: Duration,
    /// No RTP from either side of a bridged call for this long ends it as a failure.
    pub media_timeout: Duration,
    /// Ring time for menu / overflow jumps to a single agent or number (they carry none).
    pub default_ring_timeout: Duration,
    /// Longest pause between two QueueNextAgent polls (the router's retry_after is capped).
    pub queue_poll_max: Duration,
    /// Retry-After seconds in the 503 of a draining node.
    pub retry_after_secs: u32,
    /// RFC 3261 timers (T1, T2, …).
    pub sip_timers: Timers,
    /// The SIP user written in our Contact.
    pub contact_user: String,
    /// Flood bans and scanner drops.
    pub guard: GuardConfig,
    /// The registrar (realm, nonce secret shared by all nodes, expiry limits, failure
    /// limits). An empty nonce secret is replaced by a random one at start.
    pub registrar: RegistrarConfig,
    /// Where prompts are read: `<prompts_dir>/<name>.wav`, 8 kHz mono PCM16, µ-law or A-law
    /// (standalone: `prompts/` beside the manifests; in a cluster: the mounted prompts
    /// ConfigMap). Unset: calls hear no prompts (menus still take digits).
    pub prompts_dir: Option<PathBuf>,
    /// Where voicemail messages and call recordings are written (`voicemail/…`,
    /// `calls/…`; events carry paths relative to it). Unset: nothing is recorded and
    /// voicemail steps are skipped.
    pub recordings_dir: Option<PathBuf>,
    /// Longest voicemail message when the plan gives none.
    pub voicemail_max: Duration,
    /// Silence that ends a voicemail message when the manifest's `silenceSeconds` cannot be
    /// found (backup plans).
    pub voicemail_silence: Duration,
    /// Shortest time between two position announcements to a queued caller.
    pub announce_every: Duration,
}

impl NodeConfig {
    /// Defaults with this node id and router URL, listening on 0.0.0.0:5060 (UDP and TCP).
    pub fn new(node_id: impl Into<String>, router_url: impl Into<String>) -> Self {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5060);
        NodeConfig {
            node_id: node_id.into(),
            udp: vec![any],
            tcp: vec![any],
            advertised_ip: None,
            rtp_ip: None,
            rtp_ports: (20000, 30000),
            router_url: router_url.into(),
            plan_timeout: Duration::from_secs(2),
            router_timeout: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(3600),
            media_timeout: Duration::from_secs(60),
            default_ring_timeout: Duration::from_secs(30),
            queue_poll_max: Duration::from_secs(5),
            retry_after_secs: 30,
            sip_timers: Timers::default(),
            contact_user: "dialtone".into(),
            guard: GuardConfig::default(),
            registrar: RegistrarConfig::default(),
            prompts_dir: None,
            recordings_dir: None,
            voicemail_max: Duration::from_secs(120),
            voicemail_silence: Duration::from_secs(5),
            announce_every: Duration::from_secs(30),
        }
    }

    /// A configuration for tests and `dialtone demo`: loopback only, ephemeral SIP ports.
    pub fn loopback(node_id: impl Into<String>, router_url: impl Into<String>) -> Self {
        let lo = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        NodeConfig {
            udp: vec![lo],
            tcp: vec![lo],
            ..NodeConfig::new(node_id, router_url)
        }
    }

    /// The address advertised in Contact / Via / SDP.
    pub fn advertised(&self) -> IpAddr {
        self.advertised_ip.unwrap_or_else(|| {
            self.udp
                .iter()
                .chain(&self.tcp)
                .map(SocketAddr::ip)
                .find(|ip| !ip.is_unspecified())
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        })
    }

    /// The address RTP sockets bind to.
    pub fn rtp_bind_ip(&self) -> IpAddr {
        self.rtp_ip.unwrap_or_else(|| self.advertised())
    }

    pub(super) fn check(&self) -> Result<(), NodeError> {
        if self.udp.is_empty() && self.tcp.is_empty() {
            return Err(NodeError::Config("no UDP or TCP listen address".into()));
        }
        let (lo, hi) = self.rtp_ports;
        if lo == 0 || hi < lo.saturating_add(1) {
            return Err(NodeError::Config(format!(
                "RTP port range {lo}-{hi} must hold at least one even/odd pair"
            )));
        }
        if self.node_id.is_empty() {
            return Err(NodeError::Config("node id is empty".into()));
        }
        Ok(())
    }
}
