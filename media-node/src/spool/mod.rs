//! The durable local spool of call events.
//!
//! PRODUCT.md: *no event may be lost when the reporter or the database is down*. Every
//! call event is appended here, `fsync`ed, before call handling moves on; [`deliver`]
//! streams what is not yet acknowledged to the reporter's `dialtone.v1.Ingest` and
//! acknowledges it here once the reporter says it is stored. A reporter outage, a slow
//! reporter or a restart of the node only delays events: after a restart [`Spool::open`]
//! finds every unacknowledged event again and the sender resends it. Ingestion is
//! idempotent by `event_id`, so a resent event (its acknowledgement was lost) is counted
//! once: delivery is at least once on the wire and exactly once in effect.
//!
//! # Layout of the folder
//!
//! - `segment-<16 digits>.log`: append-only, one record per event (a prost-encoded
//!   [`CallEvent`]); a new segment starts when the current one reaches
//!   [`SpoolConfig::segment_bytes`].
//! - `acks.log`: append-only, one record per acknowledgement batch (an encoded
//!   [`IngestAck`] holding the ids).
//!
//! Records are length-prefixed and CRC-32 checked ([`file`]). A crash can leave a torn
//! record at the end of a file; [`Spool::open`] keeps every intact record before it and
//! cuts the rest off. A segment whose events are all acknowledged is deleted (unless it is
//! the one being appended to and still has room); the acknowledgement log is then
//! rewritten (atomically) with only the ids of the remaining segments, so both stay small
//! while the reporter keeps up.
//!
//! The spool is synchronous and does no network I/O: the edge keeps it in an
//! `Arc<std::sync::Mutex<Spool>>`, call handling appends (one write and one `fsync`), and
//! the sender only holds the lock to copy events out and to record acknowledgements, never
//! across a network wait, so a slow reporter never blocks call handling.

mod crc;
mod deliver;
mod file;

pub use crc::crc32;
pub use deliver::{DeliverConfig, deliver, deliver_with};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use dialtone_proto::v1::{CallEvent, IngestAck};
use prost::Message;

const ACKS: &str = "acks.log";
const ACKS_TMP: &str = "acks.tmp";
const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".log";

/// Why the spool could not do something. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The file system failed.
    #[error("spool file {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// An event too large to be a call event (a bug upstream, refused rather than spooled).
    #[error("call event {event_id} is {bytes} bytes encoded, over the spool's record limit")]
    TooLarge {
        /// The event's id.
        event_id: String,
        /// Its encoded size.
        bytes: usize,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tuning of the spool.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Size at which a new segment starts. Smaller segments free disk space sooner after
    /// an outage; larger ones mean fewer files.
    pub segment_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            segment_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What [`Spool::open`] repaired, for a log line at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Files whose torn or corrupt tail was cut off.
    pub truncated_files: usize,
    /// Bytes cut off in total.
    pub truncated_bytes: u64,
    /// Intact records that did not decode as a call event (skipped).
    pub undecodable: usize,
    /// Events found unacknowledged (to be resent).
    pub unacked: usize,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    bytes: u64,
    /// Records not yet acknowledged.
    live: usize,
    /// Ids of its acknowledged records: what the acknowledgement log must remember while
    /// the segment exists.
    acked: Vec<String>,
}

/// One unacknowledged event.
#[derive(Debug)]
struct Pending {
    segment: u64,
    event: CallEvent,
}

/// The durable event spool (see the module documentation).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    segments: BTreeMap<u64, Segment>,
    /// The segment being appended to, open; `None` until the next append creates one.
    active: Option<(u64, File)>,
    /// Unacknowledged events by spool sequence number (append order).
    pending: BTreeMap<u64, Pending>,
    /// Sequence numbers of pending events by event id.
    by_id: HashMap<String, Vec<u64>>,
    next_seq: u64,
    acks: File,
    acks_len: u64,
    recovery: Recovery,
}

