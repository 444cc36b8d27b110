//! Compaction: drop every revision that no read at or above the compaction revision can see.
//!
//! The index is compacted first (it yields the revisions to keep), then the backend deletes the rest and
//! records `finishedCompactRev`, all inside the open write batch, so a crash either keeps the old history or
//! the compacted one, never half of it. Readers that began before hold their own LMDB snapshot.
use super::backend::FINISHED_COMPACT_KEY;
use super::revision::Revision;
use super::{MvccError, TxnWrite};

impl TxnWrite<'_, '_> {
    /// Compacts history at `rev`; etcd's checks first (already compacted, future revision).
    pub fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        if rev <= self.state.compact_main_rev {
            return Err(MvccError::Compacted);
        }
        if rev > self.state.current_rev {
            return Err(MvccError::FutureRev);
        }
        let keep = self.state.index.compact(rev);
        self.state.compact_main_rev = rev;
        let store = self.store();
        for k in store.backend.keys_upto(self.txn, rev)? {
            let r = Revision::from_bytes(&k);
            if !keep.contains(&r) {
                store.backend.delete_kv(self.txn, &k)?;
                self.state.pending.remove(&r);
            }
        }
        store.backend.put_meta_u64(self.txn, FINISHED_COMPACT_KEY, rev as u64)?;
        Ok(())
    }
}
