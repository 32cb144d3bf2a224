//! Observability of a running `dialtone up`: one call is one trace across media node, router
//! and reporter (exported over OTLP to an in-process receiver), the CDR names that trace, and
//! `/metrics` carries the families ops teams alert on — the same names the Helm chart's
//! dashboard and alert rules use.

mod chart;
mod otlp;
#[allow(dead_code)] // the shared SIPp helpers; this test needs only some
#[path = "../support/sipp.rs"]
mod sipp;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dialtone_proto::v1 as pb;
use dialtone_proto::v1::router_client::RouterClient;
use serde_json::Value;

/// `dialtone up` as a child process, with where it listens.
struct Up {
    child: Child,
    sip: SocketAddr,
    grpc: SocketAddr,
    http: SocketAddr,
    data: tempfile::TempDir,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dialtone up` on the e2e manifests, every address on a free loopback port, exporting
/// to `otlp`; waits for its "up" banner.
fn start_up(otlp: SocketAddr) -> Up {
    let data = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .arg("up")
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/observability"))
        .arg("--data")
        .arg(data.path())
        .args(["--sip", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0", "--log-format", "json"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        // Export spans every 200 ms instead of every 5 s, so the test waits less.
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dialtone up starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut fields = BTreeMap::new();
    // The banner ends with the token line; read up to it (EOF means it died).
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        let mut words = line.split_whitespace();
        if let (Some(key), Some(value)) = (words.next(), words.next()) {
            fields.insert(
                key.to_owned(),
                value.trim_start_matches("http://").to_owned(),
            );
            if key == "token" {
                break;
            }
        }
    }
    let addr = |key: &str| -> SocketAddr {
        fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("dialtone up printed no {key} address: {fields:?}"))
    };
    Up {
        sip: addr("SIP/UDP"),
        grpc: addr("gRPC"),
        http: addr("HTTP"),
        child,
        data,
    }
}

/// `dialtone report calls --format json` against `up`.
fn calls_report(up: &Up) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["report", "calls", "--format", "json", "--server"])
        .arg(format!("http://{}", up.grpc))
        .arg("--data")
        .arg(up.data.path())
        .output()
        .expect("dialtone report runs");
    assert!(
        out.status.success(),
        "dialtone report calls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the calls report is a JSON array")
}

/// `GET /metrics` over a plain socket.
fn scrape(http: SocketAddr) -> String {
    let mut stream = std::net::TcpStream::connect(http).expect("connect to /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The scraped exposition: families by `# TYPE`, samples by name and labels.
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<(String, String, f64)>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                let (name, labels) = match series.split_once('{') {
                    Some((n, l)) => (n, l.trim_end_matches('}')),
                    None => (series, ""),
                };
                let value = value.parse().expect("a numeric sample");
                samples.push((name.to_owned(), labels.to_owned(), value));
            }
        }
        Exposition { types, samples }
    }

    /// Names a query can use: every family, counters with their `_total` samples.
    fn names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (name, kind) in &self.types {
            names.insert(name.clone());
            if kind == "counter" {
                names.insert(format!("{name}_total"));
            }
        }
        names
    }

    fn kind(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// The samples of `name` whose labels contain `label`.
    fn values(&self, name: &str, label: &str) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && l.contains(label))
            .map(|(_, _, v)| *v)
            .collect()
    }

    fn sum(&self, name: &str, label: &str) -> f64 {
        self.values(name, label).iter().sum()
    }
}

