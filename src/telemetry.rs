//! Observability wiring shared by every Dialtone component.
//!
//! Every component (router, media node, reporter, operator) runs inside the
//! single `dialtone` binary, so logging, tracing, metrics and the
//! health/readiness endpoints are set up here once instead of being
//! re-invented per component:
//!
//! * [`init`] installs the process-wide `tracing` subscriber. Logs always go to
//!   **stderr** because stdout is reserved for command output (for example
//!   `dialtone ... -o json` piped into `jq`). When `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   is set, traces and metrics are additionally exported over OTLP/gRPC; when
//!   it is unset nothing OpenTelemetry-related is started at all, so a
//!   developer laptop or a CI job never tries to reach a collector.
//! * [`Metrics`] is a cloneable handle around a `prometheus-client` registry
//!   that components register their metrics in, rendered as OpenMetrics text.
//! * [`Readiness`] is the flag a component flips so Kubernetes stops routing
//!   calls to it while it starts up or drains.
//! * [`ops_router`] (or [`metrics_router`] / [`health_router`] separately)
//!   serves `GET /metrics`, `GET /healthz` and `GET /readyz`.
//!
//! Typical use in a component's `main`:
//!
//! ```no_run
//! use dialtone::telemetry::{self, LogFormat, Metrics, Readiness, TelemetryConfig};
//! use prometheus_client::metrics::counter::Counter;
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     // Must run inside the Tokio runtime: the OTLP/gRPC exporters need it.
//!     let guard = telemetry::init(&TelemetryConfig {
//!         service_name: "dialtone-router".into(),
//!         log_level: "info".into(),
//!         log_format: LogFormat::Auto,
//!     })?;
//!
//!     let metrics = Metrics::new();
//!     let calls = Counter::<u64>::default();
//!     metrics.register("dialtone_calls_routed", "Calls routed to an agent", calls.clone());
//!
//!     let readiness = Readiness::new();
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:9090").await?;
//!     let ops = telemetry::ops_router(metrics.clone(), readiness.clone());
//!     let server = tokio::spawn(async move { axum::serve(listener, ops).await });
//!
//!     readiness.set_ready();
//!     tokio::signal::ctrl_c().await?;
//!     readiness.set_draining();
//!     // ... drain in-flight calls ...
//!     server.abort();
//!
//!     // Flush spans/metrics without blocking a runtime thread.
//!     guard.shutdown_async().await?;
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::io::IsTerminal as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry, Unit};
use tracing_subscriber::layer::{Layered, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// Environment variable that switches OTLP export on. Its value is also the
/// collector endpoint (for example `http://otel-collector:4317`); the exporter
/// reads it, together with the signal-specific `OTEL_EXPORTER_OTLP_*`
/// variables, itself.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Environment variable that, when set, overrides [`TelemetryConfig::log_level`].
pub const LOG_LEVEL_ENV: &str = "RUST_LOG";

/// Content type of the OpenMetrics text exposition served on `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Set by the first [`init`] call. A process has exactly one global
/// subscriber and one set of global OpenTelemetry providers, so a second
/// initialisation is always a bug; it is reported as an error rather than a
/// panic so callers (and tests) can decide what to do about it.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Errors raised while setting up or tearing down telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// [`init`] was already called in this process.
    #[error(
        "telemetry is already initialised in this process; `telemetry::init` may only be called once"
    )]
    AlreadyInitialized,

    /// The log filter (from `RUST_LOG` or the configuration) is not a valid
    /// `EnvFilter` directive.
    #[error("invalid log filter {directive:?} (from {origin})")]
    InvalidLogFilter {
        /// The directive that failed to parse.
        directive: String,
        /// Where it came from: `RUST_LOG` or the configuration.
        origin: &'static str,
        /// Parser error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },

    /// A log format name other than `auto`, `json` or `text`.
    #[error("invalid log format {0:?}; expected one of: auto, json, text")]
    InvalidLogFormat(String),

    /// OTLP export was requested but `init` was not called from within a Tokio
    /// runtime; the gRPC (tonic) exporter spawns its connection driver there.
    #[error(
        "{OTLP_ENDPOINT_ENV} is set but telemetry::init was called outside a Tokio runtime; call it from within the runtime (e.g. inside #[tokio::main])"
    )]
    NoTokioRuntime,

    /// Building an OTLP exporter failed (bad endpoint, `https` without a TLS
    /// feature, conflicting protocol settings, ...).
    #[error("failed to build the OTLP {signal} exporter")]
    OtlpExporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// Exporter error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },

    /// Another global `tracing` subscriber (or `log` logger) was installed
    /// by someone else before [`init`] ran.
    #[error("failed to install the global tracing subscriber")]
    SubscriberInstall(#[source] tracing_subscriber::util::TryInitError),

    /// Flushing/shutting down an OpenTelemetry provider failed, typically
    /// because the collector was unreachable before the timeout.
    #[error("failed to shut down the OpenTelemetry {signal} provider")]
    Shutdown {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// SDK error.
        #[source]
        source: opentelemetry_sdk::error::OTelSdkError,
    },

    /// The blocking shutdown task could not be joined (it panicked or the
    /// runtime is shutting down).
    #[error("the telemetry shutdown task failed")]
    ShutdownTask(#[source] tokio::task::JoinError),

    /// A registered metric could not be encoded as OpenMetrics text.
    #[error("failed to encode metrics as OpenMetrics text")]
    MetricsEncode(#[source] fmt::Error),
}

// ---------------------------------------------------------------------------
// Logging / tracing initialisation
// ---------------------------------------------------------------------------

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable text when stderr is a terminal, JSON otherwise: people
    /// get readable output, log collectors in Kubernetes get structured output.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text (colours only when stderr is a terminal and
    /// `NO_COLOR` is unset).
    Text,
}

impl LogFormat {
    /// The lowercase name, as accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    /// Parses `auto`, `json` or `text` (case-insensitive), so the format can
    /// come straight from a CLI flag or environment variable.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(TelemetryError::InvalidLogFormat(s.to_owned())),
        }
    }
}

