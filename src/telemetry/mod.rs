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
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
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

mod calls;
mod ops;
pub use calls::*;
pub use ops::*;

#[cfg(test)]
mod tests;

/// An HTTP listener whose connections send small writes at once (`TCP_NODELAY`): a page's
/// headers and body leave in separate writes, and with Nagle's algorithm the body would wait
/// for the client's delayed ACK of the headers — about 40 ms on every page.
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(stream: &mut tokio::net::TcpStream) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}
