//! Watch fan-out: synced watchers get each write's events as it commits; unsynced ones catch up from the
//! backend's history (etcd's watchableStore).
//!
//! Guarantees, and how they hold:
//! - *Ordered, never duplicated, none dropped.* Every watcher has `min_rev`, the next revision it is owed.
//!   [`WatchableStore::notify`] (the applier, after a batch commits) sends a synced watcher only revisions
//!   `>= min_rev` and advances it; [`WatchableStore::sync`] replays `[min_rev, current]` from history and
//!   then moves the watcher to the synced group with `min_rev = current + 1`. Both run under the group
//!   lock, so a revision is delivered by exactly one of them.
//! - *Atomic.* Live events go out one response per revision; history goes out in responses that end on a
//!   revision boundary.
//! - *Cheap fan-out.* A revision's events are encoded once; every watcher that takes all of them (the usual
//!   case) shares those bytes, and a stream gets one batch per revision, not one message per watcher.
//! - *Slow receivers do not stall others.* A stream with more than [`SLOW_STREAM`] responses queued stops
//!   taking live events: its watchers become unsynced at the first revision they missed and catch up later.
//! - *Compaction.* An unsynced watcher whose `min_rev` was compacted gets `canceled` with the compact revision.
//!
//! Lock order: the group lock, then the store's state lock (a [`ReadView`]). The applier calls `notify`
//! after its batch, holding no store lock.
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;

use super::kvstore::{KvStore, ReadView};
use super::revision::Revision;
use super::watcher::{encode_events, event_rev, header_at, Queued, WatchReceiver, WatchStream, Watcher};
use super::{MvccError, RangeOptions, TxnRead};
use crate::pb::etcdserverpb::{watch_create_request::FilterType, WatchCreateRequest, WatchResponse};
use crate::pb::mvccpb::{event::EventType, Event, KeyValue};

/// Revisions per history response (etcd's watchBatchMaxRevs).
const MAX_REVS_PER_RESPONSE: usize = 1000;

type WatcherKey = (u64, i64);

/// The synced watchers, indexed for matching: a single-key watcher is found from an event's key, so an event
/// costs its takers plus the range watchers, not every watcher (etcd's watcherGroup keeps the same split).
#[derive(Default)]
struct Synced {
    watchers: HashMap<WatcherKey, Watcher>,
    /// Single-key watchers by their key.
    by_key: HashMap<Vec<u8>, Vec<WatcherKey>>,
    /// Watchers on a range or from a key: checked against every event. Ordered, so a stream's watchers come
    /// one after another and their responses go out as one batch.
    ranges: BTreeSet<WatcherKey>,
}

impl Synced {
    fn insert(&mut self, k: WatcherKey, w: Watcher) {
        self.remove(&k);
        if w.end.is_empty() {
            self.by_key.entry(w.key.clone()).or_default().push(k);
        } else {
            self.ranges.insert(k);
        }
        self.watchers.insert(k, w);
    }

    fn remove(&mut self, k: &WatcherKey) -> Option<Watcher> {
        let w = self.watchers.remove(k)?;
        self.unindex(*k, &w);
        Some(w)
    }

    fn unindex(&mut self, k: WatcherKey, w: &Watcher) {
        if !w.end.is_empty() {
            self.ranges.remove(&k);
        } else if let Some(ks) = self.by_key.get_mut(&w.key) {
            ks.retain(|x| *x != k);
            if ks.is_empty() {
                self.by_key.remove(&w.key);
            }
        }
    }

    /// Every watcher, leaving the group empty.
    fn take_all(&mut self) -> HashMap<WatcherKey, Watcher> {
        self.by_key.clear();
        self.ranges.clear();
        std::mem::take(&mut self.watchers)
    }

    /// The watchers some event of `evs` may be for, each once, ordered (by stream, then watch id).
    fn candidates(&self, evs: &[Event]) -> Vec<WatcherKey> {
        let mut out: Vec<WatcherKey> = self.ranges.iter().copied().collect();
        let ranges = out.len();
        for ev in evs {
            if let Some(ks) = ev.kv.as_ref().and_then(|kv| self.by_key.get(&kv.key)) {
                out.extend_from_slice(ks);
            }
        }
        if out.len() > ranges {
            out.sort_unstable();
            out.dedup();
        }
        out
    }
}

