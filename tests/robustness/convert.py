"""Conversion between the recorded history's dataclasses and etcd's protobuf messages.

Contract:
- ``request_pb(req)`` turns a history request (``Put``, ``Range``, ``Delete``, ``Txn``, ``LeaseGrant``,
  ``LeaseRevoke``, ``Compact``) into the protobuf request etcd takes; compactions are never physical.
- ``response(req, pb)`` turns the protobuf answer to ``req`` into the history's response, field for field:
  every kv with all six fields, ``prev_kv`` only when the server sent one, the deleted count, a txn's
  ``succeeded`` and its nested responses. Nested responses carry the txn's header revision (etcd gives them
  headers of their own that the checkers ignore; see ``history``).
- ``watch_response(pb, t)`` records one WatchResponse as the server sent it: a DELETE event's kv keeps
  exactly the fields the server filled (etcd fills only key and mod_revision), and a response with no
  events that is neither created nor canceled is a progress notification.
- ``keep_alive(lease, call, ret, pb)`` and ``lease_check(lease, call, ret, pb)`` record a LeaseKeepAlive and a
  LeaseTimeToLive answer with the TTLs as sent (etcd's "not found" is TTL 0, resp. TTL -1 and granted TTL 0).
- Conversion never fixes up what the server sent: a wrong field must reach the checkers unchanged.
"""

from __future__ import annotations

from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2
from pyetcd_fast.etcdpb.mvccpb import kv_pb2
from robustness.history import (
    Compact,
    CompactResponse,
    Compare,
    Delete,
    DeleteResponse,
    KeepAlive,
    KeyValue,
    LeaseCheck,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Request,
    Response,
    Txn,
    TxnResponse,
    WatchEvent,
    WatchResponse,
)

_TARGET = {
    "version": (rpc_pb2.Compare.VERSION, "version"),
    "create": (rpc_pb2.Compare.CREATE, "create_revision"),
    "mod": (rpc_pb2.Compare.MOD, "mod_revision"),
    "value": (rpc_pb2.Compare.VALUE, "value"),
    "lease": (rpc_pb2.Compare.LEASE, "lease"),
}
_RESULT = {
    "=": rpc_pb2.Compare.EQUAL,
    "!=": rpc_pb2.Compare.NOT_EQUAL,
    "<": rpc_pb2.Compare.LESS,
    ">": rpc_pb2.Compare.GREATER,
}

# --- requests: history -> protobuf ---------------------------------------------------------------


def range_pb(r: Range) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=r.key,
        range_end=r.range_end,
        revision=r.revision,
        limit=r.limit,
        serializable=r.serializable,
        keys_only=r.keys_only,
        count_only=r.count_only,
    )


def put_pb(p: Put) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=p.key, value=p.value, lease=p.lease, prev_kv=p.prev_kv)


def delete_pb(d: Delete) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(key=d.key, range_end=d.range_end, prev_kv=d.prev_kv)


def compare_pb(c: Compare) -> rpc_pb2.Compare:
    target, field = _TARGET[c.target]
    return rpc_pb2.Compare(key=c.key, target=target, result=_RESULT[c.result], **{field: c.operand})


def _request_op(op: Put | Delete | Range) -> rpc_pb2.RequestOp:
    if isinstance(op, Put):
        return rpc_pb2.RequestOp(request_put=put_pb(op))
    if isinstance(op, Delete):
        return rpc_pb2.RequestOp(request_delete_range=delete_pb(op))
    return rpc_pb2.RequestOp(request_range=range_pb(op))


def txn_pb(t: Txn) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=[compare_pb(c) for c in t.compares],
        success=[_request_op(op) for op in t.success],
        failure=[_request_op(op) for op in t.failure],
    )


