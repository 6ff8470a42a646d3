//! Durable Raft storage: hard state, conf state, log entries and snapshots under the data
//! directory, fsync'd before [`DiskStorage`]'s write methods return (safety rule S7).
//!
//! Layout of `DIR/`:
//! - `meta`: hard state and conf state, replaced atomically (write, fsync, rename, fsync dir).
//! - `snapshot`: the last snapshot (metadata and the state machine's bytes), replaced atomically.
//! - `log`: append-only records `[len u32 LE][crc32 u32 LE][eraftpb.Entry]`. An entry whose index
//!   is at or below the last one replaces it and everything after it (Raft log truncation).
//!   A torn record at the tail (kill -9 or power loss mid-write) is cut off at open.
//!   Compaction rewrites the file atomically with the entries after the snapshot.
//!
//! Writes happen in the order Raft needs: entries, then hard state; a snapshot is written
//! before the log is cut, and at open the log is reconciled with the snapshot (entries the
//! snapshot covers are dropped; entries after it are kept only if the snapshot's last entry
//! matches the log's term at that index).

// Protobuf types are built field by field, as in raft-rs's own examples.
#![allow(clippy::field_reassign_with_default)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

const META: &str = "meta";
const SNAPSHOT: &str = "snapshot";
const LOG: &str = "log";
const MAGIC_META: &[u8; 8] = b"ONEHAMT1";
const MAGIC_SNAP: &[u8; 8] = b"ONEHASN1";
/// A record larger than this is corruption, not an entry (entries are small commands).
const MAX_RECORD: usize = 64 << 20;

/// Errors of the storage layer, with the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A file exists but cannot be decoded.
    #[error(
        "{path}: {what}; the Raft state is damaged: move the data directory aside and let \
         this node rejoin from its peers (see docs/runbook.md)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Raft storage kept on disk, with the whole (small) log cached in memory.
pub struct DiskStorage {
    dir: PathBuf,
    log: File,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// `entries[i].index == first_index() + i`.
    entries: Vec<Entry>,
    /// Bytes in the log file; compaction rewrites when it grows past a multiple of the live size.
    log_bytes: u64,
    /// Created empty by this open (no earlier Raft state on disk).
    fresh: bool,
}

