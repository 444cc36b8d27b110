"""``python -m bench.client`` (``make bench-client``): our Python client beside a plain grpcio stub client.

Both run from this one Python process against the same fresh member of ours (so the figures compare
clients, not servers): sync put and get ops/s from 1 thread and from 16 threads, events/s a watch
delivers into Python, and the time to a first answer from an embedded member (``pyetcd_fast.Etcd``)
against starting the etcd 3.4.23 binary. python-etcd3 (which needs an old protobuf, so a venv of its own)
and the asyncio figures are not measured yet.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

import pyetcd_fast as etcd
from bench.progress import Progress
from bench.run import save_result
from harness.servers import start_server
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

THREADS = (1, 16)
WATCH_EVENTS = 20_000


def ops_per_s(op: Callable[[int], object], threads: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def worker(t: int) -> None:
        i = 0
        while time.monotonic() < stop:
            op(t * 1_000_000 + i)
            i += 1
        counts[t] = i

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def watch_rate(make_watch: Callable[[], Callable[[int], None]], put_many: Callable[[int], None]) -> float:
    """Events/s into Python: ``make_watch()`` starts a watch and returns a function that takes n events."""
    take = make_watch()
    t0 = time.monotonic()
    writer = threading.Thread(target=put_many, args=(WATCH_EVENTS,))
    writer.start()
    take(WATCH_EVENTS)
    elapsed = time.monotonic() - t0
    writer.join()
    return WATCH_EVENTS / elapsed


def startup_ours() -> float:
    t0 = time.monotonic()
    with etcd.Etcd(log_level="error") as s:
        s.client().put("k", "v")
        return time.monotonic() - t0


def startup_etcd(work: Path) -> float:
    t0 = time.monotonic()
    srv = start_server("etcd", work / "etcd-startup")
    try:
        with etcd.Client(srv.endpoint) as c:
            c.put("k", "v")
        return time.monotonic() - t0
    finally:
        srv.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.client", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pyetcd-bench-client-"))
    bar = Progress(2 * 2 * len(THREADS) + 2 + 2)
    rows: list[tuple[str, float, float]] = []
    srv = start_server("ours", work / "ours")
    try:
        ours = etcd.Client(srv.endpoint)
        channel = grpc.insecure_channel(srv.endpoint)
        stub = rpc_pb2_grpc.KVStub(channel)
        ours.put("bench/get", "v" * 256)
        value = b"v" * 256

        for threads in THREADS:
            o = ops_per_s(lambda i: ours.put(f"bench/{i}", value), threads, a.seconds)
            bar.step(f"ours put {threads}")
            g = ops_per_s(
                lambda i: stub.Put(rpc_pb2.PutRequest(key=f"bench/{i}".encode(), value=value)), threads, a.seconds
            )
            bar.step(f"grpcio put {threads}")
            rows.append((f"put, {threads} thread{'s' if threads > 1 else ''} (ops/s)", o, g))
            o = ops_per_s(lambda i: ours.get("bench/get"), threads, a.seconds)
            bar.step(f"ours get {threads}")
            g = ops_per_s(lambda i: stub.Range(rpc_pb2.RangeRequest(key=b"bench/get")), threads, a.seconds)
            bar.step(f"grpcio get {threads}")
            rows.append((f"get, {threads} thread{'s' if threads > 1 else ''} (ops/s)", o, g))

        def put_many(n: int) -> None:
            writer = etcd.Client(srv.endpoint)
            for i in range(0, n, 100):
                writer.txn(success=[etcd.txn.put(f"w/{i + j}", value) for j in range(100)])

        def ours_watch() -> Callable[[int], None]:
            w = ours.watch_prefix("w/")

            def take(n: int) -> None:
                got = 0
                while got < n:
                    batch = w.next_batch(timeout=30)
                    assert batch is not None
                    got += len(batch[1])
                w.cancel()

            return take

        def grpc_watch() -> Callable[[int], None]:
            wstub = rpc_pb2_grpc.WatchStub(channel)
            create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"w/", range_end=b"w0"))
            done = threading.Event()

            def requests() -> Iterator[rpc_pb2.WatchRequest]:
                yield create
                done.wait()  # a finished request stream half-closes the call, which ends the watch

            stream = wstub.Watch(requests())
            next(stream)  # created

            def take(n: int) -> None:
                got = 0
                for resp in stream:
                    got += len(resp.events)
                    if got >= n:
                        break
                stream.cancel()
                done.set()

            return take

        o = watch_rate(ours_watch, put_many)
        bar.step("ours watch")
        g = watch_rate(grpc_watch, put_many)
        bar.step("grpcio watch")
        rows.append(("watch, events into Python (events/s)", o, g))
        channel.close()
    finally:
        srv.stop()
    o = min(startup_ours() for _ in range(3))
    bar.step("embedded start-up")
    e = min(startup_etcd(work) for _ in range(3))
    bar.step("etcd binary start-up")
    shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"# Python clients, {datetime.date.today()} (one process, one member of ours, {a.seconds:g} s per figure)",
        "",
        "| figure | pyetcd_fast.Client | grpcio stub | ratio |",
        "|---|---|---|---|",
    ]
    for name, o_, g_ in rows:
        lines.append(f"| {name} | {o_:,.0f} | {g_:,.0f} | {o_ / g_:.2f}× |")
    lines += [
        "",
        "| start-up to a first put (best of 3) | pyetcd_fast.Etcd (embedded) | etcd 3.4.23 binary | ratio |",
        "|---|---|---|---|",
        f"| seconds | {o:.3f} | {e:.3f} | {e / o:.1f}× faster |",
    ]
    text = "\n".join(lines) + "\n"
    save_result("client", text)


if __name__ == "__main__":
    main()
