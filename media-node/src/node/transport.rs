//! SIP over UDP and TCP: listeners, one receive task per socket or connection, and the
//! sending side the actor uses to execute [`Action::Send`](crate::sip::transaction::Action).
//!
//! Responses go back where the request came from: UDP from the socket of the same address
//! family, TCP on the connection the request arrived on (connections are keyed by the peer's
//! address, which is what [`Peer`] carries). A send to a TCP peer without a connection opens
//! one; if that fails, every transaction that tried to use it is told through
//! [`Input::SendFailed`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::actor::Input;
use super::{NodeConfig, NodeError};
use crate::sip::message::StreamFramer;
use crate::sip::transaction::TxId;
use crate::sip::{Peer, Transport};

/// Largest UDP datagram read.
const MAX_DATAGRAM: usize = 65_535;
/// How long an outgoing TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound listeners, before the actor takes them.
pub(super) struct Bound {
    pub(super) udp: Vec<Arc<UdpSocket>>,
    pub(super) tcp: Vec<TcpListener>,
}

impl Bound {
    pub(super) fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    pub(super) fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// Binds every configured listener.
pub(super) async fn bind(config: &NodeConfig) -> Result<Bound, NodeError> {
    let mut udp = Vec::new();
    for addr in &config.udp {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| NodeError::Bind {
                transport: "udp",
                addr: *addr,
                source,
            })?;
        udp.push(Arc::new(socket));
    }
    let mut tcp = Vec::new();
    for addr in &config.tcp {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| NodeError::Bind {
                transport: "tcp",
                addr: *addr,
                source,
            })?;
        tcp.push(listener);
    }
    Ok(Bound { udp, tcp })
}

type Outgoing = (Vec<u8>, Option<TxId>);

/// The actor's side of the transports.
pub(super) struct Transports {
    udp: Vec<Arc<UdpSocket>>,
    tcp: HashMap<SocketAddr, mpsc::UnboundedSender<Outgoing>>,
    inbox: mpsc::Sender<Input>,
}

impl Transports {
    /// Starts the receive tasks of the bound listeners.
    pub(super) fn start(bound: Bound, inbox: mpsc::Sender<Input>, dropped: Counter) -> Self {
        for socket in &bound.udp {
            tokio::spawn(udp_receive(socket.clone(), inbox.clone(), dropped.clone()));
        }
        for listener in bound.tcp {
            tokio::spawn(tcp_accept(listener, inbox.clone()));
        }
        Transports {
            udp: bound.udp,
            tcp: HashMap::new(),
            inbox,
        }
    }

    /// Sends bytes to a peer. Failures that belong to a transaction are reported back as
    /// [`Input::SendFailed`]; the returned value says whether the send failed at once.
    pub(super) fn send(&mut self, to: Peer, bytes: Vec<u8>, tx: Option<TxId>) -> bool {
        match to.transport {
            Transport::Udp => {
                let socket = self
                    .udp
                    .iter()
                    .find(|s| {
                        s.local_addr()
                            .is_ok_and(|a| a.is_ipv4() == to.addr.is_ipv4())
                    })
                    .or_else(|| self.udp.first());
                let Some(socket) = socket else {
                    tracing::warn!(%to, "no UDP socket to send from");
                    return false;
                };
                match socket.try_send_to(&bytes, to.addr) {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::debug!(%to, error = %e, "UDP send failed");
                        false
                    }
                }
            }
            Transport::Tcp => {
                if let Some(conn) = self.tcp.get(&to.addr) {
                    match conn.send((bytes, tx)) {
                        Ok(()) => return true,
                        Err(mpsc::error::SendError((bytes, tx))) => {
                            self.tcp.remove(&to.addr);
                            return self.connect(to.addr, bytes, tx);
                        }
                    }
                }
                self.connect(to.addr, bytes, tx)
            }
        }
    }

    /// Opens a TCP connection to `addr` whose first message is `bytes`.
    fn connect(&mut self, addr: SocketAddr, bytes: Vec<u8>, tx: Option<TxId>) -> bool {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        if out_tx.send((bytes, tx)).is_err() {
            return false;
        }
        self.tcp.insert(addr, out_tx);
        let inbox = self.inbox.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => connection(stream, addr, out_rx, inbox).await,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "TCP connect failed");
                    fail_pending(out_rx, addr, inbox).await;
                }
                Err(_) => {
                    tracing::debug!(%addr, "TCP connect timed out");
                    fail_pending(out_rx, addr, inbox).await;
                }
            }
        });
        true
    }

    /// A connection task ended: forget its sender.
    pub(super) fn closed(&mut self, addr: SocketAddr) {
        if self.tcp.get(&addr).is_some_and(|c| c.is_closed()) {
            self.tcp.remove(&addr);
        }
    }

    /// Registers an accepted connection.
    pub(super) fn accepted(&mut self, addr: SocketAddr, out: mpsc::UnboundedSender<Outgoing>) {
        self.tcp.insert(addr, out);
    }
}

