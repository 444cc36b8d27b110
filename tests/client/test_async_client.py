"""``pyetcd_fast.AsyncClient`` against ours and real etcd 3.4.23, on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

import pyetcd_fast as etcd
from harness.servers import Server
from pyetcd_fast import errors, txn

from .conftest import Runner


def test_kv_txn_and_errors(server: Server, run: Runner) -> None:
    async def main() -> None:
        async with etcd.AsyncClient(server.endpoint) as c:
            first = await c.put("/svc/a", "1")
            kv = await c.get("/svc/a")
            assert kv is not None and kv.value == b"1" and kv.mod_revision == first.header.revision
            assert await c.get("/svc/none") is None
            await c.put("/svc/b", b"2")
            assert [k.key for k in await c.get_prefix("/svc/")] == [b"/svc/a", b"/svc/b"]
            r = await c.get_range("/svc/", "/svc0", limit=1)
            assert (len(r.kvs), r.more, r.count) == (1, True, 2)
            assert len(await c.range_pages("/svc/", prefix=True, page_size=1)) == 2
            t = await c.txn([txn.value("/svc/a") == "1"], [txn.put("/svc/c", "3"), txn.get("/svc/b")])
            assert t.succeeded and t.responses[1].kvs[0].value == b"2"  # type: ignore[attr-defined]
            with pytest.raises(errors.FutureRevision):
                await c.get("/svc/a", revision=first.header.revision + 100)
            assert (await c.delete("/svc/", prefix=True, prev_kv=True)).deleted == 3
            assert (await c.status()).version.startswith("3.")

    run(main())


def test_many_tasks_share_one_connection(server: Server, run: Runner) -> None:
    async def main() -> None:
        async with etcd.AsyncClient(server.endpoint) as c:

            async def writer(i: int) -> list[int]:
                return [(await c.put(f"t/{i}", str(j))).header.revision for j in range(20)]

            revisions = [r for rs in await asyncio.gather(*(writer(i) for i in range(100))) for r in rs]
            assert len(set(revisions)) == 2000  # every put answered with its own revision
            kvs = await c.get_prefix("t/")
            assert len(kvs) == 100 and all(kv.version == 20 for kv in kvs)

    run(main())


def test_watch_and_a_cancelled_wait_loses_nothing(server: Server, run: Runner) -> None:
    async def main() -> None:
        async with etcd.AsyncClient(server.endpoint) as c:
            start = (await c.put("w/0", "0")).header.revision
            watch = c.watch_prefix("w/", start_revision=start, prev_kv=True)
            first = await anext(watch)
            assert (first.type, first.kv.key) == ("PUT", b"w/0")
            # A wait cancelled (by a timeout) before anything comes takes nothing away from the next one.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(watch), 0.2)
            await c.put("w/0", "1")
            await c.delete("w/0")
            ev = await anext(watch)
            assert (ev.kv.value, ev.prev_kv.value) == (b"1", b"0")  # type: ignore[union-attr]
            ev = await anext(watch)
            assert ev.type == "DELETE" and ev.kv.mod_revision == start + 2
            watch.cancel()
            with pytest.raises(StopAsyncIteration):
                await anext(watch)
            await c.compact(start + 1)
            with pytest.raises(errors.Compacted) as e:
                await anext(c.watch("w/0", start_revision=start))
            assert e.value.compact_revision == start + 1  # type: ignore[attr-defined]

    run(main())


def test_leases(server: Server, run: Runner) -> None:
    async def main() -> None:
        async with etcd.AsyncClient(server.endpoint) as c:
            async with c.lease(2) as lease:
                await c.put("leased", "v", lease=lease)
                await asyncio.sleep(3)  # past the TTL: the keep-alive holds it
                assert (await c.time_to_live(lease, keys=True)).keys == [b"leased"]
                assert await c.keep_alive_once(lease) == 2 and lease.id in await c.leases()
            assert await c.get("leased") is None  # revoked when the block ended

    run(main())


def test_one_client_serves_two_event_loops(server: Server) -> None:
    c = etcd.AsyncClient(server.endpoint)
    asyncio.run(c.put("k", "1"))
    got = asyncio.run(c.get("k"))
    assert got is not None and got.value == b"1"
    c.close()


def test_lock_contention(server: Server, run: Runner) -> None:
    async def main() -> None:
        async with etcd.AsyncClient(server.endpoint) as a, etcd.AsyncClient(server.endpoint) as b:
            held = await a.lock("jobs", ttl=10)
            with pytest.raises(errors.Timeout):
                await b.lock("jobs", ttl=10, timeout=0.5)  # the wait is bounded apart from the TTL
            waiter = asyncio.ensure_future(b.lock("jobs", ttl=10, timeout=10))
            await asyncio.sleep(0.3)
            assert not waiter.done()
            await held.release()
            async with await waiter as second:
                assert second.key != held.key and len(await a.get_prefix("jobs/")) == 1
            assert await a.get_prefix("jobs/") == []

    run(main())


def test_get_prefix_keeps_its_timeout(server: Server, run: Runner) -> None:
    async def main() -> None:
        async with etcd.AsyncClient(server.endpoint, timeout=30) as c:
            await c.put("p/a", "1")
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                with pytest.raises(errors.Timeout):
                    await c.get_prefix("p/", timeout=0.3)
                assert time.monotonic() - t0 < 3
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)

    run(main())
