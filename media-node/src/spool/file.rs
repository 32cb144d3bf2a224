//! Record framing and the file-system steps of the spool.
//!
//! A record is `[length: u32 LE][crc32 of payload: u32 LE][payload]`. The length comes
//! first so a reader can skip without decoding; the checksum covers the payload so that a
//! record cut short by a crash, or garbage after it, is recognised and cut off instead of
//! being handed on as an event.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use super::crc::crc32;

/// Bytes before the payload.
pub(super) const HEADER_BYTES: usize = 8;

/// Largest payload accepted. A call event is a few hundred bytes; a length beyond this in
/// a header is garbage (a torn or corrupt header), never a real record.
pub(super) const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// A payload framed as one record.
pub(super) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    // MAX_PAYLOAD is checked by the caller, so the length fits.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The complete records of a file, and where the valid part ends.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Payloads of the intact records, in order.
    pub records: Vec<Vec<u8>>,
    /// Length of the prefix made of intact records.
    pub valid_len: u64,
    /// Whether bytes follow the valid prefix (a torn or corrupt tail).
    pub torn: bool,
}

/// Reads every intact record of `path`, stopping at the first incomplete or corrupt one.
pub(super) fn scan(path: &Path) -> io::Result<Scan> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut scan = Scan::default();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(record) = record_at(&bytes, at) else {
            scan.torn = true;
            break;
        };
        scan.records.push(record.to_vec());
        at += HEADER_BYTES + record.len();
    }
    scan.valid_len = at as u64;
    Ok(scan)
}

/// The payload of the record starting at `at`, if it is complete and its checksum matches.
fn record_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let header = bytes.get(at..at.checked_add(HEADER_BYTES)?)?;
    let len = u32::from_le_bytes(header.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header.get(4..8)?.try_into().ok()?);
    if len > MAX_PAYLOAD {
        return None;
    }
    let start = at + HEADER_BYTES;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (crc32(payload) == crc).then_some(payload)
}

/// Cuts a file back to `len` bytes and makes that durable.
pub(super) fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// Opens a file for appending, creating it if needed.
pub(super) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Appends `bytes` and waits until they are on stable storage. On failure the file is cut
/// back to `len_before` so that a half-written record never sits in front of later ones
/// (recovery would otherwise stop at it and lose everything after).
pub(super) fn append_durably(file: &mut File, len_before: u64, bytes: &[u8]) -> io::Result<()> {
    let result = file.write_all(bytes).and_then(|()| file.sync_data());
    if result.is_err() {
        // Best effort: if even this fails the caller stops using the file.
        let _ = file.set_len(len_before);
    }
    result
}

/// Makes a directory's entries (a created, renamed or removed file) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename, fsync of the folder.
pub(super) fn replace_durably(dir: &Path, path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    {
        let mut file = File::create(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(tmp, path)?;
    sync_dir(dir)
}
