//! The store: revision index + backend + the current/compacted revisions, and the two ways in.
//!
//! Lock order: `state` (RwLock) is taken before any LMDB transaction is opened. Readers hold the read lock for
//! the life of a [`ReadView`] so every range in it sees one revision. The applier takes the write lock per
//! request ([`WriteBatch::txn`]), so reads interleave with a batch.
//!
//! Backend commits are batched as etcd's batchTx does: a raft batch's writes join the store's write buffer
//! ([`WriteBatch::commit`]) and reach LMDB in one transaction (one fdatasync) when the buffer is
//! [`KvStore::batch`]'s interval old or holds its limit of writes (etcd's defaults [`BATCH_INTERVAL`] and
//! [`BATCH_LIMIT`] unless the flags say otherwise; [`KvStore::commit_if_due`], called on every raft tick), or when something needs the file itself ([`KvStore::force_commit`]: snapshots, hashes, stop).
//! Nothing acknowledged depends on it: the WAL holds every applied entry past the backend's consistent index.
//! Values not yet in LMDB live in `State::pending`, which readers look at first; a commit drops them from it
//! under the state write lock, so a view (which opens its LMDB transaction under the read lock) finds every
//! value in one place or the other.
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heed::{RoTxn, WithoutTls};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use prost::Message;

use super::backend::{Backend, Ops, CONSISTENT_INDEX_KEY, FINISHED_COMPACT_KEY, SCHEDULED_COMPACT_KEY};
use super::index::TreeIndex;
use super::kvstore_compaction::{Compactor, Job};
use super::revision::Revision;
use super::watchable_store::WatchableStore;
use super::{MvccError, TxnWrite};
use crate::lease::Lessor;
use crate::pb::mvccpb::KeyValue;

/// A buffered write reaches LMDB at most this long after it was made (etcd's --backend-batch-interval).
pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// ... or once this many writes are buffered (etcd's --backend-batch-limit).
pub const BATCH_LIMIT: usize = 10_000;

/// When the write buffer is committed: `--backend-batch-interval` and `--backend-batch-limit`.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    pub interval: Duration,
    pub limit: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits { interval: BATCH_INTERVAL, limit: BATCH_LIMIT }
    }
}

impl BatchLimits {
    /// etcd's flags: 0 means the default for either.
    pub fn from_flags(interval_ms: u64, limit: usize) -> Self {
        let d = BatchLimits::default();
        BatchLimits {
            interval: if interval_ms == 0 { d.interval } else { Duration::from_millis(interval_ms) },
            limit: if limit == 0 { d.limit } else { limit },
        }
    }
}

/// A value not yet committed to LMDB: whether it is a tombstone, and the encoded KeyValue.
pub(crate) type PendingValue = (bool, Arc<Vec<u8>>);

/// Raft batches applied since the last backend commit.
#[derive(Default)]
struct Buffer {
    ops: Ops,
    /// The raft index of the last entry applied into `ops`.
    consistent_index: u64,
    /// The store revision `ops` reach.
    rev: i64,
    /// A compaction applied into `ops`: its purge starts once they are committed.
    job: Option<Job>,
    /// When the first write since the last commit was buffered.
    since: Option<Instant>,
}

pub struct State {
    pub(crate) index: TreeIndex,
    /// The revision of the last completed write request (1 on an empty store).
    pub(crate) current_rev: i64,
    /// The last compaction revision; -1 before any compaction, as etcd.
    pub(crate) compact_main_rev: i64,
    /// Encoded KeyValues applied but not yet committed to the backend.
    pub(crate) pending: BTreeMap<Revision, PendingValue>,
}

pub struct KvStore {
    pub(crate) backend: Arc<Backend>,
    /// Purges compacted revisions from the backend in the background.
    pub compactor: Compactor,
    /// The leases; puts and deletes attach and detach keys as they apply (etcd's store holds its lessor).
    pub lessor: Lessor,
    /// The watchers; the applier hands it each batch's events after the commit.
    pub watchable: WatchableStore,
    pub(crate) state: RwLock<State>,
    buffer: Mutex<Buffer>,
    /// When the buffer is committed ([`BatchLimits::default`] unless set).
    pub batch: BatchLimits,
    /// Set by [`KvStore::fail`]: after a fatal error nothing more reaches the backend.
    failed: std::sync::atomic::AtomicBool,
}

