//! Prompts: `<name>.wav` files (8 kHz mono; PCM16, µ-law or A-law) from the prompts folder,
//! decoded once to linear samples and shared by every call that plays them.
//!
//! Reading happens in the calls' media tasks with `tokio::fs` (never in the actor, which must
//! not wait on a disk). The cache is emptied when the configuration snapshot changes, so an
//! edited or added prompt is picked up by the next call that plays it; calls already playing
//! keep the samples they hold. A missing or unreadable prompt is logged and skipped — the call
//! goes on as if it had been played — and remembered as missing until the next snapshot, so
//! that a typo does not cost a disk read (and a log line) per call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::media::wav;

/// Decoded samples of one prompt.
pub(super) type Samples = Arc<[i16]>;

/// The prompts folder and what has been read from it.
#[derive(Debug)]
pub(super) struct Prompts {
    dir: Option<PathBuf>,
    cache: Mutex<HashMap<String, Option<Samples>>>,
}

impl Prompts {
    /// Prompts from `dir`; without one every prompt is missing (and said so once).
    pub(super) fn new(dir: Option<PathBuf>) -> Self {
        if dir.is_none() {
            tracing::warn!("no prompts folder configured: calls hear no prompts");
        }
        Prompts {
            dir,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Option<Samples>>> {
        // The map holds no invariant a panic could break.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets everything read (the snapshot changed).
    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    /// The prompt's samples, read and decoded on first use.
    pub(super) async fn get(&self, name: &str) -> Option<Samples> {
        if let Some(hit) = self.lock().get(name) {
            return hit.clone();
        }
        let loaded = self.load(name).await;
        self.lock().insert(name.to_owned(), loaded.clone());
        loaded
    }

    async fn load(&self, name: &str) -> Option<Samples> {
        let dir = self.dir.as_ref()?;
        if !valid_name(name) {
            tracing::warn!(prompt = %name, "prompt name is not a file name: not played");
            return None;
        }
        let path = dir.join(format!("{name}.wav"));
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "prompt not found: skipped");
                return None;
            }
        };
        match wav::read(&bytes) {
            Ok(audio) if !audio.samples.is_empty() => Some(audio.samples.into()),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "prompt is empty: skipped");
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "prompt unusable: skipped");
                None
            }
        }
    }
}

/// Prompt names come from manifests: letters, digits, `-`, `_`, `.`, never a path.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_caches_and_forgets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let samples: Vec<i16> = (0..800).map(|i| (i * 10) as i16).collect();
        std::fs::write(dir.path().join("hi.wav"), wav::write_pcm16(&samples, 1)).expect("write");
        std::fs::write(dir.path().join("bad.wav"), b"not a wav").expect("write");
        let prompts = Prompts::new(Some(dir.path().to_owned()));
        assert_eq!(prompts.get("hi").await.as_deref(), Some(&samples[..]));
        assert!(prompts.get("bad").await.is_none());
        assert!(prompts.get("missing").await.is_none());
        assert!(prompts.get("../hi").await.is_none(), "no path traversal");
        std::fs::remove_file(dir.path().join("hi.wav")).expect("rm");
        assert!(prompts.get("hi").await.is_some(), "cached");
        prompts.clear();
        assert!(
            prompts.get("hi").await.is_none(),
            "re-read after a snapshot change"
        );
        assert!(Prompts::new(None).get("hi").await.is_none());
    }
}
