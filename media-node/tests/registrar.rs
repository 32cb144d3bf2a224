//! The registrar with real digest computations, done here independently of the
//! registrar's own code (RFC 2617 §3.2.2.1 and RFC 7616 §3.4.1 formulas on the `md-5` and
//! `sha2` crates), against the demo manifests' agents.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialtone_media_node::registrar::digest::Algorithm;
use dialtone_media_node::registrar::{
    ContactEntry, ContactSpec, Contacts, ForbiddenCause, RegisterOutcome, RegisterRequest,
    Registered, Registrar, RegistrarConfig, RouterCall,
};
use dialtone_model::snapshot::Destination;
use dialtone_model::{Environment, PromptCatalog, Snapshot, SourceFile, load};
use md5::Md5;
use sha2::{Digest, Sha256};

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

fn config() -> RegistrarConfig {
    RegistrarConfig {
        realm: REALM.to_owned(),
        nonce_secret: b"shared by every media node".to_vec(),
        ..RegistrarConfig::default()
    }
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
}

fn src(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 5060))
}

// ---- an independent digest client ----

fn h(alg: &str, s: &str) -> String {
    match alg {
        "SHA-256" => hex::encode(Sha256::digest(s.as_bytes())),
        _ => hex::encode(Md5::digest(s.as_bytes())),
    }
}

/// RFC 2617 / RFC 7616 `response` with qop=auth, or the RFC 2069 form without.
#[allow(clippy::too_many_arguments)]
fn digest(
    alg: &str,
    user: &str,
    pass: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha1 = h(alg, &format!("{user}:{REALM}:{pass}"));
    let ha2 = h(alg, &format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => h(alg, &format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => h(alg, &format!("{ha1}:{nonce}:{ha2}")),
    }
}

#[test]
fn the_test_digest_matches_rfc2617s_example() {
    // RFC 2617 §3.5, computed with this file's helper (realm spliced in by hand).
    let ha1 = h("MD5", "Mufasa:testrealm@host.com:Circle Of Life");
    let ha2 = h("MD5", "GET:/dir/index.html");
    let response = h(
        "MD5",
        &format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}"),
    );
    assert_eq!(response, "6629fae49393a05397450978507c4ef1");
}

/// The nonce and algorithm of the challenge offering `alg`.
fn nonce_of(outcome: &RegisterOutcome, alg: &str) -> String {
    let RegisterOutcome::Challenge { www_authenticate } = outcome else {
        panic!("expected a challenge, got {outcome:?}")
    };
    let value = www_authenticate
        .iter()
        .find(|v| v.contains(&format!("algorithm={alg},")))
        .unwrap_or_else(|| panic!("no {alg} challenge in {www_authenticate:?}"));
    let start = value.find("nonce=\"").expect("nonce") + 7;
    let end = start + value[start..].find('"').expect("closing quote");
    value[start..end].to_owned()
}

fn authorization(alg: &str, user: &str, pass: &str, nonce: &str, nc: u32) -> String {
    let nc = format!("{nc:08x}");
    let cnonce = "0a4f113b";
    let response = digest(
        alg,
        user,
        pass,
        "REGISTER",
        RURI,
        nonce,
        Some((&nc, cnonce)),
    );
    format!(
        "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{RURI}\", \
         response=\"{response}\", algorithm={alg}, cnonce=\"{cnonce}\", qop=auth, nc={nc}"
    )
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
        user_agent: Some("baresip".to_owned()),
        source: src(10),
    }
}

