"""The client across a leader kill, on a 3-member cluster of ours (``EtcdCluster``): a watch resumes with no
gap and no duplicate, a lease stays alive, an AsyncClient fails over."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

import pyetcd_fast as etcd


@pytest.fixture
def cluster() -> Iterator[etcd.EtcdCluster]:
    with etcd.EtcdCluster(size=3) as c:
        yield c


def test_a_watch_resumes_across_a_leader_kill(cluster: etcd.EtcdCluster) -> None:
    leader = cluster.wait_leader()
    writer = cluster.client(timeout=10)
    # The watcher is connected to the leader, so the kill breaks its stream.
    watcher = etcd.Client([leader.endpoint, *(e for e in cluster.endpoints if e != leader.endpoint)])
    start = writer.put("w/0", "0").header.revision
    events = watcher.watch_prefix("w/", start_revision=start)
    got: list[tuple[bytes, int]] = []
    done = threading.Event()

    def take() -> None:
        for ev in events:
            got.append((ev.kv.value, ev.kv.mod_revision))
            if ev.kv.value == b"99":
                done.set()
                return

    reader = threading.Thread(target=take)
    reader.start()
    for i in range(1, 50):
        writer.put("w/0", str(i))
    leader.kill()
    for i in range(50, 100):
        writer.put("w/0", str(i))
    assert done.wait(30), f"the watch stopped after {got[-1:]}"
    events.cancel()
    reader.join(5)
    assert [v for v, _ in got] == [str(i).encode() for i in range(100)]  # none lost, none repeated
    revisions = [r for _, r in got]
    assert revisions == sorted(set(revisions))


def test_a_lease_stays_alive_across_a_leader_change(cluster: etcd.EtcdCluster) -> None:
    client = cluster.client(timeout=10)
    with client.lease(ttl=3) as lease:
        client.put("leased", "v", lease=lease)
        cluster.wait_leader().kill()
        for _ in range(3):
            cluster.wait_leader()
            assert not lease.wait_lost(timeout=2)  # 6 s: twice the TTL
        assert client.get("leased") is not None and client.time_to_live(lease).ttl > 0


def test_an_async_client_fails_over(cluster: etcd.EtcdCluster) -> None:
    leader = cluster.wait_leader()
    order = [leader.endpoint, *(e for e in cluster.endpoints if e != leader.endpoint)]

    async def main() -> None:
        async with etcd.AsyncClient(order, timeout=10) as c:
            await c.put("k", "1")
            leader.kill()
            await c.put("k", "2")
            kv = await c.get("k")
            assert kv is not None and kv.value == b"2"

    asyncio.run(main())
