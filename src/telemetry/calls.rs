//! The reporter's call metrics in the process registry: missed calls by reason (counted as CDRs
//! are finalised at ingestion) and the unprocessed backlog (refreshed from the store).

use std::sync::Arc;
use std::time::Duration;

use dialtone_reporter::call_metrics;
use dialtone_reporter::ingest::Ingestor;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Metrics;

/// How often `dialtone_unprocessed_backlog` is recomputed. The list moves with calls and
/// handlings, on a scale of minutes; one report query per interval is what it costs.
pub const BACKLOG_REFRESH: Duration = Duration::from_secs(15);

/// Registers `ingestor`'s call metrics in `metrics` and starts the backlog refresher, which
/// runs until `stop` turns true.
pub fn serve_reporter_metrics(
    metrics: &Metrics,
    ingestor: &Arc<Ingestor>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    metrics.with_registry(|r| ingestor.metrics().register(r));
    tokio::spawn(call_metrics::refresh_backlog(
        ingestor.clone(),
        BACKLOG_REFRESH,
        stop,
    ))
}
