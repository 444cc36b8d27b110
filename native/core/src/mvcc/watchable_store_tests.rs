//! Watch fan-out cases: live delivery per revision, history catch-up without duplicates, slow streams,
//! compaction, filters and prev_kv.
use super::watcher::{events_of, WatchReceiver, SLOW_STREAM};
use super::*;
use crate::pb::etcdserverpb::{watch_create_request::FilterType, WatchCreateRequest};
use crate::pb::mvccpb::event::EventType;

/// Applies one write request (puts of `kvs`, or a delete when the value is None) and notifies watchers.
fn write(s: &KvStore, ops: &[(&str, Option<&str>)]) -> i64 {
    let (rev, events) = apply(s, ops);
    s.watchable.notify(s, &[(rev, events)]);
    rev
}

/// Applies one write request without notifying: its revision and events.
fn apply(s: &KvStore, ops: &[(&str, Option<&str>)]) -> (i64, Vec<crate::pb::mvccpb::Event>) {
    let mut b = s.write_batch();
    let mut t = b.txn();
    for (k, v) in ops {
        match v {
            Some(v) => {
                t.put(k.as_bytes(), v.as_bytes(), 0).unwrap();
            }
            None => {
                t.delete_range(k.as_bytes(), &[]).unwrap();
            }
        }
    }
    let rev = TxnRead::rev(&t);
    let changes = t.end();
    b.commit(rev as u64).unwrap();
    (rev, events_of(changes))
}

fn create(key: &str, end: &str, start: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
        start_revision: start,
        ..Default::default()
    }
}

/// Drains the queue into one line per response: `id rev [created] [canceled c=N] K=V@rev ...`.
fn drain(rx: &mut WatchReceiver) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(q) = rx.try_next() {
        let r = q.to_response();
        let mut line = format!("{} {}", r.watch_id, r.header.map_or(0, |h| h.revision));
        if r.created {
            line += " created";
        }
        if r.canceled {
            line += &format!(" canceled c={}", r.compact_revision);
        }
        for e in r.events {
            let kv = e.kv.unwrap();
            let k = String::from_utf8_lossy(&kv.key);
            if e.r#type == EventType::Delete as i32 {
                line += &format!(" del:{k}@{}", kv.mod_revision);
            } else {
                line += &format!(" {k}={}@{}", String::from_utf8_lossy(&kv.value), kv.mod_revision);
            }
            if let Some(p) = e.prev_kv {
                line += &format!("(prev {})", String::from_utf8_lossy(&p.value));
            }
        }
        out.push(line);
    }
    out
}

#[test]
fn live_events_one_response_per_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::open(dir.path()).unwrap();
    let (ws, mut rx) = s.watchable.new_stream();
    s.watchable.watch(&s, &ws, create("a", "b", 0));
    write(&s, &[("a1", Some("x")), ("zz", Some("no")), ("a2", Some("y"))]);
    write(&s, &[("c", Some("no"))]);
    write(&s, &[("a1", None)]);
    assert_eq!(drain(&mut rx), ["0 1 created", "0 2 a1=x@2 a2=y@2", "0 4 del:a1@4"]);
}

#[test]
fn history_then_live_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::open(dir.path()).unwrap();
    write(&s, &[("k", Some("1"))]);
    write(&s, &[("k", Some("2"))]);
    let (ws, mut rx) = s.watchable.new_stream();
    s.watchable.watch(&s, &ws, create("k", "", 2));
    // Live writes before the catch-up: the unsynced watcher gets them from history, once.
    write(&s, &[("k", Some("3"))]);
    assert!(!s.watchable.sync(&s).unwrap());
    write(&s, &[("k", Some("4"))]);
    assert_eq!(drain(&mut rx), ["0 3 created", "0 4 k=1@2 k=2@3 k=3@4", "0 5 k=4@5"]);
}

