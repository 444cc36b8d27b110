//! The write-ahead log: raft's entries, HardState and snapshot markers, durable before anything is
//! acknowledged (etcd's wal package, with our own framing).
//!
//! # Files
//! A directory of segments named `{seq:016x}-{index:016x}.wal`: `seq` counts segments, `index` is the
//! first raft index the segment may hold. Segments are pre-allocated to [`WalOptions::segment_size`]
//! (fallocate), so an append never grows the file and `fdatasync` writes no metadata. A segment is cut
//! (the next one created, pre-allocated and fsynced under a temporary name, then renamed into place)
//! once a save leaves the current one past its size.
//!
//! # Frames
//! ```text
//!   0        4      5        8        12             12+len      (padded to a multiple of 8)
//!   | len u32 | type | 0 0 0 | crc u32 | data (len bytes) | zero pad |
//! ```
//! All integers are little-endian. `crc` is CRC-32C over `type` then `data`, *chained*: it starts from the
//! previous record's `crc`, so a record cannot be dropped, reordered or replayed from another log without
//! the chain breaking. A zero header (and nothing but zeros after it) ends a segment's data.
//!
//! Types: `1 metadata` (who this member is; opaque to the WAL), `2 entry` (`index u64` + an encoded
//! raft Entry), `3 state` (an encoded HardState), `4 crc` (the running CRC when the segment began: it
//! restarts the chain, and must equal the previous segment's last CRC), `5 snapshot` (`index u64`, `term
//! u64`, an encoded ConfState). Every segment opens with crc, metadata, the latest snapshot and the latest
//! state, so it can be read on its own once older segments are released.
//!
//! # Recovery
//! [`Wal::open`] reads every segment in order. An entry at index `i` replaces any entry read before at `i`
//! or later (a new leader overwrote an uncommitted tail). A frame that is cut short or fails its CRC with
//! only zeros after it, at the tail of the *last* segment, is a write a crash interrupted: it was never
//! acknowledged, so it is zeroed and appends resume there. Any other bad frame is mid-log corruption and
//! opening fails with an error naming the file and offset: the member must not start on a damaged log.
//!
//! # The caller's duties
//! 1. [`Wal::save`] the HardState and new entries of a Ready before sending the messages that depend on them
//!    and before acknowledging anything; it returns after `fdatasync` (group commit: one sync per Ready).
//! 2. [`Wal::save_snapshot`] only after the backend holding the snapshot's state is durable.
//! 3. [`Wal::release_lock_to`] an index at or below the last snapshot: whole segments before it are removed.
mod reader;
mod record;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use record::RecordType;

pub const SEGMENT_SIZE: u64 = 64 << 20;

#[derive(Clone, Debug)]
pub struct WalOptions {
    /// fdatasync after every save (off only for tests and `--unsafe-no-fsync`).
    pub fsync: bool,
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { fsync: true, segment_size: SEGMENT_SIZE }
    }
}

/// A snapshot marker: the raft log before it lives in the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalSnapshot {
    pub index: u64,
    pub term: u64,
}

#[derive(Debug)]
pub enum WalError {
    Io(String, io::Error),
    /// Damage recovery must not paper over.
    Corrupt(String),
}

impl std::fmt::Display for WalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalError::Io(what, e) => write!(f, "wal: {what}: {e}"),
            WalError::Corrupt(s) => write!(f, "wal: corrupt log: {s}"),
        }
    }
}

impl std::error::Error for WalError {}

pub type Result<T> = std::result::Result<T, WalError>;

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> WalError {
    let what = what.into();
    move |e| WalError::Io(what, e)
}

/// Everything a restart needs, as the WAL holds it.
#[derive(Debug, Default)]
pub struct ReadResult {
    pub metadata: Vec<u8>,
    pub snapshot: WalSnapshot,
    /// The ConfState saved with the snapshot marker.
    pub conf_state: Vec<u8>,
    pub hard_state: Option<Vec<u8>>,
    /// Entries after the snapshot, contiguous, as (index, encoded Entry).
    pub entries: Vec<(u64, Vec<u8>)>,
}

