"""etcd's KV semantics as a pure model, and a versioned store that serves any revision cheaply.

Contract:
- A ``Snapshot`` is a read-only KV state at one revision: ``get``, ``range`` (sorted by key, etcd's
  range_end rules) and ``leased`` (the live keys attached to a lease). ``State`` is a small dict-backed
  snapshot; ``VersionedStore.at(r)`` is the store at revision r (per key a list of (revision, value)
  and a bisect, so any revision costs O(log n) per key).
- ``apply_request(state, request, at)`` applies one request with etcd's rules and returns an
  ``Applied``: the state after it, the response etcd would give, and the watch events it produces.
  Every change of one request shares revision ``state.revision + 1``; a request that changes nothing
  (a delete of absent keys, a txn whose branch writes nothing, a failed compare with only ranges, a
  revoke of a lease without keys) leaves the revision alone and answers with the current one.
  ``at(r)`` serves ``Range.revision`` > 0; it is only needed for those.
- etcd rules kept here: a compare on an absent key sees mod/create/version/lease = 0, and a VALUE
  compare on an absent key is false whatever the operator; a put bumps version and keeps
  create_revision unless the key is new; a put attaches the key to its lease (0 detaches); a revoke
  deletes every attached key in one revision; a delete event's kv is only the key and mod_revision;
  ``count`` counts all matches, ``more`` is set only when ``limit`` cut kvs (so never for count_only),
  keys_only blanks values.
- ``RequestRejected`` is raised for requests etcd refuses (future revision, unknown compare target).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from robustness.history import (
    Compact,
    CompactResponse,
    Compare,
    Delete,
    DeleteResponse,
    KeyValue,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Request,
    Response,
    Txn,
    TxnResponse,
    WatchEvent,
)

ALL_KEYS = (b"\0", b"\0")  # (key, range_end) that selects every key


class RequestRejected(Exception):
    """etcd would refuse this request with an error, so it cannot have been answered."""


def prefix_end(prefix: bytes) -> bytes:
    """The exclusive range_end covering every key that starts with ``prefix``."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\0"
    p[-1] += 1
    return bytes(p)


def in_range(k: bytes, key: bytes, range_end: bytes) -> bool:
    if range_end == b"":
        return k == key
    if range_end == b"\0":
        return k >= key
    return key <= k < range_end


class Snapshot(Protocol):
    @property
    def revision(self) -> int: ...

    def get(self, key: bytes) -> KeyValue | None: ...

    def range(self, key: bytes, range_end: bytes) -> list[KeyValue]: ...

    def leased(self, lease: int) -> list[KeyValue]: ...


@dataclass(frozen=True)
class State:
    """A whole KV state in a dict; fine for tests and small models, copied on every change."""

    revision: int = 1
    kvs: Mapping[bytes, KeyValue] = field(default_factory=dict)

    def get(self, key: bytes) -> KeyValue | None:
        return self.kvs.get(key)

    def range(self, key: bytes, range_end: bytes) -> list[KeyValue]:
        return [self.kvs[k] for k in sorted(self.kvs) if in_range(k, key, range_end)]

    def leased(self, lease: int) -> list[KeyValue]:
        return [kv for kv in self.range(*ALL_KEYS) if kv.lease == lease]


class _Overlay:
    """A snapshot plus the uncommitted changes of one request, so a txn's ranges see its own writes."""

    def __init__(self, parent: Snapshot) -> None:
        self.parent = parent
        self.revision = parent.revision
        self.changes: dict[bytes, KeyValue | None] = {}

    def get(self, key: bytes) -> KeyValue | None:
        if key in self.changes:
            return self.changes[key]
        return self.parent.get(key)

    def range(self, key: bytes, range_end: bytes) -> list[KeyValue]:
        if not self.changes:
            return self.parent.range(key, range_end)
        merged = {kv.key: kv for kv in self.parent.range(key, range_end)}
        for k, kv in self.changes.items():
            if in_range(k, key, range_end):
                if kv is None:
                    merged.pop(k, None)
                else:
                    merged[k] = kv
        return [merged[k] for k in sorted(merged)]

    def leased(self, lease: int) -> list[KeyValue]:
        out = {kv.key: kv for kv in self.parent.leased(lease) if kv.key not in self.changes}
        out.update({k: kv for k, kv in self.changes.items() if kv is not None and kv.lease == lease})
        return [out[k] for k in sorted(out)]