/// Telemetry settings for one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Reported as the OpenTelemetry `service.name` resource attribute.
    pub service_name: String,
    /// `EnvFilter` directive such as `info` or `info,dialtone_router=debug`.
    /// `RUST_LOG`, when set, takes precedence so operators can raise
    /// verbosity without changing the deployment's arguments.
    pub log_level: String,
    /// Output format for log lines on stderr.
    pub log_format: LogFormat,
}

impl TelemetryConfig {
    /// Configuration with the given service name, level `info` and
    /// [`LogFormat::Auto`].
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            ..Self::default()
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            service_name: "dialtone".to_owned(),
            log_level: "info".to_owned(),
            log_format: LogFormat::Auto,
        }
    }
}

/// Keeps the OpenTelemetry providers alive and flushes them when dropped.
///
/// Hold it in `main` for the lifetime of the process. Dropping it (or calling
/// [`TelemetryGuard::shutdown`]) exports buffered spans and a final metrics
/// collection. Both are blocking operations: on a current-thread Tokio runtime
/// call [`TelemetryGuard::shutdown_async`] instead, because the gRPC exporter
/// needs the runtime thread that a blocking call would occupy.
///
/// The log subscriber itself stays installed after shutdown: a process can
/// only ever have one global subscriber, and late log lines are still useful.
#[must_use = "dropping the guard immediately shuts down trace and metric export"]
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Whether OTLP export is active (i.e. `OTEL_EXPORTER_OTLP_ENDPOINT` was set).
    pub fn otlp_enabled(&self) -> bool {
        self.tracer_provider.is_some() || self.meter_provider.is_some()
    }

    /// Flushes and shuts down the OTLP providers, reporting the first error.
    ///
    /// Blocks the calling thread until the exports finish or time out.
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        self.shutdown_providers()
    }

    /// Like [`shutdown`](Self::shutdown), but runs the blocking part on
    /// Tokio's blocking pool so the runtime's worker threads stay free to
    /// drive the gRPC exporter (required on a current-thread runtime).
    pub async fn shutdown_async(self) -> Result<(), TelemetryError> {
        if !self.otlp_enabled() {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || self.shutdown())
            .await
            .map_err(TelemetryError::ShutdownTask)?
    }

    fn shutdown_providers(&mut self) -> Result<(), TelemetryError> {
        let mut first_error = None;
        if let Some(provider) = self.tracer_provider.take()
            && let Err(source) = provider.shutdown()
        {
            first_error.get_or_insert(TelemetryError::Shutdown {
                signal: "traces",
                source,
            });
        }
        if let Some(provider) = self.meter_provider.take()
            && let Err(source) = provider.shutdown()
        {
            first_error.get_or_insert(TelemetryError::Shutdown {
                signal: "metrics",
                source,
            });
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown_providers() {
            // The subscriber outlives the guard, so this still reaches stderr.
            tracing::warn!(error = %err, cause = ?std::error::Error::source(&err), "telemetry shutdown failed");
        }
    }
}

