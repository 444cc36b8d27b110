//! In-process building blocks for the v3lock and v3election services (what etcd builds from clientv3's
//! concurrency package): txns through raft, local reads after a ReadIndex, and waiting for deletions
//! through the store's own watchers. All native; nothing here runs per request in Python. Everything goes
//! through the server's admission chain as the [`Client`] that called (its credentials), so a lock or an
//! election is checked as the KV operations it performs.
use std::sync::Arc;

use super::header::Credentials;
use crate::auth::AuthInfo;
use crate::pb::authpb::permission::Type as PermType;

use crate::etcdserver::{EtcdError, EtcdServer};
use crate::mvcc::watcher::WatchReceiver;
use crate::pb::etcdserverpb::{
    compare, range_request::SortOrder, range_request::SortTarget, request_op, watch_create_request::FilterType,
    Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    TxnResponse, WatchCreateRequest,
};
use crate::pb::mvccpb::{event::EventType, KeyValue};

/// The server as one caller sees it: every operation below runs with the caller's permissions, its
/// credentials resolved again for each (a lock may wait for minutes while users and roles change).
#[derive(Clone)]
pub struct Client {
    pub server: Arc<EtcdServer>,
    creds: Credentials,
}

impl Client {
    /// The caller of `req` on `server` (refused at once if its credentials are).
    pub fn of<T>(server: &Arc<EtcdServer>, req: &tonic::Request<T>) -> Result<Client, tonic::Status> {
        let creds = Credentials::of(req);
        creds.resolve(server).map_err(super::header::status)?;
        Ok(Client { server: server.clone(), creds })
    }

    pub fn who(&self) -> Result<Option<AuthInfo>, EtcdError> {
        self.creds.resolve(&self.server)
    }
}

impl std::ops::Deref for Client {
    type Target = EtcdServer;

    fn deref(&self) -> &EtcdServer {
        &self.server
    }
}

/// `name` + "/": the prefix every contender's key lives under.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// The contender key of a lease: the prefix then the lease id in hex, as clientv3's concurrency names it.
pub fn contender_key(name: &[u8], lease: i64) -> Vec<u8> {
    let mut k = prefix(name);
    k.extend_from_slice(format!("{lease:x}").as_bytes());
    k
}

/// The end of the range of keys starting with `p` (etcd's GetPrefixRangeEnd).
pub fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// etcd's v3lock and v3election pass the client library's errors through unconverted: gRPC code Unknown.
pub fn unknown(e: EtcdError) -> tonic::Status {
    tonic::Status::unknown(e.message())
}

/// The session lease: the caller's, or a new one of clientv3's default session TTL (60 s) when it gave 0.
pub async fn session_lease(server: &Client, lease: i64) -> Result<i64, EtcdError> {
    if lease != 0 {
        return Ok(lease);
    }
    let g = LeaseGrantRequest { ttl: 60, id: 0 };
    Ok(server.lease_grant(server.who()?.as_ref(), g).await?.id)
}

/// A contender's claim under `name/`: its key is created with `value` on the session lease if absent, or read
/// back if present; `extra` ops run after it in either branch. Returns (the txn's answer, key, lease).
pub async fn claim(
    server: &Client,
    name: &[u8],
    lease: i64,
    value: &[u8],
    extra: Vec<RequestOp>,
) -> Result<(TxnResponse, Vec<u8>, i64), tonic::Status> {
    let lease = session_lease(server, lease).await.map_err(unknown)?;
    let key = contender_key(name, lease);
    let mut success = vec![op_put(&key, value, lease)];
    success.extend(extra.iter().cloned());
    let mut failure = vec![op_get(get_key(&key))];
    failure.extend(extra);
    let t = TxnRequest { compare: vec![cmp_create(&key, compare::CompareResult::Equal, 0)], success, failure };
    Ok((txn(server, t).await.map_err(unknown)?, key, lease))
}

pub async fn txn(server: &Client, t: TxnRequest) -> Result<TxnResponse, EtcdError> {
    server.server.txn(server.who()?.as_ref(), t).await
}

pub async fn delete(server: &Client, key: &[u8]) -> Result<i64, EtcdError> {
    let d = DeleteRangeRequest { key: key.to_vec(), ..Default::default() };
    Ok(server.delete_range(server.who()?.as_ref(), d).await?.header.map_or(0, |h| h.revision))
}

