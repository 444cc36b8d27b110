"""Many watchers under concurrent writes: every event exactly once, in order, revisions whole.

1,000 watchers (10 gRPC Watch streams, each on its own channel, 100 watchers per
stream) watch one prefix while 10 writers write unique keys under it; every fifth
write is a txn of three puts, so some revisions carry several events. The acked
responses give each write's revision, hence the exact event sequence every watcher
must see. Each watcher's events are checked as they arrive:

- every response's first revision is above the previous response's last one, and
  revisions never go down inside a response: so a revision is never split across
  responses and nothing arrives out of order or twice;
- the whole sequence, folded into an order-sensitive hash, equals the expected one:
  so no event is missing, extra or altered.

A resumable watcher on an extra stream is cancelled halfway through and re-created
with start_revision = last seen + 1; the two parts must add up to the exact sequence.

The client is asyncio gRPC in one thread: the Python client, not the server, is the
bottleneck (a few tens of microseconds per response). etcd coalesces the revisions
of a watcher that falls behind into fewer responses; a server that sends one
response per revision per watcher makes the client do more work. The size is set
with PYETCD_TEST_WATCH_STRESS_OPS (writes per writer) and the bound on the whole
run with PYETCD_TEST_WATCH_STRESS_SECONDS.

The same body runs against real etcd, which validates the test itself.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field

import grpc
import pytest

from harness import ops
from harness.kvclient import CHANNEL_OPTIONS
from harness.servers import Server
from harness.watchclient import WatchStream, cancel_req, create_req
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

STREAMS = 10
WATCHERS_PER_STREAM = 100
WRITERS = 10
OPS_PER_WRITER = int(os.environ.get("PYETCD_TEST_WATCH_STRESS_OPS", "200"))
TXN_EVERY = 5  # every fifth write is a txn of TXN_PUTS puts
TXN_PUTS = 3
TIME_LIMIT = float(os.environ.get("PYETCD_TEST_WATCH_STRESS_SECONDS", "60"))
RPC_TIMEOUT = 10.0
RESUME_IDS = (7000, 7001)  # client-chosen ids of the resumable watcher, before and after the restart


def fold(chain: int, rev: int, key: bytes) -> int:
    """Order-sensitive hash of an event sequence, one event at a time."""
    return hash((chain, rev, key))


@dataclass
class WatcherState:
    last_rev: int = 0
    chain: int = 0
    events: int = 0
    responses: int = 0
    canceled: bool = False
    errors: list[str] = field(default_factory=list)
    trace: list[tuple[int, bytes]] | None = None  # the full sequence, kept for a few watchers for diagnostics

    def add(self, resp: rpc_pb2.WatchResponse) -> None:
        self.responses += 1
        evs = resp.events
        first = evs[0].kv.mod_revision
        if first <= self.last_rev and len(self.errors) < 5:
            self.errors.append(f"response starts at revision {first} after revision {self.last_rev} was delivered")
        prev = first
        chain = self.chain
        for ev in evs:
            kv = ev.kv
            rev = kv.mod_revision
            if (rev < prev or ev.type != 0) and len(self.errors) < 5:
                self.errors.append(f"event {ev.type} {kv.key!r}@{rev} after revision {prev} in one response")
            prev = rev
            chain = fold(chain, rev, kv.key)
            if self.trace is not None:
                self.trace.append((rev, kv.key))
        self.chain = chain
        self.events += len(evs)
        self.last_rev = prev


class Stress:
    def __init__(self, endpoint: str, prefix: bytes) -> None:
        self.endpoint = endpoint
        self.prefix = prefix
        self.end = ops.prefix_end(prefix)
        self.watchers: dict[tuple[int, int], WatcherState] = {}
        self.created = [0] * (STREAMS + 1)
        self.acked: dict[int, list[bytes]] = {}  # revision -> keys in txn order
        self.total_expected = WRITERS * (OPS_PER_WRITER + (OPS_PER_WRITER // TXN_EVERY) * (TXN_PUTS - 1))
        self.progress = asyncio.Event()  # set whenever a watcher state changes (for waiters)
        self.problems: list[str] = []

    def state(self, stream: int, wid: int) -> WatcherState:
        st = self.watchers.get((stream, wid))
        if st is None:
            st = self.watchers[(stream, wid)] = WatcherState()
            if wid in (0, WATCHERS_PER_STREAM - 1) or stream == STREAMS:
                st.trace = []
        return st

    async def read(self, stream: int, call) -> None:
        async for resp in call:
            if resp.created:
                if resp.canceled:
                    self.problems.append(f"stream {stream}: create refused: {resp}")
                self.created[stream] += 1
                self.state(stream, resp.watch_id)
            elif resp.canceled:
                self.state(stream, resp.watch_id).canceled = True
            elif resp.events:
                self.state(stream, resp.watch_id).add(resp)
            else:
                self.problems.append(f"stream {stream}: unexpected response {resp}")
            self.progress.set()

    def behind(self, expected: int, resumed: int, resumed_expected: int, readers: list) -> str:
        """What a timed-out wait for every event saw: who is behind, where, and whether a reader died."""
        late = {k: st for k, st in self.watchers.items() if k[0] < STREAMS and st.events < expected}
        fewest = min((st.events for st in late.values()), default=expected)
        return (
            f"({len(late)} watchers behind, fewest events {fewest} of {expected}, on streams "
            f"{sorted({s for s, _ in late})}, last revisions {sorted({st.last_rev for st in late.values()})}, "
            f"last acked {max(self.acked, default=0)}; resumed watcher {resumed} of {resumed_expected}; "
            f"readers ended: {[r.exception() for r in readers if r.done()]})"
        )

    async def wait(self, pred, what: str, deadline: float, detail=lambda: "") -> None:
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} {detail()}".rstrip())
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), 0.5)
            except TimeoutError:
                pass

    async def write(self, kv: rpc_pb2_grpc.KVStub, writer: int) -> None:
        for i in range(OPS_PER_WRITER):
            base = self.prefix + f"{writer}/{i}".encode()
            if i % TXN_EVERY == TXN_EVERY - 1:
                keys = [base + f"/{j}".encode() for j in range(TXN_PUTS)]
                resp = await kv.Txn(ops.txn(success=[ops.put(k, b"t") for k in keys]), timeout=RPC_TIMEOUT)
            else:
                keys = [base]
                resp = await kv.Put(ops.put(base, b"p"), timeout=RPC_TIMEOUT)
            rev = resp.header.revision
            assert rev not in self.acked, f"revision {rev} acked twice"
            self.acked[rev] = keys

    def expected(self, after: int = 0) -> tuple[int, int, list[tuple[int, bytes]]]:
        """(hash, count, sequence) of the acked events with revision > ``after``."""
        seq = [(rev, k) for rev in sorted(self.acked) if rev > after for k in self.acked[rev]]
        chain = 0
        for rev, k in seq:
            chain = fold(chain, rev, k)
        return chain, len(seq), seq

    async def run(self) -> None:
        start = time.monotonic()
        deadline = start + TIME_LIMIT
        channels = [grpc.aio.insecure_channel(self.endpoint, options=CHANNEL_OPTIONS) for _ in range(STREAMS + 1)]
        calls = []
        readers = []
        try:
            for s, ch in enumerate(channels):
                call = rpc_pb2_grpc.WatchStub(ch).Watch()
                calls.append(call)
                readers.append(asyncio.ensure_future(self.read(s, call)))
            for call in calls[:STREAMS]:
                for _ in range(WATCHERS_PER_STREAM):
                    await call.write(create_req(self.prefix, self.end))
            resume = calls[STREAMS]
            await resume.write(create_req(self.prefix, self.end, watch_id=RESUME_IDS[0]))
            await self.wait(
                lambda: sum(self.created[:STREAMS]) == STREAMS * WATCHERS_PER_STREAM and self.created[STREAMS] == 1,
                "1,000 created responses",
                deadline,
            )
            assert not self.problems, self.problems[:5]
            assert all(
                sorted(w for (s, w) in self.watchers if s == stream) == list(range(WATCHERS_PER_STREAM))
                for stream in range(STREAMS)
            ), "server-chosen watch ids are 0..99 on every stream"

            kv = rpc_pb2_grpc.KVStub(channels[0])
            writers = [asyncio.ensure_future(self.write(kv, i)) for i in range(WRITERS)]

            # Cancel the resumable watcher halfway through and pick up after the last revision it saw.
            first = self.state(STREAMS, RESUME_IDS[0])
            await self.wait(lambda: first.events >= self.total_expected // 2, "the resumable watcher's half", deadline)
            await resume.write(cancel_req(RESUME_IDS[0]))
            await self.wait(lambda: first.canceled, "the cancel reply", deadline)
            last_seen = first.last_rev
            await resume.write(create_req(self.prefix, self.end, start_revision=last_seen + 1, watch_id=RESUME_IDS[1]))

            await asyncio.gather(*writers)
            assert len(self.acked) == WRITERS * OPS_PER_WRITER
            exp_chain, exp_count, exp_seq = self.expected()
            assert exp_count == self.total_expected
            second = self.state(STREAMS, RESUME_IDS[1])
            r_chain, r_count, r_seq = self.expected(after=last_seen)
            main = [st for (s, _w), st in self.watchers.items() if s < STREAMS]
            await self.wait(
                lambda: all(st.events >= exp_count for st in main) and second.events >= r_count,
                "every watcher to see every event",
                deadline,
                lambda: self.behind(exp_count, second.events, r_count, readers),
            )
            await asyncio.sleep(0.3)  # anything extra (duplicates) would arrive now
            elapsed = time.monotonic() - start
        finally:
            for call in calls:
                call.cancel()
            for r in readers:
                r.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for ch in channels:
                await ch.close()

        assert not self.problems, self.problems[:5]
        bad = {k: st for k, st in self.watchers.items() if k[0] < STREAMS and (st.errors or st.chain != exp_chain)}
        for (s, w), st in sorted(bad.items())[:3]:
            detail = st.errors
            if st.trace is not None and st.trace != exp_seq:
                i = next((i for i, (a, b) in enumerate(zip(st.trace, exp_seq, strict=False)) if a != b), len(st.trace))
                got, want = st.trace[i : i + 3], exp_seq[i : i + 3]
                detail = [
                    *detail,
                    f"first difference at event {i}: got {got}, expected {want} ({len(st.trace)} events)",
                ]
            print(f"stream {s} watcher {w}: {st.events}/{exp_count} events in {st.responses} responses; {detail}")
        assert not bad, f"{len(bad)} of 1000 watchers saw a wrong sequence (see stdout)"
        # The resumable watcher: the first part up to last_seen, then exactly the rest.
        assert not first.errors and not second.errors, (first.errors, second.errors)
        assert first.trace == [e for e in exp_seq if e[0] <= last_seen], "the first part is the sequence's beginning"
        assert second.trace == r_seq and second.chain == r_chain, (
            f"re-created at {last_seen + 1}: got {len(second.trace)} events, expected {r_count}"
        )
        responses = sum(st.responses for k, st in self.watchers.items() if k[0] < STREAMS)
        print(f"{exp_count} events x 1000 watchers in {responses} responses, {elapsed:.1f}s")
        assert elapsed < TIME_LIMIT


@pytest.mark.parametrize("kind", ["etcd", "ours"])
def test_many_watchers_concurrent_writers(request: pytest.FixtureRequest, kind: str) -> None:
    server: Server = request.getfixturevalue(f"{kind}_server")
    asyncio.run(Stress(server.endpoint, b"stress/many/").run())


@pytest.mark.parametrize("kind", ["etcd", "ours"])
def test_watched_put_latency(request: pytest.FixtureRequest, kind: str) -> None:
    """A put that some watcher sees is acknowledged as fast as one nobody watches."""
    server: Server = request.getfixturevalue(f"{kind}_server")
    watch_ch = grpc.insecure_channel(server.endpoint, options=CHANNEL_OPTIONS)
    kv_ch = grpc.insecure_channel(server.endpoint, options=CHANNEL_OPTIONS)
    w = WatchStream(watch_ch, keep=False)
    try:
        w.create(b"stress/latency/watched")
        w.wait_for(lambda _rs: w.count >= 1, what="created")
        kv = rpc_pb2_grpc.KVStub(kv_ch)
        timings: dict[str, list[float]] = {"watched": [], "unwatched": []}
        for i in range(40):
            for name in timings:
                t0 = time.monotonic()
                kv.Put(ops.put(f"stress/latency/{name}".encode(), str(i).encode()), timeout=RPC_TIMEOUT)
                timings[name].append((time.monotonic() - t0) * 1000)
        w.wait_for(lambda _rs: w.count >= 41, what="40 events")
    finally:
        w.close()
        watch_ch.close()
        kv_ch.close()
    med = {name: statistics.median(t) for name, t in timings.items()}
    print(f"median put latency: {med}")
    assert med["watched"] < 20, (
        f"median latency of a watched put {med['watched']:.1f} ms (unwatched {med['unwatched']:.1f} ms)"
    )
