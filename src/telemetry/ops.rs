//! The ops endpoints every component serves: `/metrics`, `/healthz`, `/readyz`.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry, Unit};

use super::{OPENMETRICS_CONTENT_TYPE, TelemetryError};

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
