//! Tests of the telemetry wiring: metrics rendering, the ops endpoints over real sockets, init.

use super::*;
use axum::Router;
use prometheus_client::metrics::counter::Counter;
use std::io::{Read as _, Write as _};

/// A parsed HTTP/1.1 response.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serves `router` on an ephemeral loopback port and returns its address.
async fn spawn_server(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback listener");
    let addr = listener.local_addr().expect("listener address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Plain HTTP/1.1 GET over a blocking std socket (run on the blocking
/// pool), so no HTTP client or tokio `io-util` is needed.
async fn get(addr: std::net::SocketAddr, path: &str) -> RawResponse {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("set timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("write request");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read response");
        parse_response(&raw)
    })
    .await
    .expect("client task")
}

fn parse_response(raw: &str) -> RawResponse {
    let (head, body) = raw.split_once("\r\n\r\n").expect("header terminator");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "status line: {status_line}");
    let status = parts
        .next()
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[test]
fn render_includes_registered_counter() {
    let metrics = Metrics::new();
    let counter: Counter = Counter::default();
    metrics.register("dialtone_calls_routed", "Calls routed", counter.clone());
    counter.inc_by(3);

    let text = metrics.render();
    assert!(
        text.contains("# TYPE dialtone_calls_routed counter"),
        "{text}"
    );
    assert!(text.contains("dialtone_calls_routed_total 3"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn clones_share_one_registry() {
    let metrics = Metrics::with_prefix("dialtone");
    let clone = metrics.clone();
    let counter: Counter = Counter::default();
    clone.with_registry(|r| {
        r.sub_registry_with_prefix("router")
            .register("calls", "Calls", counter.clone())
    });
    counter.inc();
    assert!(metrics.render().contains("dialtone_router_calls_total 1"));
}

#[tokio::test]
async fn metrics_endpoint_serves_openmetrics() {
    let metrics = Metrics::new();
    let counter: Counter = Counter::default();
    metrics.register("dialtone_test_events", "Test events", counter.clone());
    counter.inc_by(7);
    let addr = spawn_server(metrics_router(metrics)).await;

    let resp = get(addr, "/metrics").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    assert!(
        resp.body.contains("dialtone_test_events_total 7"),
        "{}",
        resp.body
    );
}

#[tokio::test]
async fn healthz_is_always_ok() {
    let readiness = Readiness::new();
    let addr = spawn_server(ops_router(Metrics::new(), readiness.clone())).await;

    let resp = get(addr, "/healthz").await;
    assert_eq!((resp.status, resp.body.as_str()), (200, "ok"));
    readiness.set_draining();
    let resp = get(addr, "/healthz").await;
    assert_eq!((resp.status, resp.body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn readyz_follows_readiness() {
    let readiness = Readiness::new();
    let addr = spawn_server(health_router(readiness.clone())).await;

    let resp = get(addr, "/readyz").await;
    assert_eq!((resp.status, resp.body.as_str()), (503, "starting"));

    readiness.set_ready();
    let resp = get(addr, "/readyz").await;
    assert_eq!((resp.status, resp.body.as_str()), (200, "ready"));

    readiness.set_draining();
    let resp = get(addr, "/readyz").await;
    assert_eq!((resp.status, resp.body.as_str()), (503, "draining"));
}

#[test]
fn draining_is_terminal() {
    let readiness = Readiness::new();
    assert_eq!(readiness.state(), ReadinessState::Starting);
    readiness.set_ready();
    assert!(readiness.is_ready());
    readiness.set_not_ready();
    assert_eq!(readiness.state(), ReadinessState::Starting);
    readiness.set_draining();
    readiness.set_ready();
    readiness.set_not_ready();
    assert_eq!(readiness.state(), ReadinessState::Draining);
}

#[test]
fn log_format_parses() {
    assert_eq!("JSON".parse::<LogFormat>().ok(), Some(LogFormat::Json));
    assert_eq!("text".parse::<LogFormat>().ok(), Some(LogFormat::Text));
    assert_eq!("auto".parse::<LogFormat>().ok(), Some(LogFormat::Auto));
    assert!(matches!(
        "yaml".parse::<LogFormat>(),
        Err(TelemetryError::InvalidLogFormat(_))
    ));
}

#[test]
fn rust_log_overrides_config_and_bad_filters_error() {
    let cfg = TelemetryConfig {
        log_level: "info".into(),
        ..TelemetryConfig::default()
    };
    let env = InitEnv {
        rust_log: Some("debug,h2=off".into()),
        ..InitEnv::default()
    };
    let filter = build_filter(&cfg, &env).expect("valid RUST_LOG");
    assert!(filter.to_string().contains("debug"), "{filter}");

    let bad = TelemetryConfig {
        log_level: "info,[=".into(),
        ..TelemetryConfig::default()
    };
    assert!(matches!(
        build_filter(&bad, &InitEnv::default()),
        Err(TelemetryError::InvalidLogFilter {
            origin: "configuration",
            ..
        })
    ));
}

#[test]
fn export_internal_targets_are_recognised() {
    assert!(is_export_internal("h2::codec"));
    assert!(is_export_internal("tonic"));
    assert!(is_export_internal("opentelemetry_sdk::trace"));
    assert!(!is_export_internal("dialtone::router"));
    assert!(!is_export_internal("towering"));
}

#[test]
fn telemetry_error_is_send_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<TelemetryError>();
}

/// The only test that touches the global subscriber. OTLP is forced off
/// through the injected environment (no OTEL variables are set or read),
/// so no exporter is ever built.
#[test]
fn init_succeeds_once_then_errors() {
    let cfg = TelemetryConfig::new("dialtone-test");
    let env = InitEnv::default();

    claim_init().expect("first claim");
    let first = init_claimed(&cfg, &env);
    release_on_failure(&first);
    let guard = first.expect("first init succeeds");
    assert!(!guard.otlp_enabled());

    // Public entry point: the one-shot check comes before any
    // environment-dependent work, so this errors regardless of the env.
    assert!(matches!(
        init(&cfg),
        Err(TelemetryError::AlreadyInitialized)
    ));
    assert!(matches!(
        init(&cfg),
        Err(TelemetryError::AlreadyInitialized)
    ));
    guard.shutdown().expect("no providers to shut down");
}