class VersionedStore:
    """Every revision from ``base_revision`` on; revisions are appended one request at a time."""

    def __init__(self, base_revision: int = 1, base_state: Iterable[KeyValue] = ()) -> None:
        self.base_revision = base_revision
        self.revision = base_revision
        self._keys: list[bytes] = []  # sorted, every key that ever existed
        self._revs: dict[bytes, list[int]] = {}
        self._vals: dict[bytes, list[KeyValue | None]] = {}
        self._lease_keys: dict[int, set[bytes]] = {}  # every key ever attached to the lease
        self._set(base_revision, {kv.key: kv for kv in base_state})

    def _set(self, revision: int, changes: Mapping[bytes, KeyValue | None]) -> None:
        for key, kv in changes.items():
            if key not in self._revs:
                bisect.insort(self._keys, key)
                self._revs[key], self._vals[key] = [], []
            self._revs[key].append(revision)
            self._vals[key].append(kv)
            if kv is not None and kv.lease:
                self._lease_keys.setdefault(kv.lease, set()).add(key)

    def append(self, changes: Mapping[bytes, KeyValue | None]) -> int:
        """Record revision ``revision + 1`` (key -> new value, None = deleted); returns it."""
        self.revision += 1
        self._set(self.revision, changes)
        return self.revision

    def append_events(self, events: Iterable[WatchEvent]) -> int:
        return self.append({ev.kv.key: (ev.kv if ev.type == "PUT" else None) for ev in events})

    def get(self, key: bytes, revision: int) -> KeyValue | None:
        revs = self._revs.get(key)
        if not revs:
            return None
        i = bisect.bisect_right(revs, revision) - 1
        return self._vals[key][i] if i >= 0 else None

    def keys(self, key: bytes, range_end: bytes) -> list[bytes]:
        if range_end == b"":
            return [key] if key in self._revs else []
        lo = bisect.bisect_left(self._keys, key)
        if range_end == b"\0":
            return self._keys[lo:]
        return self._keys[lo : bisect.bisect_left(self._keys, range_end)] if range_end > key else []

    def lease_keys(self, lease: int) -> set[bytes]:
        return self._lease_keys.get(lease, set())

    def at(self, revision: int) -> StoreView:
        if not self.base_revision <= revision <= self.revision:
            raise RequestRejected(f"revision {revision} outside [{self.base_revision}, {self.revision}]")
        return StoreView(self, revision)


class StoreView:
    def __init__(self, store: VersionedStore, revision: int) -> None:
        self.store = store
        self.revision = revision

    def get(self, key: bytes) -> KeyValue | None:
        return self.store.get(key, self.revision)

    def range(self, key: bytes, range_end: bytes) -> list[KeyValue]:
        get, rev = self.store.get, self.revision
        return [kv for k in self.store.keys(key, range_end) if (kv := get(k, rev)) is not None]

    def leased(self, lease: int) -> list[KeyValue]:
        kvs = (self.get(k) for k in sorted(self.store.lease_keys(lease)))
        return [kv for kv in kvs if kv is not None and kv.lease == lease]


# --- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    state: Snapshot
    response: Response
    events: list[WatchEvent]


def compare_holds(kv: KeyValue | None, c: Compare) -> bool:
    if c.target == "value":
        if kv is None or not isinstance(c.operand, bytes):
            return False
        actual: int | bytes = kv.value
    elif c.target in ("mod", "create", "version", "lease"):
        if kv is None:
            actual = 0
        else:
            actual = {"mod": kv.mod_revision, "create": kv.create_revision, "version": kv.version, "lease": kv.lease}[
                c.target
            ]
    else:
        raise RequestRejected(f"unknown compare target {c.target!r}")
    if c.result == "=":
        return actual == c.operand
    if c.result == "!=":
        return actual != c.operand
    if c.result == "<":
        return actual < c.operand  # type: ignore[operator]
    if c.result == ">":
        return actual > c.operand  # type: ignore[operator]
    raise RequestRejected(f"unknown compare result {c.result!r}")


def is_write(request: Request) -> bool:
    """Whether the request may change the KV store (and so may take a revision)."""
    if isinstance(request, Put | Delete | LeaseRevoke):
        return True
    if isinstance(request, Txn):
        return any(isinstance(op, Put | Delete) for op in request.success + request.failure)
    return False


def is_read(request: Request) -> bool:
    return isinstance(request, Range) or (isinstance(request, Txn) and not is_write(request))


def classify(op: Operation) -> str | None:
    """How the checkers treat an operation: "write", "read" or "noop" (lease grant, compact) when it was
    answered, "unknown" for a write that may or may not have happened, None when it is dropped (a read
    that failed, or any request that certainly did not take effect)."""
    if op.error is not None and op.error.startswith("definite:"):
        return None
    write = is_write(op.request)
    if op.error is not None or op.response is None or op.ret is None:
        return "unknown" if write else None
    if write:
        return "write"
    return "read" if is_read(op.request) else "noop"


def range_response(state: Snapshot, req: Range, header: int, at: Callable[[int], Snapshot] | None) -> RangeResponse:
    src = state
    if req.revision > 0:
        if req.revision > header:
            raise RequestRejected(f"future revision {req.revision} (current {header})")
        if at is None:
            raise RequestRejected("no store to serve a read at a past revision")
        src = at(req.revision)
    kvs = src.range(req.key, req.range_end)
    count = len(kvs)
    if req.count_only:
        return RangeResponse(header, [], count, False)
    more = 0 < req.limit < count
    if more:
        kvs = kvs[: req.limit]
    if req.keys_only:
        kvs = [replace(kv, value=b"") for kv in kvs]
    return RangeResponse(header, kvs, count, more)


