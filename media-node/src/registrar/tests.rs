//! Expiry and binding rules. The digest here comes from [`super::digest::response`], which
//! `tests/registrar.rs` checks against an independent implementation and RFC 2617's
//! example; these tests are about what happens once a REGISTER is authenticated.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialtone_model::{Environment, PromptCatalog, Snapshot, SourceFile, load};

use super::digest::{self, Algorithm, DigestInput, Qop};
use super::*;

const REALM: &str = "dialtone.test";
const RURI: &str = "sip:dialtone.test";

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

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
}

fn src(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 5060))
}

fn request(
    to_user: &str,
    contacts: &[(&str, Option<u32>)],
    expires: Option<u32>,
) -> RegisterRequest {
    RegisterRequest {
        request_uri: RURI.to_owned(),
        to_uri: format!("sip:{to_user}@{REALM}"),
        call_id: "reg-1@softphone".to_owned(),
        cseq: 1,
        contacts: Contacts::List(
            contacts
                .iter()
                .map(|(uri, e)| ContactSpec {
                    uri: (*uri).to_owned(),
                    expires: *e,
                    instance_id: None,
                })
                .collect(),
        ),
        expires,
        authorization: None,
        user_agent: None,
        source: src(10),
    }
}

/// Challenge, then answer it (the algorithm name is the test's; only MD5 and SHA-256).
fn register(
    r: &mut Registrar,
    s: &Snapshot,
    req: &mut RegisterRequest,
    alg: &str,
    user: &str,
    pass: &str,
    now: SystemTime,
) -> RegisterOutcome {
    let algorithm = Algorithm::parse(alg).expect("algorithm");
    req.authorization = None;
    let RegisterOutcome::Challenge { www_authenticate } = r.on_register(req, s, now) else {
        panic!("a challenge")
    };
    let value = &www_authenticate[0];
    let start = value.find("nonce=\"").expect("nonce") + 7;
    let nonce = &value[start..start + value[start..].find('"').expect("quote")];
    let response = digest::response(&DigestInput {
        algorithm,
        username: user,
        realm: REALM,
        password: pass,
        method: "REGISTER",
        uri: RURI,
        nonce,
        qop: Some(Qop {
            nc: "00000001",
            cnonce: "c0ffee",
            qop: "auth",
        }),
    });
    req.cseq += 1;
    req.authorization = Some(format!(
        "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{RURI}\", \
         response=\"{response}\", algorithm={alg}, cnonce=\"c0ffee\", qop=auth, nc=00000001"
    ));
    let outcome = r.on_register(req, s, now);
    req.cseq += 1;
    outcome
}

fn registered(outcome: RegisterOutcome) -> Registered {
    match outcome {
        RegisterOutcome::Registered(r) => r,
        other => panic!("expected 200, got {} {other:?}", other.status()),
    }
}

fn config() -> RegistrarConfig {
    RegistrarConfig {
        realm: REALM.to_owned(),
        nonce_secret: b"unit".to_vec(),
        ..RegistrarConfig::default()
    }
}

#[test]
fn expiry_rules() {
    let s = demo();
    let mut r = Registrar::new(config());
    // Too brief: 423 with Min-Expires, nothing registered.
    let mut req = request("iryna", &[("sip:iryna@192.0.2.13", None)], Some(30));
    let outcome = register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "iryna",
        "demo-iryna-pass",
        t(0),
    );
    assert_eq!(
        (outcome.status(), outcome.reason()),
        (423, "Interval Too Brief")
    );
    assert_eq!(outcome.headers(), vec![("Min-Expires", "60".to_owned())]);
    assert!(r.bindings(t(0)).is_empty());

    // Too long is clamped; a contact's own expires wins over the header.
    let mut req = request(
        "iryna",
        &[
            ("sip:iryna@192.0.2.13", None),
            ("sip:iryna@198.51.100.7", Some(120)),
        ],
        Some(86_400),
    );
    let ok = registered(register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "iryna",
        "demo-iryna-pass",
        t(0),
    ));
    let expiries: Vec<u32> = ok.contacts.iter().map(|c| c.expires).collect();
    assert_eq!(expiries, vec![3600, 120]);

    // expires=0 on one contact removes it alone.
    req.contacts = Contacts::List(vec![ContactSpec {
        uri: "sip:iryna@198.51.100.7".to_owned(),
        expires: Some(0),
        instance_id: None,
    }]);
    let ok = registered(register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "iryna",
        "demo-iryna-pass",
        t(10),
    ));
    assert_eq!(ok.contacts.len(), 1);
    assert_eq!(ok.contacts[0].uri, "sip:iryna@192.0.2.13");
    assert_eq!(ok.contacts[0].expires, 3590);
    assert!(
        matches!(&ok.router[..], [RouterCall::Remove { uri: Some(u), .. }] if u == "sip:iryna@198.51.100.7")
    );

    // A query (no Contact) lists what is there and changes nothing.
    req.contacts = Contacts::None;
    let ok = registered(register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "iryna",
        "demo-iryna-pass",
        t(20),
    ));
    assert_eq!(ok.contacts.len(), 1);
    assert!(ok.router.is_empty());

    // Contact: * needs Expires: 0 ...
    req.contacts = Contacts::Star;
    req.expires = Some(60);
    let bad = register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "iryna",
        "demo-iryna-pass",
        t(30),
    );
    assert_eq!(bad.status(), 400);
    // ... and then removes everything.
    req.expires = Some(0);
    let ok = registered(register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "iryna",
        "demo-iryna-pass",
        t(30),
    ));
    assert!(ok.contacts.is_empty());
    assert_eq!(
        ok.router,
        vec![RouterCall::Remove {
            aor: format!("sip:iryna@{REALM}"),
            uri: None
        }]
    );
    assert!(r.bindings(t(30)).is_empty());
}

