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

from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Literal

from pyetcd_fast import _native
from pyetcd_fast import txn as _txn
from pyetcd_fast._native import Event, KeyValue, ResponseHeader
from pyetcd_fast.admin import Admin
from pyetcd_fast.lease import Lease, grant, lease_id
from pyetcd_fast.responses import DeleteResponse, LeaseTimeToLive, PutResponse, RangeResponse, Status
from pyetcd_fast.txn import end_of, prefix_range_end, to_bytes
from pyetcd_fast.watch import FILTERS, Watch

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


class Client(Admin):
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
        self._native = native_client(endpoints, timeout, dial_timeout, ca_cert, cert, key, user, password, None)

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

    def range_iter(
        self,
        key: Data,
        range_end: Data | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        page_size: int = 1000,
        revision: int = 0,
        keys_only: bool = False,
        timeout: float | None = None,
    ) -> Iterator[KeyValue]:
        """Every key in ``[key, range_end)`` (or the ``prefix``, or ``from_key``) in key order, fetched
        ``page_size`` keys at a time, all at one revision (the first page's, unless ``revision`` is given), so
        a huge range never makes one huge answer (gRPC clients refuse answers over 4 MiB)."""
        start, end = page_bounds(key, range_end, prefix, from_key)
        while True:
            page = self.get_range(start, end, limit=page_size, revision=revision, keys_only=keys_only, timeout=timeout)
            yield from page.kvs
            if not page.more or not page.kvs:
                return
            revision = revision or page.header.revision
            start = page.kvs[-1].key + b"\0"

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
        h, prev = self._native.put(
            to_bytes(key), to_bytes(value), lease_id(lease), prev_kv, ignore_value, ignore_lease, timeout
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
        """A new lease of ``ttl`` seconds (``id`` 0: the server picks one), not kept alive."""
        return grant(self._native, ttl, id, timeout)

    def lease(self, ttl: int, *, id: int = 0, on_lost: Callable[[], object] | None = None) -> Lease:
        """A new lease kept alive in the background: ``with client.lease(10) as lease:`` keeps it until the
        block ends, then revokes it. ``on_lost`` is called if it is lost meanwhile."""
        return self.grant(ttl, id=id).keep_alive(on_lost)

    def keep_alive(self, lease: Lease | int, *, on_lost: Callable[[], object] | None = None) -> Lease:
        """Keeps an existing lease (or lease id) alive in the background; ``stop()`` or ``revoke()`` ends it."""
        if isinstance(lease, Lease):
            return lease.keep_alive(on_lost)
        ttl = self._native.lease_keep_alive_once(lease)
        if ttl <= 0:
            raise _native.LeaseNotFound("etcdserver: requested lease not found")
        return Lease(lease, ttl, self._native).keep_alive(on_lost)

    def keep_alive_once(self, lease: Lease | int) -> int:
        """One keep-alive: the TTL the server granted (0: the lease does not exist)."""
        ttl: int = self._native.lease_keep_alive_once(lease_id(lease))
        return ttl

    def revoke(self, lease: Lease | int, *, timeout: float | None = None) -> ResponseHeader:
        """Ends a lease now, deleting its keys."""
        if isinstance(lease, Lease):
            lease.stop()
        return self._native.lease_revoke(lease_id(lease), timeout)

    def time_to_live(self, lease: Lease | int, *, keys: bool = False, timeout: float | None = None) -> LeaseTimeToLive:
        """A lease's granted TTL and what is left of it (and its keys)."""
        return LeaseTimeToLive(*self._native.lease_time_to_live(lease_id(lease), keys, timeout))

    def leases(self, *, timeout: float | None = None) -> list[int]:
        """The ids of every lease the cluster holds."""
        return self._native.lease_leases(timeout)[1]

    # -- maintenance -------------------------------------------------------------------------------------

    def status(self, *, timeout: float | None = None) -> Status:
        """The connected member's status."""
        return Status(*self._native.status(timeout))


def page_bounds(key: Data, range_end: Data | None, prefix: bool, from_key: bool) -> tuple[bytes, bytes]:
    """The ``[key, range_end)`` ``range_iter`` pages through."""
    k = to_bytes(key)
    return k, (b"\0" if from_key else end_of(k, range_end, prefix))


def native_client(
    endpoints: str | Sequence[str],
    timeout: float,
    dial_timeout: float,
    ca_cert: str | None,
    cert: str | None,
    key: str | None,
    user: str | None,
    password: str | None,
    completions: _native.Completions | None,
) -> _native.Client:
    """The native client ``Client`` and ``AsyncClient`` stand on."""
    eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
    creds = (user, password or "") if user is not None else None
    return _native.Client(eps, timeout, dial_timeout, ca_cert, cert, key, creds, completions)


class _Closed:
    """What a closed client's calls reach."""

    def __getattr__(self, name: str) -> object:
        raise _native.ConnectionFailed("the client is closed")
