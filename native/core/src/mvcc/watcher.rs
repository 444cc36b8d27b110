//! One watcher and the stream it answers on (etcd's watcher and watchStream).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::pb::etcdserverpb::{ResponseHeader, WatchResponse};
use crate::pb::mvccpb::{event::EventType, Event, KeyValue};

/// A stream's queue, shared by its watchers. Unbounded, so registering and cancelling never block; the
/// notifier reads `queued` and treats a stream past [`SLOW_STREAM`] as slow, moving its watchers to the
/// unsynced group (they catch up from history later) instead of queueing more.
pub struct WatchStream {
    pub id: u64,
    tx: mpsc::UnboundedSender<WatchResponse>,
    queued: AtomicUsize,
}

/// Responses waiting on one stream beyond which its watchers stop taking live events (etcd's chanBufLen).
pub const SLOW_STREAM: usize = 128;

impl WatchStream {
    pub fn new(id: u64) -> (Arc<WatchStream>, mpsc::UnboundedReceiver<WatchResponse>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(WatchStream { id, tx, queued: AtomicUsize::new(0) }), rx)
    }

    /// Queues a response whose header carries only `revision` (the edge fills in the ids).
    pub fn send(&self, mut resp: WatchResponse, revision: i64) -> bool {
        resp.header = Some(ResponseHeader { revision, ..Default::default() });
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(resp).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// The edge took one response off the queue.
    pub fn taken(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn is_slow(&self) -> bool {
        self.queued.load(Ordering::Acquire) >= SLOW_STREAM
    }
}

pub struct Watcher {
    pub id: i64,
    pub stream: Arc<WatchStream>,
    pub key: Vec<u8>,
    /// Empty: `key` alone; `[0]`: every key >= `key`; otherwise `[key, end)`.
    pub end: Vec<u8>,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
    pub progress_notify: bool,
    pub fragment: bool,
    /// The next revision this watcher must be sent; events below it were delivered (or predate it).
    pub min_rev: i64,
    pub last_progress: Instant,
}

impl Watcher {
    pub fn matches_key(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            return k == self.key.as_slice();
        }
        if k < self.key.as_slice() {
            return false;
        }
        self.end == [0] || k < self.end.as_slice()
    }

    /// Whether the watcher wants `ev` (its key and its filters).
    pub fn wants(&self, ev: &Event) -> bool {
        let is_put = ev.r#type == EventType::Put as i32;
        if (is_put && self.no_put) || (!is_put && self.no_delete) {
            return false;
        }
        ev.kv.as_ref().is_some_and(|kv| self.matches_key(&kv.key))
    }
}

/// The events of one write request, from the changes it made (a tombstone has version 0).
pub fn events_of(changes: Vec<KeyValue>) -> Vec<Event> {
    changes
        .into_iter()
        .map(|kv| {
            let t = if kv.version == 0 { EventType::Delete } else { EventType::Put };
            Event { r#type: t as i32, kv: Some(kv), prev_kv: None }
        })
        .collect()
}

/// The main revision of an event.
pub fn event_rev(ev: &Event) -> i64 {
    ev.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}