def apply_request(state: Snapshot, request: Request, at: Callable[[int], Snapshot] | None = None) -> Applied:
    rev = state.revision
    if isinstance(request, Range):
        return Applied(state, range_response(state, request, rev, at), [])
    if isinstance(request, LeaseGrant):
        return Applied(state, LeaseGrantResponse(rev, request.id, request.ttl), [])
    if isinstance(request, Compact):
        if request.revision > rev:
            raise RequestRejected(f"compact to future revision {request.revision} (current {rev})")
        return Applied(state, CompactResponse(rev), [])
    tx = _Overlay(state)
    events: list[WatchEvent] = []
    new = rev + 1  # the revision every change of this request gets, if there is any
    if isinstance(request, Put):
        response: Response = _put(tx, request, new, events)
    elif isinstance(request, Delete):
        response = _delete(tx, request, new, events)
    elif isinstance(request, LeaseRevoke):
        for kv in state.leased(request.id):
            _delete_key(tx, kv, new, events)
        response = LeaseRevokeResponse(new if events else rev)
    elif isinstance(request, Txn):
        succeeded = all(compare_holds(state.get(c.key), c) for c in request.compares)
        nested: list[RangeResponse | PutResponse | DeleteResponse] = []
        for op in request.success if succeeded else request.failure:
            if isinstance(op, Put):
                nested.append(_put(tx, op, new, events))
            elif isinstance(op, Delete):
                nested.append(_delete(tx, op, new, events))
            else:
                nested.append(range_response(tx, op, new if tx.changes else rev, at))
        final = new if events else rev
        response = TxnResponse(final, succeeded, [replace(r, revision=final) for r in nested])
    else:
        raise RequestRejected(f"unknown request {request!r}")
    if not events:
        # Nothing changed: the request answers with the current revision, not the one it would have taken.
        return Applied(state, replace(response, revision=rev), [])
    return Applied(_commit(state, tx.changes, new), response, events)


def _put(tx: _Overlay, req: Put, rev: int, events: list[WatchEvent]) -> PutResponse:
    old = tx.get(req.key)
    if old is None:
        kv = KeyValue(req.key, req.value, rev, rev, 1, req.lease)
    else:
        kv = KeyValue(req.key, req.value, old.create_revision, rev, old.version + 1, req.lease)
    tx.changes[req.key] = kv
    events.append(WatchEvent("PUT", kv, old))
    return PutResponse(rev, old if req.prev_kv else None)


def _delete_key(tx: _Overlay, old: KeyValue, rev: int, events: list[WatchEvent]) -> None:
    tx.changes[old.key] = None
    events.append(WatchEvent("DELETE", KeyValue(old.key, b"", 0, rev, 0, 0), old))


def _delete(tx: _Overlay, req: Delete, rev: int, events: list[WatchEvent]) -> DeleteResponse:
    olds = tx.range(req.key, req.range_end)
    for old in olds:
        _delete_key(tx, old, rev, events)
    return DeleteResponse(rev, len(olds), list(olds) if req.prev_kv else [])


def _commit(state: Snapshot, changes: Mapping[bytes, KeyValue | None], rev: int) -> Snapshot:
    if isinstance(state, State):
        kvs = dict(state.kvs)
        for k, kv in changes.items():
            if kv is None:
                kvs.pop(k, None)
            else:
                kvs[k] = kv
        return State(rev, kvs)
    view = _Overlay(state)
    view.changes = dict(changes)
    view.revision = rev
    return view


# --- comparing answers -------------------------------------------------------------------------


def event_map(events: Iterable[WatchEvent]) -> dict[bytes, tuple[str, KeyValue]]:
    """One revision's changes by key, without prev_kv (watches may or may not carry it)."""
    return {ev.kv.key: (ev.type, ev.kv) for ev in events}


def same_response(expected: Response, got: Response) -> bool:
    """Whether ``got`` is the answer the model gives; nested txn revisions and lease TTLs are ignored."""
    if type(expected) is not type(got):
        return False
    if isinstance(expected, TxnResponse):
        assert isinstance(got, TxnResponse)
        return (
            expected.revision == got.revision
            and expected.succeeded == got.succeeded
            and len(expected.responses) == len(got.responses)
            and all(
                type(a) is type(b) and replace(a, revision=0) == replace(b, revision=0)
                for a, b in zip(expected.responses, got.responses, strict=True)
            )
        )
    if isinstance(expected, LeaseGrantResponse):
        # The server may choose the ID (request id 0) and raise the TTL to its minimum.
        assert isinstance(got, LeaseGrantResponse)
        return expected.revision == got.revision and expected.id in (0, got.id)
    return expected == got


def claims_change(response: Response) -> bool | None:
    """Whether a write's own answer says it changed the store (None: the answer cannot tell)."""
    if isinstance(response, PutResponse):
        return True
    if isinstance(response, DeleteResponse):
        return response.deleted > 0
    if isinstance(response, TxnResponse):
        return any(
            isinstance(r, PutResponse) or (isinstance(r, DeleteResponse) and r.deleted > 0) for r in response.responses
        )
    return None
