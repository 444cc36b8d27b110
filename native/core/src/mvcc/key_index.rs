//! One key's history: the revisions at which it was written, grouped into generations.
//!
//! A *generation* is one lifetime of the key: it opens with the put that creates the key and closes with
//! the delete (tombstone) that removes it. The tombstone is stored as the generation's last revision, and
//! an empty generation is appended after it, ready for the next create. Only the newest generation can be
//! open (no tombstone yet); every earlier one ends with its tombstone.
//!
//! # A worked example
//!
//! Key `k` is written like this (`11.0` and `11.1` are two puts inside one txn):
//!
//! ```text
//!   put@3  put@5  del@7  put@9  put@11.0  put@11.1  del@13  put@15
//!
//!   generation   created   ver   revisions          (t = tombstone, which closes the generation)
//!   g0           3.0       3     3.0  5.0  7.0t
//!   g1           9.0       4     9.0  11.0 11.1 13.0t
//!   g2           15.0      1     15.0               (open: the key exists now)
//! ```
//!
//! `ver` counts the generation's writes, tombstone included; the version a read reports is the number of
//! puts up to the revision it sees. A read at revision `r` finds the generation alive at `r` and the
//! newest revision `<= r` in it:
//!
//! ```text
//!   get(2)  → not found (k does not exist yet)
//!   get(6)  → 5.0, created 3.0, version 2
//!   get(7)  → not found (the delete happened at 7; a tombstone is never a value)
//!   get(8)  → not found (between g0's delete and g1's create)
//!   get(12) → 11.1, created 9.0, version 3 (11.0 is hidden behind 11.1 at every main revision)
//!   get(99) → 15.0, created 15.0, version 1
//! ```
//!
//! # Compaction
//!
//! `compact(c)` forgets what no read at revision `c` or later can observe. Per key that leaves, of the
//! revisions `<= c`, at most one: the newest one of the generation alive at `c`. That one goes into the
//! `available` set, the revisions `<= c` the backend must keep; revisions `> c` are never touched. A
//! generation whose tombstone is `< c` is gone before `c`, so it is dropped whole, its tombstone with it: a
//! watcher starting before `c` gets `ErrCompacted`. A tombstone exactly at `c` is different: a watcher may
//! start at `c` itself, and it must see that delete (etcd #18089; etcd 3.4 drops it, 3.5 keeps it). The
//! generation shrinks to that lone tombstone (no read at `c` or later sees the key; a watcher's catch-up
//! does) and it goes into `available`, so the backend row stays until a later compaction drops it. Starting
//! from the example each time:
//!
//! ```text
//!   compact(5)   g0: 5.0 7.0t | g1, g2 unchanged          available {5.0}   (3.0 goes)
//!   compact(7)   g0: 7.0t | g1 | g2                       available {7.0t}  (kept for a watch from 7)
//!   compact(11)  g1: 11.1 13.0t | g2                      available {11.1}
//!   compact(14)  g2                                       available {}      (15.0 > 14 stays regardless)
//!   compact(20)  g2: 15.0                                 available {15.0}
//! ```
//!
//! And had `del@17` followed, `compact(17)` would leave only the empty generation: the key has no history
//! left and the tree index removes it ([`KeyIndex::is_empty`]). [`KeyIndex::keep`] computes the same
//! `available` set as [`KeyIndex::compact`] without changing anything (etcd's `HashKV` needs it).
//!
//! Everything here is pure: no locking, no I/O. The tree index ([`super::index::TreeIndex`]) owns one
//! `KeyIndex` per key and the kvstore owns the tree behind its lock.
use std::collections::HashSet;
use std::fmt;

use smallvec::SmallVec;

use super::revision::Revision;

/// Most keys have one generation and few revisions: both live inline, no allocation (at a million keys
/// that is most of the index's memory).
pub type Revisions = SmallVec<[Revision; 1]>;
pub type Generations = SmallVec<[Generation; 1]>;

/// etcd's `ErrRevisionNotFound` ("mvcc: revision not found").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexError {
    RevisionNotFound,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::RevisionNotFound => f.write_str("mvcc: revision not found"),
        }
    }
}

impl std::error::Error for IndexError {}

/// One lifetime of a key, from its create to its tombstone (if it has one yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// Writes in this generation, counting those already compacted away and the tombstone.
    pub ver: i64,
    /// The revision that created the key; may be older than `revs[0]` once compaction trimmed the front.
    pub created: Revision,
    /// Ascending. In any generation but the last, the final entry is the tombstone.
    pub revs: Revisions,
}

