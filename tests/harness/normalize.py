"""Turn responses from two different servers into values that compare exactly.

What differs between two correct servers, and how it is removed:

- ``header.cluster_id``, ``header.member_id`` and ``header.raft_term`` depend on
  the member's URLs and election history; they are dropped.
- Absolute revisions depend on everything the server saw before. Tests pass a
  ``base`` revision (read at the start of a sequence) and every revision field
  that is *present* becomes the string ``"@+k"`` = value - base. Fields absent
  on the wire (zero in proto3) stay absent, so "this nested header has no
  revision" remains observable and is compared too.

Bytes fields are decoded from MessageToDict's base64 back to ``bytes`` so a
failing assertion shows readable keys and values.
"""

from __future__ import annotations

import base64
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

ID_FIELDS = ("cluster_id", "member_id", "raft_term")
REVISION_FIELDS = frozenset({"revision", "create_revision", "mod_revision", "compact_revision"})
BYTES_FIELDS = frozenset({"key", "value", "range_end", "keys", "blob"})


def rebase(obj: Any, base: int | None) -> Any:
    """Recursively strip ids, rebase revisions and decode bytes in a MessageToDict result."""
    if isinstance(obj, list):
        return [rebase(x, base) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if k == "header" and isinstance(v, dict):
            v = {hk: hv for hk, hv in v.items() if hk not in ID_FIELDS}
        if k in REVISION_FIELDS and isinstance(v, (str, int)) and base is not None:
            out[k] = f"@{int(v) - base:+d}"
        elif k in BYTES_FIELDS and isinstance(v, str):
            out[k] = base64.b64decode(v)
        elif k in BYTES_FIELDS and isinstance(v, list):
            out[k] = [base64.b64decode(x) for x in v]
        else:
            out[k] = rebase(v, base)
    return out


def message_dict(msg: Message, base: int | None) -> dict[str, Any]:
    return rebase(MessageToDict(msg, preserving_proto_field_name=True), base)


def error_dict(err: grpc.RpcError) -> dict[str, Any]:
    return {"error": {"code": err.code().name, "details": err.details()}}


def outcome(result: Message | grpc.RpcError, base: int | None) -> dict[str, Any]:
    """A comparable value for either a response or a gRPC error."""
    if isinstance(result, grpc.RpcError):
        return error_dict(result)
    return {"ok": message_dict(result, base)}


def error(o: dict[str, Any]) -> tuple[str, str]:
    """(gRPC code name, details) of an outcome that must be an error."""
    assert "error" in o, f"expected an error, got {o}"
    return o["error"]["code"], o["error"]["details"]


def ok(o: dict[str, Any]) -> dict[str, Any]:
    """The response of an outcome that must have succeeded."""
    assert "ok" in o, f"expected a response, got {o}"
    return o["ok"]