/// Process environment that influences [`init`], captured once so the
/// initialisation logic itself is deterministic and testable.
#[derive(Debug, Default)]
struct InitEnv {
    /// Value of `RUST_LOG`, if set and non-empty.
    rust_log: Option<String>,
    /// Whether `OTEL_EXPORTER_OTLP_ENDPOINT` is set and non-empty.
    otlp: bool,
    /// Whether stderr is a terminal.
    stderr_is_terminal: bool,
    /// Whether `NO_COLOR` is set (see <https://no-color.org>).
    no_color: bool,
}

impl InitEnv {
    fn from_process() -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            rust_log: non_empty(LOG_LEVEL_ENV),
            otlp: non_empty(OTLP_ENDPOINT_ENV).is_some(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        }
    }
}

/// Installs the global tracing subscriber and, if `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set, the OTLP/gRPC trace and metric pipelines.
///
/// * Logs go to stderr only; JSON or text per [`TelemetryConfig::log_format`].
/// * `RUST_LOG` overrides [`TelemetryConfig::log_level`].
/// * With OTLP enabled, spans are exported through a batch span processor and
///   metrics through a periodic reader, both tagged with `service.name`;
///   the global OpenTelemetry tracer/meter providers and the W3C trace-context
///   propagator are set so `opentelemetry::global::meter(..)` and context
///   propagation work. In that case `init` must be called from within a Tokio
///   runtime.
///
/// May succeed only once per process; later calls return
/// [`TelemetryError::AlreadyInitialized`].
pub fn init(cfg: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    claim_init()?;
    let result = init_claimed(cfg, &InitEnv::from_process());
    release_on_failure(&result);
    result
}

/// Atomically claims the one-shot initialisation slot.
fn claim_init() -> Result<(), TelemetryError> {
    INITIALIZED
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .map(|_| ())
        .map_err(|_| TelemetryError::AlreadyInitialized)
}

/// If nothing global was installed (configuration error), give the slot back
/// so the caller may retry with a corrected configuration. A failed subscriber
/// installation keeps the slot: some other subscriber owns the process.
fn release_on_failure(result: &Result<TelemetryGuard, TelemetryError>) {
    if let Err(err) = result
        && !matches!(err, TelemetryError::SubscriberInstall(_))
    {
        INITIALIZED.store(false, Ordering::Release);
    }
}

/// Subscriber type the output layers are stacked on.
type Base = Layered<EnvFilter, tracing_subscriber::Registry>;
/// Type-erased layer, so text/JSON and optional OTLP can be chosen at runtime.
type BoxedLayer = Box<dyn Layer<Base> + Send + Sync + 'static>;

fn init_claimed(cfg: &TelemetryConfig, env: &InitEnv) -> Result<TelemetryGuard, TelemetryError> {
    let filter = build_filter(cfg, env)?;
    let mut layers: Vec<BoxedLayer> = vec![fmt_layer(cfg.log_format, env)];

    let mut guard = TelemetryGuard {
        tracer_provider: None,
        meter_provider: None,
    };
    if env.otlp {
        let (tracer_provider, meter_provider) = build_otlp_providers(&cfg.service_name)?;
        let tracer = tracer_provider.tracer(tracer_name(&cfg.service_name));
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                    !is_export_internal(meta.target())
                }))
                .boxed(),
        );
        guard.tracer_provider = Some(tracer_provider);
        guard.meter_provider = Some(meter_provider);
    }

    if let Err(err) = tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init()
    {
        // Shut the just-built providers down quietly; nobody will use them.
        let _ = guard.shutdown_providers();
        return Err(TelemetryError::SubscriberInstall(err));
    }

    if let (Some(tracer_provider), Some(meter_provider)) =
        (&guard.tracer_provider, &guard.meter_provider)
    {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        opentelemetry::global::set_tracer_provider(tracer_provider.clone());
        opentelemetry::global::set_meter_provider(meter_provider.clone());
    }

    tracing::debug!(
        service.name = %cfg.service_name,
        log_format = %cfg.log_format,
        otlp = guard.otlp_enabled(),
        "telemetry initialised"
    );
    Ok(guard)
}

