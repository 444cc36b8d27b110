//! The store: revision index + backend + the current/compacted revisions, and the two ways in.
//!
//! Lock order: `state` (RwLock) is taken before any LMDB transaction is opened. Readers hold the read lock for
//! the life of a [`ReadView`] so every range in it sees one revision. The applier takes the write lock per
//! request ([`WriteBatch::txn`]), never across the batch commit's fsync, so reads interleave with a batch.
//! Values written in the open batch live in `State::pending` until the LMDB commit; readers look there first.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use heed::{RoTxn, RwTxn, WithoutTls};
use parking_lot::{RwLock, RwLockReadGuard};
use prost::Message;

use super::backend::{Backend, CONSISTENT_INDEX_KEY, FINISHED_COMPACT_KEY, SCHEDULED_COMPACT_KEY};
use super::index::TreeIndex;
use super::kvstore_compaction::Compactor;
use super::revision::Revision;
use super::watchable_store::WatchableStore;
use super::{MvccError, TxnWrite};
use crate::lease::Lessor;
use crate::pb::mvccpb::KeyValue;

pub struct State {
    pub(crate) index: TreeIndex,
    /// The revision of the last completed write request (1 on an empty store).
    pub(crate) current_rev: i64,
    /// The last compaction revision; -1 before any compaction, as etcd.
    pub(crate) compact_main_rev: i64,
    /// Encoded KeyValues applied in the open batch and not yet committed to the backend.
    pub(crate) pending: HashMap<Revision, Arc<Vec<u8>>>,
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
            pending: HashMap::new(),
        };
        Ok(KvStore { backend, compactor, lessor, watchable: WatchableStore::default(), state: RwLock::new(state) })
    }

    /// Replaces the whole store with a snapshot's backend `dump` (a member that fell behind the leader's log):
    /// the index and leases are rebuilt and every watcher catches up from the new history.
    pub fn restore(&self, dump: &[u8]) -> Result<(), MvccError> {
        let mut state = self.state.write();
        self.backend.restore_dump(dump)?;
        let mut loaded = Loaded::from(&self.backend)?;
        let mut index = std::mem::take(&mut loaded.index);
        if loaded.scheduled > loaded.finished {
            index.compact(loaded.scheduled);
        }
        self.lessor.clear();
        loaded.restore_leases(&self.lessor);
        *state = State {
            index,
            current_rev: loaded.current_rev,
            compact_main_rev: loaded.compact_main_rev,
            pending: HashMap::new(),
        };
        drop(state);
        self.watchable.unsync_all();
        Ok(())
    }

    /// The raft index of the last entry whose effects the backend holds.
    pub fn consistent_index(&self) -> u64 {
        self.backend.get_meta_u64(CONSISTENT_INDEX_KEY).ok().flatten().unwrap_or(0)
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
    pub fn write_batch(&self) -> Result<WriteBatch<'_>, MvccError> {
        Ok(WriteBatch { store: self, txn: Some(self.backend.write_txn()?) })
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
                // A tombstone whose generation was compacted away has nothing to end; etcd ignores it too.
                let _ = index.tombstone(&kv.key, rev);
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
        let bytes = match self.state.pending.get(rev) {
            Some(v) => v.as_ref().clone(),
            None => self
                .store
                .backend
                .get_kv(&self.txn, rev)?
                .ok_or_else(|| MvccError::Backend(format!("revision {rev:?} in index but not in backend")))?,
        };
        KeyValue::decode(bytes.as_slice()).map_err(|e| MvccError::Backend(e.to_string()))
    }
}

/// One LMDB write transaction spanning a raft Ready's worth of requests.
pub struct WriteBatch<'a> {
    pub(crate) store: &'a KvStore,
    txn: Option<RwTxn<'a>>,
}

impl<'a> WriteBatch<'a> {
    /// Begins one write request (a put, a delete, a txn, a compaction): all its changes share one main
    /// revision, taken when the request ends if it changed anything.
    pub fn txn(&mut self) -> TxnWrite<'_, 'a> {
        let state = self.store.state.write();
        TxnWrite::new(self.store, state, self.txn.as_mut().expect("batch open"))
    }

    /// The batch's transaction, for records outside the key space (membership).
    pub fn rw_txn(&mut self) -> &mut RwTxn<'a> {
        self.txn.as_mut().expect("batch open")
    }

    /// Commits every request of the batch together with the consistent index `applied`, then lets readers
    /// find the batch's values in the backend instead of the pending map.
    pub fn commit(mut self, applied: u64) -> Result<(), MvccError> {
        let mut txn = self.txn.take().expect("batch open");
        crate::failpoint::failpoint("backend-before-commit");
        self.store.backend.put_meta_u64(&mut txn, CONSISTENT_INDEX_KEY, applied)?;
        txn.commit().map_err(|e| MvccError::Backend(e.to_string()))?;
        crate::failpoint::failpoint("backend-after-commit");
        self.store.state.write().pending.clear();
        self.store.compactor.release(&self.store.backend);
        Ok(())
    }
}

impl Drop for KvStore {
    fn drop(&mut self) {
        // The purge worker holds the backend: stop it so the environment closes with the store.
        self.compactor.stop();
    }
}