impl Generation {
    pub fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Position of the newest revision whose main revision is `<= at_rev`.
    fn newest_at(&self, at_rev: i64) -> Option<usize> {
        self.revs.partition_point(|r| r.main <= at_rev).checked_sub(1)
    }
}

/// The history of one key. See the module docs for the shape of `generations`. The key itself is the
/// tree index's map key, kept once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyIndex {
    /// The newest revision written to this key (a put or a tombstone).
    pub modified: Revision,
    pub generations: Generations,
}

impl KeyIndex {
    pub fn new() -> Self {
        KeyIndex::default()
    }

    /// Records a put at `main.sub`, creating the key if its newest generation is empty. Returns the key's
    /// create revision and version as of this put (what its KeyValue carries).
    ///
    /// # Panics
    /// If `main.sub` is not newer than [`Self::modified`]: revisions only grow, so this is a bug in the
    /// caller (etcd panics the same way).
    pub fn put(&mut self, main: i64, sub: i64) -> (Revision, i64) {
        let rev = Revision::new(main, sub);
        assert!(rev > self.modified, "mvcc: put at {rev} is not newer than the key's last write {}", self.modified);
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let g = self.generations.last_mut().expect("pushed above");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
        (g.created, g.ver)
    }

    /// Seeds the index from the backend at startup: the key's oldest surviving row says it was created at
    /// `created`, last written at `modified` and is at version `ver`. Later rows of the key are `put`s.
    ///
    /// # Panics
    /// If the index already has revisions (etcd's "unexpected non-empty generations").
    pub fn restore(&mut self, created: Revision, modified: Revision, ver: i64) {
        assert!(self.is_empty(), "mvcc: restore into a key that already has revisions");
        self.modified = modified;
        self.generations = smallvec::smallvec![Generation { ver, created, revs: smallvec::smallvec![modified] }];
    }

    /// Seeds an empty key with a tombstone row whose generation was compacted away: kept because it sits at
    /// the compaction revision, where a watcher may still start (see the module docs).
    pub fn restore_tombstone(&mut self, tomb: Revision) {
        assert!(self.is_empty(), "mvcc: restore into a key that already has revisions");
        self.modified = tomb;
        self.generations = smallvec::smallvec![
            Generation { ver: 1, created: tomb, revs: smallvec::smallvec![tomb] },
            Generation::default()
        ];
    }

    /// Closes the current generation with a tombstone at `main.sub` and opens an empty one.
    ///
    /// `RevisionNotFound` if the key does not exist now (no revisions, or already deleted): etcd's
    /// `tombstone` answers so for the deleted case and panics for the empty one; an error serves both.
    pub fn tombstone(&mut self, main: i64, sub: i64) -> Result<(), IndexError> {
        match self.generations.last() {
            Some(g) if !g.is_empty() => {}
            _ => return Err(IndexError::RevisionNotFound),
        }
        self.put(main, sub);
        self.generations.push(Generation::default());
        Ok(())
    }

    /// What a read at `at_rev` sees: (modified revision, created revision, version).
    pub fn get(&self, at_rev: i64) -> Result<(Revision, Revision, i64), IndexError> {
        let g = self.find_generation(at_rev).ok_or(IndexError::RevisionNotFound)?;
        let n = g.newest_at(at_rev).ok_or(IndexError::RevisionNotFound)?;
        // The version at revs[n] is the generation's count minus the writes that came after it.
        let newer = (g.revs.len() - n - 1) as i64;
        Ok((g.revs[n], g.created, g.ver - newer))
    }