#[derive(Default)]
struct Groups {
    synced: Synced,
    unsynced: HashMap<WatcherKey, Watcher>,
    /// Next server-chosen watch id, per stream.
    next_id: HashMap<u64, i64>,
    /// The last revision whose events went to the synced watchers (the store's revision when it opened or
    /// was replaced). A progress notification reports this, never the store's revision, which runs ahead
    /// while a batch is applied and not yet notified (etcd #15220).
    notified: i64,
    /// Streams that asked for progress while one of their watchers was catching up: answered once none is.
    progress_pending: HashMap<u64, Arc<WatchStream>>,
}

impl Groups {
    fn has(&self, k: &WatcherKey) -> bool {
        self.synced.watchers.contains_key(k) || self.unsynced.contains_key(k)
    }
}

pub struct WatchableStore {
    groups: Mutex<Groups>,
    next_stream: AtomicU64,
    /// Responses of a `fragment` watcher are split past this size (--max-request-bytes).
    pub max_response_bytes: AtomicUsize,
}

impl Default for WatchableStore {
    fn default() -> Self {
        WatchableStore {
            groups: Mutex::new(Groups::default()),
            next_stream: AtomicU64::new(1),
            max_response_bytes: AtomicUsize::new(1536 * 1024),
        }
    }
}

