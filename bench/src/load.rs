//! A closed-loop load generator and latency statistics.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Completed requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Requests that failed.
    pub errors: u64,
    /// Requests completed.
    pub completed: u64,
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} ok, {} errors)",
            self.rps,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.completed,
            self.errors
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Runs `workers` concurrent loops of `call` for `duration`; with `rate` set, the whole run is
/// paced to that many requests per second (open loop), otherwise each worker goes as fast as
/// it can (closed loop, the maximum).
pub async fn run<F, Fut>(workers: usize, duration: Duration, rate: Option<f64>, call: F) -> Measured
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let call = call.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = 0u64;
            let interval = rate.map(|r| Duration::from_secs_f64(workers as f64 / r));
            // Stagger the workers across one interval so the offered load is smooth, not
            // bursts of `workers` requests at once.
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(w as f64 / workers as f64));
            while !stop.load(Ordering::Relaxed) {
                if let Some(iv) = interval {
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep(next - now).await;
                    }
                    next += iv;
                }
                let t = Instant::now();
                let ok = call((w as u64) << 40 | i).await;
                lat.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
                i += 1;
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    Measured {
        rps: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        errors,
        completed: all.len() as u64,
    }
}

/// The median of several runs' values.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
