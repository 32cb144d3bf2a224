use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use dialtone_model::{Environment, PromptCatalog, Snapshot, SourceFile, load};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

fn demo() -> Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("demo folder")
        .map(|e| e.expect("entry").path())
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
    load(&files, &env).snapshot.expect("demo loads")
}

/// Sends `n` requests from `from`, 10 ms apart, starting at `t`; returns the verdicts.
fn burst(g: &mut Guard, from: IpAddr, t: Instant, n: u32) -> Vec<Verdict> {
    (0..n)
        .map(|i| {
            g.check(
                from,
                Some("Zoiper rv2.10"),
                t + Duration::from_millis(10 * u64::from(i)),
            )
        })
        .collect()
}

#[test]
fn a_flood_is_banned_while_another_source_keeps_passing() {
    let mut g = Guard::new(GuardConfig::default());
    let t0 = Instant::now();
    let attacker = ip("192.0.2.66");
    let agent = ip("192.0.2.10");
    let verdicts = burst(&mut g, attacker, t0, 16);
    assert!(
        verdicts.iter().all(|v| *v == Verdict::Pass),
        "16 in 2 s pass"
    );
    let v = g.check(attacker, None, t0 + Duration::from_millis(200));
    assert_eq!(
        v,
        Verdict::Banned {
            until: t0 + Duration::from_millis(200) + Duration::from_secs(300)
        },
        "the 17th within 2 s bans"
    );
    assert!(matches!(
        g.check(attacker, None, t0 + Duration::from_secs(60)),
        Verdict::Banned { .. }
    ));
    // Someone else is unaffected.
    assert_eq!(
        g.check(agent, Some("baresip"), t0 + Duration::from_millis(300)),
        Verdict::Pass
    );
    let c = g.counters();
    assert_eq!(c.bans, 1);
    assert_eq!(c.banned_dropped, 2);
    assert_eq!(c.passed, 17);
}

#[test]
fn the_window_slides() {
    let mut g = Guard::new(GuardConfig::default());
    let t0 = Instant::now();
    let from = ip("192.0.2.7");
    // A steady 8 requests per second for a minute never trips 16 in 2 s.
    for i in 0..480u64 {
        assert_eq!(
            g.check(from, None, t0 + Duration::from_millis(125 * i)),
            Verdict::Pass
        );
    }
    assert_eq!(g.counters().bans, 0);
}

#[test]
fn the_ban_lifts_after_its_time() {
    let config = GuardConfig {
        flood_requests: 3,
        flood_window: Duration::from_secs(1),
        ban_for: Duration::from_secs(10),
        ..GuardConfig::default()
    };
    let mut g = Guard::new(config);
    let t0 = Instant::now();
    let from = ip("2001:db8::66");
    burst(&mut g, from, t0, 3);
    let Verdict::Banned { until } = g.check(from, None, t0 + Duration::from_millis(50)) else {
        panic!("banned")
    };
    assert!(matches!(
        g.check(from, None, until - Duration::from_millis(1)),
        Verdict::Banned { .. }
    ));
    assert_eq!(g.check(from, None, until), Verdict::Pass, "the ban is over");
    // It starts from a clean slate: two more requests pass.
    assert_eq!(
        g.check(from, None, until + Duration::from_millis(1)),
        Verdict::Pass
    );
}

#[test]
fn carrier_sources_are_never_banned() {
    let snapshot = demo();
    let mut g = Guard::new(GuardConfig::default());
    g.update_from_snapshot(&snapshot);
    let t0 = Instant::now();
    // 198.51.100.0/24 is carrier-one's inboundSources in the demo.
    let carrier = ip("198.51.100.20");
    let verdicts = burst(&mut g, carrier, t0, 1000);
    assert!(verdicts.iter().all(|v| *v == Verdict::Pass));
    // The same address seen through a dual-stack socket is still the carrier.
    let mapped = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 20).to_ipv6_mapped());
    assert!(
        burst(&mut g, mapped, t0, 100)
            .iter()
            .all(|v| *v == Verdict::Pass)
    );
    assert_eq!(g.counters().bans, 0);
    assert_eq!(g.counters().exempt, 1100);
    // Outside the range the same flood is banned.
    let outsider = ip("198.51.101.20");
    assert!(
        burst(&mut g, outsider, t0, 20)
            .iter()
            .any(|v| matches!(v, Verdict::Banned { .. }))
    );
}

#[test]
fn registered_agents_are_never_banned_while_registered() {
    let mut g = Guard::new(GuardConfig::default());
    let t0 = Instant::now();
    let office = ip("203.0.113.200");
    g.exempt_until(office, t0 + Duration::from_secs(3600), t0);
    // An earlier expiry from another agent behind the same NAT does not shorten it.
    g.exempt_until(office, t0 + Duration::from_secs(60), t0);
    assert!(
        burst(&mut g, office, t0, 200)
            .iter()
            .all(|v| *v == Verdict::Pass)
    );
    assert!(g.is_exempt(office, t0 + Duration::from_secs(3599)));
    // Once the registration has lapsed the address is an ordinary source again.
    let later = t0 + Duration::from_secs(3601);
    assert!(!g.is_exempt(office, later));
    assert!(
        burst(&mut g, office, later, 20)
            .iter()
            .any(|v| matches!(v, Verdict::Banned { .. }))
    );
    g.sweep(later);
    assert_eq!(g.counters().exemptions, 0);
}