/// A linearizable local read.
pub async fn range(server: &Client, r: RangeRequest) -> Result<RangeResponse, EtcdError> {
    server.server.range(server.who()?.as_ref(), &r).await
}

pub fn op_put(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    let p = PutRequest { key: key.to_vec(), value: value.to_vec(), lease, ..Default::default() };
    RequestOp { request: Some(request_op::Request::RequestPut(p)) }
}

pub fn op_get(r: RangeRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestRange(r)) }
}

pub fn op_delete(key: &[u8]) -> RequestOp {
    let d = DeleteRangeRequest { key: key.to_vec(), ..Default::default() };
    RequestOp { request: Some(request_op::Request::RequestDeleteRange(d)) }
}

pub fn get_key(key: &[u8]) -> RangeRequest {
    RangeRequest { key: key.to_vec(), ..Default::default() }
}

/// The oldest contender under `pfx` (lowest create revision), as of the newest revision.
pub fn first_owner(pfx: &[u8]) -> RangeRequest {
    RangeRequest {
        key: pfx.to_vec(),
        range_end: prefix_end(pfx),
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        limit: 1,
        ..Default::default()
    }
}

pub fn cmp_create(key: &[u8], result: compare::CompareResult, rev: i64) -> Compare {
    Compare {
        key: key.to_vec(),
        target: compare::CompareTarget::Create as i32,
        result: result as i32,
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

/// A watch on the store, read in-process; dropped with its stream.
pub struct InternalWatch<'a> {
    server: &'a EtcdServer,
    rx: WatchReceiver,
}

impl<'a> InternalWatch<'a> {
    pub fn new(server: &'a EtcdServer, key: &[u8], end: &[u8], start_rev: i64, filters: &[FilterType]) -> Self {
        let (stream, rx) = server.store.watchable.new_stream();
        let req = WatchCreateRequest {
            key: key.to_vec(),
            range_end: end.to_vec(),
            start_revision: start_rev,
            filters: filters.iter().map(|f| *f as i32).collect(),
            ..Default::default()
        };
        server.store.watchable.watch(&server.store, &stream, req);
        InternalWatch { server, rx }
    }

    /// The next response with events; an error if the watch was canceled (e.g. compacted).
    pub async fn next_events(&mut self) -> Result<Vec<crate::pb::mvccpb::Event>, EtcdError> {
        loop {
            let Some(q) = self.rx.next().await else { return Err(EtcdError::Stopped) };
            let r = q.to_response();
            if r.canceled {
                return Err(EtcdError::Compacted);
            }
            if !r.events.is_empty() {
                return Ok(r.events);
            }
        }
    }
}

impl Drop for InternalWatch<'_> {
    fn drop(&mut self) {
        self.server.store.watchable.close_stream(self.rx.stream.id);
    }
}

/// Waits until no key under `pfx` has a create revision at or below `max_create_rev` (clientv3's
/// waitDeletes): repeatedly finds the newest such key and waits for its deletion.
pub async fn wait_deletes(server: &Client, pfx: &[u8], max_create_rev: i64) -> Result<(), EtcdError> {
    loop {
        let r = RangeRequest {
            key: pfx.to_vec(),
            range_end: prefix_end(pfx),
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Create as i32,
            max_create_revision: max_create_rev,
            limit: 1,
            ..Default::default()
        };
        let resp = range(server, r).await?;
        let Some(kv) = resp.kvs.first() else { return Ok(()) };
        let rev = resp.header.map_or(0, |h| h.revision);
        wait_delete(server, &kv.key, rev).await?;
    }
}

/// Waits for `key` to be deleted after revision `rev`.
pub async fn wait_delete(server: &Client, key: &[u8], rev: i64) -> Result<(), EtcdError> {
    server.auth.check_op(server.who()?.as_ref(), key, &[], PermType::Read)?;
    let mut w = InternalWatch::new(server, key, &[], rev + 1, &[FilterType::Noput]);
    loop {
        let evs = w.next_events().await?;
        if evs.iter().any(|e| e.r#type == EventType::Delete as i32) {
            return Ok(());
        }
    }
}

/// The first KeyValue of a txn response's `i`th op, if it was a range.
pub fn txn_range_kv(resp: &TxnResponse, i: usize) -> Option<KeyValue> {
    match resp.responses.get(i)?.response.as_ref()? {
        crate::pb::etcdserverpb::response_op::Response::ResponseRange(r) => r.kvs.first().cloned(),
        _ => None,
    }
}
