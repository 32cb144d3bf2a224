//! Standalone mode's configuration source: a manifest folder, loaded once at start (refusing to
//! start on errors) and re-read when it changes (keeping the last good snapshot on errors).
//!
//! The folder is polled rather than watched with inotify: a poll of a few dozen files a second
//! costs nothing, works on every filesystem (including mounted ConfigMaps, which change by
//! symlink swap), and needs no extra dependency.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dialtone_model::Snapshot;
use dialtone_model::loader::{Environment, load};
use tokio::sync::watch;

use crate::manifest_dir;

/// Loading the folder failed: every problem, formatted `path:line: Kind/name: message`.
#[derive(Debug, thiserror::Error)]
#[error("{} has {} problem(s):\n{}", .dir.display(), .problems.len(), .problems.join("\n"))]
pub struct LoadFailure {
    /// The folder.
    pub dir: PathBuf,
    /// The problems, one per line.
    pub problems: Vec<String>,
}

/// Loads and validates the folder into a snapshot.
pub fn load_dir(dir: &Path) -> Result<Arc<Snapshot>, LoadFailure> {
    let folder = manifest_dir::read(dir).map_err(|e| LoadFailure {
        dir: dir.to_owned(),
        problems: vec![e.to_string()],
    })?;
    let report = load(
        &folder.files,
        &Environment {
            prompts: folder.prompts.clone(),
        },
    );
    for w in report.warnings() {
        tracing::warn!(problem = %w, "manifest warning");
    }
    let mut problems: Vec<String> = folder.problems.iter().map(ToString::to_string).collect();
    problems.extend(report.errors().map(ToString::to_string));
    match report.snapshot {
        Some(snapshot) if problems.is_empty() => Ok(Arc::new(snapshot)),
        _ => Err(LoadFailure {
            dir: dir.to_owned(),
            problems,
        }),
    }
}

/// What identifies the folder's contents cheaply: names, sizes and modification times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, u64, Option<SystemTime>)>);

/// Takes the folder's fingerprint. Take it *before* loading, so that an edit made while the
/// load runs is seen as a change by [`watch_dir`].
pub fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Vec::new();
    for d in [dir.to_owned(), dir.join("prompts")] {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.filter_map(Result::ok) {
                if let Ok(meta) = std::fs::metadata(e.path()) {
                    out.push((e.path(), meta.len(), meta.modified().ok()));
                }
            }
        }
    }
    out.sort();
    Fingerprint(out)
}

/// The outcome of the latest reload, for logs, readiness and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Reloads attempted since start.
    pub attempts: u64,
    /// The problems of the latest attempt; empty when it was taken.
    pub errors: Vec<String>,
}

/// Re-reads `dir` whenever it differs from `since` (then from the last read) until `shutdown`
/// fires, publishing each good snapshot. A folder with errors keeps the last good snapshot and
/// logs every error.
pub async fn watch_dir(
    dir: PathBuf,
    since: Fingerprint,
    every: Duration,
    tx: watch::Sender<Arc<Snapshot>>,
    status: watch::Sender<ReloadStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = since;
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = fingerprint(&dir);
        if now == last {
            continue;
        }
        last = now;
        let dir2 = dir.clone();
        let loaded = tokio::task::spawn_blocking(move || load_dir(&dir2)).await;
        let errors = match loaded {
            Ok(Ok(snapshot)) => {
                tracing::info!(dir = %dir.display(), "manifests reloaded");
                tx.send_replace(snapshot);
                Vec::new()
            }
            Ok(Err(failure)) => {
                for p in &failure.problems {
                    tracing::error!(problem = %p, "manifest reload refused; keeping the last good configuration");
                }
                failure.problems
            }
            Err(e) => {
                tracing::error!(error = %e, "manifest reload task failed");
                vec![e.to_string()]
            }
        };
        status.send_modify(|s| {
            s.attempts += 1;
            s.errors = errors;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_demo(to: &Path) {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
        std::fs::create_dir_all(to.join("prompts")).expect("mkdir");
        for e in std::fs::read_dir(&demo)
            .expect("demo")
            .filter_map(Result::ok)
        {
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
            }
        }
        for e in std::fs::read_dir(demo.join("prompts"))
            .expect("prompts")
            .filter_map(Result::ok)
        {
            std::fs::copy(e.path(), to.join("prompts").join(e.file_name())).expect("copy");
        }
    }

    async fn wait_for<F: Fn(&Snapshot) -> bool>(
        rx: &mut watch::Receiver<Arc<Snapshot>>,
        f: F,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if f(&rx.borrow()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return f(&rx.borrow()),
            }
        }
    }

    #[tokio::test]
    async fn reloads_good_changes_and_keeps_last_good_on_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        copy_demo(tmp.path());
        let since = fingerprint(tmp.path());
        let first = load_dir(tmp.path()).expect("demo loads");
        assert_eq!(first.schemes["sales"].steps.len(), 4);
        let (tx, mut rx) = watch::channel(first);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (status_tx, mut status) = watch::channel(ReloadStatus::default());
        let task = tokio::spawn(watch_dir(
            tmp.path().to_owned(),
            since,
            Duration::from_millis(20),
            tx,
            status_tx,
            stop_rx,
        ));

        // A broken edit is refused: the snapshot stays.
        let schemes = tmp.path().join("50-schemes.yaml");
        let text = std::fs::read_to_string(&schemes).expect("read");
        std::fs::write(
            &schemes,
            text.replace(
                "name: sales-voicemail\n",
                "name: sales-voicemail\n  bogus: 1\n",
            ),
        )
        .expect("write");
        // A good edit on another file is taken once the broken one is fixed.
        std::fs::write(
            &schemes,
            text.replace(
                "timeoutSeconds: 15\n    - voicemail:",
                "timeoutSeconds: 15\n    - hangup: {}\n    - voicemail:",
            ),
        )
        .expect("write");
        assert!(
            wait_for(&mut rx, |s| s.schemes["sales"].steps.len() == 5).await,
            "the good edit never reached the snapshot: {:?}",
            status.borrow()
        );

        std::fs::write(tmp.path().join("99-broken.yaml"), "kind: [").expect("write");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while status.borrow().errors.is_empty() {
            if tokio::time::timeout_at(deadline, status.changed())
                .await
                .is_err()
            {
                panic!("the broken file was never reloaded");
            }
        }
        let errors = status.borrow().errors.clone();
        assert!(
            errors.iter().any(|e| e.contains("99-broken.yaml:")),
            "{errors:?}"
        );
        // The refused reload kept the last good snapshot.
        assert_eq!(rx.borrow().schemes["sales"].steps.len(), 5);
        assert!(load_dir(tmp.path()).is_err());
        stop_tx.send_replace(true);
        task.await.expect("watcher ends on shutdown");
    }
}