impl Spool {
    /// Opens (or creates) the spool in `dir` with the default configuration.
    pub fn open(dir: impl AsRef<Path>) -> Result<Spool, SpoolError> {
        Spool::open_with(dir, SpoolConfig::default())
    }

    /// Opens (or creates) the spool in `dir`: reads every segment, cuts off torn tails,
    /// drops what the acknowledgement log says was delivered, deletes segments with nothing
    /// left to deliver and compacts the acknowledgement log.
    pub fn open_with(dir: impl AsRef<Path>, config: SpoolConfig) -> Result<Spool, SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut recovery = Recovery::default();

        let acks_path = dir.join(ACKS);
        let tmp = dir.join(ACKS_TMP);
        if tmp.exists() {
            // A compaction that crashed before its rename: the old log is still complete.
            std::fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        }
        let mut acked_ids: HashSet<String> = HashSet::new();
        if acks_path.exists() {
            for payload in read_repairing(&acks_path, &mut recovery)? {
                match IngestAck::decode(payload.as_slice()) {
                    Ok(ack) => acked_ids.extend(ack.event_ids),
                    Err(_) => recovery.undecodable += 1,
                }
            }
        }

        let mut segments = BTreeMap::new();
        let mut pending = BTreeMap::new();
        let mut by_id: HashMap<String, Vec<u64>> = HashMap::new();
        let mut next_seq = 0u64;
        for (id, path) in segment_files(&dir)? {
            let mut segment = Segment {
                bytes: 0,
                live: 0,
                acked: Vec::new(),
                path: path.clone(),
            };
            for payload in read_repairing(&path, &mut recovery)? {
                segment.bytes += (file::HEADER_BYTES + payload.len()) as u64;
                let Ok(event) = CallEvent::decode(payload.as_slice()) else {
                    recovery.undecodable += 1;
                    continue;
                };
                if acked_ids.contains(&event.event_id) {
                    segment.acked.push(event.event_id);
                    continue;
                }
                next_seq += 1;
                segment.live += 1;
                by_id
                    .entry(event.event_id.clone())
                    .or_default()
                    .push(next_seq);
                pending.insert(next_seq, Pending { segment: id, event });
            }
            segments.insert(id, segment);
        }
        recovery.unacked = pending.len();

