//! The reporter's journal: an append-only file of event batches that could not be written to
//! the database, so that they can be acknowledged anyway (PRODUCT.md: no event may be lost
//! when the database is down) and stored once it is back.
//!
//! # Format and guarantees
//!
//! The journal is a folder (`<data>/journal/`) of numbered segment files. A record is
//! `length (u32 LE) · CRC-32 of the payload (u32 LE) · payload`, the payload being a
//! prost-encoded `dialtone.v1.IngestBatch`. [`Journal::append`] writes one record and
//! `fsync`s the file (and the folder, when it created the file) before it returns, so a record
//! that was acknowledged survives a crash of the process or the machine.
//!
//! A crash in the middle of an append leaves a torn last record; the reader stops at the first
//! record whose length or checksum does not hold. Such a record was never acknowledged (its
//! `fsync` had not returned), so its sender still has the events. A failed append truncates the
//! segment back and abandons it, so that no acknowledged record ever follows a torn one.
//!
//! Draining: [`Journal::seal`] closes the segment being written (later appends go to a new one)
//! and lists every sealed segment, oldest first; the drainer stores each segment's batches in
//! the database (idempotently) and only then [`Journal::remove`]s the file. A crash between
//! the two stores the batches again on the next start, which changes nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dialtone_proto::v1::IngestBatch;
use prost::Message as _;

/// Refuse records larger than this when reading: a length beyond it is a torn or corrupt
/// header, not a batch (gRPC messages are limited to a few MiB).
const MAX_RECORD: usize = 256 * 1024 * 1024;
const HEADER: usize = 8;
const PREFIX: &str = "segment-";
const SUFFIX: &str = ".journal";

/// A segment file that is no longer written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its number; segments are drained in this order.
    pub seq: u64,
    /// Its file.
    pub path: PathBuf,
}

/// What the journal holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Segment files.
    pub segments: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// The journal of one reporter's data folder. Appends may come from many tasks at once;
/// draining is done by one.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Option<Current>,
    next_seq: u64,
}

#[derive(Debug)]
struct Current {
    file: File,
    len: u64,
}

/// CRC-32 (IEEE 802.3, reflected), table-driven; the table is built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC_TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8);
    }
    !c
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"))
}

