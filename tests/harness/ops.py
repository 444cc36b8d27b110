"""Terse builders for KV requests, shared by the hand-written and generated cases."""

from __future__ import annotations

from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

RangeRequest = rpc_pb2.RangeRequest
Compare = rpc_pb2.Compare

SORT_ORDERS = list(RangeRequest.SortOrder.keys())  # NONE, ASCEND, DESCEND
SORT_TARGETS = list(RangeRequest.SortTarget.keys())  # KEY, VERSION, CREATE, MOD, VALUE
COMPARE_TARGETS = list(Compare.CompareTarget.keys())  # VERSION, CREATE, MOD, VALUE, LEASE
COMPARE_RESULTS = list(Compare.CompareResult.keys())  # EQUAL, GREATER, LESS, NOT_EQUAL

# Compare.target -> the oneof arm that carries its operand.
TARGET_FIELD = {
    "VERSION": "version",
    "CREATE": "create_revision",
    "MOD": "mod_revision",
    "VALUE": "value",
    "LEASE": "lease",
}


def prefix_end(prefix: bytes) -> bytes:
    """Exclusive end of all keys starting with ``prefix`` (etcd's GetPrefixRangeEnd)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\x00"
    p[-1] += 1
    return bytes(p)


def put(key: bytes, value: bytes = b"", **kw) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=key, value=value, **kw)


def rng(key: bytes, range_end: bytes = b"", **kw) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(key=key, range_end=range_end, **kw)


def delete(key: bytes, range_end: bytes = b"", **kw) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end, **kw)


def cmp(key: bytes, target: str, result: str, operand: int | bytes, range_end: bytes = b"") -> rpc_pb2.Compare:
    c = rpc_pb2.Compare(key=key, target=target, result=result, range_end=range_end)
    setattr(c, TARGET_FIELD[target], operand)
    return c


def op(req) -> rpc_pb2.RequestOp:
    """Wrap a Range/Put/DeleteRange/Txn request as a transaction step."""
    arm = {
        "RangeRequest": "request_range",
        "PutRequest": "request_put",
        "DeleteRangeRequest": "request_delete_range",
        "TxnRequest": "request_txn",
    }[type(req).__name__]
    return rpc_pb2.RequestOp(**{arm: req})


def txn(compare=(), success=(), failure=()) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=list(compare),
        success=[s if isinstance(s, rpc_pb2.RequestOp) else op(s) for s in success],
        failure=[f if isinstance(f, rpc_pb2.RequestOp) else op(f) for f in failure],
    )


def compact(revision: int, physical: bool = False) -> rpc_pb2.CompactionRequest:
    return rpc_pb2.CompactionRequest(revision=revision, physical=physical)


def lease_grant(lease_id: int, ttl: int = 3600) -> rpc_pb2.LeaseGrantRequest:
    return rpc_pb2.LeaseGrantRequest(ID=lease_id, TTL=ttl)


def lease_revoke(lease_id: int) -> rpc_pb2.LeaseRevokeRequest:
    return rpc_pb2.LeaseRevokeRequest(ID=lease_id)
