//! KvStore cases: the revision model, range options, compaction, and a restart rebuilding the index.
use super::*;

fn open(dir: &std::path::Path) -> KvStore {
    KvStore::open(dir).unwrap()
}

/// Applies `f` as one write request in its own batch; returns the store revision after it.
fn write(s: &KvStore, applied: u64, f: impl FnOnce(&mut TxnWrite)) -> i64 {
    let mut b = s.write_batch();
    let mut t = b.txn();
    f(&mut t);
    t.end();
    b.commit(applied).unwrap();
    s.rev()
}

fn keys(r: &RangeResult) -> Vec<String> {
    r.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

fn range(s: &KvStore, key: &str, end: &str, opts: RangeOptions) -> Result<RangeResult, MvccError> {
    s.read().unwrap().range(key.as_bytes(), end.as_bytes(), opts)
}

#[test]
fn revision_model() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert_eq!(s.rev(), 1, "an empty store is at revision 1");
    assert_eq!(
        write(&s, 1, |t| {
            t.put(b"foo", b"a", 0).unwrap();
        }),
        2,
        "first write is revision 2"
    );
    // An identical value still takes a revision and bumps the version.
    assert_eq!(
        write(&s, 2, |t| {
            t.put(b"foo", b"a", 0).unwrap();
        }),
        3
    );
    let kv = &range(&s, "foo", "", RangeOptions::default()).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    // A delete that matches nothing takes no revision.
    assert_eq!(write(&s, 3, |t| assert_eq!(t.delete_range(b"nope", b"").unwrap(), (0, 3))), 3);
    // Two puts in one request share a main revision.
    assert_eq!(
        write(&s, 4, |t| {
            t.put(b"a", b"1", 0).unwrap();
            t.put(b"b", b"2", 0).unwrap();
        }),
        4
    );
    assert_eq!(write(&s, 5, |t| assert_eq!(t.delete_range(b"foo", b"").unwrap(), (1, 5))), 5);
    assert_eq!(
        write(&s, 6, |t| {
            t.put(b"foo", b"new", 0).unwrap();
        }),
        6
    );
    let kv = &range(&s, "foo", "", RangeOptions::default()).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (6, 6, 1), "a new generation");
    assert_eq!(s.consistent_index(), 6);
}

#[test]
fn range_options() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
        write(&s, i as u64 + 1, |t| {
            t.put(k.as_bytes(), b"v", 0).unwrap();
        });
    }
    // Revisions: a=2 b=3 c=4 d=5.
    let all = range(&s, "a", "\0", RangeOptions::default()).unwrap();
    assert_eq!(keys(&all), ["a", "b", "c", "d"]);
    assert_eq!((all.count, all.rev), (4, 5));
    let lim = range(&s, "a", "\0", RangeOptions { limit: 2, ..Default::default() }).unwrap();
    assert_eq!(keys(&lim), ["a", "b"]);
    assert_eq!(lim.count, 4, "count is not capped by the limit");
    let at3 = range(&s, "a", "z", RangeOptions { rev: 3, ..Default::default() }).unwrap();
    assert_eq!(keys(&at3), ["a", "b"]);
    assert_eq!(at3.rev, 5, "the header revision is the store's, not the requested one");
    let cnt = range(&s, "b", "d", RangeOptions { count: true, ..Default::default() }).unwrap();
    assert!(cnt.kvs.is_empty());
    assert_eq!(cnt.count, 2);
    assert!(keys(&range(&s, "d", "a", RangeOptions::default()).unwrap()).is_empty(), "an inverted range is empty");
    assert_eq!(range(&s, "a", "", RangeOptions { rev: 6, ..Default::default() }).unwrap_err(), MvccError::FutureRev);
}

#[test]
fn compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        write(&s, 1, |t| {
            t.put(b"k", b"1", 0).unwrap();
        }); // 2
        write(&s, 2, |t| {
            t.put(b"k", b"2", 0).unwrap();
        }); // 3
        write(&s, 3, |t| {
            t.put(b"other", b"x", 0).unwrap();
        }); // 4
        write(&s, 4, |t| t.compact(3).unwrap());
        assert_eq!(s.compact_rev(), 3);
        let err = range(&s, "k", "", RangeOptions { rev: 2, ..Default::default() }).unwrap_err();
        assert_eq!(err, MvccError::Compacted);
        assert_eq!(range(&s, "k", "", RangeOptions { rev: 3, ..Default::default() }).unwrap().kvs[0].value, b"2");
        let mut b = s.write_batch();
        let mut t = b.txn();
        assert_eq!(t.compact(3).unwrap_err(), MvccError::Compacted, "compacting twice");
        assert_eq!(t.compact(99).unwrap_err(), MvccError::FutureRev);
        t.end();
        b.commit(5).unwrap();
    }
    let s = open(dir.path());
    assert_eq!((s.rev(), s.compact_rev(), s.consistent_index()), (4, 3, 5));
    let kv = &range(&s, "k", "", RangeOptions::default()).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version, kv.value.as_slice()), (2, 3, 2, &b"2"[..]));
}