def request_pb(req: Request):  # -> the matching rpc_pb2 request message
    if isinstance(req, Put):
        return put_pb(req)
    if isinstance(req, Range):
        return range_pb(req)
    if isinstance(req, Delete):
        return delete_pb(req)
    if isinstance(req, Txn):
        return txn_pb(req)
    if isinstance(req, LeaseGrant):
        return rpc_pb2.LeaseGrantRequest(TTL=req.ttl, ID=req.id)
    if isinstance(req, LeaseRevoke):
        return rpc_pb2.LeaseRevokeRequest(ID=req.id)
    if isinstance(req, Compact):
        return rpc_pb2.CompactionRequest(revision=req.revision, physical=False)
    raise TypeError(f"no protobuf request for {req!r}")


# --- responses: protobuf -> history --------------------------------------------------------------


def key_value(kv: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def range_response(pb: rpc_pb2.RangeResponse, revision: int) -> RangeResponse:
    return RangeResponse(revision, [key_value(kv) for kv in pb.kvs], pb.count, pb.more)


def put_response(pb: rpc_pb2.PutResponse, revision: int) -> PutResponse:
    return PutResponse(revision, key_value(pb.prev_kv) if pb.HasField("prev_kv") else None)


def delete_response(pb: rpc_pb2.DeleteRangeResponse, revision: int) -> DeleteResponse:
    return DeleteResponse(revision, pb.deleted, [key_value(kv) for kv in pb.prev_kvs])


def txn_response(pb: rpc_pb2.TxnResponse, revision: int) -> TxnResponse:
    nested: list[RangeResponse | PutResponse | DeleteResponse] = []
    for r in pb.responses:
        which = r.WhichOneof("response")
        if which == "response_range":
            nested.append(range_response(r.response_range, revision))
        elif which == "response_put":
            nested.append(put_response(r.response_put, revision))
        elif which == "response_delete_range":
            nested.append(delete_response(r.response_delete_range, revision))
        else:
            # Our traffic sends no nested txns; anything else is a server answering what was not asked.
            raise ValueError(f"unexpected nested txn response {which!r}")
    return TxnResponse(revision, pb.succeeded, nested)


def response(req: Request, pb) -> Response:  # pb: the rpc_pb2 response to ``req``
    revision = pb.header.revision
    if isinstance(req, Range):
        return range_response(pb, revision)
    if isinstance(req, Put):
        return put_response(pb, revision)
    if isinstance(req, Delete):
        return delete_response(pb, revision)
    if isinstance(req, Txn):
        return txn_response(pb, revision)
    if isinstance(req, LeaseGrant):
        return LeaseGrantResponse(revision, pb.ID, pb.TTL)
    if isinstance(req, LeaseRevoke):
        return LeaseRevokeResponse(revision)
    if isinstance(req, Compact):
        return CompactResponse(revision)
    raise TypeError(f"no history response for {req!r}")


def keep_alive(lease: int, call: float, ret: float, pb: rpc_pb2.LeaseKeepAliveResponse) -> KeepAlive:
    return KeepAlive(lease, call, ret, pb.TTL)


def lease_check(lease: int, call: float, ret: float, pb: rpc_pb2.LeaseTimeToLiveResponse) -> LeaseCheck:
    return LeaseCheck(lease, call, ret, pb.TTL, pb.grantedTTL, list(pb.keys))


# --- watches -------------------------------------------------------------------------------------

_EVENT_TYPE = {kv_pb2.Event.PUT: "PUT", kv_pb2.Event.DELETE: "DELETE"}


def watch_event(ev: kv_pb2.Event) -> WatchEvent:
    # An unknown type is kept by number so the checker reports it instead of this code failing.
    kind = _EVENT_TYPE.get(ev.type, str(ev.type))
    return WatchEvent(kind, key_value(ev.kv), key_value(ev.prev_kv) if ev.HasField("prev_kv") else None)


def watch_response(pb: rpc_pb2.WatchResponse, t: float) -> WatchResponse:
    events = [watch_event(ev) for ev in pb.events]
    return WatchResponse(
        time=t,
        revision=pb.header.revision,
        events=events,
        progress=not events and not pb.created and not pb.canceled,
        compact_revision=pb.compact_revision,
        canceled=pb.canceled,
        created=pb.created,
    )
