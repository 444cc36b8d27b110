//! Request checks done at the API edge, before anything is proposed (etcd's v3rpc/key.go).
use std::collections::HashSet;

use super::errors::EtcdError;
use crate::pb::etcdserverpb::{request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

pub fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if !(0..=2).contains(&r.sort_order) || !(0..=4).contains(&r.sort_target) {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// The op-count limit applies per list (compare, success, failure); nested txns share what is left.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_txn_ops {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(r.failure.iter()) {
        check_op(op, max_txn_ops - opc)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_txn_ops: usize) -> Result<(), EtcdError> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => check_range(r),
        Some(request_op::Request::RequestPut(r)) => check_put(r),
        Some(request_op::Request::RequestDeleteRange(r)) => check_delete(r),
        Some(request_op::Request::RequestTxn(r)) => check_txn(r, max_txn_ops),
        // An op with nothing in it: etcd answers "key not found".
        None => Err(EtcdError::KeyNotFound),
    }
}

/// A half-open byte interval `[begin, end)`.
type Interval = (Vec<u8>, Vec<u8>);

/// A set of half-open byte intervals `[begin, end)`; end empty means +infinity (etcd's affine intervals).
#[derive(Default)]
struct Intervals(Vec<Interval>);

impl Intervals {
    fn contains_point(&self, k: &[u8]) -> bool {
        self.0.iter().any(|(b, e)| b.as_slice() <= k && (e.is_empty() || k < e.as_slice()))
    }
}

/// Two writes to one key in a txn branch are refused (etcd's checkIntervals): put+put, or a put inside a
/// delete's range, at this level or across nested txns; a key put in both branches of one nested txn is fine.
pub fn check_intervals(reqs: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Interval>), EtcdError> {
    let mut dels = Intervals::default();
    for req in reqs {
        if let Some(request_op::Request::RequestDeleteRange(d)) = &req.request {
            let end = if d.range_end.is_empty() {
                let mut e = d.key.clone();
                e.push(0);
                e
            } else {
                d.range_end.clone()
            };
            // etcd compares ends as strings: an end below the key (e.g. "\0", from-key) is an empty interval.
            if end.as_slice() > d.key.as_slice() || end.is_empty() {
                dels.0.push((d.key.clone(), end));
            }
        }
    }
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for req in reqs {
        let Some(request_op::Request::RequestTxn(t)) = &req.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || dels.contains_point(k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if puts.contains(k) && !puts_then.contains(k) {
                return Err(EtcdError::DuplicateKey);
            }
            if dels.contains_point(k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.0.extend(dels_then);
        dels.0.extend(dels_else);
    }
    for req in reqs {
        if let Some(request_op::Request::RequestPut(p)) = &req.request {
            if puts.contains(&p.key) || dels.contains_point(&p.key) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(p.key.clone());
        }
    }
    Ok((puts, dels.0))
}

/// A txn is read-only when every op on both branches, recursively, is a range.
pub fn is_txn_readonly(r: &TxnRequest) -> bool {
    r.success.iter().chain(r.failure.iter()).all(|op| match &op.request {
        Some(request_op::Request::RequestRange(_)) => true,
        Some(request_op::Request::RequestTxn(t)) => is_txn_readonly(t),
        _ => false,
    })
}

/// A read-only txn may skip ReadIndex only if all its ranges are serializable.
pub fn is_txn_serializable(r: &TxnRequest) -> bool {
    r.success.iter().chain(r.failure.iter()).all(|op| match &op.request {
        Some(request_op::Request::RequestRange(rr)) => rr.serializable,
        Some(request_op::Request::RequestTxn(t)) => is_txn_serializable(t),
        _ => true,
    })
}