        let acks = file::open_append(&acks_path).map_err(io_err(&acks_path))?;
        let acks_len = acks.metadata().map_err(io_err(&acks_path))?.len();
        let mut spool = Spool {
            dir,
            config,
            segments,
            active: None,
            pending,
            by_id,
            next_seq,
            acks,
            acks_len,
            recovery,
        };
        // Appends continue in the last segment while it has room.
        if let Some((&id, segment)) = spool.segments.iter().next_back()
            && segment.bytes < spool.config.segment_bytes
        {
            let file = file::open_append(&segment.path).map_err(io_err(&segment.path))?;
            spool.active = Some((id, file));
        }
        spool.collect_garbage(true)?;
        Ok(spool)
    }

    /// What opening repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends an event and returns once it is on stable storage.
    pub fn append(&mut self, event: &CallEvent) -> Result<(), SpoolError> {
        self.append_batch(std::slice::from_ref(event))
    }

    /// Appends events in order and returns once all are on stable storage: the records that
    /// fit the active segment are written together and synced once (group commit), so a burst
    /// of events costs one `fdatasync`, not one each.
    ///
    /// # Errors
    ///
    /// [`SpoolError::TooLarge`] for an event over the record limit (then nothing is
    /// appended); an I/O error after the events before the failing write were appended.
    pub fn append_batch(&mut self, events: &[CallEvent]) -> Result<(), SpoolError> {
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            let payload = event.encode_to_vec();
            if payload.len() > file::MAX_PAYLOAD {
                return Err(SpoolError::TooLarge {
                    event_id: event.event_id.clone(),
                    bytes: payload.len(),
                });
            }
            records.push(file::frame(&payload));
        }
        let mut i = 0;
        while i < records.len() {
            let id = self.segment_for(records[i].len() as u64)?;
            let Some(segment) = self.segments.get_mut(&id) else {
                return Err(SpoolError::Io {
                    path: self.dir.clone(),
                    source: io::Error::other("active segment missing"),
                });
            };
            // As many records as the segment takes (always at least one).
            let mut buf = records[i].clone();
            let mut j = i + 1;
            while j < records.len()
                && segment.bytes + (buf.len() + records[j].len()) as u64
                    <= self.config.segment_bytes
            {
                buf.extend_from_slice(&records[j]);
                j += 1;
            }
            let Some((_, file)) = self.active.as_mut() else {
                return Err(SpoolError::Io {
                    path: segment.path.clone(),
                    source: io::Error::other("no active segment"),
                });
            };
            if let Err(source) = file::append_durably(file, segment.bytes, &buf) {
                // The file may be unusable; the next append starts a fresh segment.
                self.active = None;
                return Err(SpoolError::Io {
                    path: segment.path.clone(),
                    source,
                });
            }
            for (record, event) in records[i..j].iter().zip(&events[i..j]) {
                segment.bytes += record.len() as u64;
                segment.live += 1;
                self.next_seq += 1;
                self.by_id
                    .entry(event.event_id.clone())
                    .or_default()
                    .push(self.next_seq);
                self.pending.insert(
                    self.next_seq,
                    Pending {
                        segment: id,
                        event: event.clone(),
                    },
                );
            }
            i = j;
        }
        Ok(())
    }

    /// The segment to append a record of `len` bytes to, starting one if needed.
    fn segment_for(&mut self, len: u64) -> Result<u64, SpoolError> {
        if let Some((id, _)) = &self.active
            && let Some(segment) = self.segments.get(id)
            && (segment.bytes == 0 || segment.bytes + len <= self.config.segment_bytes)
        {
            return Ok(*id);
        }
        let id = self.segments.keys().next_back().map_or(1, |last| last + 1);
        let path = self
            .dir
            .join(format!("{SEGMENT_PREFIX}{id:016}{SEGMENT_SUFFIX}"));
        let file = File::options()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file::sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        self.segments.insert(
            id,
            Segment {
                path,
                bytes: 0,
                live: 0,
                acked: Vec::new(),
            },
        );
        self.active = Some((id, file));
        // The previous segment may have been kept only because it was active.
        self.collect_garbage(false)?;
        Ok(id)
    }

    /// Whether an event with this id was appended and is not acknowledged yet.
    pub fn pending_contains(&self, event_id: &str) -> bool {
        self.by_id.contains_key(event_id)
    }

    /// Every unacknowledged event, in append order.
    pub fn unacked(&self) -> Vec<CallEvent> {
        self.pending.values().map(|p| p.event.clone()).collect()
    }

    /// Up to `max` unacknowledged events appended after spool sequence number `after`
    /// (`None`: from the start), with their sequence numbers. The sender walks the spool
    /// with this instead of copying the whole backlog at every wake-up.
    pub fn unacked_after(&self, after: Option<u64>, max: usize) -> Vec<(u64, CallEvent)> {
        let start = after.map_or(0, |s| s.saturating_add(1));
        self.pending
            .range(start..)
            .take(max)
            .map(|(seq, p)| (*seq, p.event.clone()))
            .collect()
    }

    /// Number of unacknowledged events.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every event has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Records that the reporter stored these events (or refused them for good): they are
    /// never handed out again, also after a restart. Unknown ids are ignored (a duplicate
    /// acknowledgement). Returns how many events were acknowledged now.
    pub fn ack(&mut self, ids: &[String]) -> Result<usize, SpoolError> {
        let known: Vec<String> = ids
            .iter()
            .filter(|id| self.by_id.contains_key(id.as_str()))
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if known.is_empty() {
            return Ok(0);
        }
        let payload = IngestAck {
            event_ids: known.clone(),
            rejected: Vec::new(),
        }
        .encode_to_vec();
        let record = file::frame(&payload);
        let acks_path = self.dir.join(ACKS);
        file::append_durably(&mut self.acks, self.acks_len, &record).map_err(io_err(&acks_path))?;
        self.acks_len += record.len() as u64;

        let mut count = 0;
        for id in known {
            for seq in self.by_id.remove(&id).unwrap_or_default() {
                let Some(p) = self.pending.remove(&seq) else {
                    continue;
                };
                count += 1;
                if let Some(segment) = self.segments.get_mut(&p.segment) {
                    segment.live = segment.live.saturating_sub(1);
                    segment.acked.push(id.clone());
                }
            }
        }
        self.collect_garbage(false)?;
        Ok(count)
    }

    /// Deletes segments with nothing left to deliver (but not the active segment while it
    /// has room), then rewrites the acknowledgement log if anything was deleted or
    /// `compact` asks for it.
    fn collect_garbage(&mut self, compact: bool) -> Result<(), SpoolError> {
        let active = self.active.as_ref().map(|(id, _)| *id);
        let done: Vec<u64> = self
            .segments
            .iter()
            .filter(|(id, s)| {
                s.live == 0 && (Some(**id) != active || s.bytes >= self.config.segment_bytes)
            })
            .map(|(id, _)| *id)
            .collect();
        // The acknowledgement log already holds these ids (written and synced before), so
        // a crash anywhere below loses nothing: at worst a stale id stays in the log.
        for id in &done {
            if let Some(segment) = self.segments.remove(id) {
                std::fs::remove_file(&segment.path).map_err(io_err(&segment.path))?;
            }
            if active == Some(*id) {
                self.active = None;
            }
        }
        if !done.is_empty() {
            file::sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        }
        if compact || !done.is_empty() {
            self.compact_acks()?;
        }
        Ok(())
    }

    /// Rewrites the acknowledgement log with the ids the remaining segments still need.
    fn compact_acks(&mut self) -> Result<(), SpoolError> {
        let ids: Vec<String> = self
            .segments
            .values()
            .flat_map(|s| s.acked.iter().cloned())
            .collect();
        let bytes = if ids.is_empty() {
            Vec::new()
        } else {
            file::frame(
                &IngestAck {
                    event_ids: ids,
                    rejected: Vec::new(),
                }
                .encode_to_vec(),
            )
        };
        let path = self.dir.join(ACKS);
        let tmp = self.dir.join(ACKS_TMP);
        file::replace_durably(&self.dir, &path, &tmp, &bytes).map_err(io_err(&path))?;
        self.acks = file::open_append(&path).map_err(io_err(&path))?;
        self.acks_len = bytes.len() as u64;
        Ok(())
    }
}

/// The records of a file, after cutting off a torn or corrupt tail.
fn read_repairing(path: &Path, recovery: &mut Recovery) -> Result<Vec<Vec<u8>>, SpoolError> {
    let scan = file::scan(path).map_err(io_err(path))?;
    if scan.torn {
        let len = std::fs::metadata(path).map_err(io_err(path))?.len();
        tracing::warn!(
            file = %path.display(),
            kept = scan.valid_len,
            dropped = len.saturating_sub(scan.valid_len),
            "spool: cutting off a torn record (the node stopped in the middle of a write)"
        );
        file::truncate(path, scan.valid_len).map_err(io_err(path))?;
        recovery.truncated_files += 1;
        recovery.truncated_bytes += len.saturating_sub(scan.valid_len);
    }
    Ok(scan.records)
}

/// The segment files of `dir`, by id.
fn segment_files(dir: &Path) -> Result<BTreeMap<u64, PathBuf>, SpoolError> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let id = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|rest| rest.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(id) = id {
            out.insert(id, entry.path());
        }
    }
    Ok(out)
}