async fn fail_pending(
    mut out_rx: mpsc::UnboundedReceiver<Outgoing>,
    addr: SocketAddr,
    inbox: mpsc::Sender<Input>,
) {
    out_rx.close();
    while let Some((_, tx)) = out_rx.recv().await {
        if let Some(tx) = tx {
            let _ = inbox.send(Input::SendFailed { tx }).await;
        }
    }
    let _ = inbox.send(Input::TcpClosed { addr }).await;
}

async fn udp_receive(socket: Arc<UdpSocket>, inbox: mpsc::Sender<Input>, dropped: Counter) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here on some systems; the socket stays usable.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let input = Input::Datagram {
            bytes: buf[..n].to_vec(),
            source: Peer::udp(from),
        };
        match inbox.try_send(input) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Overload: shed the datagram; the sender retransmits (UDP) if it matters.
                dropped.inc();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

async fn tcp_accept(listener: TcpListener, inbox: mpsc::Sender<Input>) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        if inbox
            .send(Input::TcpAccepted { addr, out: out_tx })
            .await
            .is_err()
        {
            return;
        }
        tokio::spawn(connection(stream, addr, out_rx, inbox.clone()));
    }
}

/// One TCP connection: frames what it reads, writes what the actor sends, until either side
/// closes or the framing is lost (RFC 4475 §3.3.9: then the connection must be closed).
async fn connection(
    mut stream: TcpStream,
    addr: SocketAddr,
    mut out_rx: mpsc::UnboundedReceiver<Outgoing>,
    inbox: mpsc::Sender<Input>,
) {
    let _ = stream.set_nodelay(true);
    let mut framer = StreamFramer::default();
    let mut buf = vec![0u8; 16 * 1024];
    let source = Peer::tcp(addr);
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (frames, error) = framer.feed(&buf[..n]);
                for frame in frames {
                    if inbox.send(Input::Frame { frame, source }).await.is_err() {
                        return;
                    }
                }
                if let Some(e) = error {
                    tracing::debug!(%addr, error = %e, "closing TCP connection: framing lost");
                    break;
                }
            }
            out = out_rx.recv() => {
                let Some((bytes, tx)) = out else { break };
                if stream.write_all(&bytes).await.is_err() {
                    if let Some(tx) = tx {
                        let _ = inbox.send(Input::SendFailed { tx }).await;
                    }
                    break;
                }
            }
        }
    }
    // Closed first, so that the actor sees the sender closed when TcpClosed arrives.
    out_rx.close();
    let _ = inbox.send(Input::TcpClosed { addr }).await;
    // Anything still queued for this connection failed.
    while let Some((_, tx)) = out_rx.recv().await {
        if let Some(tx) = tx {
            let _ = inbox.send(Input::SendFailed { tx }).await;
        }
    }
}
