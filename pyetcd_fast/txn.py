"""Transactions: compares and operations for ``Client.txn``.

Contract: ``client.txn(compare=[...], success=[...], failure=[...])`` runs as one etcd Txn. A compare is
written with a target and an operator, ``txn.value("k") == "v"``, ``txn.version("k") > 0``,
``txn.mod("k") < rev``, ``txn.create("k") == 0`` (the key does not exist), ``txn.lease("k") != 0``, each
also over a range (``range_end=``, or ``prefix=True``). Operations are ``txn.get``, ``txn.put``,
``txn.delete`` and ``txn.txn`` (a nested transaction). The answer lists one response per operation of the
branch taken, nested answers as ``TxnResponse``. Compares and operations are plain tuples of bytes and
numbers, which the native client encodes; nothing here runs per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyetcd_fast._native import ResponseHeader

__all__ = [
    "Compare",
    "Op",
    "TxnResponse",
    "create",
    "delete",
    "end_of",
    "get",
    "lease",
    "mod",
    "prefix_range_end",
    "put",
    "response_of",
    "to_bytes",
    "txn",
    "value",
    "version",
]

Data = bytes | str
Compare = tuple[int, int, bytes, bytes, bytes, int]
Op = tuple[object, ...]

EQUAL, GREATER, LESS, NOT_EQUAL = 0, 1, 2, 3
VERSION, CREATE, MOD, VALUE, LEASE = 0, 1, 2, 3, 4


def to_bytes(x: Data) -> bytes:
    """``str`` as UTF-8; ``bytes`` as is."""
    return x.encode() if isinstance(x, str) else bytes(x)


def prefix_range_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with ``prefix`` (etcd's GetPrefixRangeEnd): the prefix
    with its last byte below 0xff incremented and what follows dropped; ``b"\\0"`` (every key) if none is."""
    for i in range(len(prefix) - 1, -1, -1):
        if prefix[i] < 0xFF:
            return prefix[:i] + bytes([prefix[i] + 1])
    return b"\0"


def end_of(key: bytes, end: Data | None, prefix: bool = False) -> bytes:
    """The range end of ``key`` with an explicit ``end``, or of every key under it with ``prefix``."""
    if prefix:
        return prefix_range_end(key)
    return to_bytes(end) if end is not None else b""


class Target:
    """What a compare looks at; an operator with a value makes the compare."""

    def __init__(self, target: int, key: Data, range_end: Data | None = None, prefix: bool = False) -> None:
        self.target = target
        self.key = to_bytes(key)
        self.range_end = end_of(self.key, range_end, prefix)

    def _cmp(self, result: int, other: Data | int) -> Compare:
        if self.target == VALUE:
            if isinstance(other, int):
                raise TypeError("a value compares with bytes or str")
            return (self.target, result, self.key, self.range_end, to_bytes(other), 0)
        if not isinstance(other, int):
            raise TypeError("version, create, mod and lease compare with an int")
        return (self.target, result, self.key, self.range_end, b"", other)

    def __eq__(self, other: Data | int) -> Compare:  # type: ignore[override]
        return self._cmp(EQUAL, other)

    def __ne__(self, other: Data | int) -> Compare:  # type: ignore[override]
        return self._cmp(NOT_EQUAL, other)

    def __gt__(self, other: Data | int) -> Compare:
        return self._cmp(GREATER, other)

    def __lt__(self, other: Data | int) -> Compare:
        return self._cmp(LESS, other)

    __hash__ = None  # type: ignore[assignment]


def version(key: Data, range_end: Data | None = None, *, prefix: bool = False) -> Target:
    return Target(VERSION, key, range_end, prefix)


def create(key: Data, range_end: Data | None = None, *, prefix: bool = False) -> Target:
    """The create revision (0: the key does not exist)."""
    return Target(CREATE, key, range_end, prefix)


def mod(key: Data, range_end: Data | None = None, *, prefix: bool = False) -> Target:
    return Target(MOD, key, range_end, prefix)


def value(key: Data, range_end: Data | None = None, *, prefix: bool = False) -> Target:
    return Target(VALUE, key, range_end, prefix)


def lease(key: Data, range_end: Data | None = None, *, prefix: bool = False) -> Target:
    return Target(LEASE, key, range_end, prefix)


SORT_ORDERS = {"none": 0, "ascend": 1, "descend": 2}
SORT_TARGETS = {"key": 0, "version": 1, "create": 2, "mod": 3, "value": 4}


def get(
    key: Data,
    range_end: Data | None = None,
    *,
    prefix: bool = False,
    limit: int = 0,
    revision: int = 0,
    sort_order: str = "none",
    sort_target: str = "key",
    serializable: bool = False,
    keys_only: bool = False,
    count_only: bool = False,
) -> Op:
    k = to_bytes(key)
    end = end_of(k, range_end, prefix)
    return (0, k, end, limit, revision, SORT_ORDERS[sort_order], SORT_TARGETS[sort_target], serializable, keys_only,
            count_only)  # fmt: skip


def put(
    key: Data,
    value: Data,
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> Op:
    return (1, to_bytes(key), to_bytes(value), lease, prev_kv, ignore_value, ignore_lease)


def delete(key: Data, range_end: Data | None = None, *, prefix: bool = False, prev_kv: bool = False) -> Op:
    k = to_bytes(key)
    return (2, k, end_of(k, range_end, prefix), prev_kv)


def txn(compare: Sequence[Compare] = (), success: Sequence[Op] = (), failure: Sequence[Op] = ()) -> Op:
    """A transaction nested in another."""
    return (3, list(compare), list(success), list(failure))


@dataclass(frozen=True)
class TxnResponse:
    header: ResponseHeader
    succeeded: bool
    responses: list[object]
    """One per operation of the branch taken: RangeResponse, PutResponse, DeleteResponse or TxnResponse."""


def response_of(answer: tuple[object, ...]) -> object:
    """The typed response of one native answer tuple."""
    from pyetcd_fast.client import DeleteResponse, PutResponse, RangeResponse

    kind = answer[0]
    if kind == 0:
        _, h, kvs, more, count = answer
        return RangeResponse(h, kvs, more, count)  # type: ignore[arg-type]
    if kind == 1:
        _, h, prev = answer
        return PutResponse(h, prev)  # type: ignore[arg-type]
    if kind == 2:
        _, h, deleted, prev = answer
        return DeleteResponse(h, deleted, prev)  # type: ignore[arg-type]
    _, h, ok, answers = answer
    return TxnResponse(h, ok, [response_of(a) for a in answers])  # type: ignore[arg-type, attr-defined]
