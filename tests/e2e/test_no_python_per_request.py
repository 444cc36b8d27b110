"""Python does no work per watch event or per lease keep-alive: both are served entirely by the native core.

How this is checked: the member runs embedded (``pyetcd_fast.embed.Etcd(...).start_background()``), so the test
can read its raft Ready loop's counters. ``_ready_loop.batches`` counts every time Python ran the loop (once per
wake-up by the native side and once per raft tick); ``_ready_loop.ticks`` counts the ticks (one per
``--heartbeat-interval``, 100 ms). Python runs nowhere else on the request path, so these counters bound the
Python work a load causes:

- watch fan-out: one Watch stream with 200 watchers on a prefix, then 100 sequential puts under it, i.e. 20,000
  events. Each put may wake Python once (to propose/persist/apply it), so batches may grow by at most
  puts + ticks + slack while the puts run *and* all 20,000 events are delivered — it would grow by thousands if
  events were produced or sent from Python.
- keep-alives: one LeaseKeepAlive stream with 2,000 requests sent back to back; batches may grow only by the
  ticks that elapsed (+ slack), not by ~2,000.

The test also checks the work was really done: every watcher saw all 100 puts in revision order, and every
keep-alive was answered with the lease's ID and a positive TTL.

The gRPC clients use their own channels (the watch stream is read concurrently on a thread) so a slow reader
cannot throttle the puts through shared HTTP/2 flow control.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from harness.embedded import embedded_member
from pyetcd_fast.embed.etcd import Etcd
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

WATCHERS = 200
PUTS = 100
KEEPALIVES = 2000
SLACK = 10  # a few extra wake-ups (e.g. a tick and a wake-up landing on the same request) are fine
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def member(tmp_path_factory) -> Iterator[Etcd]:
    d: Path = tmp_path_factory.mktemp("embedded")
    with embedded_member(d / "data", "--log-level", "error") as etcd:
        yield etcd


def channel(etcd: Etcd) -> grpc.Channel:
    # A private subchannel: each test client gets its own HTTP/2 connection.
    return grpc.insecure_channel(etcd.client_addrs[0], options=[("grpc.use_local_subchannel_pool", 1)])


def counters(etcd: Etcd) -> tuple[int, int]:
    rl = etcd._ready_loop
    return rl.batches, rl.ticks


def test_watch_events_cost_no_python(member: Etcd) -> None:
    prefix = b"fanout/"
    with channel(member) as wch, channel(member) as kch:
        kv = rpc_pb2_grpc.KVStub(kch)
        base = kv.Range(rpc_pb2.RangeRequest(key=b"x"), timeout=TIMEOUT).header.revision
        requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
        for _ in range(WATCHERS):
            create = rpc_pb2.WatchCreateRequest(key=prefix, range_end=b"fanout0")
            requests.put(rpc_pb2.WatchRequest(create_request=create))
        stream = rpc_pb2_grpc.WatchStub(wch).Watch(iter(requests.get, None), timeout=TIMEOUT * 2)
        responses = iter(stream)
        ids = set()
        while len(ids) < WATCHERS:
            r = next(responses)
            assert r.created and not r.canceled, r
            ids.add(r.watch_id)

        seen: dict[int, list[int]] = {i: [] for i in ids}
        total = [0]
        done = threading.Event()
        error: list[BaseException] = []

        def read() -> None:
            try:
                for r in responses:
                    seen[r.watch_id].extend(ev.kv.mod_revision for ev in r.events)
                    total[0] += len(r.events)
                    if total[0] >= WATCHERS * PUTS:
                        break
            except BaseException as e:  # reported by the main thread
                error.append(e)
            finally:
                done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        b0, t0 = counters(member)
        for i in range(PUTS):
            kv.Put(rpc_pb2.PutRequest(key=prefix + b"%03d" % i, value=b"v"), timeout=TIMEOUT)
        assert done.wait(TIMEOUT), f"only {total[0]} of {WATCHERS * PUTS} events arrived"
        b1, t1 = counters(member)
        requests.put(None)
        stream.cancel()
        reader.join(TIMEOUT)

    assert not error, error
    want = list(range(base + 1, base + PUTS + 1))
    for wid, revs in seen.items():
        assert revs == want, f"watcher {wid}: {len(revs)} events, first mismatch at {revs[:3]}..."
    batches, ticks = b1 - b0, t1 - t0
    assert batches <= PUTS + ticks + SLACK, (
        f"{WATCHERS * PUTS} watch events for {PUTS} puts ran the Ready loop {batches} times in {ticks} ticks: "
        f"Python works per event"
    )


def test_keepalives_cost_no_python(member: Etcd) -> None:
    with channel(member) as ch:
        lease = rpc_pb2_grpc.LeaseStub(ch)
        lid = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=TIMEOUT).ID
        b0, t0 = counters(member)
        start = time.monotonic()
        answered = 0
        stream = lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=lid)] * KEEPALIVES), timeout=TIMEOUT)
        for resp in stream:
            assert resp.ID == lid and resp.TTL > 0, resp
            answered += 1
            if answered == KEEPALIVES:
                break
        elapsed = time.monotonic() - start
        b1, t1 = counters(member)
        stream.cancel()
    assert answered == KEEPALIVES
    batches, ticks = b1 - b0, t1 - t0
    assert batches <= ticks + SLACK, (
        f"{KEEPALIVES} keep-alives in {elapsed:.2f}s ran the Ready loop {batches} times in {ticks} ticks: "
        f"Python works per keep-alive"
    )
