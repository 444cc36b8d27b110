//! The applier: what a committed request does to the store (etcd's applierV3backend).
//!
//! Range, Put, DeleteRange and Txn run against any [`TxnRead`] view; writes against a [`TxnWrite`]. Response
//! headers carry only `revision` here; the edge fills cluster_id, member_id and raft_term (etcd's
//! header.fill), and a revision left 0 becomes the store's current revision.
use std::cmp::Ordering;

use super::errors::EtcdError;
use crate::lease::MAX_LEASE_TTL;
use crate::mvcc::{RangeOptions, TxnRead, TxnWrite};
use crate::pb::etcdserverpb::{
    compare, range_request::SortOrder, range_request::SortTarget, request_op, response_op, CompactionRequest,
    CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    ResponseOp, TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

pub fn range(view: &impl TxnRead, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
    let filtered =
        r.min_mod_revision != 0 || r.max_mod_revision != 0 || r.min_create_revision != 0 || r.max_create_revision != 0;
    // Sorting or filtering needs every row; otherwise read one extra row to learn `more`.
    let mut limit = if r.sort_order != SortOrder::None as i32 || filtered { 0 } else { r.limit };
    if limit > 0 {
        limit += 1;
    }
    let opts = RangeOptions { limit, rev: r.revision, count: r.count_only };
    let rr = view.range(&r.key, &r.range_end, opts)?;
    let mut kvs = rr.kvs;
    if r.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
    }
    let mut order = r.sort_order;
    if r.sort_target != SortTarget::Key as i32 && order == SortOrder::None as i32 {
        order = SortOrder::Ascend as i32;
    }
    if order != SortOrder::None as i32 {
        let cmp = sort_cmp(r.sort_target);
        if order == SortOrder::Ascend as i32 {
            kvs.sort_by(cmp);
        } else {
            kvs.sort_by(|a, b| cmp(b, a));
        }
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse { header: header(rr.rev), kvs, more, count: rr.count as i64 })
}

fn sort_cmp(target: i32) -> fn(&KeyValue, &KeyValue) -> Ordering {
    match SortTarget::try_from(target).unwrap_or(SortTarget::Key) {
        SortTarget::Key => |a, b| a.key.cmp(&b.key),
        SortTarget::Version => |a, b| a.version.cmp(&b.version),
        SortTarget::Create => |a, b| a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => |a, b| a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => |a, b| a.value.cmp(&b.value),
    }
}

/// The previous KeyValue of `key`, if any.
fn prev(view: &impl TxnRead, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
    Ok(view.range(key, &[], RangeOptions::default())?.kvs.into_iter().next())
}

fn check_lease(view: &impl TxnRead, lease: i64) -> Result<(), EtcdError> {
    if lease != 0 && !view.lease_exists(lease) {
        return Err(EtcdError::LeaseNotFound);
    }
    Ok(())
}

/// Checks a put can apply (etcd's checkRequestPut): ignore_* need an existing key; the lease must exist.
fn check_put(view: &impl TxnRead, p: &PutRequest) -> Result<Option<KeyValue>, EtcdError> {
    let prev_kv = if p.ignore_value || p.ignore_lease || p.prev_kv { prev(view, &p.key)? } else { None };
    if (p.ignore_value || p.ignore_lease) && prev_kv.is_none() {
        return Err(EtcdError::KeyNotFound);
    }
    if !p.ignore_lease {
        check_lease(view, p.lease)?;
    }
    Ok(prev_kv)
}

/// A Put request on its own: etcd checks its lease before anything else (inside a txn, the missing key of
/// an ignore_* put is reported first; see [`check_put`]).
pub fn put_request(txn: &mut TxnWrite, p: &PutRequest) -> Result<PutResponse, EtcdError> {
    check_lease(txn, p.lease)?;
    put(txn, p)
}

