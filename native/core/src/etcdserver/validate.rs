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

/// A put with `ignore_value`/`ignore_lease` after a from-key delete (`range_end == "\0"`) that covers its key,
/// in one txn. etcd's interval check treats a from-key delete as an empty interval, so it lets this through,
/// and then the put finds its key deleted mid-txn and etcd 3.4 panics while applying (the entry is in the
/// WAL, so the member crashes on every restart). We refuse it up front with the duplicate-key error, the
/// answer etcd gives for the same conflict with any other delete range.
pub fn check_ignore_puts(t: &TxnRequest) -> Result<(), EtcdError> {
    let (mut from_keys, mut ignore_puts) = (Vec::new(), Vec::new());
    collect_ignore_conflicts(&t.success, &mut from_keys, &mut ignore_puts);
    collect_ignore_conflicts(&t.failure, &mut from_keys, &mut ignore_puts);
    if ignore_puts.iter().any(|k| from_keys.iter().any(|f| f <= k)) {
        return Err(EtcdError::DuplicateKey);
    }
    Ok(())
}

fn collect_ignore_conflicts(ops: &[RequestOp], from_keys: &mut Vec<Vec<u8>>, ignore_puts: &mut Vec<Vec<u8>>) {
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) if d.range_end == [0] => from_keys.push(d.key.clone()),
            Some(request_op::Request::RequestPut(p)) if p.ignore_value || p.ignore_lease => {
                ignore_puts.push(p.key.clone())
            }
            Some(request_op::Request::RequestTxn(t)) => {
                collect_ignore_conflicts(&t.success, from_keys, ignore_puts);
                collect_ignore_conflicts(&t.failure, from_keys, ignore_puts);
            }
            _ => {}
        }
    }
}

/// Whether any branch of the txn, at any depth, puts (such a txn is refused while NOSPACE is raised).
pub fn txn_has_put(r: &TxnRequest) -> bool {
    r.success.iter().chain(r.failure.iter()).any(|op| match &op.request {
        Some(request_op::Request::RequestPut(_)) => true,
        Some(request_op::Request::RequestTxn(t)) => txn_has_put(t),
        _ => false,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb::PutRequest;

    fn del(key: &[u8], end: &[u8]) -> RequestOp {
        let d = DeleteRangeRequest { key: key.to_vec(), range_end: end.to_vec(), ..Default::default() };
        RequestOp { request: Some(request_op::Request::RequestDeleteRange(d)) }
    }

    fn put(key: &[u8], ignore_value: bool) -> RequestOp {
        let p = PutRequest { key: key.to_vec(), ignore_value, ..Default::default() };
        RequestOp { request: Some(request_op::Request::RequestPut(p)) }
    }

    #[test]
    fn from_key_delete_is_no_interval_for_plain_puts() {
        // etcd lets a from-key delete and a put of a key it covers share a txn.
        assert!(check_intervals(&[del(b"a", b"\0"), put(b"k", false)]).is_ok());
        assert_eq!(check_intervals(&[del(b"a", b"z"), put(b"k", false)]).unwrap_err(), EtcdError::DuplicateKey);
    }

    #[test]
    fn ignore_put_under_a_from_key_delete_is_refused() {
        let t = |ops: Vec<RequestOp>| TxnRequest { success: ops, ..Default::default() };
        assert_eq!(check_ignore_puts(&t(vec![del(b"a", b"\0"), put(b"k", true)])), Err(EtcdError::DuplicateKey));
        assert!(check_ignore_puts(&t(vec![del(b"m", b"\0"), put(b"k", true)])).is_ok(), "the key is below the delete");
        assert!(check_ignore_puts(&t(vec![del(b"a", b"\0"), put(b"k", false)])).is_ok());
        let nested = TxnRequest { failure: vec![put(b"k", true)], ..Default::default() };
        let outer = t(vec![del(b"a", b"\0"), RequestOp { request: Some(request_op::Request::RequestTxn(nested)) }]);
        assert_eq!(check_ignore_puts(&outer), Err(EtcdError::DuplicateKey));
    }
}