impl KvStore {
    /// Opens the backend at `dir` and rebuilds the revision index from it.
    pub fn open(dir: &Path) -> Result<KvStore, MvccError> {
        let backend = Arc::new(Backend::open(dir)?);
        let mut loaded = Loaded::from(&backend)?;
        let lessor = Lessor::new();
        loaded.restore_leases(&lessor);
        let compactor = Compactor::new(loaded.finished);
        let mut index = std::mem::take(&mut loaded.index);
        if loaded.scheduled > loaded.finished {
            // A purge was cut short: the rebuilt index still has the rows it had not deleted yet.
            let keep = index.compact(loaded.scheduled);
            compactor.resume(loaded.scheduled, keep, &backend);
        }
        let state = State {
            index,
            current_rev: loaded.current_rev,
            compact_main_rev: loaded.compact_main_rev,
            pending: BTreeMap::new(),
        };
        let watchable = WatchableStore::default();
        watchable.reset_notified(state.current_rev);
        Ok(KvStore {
            backend,
            compactor,
            lessor,
            watchable,
            state: RwLock::new(state),
            buffer: Mutex::new(Buffer::default()),
            batch: BatchLimits::default(),
            failed: Default::default(),
        })
    }

    /// Replaces the whole store with a snapshot's backend `dump` (a member that fell behind the leader's log):
    /// the index and leases are rebuilt and every watcher catches up from the new history.
    pub fn restore(&self, dump: &[u8]) -> Result<(), MvccError> {
        self.check_not_failed()?;
        // What is buffered, and any purge under way, belong to the state being replaced.
        let mut buffer = self.buffer.lock();
        *buffer = Buffer::default();
        let mut state = self.state.write();
        self.compactor.forget();
        self.backend.restore_dump(dump)?;
        let mut loaded = Loaded::from(&self.backend)?;
        let mut index = std::mem::take(&mut loaded.index);
        self.compactor.restored(loaded.finished);
        if loaded.scheduled > loaded.finished {
            // The snapshot was taken in the middle of a purge: finish it here, as a restart would.
            let keep = index.compact(loaded.scheduled);
            self.compactor.resume(loaded.scheduled, keep, &self.backend);
        }
        self.lessor.clear();
        loaded.restore_leases(&self.lessor);
        *state = State {
            index,
            current_rev: loaded.current_rev,
            compact_main_rev: loaded.compact_main_rev,
            pending: BTreeMap::new(),
        };
        drop(state);
        self.watchable.unsync_all();
        self.watchable.reset_notified(loaded.current_rev);
        Ok(())
    }

    /// The raft index of the last entry whose effects the store holds (committed or buffered).
    pub fn consistent_index(&self) -> u64 {
        let buffered = self.buffer.lock().consistent_index;
        buffered.max(self.backend.get_meta_u64(CONSISTENT_INDEX_KEY).ok().flatten().unwrap_or(0))
    }

    /// Commits the write buffer if it is as old as, or holds as many writes as, [`KvStore::batch`] allows.
    pub fn commit_if_due(&self) -> Result<(), MvccError> {
        let due = {
            let b = self.buffer.lock();
            b.ops.len() >= self.batch.limit || b.since.is_some_and(|t| t.elapsed() >= self.batch.interval)
        };
        if due {
            self.force_commit()?;
        }
        Ok(())
    }

    /// Commits every buffered write to LMDB now (etcd's ForceCommit): before the backend file is read as a
    /// whole (snapshots, hashes) and before the WAL forgets entries.
    pub fn force_commit(&self) -> Result<(), MvccError> {
        // The buffer stays locked through the commit: commits reach LMDB in the order their writes were
        // buffered, and a failed one leaves every write buffered for the next.
        let mut b = self.buffer.lock();
        self.check_not_failed()?;
        if b.since.is_none() {
            return Ok(()); // no write since the last commit
        }
        crate::failpoint::failpoint("backend-before-commit");
        self.backend.commit_ops(&b.ops, b.consistent_index)?;
        crate::failpoint::failpoint("backend-after-commit");
        let done = std::mem::take(&mut *b);
        {
            let mut state = self.state.write();
            state.pending = state.pending.split_off(&Revision::new(done.rev + 1, 0));
        }
        if let Some(job) = done.job {
            // Still under the buffer lock: a restore (which takes it first) cannot slip in and have this
            // store's purge run on the next one.
            self.compactor.release(job, &self.backend);
        }
        Ok(())
    }