fn parse_seq(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

/// Makes a folder's entries (a new or removed file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    /// Opens (creating it) the journal folder. Existing segments are kept for draining; new
    /// appends go to a new segment, never after a possibly torn tail.
    ///
    /// # Errors
    ///
    /// The folder cannot be created or read.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Journal> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let last = list(&dir)?.last().map_or(0, |s| s.seq);
        Ok(Journal {
            dir,
            state: Mutex::new(State {
                current: None,
                next_seq: last + 1,
            }),
        })
    }

    /// The journal's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while appending leaves at worst a torn record, which readers skip.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one batch and makes it durable. Blocking (it `fsync`s): call it from a blocking
    /// thread.
    ///
    /// # Errors
    ///
    /// The record could not be written or synced; it must then not be acknowledged.
    pub fn append(&self, batch: &IngestBatch) -> io::Result<()> {
        let payload = batch.encode_to_vec();
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "batch too large"))?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32(&payload).to_le_bytes());
        record.extend_from_slice(&payload);

        let mut state = self.lock();
        if state.current.is_none() {
            let path = segment_path(&self.dir, state.next_seq);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            sync_dir(&self.dir)?;
            state.next_seq += 1;
            state.current = Some(Current { file, len: 0 });
        }
        let Some(current) = state.current.as_mut() else {
            return Err(io::Error::other("journal segment vanished"));
        };
        let written = current
            .file
            .write_all(&record)
            .and_then(|()| current.file.sync_data());
        match written {
            Ok(()) => {
                current.len += record.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut the partial record off and never write to this segment again.
                let _ = current.file.set_len(current.len);
                let _ = current.file.sync_data();
                state.current = None;
                Err(e)
            }
        }
    }

    /// Closes the segment being written and lists every segment on disk, oldest first. The
    /// caller owns them: read, store, then [`Journal::remove`].
    ///
    /// # Errors
    ///
    /// The folder cannot be read.
    pub fn seal(&self) -> io::Result<Vec<Segment>> {
        let mut state = self.lock();
        state.current = None;
        list(&self.dir)
    }

    /// The batches of a segment, up to the first torn or corrupt record.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub fn read(segment: &Segment) -> io::Result<Vec<IngestBatch>> {
        let mut bytes = Vec::new();
        File::open(&segment.path)?.read_to_end(&mut bytes)?;
        let mut batches = Vec::new();
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let Some((header, body)) = rest.split_first_chunk::<HEADER>() else {
                tracing::warn!(segment = %segment.path.display(), "journal ends in a torn header");
                break;
            };
            let (len_bytes, crc_bytes) = header.split_at(4);
            let len = u32::from_le_bytes(len_bytes.try_into().unwrap_or_default()) as usize;
            let crc = u32::from_le_bytes(crc_bytes.try_into().unwrap_or_default());
            let payload = match body.get(..len) {
                Some(p) if len <= MAX_RECORD && crc32(p) == crc => p,
                _ => {
                    tracing::warn!(segment = %segment.path.display(), "journal ends in a torn or corrupt record; it was never acknowledged");
                    break;
                }
            };
            match IngestBatch::decode(payload) {
                Ok(batch) => batches.push(batch),
                Err(e) => {
                    tracing::error!(segment = %segment.path.display(), error = %e, "journal record does not decode");
                    break;
                }
            }
            rest = body.get(len..).unwrap_or_default();
        }
        Ok(batches)
    }

    /// Deletes a drained segment.
    ///
    /// # Errors
    ///
    /// The file cannot be removed.
    pub fn remove(&self, segment: &Segment) -> io::Result<()> {
        match fs::remove_file(&segment.path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Segments and bytes waiting to be drained (the segment being written included).
    ///
    /// # Errors
    ///
    /// The folder cannot be read.
    pub fn stats(&self) -> io::Result<JournalStats> {
        let _state = self.lock();
        let mut stats = JournalStats::default();
        for segment in list(&self.dir)? {
            stats.segments += 1;
            stats.bytes += fs::metadata(&segment.path)?.len();
        }
        Ok(stats)
    }
}

fn list(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_seq) {
            segments.push(Segment {
                seq,
                path: entry.path(),
            });
        }
    }
    segments.sort_by_key(|s| s.seq);
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_proto::v1::{AgentStateEvent, IngestEvent, ingest_event::Event};

    fn batch(id: &str) -> IngestBatch {
        IngestBatch {
            events: vec![IngestEvent {
                event: Some(Event::AgentState(AgentStateEvent {
                    event_id: id.into(),
                    agent: "anna".into(),
                    ..Default::default()
                })),
            }],
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn appends_seal_read_remove_and_survive_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path().join("journal")).expect("opens");
        journal.append(&batch("a")).expect("append");
        journal.append(&batch("b")).expect("append");
        let sealed = journal.seal().expect("seal");
        assert_eq!(sealed.len(), 1);
        journal.append(&batch("c")).expect("append after seal");
        assert_eq!(journal.stats().expect("stats").segments, 2);

        // A crash mid-append: half a record at the end of the first segment.
        let mut f = OpenOptions::new()
            .append(true)
            .open(&sealed[0].path)
            .expect("open");
        f.write_all(&[42, 0, 0, 0, 1, 2]).expect("torn write");
        let got = Journal::read(&sealed[0]).expect("read");
        assert_eq!(got, vec![batch("a"), batch("b")]);

        // Reopening (a restart) keeps every segment and appends to a new one.
        drop(journal);
        let journal = Journal::open(dir.path().join("journal")).expect("reopens");
        journal.append(&batch("d")).expect("append");
        let all = journal.seal().expect("seal");
        assert_eq!(all.len(), 3);
        let ids: Vec<Vec<IngestBatch>> = all
            .iter()
            .map(|s| Journal::read(s).expect("read"))
            .collect();
        assert_eq!(
            ids,
            vec![
                vec![batch("a"), batch("b")],
                vec![batch("c")],
                vec![batch("d")]
            ]
        );
        for s in &all {
            journal.remove(s).expect("remove");
        }
        assert_eq!(journal.stats().expect("stats"), JournalStats::default());
    }
}