    /// The generation alive at `at_rev`, or `None` if the key did not exist then: before its first
    /// surviving revision, or at/after a tombstone and before the next create.
    fn find_generation(&self, at_rev: i64) -> Option<&Generation> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(end)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && end.main <= at_rev {
                // `end` is this generation's tombstone and every newer generation starts after at_rev.
                return None;
            }
            if first.main <= at_rev {
                return Some(g);
            }
        }
        None
    }

    /// Every revision of the key at or after `rev`, ascending, for a watcher catching up. Of several
    /// revisions sharing one main revision only the last is returned: a txn's earlier writes to the same
    /// key were never visible outside it.
    pub fn since(&self, rev: i64) -> Vec<Revision> {
        let since = Revision::new(rev, 0);
        let mut out: Vec<Revision> = Vec::new();
        for g in &self.generations {
            // Generations are ascending, so whole generations before `since` are skipped cheaply.
            if g.revs.last().is_none_or(|r| *r < since) {
                continue;
            }
            let start = g.revs.partition_point(|r| *r < since);
            for &r in &g.revs[start..] {
                match out.last_mut() {
                    Some(prev) if prev.main == r.main => *prev = r,
                    _ => out.push(r),
                }
            }
        }
        out
    }

    /// Drops what no read at `at_rev` or later can see (see the module docs) and adds to `available` the
    /// revision `<= at_rev` that must stay in the backend, if any. The caller removes the key when this
    /// leaves it [`Self::is_empty`].
    pub fn compact(&mut self, at_rev: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (mut gi, newest) = self.compaction_point(at_rev);
        let last = self.generations.len() - 1;
        let g = &mut self.generations[gi];
        if let Some(n) = newest {
            g.revs.drain(..n);
        }
        if g.revs.len() == 1 && gi != last && g.revs[0].main < at_rev {
            // Only a tombstone is left, before at_rev: the generation is over for every reader and watcher.
            gi += 1;
        } else if newest.is_some() {
            // The newest revision at at_rev, or a lone tombstone at exactly at_rev, which no read sees but a
            // watcher starting at at_rev must.
            available.insert(g.revs[0]);
            if g.revs.len() == 1 && gi != last {
                // What a restart rebuilds from the tombstone's row alone ([`Self::restore_tombstone`]).
                (g.created, g.ver) = (g.revs[0], 1);
            }
        }
        self.generations.drain(..gi);
    }

    /// The revision [`Self::compact`] would add to `available` for `at_rev`, without compacting. Without
    /// `tombstones`, a tombstone at `at_rev` is left out, as etcd 3.4's keep leaves it (for HashKV).
    pub fn keep(&self, at_rev: i64, available: &mut HashSet<Revision>, tombstones: bool) {
        if self.is_empty() {
            return;
        }
        let (gi, newest) = self.compaction_point(at_rev);
        let g = &self.generations[gi];
        if let Some(n) = newest {
            if n + 1 < g.revs.len() || gi == self.generations.len() - 1 || tombstones && g.revs[n].main == at_rev {
                available.insert(g.revs[n]);
            }
        }
    }

    /// Where compaction at `at_rev` cuts: the first generation not wholly before `at_rev` (its tombstone at or
    /// after it; the last one if all closed generations end before), and the position in it of its newest
    /// revision `<= at_rev`.
    fn compaction_point(&self, at_rev: i64) -> (usize, Option<usize>) {
        let last = self.generations.len() - 1;
        let gi = (0..last)
            .position(|i| {
                let tomb = self.generations[i].revs.last().map_or(i64::MIN, |r| r.main);
                // A tombstone at exactly at_rev keeps its generation, unless the next one already began at
                // at_rev (a txn that deleted and put the key again): its put is the key's state at at_rev.
                let next_began = self.generations[i + 1].revs.first().is_some_and(|r| r.main <= at_rev);
                tomb > at_rev || (tomb == at_rev && !next_began)
            })
            .unwrap_or(last);
        (gi, self.generations[gi].newest_at(at_rev))
    }

    /// True when the key has no revisions left: never written, or compacted down to one empty generation.
    pub fn is_empty(&self) -> bool {
        // More than one generation means a closed one, and closed generations are never empty.
        match self.generations.as_slice() {
            [] => true,
            [g] => g.is_empty(),
            _ => false,
        }
    }
}

impl fmt::Display for KeyIndex {
    /// A multi-line dump, one line per generation, as used by the data-driven tests (which put the key
    /// in front):
    ///
    /// ```text
    /// modified=15.0
    ///   created=3.0 ver=3: 3.0 5.0 7.0t
    ///   created=15.0 ver=1: 15.0
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "modified={}", self.modified)?;
        let last = self.generations.len().saturating_sub(1);
        for (i, g) in self.generations.iter().enumerate() {
            if g.is_empty() {
                write!(f, "\n  (empty)")?;
                continue;
            }
            write!(f, "\n  created={} ver={}:", g.created, g.ver)?;
            for (j, r) in g.revs.iter().enumerate() {
                let tomb = if i != last && j + 1 == g.revs.len() { "t" } else { "" };
                write!(f, " {r}{tomb}")?;
            }
        }
        Ok(())
    }
}