    /// After a fatal error (fail-stop): no buffered write reaches the backend any more, not even at drop; the
    /// restart replays them from the WAL.
    pub fn fail(&self) {
        self.failed.store(true, std::sync::atomic::Ordering::Release);
        self.compactor.stop();
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Acquire)
    }

    fn check_not_failed(&self) -> Result<(), MvccError> {
        if self.is_failed() {
            return Err(MvccError::Backend("the store stopped on a fatal error".into()));
        }
        Ok(())
    }

    /// The backend with every buffered write committed: for reading the file as a whole (snapshots, hashes)
    /// and for syncing it before the WAL forgets entries.
    pub fn committed_backend(&self) -> Result<&Backend, MvccError> {
        self.force_commit()?;
        Ok(&self.backend)
    }

    /// Keys alive at the current revision (etcd_debugging_mvcc_keys_total); walks the index.
    pub fn key_count(&self) -> usize {
        let s = self.state.read();
        s.index.count_revisions(&[0], &[0], s.current_rev)
    }

    pub fn rev(&self) -> i64 {
        self.state.read().current_rev
    }

    pub fn compact_rev(&self) -> i64 {
        self.state.read().compact_main_rev
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// A consistent read-only view at the current revision.
    pub fn read(&self) -> Result<ReadView<'_>, MvccError> {
        let state = self.state.read();
        let txn = self.backend.read_txn()?;
        Ok(ReadView { store: self, state, txn })
    }

    /// Opens the batch the applier fills with one raft Ready's committed entries.
    pub fn write_batch(&self) -> WriteBatch<'_> {
        WriteBatch { store: self, ops: Ops::default() }
    }
}

/// What the backend holds, read back into memory.
struct Loaded {
    index: TreeIndex,
    current_rev: i64,
    compact_main_rev: i64,
    finished: i64,
    scheduled: i64,
    leases: Vec<(i64, i64)>,
    /// The lease of each live key as of its newest revision.
    key_leases: HashMap<Vec<u8>, i64>,
}

impl Loaded {
    fn from(backend: &Backend) -> Result<Loaded, MvccError> {
        let mut index = TreeIndex::new();
        let mut current_rev = 1;
        let mut err = None;
        let mut key_leases: HashMap<Vec<u8>, i64> = HashMap::new();
        backend.for_each_kv(|k, v| {
            let rev = Revision::from_bytes(k);
            current_rev = current_rev.max(rev.main);
            let kv = match KeyValue::decode(v) {
                Ok(kv) => kv,
                Err(e) => {
                    err = Some(MvccError::Backend(format!("decode {rev:?}: {e}")));
                    return;
                }
            };
            if Revision::is_tombstone_key(k) {
                index.restore_tombstone(&kv.key, rev);
                key_leases.remove(&kv.key);
            } else {
                if kv.lease != 0 {
                    key_leases.insert(kv.key.clone(), kv.lease);
                } else {
                    key_leases.remove(&kv.key);
                }
                index.restore(&kv.key, Revision::new(kv.create_revision, 0), rev, kv.version);
            }
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        let finished = backend.get_meta_u64(FINISHED_COMPACT_KEY)?.map_or(-1, |v| v as i64);
        let scheduled = backend.get_meta_u64(SCHEDULED_COMPACT_KEY)?.map_or(-1, |v| v as i64);
        let compact_main_rev = finished.max(scheduled);
        current_rev = current_rev.max(compact_main_rev);
        let leases = backend.leases()?;
        Ok(Loaded { index, current_rev, compact_main_rev, finished, scheduled, leases, key_leases })
    }

    fn restore_leases(&self, lessor: &Lessor) {
        for (id, ttl) in &self.leases {
            lessor.restore(*id, *ttl);
        }
        for (key, lease) in &self.key_leases {
            lessor.attach(key, *lease);
        }
    }
}

pub struct ReadView<'a> {
    pub(crate) store: &'a KvStore,
    pub(crate) state: RwLockReadGuard<'a, State>,
    pub(crate) txn: RoTxn<'a, WithoutTls>,
}

impl ReadView<'_> {
    pub(crate) fn load(&self, rev: &Revision) -> Result<KeyValue, MvccError> {
        load(&self.state, &self.store.backend, &self.txn, rev)
    }

