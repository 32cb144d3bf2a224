//! The far side of the demo's backup carrier: where Dialtone's outbound calls land. It keeps
//! the trunk healthy (answers OPTIONS probes and the trunk's REGISTER) and plays one client
//! being called back: an INVITE to that number rings, is answered after a moment, and the
//! client hangs up after a short talk. INVITEs to any other number get no answer at all, as
//! from a carrier that does not reach them (the leg moves on after Dialtone's silence limit).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::sim::{Msg, branch, fastrand_u64, plain_response, recv, response_for};

/// How long the client's phone rings before they pick up.
const RINGS: Duration = Duration::from_secs(2);
/// How long the client talks before hanging up.
const TALKS: Duration = Duration::from_secs(4);

/// The simulated far end, bound on loopback.
pub struct FarEnd {
    sock: Arc<UdpSocket>,
    client: String,
}

impl FarEnd {
    /// Binds a loopback socket; `client` is the one number that answers.
    pub async fn bind(client: &str) -> std::io::Result<Self> {
        Ok(FarEnd {
            sock: Arc::new(UdpSocket::bind("127.0.0.1:0").await?),
            client: client.to_owned(),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Answers until the task is dropped.
    pub async fn serve(self) {
        let Ok(local) = self.sock.local_addr() else {
            return;
        };
        let media = UdpSocket::bind("127.0.0.1:0").await.ok();
        let media_addr = media
            .as_ref()
            .and_then(|m| m.local_addr().ok())
            .unwrap_or(local);
        let mut answered = std::collections::HashSet::new();
        loop {
            let Some((text, from)) = recv(&self.sock, Duration::from_secs(3600)).await else {
                continue;
            };
            let m = Msg(&text);
            match m.method() {
                Some("OPTIONS" | "BYE") => {
                    let ok = plain_response(&text, 200, "OK", None);
                    let _ = self.sock.send_to(ok.as_bytes(), from).await;
                }
                Some("REGISTER") => {
                    let ok = plain_response(&text, 200, "OK", Some("trunk"));
                    let ok = ok.replacen(
                        "Content-Length: 0\r\n",
                        "Expires: 3600\r\nContent-Length: 0\r\n",
                        1,
                    );
                    let _ = self.sock.send_to(ok.as_bytes(), from).await;
                }
                Some("INVITE") if m.first().contains(&format!("sip:{}@", self.client)) => {
                    // Retransmissions of an INVITE being handled are ignored.
                    let call_id = m.header("Call-ID").unwrap_or_default().to_owned();
                    if !answered.insert(call_id) {
                        continue;
                    }
                    let tag = format!("c{:x}", fastrand_u64() as u32);
                    let sock = self.sock.clone();
                    tokio::spawn(pick_up_and_hang_up(
                        sock, text, from, tag, local, media_addr,
                    ));
                }
                _ => {}
            }
        }
    }
}

/// The called-back client: rings, answers, talks, hangs up.
async fn pick_up_and_hang_up(
    sock: Arc<UdpSocket>,
    invite: String,
    from: SocketAddr,
    tag: String,
    local: SocketAddr,
    media: SocketAddr,
) {
    let reply = response_for(&invite, &tag, local, media);
    let _ = sock
        .send_to(reply(180, "Ringing", false).as_bytes(), from)
        .await;
    tokio::time::sleep(RINGS).await;
    let _ = sock.send_to(reply(200, "OK", true).as_bytes(), from).await;
    tokio::time::sleep(TALKS).await;
    let m = Msg(&invite);
    let target = m
        .header("Contact")
        .and_then(|c| c.split('<').nth(1))
        .and_then(|c| c.split('>').next())
        .unwrap_or_default()
        .to_owned();
    let to = m.header("To").unwrap_or_default();
    let bye = format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from_h}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        b = branch(),
        from_h = m.header("From").unwrap_or_default(),
        cid = m.header("Call-ID").unwrap_or_default(),
    );
    let _ = sock.send_to(bye.as_bytes(), from).await;
}