#[derive(Clone, Debug)]
struct Segment {
    seq: u64,
    index: u64,
    path: PathBuf,
}

fn segment_name(seq: u64, index: u64) -> String {
    format!("{seq:016x}-{index:016x}.wal")
}

fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(WalError::Io(format!("read dir {}", dir.display()), e)),
    };
    let mut segs = Vec::new();
    for ent in rd {
        let ent = ent.map_err(io_err(format!("read dir {}", dir.display())))?;
        let name = ent.file_name();
        if let Some((seq, index)) = name.to_str().and_then(parse_segment_name) {
            segs.push(Segment { seq, index, path: ent.path() });
        }
    }
    segs.sort_by_key(|s| s.seq);
    for w in segs.windows(2) {
        if w[1].seq != w[0].seq + 1 || w[1].index < w[0].index {
            return Err(WalError::Corrupt(format!(
                "segment sequence broken between {:?} and {:?}",
                w[0].path, w[1].path
            )));
        }
    }
    Ok(segs)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(format!("sync dir {}", dir.display())))
}

/// Creates a segment: pre-allocated and headed under a temporary name, fsynced, then renamed into place.
fn create_segment(dir: &Path, seq: u64, index: u64, size: u64, head: &[u8]) -> Result<(File, PathBuf)> {
    let path = dir.join(segment_name(seq, index));
    let tmp = dir.join(format!("{}.tmp", segment_name(seq, index)));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err(format!("create {}", tmp.display())))?;
    preallocate(&f, size.max(head.len() as u64)).map_err(io_err(format!("preallocate {}", tmp.display())))?;
    f.write_all_at(head, 0).map_err(io_err(format!("write {}", tmp.display())))?;
    f.sync_all().map_err(io_err(format!("sync {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io_err(format!("rename {}", tmp.display())))?;
    sync_dir(dir)?;
    Ok((f, path))
}

fn preallocate(f: &File, size: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own for the call's duration.
    let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, size as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    // Filesystems without fallocate: a sparse file of the right size still never grows on append.
    f.set_len(size)
}

pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    metadata: Vec<u8>,
    segments: Vec<Segment>,
    file: File,
    /// Write offset in the current segment.
    offset: u64,
    crc: u32,
    last_index: u64,
    snapshot: WalSnapshot,
    conf_state: Vec<u8>,
    hard_state: Option<Vec<u8>>,
    buf: Vec<u8>,
}

impl Wal {
    /// Whether `dir` holds a WAL (at least one segment).
    pub fn exists(dir: &Path) -> bool {
        list_segments(dir).map(|s| !s.is_empty()).unwrap_or(false)
    }

    /// Creates a new WAL in `dir` (which must not hold one) with this member's `metadata`.
    pub fn create(dir: &Path, metadata: &[u8], opts: WalOptions) -> Result<Wal> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("create dir {}", dir.display())))?;
        if Wal::exists(dir) {
            return Err(WalError::Corrupt(format!("{} already holds a WAL", dir.display())));
        }
        let mut head = Vec::new();
        let mut crc = record::encode(&mut head, 0, RecordType::Crc, &0u32.to_le_bytes());
        crc = record::encode(&mut head, crc, RecordType::Metadata, metadata);
        let (file, path) = create_segment(dir, 0, 0, opts.segment_size, &head)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(Wal {
            dir: dir.to_path_buf(),
            opts,
            metadata: metadata.to_vec(),
            segments: vec![Segment { seq: 0, index: 0, path }],
            file,
            offset: head.len() as u64,
            crc,
            last_index: 0,
            snapshot: WalSnapshot::default(),
            conf_state: Vec::new(),
            hard_state: None,
            buf: Vec::with_capacity(1 << 16),
        })
    }

    /// Opens the WAL in `dir`, repairing a torn tail, and returns what it holds.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, ReadResult)> {
        reader::open(dir, opts)
    }

    /// Appends the HardState (if any) and entries, then fdatasyncs: durable when this returns.
    pub fn save(&mut self, hard_state: Option<&[u8]>, entries: &[(u64, &[u8])]) -> Result<()> {
        if hard_state.is_none() && entries.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        let mut crc = self.crc;
        let mut payload = Vec::new();
        for (index, data) in entries {
            payload.clear();
            payload.extend_from_slice(&index.to_le_bytes());
            payload.extend_from_slice(data);
            crc = record::encode(&mut self.buf, crc, RecordType::Entry, &payload);
        }
        if let Some(hs) = hard_state {
            crc = record::encode(&mut self.buf, crc, RecordType::State, hs);
            self.hard_state = Some(hs.to_vec());
        }
        self.write_buf()?;
        self.crc = crc;
        if let Some((last, _)) = entries.last() {
            self.last_index = *last;
        }
        self.sync()?;
        if self.offset >= self.opts.segment_size {
            self.cut()?;
        }
        Ok(())
    }

    /// Records a snapshot marker (the backend already holds the state up to `snap.index`), fsynced.
    pub fn save_snapshot(&mut self, snap: WalSnapshot, conf_state: &[u8]) -> Result<()> {
        self.buf.clear();
        let data = snapshot_data(snap, conf_state);
        let crc = record::encode(&mut self.buf, self.crc, RecordType::Snapshot, &data);
        self.write_buf()?;
        self.crc = crc;
        self.snapshot = snap;
        self.conf_state = conf_state.to_vec();
        self.last_index = self.last_index.max(snap.index);
        self.sync()
    }

    fn write_buf(&mut self) -> Result<()> {
        let path = &self.segments.last().expect("a segment").path;
        self.file.write_all_at(&self.buf, self.offset).map_err(io_err(format!("write {}", path.display())))?;
        self.offset += self.buf.len() as u64;
        Ok(())
    }

    /// fdatasync the current segment (a no-op without fsync).
    pub fn sync(&mut self) -> Result<()> {
        if !self.opts.fsync {
            return Ok(());
        }
        crate::failpoint::failpoint("wal-before-fsync");
        if crate::failpoint::is_armed("wal-skip-fsync") {
            return Ok(()); // the test-only broken server: the robustness suite must catch it
        }
        let start = std::time::Instant::now();
        self.file.sync_data().map_err(io_err("fdatasync"))?;
        crate::histogram::WAL_FSYNC.observe(start.elapsed());
        crate::failpoint::failpoint("wal-after-fsync");
        Ok(())
    }

    /// Starts the next segment, headed with the chain's CRC, the metadata, the snapshot and the state.
    fn cut(&mut self) -> Result<()> {
        let seq = self.segments.last().map_or(0, |s| s.seq + 1);
        let index = self.last_index + 1;
        let mut head = Vec::new();
        let mut crc = record::encode(&mut head, self.crc, RecordType::Crc, &self.crc.to_le_bytes());
        crc = record::encode(&mut head, crc, RecordType::Metadata, &self.metadata);
        crc = record::encode(&mut head, crc, RecordType::Snapshot, &snapshot_data(self.snapshot, &self.conf_state));
        if let Some(hs) = &self.hard_state {
            crc = record::encode(&mut head, crc, RecordType::State, hs);
        }
        let (file, path) = create_segment(&self.dir, seq, index, self.opts.segment_size, &head)?;
        self.file = file;
        self.offset = head.len() as u64;
        self.crc = crc;
        self.segments.push(Segment { seq, index, path });
        Ok(())
    }

    /// Removes whole segments whose entries all precede `index` (the raft log was compacted to it).
    /// The current segment is never removed.
    pub fn release_lock_to(&mut self, index: u64) -> Result<()> {
        let mut n = 0;
        while n + 1 < self.segments.len() && self.segments[n + 1].index <= index {
            n += 1;
        }
        for s in self.segments.drain(..n) {
            std::fs::remove_file(&s.path).map_err(io_err(format!("remove {}", s.path.display())))?;
        }
        if n > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// The raft index of the last entry saved.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The segment files in order (for tests and tools).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }
}

fn snapshot_data(snap: WalSnapshot, conf_state: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(16 + conf_state.len());
    d.extend_from_slice(&snap.index.to_le_bytes());
    d.extend_from_slice(&snap.term.to_le_bytes());
    d.extend_from_slice(conf_state);
    d
}