/// `RUST_LOG` wins over the configured level; both must parse.
fn build_filter(cfg: &TelemetryConfig, env: &InitEnv) -> Result<EnvFilter, TelemetryError> {
    let (directive, origin) = match &env.rust_log {
        Some(value) => (value.as_str(), LOG_LEVEL_ENV),
        None if cfg.log_level.trim().is_empty() => ("info", "default"),
        None => (cfg.log_level.as_str(), "configuration"),
    };
    EnvFilter::builder()
        .parse(directive)
        .map_err(|source| TelemetryError::InvalidLogFilter {
            directive: directive.to_owned(),
            origin,
            source,
        })
}

fn fmt_layer(format: LogFormat, env: &InitEnv) -> BoxedLayer {
    let json = match format {
        LogFormat::Auto => !env.stderr_is_terminal,
        LogFormat::Json => true,
        LogFormat::Text => false,
    };
    if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(env.stderr_is_terminal && !env.no_color)
            .with_writer(std::io::stderr)
            .boxed()
    }
}

/// Instrumentation scope name for spans bridged from `tracing`.
fn tracer_name(service_name: &str) -> String {
    if service_name.is_empty() {
        "dialtone".to_owned()
    } else {
        service_name.to_owned()
    }
}

/// Targets whose spans must not be exported: they belong to the OTLP
/// exporter's own transport, and exporting them would generate more spans on
/// every export (a feedback loop).
fn is_export_internal(target: &str) -> bool {
    const INTERNAL: [&str; 8] = [
        "opentelemetry",
        "opentelemetry_sdk",
        "opentelemetry_otlp",
        "tonic",
        "h2",
        "hyper",
        "hyper_util",
        "tower",
    ];
    INTERNAL.iter().any(|prefix| {
        target
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Builds the OTLP/gRPC span and metric pipelines. The endpoint (and headers,
/// timeouts, compression, ...) are read by the exporters from the standard
/// `OTEL_EXPORTER_OTLP_*` variables, so signal-specific overrides such as
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` keep working.
fn build_otlp_providers(
    service_name: &str,
) -> Result<(SdkTracerProvider, SdkMeterProvider), TelemetryError> {
    // tonic's lazily-connected channel spawns its driver on the current
    // runtime and would panic without one; report it as an error instead.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TelemetryError::NoTokioRuntime);
    }

    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();

    let span_exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|source| TelemetryError::OtlpExporter {
            signal: "traces",
            source,
        })?;
    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()
        .map_err(|source| TelemetryError::OtlpExporter {
            signal: "metrics",
            source,
        })?;

    // The batch processor and periodic reader run on their own background
    // threads (the SDK 0.33 default); the tonic exports they issue are driven
    // by the Tokio runtime the channel was created on.
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(span_exporter)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(metric_exporter)
        .build();
    Ok((tracer_provider, meter_provider))
}

// ---------------------------------------------------------------------------
// Prometheus metrics
// ---------------------------------------------------------------------------

/// Shareable handle to the process's Prometheus registry.
///
/// Cloning is cheap and every clone sees the same registry, so one `Metrics`
/// is created in `main`, handed to each component to register its metrics,
/// and to [`metrics_router`] to serve them.
#[derive(Clone, Default)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty registry whose metric names all get `prefix_` prepended.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self::from_registry(Registry::with_prefix(prefix))
    }

    /// Wraps an existing registry.
    pub fn from_registry(registry: Registry) -> Self {
        Self {
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    /// A poisoned lock only means a panic happened while registering; the
    /// registry is still usable, and metrics must keep being served.
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `metric` under `name`. Keep a clone of the metric to update
    /// it; prometheus-client metrics share their value between clones.
    pub fn register(&self, name: impl Into<String>, help: impl Into<String>, metric: impl Metric) {
        self.lock().register(name, help, metric);
    }

    /// Registers `metric` under `name` with a unit suffix (e.g. `Unit::Seconds`).
    pub fn register_with_unit(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        unit: Unit,
        metric: impl Metric,
    ) {
        self.lock().register_with_unit(name, help, unit, metric);
    }

    /// Runs `f` with mutable access to the registry, for anything the
    /// convenience methods do not cover (sub-registries with a prefix or
    /// constant labels, collectors). A closure rather than a returned guard so
    /// the lock cannot be held across an `.await` or while serving `/metrics`.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.lock())
    }

    /// Encodes all registered metrics as OpenMetrics text (ending in `# EOF`).
    pub fn try_render(&self) -> Result<String, TelemetryError> {
        let mut out = String::new();
        encode(&mut out, &self.lock()).map_err(TelemetryError::MetricsEncode)?;
        Ok(out)
    }

    /// Like [`try_render`](Self::try_render); on an encoding error, logs it
    /// and returns an empty but valid exposition.
    pub fn render(&self) -> String {
        self.try_render().unwrap_or_else(|err| {
            tracing::error!(error = %err, "failed to render metrics");
            "# EOF\n".to_owned()
        })
    }
}

/// Router serving `GET /metrics` in the OpenMetrics text format.
pub fn metrics_router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<Metrics>) -> Response {
    match metrics.try_render() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
            )],
            body,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "failed to render metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed to encode metrics\n",
            )
                .into_response()
        }
    }
}