#[test]
fn bindings_lapse_and_feed_the_guard() {
    let s = demo();
    let mut r = Registrar::new(config());
    let mut req = request("olena", &[("sip:olena@192.0.2.14", Some(60))], None);
    req.source = src(14);
    registered(register(
        &mut r,
        &s,
        &mut req,
        "SHA-256",
        "olena",
        "demo-olena-pass",
        t(0),
    ));
    assert_eq!(r.registered_sources(t(1)), vec![(src(14).ip(), t(60))]);
    assert_eq!(r.contacts(&format!("sip:olena@{REALM}"), t(59)).len(), 1);
    assert!(r.contacts(&format!("sip:olena@{REALM}"), t(60)).is_empty());
    let gone = r.expire(t(61));
    assert_eq!(gone.len(), 1);
    assert!(r.registered_sources(t(61)).is_empty());
}

#[test]
fn too_many_contacts_drop_the_least_recently_updated() {
    let s = demo();
    let mut r = Registrar::new(RegistrarConfig {
        max_contacts: 2,
        ..config()
    });
    for (i, host) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        let uri = format!("sip:taras@{host}");
        let mut req = request("taras", &[(&uri, None)], None);
        req.call_id = format!("phone-{i}");
        let ok = registered(register(
            &mut r,
            &s,
            &mut req,
            "MD5",
            "taras",
            "demo-taras-pass",
            t(i as u64),
        ));
        if i == 2 {
            let uris: Vec<&str> = ok.contacts.iter().map(|c| c.uri.as_str()).collect();
            assert_eq!(uris, vec!["sip:taras@192.0.2.2", "sip:taras@192.0.2.3"]);
            assert!(ok.router.contains(&RouterCall::Remove {
                aor: format!("sip:taras@{REALM}"),
                uri: Some("sip:taras@192.0.2.1".to_owned()),
            }));
        }
    }
}

/// Issue 6 item 7: failed authentications and rate-limited sources are metrics, and the
/// block is a `security` log line.
#[test]
fn failures_and_blocks_move_the_metrics_and_log() {
    use crate::guard::SecurityMetrics;
    use crate::guard::log_capture::Capture;
    use tracing::Level;

    let s = demo();
    let metrics = SecurityMetrics::default();
    let mut r = Registrar::new(config()).with_metrics(metrics.clone());
    let log = Capture::default();
    tracing::subscriber::with_default(log.clone(), || {
        let mut req = request("anna", &[("sip:anna@192.0.2.66", None)], None);
        req.source = src(66);
        // Four wrong passwords: 401 each, counted.
        for i in 0..4 {
            let outcome = register(&mut r, &s, &mut req, "MD5", "anna", "wrong", t(i));
            assert_eq!(outcome.status(), 401);
        }
        assert_eq!(metrics.auth_failures.get(), 4);
        assert_eq!(metrics.rate_limited.get(), 0);
        assert_eq!(log.security(Level::INFO, "authentication failed"), 4);
        // The fifth blocks the source: 403, logged once.
        let outcome = register(&mut r, &s, &mut req, "MD5", "nobody", "x", t(5));
        assert_eq!(outcome.status(), 403);
        assert_eq!(metrics.auth_failures.get(), 5);
        assert_eq!(metrics.rate_limited.get(), 1);
        assert_eq!(metrics.rate_limited_sources.get(), 1);
        assert_eq!(log.security(Level::WARN, "source blocked"), 1);
        // Further REGISTERs while blocked count as rate-limited, not as new blocks.
        req.authorization = None;
        assert_eq!(r.on_register(&req, &s, t(6)).status(), 403);
        assert_eq!(metrics.rate_limited.get(), 2);
        assert_eq!(log.security(Level::WARN, "source blocked"), 1);
    });
    // The block ends: the gauge follows at the next sweep.
    r.expire(t(400));
    assert_eq!(metrics.rate_limited_sources.get(), 0);
    assert_eq!(r.counters().auth_failures, metrics.auth_failures.get());
}

