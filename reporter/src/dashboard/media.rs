//! `/media/<path>`: the call recordings and voicemail messages the media nodes wrote, for the
//! call log's player and for webhook receivers (`recording_url`, `voicemail_url`). Only WAV
//! files under the recordings folder are served, to signed-in users (a session cookie or a
//! bearer token, any role), with single byte ranges so a player can seek.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{DashboardState, User};

/// Bytes read per chunk while streaming a file.
const CHUNK: usize = 64 * 1024;

/// The file under `root` that `path` names, if it is a WAV path that stays inside `root`.
pub(crate) fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path);
    let inside = !path.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    let wav = rel
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
    (inside && wav).then(|| root.join(rel))
}

/// A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range within `len`; `None` when absent,
/// `Some(Err(()))` when unsatisfiable.
fn range(headers: &HeaderMap, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = spec.strip_prefix("bytes=")?;
    if spec.contains(',') {
        // Several ranges: answer with the whole file (allowed by RFC 9110 §14.2).
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let r = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        (a, "") => (a.parse().ok()?, len.saturating_sub(1)),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(len.saturating_sub(1)),
        ),
    };
    Some(if r.0 > r.1 || r.0 >= len {
        Err(())
    } else {
        Ok(r)
    })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such recording\n").into_response()
}

/// `GET /media/<path>`.
pub async fn file(
    State(state): State<DashboardState>,
    _user: User,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(root) = state.media_root.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "recordings are not served here: this reporter has no recordings folder\n",
        )
            .into_response();
    };
    let Some(full) = resolve(root, &path) else {
        return not_found();
    };
    let Ok(mut file) = tokio::fs::File::open(&full).await else {
        return not_found();
    };
    let Ok(meta) = file.metadata().await else {
        return not_found();
    };
    if !meta.is_file() {
        return not_found();
    }
    let len = meta.len();
    let (status, start, end) = match range(&headers, len) {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(Err(())) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return not_found();
    }
    // Stream the bytes in chunks: a long call's recording is tens of megabytes.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut left = count;
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let mut buf = vec![0u8; want];
            match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.send(Ok(buf)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Ok(v) = HeaderValue::from_str(&count.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wav_files_inside_the_root() {
        let root = Path::new("/data/recordings");
        assert_eq!(
            resolve(root, "calls/2026/c1.wav"),
            Some(PathBuf::from("/data/recordings/calls/2026/c1.wav"))
        );
        assert_eq!(resolve(root, "../secrets.wav"), None);
        assert_eq!(resolve(root, "calls/../../x.wav"), None);
        assert_eq!(resolve(root, "/etc/passwd.wav"), None);
        assert_eq!(resolve(root, "calls/c1.txt"), None);
        assert_eq!(resolve(root, ""), None);
    }

    #[test]
    fn byte_ranges() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, HeaderValue::from_str(v).expect("header"));
            m
        };
        assert_eq!(range(&HeaderMap::new(), 100), None);
        assert_eq!(range(&h("bytes=0-"), 100), Some(Ok((0, 99))));
        assert_eq!(range(&h("bytes=10-19"), 100), Some(Ok((10, 19))));
        assert_eq!(range(&h("bytes=90-200"), 100), Some(Ok((90, 99))));
        assert_eq!(range(&h("bytes=-10"), 100), Some(Ok((90, 99))));
        assert_eq!(range(&h("bytes=100-"), 100), Some(Err(())));
        assert_eq!(range(&h("bytes=0-1,5-6"), 100), None);
    }
}