/// A key as text: printable ASCII as is, every other byte (and `\`) as `\xNN`.
#[cfg(test)]
pub(crate) fn escape_key(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_graphic() && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64, sub: i64) -> Revision {
        Revision::new(main, sub)
    }

    fn gen(created: Revision, ver: i64, revs: &[Revision]) -> Generation {
        Generation { ver, created, revs: Revisions::from_slice(revs) }
    }

    #[test]
    fn put_builds_one_generation() {
        let mut ki = KeyIndex::new();
        assert!(ki.is_empty());
        ki.put(5, 0);
        ki.put(7, 0);
        assert_eq!(ki.modified, rev(7, 0));
        assert_eq!(ki.generations.to_vec(), vec![gen(rev(5, 0), 2, &[rev(5, 0), rev(7, 0)])]);
        assert!(!ki.is_empty());
    }

    #[test]
    fn restore_seeds_one_revision() {
        let mut ki = KeyIndex::new();
        ki.restore(rev(5, 0), rev(7, 0), 2);
        assert_eq!(ki.modified, rev(7, 0));
        assert_eq!(ki.generations.to_vec(), vec![gen(rev(5, 0), 2, &[rev(7, 0)])]);
        assert_eq!(ki.get(7), Ok((rev(7, 0), rev(5, 0), 2)));
        assert_eq!(ki.get(6), Err(IndexError::RevisionNotFound));
    }

    #[test]
    fn tombstone_closes_generation() {
        let mut ki = KeyIndex::new();
        assert_eq!(ki.tombstone(1, 0), Err(IndexError::RevisionNotFound));
        ki.put(5, 0);
        ki.tombstone(7, 0).unwrap();
        ki.put(8, 0);
        ki.put(9, 0);
        ki.tombstone(15, 0).unwrap();
        assert_eq!(ki.modified, rev(15, 0));
        assert_eq!(
            ki.generations.to_vec(),
            vec![
                gen(rev(5, 0), 2, &[rev(5, 0), rev(7, 0)]),
                gen(rev(8, 0), 3, &[rev(8, 0), rev(9, 0), rev(15, 0)]),
                Generation::default(),
            ]
        );
        assert_eq!(ki.tombstone(16, 0), Err(IndexError::RevisionNotFound));
        assert_eq!(ki.modified, rev(15, 0), "a refused tombstone writes nothing");
    }

    #[test]
    #[should_panic(expected = "not newer")]
    fn put_must_move_forward() {
        let mut ki = KeyIndex::new();
        ki.put(5, 1);
        ki.put(5, 0);
    }

    #[test]
    #[should_panic(expected = "already has revisions")]
    fn restore_twice_panics() {
        let mut ki = KeyIndex::new();
        ki.restore(rev(2, 0), rev(3, 0), 2);
        ki.restore(rev(2, 0), rev(4, 0), 3);
    }

    /// A txn that deletes the key and puts it again shares one main revision (5.0t, 5.1): compacting at 5
    /// must keep the put, which is the key's value at 5, not the tombstone before it.
    #[test]
    fn compaction_at_a_delete_and_put_in_one_txn_keeps_the_put() {
        let mut ki = KeyIndex::new();
        ki.put(2, 0);
        ki.tombstone(5, 0).unwrap();
        ki.put(5, 1);
        let mut kept = HashSet::new();
        ki.keep(5, &mut kept, true);
        let mut available = HashSet::new();
        ki.compact(5, &mut available);
        assert_eq!(available, HashSet::from([rev(5, 1)]));
        assert_eq!(kept, available);
        assert_eq!(ki.get(5), Ok((rev(5, 1), rev(5, 1), 1)));
    }

    #[test]
    fn compacted_to_nothing_is_empty() {
        let mut ki = KeyIndex::new();
        ki.put(2, 0);
        ki.tombstone(3, 0).unwrap();
        let mut available = HashSet::new();
        ki.compact(3, &mut available);
        assert_eq!(available, HashSet::from([rev(3, 0)]), "a watch from 3 still sees the delete at 3");
        assert!(!ki.is_empty());
        assert_eq!(ki.get(3), Err(IndexError::RevisionNotFound));
        assert_eq!(ki.since(3), vec![rev(3, 0)]);
        available.clear();
        ki.compact(4, &mut available);
        assert!(available.is_empty());
        assert!(ki.is_empty());
        assert_eq!(ki.generations.to_vec(), vec![Generation::default()]);
        assert_eq!(ki.get(4), Err(IndexError::RevisionNotFound));
        assert!(ki.since(0).is_empty());
    }

    #[test]
    fn display_and_escape() {
        let mut ki = KeyIndex::new();
        ki.put(2, 0);
        ki.tombstone(3, 0).unwrap();
        assert_eq!(ki.to_string(), "modified=3.0\n  created=2.0 ver=2: 2.0 3.0t\n  (empty)");
        assert_eq!(escape_key(b"a\\b\x00 "), "a\\x5cb\\x00\\x20");
    }
}
