//! Reads and writes inside one request: ranges at a revision, puts and deletes at the request's revision.
use std::cell::OnceCell;
use std::sync::Arc;

use heed::{RoTxn, WithoutTls};
use parking_lot::RwLockWriteGuard;
use prost::Message;

use super::backend::Ops;
use super::kvstore::{KvStore, ReadView, State};
use super::revision::Revision;
use super::MvccError;
use crate::pb::mvccpb::KeyValue;

#[derive(Clone, Copy, Debug, Default)]
pub struct RangeOptions {
    /// 0 = no limit.
    pub limit: i64,
    /// <= 0 = the view's revision.
    pub rev: i64,
    /// Only count; return no KeyValues.
    pub count: bool,
}

#[derive(Debug, Default)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Every key matching the range at the revision, not capped by the limit.
    pub count: usize,
    /// The revision the read was served at the head of (etcd's `curRev`), not the requested one.
    pub rev: i64,
}

/// What a txn needs from any view, read-only or writing.
pub trait TxnRead {
    /// Keys in `[key, end)`; `end` empty = the single key, `end == [0]` = every key >= `key`.
    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError>;
    /// The revision reads in this view are served at.
    fn rev(&self) -> i64;
    /// The compaction revision (reads below it fail).
    fn first_rev(&self) -> i64;
    /// Whether the lease exists (puts with an unknown lease are refused).
    fn lease_exists(&self, id: i64) -> bool;
}

/// etcd's rangeKeys: the shared checks and the limit/count rule.
fn range_keys(
    state: &State,
    cur_rev: i64,
    key: &[u8],
    end: &[u8],
    opts: RangeOptions,
    mut load: impl FnMut(&Revision) -> Result<KeyValue, MvccError>,
) -> Result<RangeResult, MvccError> {
    if opts.rev > cur_rev {
        return Err(MvccError::FutureRev);
    }
    let rev = if opts.rev <= 0 { cur_rev } else { opts.rev };
    if rev < state.compact_main_rev {
        return Err(MvccError::Compacted);
    }
    let limit = if opts.count || opts.limit <= 0 { 0 } else { opts.limit as usize };
    let (revs, count) = state.index.revisions(key, end, rev, limit);
    if count == 0 || opts.count {
        return Ok(RangeResult { kvs: Vec::new(), count, rev: cur_rev });
    }
    let kvs = revs.iter().map(&mut load).collect::<Result<Vec<_>, _>>()?;
    Ok(RangeResult { kvs, count, rev: cur_rev })
}

impl TxnRead for ReadView<'_> {
    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        range_keys(&self.state, self.state.current_rev, key, end, opts, |r| self.load(r))
    }
    fn rev(&self) -> i64 {
        self.state.current_rev
    }
    fn first_rev(&self) -> i64 {
        self.state.compact_main_rev
    }
    fn lease_exists(&self, id: i64) -> bool {
        self.store.lessor.exists(id)
    }
}

/// One write request. Dropping it ends the request: the store's revision advances iff something changed.
pub struct TxnWrite<'b, 'a> {
    store: &'a KvStore,
    pub(crate) state: RwLockWriteGuard<'a, State>,
    /// The batch's backend writes; this request's join them.
    pub(crate) ops: &'b mut Ops,
    /// Opened (under the state lock) the first time a value is read from LMDB.
    reader: OnceCell<RoTxn<'a, WithoutTls>>,
    begin_rev: i64,
    changes: Vec<KeyValue>,
}

impl<'b, 'a> TxnWrite<'b, 'a> {
    pub(crate) fn new(store: &'a KvStore, state: RwLockWriteGuard<'a, State>, ops: &'b mut Ops) -> Self {
        let begin_rev = state.current_rev;
        TxnWrite { store, state, ops, reader: OnceCell::new(), begin_rev, changes: Vec::new() }
    }

    pub(crate) fn store(&self) -> &'a KvStore {
        self.store
    }

    fn load(&self, rev: &Revision) -> Result<KeyValue, MvccError> {
        let backend = &self.store.backend;
        let txn = match self.reader.get() {
            Some(t) => t,
            None => {
                let t = backend.read_txn()?;
                self.reader.get_or_init(|| t)
            }
        };
        super::kvstore::load(&self.state, backend, txn, rev)
    }

    /// Puts `key`; returns the request's revision.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, MvccError> {
        let rev = self.begin_rev + 1;
        let idx_rev = Revision::new(rev, self.changes.len() as i64);
        let (created, version) = self.state.index.put(key, idx_rev);
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: created.main,
            mod_revision: rev,
            version,
            value: value.to_vec(),
            lease,
        };
        self.write(&idx_rev.to_bytes(), idx_rev, false, &kv);
        self.store.lessor.attach(key, lease);
        self.changes.push(kv);
        Ok(rev)
    }

    /// Deletes every key in the range; returns (deleted, revision) as etcd's DeleteRange does: the revision
    /// is the request's only if this request changed something.
    pub fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Result<(i64, i64), MvccError> {
        let rrev = if self.changes.is_empty() { self.begin_rev } else { self.begin_rev + 1 };
        let (keys, _) = self.state.index.range(key, end, rrev);
        for k in &keys {
            let idx_rev = Revision::new(self.begin_rev + 1, self.changes.len() as i64);
            let kv = KeyValue { key: k.clone(), mod_revision: self.begin_rev + 1, ..Default::default() };
            self.write(
                &idx_rev.to_bytes_tombstone(),
                idx_rev,
                true,
                &KeyValue { key: k.clone(), ..Default::default() },
            );
            self.state
                .index
                .tombstone(k, idx_rev)
                .map_err(|e| MvccError::Backend(format!("tombstone {k:?}: {e:?}")))?;
            self.store.lessor.detach(k);
            self.changes.push(kv);
        }
        let n = keys.len() as i64;
        if n != 0 || !self.changes.is_empty() {
            Ok((n, self.begin_rev + 1))
        } else {
            Ok((0, self.begin_rev))
        }
    }

    fn write(&mut self, backend_key: &[u8], rev: Revision, tombstone: bool, kv: &KeyValue) {
        let bytes = Arc::new(kv.encode_to_vec());
        self.ops.put_kv(backend_key, bytes.clone());
        self.state.pending.insert(rev, (tombstone, bytes));
    }

    /// The changes made so far (the watch feed, later).
    pub fn changes(&self) -> &[KeyValue] {
        &self.changes
    }

    /// Ends the request; returns its changes.
    pub fn end(mut self) -> Vec<KeyValue> {
        if !self.changes.is_empty() {
            self.state.current_rev += 1;
        }
        std::mem::take(&mut self.changes)
    }
}

impl TxnRead for TxnWrite<'_, '_> {
    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        range_keys(&self.state, self.rev(), key, end, opts, |r| self.load(r))
    }
    fn rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }
    fn first_rev(&self) -> i64 {
        self.state.compact_main_rev
    }
    fn lease_exists(&self, id: i64) -> bool {
        self.store.lessor.exists(id)
    }
}