#[test]
fn slow_stream_catches_up_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::open(dir.path()).unwrap();
    let (ws, mut rx) = s.watchable.new_stream();
    s.watchable.watch(&s, &ws, create("k", "", 0));
    let n = SLOW_STREAM as i64 + 10;
    for i in 0..n {
        write(&s, &[("k", Some(&i.to_string()))]);
    }
    let mut seen = drain(&mut rx);
    assert_eq!(seen.len(), SLOW_STREAM, "the stream stopped taking live events when it was full");
    s.watchable.sync(&s).unwrap();
    seen.extend(drain(&mut rx));
    let revs: Vec<i64> = seen
        .iter()
        .skip(1)
        .flat_map(|l| l.split(' ').skip(2).map(|e| e.rsplit('@').next().unwrap().parse::<i64>().unwrap()))
        .collect();
    assert_eq!(revs, (2..=n + 1).collect::<Vec<_>>(), "every revision once, in order");
}

#[test]
fn one_notification_queues_no_more_than_a_slow_stream_takes() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::open(dir.path()).unwrap();
    let (ws, mut rx) = s.watchable.new_stream();
    s.watchable.watch(&s, &ws, create("k", "", 0));
    s.watchable.watch(&s, &ws, create("k", "", 0));
    drain(&mut rx);
    // One committed batch of n revisions, two watchers on one stream: 2n responses would be due.
    let n = SLOW_STREAM as i64;
    let batch: Vec<_> = (0..n).map(|i| apply(&s, &[("k", Some(&i.to_string()))])).collect();
    s.watchable.notify(&s, &batch);
    let mut seen = drain(&mut rx);
    assert_eq!(seen.len(), SLOW_STREAM, "queued up to the limit within the batch");
    s.watchable.sync(&s).unwrap();
    seen.extend(drain(&mut rx));
    for id in ["0", "1"] {
        let revs: Vec<i64> = seen
            .iter()
            .filter(|l| l.split(' ').next() == Some(id))
            .flat_map(|l| l.split(' ').skip(2).map(|e| e.rsplit('@').next().unwrap().parse::<i64>().unwrap()))
            .collect();
        assert_eq!(revs, (2..=n + 1).collect::<Vec<_>>(), "watcher {id}: every revision once, in order");
    }
}

#[test]
fn compacted_start_is_canceled_after_created() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::open(dir.path()).unwrap();
    write(&s, &[("k", Some("1"))]);
    write(&s, &[("k", Some("2"))]);
    let mut b = s.write_batch();
    let mut t = b.txn();
    t.compact(3).unwrap();
    t.end();
    b.commit(3).unwrap();
    let (ws, mut rx) = s.watchable.new_stream();
    s.watchable.watch(&s, &ws, create("k", "", 2));
    s.watchable.sync(&s).unwrap();
    assert_eq!(drain(&mut rx), ["0 3 created", "0 0 canceled c=3"]);
    assert_eq!(s.watchable.watcher_count(), 0);
}

#[test]
fn filters_prev_kv_ids_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::open(dir.path()).unwrap();
    let (ws, mut rx) = s.watchable.new_stream();
    let mut c = create("k", "", 0);
    c.prev_kv = true;
    c.filters = vec![FilterType::Nodelete as i32];
    c.watch_id = 7;
    s.watchable.watch(&s, &ws, c.clone());
    s.watchable.watch(&s, &ws, c); // the same id again
    s.watchable.watch(&s, &ws, create("k", "", 0)); // server-chosen: 0
    write(&s, &[("k", Some("1"))]);
    write(&s, &[("k", Some("2"))]);
    write(&s, &[("k", None)]);
    s.watchable.cancel(&s, &ws, 7);
    s.watchable.cancel(&s, &ws, 99); // unknown: no answer
    let lines = drain(&mut rx);
    // Watchers of one stream are notified in no fixed order; each one's own sequence is fixed.
    let of = |id: &str| lines.iter().filter(|l| l.starts_with(&format!("{id} "))).cloned().collect::<Vec<_>>();
    assert_eq!(of("7"), ["7 1 created", "7 2 k=1@2", "7 3 k=2@3(prev 1)", "7 4 canceled c=0"].map(String::from));
    assert_eq!(of("-1"), ["-1 1 created canceled c=0"].map(String::from));
    assert_eq!(of("0"), ["0 1 created", "0 2 k=1@2", "0 3 k=2@3", "0 4 del:k@4"].map(String::from));
    assert_eq!(lines.len(), 9);
}

