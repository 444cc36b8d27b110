"""``pyetcd_fast.Client``: a synchronous etcd v3 client whose request path is native.

Contract: every call encodes its request, crosses HTTP/2 and decodes the answer in Rust
(``pyetcd_fast._native.Client``) with the GIL released; this module only turns arguments into bytes and
numbers and answers into small typed objects. Keys and values are ``bytes`` or ``str`` (UTF-8); results
are ``KeyValue`` objects whose ``key`` and ``value`` are ``bytes``. etcd's errors are raised as the classes
in ``pyetcd_fast.errors``. It works against any etcd 3.x, not only pyetcd_fast.

Endpoints are tried in order; when the connected one fails the client moves to the next (a read is sent
again there; a write only if it never left). With ``user`` and ``password`` it authenticates first and
again whenever the server says the token expired.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from pyetcd_fast import _native
from pyetcd_fast import txn as _txn
from pyetcd_fast._native import Event, KeyValue, ResponseHeader
from pyetcd_fast.txn import end_of, prefix_range_end, to_bytes

__all__ = [
    "Client",
    "DeleteResponse",
    "Event",
    "KeyValue",
    "Lease",
    "LeaseTimeToLive",
    "PutResponse",
    "RangeResponse",
    "ResponseHeader",
    "Status",
    "Watch",
    "prefix_range_end",
]

Data = bytes | str
SortOrder = Literal["none", "ascend", "descend"]
SortTarget = Literal["key", "version", "create", "mod", "value"]
DEFAULT_ENDPOINT = "127.0.0.1:2379"


@dataclass(frozen=True)
class RangeResponse:
    header: ResponseHeader
    kvs: list[KeyValue]
    more: bool
    count: int


@dataclass(frozen=True)
class PutResponse:
    header: ResponseHeader
    prev_kv: KeyValue | None


@dataclass(frozen=True)
class DeleteResponse:
    header: ResponseHeader
    deleted: int
    prev_kvs: list[KeyValue]


@dataclass(frozen=True)
class LeaseTimeToLive:
    header: ResponseHeader
    id: int
    ttl: int
    """Seconds left; -1 when the lease has expired or does not exist."""
    granted_ttl: int
    keys: list[bytes]


@dataclass(frozen=True)
class Status:
    header: ResponseHeader
    version: str
    db_size: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    errors: list[str]
    db_size_in_use: int
    is_learner: bool


@dataclass(frozen=True)
class Lease:
    """A granted lease: attach it to keys with ``put(..., lease=lease)``."""

    id: int
    ttl: int
    client: Client

    def revoke(self) -> ResponseHeader:
        """Ends the lease now, deleting its keys."""
        return self.client.revoke(self.id)

    def time_to_live(self, keys: bool = False) -> LeaseTimeToLive:
        return self.client.time_to_live(self.id, keys=keys)


FILTERS = {"noput": 0, "nodelete": 1}


class Watch:
    """The events of a watch, in revision order (an iterator; ``for event in watch``).

    It resumes by itself after a disconnect or a leader change, from the revision after the last one it
    delivered (no event lost or repeated; a revision's events arrive together). ``cancel()`` (or leaving a
    ``with`` block) ends it; Ctrl-C interrupts a wait at once. A compacted start revision raises
    ``errors.Compacted``, whose ``compact_revision`` says where history now begins.
    """

    def __init__(self, native: _native.Watch) -> None:
        self._native = native
        self._buf: deque[Event] = deque()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        while not self._buf:
            batch = self._native.next_batch(None)
            if batch is None:
                raise StopIteration
            self._buf.extend(batch[1])
        return self._buf.popleft()

    def next_batch(self, timeout: float | None = None) -> tuple[int, list[Event]] | None:
        """The next answer's events with its header revision (no events: a progress notification); None
        once canceled; ``errors.Timeout`` after ``timeout`` seconds without one."""
        if self._buf:
            events = list(self._buf)
            self._buf.clear()
            return (events[-1].kv.mod_revision, events)
        return self._native.next_batch(timeout)

    def request_progress(self) -> None:
        """Asks the server how far the watch is; the answer comes as an empty batch."""
        self._native.request_progress()

    @property
    def next_revision(self) -> int:
        """The revision the watch would resume from."""
        return self._native.next_revision

    def cancel(self) -> None:
        self._native.cancel()

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()


class Client:
    """A connection to an etcd cluster.

    ``endpoints``: ``"host:port"`` or a list of them (``http://`` or ``https://`` URLs too). ``timeout`` is
    each call's deadline in seconds (a call's own ``timeout=`` overrides it). TLS: ``ca_cert`` (the CA to
    trust), ``cert`` and ``key`` (a client certificate). ``user`` and ``password``: etcd auth.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] = DEFAULT_ENDPOINT,
        *,
        timeout: float = 5.0,
        dial_timeout: float = 2.0,
        ca_cert: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        creds = (user, password or "") if user is not None else None
        self._native = _native.Client(eps, timeout, dial_timeout, ca_cert, cert, key, creds)

    @property
    def endpoints(self) -> list[str]:
        return self._native.endpoints

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Drops the connection (it also goes when the client is garbage-collected)."""
        self._native = _Closed()  # type: ignore[assignment]

    # -- KV ----------------------------------------------------------------------------------------------

    def get(
        self, key: Data, *, revision: int = 0, serializable: bool = False, timeout: float | None = None
    ) -> KeyValue | None:
        """The key's current value (or at ``revision``), or None when it does not exist."""
        _, kvs, _, _ = self._native.range(to_bytes(key), b"", 0, revision, 0, 0, serializable, False, False, timeout)
        return kvs[0] if kvs else None

    def get_prefix(
        self,
        prefix: Data,
        *,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrder = "ascend",
        sort_target: SortTarget = "key",
        keys_only: bool = False,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> list[KeyValue]:
        """Every key starting with ``prefix``, sorted by key unless asked otherwise."""
        p = to_bytes(prefix)
        return self.get_range(
            p,
            prefix_range_end(p),
            limit=limit,
            revision=revision,
            sort_order=sort_order,
            sort_target=sort_target,
            keys_only=keys_only,
            serializable=serializable,
            timeout=timeout,
        ).kvs

    def get_range(
        self,
        key: Data,
        range_end: Data | None = None,
        *,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrder = "none",
        sort_target: SortTarget = "key",
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        timeout: float | None = None,
    ) -> RangeResponse:
        """The keys in ``[key, range_end)`` (``from_key``: every key from ``key`` on), with etcd's options."""
        op = _txn.get(
            key,
            b"\0" if from_key else range_end,
            limit=limit,
            revision=revision,
            sort_order=sort_order,
            sort_target=sort_target,
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
        )
        h, kvs, more, count = self._native.range(*op[1:], timeout)  # type: ignore[arg-type, call-arg]
        return RangeResponse(h, kvs, more, count)

    def put(
        self,
        key: Data,
        value: Data,
        *,
        lease: Lease | int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        timeout: float | None = None,
    ) -> PutResponse:
        """Sets ``key`` to ``value`` (attached to ``lease`` if given)."""
        lease_id = lease.id if isinstance(lease, Lease) else lease
        h, prev = self._native.put(
            to_bytes(key), to_bytes(value), lease_id, prev_kv, ignore_value, ignore_lease, timeout
        )
        return PutResponse(h, prev)

    def delete(
        self,
        key: Data,
        *,
        range_end: Data | None = None,
        prefix: bool = False,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> DeleteResponse:
        """Deletes ``key`` (or ``[key, range_end)``, or every key starting with ``key`` when ``prefix``)."""
        k = to_bytes(key)
        end = end_of(k, range_end, prefix)
        h, deleted, prev = self._native.delete_range(k, end, prev_kv, timeout)
        return DeleteResponse(h, deleted, prev)

    def delete_prefix(self, prefix: Data, *, prev_kv: bool = False, timeout: float | None = None) -> DeleteResponse:
        return self.delete(prefix, prefix=True, prev_kv=prev_kv, timeout=timeout)

    def txn(
        self,
        compare: Sequence[_txn.Compare] = (),
        success: Sequence[_txn.Op] = (),
        failure: Sequence[_txn.Op] = (),
        *,
        timeout: float | None = None,
    ) -> _txn.TxnResponse:
        """One etcd Txn: if every ``compare`` holds, the ``success`` operations, else the ``failure`` ones (see
        ``pyetcd_fast.txn`` for how to write them)."""
        h, ok, answers = self._native.txn(list(compare), list(success), list(failure), timeout)
        return _txn.TxnResponse(h, ok, [_txn.response_of(a) for a in answers])

    def watch(
        self,
        key: Data,
        *,
        range_end: Data | None = None,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Sequence[Literal["noput", "nodelete"]] = (),
        progress_notify: bool = False,
    ) -> Watch:
        """The changes to ``key`` (or ``[key, range_end)``, or every key starting with ``key`` when
        ``prefix``) from ``start_revision`` (0: from now on)."""
        k = to_bytes(key)
        end = end_of(k, range_end, prefix)
        fs = [FILTERS[f] for f in filters]
        if start_revision == 0:
            # "From now" is now, not when the first event is asked for: the store's revision at this call.
            start_revision = self._native.range(k, end, 1, 0, 0, 0, False, False, True)[0].revision + 1
        return Watch(self._native.watch(k, end, start_revision, prev_kv, fs, progress_notify))

    def watch_prefix(self, prefix: Data, **kw: object) -> Watch:
        """``watch(prefix, prefix=True, ...)``."""
        return self.watch(prefix, prefix=True, **kw)  # type: ignore[arg-type]

    def compact(self, revision: int, *, physical: bool = False, timeout: float | None = None) -> ResponseHeader:
        """Drops the history before ``revision``."""
        return self._native.compact(revision, physical, timeout)

    # -- leases ------------------------------------------------------------------------------------------

    def grant(self, ttl: int, *, id: int = 0, timeout: float | None = None) -> Lease:
        """A new lease of ``ttl`` seconds (``id`` 0: the server picks one)."""
        _, lease_id, granted = self._native.lease_grant(ttl, id, timeout)
        return Lease(lease_id, granted, self)

    def revoke(self, lease: Lease | int, *, timeout: float | None = None) -> ResponseHeader:
        return self._native.lease_revoke(lease.id if isinstance(lease, Lease) else lease, timeout)

    def time_to_live(self, lease: Lease | int, *, keys: bool = False, timeout: float | None = None) -> LeaseTimeToLive:
        lease_id = lease.id if isinstance(lease, Lease) else lease
        return LeaseTimeToLive(*self._native.lease_time_to_live(lease_id, keys, timeout))

    def leases(self, *, timeout: float | None = None) -> list[int]:
        """The ids of every lease the cluster holds."""
        return self._native.lease_leases(timeout)[1]

    # -- maintenance -------------------------------------------------------------------------------------

    def status(self, *, timeout: float | None = None) -> Status:
        """The connected member's status."""
        return Status(*self._native.status(timeout))


class _Closed:
    """What a closed client's calls reach."""

    def __getattr__(self, name: str) -> object:
        raise _native.ConnectionFailed("the client is closed")