/// An agent's INVITE answered with `Proxy-Authorization` for the nonce of `challenge`.
fn invite_credentials(challenge: &str, alg: &str, user: &str, pass: &str, uri: &str) -> String {
    let start = challenge.find("nonce=\"").expect("nonce") + 7;
    let nonce = &challenge[start..start + challenge[start..].find('"').expect("quote")];
    let response = digest::response(&DigestInput {
        algorithm: Algorithm::parse(alg).expect("algorithm"),
        username: user,
        realm: REALM,
        password: pass,
        method: "INVITE",
        uri,
        nonce,
        qop: Some(Qop {
            nc: "00000001",
            cnonce: "c0ffee",
            qop: "auth",
        }),
    });
    format!(
        "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={alg}, cnonce=\"c0ffee\", qop=auth, nc=00000001"
    )
}

#[test]
fn invites_are_authenticated_with_the_same_digest_nonces_and_limits() {
    let s = demo();
    let mut r = Registrar::new(config());
    let uri = "sip:+380501234567@dialtone.test";
    fn invite(authorization: Option<&str>) -> AuthRequest<'_> {
        AuthRequest {
            method: "INVITE",
            request_uri: "sip:+380501234567@dialtone.test",
            authorization,
            source: src(20),
        }
    }
    // No credentials: a 407 offering SHA-256 then MD5.
    let AuthOutcome::Challenge { proxy_authenticate } = r.authenticate(&invite(None), &s, t(0))
    else {
        panic!("a challenge")
    };
    assert_eq!(proxy_authenticate.len(), 2);
    assert!(proxy_authenticate[0].contains("algorithm=SHA-256"));
    let outcome = r.authenticate(&invite(None), &s, t(0));
    assert_eq!(outcome.status(), 407);
    assert!(
        outcome
            .headers()
            .iter()
            .all(|(name, _)| *name == "Proxy-Authenticate")
    );

    // The right password, SHA-256 or MD5: the agent.
    for alg in ["SHA-256", "MD5"] {
        let creds =
            invite_credentials(&proxy_authenticate[0], alg, "iryna", "demo-iryna-pass", uri);
        // Each nonce's nc must grow: a fresh challenge per try.
        let AuthOutcome::Challenge { proxy_authenticate } = r.authenticate(&invite(None), &s, t(1))
        else {
            panic!("a challenge")
        };
        let creds = if alg == "MD5" {
            invite_credentials(&proxy_authenticate[1], alg, "iryna", "demo-iryna-pass", uri)
        } else {
            creds
        };
        assert_eq!(
            r.authenticate(&invite(Some(&creds)), &s, t(1)),
            AuthOutcome::Authenticated {
                agent: "iryna".into()
            },
            "{alg}"
        );
        // The same answer again is a replay: challenged (stale), not let through.
        assert_eq!(
            r.authenticate(&invite(Some(&creds)), &s, t(1)).status(),
            407
        );
    }
    // A digest for another Request-URI is malformed, not a failure.
    let other = invite_credentials(
        &proxy_authenticate[0],
        "MD5",
        "iryna",
        "demo-iryna-pass",
        "sip:+380000000000@dialtone.test",
    );
    assert_eq!(
        r.authenticate(&invite(Some(&other)), &s, t(2)).status(),
        400
    );

    // A wrong password and an unknown user look the same (a fresh 407), count as failures,
    // and share REGISTER's limit: the fifth failure from the address gets 403.
    let failures = r.counters().auth_failures;
    let mut statuses = Vec::new();
    for (i, user) in ["iryna", "nobody", "iryna", "nobody", "iryna"]
        .into_iter()
        .enumerate()
    {
        let creds = invite_credentials(&proxy_authenticate[0], "MD5", user, "guess", uri);
        statuses.push(
            r.authenticate(&invite(Some(&creds)), &s, t(3 + i as u64))
                .status(),
        );
    }
    assert_eq!(statuses, [407, 407, 407, 407, 403]);
    assert_eq!(r.counters().auth_failures - failures, 5);
    // Blocked: even the right password, and a REGISTER from there, get 403.
    let creds = invite_credentials(
        &proxy_authenticate[0],
        "MD5",
        "iryna",
        "demo-iryna-pass",
        uri,
    );
    assert_eq!(
        r.authenticate(&invite(Some(&creds)), &s, t(9)).status(),
        403
    );
    let mut req = request("iryna", &[("sip:iryna@192.0.2.20", None)], None);
    req.source = src(20);
    assert_eq!(r.on_register(&req, &s, t(9)).status(), 403);
}

#[test]
fn registered_sources_are_known_by_socket_and_by_address() {
    let s = demo();
    let mut r = Registrar::new(config());
    let mut req = request("iryna", &[("sip:iryna@192.0.2.10", None)], None);
    registered(register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "iryna",
        "demo-iryna-pass",
        t(0),
    ));
    assert_eq!(r.registered_from(src(10), t(1)), RegisteredFrom::Socket);
    let other_port = SocketAddr::from(([192, 0, 2, 10], 5070));
    assert_eq!(r.registered_from(other_port, t(1)), RegisteredFrom::Address);
    assert_eq!(r.registered_from(src(11), t(1)), RegisteredFrom::Nowhere);
    // Once the binding lapsed (an hour by default), the address is a stranger's again.
    assert_eq!(r.registered_from(src(10), t(3601)), RegisteredFrom::Nowhere);
}