#[test]
fn reads_see_the_open_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut b = s.write_batch();
    let mut t = b.txn();
    t.put(b"x", b"1", 0).unwrap();
    t.end();
    // Applied but not yet committed to the backend: a reader already sees it (pending values).
    assert_eq!(range(&s, "x", "", RangeOptions::default()).unwrap().kvs[0].value, b"1");
    b.commit(1).unwrap();
    assert_eq!(range(&s, "x", "", RangeOptions::default()).unwrap().kvs[0].value, b"1");
}

#[test]
fn compaction_purges_in_batches_and_resumes_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let n = super::kvstore_compaction::BATCH_LIMIT as u64 * 2 + 10;
    {
        let s = open(dir.path());
        for i in 0..n {
            write(&s, i + 1, |t| {
                t.put(b"k", i.to_string().as_bytes(), 0).unwrap();
            });
        }
        let rev = s.rev();
        write(&s, n + 1, |t| t.compact(rev - 1).unwrap());
        s.force_commit().unwrap(); // the purge starts once the compaction is in the backend
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(s.compactor.wait_finished(rev - 1));
        let mut rows = 0;
        s.backend.for_each_kv(|_, _| rows += 1).unwrap();
        assert_eq!(rows, 2, "the kept revision and the latest one remain");
        assert_eq!(s.compactor.finished_rev(), rev - 1);
        // A second compaction whose purge is stopped before it starts: scheduled, not finished.
        s.compactor.stop();
        write(&s, n + 2, |t| t.compact(rev).unwrap());
    }
    let s = open(dir.path());
    assert_eq!(s.compact_rev(), s.rev(), "the scheduled compaction holds after a restart");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(s.compactor.wait_finished(s.rev()));
    let mut rows = 0;
    s.backend.for_each_kv(|_, _| rows += 1).unwrap();
    assert_eq!(rows, 1, "the resumed purge finished");
    assert_eq!(range(&s, "k", "", RangeOptions::default()).unwrap().kvs[0].value, (n - 1).to_string().as_bytes());
}

#[test]
fn batches_reach_the_backend_together_and_reads_never_miss_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let rows = |s: &KvStore| {
        let mut n = 0;
        s.backend.for_each_kv(|_, _| n += 1).unwrap();
        n
    };
    for i in 1..=3u64 {
        write(&s, i, |t| {
            t.put(format!("k{i}").as_bytes(), b"v", 0).unwrap();
        });
    }
    write(&s, 4, |t| {
        t.delete_range(b"k1", &[]).unwrap();
    });
    assert_eq!(rows(&s), 0, "buffered, not committed yet");
    assert_eq!(s.consistent_index(), 4);
    let buffered_hash = s.hash_kv(0).unwrap();
    assert_eq!(range(&s, "k", "l", RangeOptions::default()).unwrap().count, 2);
    s.force_commit().unwrap();
    assert_eq!(rows(&s), 4, "three puts and a tombstone");
    assert_eq!(s.hash_kv(0).unwrap(), buffered_hash, "the hash does not depend on where the rows are");
    write(&s, 5, |t| {
        t.put(b"k4", b"v", 0).unwrap();
    });
    s.commit_if_due().unwrap();
    assert_eq!(rows(&s), 4, "not due yet");
    std::thread::sleep(super::kvstore::BATCH_INTERVAL);
    s.commit_if_due().unwrap();
    assert_eq!(rows(&s), 5);
    assert_eq!(s.backend.get_meta_u64(super::backend::CONSISTENT_INDEX_KEY).unwrap(), Some(5));
}

