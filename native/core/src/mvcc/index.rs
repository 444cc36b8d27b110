//! The revision index over all keys: an ordered map from key to its [`KeyIndex`] (etcd's `treeIndex`).
//!
//! The index answers "which revision of which key does a read at revision `r` see"; the values live in
//! the backend under those revisions. It holds no lock of its own: the kvstore keeps it behind the same
//! lock as the current revision, so a reader never sees an index ahead of the revision it was promised.
//!
//! Ranges follow etcd's request conventions, with one change forced by Rust slices having no `nil`:
//!
//! | `end`         | keys visited                                   |
//! |---------------|------------------------------------------------|
//! | empty         | `key` alone                                    |
//! | `[0]` (`\0`)  | every key `>= key` (etcd's "from key" range)   |
//! | anything else | `key <= k < end`; nothing if `end <= key`      |
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use super::key_index::{IndexError, KeyIndex};
use super::revision::Revision;

/// The slice of the key space a request covers, as `BTreeMap::range` takes it.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeIndex {
    /// `Box<[u8]>`: the key once, without a `Vec`'s capacity word.
    tree: BTreeMap<Box<[u8]>, KeyIndex>,
}

impl TreeIndex {
    pub fn new() -> Self {
        TreeIndex::default()
    }

    /// Records a put of `key` at `rev`; returns the key's create revision and version as of this put (one
    /// tree search serves both: the apply hot path).
    ///
    /// # Panics
    /// If `rev` is not newer than the key's last write (see [`KeyIndex::put`]).
    pub fn put(&mut self, key: &[u8], rev: Revision) -> (Revision, i64) {
        // get_mut first: the common case (an existing key) must not copy the key.
        if let Some(ki) = self.tree.get_mut(key) {
            return ki.put(rev.main, rev.sub);
        }
        let mut ki = KeyIndex::new();
        let put = ki.put(rev.main, rev.sub);
        self.tree.insert(key.into(), ki);
        put
    }