/// Scrapes until `ok` holds for the exposition, or panics with `what` after 40 s.
async fn scrape_until(
    http: SocketAddr,
    what: &str,
    ok: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let text = tokio::task::spawn_blocking(move || scrape(http))
            .await
            .expect("scrape task");
        let exposition = Exposition::parse(&text);
        if ok(&exposition) {
            return exposition;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never showed on /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_is_one_trace_and_metrics_match_the_chart() {
    sipp::ensure_sipp();
    let (otlp, received) = otlp::start().await;
    let up = start_up(otlp);
    let url = format!("http://{}", up.grpc);

    // An answered call: the carrier calls the line, anna answers, bohdan rings.
    let mut anna = sipp::sipp("media-node/tests/sipp/agent_answer.xml", &[]);
    let mut bohdan = sipp::sipp("media-node/tests/sipp/agent_ring.xml", &[]);
    anna.ready().await;
    bohdan.ready().await;
    let mut router = RouterClient::connect(url.clone()).await.expect("router");
    for (agent, port) in [("anna", anna.port), ("bohdan", bohdan.port)] {
        router
            .register_contact(pb::RegisterContactRequest {
                agent: agent.into(),
                uri: format!("sip:{agent}@127.0.0.1:{port}"),
                expires: Some(prost_types::Duration {
                    seconds: 600,
                    nanos: 0,
                }),
                node_id: "sipp".into(),
                ..Default::default()
            })
            .await
            .expect("register");
    }
    let carrier = sipp::sipp(
        "media-node/tests/sipp/carrier_call.xml",
        &["-s".into(), "+380441230000".into(), up.sip.to_string()],
    );
    let (c, a, b) = tokio::join!(carrier.success(), anna.success(), bohdan.success());
    assert!(
        c && a && b,
        "the answered call went through (carrier {c}, anna {a}, bohdan {b})"
    );

    // Its CDR reaches the calls report with a trace id.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let row = loop {
        let rows = tokio::task::block_in_place(|| calls_report(&up));
        if let Some(row) = rows.into_iter().find(|r| r["status"] == "answered") {
            break row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the answered call never reached the calls report"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let trace_id = row["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the calls report row has a trace_id: {row}"))
        .to_owned();
    let call_id = row["call_id"].as_str().expect("a call_id").to_owned();
    assert_eq!(trace_id.len(), 32, "a W3C trace id: {trace_id}");

    // The exported spans: the media node's root, the router's plan and the reporter's
    // ingestion, all in that trace.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans: Vec<_> = received
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect();
        let has = |name: &str| spans.iter().any(|s| s.name == name);
        if has("sip.invite") && has("router.plan") && has("reporter.ingest") {
            break spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "trace {trace_id} lacks a part: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let one = |name: &str| {
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one {name} span in the trace");
        found[0].clone()
    };
    let invite = one("sip.invite");
    assert_eq!(invite.parent_span_id, "", "sip.invite is the trace's root");
    assert_eq!(invite.call_id, call_id, "the root span names the call");
    assert_eq!(one("router.plan").parent_span_id, invite.span_id);
    assert_eq!(one("reporter.ingest").parent_span_id, invite.span_id);
    // One call, one trace: no span of this call went into another trace.
    let other: Vec<_> = received
        .spans()
        .into_iter()
        .filter(|s| s.call_id == call_id && s.trace_id != trace_id)
        .map(|s| s.name)
        .collect();
    assert!(
        other.is_empty(),
        "spans of {call_id} outside its trace: {other:?}"
    );

    // A missed call (nobody registered any more): 480, missed by reason, in the backlog.
    for agent in ["anna", "bohdan"] {
        router
            .remove_contact(pb::RemoveContactRequest {
                aor: agent.into(),
                uri: String::new(),
            })
            .await
            .expect("unregister");
    }
    let missed = sipp::sipp(
        "media-node/tests/sipp/carrier_unanswered.xml",
        &["-s".into(), "+380441230000".into(), up.sip.to_string()],
    );
    assert!(missed.success().await, "the unanswered call got its 480");

    let m = scrape_until(up.http, "the missed call and the backlog", |m| {
        m.sum("dialtone_missed_calls_total", "reason=") >= 1.0
            && m.sum("dialtone_unprocessed_backlog", "") >= 1.0
            && m.sum("dialtone_active_calls", "") == 0.0
            && m.sum("dialtone_webhook_outbox_depth", r#"webhook="crm""#) >= 1.0
    })
    .await;
    assert_eq!(m.kind("dialtone_active_calls"), Some("gauge"));
    assert_eq!(m.kind("dialtone_calls"), Some("counter"));
    assert_eq!(m.sum("dialtone_calls_total", ""), 2.0, "two calls accepted");
    assert_eq!(m.kind("dialtone_sip_responses"), Some("counter"));
    assert!(m.sum("dialtone_sip_responses_total", r#"code="200""#) >= 1.0);
    assert!(m.sum("dialtone_sip_responses_total", r#"code="480""#) >= 1.0);
    assert_eq!(m.kind("dialtone_missed_calls"), Some("counter"));
    assert_eq!(
        m.sum("dialtone_missed_calls_total", "reason="),
        1.0,
        "one miss counted once"
    );
    assert_eq!(m.kind("dialtone_unprocessed_backlog"), Some("gauge"));
    assert_eq!(
        m.sum("dialtone_unprocessed_backlog", ""),
        1.0,
        "one client lost"
    );
    assert_eq!(m.kind("dialtone_carrier_up"), Some("gauge"));
    assert_eq!(
        m.values("dialtone_carrier_up", r#"carrier="loopback""#),
        vec![1.0],
        "the loopback carrier's address resolves"
    );
    assert_eq!(m.kind("dialtone_webhook_outbox_depth"), Some("gauge"));
    // The CRM refuses connections: the missed call's delivery waits in the outbox.
    assert!(m.sum("dialtone_webhook_outbox_depth", r#"webhook="crm""#) >= 1.0);

    // The chart's dashboard and alert rules use only names the code exports.
    let unknown = chart::unknown_names(&m.names());
    assert!(unknown.is_empty(), "not exported: {unknown:?}");
}