/// REGISTER without credentials, then with them: the usual two-step exchange.
fn register(
    r: &mut Registrar,
    s: &Snapshot,
    req: &mut RegisterRequest,
    alg: &str,
    user: &str,
    pass: &str,
    now: SystemTime,
) -> RegisterOutcome {
    req.authorization = None;
    let challenge = r.on_register(req, s, now);
    assert_eq!(challenge.status(), 401);
    req.cseq += 1;
    req.authorization = Some(authorization(
        alg,
        user,
        pass,
        &nonce_of(&challenge, alg),
        1,
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

#[test]
fn the_challenge_offers_sha256_then_md5_with_qop_auth() {
    let s = demo();
    let mut r = Registrar::new(config());
    let outcome = r.on_register(&request("anna", &[], None), &s, t(0));
    assert_eq!((outcome.status(), outcome.reason()), (401, "Unauthorized"));
    let headers = outcome.headers();
    assert_eq!(headers.len(), 2);
    assert!(headers.iter().all(|(n, _)| *n == "WWW-Authenticate"));
    assert!(headers[0].1.contains("algorithm=SHA-256"), "{headers:?}");
    assert!(headers[1].1.contains("algorithm=MD5"));
    for (_, v) in &headers {
        assert!(v.starts_with(&format!("Digest realm=\"{REALM}\", nonce=\"")));
        assert!(v.contains("qop=\"auth\""));
        assert!(!v.contains("stale"));
    }
}

#[test]
fn md5_and_sha256_registrations_succeed() {
    let s = demo();
    let mut r = Registrar::new(config());
    let contact = "sip:anna@192.0.2.10:5060";
    let mut req = request("anna", &[(contact, None)], Some(1800));
    let ok = registered(register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "anna",
        "demo-anna-pass",
        t(0),
    ));
    assert_eq!(ok.agent, "anna");
    assert_eq!(ok.aor, format!("sip:anna@{REALM}"));
    assert_eq!(
        ok.contacts,
        vec![ContactEntry {
            uri: contact.to_owned(),
            expires: 1800
        }]
    );
    assert_eq!(
        ok.router,
        vec![RouterCall::Register {
            aor: format!("sip:anna@{REALM}"),
            agent: "anna".to_owned(),
            uri: contact.to_owned(),
            expires: Duration::from_secs(1800),
            source: src(10),
            instance_id: None,
            user_agent: Some("baresip".to_owned()),
            refresh: false,
        }]
    );
    let out = RegisterOutcome::Registered(ok);
    assert_eq!(
        out.headers(),
        vec![("Contact", format!("<{contact}>;expires=1800"))]
    );

    // A refresh with SHA-256 a minute later.
    let ok = registered(register(
        &mut r,
        &s,
        &mut req,
        "SHA-256",
        "anna",
        "demo-anna-pass",
        t(60),
    ));
    assert!(matches!(
        &ok.router[..],
        [RouterCall::Register { refresh: true, .. }]
    ));
    assert_eq!(ok.contacts[0].expires, 1800);

    // The RFC 2069 form (no qop) from an old client is accepted too.
    let ch = r.on_register(&request("bohdan", &[], None), &s, t(70));
    let nonce = nonce_of(&ch, "MD5");
    let response = digest(
        "MD5",
        "bohdan",
        "demo-bohdan-pass",
        "REGISTER",
        RURI,
        &nonce,
        None,
    );
    let mut req = request("bohdan", &[("sip:bohdan@192.0.2.11", None)], None);
    req.authorization = Some(format!(
        "Digest username=\"bohdan\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{RURI}\", response=\"{response}\""
    ));
    let ok = registered(r.on_register(&req, &s, t(71)));
    assert_eq!(ok.contacts[0].expires, 3600, "the default expiry");
    assert_eq!(r.counters().registered, 3);
}

#[test]
fn unknown_user_and_wrong_password_look_the_same_then_get_rate_limited() {
    let s = demo();
    let mut r = Registrar::new(config());
    let attacker = src(66);
    let mut shapes = Vec::new();
    for (i, (user, pass)) in [
        ("anna", "wrong"),
        ("nobody", "whatever"),
        ("anna", "guess"),
        ("ghost", "x"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut req = request(user, &[("sip:x@192.0.2.66", None)], None);
        req.source = attacker;
        let nonce = nonce_of(&r.on_register(&req, &s, t(i as u64)), "MD5");
        req.authorization = Some(authorization("MD5", user, pass, &nonce, 1));
        let outcome = r.on_register(&req, &s, t(i as u64));
        // The same status, the same header names, nothing that tells users apart.
        let header_names: Vec<&str> = outcome.headers().iter().map(|(n, _)| *n).collect();
        assert!(outcome.headers().iter().all(|(_, v)| !v.contains("stale")));
        shapes.push((outcome.status(), header_names));
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{shapes:?}");
    assert_eq!(shapes[0].0, 401);

    // The fifth failure within a minute: 403, and the address is blocked for 5 minutes.
    let mut req = request("anna", &[("sip:x@192.0.2.66", None)], None);
    req.source = attacker;
    let nonce = nonce_of(&r.on_register(&req, &s, t(10)), "MD5");
    req.authorization = Some(authorization("MD5", "anna", "wrong-again", &nonce, 1));
    let outcome = r.on_register(&req, &s, t(10));
    assert_eq!(
        outcome,
        RegisterOutcome::Forbidden {
            cause: ForbiddenCause::RateLimited {
                until: t(10) + Duration::from_secs(300)
            }
        }
    );
    // Even the right password gets 403 now, so guessing cannot go on.
    req.authorization = Some(authorization("MD5", "anna", "demo-anna-pass", &nonce, 2));
    assert_eq!(r.on_register(&req, &s, t(20)).status(), 403);
    req.authorization = None;
    assert_eq!(
        r.on_register(&req, &s, t(20)).status(),
        403,
        "no challenge either"
    );

    // Someone else is not affected.
    let mut other = request("anna", &[("sip:anna@192.0.2.10", None)], None);
    registered(register(
        &mut r,
        &s,
        &mut other,
        "MD5",
        "anna",
        "demo-anna-pass",
        t(30),
    ));

    // After the block the address may try again.
    let outcome = register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "anna",
        "demo-anna-pass",
        t(311),
    );
    assert_eq!(outcome.status(), 200);
    let c = r.counters();
    assert_eq!(c.auth_failures, 5);
    assert_eq!(c.rate_limited, 1);
    assert_eq!(c.blocked_requests, 2);
}

#[test]
fn failures_spread_over_time_are_not_blocked() {
    let s = demo();
    let mut r = Registrar::new(config());
    for i in 0..10u64 {
        let mut req = request("anna", &[("sip:anna@192.0.2.10", None)], None);
        let nonce = nonce_of(&r.on_register(&req, &s, t(i * 20)), "MD5");
        req.authorization = Some(authorization("MD5", "anna", "typo", &nonce, 1));
        // At most 3 failures fall in any 60 s window.
        assert_eq!(
            r.on_register(&req, &s, t(i * 20)).status(),
            401,
            "attempt {i}"
        );
    }
}

#[test]
fn a_stale_nonce_with_the_right_password_gets_stale_true() {
    let s = demo();
    let mut r = Registrar::new(config());
    let mut req = request("anna", &[("sip:anna@192.0.2.10", None)], None);
    let nonce = nonce_of(&r.on_register(&req, &s, t(0)), "SHA-256");
    req.authorization = Some(authorization(
        "SHA-256",
        "anna",
        "demo-anna-pass",
        &nonce,
        1,
    ));
    let outcome = r.on_register(&req, &s, t(301));
    assert_eq!(outcome.status(), 401);
    assert!(
        outcome
            .headers()
            .iter()
            .all(|(_, v)| v.ends_with("stale=true"))
    );
    // With a wrong password the stale nonce is just a failure: no stale flag.
    req.authorization = Some(authorization("SHA-256", "anna", "wrong", &nonce, 2));
    let outcome = r.on_register(&req, &s, t(301));
    assert!(outcome.headers().iter().all(|(_, v)| !v.contains("stale")));
    let c = r.counters();
    assert_eq!((c.stale_nonces, c.auth_failures), (1, 1));
}

#[test]
fn nonces_from_another_node_verify_and_replays_do_not() {
    let s = demo();
    let mut a = Registrar::new(config());
    let mut b = Registrar::new(config());
    let mut req = request("taras", &[("sip:taras@192.0.2.12", None)], None);
    let nonce = nonce_of(&a.on_register(&req, &s, t(0)), "MD5");
    req.authorization = Some(authorization("MD5", "taras", "demo-taras-pass", &nonce, 1));
    req.cseq = 2;
    registered(b.on_register(&req, &s, t(5)));
    // The same nc again is a replay: a stale challenge, not a registration.
    req.cseq = 3;
    let replay = b.on_register(&req, &s, t(6));
    assert_eq!(replay.status(), 401);
    assert!(replay.headers()[0].1.ends_with("stale=true"));
    // The next nc is fine.
    req.authorization = Some(authorization("MD5", "taras", "demo-taras-pass", &nonce, 2));
    registered(b.on_register(&req, &s, t(7)));
    // A node with another secret does not accept the nonce (stale: the password was right).
    let mut other = Registrar::new(RegistrarConfig {
        nonce_secret: b"another cluster".to_vec(),
        ..config()
    });
    req.authorization = Some(authorization("MD5", "taras", "demo-taras-pass", &nonce, 3));
    req.cseq = 4;
    assert_eq!(other.on_register(&req, &s, t(8)).status(), 401);
}

#[test]
fn the_aor_must_be_the_authenticated_agents_softphone() {
    let mut s = demo();
    let mut r = Registrar::new(config());
    // anna's credentials cannot register bohdan's AOR.
    let mut req = request("bohdan", &[("sip:x@192.0.2.10", None)], None);
    let outcome = register(&mut r, &s, &mut req, "MD5", "anna", "demo-anna-pass", t(0));
    assert_eq!(
        outcome,
        RegisterOutcome::Forbidden {
            cause: ForbiddenCause::NotAllowed
        }
    );
    // Her extension is her AOR too; the binding lands on the canonical AOR.
    let mut req = request("101", &[("sip:101@192.0.2.10", None)], None);
    let ok = registered(register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "anna",
        "demo-anna-pass",
        t(0),
    ));
    assert_eq!(ok.aor, format!("sip:anna@{REALM}"));
    // An agent reached only on a mobile has no softphone to register.
    let mut req = request("head-of-sales", &[("sip:h@192.0.2.20", None)], None);
    let outcome = register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "head-of-sales",
        "demo-head-of-sales-pass",
        t(0),
    );
    assert_eq!(outcome.status(), 403);
    assert_eq!(
        r.counters().auth_failures,
        0,
        "authenticated, so not a failure"
    );
    // When the configuration drops anna's softphone, her bindings go.
    if let Some(anna) = s.agents.get_mut("anna") {
        anna.destinations = vec![Destination::Number("+380500000000".to_owned())];
    }
    let calls = r.retain_agents(&s);
    assert_eq!(
        calls,
        vec![RouterCall::Remove {
            aor: format!("sip:anna@{REALM}"),
            uri: None
        }]
    );
}

#[test]
fn out_of_order_and_malformed_requests() {
    let s = demo();
    let mut r = Registrar::new(config());
    let mut req = request("taras", &[("sip:taras@192.0.2.12", None)], None);
    registered(register(
        &mut r,
        &s,
        &mut req,
        "MD5",
        "taras",
        "demo-taras-pass",
        t(0),
    ));
    // An older CSeq of the same Call-ID arriving late changes nothing.
    let ch = r.on_register(&request("taras", &[], None), &s, t(1));
    let mut late = request("taras", &[("sip:taras@192.0.2.12", Some(0))], None);
    late.cseq = 1;
    late.authorization = Some(authorization(
        "MD5",
        "taras",
        "demo-taras-pass",
        &nonce_of(&ch, "MD5"),
        1,
    ));
    assert_eq!(r.on_register(&late, &s, t(1)).status(), 500);
    assert_eq!(r.bindings(t(1)).len(), 1);
    // A digest computed for another URI is a bad request.
    let mut other = request("taras", &[("sip:taras@192.0.2.12", None)], None);
    let nonce = nonce_of(&r.on_register(&other, &s, t(2)), "MD5");
    other.request_uri = "sip:elsewhere.test".to_owned();
    other.cseq = 10;
    other.authorization = Some(authorization("MD5", "taras", "demo-taras-pass", &nonce, 1));
    assert_eq!(r.on_register(&other, &s, t(2)).status(), 400);
    // Garbage credentials count as a failure.
    other.authorization = Some("Digest garbage".to_owned());
    assert_eq!(r.on_register(&other, &s, t(2)).status(), 401);
    assert_eq!(r.counters().auth_failures, 1);
}

#[test]
fn a_register_read_from_raw_headers() {
    let s = demo();
    let mut r = Registrar::new(RegistrarConfig {
        algorithms: vec![Algorithm::Md5],
        ..config()
    });
    let headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds"),
        ("t", "\"Anna\" <sip:anna@dialtone.test>"),
        ("f", "<sip:anna@dialtone.test>;tag=456248"),
        ("i", "843817637684230@998sdasdh09"),
        ("CSeq", "1826 REGISTER"),
        ("m", "<sip:anna@192.0.2.10:5060;transport=udp>;expires=600"),
        ("User-Agent", "baresip v3"),
    ];
    let req = RegisterRequest::from_headers(RURI, headers, src(10)).expect("reads");
    let challenge = r.on_register(&req, &s, t(0));
    assert_eq!(challenge.headers().len(), 1, "only MD5 offered");
    let nonce = nonce_of(&challenge, "MD5");
    let auth = authorization("MD5", "anna", "demo-anna-pass", &nonce, 1);
    let mut with_auth: Vec<(&str, &str)> = headers.to_vec();
    with_auth.push(("Authorization", &auth));
    with_auth[4] = ("CSeq", "1827 REGISTER");
    let req = RegisterRequest::from_headers(RURI, with_auth, src(10)).expect("reads");
    let ok = registered(r.on_register(&req, &s, t(1)));
    assert_eq!(
        ok.contacts,
        vec![ContactEntry {
            uri: "sip:anna@192.0.2.10:5060;transport=udp".to_owned(),
            expires: 600
        }]
    );
}
