//! Drivers for the micro-benchmarks in `bench/micro`: each sets one native piece up once (a WAL, a revision
//! index, a filled backend, a set of watchers) and exposes the one operation a benchmark times. The server
//! never uses this module; the binding wraps it as `_native.Micro*` so pytest-benchmark can drive it.
use std::path::Path;
use std::sync::Arc;

use crate::mvcc::index::TreeIndex;
use crate::mvcc::kvstore::KvStore;
use crate::mvcc::kvstore_txn::{RangeOptions, TxnRead};
use crate::mvcc::revision::Revision;
use crate::mvcc::watcher::{WatchReceiver, WatchStream};
use crate::pb::etcdserverpb::WatchCreateRequest;
use crate::pb::mvccpb::{event::EventType, Event, KeyValue};
use crate::v3rpc::prefix_end;
use crate::wal::{Wal, WalOptions};

/// Key `i` of a benchmark's key set: `prefix` and `i` zero-padded to `width` digits, so key order is `i` order.
pub fn key(prefix: &str, i: usize, width: usize) -> Vec<u8> {
    format!("{prefix}{i:0width$}").into_bytes()
}

/// Appends batches of equal entries to a new WAL, each batch made durable (fdatasync) as the Ready loop does.
pub struct WalBench {
    wal: Wal,
    payload: Vec<u8>,
}

impl WalBench {
    pub fn new(dir: &Path, entry_size: usize, fsync: bool) -> Result<WalBench, String> {
        let opts = WalOptions { fsync, ..Default::default() };
        let wal = Wal::create(dir, b"micro", opts).map_err(|e| e.to_string())?;
        Ok(WalBench { wal, payload: vec![b'x'; entry_size] })
    }

    /// Appends `batch` entries and syncs them; returns the last index written.
    pub fn save(&mut self, batch: usize) -> Result<u64, String> {
        let first = self.wal.last_index() + 1;
        let entries: Vec<(u64, &[u8])> = (0..batch as u64).map(|i| (first + i, self.payload.as_slice())).collect();
        self.wal.save(None, &entries).map_err(|e| e.to_string())?;
        Ok(self.wal.last_index())
    }
}

/// A revision index holding `keys` keys, each put once.
pub struct IndexBench {
    index: TreeIndex,
    keys: Vec<Vec<u8>>,
    rev: i64,
    next: usize,
}

impl IndexBench {
    pub fn new(keys: usize, key_size: usize) -> IndexBench {
        let keys: Vec<Vec<u8>> = (0..keys).map(|i| key("", i, key_size)).collect();
        let mut index = TreeIndex::new();
        for (i, k) in keys.iter().enumerate() {
            index.put(k, Revision::new(i as i64 + 2, 0));
        }
        let rev = keys.len() as i64 + 1;
        IndexBench { index, keys, rev, next: 0 }
    }

    /// Puts the next `count` keys of the set (round robin, so existing keys) at new revisions, one each.
    pub fn put(&mut self, count: usize) {
        for _ in 0..count {
            self.rev += 1;
            self.index.put(&self.keys[self.next], Revision::new(self.rev, 0));
            self.next = (self.next + 1) % self.keys.len();
        }
    }

    /// The revisions a Range of keys `start..start + span` sees now, the first `limit` of them (0: all);
    /// returns how many keys the range holds.
    pub fn range(&self, start: usize, span: usize, limit: usize) -> usize {
        let end = start.saturating_add(span).min(self.keys.len());
        let width = self.keys.first().map_or(1, Vec::len);
        let (_, count) = self.index.revisions(&self.keys[start], &key("", end, width), self.rev, limit);
        count
    }
}

/// A store whose backend holds `keys` committed keys with `value_size`-byte values.
pub struct RangeBench {
    store: KvStore,
}

const RANGE_PREFIX: &str = "/micro/";
/// Digits in the index part of the range and watch benchmarks' keys.
const WIDTH: usize = 8;

impl RangeBench {
    pub fn new(dir: &Path, keys: usize, value_size: usize) -> Result<RangeBench, String> {
        let store = KvStore::open(dir).map_err(|e| e.to_string())?;
        let value = vec![b'v'; value_size];
        for (n, first) in (0..keys).step_by(1000).enumerate() {
            let mut batch = store.write_batch();
            for i in first..(first + 1000).min(keys) {
                let mut txn = batch.txn();
                txn.put(&key(RANGE_PREFIX, i, WIDTH), &value, 0).map_err(|e| e.to_string())?;
                txn.end();
            }
            batch.commit(n as u64 + 1).map_err(|e| e.to_string())?;
        }
        store.force_commit().map_err(|e| e.to_string())?;
        Ok(RangeBench { store })
    }

    /// A serializable Range of the `count` keys from key `start`, values read from the backend; returns the
    /// number of KeyValues.
    pub fn range(&self, start: usize, count: usize) -> Result<usize, String> {
        let view = self.store.read().map_err(|e| e.to_string())?;
        let (from, end) = (key(RANGE_PREFIX, start, WIDTH), key(RANGE_PREFIX, start + count, WIDTH));
        let res = view.range(&from, &end, RangeOptions::default()).map_err(|e| e.to_string())?;
        Ok(res.kvs.len())
    }
}

/// `watchers` synced watchers over `streams` streams: each on its own key, or all on one prefix.
pub struct WatchBench {
    store: KvStore,
    streams: Vec<(Arc<WatchStream>, WatchReceiver)>,
    keys: usize,
    rev: i64,
}

const WATCH_PREFIX: &str = "/w/";

impl WatchBench {
    pub fn new(dir: &Path, watchers: usize, streams: usize, prefix: bool) -> Result<WatchBench, String> {
        let store = KvStore::open(dir).map_err(|e| e.to_string())?;
        let streams: Vec<_> = (0..streams.max(1)).map(|_| store.watchable.new_stream()).collect();
        for i in 0..watchers {
            let (key, range_end) = if prefix {
                (WATCH_PREFIX.as_bytes().to_vec(), prefix_end(WATCH_PREFIX.as_bytes()))
            } else {
                (key(WATCH_PREFIX, i, WIDTH), Vec::new())
            };
            let req = WatchCreateRequest { key, range_end, ..Default::default() };
            store.watchable.watch(&store, &streams[i % streams.len()].0, req);
        }
        let mut bench = WatchBench { store, streams, keys: watchers.max(1), rev: 1 };
        bench.drain(); // the `created` responses
        Ok(bench)
    }

    /// Hands the watchers `events` revisions of one put each (on keys round robin over the watched ones),
    /// then takes every response off the streams; returns how many responses were delivered.
    pub fn notify(&mut self, events: usize) -> usize {
        let revs: Vec<(i64, Vec<Event>)> = (0..events)
            .map(|i| {
                self.rev += 1;
                let kv = KeyValue {
                    key: key(WATCH_PREFIX, i % self.keys, WIDTH),
                    mod_revision: self.rev,
                    create_revision: self.rev,
                    version: 1,
                    value: b"v".to_vec(),
                    lease: 0,
                };
                (self.rev, vec![Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None }])
            })
            .collect();
        self.store.watchable.notify(&self.store, &revs);
        self.drain()
    }

    fn drain(&mut self) -> usize {
        let mut n = 0;
        for (_, rx) in &mut self.streams {
            while rx.try_next().is_some() {
                n += 1;
            }
        }
        n
    }
}