    /// Visits every row `(revision, tombstone, encoded KeyValue)` at or after `from` in revision order:
    /// LMDB's below the first pending revision, then the pending ones (a row in both is the same row).
    pub(crate) fn for_each_row(
        &self,
        from: Revision,
        mut f: impl FnMut(Revision, bool, &[u8]),
    ) -> Result<(), MvccError> {
        let first_pending = self.state.pending.keys().next().copied();
        self.store.backend.for_each_kv_between(&self.txn, from, first_pending, |k, v| {
            f(Revision::from_bytes(k), Revision::is_tombstone_key(k), v)
        })?;
        for (rev, (tomb, bytes)) in self.state.pending.range(from..) {
            f(*rev, *tomb, bytes);
        }
        Ok(())
    }
}

/// The KeyValue at `rev`: from the pending map, else from LMDB through `txn` (opened under the state lock).
pub(crate) fn load(
    state: &State,
    backend: &Backend,
    txn: &RoTxn<'_, WithoutTls>,
    rev: &Revision,
) -> Result<KeyValue, MvccError> {
    let decoded = match state.pending.get(rev) {
        Some((_, v)) => KeyValue::decode(v.as_slice()),
        None => {
            let bytes = backend
                .get_kv(txn, rev)?
                .ok_or_else(|| MvccError::Backend(format!("revision {rev:?} in index but not in backend")))?;
            KeyValue::decode(bytes.as_slice())
        }
    };
    decoded.map_err(|e| MvccError::Backend(e.to_string()))
}

/// A raft Ready's worth of requests; their backend writes gather in `ops` until [`WriteBatch::commit`].
pub struct WriteBatch<'a> {
    pub(crate) store: &'a KvStore,
    ops: Ops,
}

impl<'a> WriteBatch<'a> {
    /// Begins one write request (a put, a delete, a txn, a compaction): all its changes share one main
    /// revision, taken when the request ends if it changed anything.
    pub fn txn(&mut self) -> TxnWrite<'_, 'a> {
        let state = self.store.state.write();
        TxnWrite::new(self.store, state, &mut self.ops)
    }

    /// The batch's writes, for records outside the key space (membership).
    pub fn ops(&mut self) -> &mut Ops {
        &mut self.ops
    }

    /// Ends the batch: its writes join the store's write buffer with the consistent index `applied`; the
    /// buffer is committed now if it is full, else within the batch interval ([`KvStore::batch`]).
    pub fn commit(mut self, applied: u64) -> Result<(), MvccError> {
        let rev = self.store.state.read().current_rev;
        let job = self.store.compactor.take_scheduled();
        let full = {
            let mut b = self.store.buffer.lock();
            // An entry that changed nothing (a failed compare, a delete of no key, a leader's empty entry)
            // still advances the consistent index, and that must reach the disk too: a snapshot marker is
            // written at the applied index, and a restart needs the backend at or past it.
            if !self.ops.is_empty() || job.is_some() || applied > b.consistent_index {
                b.since.get_or_insert_with(Instant::now);
            }
            b.ops.append(&mut self.ops);
            b.consistent_index = b.consistent_index.max(applied);
            b.rev = b.rev.max(rev);
            if job.is_some() {
                b.job = job;
            }
            b.ops.len() >= self.store.batch.limit
        };
        if full {
            self.store.force_commit()?;
        }
        Ok(())
    }
}

impl Drop for KvStore {
    fn drop(&mut self) {
        if self.failed.load(std::sync::atomic::Ordering::Acquire) {
            self.compactor.stop();
            return;
        }
        if let Err(e) = self.force_commit() {
            eprintln!("pyetcd_fast: closing the store: {e} (the WAL replays what was lost)");
        }
        // The purge worker holds the backend: stop it so the environment closes with the store.
        self.compactor.stop();
    }
}