    /// Records a delete of `key` at `rev`; `RevisionNotFound` if the key does not exist now.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> Result<(), IndexError> {
        match self.tree.get_mut(key) {
            Some(ki) => ki.tombstone(rev.main, rev.sub),
            None => Err(IndexError::RevisionNotFound),
        }
    }

    /// Replays a tombstone row at startup: it ends the key's generation, or, when the rows before it were
    /// compacted away, stands alone ([`KeyIndex::restore_tombstone`]; a compaction at its revision kept it).
    pub fn restore_tombstone(&mut self, key: &[u8], rev: Revision) {
        match self.tree.get_mut(key) {
            Some(ki) if !ki.is_empty() => {
                let _ = ki.tombstone(rev.main, rev.sub); // a second tombstone in a row: nothing to end
            }
            _ => {
                let mut ki = KeyIndex::new();
                ki.restore_tombstone(rev);
                self.tree.insert(key.into(), ki);
            }
        }
    }

    /// Replays one live backend row at startup, rows arriving in revision order: the key's first row seeds
    /// its history ([`KeyIndex::restore`]), any later row is a put. Tombstone rows go to [`Self::tombstone`].
    pub fn restore(&mut self, key: &[u8], created: Revision, modified: Revision, ver: i64) {
        if let Some(ki) = self.tree.get_mut(key) {
            ki.put(modified.main, modified.sub);
            return;
        }
        let mut ki = KeyIndex::new();
        ki.restore(created, modified, ver);
        self.tree.insert(key.into(), ki);
    }

    /// What a read of `key` at `at_rev` sees: (modified revision, created revision, version).
    pub fn get(&self, key: &[u8], at_rev: i64) -> Result<(Revision, Revision, i64), IndexError> {
        self.tree.get(key).ok_or(IndexError::RevisionNotFound)?.get(at_rev)
    }

    /// The key's [`KeyIndex`], if the index has one.
    pub fn key_index(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.tree.get(key)
    }

    /// Every key and its history, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &KeyIndex)> {
        self.tree.iter().map(|(k, ki)| (&**k, ki))
    }

    /// The Range hot path: the revisions of the first `limit` keys in the range alive at `at_rev` (all of
    /// them when `limit` is 0), in key order, plus how many keys in the range are alive in total.
    pub fn revisions(&self, key: &[u8], end: &[u8], at_rev: i64, limit: usize) -> (Vec<Revision>, usize) {
        if end.is_empty() {
            return match self.get(key, at_rev) {
                Ok((rev, ..)) => (vec![rev], 1),
                Err(_) => (Vec::new(), 0),
            };
        }
        let mut revs = Vec::new();
        let mut count = 0;
        for (_, ki) in self.visit(key, end) {
            if let Ok((rev, ..)) = ki.get(at_rev) {
                // Past the limit the keys still count (the response's `count`), but are not collected.
                if limit == 0 || revs.len() < limit {
                    revs.push(rev);
                }
                count += 1;
            }
        }
        (revs, count)
    }

    /// The keys in the range alive at `at_rev` and the revision each one shows, in key order.
    pub fn range(&self, key: &[u8], end: &[u8], at_rev: i64) -> (Vec<Vec<u8>>, Vec<Revision>) {
        let mut keys = Vec::new();
        let mut revs = Vec::new();
        for (k, ki) in self.visit(key, end) {
            if let Ok((rev, ..)) = ki.get(at_rev) {
                keys.push(k.to_vec());
                revs.push(rev);
            }
        }
        (keys, revs)
    }

    /// How many keys in the range are alive at `at_rev` (a `count_only` Range); allocates nothing.
    pub fn count_revisions(&self, key: &[u8], end: &[u8], at_rev: i64) -> usize {
        self.visit(key, end).filter(|(_, ki)| ki.get(at_rev).is_ok()).count()
    }

    /// Every revision `>= rev` of every key in the range, ascending by revision, for watch catch-up. Per
    /// key, only the last sub revision of each main revision (see [`KeyIndex::since`]).
    pub fn range_since(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<Revision> {
        let mut revs: Vec<Revision> = self.visit(key, end).flat_map(|(_, ki)| ki.since(rev)).collect();
        // Revisions are unique across keys, so an unstable sort is a total order here.
        revs.sort_unstable();
        revs
    }

    /// Compacts every key at `rev` and drops keys left without history. Returns the revisions `<= rev`
    /// the backend must keep; it may delete every other revision `<= rev`.
    pub fn compact(&mut self, rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        self.tree.retain(|_, ki| {
            ki.compact(rev, &mut available);
            !ki.is_empty()
        });
        available
    }

    /// The set [`Self::compact`] would return for `rev`, leaving the index as it is.
    pub fn keep(&self, rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for ki in self.tree.values() {
            ki.keep(rev, &mut available, true);
        }
        available
    }

    /// etcd 3.4's keep set for HashKV at `rev`: [`Self::keep`] less a tombstone at `rev` itself, so that the
    /// hash equals etcd's on the same history.
    pub fn hash_keep(&self, rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for ki in self.tree.values() {
            ki.keep(rev, &mut available, false);
        }
        available
    }

    /// Number of keys with history (alive now or not).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The key indexes a range request covers, in key order (see the module docs for `end`).
    fn visit<'a>(&'a self, key: &'a [u8], end: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a KeyIndex)> + 'a {
        let bounds: Option<KeyBounds<'a>> = if end.is_empty() {
            Some((Bound::Included(key), Bound::Included(key)))
        } else if end == [0] {
            Some((Bound::Included(key), Bound::Unbounded))
        } else if end > key {
            Some((Bound::Included(key), Bound::Excluded(end)))
        } else {
            // BTreeMap::range panics on an inverted range; etcd simply finds nothing.
            None
        };
        bounds.into_iter().flat_map(move |b| self.tree.range::<[u8], _>(b)).map(|(k, ki)| (&**k, ki))
    }
}