#[test]
fn exemption_lifts_an_existing_ban() {
    let mut g = Guard::new(GuardConfig::default());
    let t0 = Instant::now();
    let from = ip("192.0.2.44");
    burst(&mut g, from, t0, 17);
    assert!(matches!(
        g.check(from, None, t0 + Duration::from_secs(1)),
        Verdict::Banned { .. }
    ));
    g.exempt_until(from, t0 + Duration::from_secs(600), t0);
    assert_eq!(
        g.check(from, None, t0 + Duration::from_secs(2)),
        Verdict::Pass
    );
}

#[test]
fn scanners_are_dropped_whatever_their_case() {
    let mut g = Guard::new(GuardConfig::default());
    let t0 = Instant::now();
    for ua in [
        "friendly-scanner",
        "sipvicious",
        "SIPVicious 0.3.4",
        "sipcli/v1.8",
        "sip-scan",
        "VaxSIPUserAgent/3.1",
        "iWar",
        "sundayddr",
        "Friendly-Scanner",
    ] {
        assert_eq!(
            g.check(ip("192.0.2.99"), Some(ua), t0),
            Verdict::DropScanner,
            "{ua}"
        );
    }
    assert_eq!(
        g.check(ip("192.0.2.99"), Some("Linphone/5.2"), t0),
        Verdict::Pass
    );
    assert_eq!(g.check(ip("192.0.2.99"), None, t0), Verdict::Pass);
    assert_eq!(g.counters().scanners_dropped, 9);
    // Scanner drops do not count toward a flood ban.
    assert_eq!(g.counters().bans, 0);
}

#[test]
fn memory_is_bounded() {
    let config = GuardConfig {
        max_tracked: 1000,
        ..GuardConfig::default()
    };
    let mut g = Guard::new(config);
    let t0 = Instant::now();
    // A spoofed-source flood: a new address per request.
    for n in 0..50_000u32 {
        let addr = IpAddr::V6(Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | u128::from(n),
        ));
        assert_eq!(g.check(addr, None, t0), Verdict::Pass);
    }
    let c = g.counters();
    assert_eq!(c.tracked, 1000);
    assert_eq!(c.evicted, 49_000);
}

/// Issue 6 item 7: every limit moves its metric and writes its `security` log line.
#[test]
fn bans_scanners_and_evictions_move_the_metrics_and_log() {
    use super::log_capture::Capture;
    use tracing::Level;

    let metrics = SecurityMetrics::default();
    let config = GuardConfig {
        flood_requests: 3,
        max_tracked: 4,
        ..GuardConfig::default()
    };
    let mut g = Guard::new(config).with_metrics(metrics.clone());
    let log = Capture::default();
    let t0 = Instant::now();
    let attacker = ip("192.0.2.66");
    tracing::subscriber::with_default(log.clone(), || {
        // A flood: the 4th request within the window bans, the 5th is dropped as banned.
        let verdicts = burst(&mut g, attacker, t0, 5);
        assert!(
            matches!(verdicts[3], Verdict::Banned { .. }),
            "{verdicts:?}"
        );
        assert_eq!(metrics.bans.get(), 1);
        assert_eq!(metrics.banned_drops.get(), 2);
        assert_eq!(metrics.banned_sources.get(), 1);
        assert_eq!(log.security(Level::WARN, "source banned"), 1);

        // Scanners: every drop counts, the 1st and 2nd (powers of two) are logged.
        for _ in 0..3 {
            g.check(ip("192.0.2.99"), Some("friendly-scanner"), t0);
        }
        assert_eq!(metrics.scanner_drops.get(), 3);
        assert_eq!(log.security(Level::WARN, "scanner"), 2);

        // A spoofed-source flood fills the table: the oldest source, the banned attacker,
        // is forgotten, which the eviction counter, its log line and the gauge show.
        for n in 1..=4u8 {
            g.check(IpAddr::from([198, 51, 100, n]), None, t0);
        }
        assert_eq!(metrics.guard_evictions.get(), 1);
        assert_eq!(metrics.banned_sources.get(), 0);
        assert_eq!(log.security(Level::WARN, "source table full"), 1);

        // A ban that runs out leaves the gauge at the next sweep.
        let later = t0 + Duration::from_secs(10);
        burst(&mut g, ip("198.51.100.1"), later, 4);
        assert_eq!(metrics.banned_sources.get(), 1);
        assert_eq!(metrics.bans.get(), 2);
        g.sweep(later + Duration::from_secs(301));
        assert_eq!(metrics.banned_sources.get(), 0);
        assert_eq!(log.security(Level::WARN, "source banned"), 2);
    });
    let c = g.counters();
    assert_eq!(c.bans, metrics.bans.get());
    assert_eq!(c.scanners_dropped, metrics.scanner_drops.get());
    assert_eq!(c.evicted, metrics.guard_evictions.get());
}
