"""The recorded history of a robustness run, and the verdict format of its checkers.

Contract:
- Plain dataclasses, no protobuf. Requests and responses mirror etcd's KV/Lease/Compact RPCs, reduced
  to what the checkers use; ``Range.range_end`` follows etcd (b"" = the key alone, b"\\0" = every key
  from ``key``, otherwise [key, range_end)).
- ``Operation.call``/``ret`` are ``time.monotonic()`` seconds of one process. An operation with an
  ``error`` is of unknown outcome when it is a write (it may or may not have taken effect, so its
  return is +infinity); a read with an error is dropped; an error starting with ``"definite:"`` means
  the request certainly did not take effect, and it is dropped too. ``ret is None`` (the call never
  returned) is treated like an error without the "definite:" prefix.
- Nested responses of a ``TxnResponse`` carry the txn's revision (etcd gives them none of their own);
  the checkers ignore nested revisions.
- A DELETE event's kv is what etcd sends: only the key and mod_revision (value b"", create_revision,
  version and lease 0); a PUT event's kv is the full new KeyValue.
- A ``Watch`` is one logical watch: the client re-creates its stream after a break, from the last
  event's revision + 1 (or from its start revision if it saw no event). A ``WatchStream`` whose last
  response is ``canceled`` with ``compact_revision > 0`` ended because its start was compacted.
- Leases (checked by ``leases``): every LeaseKeepAlive attempt is a ``KeepAlive`` (``ttl`` is the answer's TTL,
  <= 0 meaning etcd's "lease not found"; None with ``error`` when the attempt failed) and every LeaseTimeToLive
  a ``LeaseCheck`` (etcd answers an unknown lease with TTL -1 and granted TTL 0). A ``KeptLease`` is a lease
  the traffic granted at its start, put one key on (``key``, with no other writer), kept alive for the whole
  run without ever revoking it, and watched expire at the end: every keep-alive of it is in the history. Its
  grant and put are ``Operation``s, and so are the reads of its key.
- ``History.to_json``/``from_json`` round-trip exactly: bytes are stored as latin-1 text, floats as
  JSON numbers (Python writes them with full precision), every dataclass tagged with its class name. A file
  written before the lease records existed reads with them empty.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "pyetcd-robustness-history/1"


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


# --- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Range:
    key: bytes
    range_end: bytes = b""
    revision: int = 0
    limit: int = 0
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    key: bytes
    target: str  # "mod" | "create" | "version" | "value" | "lease"
    result: str  # "=" | "!=" | "<" | ">"
    operand: int | bytes


@dataclass(frozen=True, slots=True)
class Txn:
    compares: list[Compare]
    success: list[Put | Delete | Range]
    failure: list[Put | Delete | Range]


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    ttl: int
    id: int


@dataclass(frozen=True, slots=True)
class LeaseRevoke:
    id: int


@dataclass(frozen=True, slots=True)
class Compact:
    revision: int


Request = Put | Range | Delete | Txn | LeaseGrant | LeaseRevoke | Compact

# --- responses ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeResponse:
    revision: int
    kvs: list[KeyValue]
    count: int
    more: bool = False


@dataclass(frozen=True, slots=True)
class PutResponse:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteResponse:
    revision: int
    deleted: int
    prev_kvs: list[KeyValue] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TxnResponse:
    revision: int
    succeeded: bool
    responses: list[RangeResponse | PutResponse | DeleteResponse]


@dataclass(frozen=True, slots=True)
class LeaseGrantResponse:
    revision: int
    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeResponse:
    revision: int


@dataclass(frozen=True, slots=True)
class CompactResponse:
    revision: int


Response = (
    RangeResponse
    | PutResponse
    | DeleteResponse
    | TxnResponse
    | LeaseGrantResponse
    | LeaseRevokeResponse
    | CompactResponse
)


@dataclass(slots=True)
class Operation:
    client: int
    call: float
    ret: float | None
    request: Request
    response: Response | None
    error: str | None = None


# --- watches -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # "PUT" | "DELETE"
    kv: KeyValue
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class WatchResponse:
    time: float
    revision: int  # the response header's revision
    events: list[WatchEvent]
    progress: bool = False  # a progress notification: no events, not created, not canceled
    compact_revision: int = 0
    canceled: bool = False
    created: bool = False


@dataclass(slots=True)
class WatchStream:
    start_revision: int  # as requested; 0 = "from now", then the created response's header + 1
    responses: list[WatchResponse]
    member: str = ""


@dataclass(slots=True)
class Watch:
    id: int
    key: bytes
    range_end: bytes
    start_revision: int
    prev_kv: bool
    streams: list[WatchStream]


# --- leases ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeepAlive:
    lease: int
    call: float  # when the request was sent
    ret: float  # when it was answered or failed
    ttl: int | None  # the answer's TTL: <= 0 = lease not found; None = no answer (see error)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseCheck:
    """One LeaseTimeToLive with keys: -1 with granted_ttl 0 (or an error NOT_FOUND) = lease not found."""

    lease: int
    call: float
    ret: float
    ttl: int | None  # seconds remaining, None = no answer (see error)
    granted_ttl: int = 0
    keys: list[bytes] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class KeptLease:
    id: int
    key: bytes  # put with the lease once at the start; nothing else writes it


@dataclass(slots=True)
class History:
    operations: list[Operation]
    watches: list[Watch]
    base_revision: int = 1  # the store's revision when the history starts (1 = empty etcd)
    base_state: list[KeyValue] = field(default_factory=list)
    keep_alives: list[KeepAlive] = field(default_factory=list)
    lease_checks: list[LeaseCheck] = field(default_factory=list)
    kept_leases: list[KeptLease] = field(default_factory=list)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"format": FORMAT, "history": _encode(self)}))

    @classmethod
    def from_json(cls, path: str | Path) -> History:
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        history = _decode(doc["history"], History)
        assert isinstance(history, History)
        return history


# --- checker verdicts --------------------------------------------------------------------------


@dataclass
class Result:
    ok: bool
    violations: list[str]
    warnings: list[str]
    operations_checked: int = 0
    writes: int = 0
    reads: int = 0
    duration_s: float = 0.0

    def summary(self, limit: int = 20) -> str:
        head = (
            f"{'OK' if self.ok else 'VIOLATED'}: {self.operations_checked} checked "
            f"({self.writes} writes, {self.reads} reads) in {self.duration_s:.2f}s, "
            f"{len(self.violations)} violations, {len(self.warnings)} warnings"
        )
        lines = [head] + [f"  violation: {v}" for v in self.violations[:limit]]
        lines += [f"  warning: {w}" for w in self.warnings[:limit]]
        return "\n".join(lines)


# --- JSON codec: type-directed, so bytes need no tag of their own --------------------------------

_CLASSES: dict[str, type] = {
    c.__name__: c
    for c in (
        KeyValue, Put, Range, Delete, Compare, Txn, LeaseGrant, LeaseRevoke, Compact,
        RangeResponse, PutResponse, DeleteResponse, TxnResponse, LeaseGrantResponse, LeaseRevokeResponse,
        CompactResponse, Operation, WatchEvent, WatchResponse, WatchStream, Watch, KeepAlive, LeaseCheck, KeptLease,
        History,
    )
}  # fmt: skip
_HINTS: dict[type, dict[str, object]] = {}


def _encode(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, object] = {"_t": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = _encode(getattr(obj, f.name))
        return out
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    if isinstance(obj, list | tuple):
        return [_encode(x) for x in obj]
    return obj


def _wants_bytes(hint: object) -> bool:
    if hint is bytes:
        return True
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and bytes in typing.get_args(hint)


def _decode(value: object, hint: object) -> object:
    if isinstance(value, dict):
        cls = _CLASSES[value["_t"]]
        if cls not in _HINTS:
            _HINTS[cls] = typing.get_type_hints(cls)
        hints = _HINTS[cls]
        return cls(**{k: _decode(v, hints[k]) for k, v in value.items() if k != "_t"})
    if isinstance(value, list):
        args = typing.get_args(hint)
        return [_decode(v, args[0] if args else object) for v in value]
    if isinstance(value, str) and _wants_bytes(hint):
        return value.encode("latin-1")
    return value