#[test]
fn key_and_range_watchers_get_only_their_events_and_cancel_unindexes() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::open(dir.path()).unwrap();
    let (ws, mut rx) = s.watchable.new_stream();
    s.watchable.watch(&s, &ws, create("a", "", 0)); // id 0: key a
    s.watchable.watch(&s, &ws, create("a", "", 0)); // id 1: key a again
    s.watchable.watch(&s, &ws, create("b", "", 0)); // id 2: key b
    s.watchable.watch(&s, &ws, create("c", "e", 0)); // id 3: [c, e)
    write(&s, &[("a", Some("1")), ("d", Some("2"))]);
    write(&s, &[("b", Some("3")), ("bb", Some("no"))]);
    s.watchable.cancel(&s, &ws, 1);
    write(&s, &[("a", Some("4"))]);
    s.watchable.close_stream(ws.id);
    write(&s, &[("a", Some("5"))]);
    // Watchers of one revision are served in no particular order; each gets its own events, once.
    let mut got = drain(&mut rx);
    got.sort();
    let mut want = [
        "0 1 created",
        "1 1 created",
        "2 1 created",
        "3 1 created",
        "0 2 a=1@2",
        "1 2 a=1@2",
        "3 2 d=2@2",
        "2 3 b=3@3",
        "1 3 canceled c=0",
        "0 4 a=4@4",
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(s.watchable.watcher_count(), 0);
}

/// etcd #15220: a progress notification at R promises every event at or before R was sent. A revision whose
/// events are applied but not yet handed to the watchers (the batch commits first) must not be reported,
/// and a stream with a watcher still catching up gets its progress only once that watcher is synced.
#[test]
fn progress_never_runs_ahead_of_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::open(dir.path()).unwrap();
    let (stream, mut rx) = s.watchable.new_stream();
    s.watchable.watch(&s, &stream, create("k", "", 0));
    write(&s, &[("k", Some("1"))]);
    let (rev, events) = apply(&s, &[("k", Some("2"))]);
    s.watchable.request_progress(&stream);
    s.watchable.notify(&s, &[(rev, events)]);
    assert_eq!(drain(&mut rx), ["0 1 created", "0 2 k=1@2", "-1 2", "0 3 k=2@3"]);

    // A second watcher from revision 1 is unsynced: the stream's progress waits for its catch-up.
    s.watchable.watch(&s, &stream, create("k", "", 1));
    s.watchable.request_progress(&stream);
    assert_eq!(drain(&mut rx), ["1 3 created"]);
    s.watchable.sync(&s).unwrap();
    assert_eq!(drain(&mut rx), ["1 3 k=1@2 k=2@3", "-1 3"]);
}

/// A progress request held for a catching-up watcher is answered when that watcher goes another way than
/// syncing: cancelled by the client, or cancelled as compacted.
#[test]
fn held_progress_is_answered_when_the_unsynced_watcher_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::open(dir.path()).unwrap();
    write(&s, &[("k", Some("1"))]);
    let (stream, mut rx) = s.watchable.new_stream();
    s.watchable.watch(&s, &stream, create("k", "", 1));
    s.watchable.request_progress(&stream);
    assert_eq!(drain(&mut rx), ["0 2 created"]);
    s.watchable.cancel(&s, &stream, 0);
    assert_eq!(drain(&mut rx), ["0 2 canceled c=0", "-1 2"]);
}
