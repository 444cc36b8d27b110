//! The v2 keys store on a member (etcd's applierV2 and its v2 request path): v2 writes and quorum reads
//! go through raft as `InternalRaftRequest.v2`; applying one changes the in-memory tree and, in the same
//! backend batch, the records that persist it ([`crate::v2store::persist`]), so a restart or a snapshot
//! brings the tree back with the rest of the state. The leader sweeps expired keys by proposing SYNC every
//! [`SYNC_INTERVAL`] while any key has a TTL. Plain reads and watches use the local tree.
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::server::{ApplyResponse, EtcdServer};
use super::EtcdError;
use crate::mvcc::backend::Backend;
use crate::mvcc::WriteBatch;
use crate::pb::etcdserverpb::{InternalRaftRequest, Request};
use crate::v2store::persist::{self, INDEX_KEY, PREFIX};
use crate::v2store::{self, Event, Method, Store, V2Error, V2Request};

/// The methods of the v2 auth API's writes (never proposed by the keys API).
pub const PERMS_PUT: &str = "V2AUTH_PUT";
pub const PERMS_DELETE: &str = "V2AUTH_DELETE";

/// How often the leader sweeps expired v2 keys (etcd's SyncTicker).
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// Unix nanoseconds now.
pub fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// The v2 store as the backend holds it (empty on a new member).
pub(crate) fn load_store(backend: &Backend) -> Result<Store, String> {
    let records = backend.meta_with_prefix(&[PREFIX, b"/"].concat()).map_err(|e| e.to_string())?;
    let index = backend.get_meta_u64(INDEX_KEY).map_err(|e| e.to_string())?.unwrap_or(0);
    let mut store = persist::load(records, index)?;
    let perms = backend.meta_with_prefix(&[v2store::perms::PREFIX, b"/"].concat()).map_err(|e| e.to_string())?;
    store.set_perms(v2store::perms::Perms::load(perms));
    Ok(store)
}

fn to_store_request(r: &Request) -> Result<V2Request, V2Error> {
    let method = match r.method.as_str() {
        "PUT" => Method::Put,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        "QGET" | "GET" => Method::QGet,
        "SYNC" => Method::Sync,
        PERMS_PUT => Method::PermsPut,
        PERMS_DELETE => Method::PermsDelete,
        m => return Err(V2Error::new(v2store::error::RAFT_INTERNAL, format!("unknown method {m}"), 0)),
    };
    Ok(V2Request {
        method,
        path: r.path.clone(),
        val: r.val.clone(),
        dir: r.dir,
        prev_value: r.prev_value.clone(),
        prev_index: r.prev_index,
        prev_exist: r.prev_exist,
        expiration: r.expiration,
        recursive: r.recursive,
        sorted: r.sorted,
        time: r.time,
        refresh: r.refresh.unwrap_or(false),
    })
}

impl EtcdServer {
    /// Applies one v2 entry and records what it changed in the batch.
    pub(crate) fn apply_v2(&self, batch: &mut WriteBatch<'_>, r: &Request) -> Result<Option<Event>, V2Error> {
        let mut store = self.v2.lock();
        let before = store.index();
        let result = to_store_request(r).and_then(|req| v2store::apply(&mut store, &req, now_nanos()));
        let mut records = persist::take_records(&mut store);
        records.extend(store.take_perm_records());
        let ops = batch.ops();
        for (key, record) in records {
            match record {
                Some(r) => ops.put_meta(&key, &r),
                None => ops.delete_meta(&key),
            }
        }
        if store.index() != before {
            ops.put_meta_u64(INDEX_KEY, store.index());
        }
        result
    }

    /// On the leader, every [`SYNC_INTERVAL`] while a key has a TTL: queue a SYNC with the current time.
    pub(crate) fn maybe_sync_v2(&self) {
        if !self.is_leader() || !self.v2.lock().has_ttl_keys() {
            return;
        }
        let mut last = self.last_v2_sync.lock();
        if last.is_some_and(|t| t.elapsed() < SYNC_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let sync = Request { method: "SYNC".into(), time: now_nanos(), ..Default::default() };
        self.queue_leader_only(InternalRaftRequest { v2: Some(sync), ..Default::default() });
    }

    /// Proposes a v2 write (or quorum read) and waits for its result.
    pub async fn v2_propose(&self, r: Request) -> Result<Event, V2Error> {
        let raft_err = |e: EtcdError| V2Error::new(v2store::error::RAFT_INTERNAL, e.to_string(), 0);
        match self.propose(InternalRaftRequest { v2: Some(r), ..Default::default() }).await {
            Ok(ApplyResponse::V2(Ok(Some(e)))) => Ok(e),
            Ok(ApplyResponse::V2(Err(e))) => Err(e),
            Ok(_) => Err(V2Error::new(v2store::error::RAFT_INTERNAL, "unexpected apply result", 0)),
            Err(e) => Err(raft_err(e)),
        }
    }

    /// Raft's committed index, for `X-Raft-Index`.
    pub fn raft_index(&self) -> u64 {
        self.committed_index().max(self.applied.load(Ordering::Acquire))
    }
}