#[test]
fn batch_limits_follow_etcds_flags() {
    use super::kvstore::{BatchLimits, BATCH_INTERVAL, BATCH_LIMIT};
    let d = BatchLimits::from_flags(0, 0);
    assert_eq!((d.interval, d.limit), (BATCH_INTERVAL, BATCH_LIMIT), "0 means etcd's default");
    let set = BatchLimits::from_flags(250, 3);
    assert_eq!((set.interval, set.limit), (std::time::Duration::from_millis(250), 3));

    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    s.batch = BatchLimits::from_flags(60_000, 3);
    for i in 1..=2u64 {
        write(&s, i, |t| {
            t.put(format!("k{i}").as_bytes(), b"v", 0).unwrap();
        });
    }
    assert_eq!(s.backend.get_meta_u64(super::backend::CONSISTENT_INDEX_KEY).unwrap(), None, "under the limit");
    write(&s, 3, |t| {
        t.put(b"k3", b"v", 0).unwrap();
    });
    assert_eq!(
        s.backend.get_meta_u64(super::backend::CONSISTENT_INDEX_KEY).unwrap(),
        Some(3),
        "the third write commits"
    );
}

/// Entries that change nothing still move the consistent index, and a commit must write it: a snapshot
/// marker at the applied index needs the backend there on restart (issue 21, bug 1).
#[test]
fn a_batch_of_no_op_entries_still_commits_its_consistent_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        write(&s, 3, |t| {
            t.put(b"k", b"v", 0).unwrap();
        });
        s.force_commit().unwrap();
        for applied in 4..=9 {
            write(&s, applied, |t| assert_eq!(t.delete_range(b"absent", b"").unwrap(), (0, 2)));
        }
        s.force_commit().unwrap();
        assert_eq!(s.backend().get_meta_u64(super::backend::CONSISTENT_INDEX_KEY).unwrap(), Some(9));
    }
    assert_eq!(open(dir.path()).consistent_index(), 9, "a reopened store resumes after the no-op entries");
}

#[test]
fn a_restore_ends_the_replaced_stores_purge() {
    // Store A: one key with many revisions, compacted, its purge under way (batches with pauses between them).
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(dir_a.path());
    let n = super::kvstore_compaction::BATCH_LIMIT as u64 * 20;
    let mut b_rows = 0;
    {
        // Store B, the snapshot: as many distinct keys, so its rows below A's compaction are all live.
        let b = open(dir_b.path());
        for i in 0..n {
            write(&b, i + 1, |t| {
                t.put(format!("b{i:06}").as_bytes(), b"v", 0).unwrap();
            });
        }
        b.force_commit().unwrap();
        b.backend.for_each_kv(|_, _| b_rows += 1).unwrap();
        for i in 0..n {
            write(&a, i + 1, |t| {
                t.put(b"a", i.to_string().as_bytes(), 0).unwrap();
            });
        }
        let rev = a.rev();
        write(&a, n + 1, |t| t.compact(rev - 1).unwrap());
        a.force_commit().unwrap(); // the purge starts
        a.restore(&b.backend.dump().unwrap()).unwrap();
    }
    // Were A's purge still running, it would delete B's rows below its compaction revision (they are not in
    // its keep set) within its 20 batches.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut rows = 0;
    a.backend.for_each_kv(|_, _| rows += 1).unwrap();
    assert_eq!(rows, b_rows, "every row of the restored store is kept");
    let res = range(&a, "b", "c", RangeOptions::default()).unwrap();
    assert_eq!(res.kvs.len() as u64, n);
    assert_eq!(a.compactor.finished_rev(), -1, "the restored store never compacted");
}

#[test]
fn a_restore_in_the_middle_of_a_purge_finishes_it() {
    // The snapshot's store had scheduled a compaction whose purge had not finished: the restored member
    // finishes it, as a restart would.
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dump = {
        let b = open(dir_b.path());
        for i in 0..100u64 {
            write(&b, i + 1, |t| {
                t.put(b"k", i.to_string().as_bytes(), 0).unwrap();
            });
        }
        b.compactor.stop(); // the purge never runs: scheduled, not finished
        let rev = b.rev();
        write(&b, 101, |t| t.compact(rev).unwrap());
        b.force_commit().unwrap();
        b.backend.dump().unwrap()
    };
    let a = open(dir_a.path());
    a.restore(&dump).unwrap();
    let rev = a.compact_rev();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let waited = rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), a.compactor.wait_finished(rev)).await
    });
    assert!(waited.is_ok(), "the restored purge finishes");
    let mut rows = 0;
    a.backend.for_each_kv(|_, _| rows += 1).unwrap();
    assert_eq!(rows, 1, "only the kept revision remains");
}