// ---------------------------------------------------------------------------
// Health and readiness
// ---------------------------------------------------------------------------

/// Lifecycle phase reported on `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadinessState {
    /// Not ready yet (starting up, or temporarily lost a dependency).
    Starting,
    /// Accepting work.
    Ready,
    /// Shutting down: finishing in-flight calls, accepting no new ones.
    Draining,
}

impl ReadinessState {
    fn to_u8(self) -> u8 {
        match self {
            ReadinessState::Starting => 0,
            ReadinessState::Ready => 1,
            ReadinessState::Draining => 2,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => ReadinessState::Ready,
            2 => ReadinessState::Draining,
            _ => ReadinessState::Starting,
        }
    }

    /// Body text served on `/readyz` for this state.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadinessState::Starting => "starting",
            ReadinessState::Ready => "ready",
            ReadinessState::Draining => "draining",
        }
    }
}

impl fmt::Display for ReadinessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shareable readiness flag backing `/readyz`.
///
/// Starts as [`ReadinessState::Starting`]. [`Draining`](ReadinessState::Draining)
/// is terminal: once a component begins shutting down, a late
/// [`set_ready`](Self::set_ready) from some reconnecting subsystem must not
/// make Kubernetes send it new calls again.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    state: Arc<AtomicU8>,
}

impl Readiness {
    /// New flag in the `Starting` state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Current state.
    pub fn state(&self) -> ReadinessState {
        ReadinessState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether `/readyz` currently answers 200.
    pub fn is_ready(&self) -> bool {
        self.state() == ReadinessState::Ready
    }

    /// Marks the component ready, unless it is already draining.
    pub fn set_ready(&self) {
        self.transition_unless_draining(ReadinessState::Ready);
    }

    /// Marks the component temporarily not ready (503 "starting"), unless it
    /// is already draining.
    pub fn set_not_ready(&self) {
        self.transition_unless_draining(ReadinessState::Starting);
    }

    /// Marks the component as draining (503 "draining"). Irreversible.
    pub fn set_draining(&self) {
        self.state
            .store(ReadinessState::Draining.to_u8(), Ordering::Release);
    }

    fn transition_unless_draining(&self, to: ReadinessState) {
        let draining = ReadinessState::Draining.to_u8();
        // fetch_update only fails when the closure returns None (draining),
        // which is exactly the case we want to leave untouched.
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (current != draining).then_some(to.to_u8())
            });
    }
}

/// Router serving `GET /healthz` (liveness: always 200 "ok" while the process
/// can answer HTTP) and `GET /readyz` (200 "ready", or 503 "starting" /
/// "draining" according to `readiness`).
pub fn health_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(serve_healthz))
        .route("/readyz", get(serve_readyz))
        .with_state(readiness)
}

async fn serve_healthz() -> &'static str {
    "ok"
}

async fn serve_readyz(State(readiness): State<Readiness>) -> (StatusCode, &'static str) {
    let state = readiness.state();
    let status = match state {
        ReadinessState::Ready => StatusCode::OK,
        ReadinessState::Starting | ReadinessState::Draining => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, state.as_str())
}

/// `/metrics`, `/healthz` and `/readyz` in one router, for the ops port every
/// component exposes.
pub fn ops_router(metrics: Metrics, readiness: Readiness) -> Router {
    metrics_router(metrics).merge(health_router(readiness))
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