impl WatchableStore {
    pub fn new_stream(&self) -> (Arc<WatchStream>, WatchReceiver) {
        WatchStream::new(self.next_stream.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers a watcher and queues its `created` response (before any event of it can be queued).
    pub fn watch(&self, store: &KvStore, stream: &Arc<WatchStream>, mut req: WatchCreateRequest) {
        let mut g = self.groups.lock();
        let cur = store.rev();
        if req.key.is_empty() {
            req.key = vec![0]; // "\x00" is the smallest key (etcd)
        }
        if !req.range_end.is_empty() && req.range_end != [0] && req.key >= req.range_end {
            let resp = WatchResponse {
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: "mvcc: watcher range is empty".into(),
                ..Default::default()
            };
            stream.send(resp, cur);
            return;
        }
        let id = if req.watch_id == 0 {
            let mut id = g.next_id.get(&stream.id).copied().unwrap_or(0);
            while g.has(&(stream.id, id)) {
                id += 1;
            }
            g.next_id.insert(stream.id, id + 1);
            id
        } else {
            req.watch_id
        };
        if req.watch_id != 0 && g.has(&(stream.id, id)) {
            let resp = WatchResponse {
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream".into(),
                ..Default::default()
            };
            stream.send(resp, cur);
            return;
        }
        let start = req.start_revision;
        let min_rev = if start <= 0 { cur + 1 } else { start };
        let filters = &req.filters;
        let w = Watcher {
            id,
            stream: stream.clone(),
            key: req.key,
            end: req.range_end,
            prev_kv: req.prev_kv,
            no_put: filters.contains(&(FilterType::Noput as i32)),
            no_delete: filters.contains(&(FilterType::Nodelete as i32)),
            progress_notify: req.progress_notify,
            fragment: req.fragment,
            min_rev,
            last_progress: Instant::now(),
        };
        stream.send(WatchResponse { watch_id: id, created: true, ..Default::default() }, cur);
        if min_rev > cur {
            g.synced.insert((stream.id, id), w);
        } else {
            g.unsynced.insert((stream.id, id), w);
        }
    }

    /// Cancels a watcher; an unknown id gets no answer (etcd 3.4).
    pub fn cancel(&self, store: &KvStore, stream: &WatchStream, watch_id: i64) {
        let mut g = self.groups.lock();
        let k = (stream.id, watch_id);
        if g.synced.remove(&k).is_some() || g.unsynced.remove(&k).is_some() {
            stream.send(WatchResponse { watch_id, canceled: true, ..Default::default() }, store.rev());
            Self::send_pending_progress(&mut g);
        }
    }

    /// The stream went away: drop its watchers.
    pub fn close_stream(&self, stream_id: u64) {
        let mut g = self.groups.lock();
        let gone: Vec<WatcherKey> = g.synced.watchers.keys().filter(|k| k.0 == stream_id).copied().collect();
        for k in gone {
            g.synced.remove(&k);
        }
        g.unsynced.retain(|k, _| k.0 != stream_id);
        g.next_id.remove(&stream_id);
        g.progress_pending.remove(&stream_id);
    }

    /// A WatchProgressRequest: a header-only response (watch_id -1) at the last notified revision. etcd 3.4.23
    /// sends it at once at the store's revision, which can run ahead of events not yet sent; like later
    /// releases, a stream with a watcher still catching up gets it only once that watcher is synced.
    pub fn request_progress(&self, stream: &Arc<WatchStream>) {
        let mut g = self.groups.lock();
        if g.unsynced.keys().any(|k| k.0 == stream.id) {
            g.progress_pending.insert(stream.id, stream.clone());
            return;
        }
        stream.send(WatchResponse { watch_id: -1, ..Default::default() }, g.notified);
    }

    /// The store opened, or was replaced by a snapshot, at `rev`: nothing of it is waiting to be notified.
    pub fn reset_notified(&self, rev: i64) {
        self.groups.lock().notified = rev;
    }

    /// Sends an empty response to every synced `progress_notify` watcher not notified for `interval`.
    pub fn progress_notify(&self, interval: Duration) {
        let mut g = self.groups.lock();
        let cur = g.notified;
        let now = Instant::now();
        for w in g.synced.watchers.values_mut() {
            if w.progress_notify && now.duration_since(w.last_progress) >= interval {
                w.last_progress = now;
                w.stream.send(WatchResponse { watch_id: w.id, ..Default::default() }, cur);
            }
        }
    }

    pub fn watcher_count(&self) -> usize {
        let g = self.groups.lock();
        g.synced.watchers.len() + g.unsynced.len()
    }

    /// The events of one committed batch, one entry per write request (its revision and events), in order.
    pub fn notify(&self, store: &KvStore, revs: &[(i64, Vec<Event>)]) {
        let mut g = self.groups.lock();
        if let Some((last, _)) = revs.last() {
            // Under the lock, before any progress can be sent: the events are queued below first.
            g.notified = g.notified.max(*last);
        }
        if g.synced.watchers.is_empty() || revs.is_empty() {
            return;
        }
        let mut view: Option<ReadView<'_>> = None;
        let mut outbox = Outbox::default();
        for (rev, evs) in revs {
            let mut victims = Vec::new();
            let (mut plain, mut with_prev): (Option<Bytes>, Option<Bytes>) = (None, None);
            for k in g.synced.candidates(evs) {
                let w = g.synced.watchers.get_mut(&k).expect("indexed watchers are in the group");
                if *rev < w.min_rev {
                    continue;
                }
                let wanted = evs.iter().filter(|e| w.wants(e)).count();
                if wanted == 0 {
                    continue;
                }
                if w.stream.is_slow_with(outbox.pending_on(w.stream.id)) {
                    w.min_rev = *rev;
                    victims.push(k);
                    continue;
                }
                w.min_rev = rev + 1;
                if w.prev_kv && view.is_none() {
                    view = store.read().ok();
                }
                if wanted < evs.len() || (w.fragment && evs.len() > 1) {
                    let mut mine: Vec<Event> = evs.iter().filter(|e| w.wants(e)).cloned().collect();
                    if let (true, Some(v)) = (w.prev_kv, &view) {
                        fill_prev_kvs(v, &mut mine);
                    }
                    for q in self.responses(w, mine, *rev) {
                        outbox.push(&w.stream, q);
                    }
                    continue;
                }
                // The watcher takes every event of the revision: the bytes encoded once for all such watchers.
                let body = if w.prev_kv {
                    with_prev.get_or_insert_with(|| {
                        let mut evs = evs.clone();
                        if let Some(v) = &view {
                            fill_prev_kvs(v, &mut evs);
                        }
                        encode_events(&evs)
                    })
                } else {
                    plain.get_or_insert_with(|| encode_events(evs))
                };
                let q = Queued { header: header_at(*rev), watch_id: w.id, body: body.clone() };
                outbox.push(&w.stream, q);
            }
            outbox.send();
            for k in victims {
                if let Some(w) = g.synced.remove(&k) {
                    g.unsynced.insert(k, w);
                }
            }
        }
    }

    /// Every watcher catches up from history (the store was replaced by a snapshot).
    pub fn unsync_all(&self) {
        let mut g = self.groups.lock();
        let synced = g.synced.take_all();
        g.unsynced.extend(synced);
    }

    /// Catches unsynced watchers up from history; returns whether any remain unsynced. Streams that asked for
    /// progress get it once none of their watchers is left unsynced (caught up, canceled or compacted).
    pub fn sync(&self, store: &KvStore) -> Result<bool, MvccError> {
        let mut g = self.groups.lock();
        let r = self.sync_locked(&mut g, store);
        Self::send_pending_progress(&mut g);
        r
    }

    fn sync_locked(&self, g: &mut Groups, store: &KvStore) -> Result<bool, MvccError> {
        if g.unsynced.is_empty() {
            return Ok(false);
        }
        let view = store.read()?;
        let cur = view.rev();
        let compact = view.first_rev();
        let compacted: Vec<WatcherKey> =
            g.unsynced.iter().filter(|(_, w)| w.min_rev < compact).map(|(k, _)| *k).collect();
        for k in compacted {
            let w = g.unsynced.remove(&k).expect("present");
            let resp =
                WatchResponse { watch_id: w.id, canceled: true, compact_revision: compact, ..Default::default() };
            w.stream.send(resp, 0); // etcd's cancellation carries no revision
        }
        // Decide once which watchers catch up now: a stream drains concurrently, and a watcher left out of
        // `min` but taken in the loop would skip the revisions between its min_rev and `min`.
        let ready: Vec<WatcherKey> = g.unsynced.iter().filter(|(_, w)| !w.stream.is_slow()).map(|(k, _)| *k).collect();
        let Some(min) = ready.iter().map(|k| g.unsynced[k].min_rev).min() else {
            return Ok(!g.unsynced.is_empty());
        };
        let history = if min <= cur { history(&view, min)? } else { Vec::new() };
        let mut done = Vec::new();
        for k in ready {
            let w = g.unsynced.get_mut(&k).expect("present");
            let mut batch: Vec<Event> = Vec::new();
            let mut revs_in_batch = 0;
            let mut last_rev = 0;
            for ev in history.iter().filter(|e| event_rev(e) >= w.min_rev && w.wants(e)) {
                let r = event_rev(ev);
                if r != last_rev {
                    if revs_in_batch == MAX_REVS_PER_RESPONSE {
                        self.flush_history(&view, w, std::mem::take(&mut batch), cur);
                        revs_in_batch = 0;
                    }
                    revs_in_batch += 1;
                    last_rev = r;
                }
                batch.push(ev.clone());
            }
            if !batch.is_empty() {
                self.flush_history(&view, w, batch, cur);
            }
            w.min_rev = cur + 1;
            done.push(k);
        }
        drop(view);
        for k in done {
            if let Some(w) = g.unsynced.remove(&k) {
                g.synced.insert(k, w);
            }
        }
        Ok(!g.unsynced.is_empty())
    }

    /// Answers the progress requests of streams none of whose watchers is unsynced any more.
    fn send_pending_progress(g: &mut Groups) {
        if g.progress_pending.is_empty() {
            return;
        }
        let ready: Vec<u64> =
            g.progress_pending.keys().copied().filter(|id| !g.unsynced.keys().any(|k| k.0 == *id)).collect();
        for id in ready {
            if let Some(stream) = g.progress_pending.remove(&id) {
                stream.send(WatchResponse { watch_id: -1, ..Default::default() }, g.notified);
            }
        }
    }

    fn flush_history(&self, view: &ReadView<'_>, w: &Watcher, mut evs: Vec<Event>, cur: i64) {
        if w.prev_kv {
            fill_prev_kvs(view, &mut evs);
        }
        w.stream.send_batch(self.responses(w, evs, cur));
    }

    /// The responses carrying `evs` under `revision`: one, or fragments when the watcher asked for them and
    /// the response would pass the limit (etcd's sendFragments: fill a part until it reaches the limit, then
    /// send it without the event that made it too big; every part but the last is marked `fragment`).
    fn responses(&self, w: &Watcher, evs: Vec<Event>, revision: i64) -> Vec<Queued> {
        let limit = self.max_response_bytes.load(Ordering::Relaxed);
        let whole = WatchResponse { watch_id: w.id, events: evs, ..Default::default() };
        if !w.fragment || whole.events.len() < 2 || whole.encoded_len() < limit {
            return vec![Queued::new(whole, revision)];
        }
        let mut out = Vec::new();
        let mut rest = whole.events.into_iter().peekable();
        while rest.peek().is_some() {
            let mut part = WatchResponse { watch_id: w.id, fragment: true, ..Default::default() };
            while let Some(ev) = rest.peek() {
                part.events.push(ev.clone());
                if part.events.len() > 1 && part.encoded_len() >= limit {
                    part.events.pop();
                    break;
                }
                rest.next();
            }
            part.fragment = rest.peek().is_some();
            out.push(Queued::new(part, revision));
        }
        out
    }
}

/// One revision's responses, batched per stream in the order they were made. A revision's candidates come
/// ordered by stream, so a stream has one batch, and what it has queued plus that batch is what counts
/// against [`super::watcher::SLOW_STREAM`].
#[derive(Default)]
struct Outbox {
    batches: Vec<(Arc<WatchStream>, Vec<Queued>)>,
}

impl Outbox {
    /// Responses waiting here for `stream_id`.
    fn pending_on(&self, stream_id: u64) -> usize {
        match self.batches.last() {
            Some((s, b)) if s.id == stream_id => b.len(),
            _ => 0,
        }
    }

    fn push(&mut self, stream: &Arc<WatchStream>, q: Queued) {
        match self.batches.last_mut() {
            Some((s, b)) if s.id == stream.id => b.push(q),
            _ => self.batches.push((stream.clone(), vec![q])),
        }
    }

    fn send(&mut self) {
        for (stream, batch) in self.batches.drain(..) {
            stream.send_batch(batch);
        }
    }
}

/// The value each event's key had just before it (absent when that version was compacted or never existed).
fn fill_prev_kvs(view: &ReadView<'_>, evs: &mut [Event]) {
    for ev in evs {
        let Some(kv) = &ev.kv else { continue };
        let opts = RangeOptions { rev: kv.mod_revision - 1, ..Default::default() };
        if let Ok(rr) = view.range(&kv.key, &[], opts) {
            ev.prev_kv = rr.kvs.into_iter().next();
        }
    }
}

/// Every event at revisions `>= min` in the view, in revision order (committed rows and the open batch's).
fn history(view: &ReadView<'_>, min: i64) -> Result<Vec<Event>, MvccError> {
    let mut rows: Vec<(Revision, bool, Vec<u8>)> = Vec::new();
    view.for_each_row(Revision::new(min, 0), |rev, tomb, v| rows.push((rev, tomb, v.to_vec())))?;
    let mut out = Vec::with_capacity(rows.len());
    for (rev, tomb, bytes) in rows {
        if rev.main > view.rev() {
            break;
        }
        let mut kv = KeyValue::decode(bytes.as_slice()).map_err(|e| MvccError::Backend(e.to_string()))?;
        let t = if tomb {
            kv = KeyValue { key: kv.key, mod_revision: rev.main, ..Default::default() };
            EventType::Delete
        } else {
            EventType::Put
        };
        out.push(Event { r#type: t as i32, kv: Some(kv), prev_kv: None });
    }
    Ok(out)
}
