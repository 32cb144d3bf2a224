//! Unit tests of the runtime's pure parts: RTP translation and the port pool.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::rtp::{PortPool, RelayConfig, RelaySide, spawn_relay, translate};
use crate::media::g711;
use crate::media::rtp;
use crate::media::sdp::Codec;

fn side(codec: Codec, te: Option<u8>) -> RelaySide {
    RelaySide {
        remote: None,
        codec,
        telephone_event: te,
    }
}

#[test]
fn transcodes_pcmu_to_pcma_and_renumbers_events() {
    let mut packet = Vec::new();
    let payload: Vec<u8> = (0..160).map(|i| g711::linear_to_ulaw(i * 100)).collect();
    rtp::build(&mut packet, true, 0, 7, 160, 42, &payload);
    let mut out = Vec::new();
    assert!(translate(
        &packet,
        &side(Codec::Pcmu, Some(101)),
        &side(Codec::Pcma, Some(96)),
        &mut out
    ));
    let p = rtp::parse(&out).unwrap();
    assert_eq!(
        (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker),
        (8, 7, 160, 42, true)
    );
    let back: Vec<u8> = p.payload.iter().map(|b| g711::alaw_to_ulaw(*b)).collect();
    let close = back
        .iter()
        .zip(&payload)
        .all(|(a, b)| (g711::ulaw_to_linear(*a) - g711::ulaw_to_linear(*b)).abs() < 600);
    assert!(close, "G.711 round trip stays within quantisation");
    rtp::build(&mut packet, true, 101, 8, 160, 42, &[1, 0x80, 0, 160]);
    assert!(translate(
        &packet,
        &side(Codec::Pcmu, Some(101)),
        &side(Codec::Pcma, Some(96)),
        &mut out
    ));
    assert_eq!(rtp::parse(&out).unwrap().payload_type, 96);
    assert!(!translate(
        &packet,
        &side(Codec::Pcmu, Some(101)),
        &side(Codec::Pcma, None),
        &mut out
    ));
    rtp::build(&mut packet, false, 0, 9, 320, 42, &payload);
    assert!(translate(
        &packet,
        &side(Codec::Pcmu, None),
        &side(Codec::Pcmu, None),
        &mut out
    ));
    assert_eq!(out, packet, "same codec: relayed untouched");
}

#[test]
fn port_pool_hands_out_even_pairs_and_takes_them_back() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut pool = PortPool::new(ip, 47001, 47010);
    let a = pool.allocate().unwrap();
    let b = pool.allocate().unwrap();
    assert_eq!(a.port % 2, 0);
    assert_ne!(a.port, b.port);
    assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port + 1);
    assert_eq!(pool.in_use(), 2);
    let port = a.port;
    drop(a);
    pool.release(port);
    assert_eq!(pool.in_use(), 1);
    let mut all = vec![b];
    while let Ok(p) = pool.allocate() {
        all.push(p);
    }
    assert!(all.len() <= 5, "47002..=47010 holds at most 5 pairs");
}

#[tokio::test]
async fn relay_latches_and_transcodes_both_ways() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut pool = PortPool::new(ip, 47100, 47199);
    let caller_pair = pool.allocate().unwrap();
    let agent_pair = pool.allocate().unwrap();
    let caller_node = SocketAddr::new(ip, caller_pair.port);
    let agent_node = SocketAddr::new(ip, agent_pair.port);
    let caller = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
    let agent = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
    let (tx, mut timed_out) = tokio::sync::mpsc::unbounded_channel();
    let _relay = spawn_relay(
        caller_pair,
        agent_pair,
        RelayConfig {
            caller: side(Codec::Pcmu, Some(101)),
            agent: RelaySide {
                remote: Some(agent.local_addr().unwrap()),
                ..side(Codec::Pcma, Some(101))
            },
            inactivity: Duration::from_millis(300),
        },
        move || {
            let _ = tx.send(());
        },
    );
    let mut packet = Vec::new();
    rtp::build(&mut packet, false, 0, 1, 0, 5, &[0xFF; 160]);
    caller.send_to(&packet, caller_node).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), agent.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, agent_node);
    let p = rtp::parse(&buf[..n]).unwrap();
    assert_eq!(p.payload_type, 8);
    assert_eq!(p.payload[0], g711::ulaw_to_alaw(0xFF));
    // The caller's address was learnt from its first packet: the answer goes there.
    rtp::build(&mut packet, false, 8, 1, 0, 6, &[0xD5; 160]);
    agent.send_to(&packet, agent_node).await.unwrap();
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), caller.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, caller_node);
    assert_eq!(rtp::parse(&buf[..n]).unwrap().payload_type, 0);
    tokio::time::timeout(Duration::from_secs(2), timed_out.recv())
        .await
        .expect("inactivity reported")
        .expect("sender alive");
}