pub fn put(txn: &mut TxnWrite, p: &PutRequest) -> Result<PutResponse, EtcdError> {
    let prev_kv = check_put(txn, p)?;
    let mut value = &p.value;
    let mut lease = p.lease;
    if let Some(pk) = &prev_kv {
        if p.ignore_value {
            value = &pk.value;
        }
        if p.ignore_lease {
            lease = pk.lease;
        }
    }
    let value = value.clone();
    let rev = txn.put(&p.key, &value, lease)?;
    Ok(PutResponse { header: header(rev), prev_kv: if p.prev_kv { prev_kv } else { None } })
}

pub fn delete_range(txn: &mut TxnWrite, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, EtcdError> {
    let prev_kvs = if d.prev_kv { txn.range(&d.key, &d.range_end, RangeOptions::default())?.kvs } else { Vec::new() };
    let (deleted, rev) = txn.delete_range(&d.key, &d.range_end)?;
    Ok(DeleteRangeResponse { header: header(rev), deleted, prev_kvs })
}

pub fn lease_grant(txn: &mut TxnWrite, r: &LeaseGrantRequest) -> Result<LeaseGrantResponse, EtcdError> {
    if r.ttl > MAX_LEASE_TTL {
        return Err(EtcdError::LeaseTtlTooLarge);
    }
    if txn.lease_exists(r.id) {
        return Err(EtcdError::LeaseExists);
    }
    let ttl = txn.lease_grant(r.id, r.ttl)?;
    Ok(LeaseGrantResponse { header: header(txn.rev()), id: r.id, ttl, error: String::new() })
}

pub fn lease_revoke(txn: &mut TxnWrite, r: &LeaseRevokeRequest) -> Result<LeaseRevokeResponse, EtcdError> {
    if !txn.lease_revoke(r.id)? {
        return Err(EtcdError::LeaseNotFound);
    }
    Ok(LeaseRevokeResponse { header: header(txn.rev()) })
}

pub fn compact(txn: &mut TxnWrite, c: &CompactionRequest) -> Result<CompactionResponse, EtcdError> {
    txn.compact(c.revision)?;
    Ok(CompactionResponse { header: header(txn.rev()) })
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let ord = match CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version) {
        CompareTarget::Value => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        CompareTarget::Create => kv.create_revision.cmp(&union_int(c, |u| match u {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Mod => kv.mod_revision.cmp(&union_int(c, |u| match u {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Version => kv.version.cmp(&union_int(c, |u| match u {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Lease => kv.lease.cmp(&union_int(c, |u| match u {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

/// The integer the compare names; a union of another kind compares as 0, as etcd.
fn union_int(c: &Compare, pick: impl Fn(&compare::TargetUnion) -> Option<i64>) -> i64 {
    c.target_union.as_ref().and_then(pick).unwrap_or(0)
}

/// All keys in the compare's range must satisfy it; a missing key compares as zeroes, except that a VALUE
/// compare on a missing key is always false.
fn apply_compare(view: &impl TxnRead, c: &Compare) -> bool {
    let Ok(rr) = view.range(&c.key, &c.range_end, RangeOptions::default()) else {
        return false;
    };
    if rr.kvs.is_empty() {
        if c.target == compare::CompareTarget::Value as i32 {
            return false;
        }
        return compare_kv(c, &KeyValue::default());
    }
    rr.kvs.iter().all(|kv| compare_kv(c, kv))
}

/// Evaluates every compare of the txn and its nested txns against the view *before* any op applies; the
/// branch taken at each level, in depth-first order (etcd's txnPath).
fn compare_to_path(view: &impl TxnRead, t: &TxnRequest, path: &mut Vec<bool>) {
    let ok = t.compare.iter().all(|c| apply_compare(view, c));
    path.push(ok);
    for op in if ok { &t.success } else { &t.failure } {
        if let Some(request_op::Request::RequestTxn(nt)) = &op.request {
            compare_to_path(view, nt, path);
        }
    }
}

/// What [`check_path`] checks: etcd checks every put on the path first, then every range.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Puts,
    Ranges,
}

/// Checks the ops on the chosen path can apply before anything is written (etcd's checkRequests).
fn check_path(
    view: &impl TxnRead,
    t: &TxnRequest,
    path: &[bool],
    at: &mut usize,
    what: Check,
) -> Result<(), EtcdError> {
    let ops = if path[*at] { &t.success } else { &t.failure };
    *at += 1;
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) if what == Check::Puts => {
                check_put(view, p)?;
            }
            Some(request_op::Request::RequestRange(r)) if what == Check::Ranges && r.revision != 0 => {
                if r.revision > view.rev() {
                    return Err(EtcdError::FutureRev);
                }
                if r.revision < view.first_rev() {
                    return Err(EtcdError::Compacted);
                }
            }
            Some(request_op::Request::RequestTxn(nt)) => check_path(view, nt, path, at, what)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_txn(view: &impl TxnRead, t: &TxnRequest, path: &[bool]) -> Result<(), EtcdError> {
    check_path(view, t, path, &mut 0, Check::Puts)?;
    check_path(view, t, path, &mut 0, Check::Ranges)
}

/// A read-only txn, served from a read view without raft.
pub fn txn_read(view: &impl TxnRead, t: &TxnRequest) -> Result<TxnResponse, EtcdError> {
    let mut path = Vec::new();
    compare_to_path(view, t, &mut path);
    check_txn(view, t, &path)?;
    let mut at = 0;
    let mut resp = run_read(view, t, &path, &mut at)?;
    resp.header = header(view.rev());
    Ok(resp)
}

fn run_read(view: &impl TxnRead, t: &TxnRequest, path: &[bool], at: &mut usize) -> Result<TxnResponse, EtcdError> {
    let succeeded = path[*at];
    *at += 1;
    let mut responses = Vec::new();
    for op in if succeeded { &t.success } else { &t.failure } {
        let r = match &op.request {
            Some(request_op::Request::RequestRange(r)) => response_op::Response::ResponseRange(range(view, r)?),
            Some(request_op::Request::RequestTxn(nt)) => {
                response_op::Response::ResponseTxn(run_read(view, nt, path, at)?)
            }
            _ => return Err(EtcdError::Internal("write op in a read-only txn".into())),
        };
        responses.push(ResponseOp { response: Some(r) });
    }
    Ok(TxnResponse { header: Some(ResponseHeader::default()), succeeded, responses })
}

/// A txn that may write, inside one write request of the batch.
pub fn txn_write(txn: &mut TxnWrite, t: &TxnRequest) -> Result<TxnResponse, EtcdError> {
    let mut path = Vec::new();
    compare_to_path(txn, t, &mut path);
    check_txn(txn, t, &path)?;
    let mut at = 0;
    let mut resp = run_write(txn, t, &path, &mut at)?;
    resp.header = header(txn.rev());
    Ok(resp)
}

fn run_write(txn: &mut TxnWrite, t: &TxnRequest, path: &[bool], at: &mut usize) -> Result<TxnResponse, EtcdError> {
    let succeeded = path[*at];
    *at += 1;
    let mut responses = Vec::new();
    for op in if succeeded { &t.success } else { &t.failure } {
        let r = match &op.request {
            Some(request_op::Request::RequestRange(r)) => response_op::Response::ResponseRange(range(txn, r)?),
            Some(request_op::Request::RequestPut(p)) => response_op::Response::ResponsePut(put(txn, p)?),
            Some(request_op::Request::RequestDeleteRange(d)) => {
                response_op::Response::ResponseDeleteRange(delete_range(txn, d)?)
            }
            Some(request_op::Request::RequestTxn(nt)) => {
                response_op::Response::ResponseTxn(run_write(txn, nt, path, at)?)
            }
            None => return Err(EtcdError::KeyNotFound),
        };
        responses.push(ResponseOp { response: Some(r) });
    }
    Ok(TxnResponse { header: Some(ResponseHeader::default()), succeeded, responses })
}
