"""``python -m bench.client`` (``make bench-client``): our Python clients beside python-etcd3 0.12 and plain
grpcio / grpc.aio stub clients, against the same fresh member of ours (so the figures compare clients, not
servers), in one run:

- sync put and get ops/s from 1 thread and from 16 threads;
- asyncio: put and get ops/s from 100 concurrent tasks, ``AsyncClient`` against a grpc.aio stub;
- watch: events/s delivered into Python one by one, replaying 100,000 events written beforehand (so the
  client, not the writer, is the bound);
- start-up of an embedded member (``pyetcd_fast.Etcd``) to a first put, against the etcd 3.4.23 binary.

Our clients and the grpcio stubs run in this process; python-etcd3 needs a protobuf older than 4, so it runs
in a venv of its own (``bench/.venv-etcd3``, made on first use) as one separate Python process
(``bench/etcd3_driver.py``), one figure after another like the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import uvloop

import pyetcd_fast as etcd
from bench.progress import Progress
from bench.rates import ops_per_s, tasks_ops_per_s
from bench.run import save_result
from harness.servers import start_server
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

THREADS = (1, 16)
TASKS = 100
WATCH_EVENTS = 100_000
VENV = Path(__file__).resolve().parent / ".venv-etcd3"


def async_ops_per_s(op: Callable[[int], Awaitable[object]], seconds: float) -> float:
    """Ops/s of ``TASKS`` tasks each running ``op`` in a loop for ``seconds``, on uvloop."""
    return uvloop.run(tasks_ops_per_s(op, TASKS, seconds))


def preload(endpoint: str, value: bytes) -> None:
    """Writes ``WATCH_EVENTS`` puts under ``w/``, one revision each (a watch replays at most 1,000 revisions
    per answer, so answers stay under gRPC's 4 MiB limit, which python-etcd3 and grpcio keep)."""

    async def main() -> None:
        async with etcd.AsyncClient(endpoint) as c:

            async def task(t: int) -> None:
                for i in range(t, WATCH_EVENTS, TASKS):
                    await c.put(f"w/{i}", value)

            await asyncio.gather(*(task(t) for t in range(TASKS)))

    uvloop.run(main())


def etcd3_figures(endpoint: str, seconds: float, start: int) -> dict[str, float]:
    """python-etcd3 0.12's figures, from its own venv."""
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pkgs = ["etcd3==0.12.0", "protobuf<4", "grpcio"]
        subprocess.run([str(py), "-m", "pip", "install", "-q", *pkgs], check=True)
    driver = Path(__file__).resolve().parent / "etcd3_driver.py"
    args = [str(py), str(driver), endpoint, str(seconds), "w/", str(start), str(WATCH_EVENTS)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"python-etcd3's driver failed: {done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def watch_rate(events: Callable[[], Iterator[object]]) -> float:
    """Events/s taken one by one from ``events()`` (a watch of the ``WATCH_EVENTS`` written beforehand)."""
    t0 = time.monotonic()
    it = events()
    for n, _ in enumerate(it, 1):
        if n >= WATCH_EVENTS:
            break
    elapsed = time.monotonic() - t0
    close = getattr(it, "close", None)
    if close is not None:
        close()
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
    bar = Progress(2 * 2 * len(THREADS) + 4 + 2 + 1 + 2)
    rows: list[tuple[str, float, float, float | None]] = []  # figure, ours, stub, python-etcd3
    srv = start_server("ours", work / "ours")
    try:
        ours = etcd.Client(srv.endpoint)
        channel = grpc.insecure_channel(srv.endpoint)
        stub = rpc_pb2_grpc.KVStub(channel)
        ours.put("bench/get", "v" * 256)
        value = b"v" * 256
        start = ours.put("w/start", "").header.revision + 1
        print(f"writing {WATCH_EVENTS:,} events to watch", file=sys.stderr)
        preload(srv.endpoint, value)
        e3 = etcd3_figures(srv.endpoint, a.seconds, start)
        bar.step("python-etcd3")

        for threads in THREADS:
            o = ops_per_s(lambda i: ours.put(f"bench/{i}", value), threads, a.seconds)
            bar.step(f"ours put {threads}")
            g = ops_per_s(
                lambda i: stub.Put(rpc_pb2.PutRequest(key=f"bench/{i}".encode(), value=value)), threads, a.seconds
            )
            bar.step(f"grpcio put {threads}")
            rows.append((f"put, {threads} thread{'s' if threads > 1 else ''} (ops/s)", o, g, e3[f"put {threads}"]))
            o = ops_per_s(lambda i: ours.get("bench/get"), threads, a.seconds)
            bar.step(f"ours get {threads}")
            g = ops_per_s(lambda i: stub.Range(rpc_pb2.RangeRequest(key=b"bench/get")), threads, a.seconds)
            bar.step(f"grpcio get {threads}")
            rows.append((f"get, {threads} thread{'s' if threads > 1 else ''} (ops/s)", o, g, e3[f"get {threads}"]))

        aours = etcd.AsyncClient(srv.endpoint)
        o = async_ops_per_s(lambda i: aours.put(f"bench/{i}", value), a.seconds)
        bar.step("ours async put")
        g = async_grpc(srv.endpoint, "put", a.seconds, value)
        bar.step("grpc.aio put")
        rows.append((f"asyncio put, {TASKS} tasks (ops/s)", o, g, None))
        o = async_ops_per_s(lambda i: aours.get("bench/get"), a.seconds)
        bar.step("ours async get")
        g = async_grpc(srv.endpoint, "get", a.seconds, value)
        bar.step("grpc.aio get")
        rows.append((f"asyncio get, {TASKS} tasks (ops/s)", o, g, None))
        aours.close()

        # Each watch figure is taken with no other client's threads alive in the process (grpcio's poller
        # threads take the GIL): the stub's channel is closed first, and gets a fresh one for its own figure.
        channel.close()
        o = watch_rate(lambda: iter(ours.watch_prefix("w/", start_revision=start)))
        bar.step("ours watch")
        channel = grpc.insecure_channel(srv.endpoint)
        g = watch_rate(lambda: grpc_events(channel, start))
        bar.step("grpcio watch")
        rows.append((f"watch, {WATCH_EVENTS:,} events into Python (events/s)", o, g, e3["watch"]))
        channel.close()
    finally:
        srv.stop()
    o = min(startup_ours() for _ in range(3))
    bar.step("embedded start-up")
    e = min(startup_etcd(work) for _ in range(3))
    bar.step("etcd binary start-up")
    shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"# Python clients, {datetime.date.today()} (one member of ours, {a.seconds:g} s per figure)",
        "",
        "| figure | pyetcd_fast | grpcio stub (grpc.aio for asyncio) | python-etcd3 0.12 | ours / stub "
        "| ours / python-etcd3 |",
        "|---|---|---|---|---|---|",
    ]
    for name, o_, g_, e_ in rows:
        e3s, e3r = (f"{e_:,.0f}", f"{o_ / e_:.2f}×") if e_ else ("—", "—")
        lines.append(f"| {name} | {o_:,.0f} | {g_:,.0f} | {e3s} | {o_ / g_:.2f}× | {e3r} |")
    lines += [
        "",
        "| start-up to a first put (best of 3) | pyetcd_fast.Etcd (embedded) | etcd 3.4.23 binary | ratio |",
        "|---|---|---|---|",
        f"| seconds | {o:.3f} | {e:.3f} | {e / o:.1f}× faster |",
    ]
    text = "\n".join(lines) + "\n"
    save_result("client", text)


def async_grpc(endpoint: str, op: str, seconds: float, value: bytes) -> float:
    """A grpc.aio stub's ops/s with ``TASKS`` tasks (its own channel and loop)."""

    async def main() -> float:
        async with grpc.aio.insecure_channel(endpoint) as ch:
            stub = rpc_pb2_grpc.KVStub(ch)

            async def put(i: int) -> object:
                return await stub.Put(rpc_pb2.PutRequest(key=f"bench/{i}".encode(), value=value))

            async def get(i: int) -> object:
                return await stub.Range(rpc_pb2.RangeRequest(key=b"bench/get"))

            return await tasks_ops_per_s(put if op == "put" else get, TASKS, seconds)

    return uvloop.run(main())


def grpc_events(channel: grpc.Channel, start: int) -> Iterator[object]:
    """The events of a plain grpcio stub watch of ``w/`` from ``start``, one by one."""
    wstub = rpc_pb2_grpc.WatchStub(channel)
    create = rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=b"w/", range_end=b"w0", start_revision=start)
    )
    done = threading.Event()

    def requests() -> Iterator[rpc_pb2.WatchRequest]:
        yield create
        done.wait()  # a finished request stream half-closes the call

    stream = wstub.Watch(requests())
    try:
        for resp in stream:
            yield from resp.events
    finally:
        stream.cancel()
        done.set()


if __name__ == "__main__":
    main()
