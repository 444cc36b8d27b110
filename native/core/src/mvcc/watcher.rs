//! One watcher and the stream it answers on (etcd's watcher and watchStream), and a stream's queue of
//! responses, kept encoded: an event sent to many watchers is encoded once and shared by their responses.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;
use tokio::sync::mpsc;

use crate::pb::etcdserverpb::{ResponseHeader, WatchResponse};
use crate::pb::mvccpb::{event::EventType, Event, KeyValue};

/// A WatchResponse waiting on a stream: its header (the store fills `revision`, the edge the ids), its
/// watch id, and every later field already encoded (`created` ... `events`). Encodes as the WatchResponse
/// it stands for, so the gRPC edge writes it without building one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Queued {
    pub header: ResponseHeader,
    pub watch_id: i64,
    pub body: Bytes,
}

/// WatchResponse's field numbers (rpc.proto): the two a [`Queued`] encodes itself, and its events.
const HEADER_FIELD: u32 = 1;
const WATCH_ID_FIELD: u32 = 2;
const EVENTS_FIELD: u32 = 11;

impl Queued {
    /// Encodes `resp` under `revision`.
    pub fn new(mut resp: WatchResponse, revision: i64) -> Queued {
        let watch_id = std::mem::take(&mut resp.watch_id);
        resp.header = None;
        Queued { header: header_at(revision), watch_id, body: resp.encode_to_vec().into() }
    }

    /// The response it stands for (the JSON gateway and in-process watches read these).
    pub fn to_response(&self) -> WatchResponse {
        let mut resp = WatchResponse::decode(self.body.clone()).unwrap_or_default();
        resp.header = Some(self.header);
        resp.watch_id = self.watch_id;
        resp
    }
}

/// A header carrying only `revision` (the edge fills in the ids).
pub fn header_at(revision: i64) -> ResponseHeader {
    ResponseHeader { revision, ..Default::default() }
}

/// The `events` field of a WatchResponse holding `evs`, encoded.
pub fn encode_events(evs: &[Event]) -> Bytes {
    let len: usize = evs.iter().map(|e| prost::encoding::message::encoded_len(EVENTS_FIELD, e)).sum();
    let mut buf = BytesMut::with_capacity(len);
    for e in evs {
        prost::encoding::message::encode(EVENTS_FIELD, e, &mut buf);
    }
    buf.freeze()
}

impl Message for Queued {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_key(HEADER_FIELD, WireType::LengthDelimited, buf);
        encode_varint(self.header.encoded_len() as u64, buf);
        self.header.encode_raw(buf);
        if self.watch_id != 0 {
            prost::encoding::int64::encode(WATCH_ID_FIELD, &self.watch_id, buf);
        }
        buf.put_slice(&self.body);
    }

    /// Only ever encoded: a decoder skips every field.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        let h = self.header.encoded_len();
        let id =
            if self.watch_id != 0 { prost::encoding::int64::encoded_len(WATCH_ID_FIELD, &self.watch_id) } else { 0 };
        1 + encoded_len_varint(h as u64) + h + id + self.body.len()
    }

    fn clear(&mut self) {
        *self = Queued::default();
    }
}

/// A stream's queue, shared by its watchers; responses go in as batches (all of one revision for the
/// stream at once). Unbounded, so registering and cancelling never block; the notifier reads `queued` and
/// treats a stream past [`SLOW_STREAM`] as slow, moving its watchers to the unsynced group (they catch up
/// from history later) instead of queueing more.
pub struct WatchStream {
    pub id: u64,
    tx: mpsc::UnboundedSender<Vec<Queued>>,
    queued: AtomicUsize,
}

/// Responses waiting on one stream beyond which its watchers stop taking live events (etcd's chanBufLen).
pub const SLOW_STREAM: usize = 128;

impl WatchStream {
    pub fn new(id: u64) -> (Arc<WatchStream>, WatchReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = Arc::new(WatchStream { id, tx, queued: AtomicUsize::new(0) });
        (stream.clone(), WatchReceiver { stream, rx, batch: VecDeque::new() })
    }

    /// Queues a response whose header carries only `revision` (the edge fills in the ids).
    pub fn send(&self, resp: WatchResponse, revision: i64) -> bool {
        self.send_batch(vec![Queued::new(resp, revision)])
    }

    /// Queues responses in order.
    pub fn send_batch(&self, batch: Vec<Queued>) -> bool {
        let n = batch.len();
        self.queued.fetch_add(n, Ordering::AcqRel);
        if self.tx.send(batch).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Whether the receiving side is gone (the client left).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub fn is_slow(&self) -> bool {
        self.is_slow_with(0)
    }

    /// Slow, counting `pending` responses about to be queued as queued.
    pub fn is_slow_with(&self, pending: usize) -> bool {
        self.queued.load(Ordering::Acquire) + pending >= SLOW_STREAM
    }
}

/// The reading end of a stream's queue: one response at a time, in order.
pub struct WatchReceiver {
    pub stream: Arc<WatchStream>,
    rx: mpsc::UnboundedReceiver<Vec<Queued>>,
    batch: VecDeque<Queued>,
}

impl WatchReceiver {
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Queued>> {
        loop {
            if let Some(q) = self.batch.pop_front() {
                self.stream.queued.fetch_sub(1, Ordering::AcqRel);
                return Poll::Ready(Some(q));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(b)) => self.batch = b.into(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    pub async fn next(&mut self) -> Option<Queued> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The next response if one is queued now.
    pub fn try_next(&mut self) -> Option<Queued> {
        if self.batch.is_empty() {
            self.batch = self.rx.try_recv().ok()?.into();
        }
        let q = self.batch.pop_front()?;
        self.stream.queued.fetch_sub(1, Ordering::AcqRel);
        Some(q)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str, rev: i64) -> Event {
        let kv =
            KeyValue { key: key.into(), value: b"v".to_vec(), mod_revision: rev, version: 1, ..Default::default() };
        Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None }
    }

    #[test]
    fn queued_encodes_as_the_response_it_stands_for() {
        let header = ResponseHeader { cluster_id: 7, member_id: 8, revision: 9, raft_term: 2 };
        let evs = vec![event("a", 9), event("b", 9)];
        let full = WatchResponse { header: Some(header), watch_id: 3, events: evs.clone(), ..Default::default() };
        // Shared events: the same bytes prost writes for the whole response.
        let shared = Queued { header, watch_id: 3, body: encode_events(&evs) };
        assert_eq!(shared.encode_to_vec(), full.encode_to_vec());
        assert_eq!(shared.encoded_len(), full.encoded_len());
        // Any response, through Queued::new and back.
        let odd = WatchResponse { watch_id: 0, canceled: true, compact_revision: 5, ..Default::default() };
        let mut q = Queued::new(odd.clone(), 9);
        q.header = header;
        let back = WatchResponse::decode(q.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, WatchResponse { header: Some(header), ..odd });
        assert_eq!(q.to_response(), back);
    }
}
