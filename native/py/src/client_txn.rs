//! Txn for the client binding: compares and operations arrive as plain tuples (bytes and numbers, nested
//! for a txn inside a txn) and answers leave as tuples, which `pyetcd_fast.txn` wraps in its types.
//!
//! - compare: `(target, result, key, range_end, value, number)`; target 0 version, 1 create, 2 mod,
//!   3 value (compared with `value`), 4 lease; result 0 `==`, 1 `>`, 2 `<`, 3 `!=`.
//! - op: `(0, key, range_end, limit, revision, sort_order, sort_target, serializable, keys_only, count_only)`
//!   range; `(1, key, value, lease, prev_kv, ignore_value, ignore_lease)` put; `(2, key, range_end, prev_kv)`
//!   delete; `(3, compares, success, failure)` txn.
//! - answer: `(0, header, kvs, more, count)`, `(1, header, prev_kv)`, `(2, header, deleted, prev_kvs)`,
//!   `(3, header, succeeded, answers)`.
use etcd_core::pb::etcdserverpb as pb;
use pb::compare::TargetUnion;
use pb::request_op::Request as Op;
use pb::response_op::Response as Answer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyTupleMethods};

use crate::client::{header, kv, kvs};

/// `(0, key, range_end, limit, revision, sort_order, sort_target, serializable, keys_only, count_only)`.
pub type RangeTuple = (u8, Vec<u8>, Vec<u8>, i64, i64, i32, i32, bool, bool, bool);

pub type CompareTuple = (i32, i32, Vec<u8>, Vec<u8>, Vec<u8>, i64);

pub fn compare((target, result, key, range_end, value, number): CompareTuple) -> PyResult<pb::Compare> {
    let target_union = match target {
        0 => TargetUnion::Version(number),
        1 => TargetUnion::CreateRevision(number),
        2 => TargetUnion::ModRevision(number),
        3 => TargetUnion::Value(value),
        4 => TargetUnion::Lease(number),
        t => return Err(PyValueError::new_err(format!("compare target {t}"))),
    };
    if !(0..=3).contains(&result) {
        return Err(PyValueError::new_err(format!("compare result {result}")));
    }
    Ok(pb::Compare { result, target, key, range_end, target_union: Some(target_union) })
}

/// The RangeRequest of a range tuple.
pub fn range_request(t: RangeTuple) -> pb::RangeRequest {
    let (_, key, range_end, limit, revision, sort_order, sort_target, serializable, keys_only, count_only) = t;
    pb::RangeRequest {
        key,
        range_end,
        limit,
        revision,
        sort_order,
        sort_target,
        serializable,
        keys_only,
        count_only,
        ..Default::default()
    }
}

fn op(t: &Bound<'_, PyAny>) -> PyResult<pb::RequestOp> {
    let t = t.downcast::<PyTuple>()?;
    let request = match t.get_item(0)?.extract::<u8>()? {
        0 => Op::RequestRange(range_request(t.extract()?)),
        1 => {
            let (_, key, value, lease, prev_kv, ignore_value, ignore_lease): (
                u8,
                Vec<u8>,
                Vec<u8>,
                i64,
                bool,
                bool,
                bool,
            ) = t.extract()?;
            Op::RequestPut(pb::PutRequest { key, value, lease, prev_kv, ignore_value, ignore_lease })
        }
        2 => {
            let (_, key, range_end, prev_kv): (u8, Vec<u8>, Vec<u8>, bool) = t.extract()?;
            Op::RequestDeleteRange(pb::DeleteRangeRequest { key, range_end, prev_kv })
        }
        3 => {
            let (_, compares, success, failure): (u8, Vec<CompareTuple>, Bound<'_, PyAny>, Bound<'_, PyAny>) =
                t.extract()?;
            Op::RequestTxn(request(compares, &success, &failure)?)
        }
        k => return Err(PyValueError::new_err(format!("txn op kind {k}"))),
    };
    Ok(pb::RequestOp { request: Some(request) })
}

fn ops(list: &Bound<'_, PyAny>) -> PyResult<Vec<pb::RequestOp>> {
    list.try_iter()?.map(|o| op(&o?)).collect()
}

/// The TxnRequest of compares and two lists of op tuples.
pub fn request(
    compares: Vec<CompareTuple>,
    success: &Bound<'_, PyAny>,
    failure: &Bound<'_, PyAny>,
) -> PyResult<pb::TxnRequest> {
    Ok(pb::TxnRequest {
        compare: compares.into_iter().map(compare).collect::<PyResult<_>>()?,
        success: ops(success)?,
        failure: ops(failure)?,
    })
}

/// A TxnResponse as `(header, succeeded, answers)`.
pub fn response<'py>(py: Python<'py>, r: pb::TxnResponse) -> PyResult<Bound<'py, PyTuple>> {
    let mut answers = Vec::with_capacity(r.responses.len());
    for a in r.responses {
        let t = match a.response {
            Some(Answer::ResponseRange(r)) => {
                (0u8, header(r.header), kvs(py, r.kvs)?, r.more, r.count).into_pyobject(py)?
            }
            Some(Answer::ResponsePut(p)) => {
                let prev = p.prev_kv.map(|k| Py::new(py, kv(py, k))).transpose()?;
                (1u8, header(p.header), prev).into_pyobject(py)?
            }
            Some(Answer::ResponseDeleteRange(d)) => {
                (2u8, header(d.header), d.deleted, kvs(py, d.prev_kvs)?).into_pyobject(py)?
            }
            Some(Answer::ResponseTxn(t)) => {
                let inner = response(py, t)?;
                let (h, ok, answers) = (inner.get_item(0)?, inner.get_item(1)?, inner.get_item(2)?);
                (3u8, h, ok, answers).into_pyobject(py)?
            }
            None => return Err(PyValueError::new_err("txn answer without a response")),
        };
        answers.push(t);
    }
    (header(r.header), r.succeeded, answers).into_pyobject(py)
}
