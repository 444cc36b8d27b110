"""``pyetcd_fast.AsyncClient``: the client for asyncio (and uvloop), with ``Client``'s methods as coroutines.

Contract: a call is handed to the native client with a token and returns at once; the request is encoded,
sent over HTTP/2 and its answer decoded in Rust, off the event loop. Finished calls are queued natively and
signal one eventfd, which the loop watches (``add_reader``): the loop wakes once per batch of finished calls,
and ``drain`` builds the whole batch's answers with the GIL taken once. No thread per call, no Python on the
request path. A client follows the loop it is used from (a new ``asyncio.run`` is fine); cancelling an
awaiting task abandons its call's answer (a write may still happen, as with any etcd client).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from pyetcd_fast import _native
from pyetcd_fast import txn as _txn
from pyetcd_fast._native import KeyValue, ResponseHeader
from pyetcd_fast.client import DEFAULT_ENDPOINT, Data, SortOrder, SortTarget, native_client, page_bounds
from pyetcd_fast.lease import Lease, lease_id
from pyetcd_fast.responses import DeleteResponse, LeaseTimeToLive, PutResponse, RangeResponse, Status
from pyetcd_fast.txn import end_of, prefix_range_end, to_bytes
from pyetcd_fast.watch import FILTERS, AsyncWatch

__all__ = ["AsyncClient", "AsyncLease", "AsyncLock"]


class AsyncClient:
    """A connection to an etcd cluster for asyncio; arguments as ``Client`` takes them."""

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
        self._completions = _native.Completions()
        self._native = native_client(
            endpoints, timeout, dial_timeout, ca_cert, cert, key, user, password, self._completions
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._token = 0

    @property
    def endpoints(self) -> list[str]:
        """The endpoints, in the order they are tried."""
        return self._native.endpoints

    # -- completions -------------------------------------------------------------------------------------

    def _submit(self, fn: Callable[..., object], *args: object) -> asyncio.Future[Any]:
        """Starts ``fn(*args, token=...)`` and returns the future its answer will resolve."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._follow(loop)
        self._token += 1
        token = self._token
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[token] = fut
        try:
            fn(*args, token=token)
        except BaseException:
            del self._pending[token]
            raise
        return fut

    def _follow(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watches the completion eventfd from ``loop`` (and no longer from the previous one)."""
        self._unwatch()
        loop.add_reader(self._completions.fileno(), self._drain)
        self._loop = loop

    def _unwatch(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._completions.fileno())
        self._loop = None
        self._pending.clear()

    def _drain(self) -> None:
        for token, ok, answer in self._completions.drain():
            fut = self._pending.pop(token, None)
            if fut is None or fut.done():
                continue
            if ok:
                fut.set_result(answer)
            else:
                fut.set_exception(answer)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Drops the connection; calls still waiting are cancelled."""
        for fut in self._pending.values():
            fut.cancel()
        self._unwatch()

    # -- KV ----------------------------------------------------------------------------------------------

    async def get(
        self, key: Data, *, revision: int = 0, serializable: bool = False, timeout: float | None = None
    ) -> KeyValue | None:
        """The key's current value (or at ``revision``), or None when it does not exist."""
        args = (to_bytes(key), b"", 0, revision, 0, 0, serializable, False, False, timeout)
        _, kvs, _, _ = await self._submit(self._native.range, *args)
        kv: KeyValue | None = kvs[0] if kvs else None
        return kv

    async def get_prefix(
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
        r = await self.get_range(
            p,
            prefix_range_end(p),
            limit=limit,
            revision=revision,
            sort_order=sort_order,
            sort_target=sort_target,
            keys_only=keys_only,
            serializable=serializable,
            timeout=timeout,
        )
        return r.kvs

    async def get_range(
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
        h, kvs, more, count = await self._submit(self._native.range, *op[1:], timeout)
        return RangeResponse(h, kvs, more, count)

    async def range_pages(
        self,
        key: Data,
        range_end: Data | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        page_size: int = 1000,
        revision: int = 0,
        keys_only: bool = False,
    ) -> list[KeyValue]:
        """``Client.range_iter`` gathered: every key of the range, fetched a page at a time at one revision."""
        start, end = page_bounds(key, range_end, prefix, from_key)
        out: list[KeyValue] = []
        while True:
            page = await self.get_range(start, end, limit=page_size, revision=revision, keys_only=keys_only)
            out.extend(page.kvs)
            if not page.more or not page.kvs:
                return out
            revision = revision or page.header.revision
            start = page.kvs[-1].key + b"\0"

    async def put(
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
        args = (to_bytes(key), to_bytes(value), lease_id(lease), prev_kv, ignore_value, ignore_lease, timeout)
        h, prev = await self._submit(self._native.put, *args)
        return PutResponse(h, prev)

    async def delete(
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
        h, deleted, prev = await self._submit(
            self._native.delete_range, k, end_of(k, range_end, prefix), prev_kv, timeout
        )
        return DeleteResponse(h, deleted, prev)

    async def delete_prefix(
        self, prefix: Data, *, prev_kv: bool = False, timeout: float | None = None
    ) -> DeleteResponse:
        """Deletes every key starting with ``prefix``."""
        return await self.delete(prefix, prefix=True, prev_kv=prev_kv, timeout=timeout)

    async def txn(
        self,
        compare: Sequence[_txn.Compare] = (),
        success: Sequence[_txn.Op] = (),
        failure: Sequence[_txn.Op] = (),
        *,
        timeout: float | None = None,
    ) -> _txn.TxnResponse:
        """One etcd Txn (see ``Client.txn`` and ``pyetcd_fast.txn``)."""
        h, ok, answers = await self._submit(self._native.txn, list(compare), list(success), list(failure), timeout)
        return _txn.TxnResponse(h, ok, [_txn.response_of(a) for a in answers])

    def watch(
        self,
        key: Data,
        *,
        range_end: Data | None = None,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: Sequence[str] = (),
        progress_notify: bool = False,
    ) -> AsyncWatch:
        """The changes to ``key`` (or a range, or a ``prefix``) from ``start_revision`` (0: from when the
        server creates the watch): ``async for event in client.watch(...)``."""
        k = to_bytes(key)
        fs = [FILTERS[f] for f in filters]
        w = self._native.watch(k, end_of(k, range_end, prefix), start_revision, prev_kv, fs, progress_notify)
        return AsyncWatch(w, self._submit)

    def watch_prefix(self, prefix: Data, **kw: Any) -> AsyncWatch:
        """``watch(prefix, prefix=True, ...)``."""
        return self.watch(prefix, prefix=True, **kw)

    async def compact(self, revision: int, *, physical: bool = False, timeout: float | None = None) -> ResponseHeader:
        """Drops the history before ``revision``."""
        h: ResponseHeader = await self._submit(self._native.compact, revision, physical, timeout)
        return h

    # -- leases ------------------------------------------------------------------------------------------

    async def grant(self, ttl: int, *, id: int = 0, timeout: float | None = None) -> Lease:
        """A new lease of ``ttl`` seconds, not kept alive (``Lease``'s own methods block: use the client's)."""
        _, lid, granted = await self._submit(self._native.lease_grant, ttl, id, timeout)
        return Lease(lid, granted, self._native)

    def lease(self, ttl: int, *, id: int = 0, on_lost: Callable[[], object] | None = None) -> AsyncLease:
        """``async with client.lease(10) as lease:`` grants a lease, keeps it alive until the block ends, then
        revokes it."""
        return AsyncLease(self, ttl, id, on_lost)

    async def keep_alive_once(self, lease: Lease | int) -> int:
        """One keep-alive: the TTL the server granted (0: the lease does not exist)."""
        ttl: int = await self._submit(self._native.lease_keep_alive_once, lease_id(lease))
        return ttl

    async def revoke(self, lease: Lease | int, *, timeout: float | None = None) -> ResponseHeader:
        """Ends a lease now, deleting its keys."""
        if isinstance(lease, Lease):
            lease.stop()
        h: ResponseHeader = await self._submit(self._native.lease_revoke, lease_id(lease), timeout)
        return h

    async def time_to_live(
        self, lease: Lease | int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseTimeToLive:
        """A lease's granted TTL and what is left of it (and its keys)."""
        return LeaseTimeToLive(*await self._submit(self._native.lease_time_to_live, lease_id(lease), keys, timeout))

    async def leases(self, *, timeout: float | None = None) -> list[int]:
        """The ids of every lease the cluster holds."""
        ids: list[int] = (await self._submit(self._native.lease_leases, timeout))[1]
        return ids

    # -- lock --------------------------------------------------------------------------------------------

    async def lock(self, name: Data, *, ttl: int = 60, timeout: float | None = None) -> AsyncLock:
        """Waits (up to ``timeout`` seconds) to hold lock ``name`` (see ``Client.lock``):
        ``async with await client.lock("jobs"):``."""
        lease = (await self.grant(ttl)).keep_alive()
        try:
            _, key = await self._submit(self._native.lock, to_bytes(name), lease.id, timeout)
        except BaseException:
            lease.stop()
            with contextlib.suppress(_native.EtcdError):
                await self.revoke(lease)
            raise
        return AsyncLock(self, lease, key)

    # -- maintenance -------------------------------------------------------------------------------------

    async def status(self, *, timeout: float | None = None) -> Status:
        """The connected member's status."""
        return Status(*await self._submit(self._native.status, timeout))


class AsyncLock:
    """A held lock (``AsyncClient.lock``); ``release()`` or the end of an ``async with`` block lets it go."""

    def __init__(self, client: AsyncClient, lease: Lease, key: bytes) -> None:
        self._client = client
        self.lease = lease
        self.key = key

    async def release(self) -> None:
        """Unlocks and revokes the lock's lease."""
        try:
            await self._client._submit(self._client._native.unlock, self.key, None)
        finally:
            self.lease.stop()
            with contextlib.suppress(_native.EtcdError):
                await self._client.revoke(self.lease)

    async def __aenter__(self) -> AsyncLock:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class AsyncLease:
    """``async with client.lease(ttl) as lease``: a ``Lease`` kept alive for the block, revoked after it."""

    def __init__(self, client: AsyncClient, ttl: int, id: int, on_lost: Callable[[], object] | None) -> None:
        self._client = client
        self._args = (ttl, id, on_lost)
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        ttl, id, on_lost = self._args
        self._lease = (await self._client.grant(ttl, id=id)).keep_alive(on_lost)
        return self._lease

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._lease is not None:
            self._lease.stop()
            try:
                await self._client.revoke(self._lease)
            except _native.LeaseNotFound:
                pass