impl DiskStorage {
    /// Opens (or creates) the storage in `dir`. A new storage starts with `voters` (all the
    /// configured members, identical on every node) so the cluster can elect without a
    /// bootstrap step.
    pub fn open(dir: &Path, voters: &[u64]) -> Result<DiskStorage, StoreError> {
        fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
        let meta_path = dir.join(META);
        let (hard_state, conf_state, fresh) = match read_framed(&meta_path, MAGIC_META)? {
            Some(bytes) => {
                let (hs, cs) = decode_meta(&bytes).map_err(|what| StoreError::Corrupt {
                    path: meta_path.clone(),
                    what,
                })?;
                (hs, cs, false)
            }
            None => {
                let mut cs = ConfState::default();
                cs.voters = voters.to_vec();
                (HardState::default(), cs, true)
            }
        };
        let snap_path = dir.join(SNAPSHOT);
        let snapshot = match read_framed(&snap_path, MAGIC_SNAP)? {
            Some(bytes) => Snapshot::parse_from_bytes(&bytes).map_err(|e| StoreError::Corrupt {
                path: snap_path.clone(),
                what: format!("cannot decode snapshot: {e}"),
            })?,
            None => Snapshot::default(),
        };
        let log_path = dir.join(LOG);
        let (mut entries, valid_len) = read_log(&log_path)?;
        reconcile_with_snapshot(&mut entries, snapshot.get_metadata());
        let log = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path, "open"))?;
        // Cut a torn tail so new records follow the last good one.
        log.set_len(valid_len)
            .map_err(io_err(&log_path, "truncate torn tail"))?;
        let store = DiskStorage {
            dir: dir.to_path_buf(),
            log,
            hard_state,
            conf_state,
            snapshot,
            entries,
            log_bytes: valid_len,
            fresh,
        };
        if fresh {
            store.write_meta()?;
            sync_dir(dir)?;
        }
        Ok(store)
    }

    /// True when this open created the storage: the node has no memory of earlier votes.
    pub fn was_fresh(&self) -> bool {
        self.fresh
    }

    /// Size of the log file in bytes.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// The data directory of this storage.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The persisted membership.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The last snapshot (its data is the state machine at its index).
    pub fn last_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Number of entries kept in the log.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    fn first(&self) -> u64 {
        match self.entries.first() {
            Some(e) => e.index,
            None => self.snapshot.get_metadata().index + 1,
        }
    }

    fn last(&self) -> u64 {
        match self.entries.last() {
            Some(e) => e.index.max(self.snapshot.get_metadata().index),
            None => self.snapshot.get_metadata().index,
        }
    }

    /// Appends entries durably (fsync), replacing any at or after the first new index.
    pub fn append(&mut self, ents: &[Entry]) -> Result<(), StoreError> {
        let Some(first_new) = ents.first().map(|e| e.index) else {
            return Ok(());
        };
        if first_new < self.first() || first_new > self.last() + 1 {
            return Err(StoreError::Corrupt {
                path: self.dir.join(LOG),
                what: format!(
                    "append at index {first_new} outside the log [{}, {}]",
                    self.first(),
                    self.last() + 1
                ),
            });
        }
        let mut buf = Vec::new();
        for e in ents {
            let bytes = e.write_to_bytes().map_err(|err| StoreError::Corrupt {
                path: self.dir.join(LOG),
                what: format!("cannot encode entry {}: {err}", e.index),
            })?;
            frame_record(&bytes, &mut buf);
        }
        let path = self.dir.join(LOG);
        self.log.write_all(&buf).map_err(io_err(&path, "append"))?;
        self.log.sync_data().map_err(io_err(&path, "fsync"))?;
        self.log_bytes += buf.len() as u64;
        let keep = (first_new - self.first()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Persists a new hard state (term, vote, commit).
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StoreError> {
        self.hard_state = hs.clone();
        self.write_meta()
    }

    /// Persists a new commit index.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        if self.hard_state.commit == commit {
            return Ok(());
        }
        self.hard_state.commit = commit;
        self.write_meta()
    }

    /// Persists a new membership (after a conf change is applied, or when an operator forces
    /// one, as two-node mode does after a confirmed fence).
    pub fn set_conf_state(&mut self, cs: &ConfState) -> Result<(), StoreError> {
        self.conf_state = cs.clone();
        self.write_meta()
    }

    /// Installs a snapshot received from the leader: the log is replaced by it.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        let meta = snap.get_metadata();
        if meta.index < self.snapshot.get_metadata().index {
            return Ok(());
        }
        self.write_snapshot(snap)?;
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.write_meta()?;
        self.entries.clear();
        self.rewrite_log()
    }

    /// Records that the state machine at `index` is `data` and drops log entries up to
    /// `index - keep` (entries close to the head are kept so slow followers catch up from
    /// the log rather than by snapshot).
    pub fn compact(&mut self, index: u64, data: Vec<u8>, keep: u64) -> Result<(), StoreError> {
        if index <= self.snapshot.get_metadata().index || index > self.last() {
            return Ok(());
        }
        let term = self.term_at(index).ok_or_else(|| StoreError::Corrupt {
            path: self.dir.join(LOG),
            what: format!("no term for index {index}"),
        })?;
        let mut snap = Snapshot::default();
        snap.data = data.into();
        let m = snap.mut_metadata();
        m.index = index;
        m.term = term;
        m.set_conf_state(self.conf_state.clone());
        self.write_snapshot(&snap)?;
        let cut = index.saturating_sub(keep);
        let drop = cut.saturating_sub(self.first() - 1) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.rewrite_log()
    }

    fn term_at(&self, idx: u64) -> Option<u64> {
        let m = self.snapshot.get_metadata();
        if idx == m.index {
            return Some(m.term);
        }
        let first = self.first();
        if idx < first {
            return None;
        }
        self.entries.get((idx - first) as usize).map(|e| e.term)
    }

    fn write_meta(&self) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        for part in [
            self.hard_state.write_to_bytes(),
            self.conf_state.write_to_bytes(),
        ] {
            let part = part.map_err(|e| StoreError::Corrupt {
                path: self.dir.join(META),
                what: format!("cannot encode: {e}"),
            })?;
            bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&part);
        }
        write_atomic(&self.dir, META, MAGIC_META, &bytes)
    }

    fn write_snapshot(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        let bytes = snap.write_to_bytes().map_err(|e| StoreError::Corrupt {
            path: self.dir.join(SNAPSHOT),
            what: format!("cannot encode: {e}"),
        })?;
        write_atomic(&self.dir, SNAPSHOT, MAGIC_SNAP, &bytes)?;
        self.snapshot = snap.clone();
        Ok(())
    }

    /// Rewrites the log file with the cached entries (atomically) and reopens it.
    fn rewrite_log(&mut self) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        for e in &self.entries {
            let bytes = e.write_to_bytes().map_err(|err| StoreError::Corrupt {
                path: self.dir.join(LOG),
                what: format!("cannot encode entry {}: {err}", e.index),
            })?;
            frame_record(&bytes, &mut buf);
        }
        let tmp = self.dir.join("log.tmp");
        let path = self.dir.join(LOG);
        let mut f = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
        f.write_all(&buf).map_err(io_err(&tmp, "write"))?;
        f.sync_all().map_err(io_err(&tmp, "fsync"))?;
        fs::rename(&tmp, &path).map_err(io_err(&path, "rename"))?;
        sync_dir(&self.dir)?;
        self.log = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path, "open"))?;
        self.log_bytes = buf.len() as u64;
        Ok(())
    }
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.first();
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - first) as usize;
        let hi = (high - first) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        match self.term_at(idx) {
            Some(t) => Ok(t),
            None if idx < self.first() => Err(raft::Error::Store(StorageError::Compacted)),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

fn frame_record(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads log records up to the first torn or corrupt one; returns the entries (with later
/// records replacing earlier ones at the same index) and the length of the valid prefix.
fn read_log(path: &Path) -> Result<(Vec<Entry>, u64), StoreError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io_err(path, "read")(e)),
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut pos = 0usize;
    while let Some(header) = data.get(pos..pos + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            break;
        }
        let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(e) = Entry::parse_from_bytes(payload) else {
            break;
        };
        // Truncation semantics: an entry at index i replaces i and everything after.
        if let Some(first) = entries.first().map(|f| f.index) {
            if e.index < first {
                entries.clear();
            } else {
                entries.truncate((e.index - first) as usize);
            }
        }
        if let Some(last) = entries.last()
            && last.index + 1 != e.index
        {
            entries.clear();
        }
        entries.push(e);
        pos += 8 + len;
    }
    Ok((entries, pos as u64))
}

/// Keeps the log only where it continues the snapshot: it holds the snapshot's last entry
/// (same index and term), or starts right after it. Otherwise (a crash between writing a
/// snapshot received from the leader and cutting the log) the log is from another history
/// and is dropped.
fn reconcile_with_snapshot(entries: &mut Vec<Entry>, meta: &SnapshotMetadata) {
    if meta.index == 0 {
        return;
    }
    let holds_last = entries
        .iter()
        .any(|e| e.index == meta.index && e.term == meta.term);
    let starts_after = entries.first().is_some_and(|e| e.index == meta.index + 1);
    if !(holds_last || starts_after) {
        entries.clear();
    }
}

fn decode_meta(bytes: &[u8]) -> Result<(HardState, ConfState), String> {
    let mut parts = Vec::new();
    let mut pos = 0usize;
    for _ in 0..2 {
        let len = bytes
            .get(pos..pos + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("truncated meta")?;
        let part = bytes.get(pos + 4..pos + 4 + len).ok_or("truncated meta")?;
        parts.push(part);
        pos += 4 + len;
    }
    let hs = HardState::parse_from_bytes(parts[0]).map_err(|e| format!("hard state: {e}"))?;
    let cs = ConfState::parse_from_bytes(parts[1]).map_err(|e| format!("conf state: {e}"))?;
    Ok((hs, cs))
}

/// Reads `[magic][len u32][crc u32][payload]`; `None` if the file does not exist.
fn read_framed(path: &Path, magic: &[u8; 8]) -> Result<Option<Vec<u8>>, StoreError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "open")(e)),
    };
    let mut data = Vec::new();
    f.read_to_end(&mut data).map_err(io_err(path, "read"))?;
    let corrupt = |what: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    if data.get(..8) != Some(&magic[..]) {
        return Err(corrupt("wrong file header"));
    }
    let head = data.get(8..16).ok_or_else(|| corrupt("truncated header"))?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let payload = data
        .get(16..16 + len)
        .ok_or_else(|| corrupt("truncated content"))?;
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Some(payload.to_vec()))
}

/// Replaces `dir/name` atomically: write a temp file, fsync, rename, fsync the directory.
fn write_atomic(dir: &Path, name: &str, magic: &[u8; 8], payload: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut buf = Vec::with_capacity(payload.len() + 16);
    buf.extend_from_slice(magic);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    let mut f = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
    f.write_all(&buf).map_err(io_err(&tmp, "write"))?;
    f.sync_all().map_err(io_err(&tmp, "fsync"))?;
    fs::rename(&tmp, &path).map_err(io_err(&path, "rename"))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

#[cfg(test)]
mod tests;
