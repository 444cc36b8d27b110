"""``python -m bench.watchers ENDPOINT COUNT``: hold COUNT watchers open on one server, for the memory-per-watcher
figure of :mod:`bench.scale`.

Contract:

1. Opens ``COUNT`` watchers on distinct keys (``/bench/watch/<i>``, no range, from the current revision) spread
   round-robin over ``--streams`` bidirectional ``Watch`` streams on ``--channels`` connections (each channel has
   its own subchannel pool, so each is its own TCP connection, as etcd's ``benchmark watch`` spreads them).
2. Waits until every stream has answered each of its ``WatchCreateRequest``s with a ``created`` response, then
   prints one JSON line, ``{"created": COUNT, "seconds": <time to open them all>}``, and flushes it.
3. Keeps every stream open until its stdin reaches EOF, then cancels them and exits 0.

A stream that ends, a watch the server cancels, or ``--timeout`` seconds without all of them created prints
``{"error": "..."}`` instead and exits 1. The client is its own process so that the parent, which reads the
server's RSS, is not slowed by 100k watchers' worth of Python objects and the client's memory is never
mistaken for the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import grpc

from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

KEY_PREFIX = b"/bench/watch/"


def watch_key(i: int) -> bytes:
    return KEY_PREFIX + b"%08d" % i


async def _open_stream(channel: grpc.aio.Channel, keys: list[bytes]) -> grpc.aio.StreamStreamCall:
    """One Watch stream with a watcher on each of ``keys``; returns once all are created.

    Responses are read while the requests are written: etcd's watch server stops reading requests while its
    responses are not read (its control channel and the HTTP/2 window both fill), so writing everything first
    could deadlock on a large stream.
    """
    call = rpc_pb2_grpc.WatchStub(channel).Watch()

    async def write() -> None:
        for k in keys:
            await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=k)))

    async def read() -> None:
        created = 0
        while created < len(keys):
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise RuntimeError(f"watch stream ended after {created} of {len(keys)} watchers were created")
            if resp.canceled:
                raise RuntimeError(f"server canceled watch {resp.watch_id}: {resp.cancel_reason!r}")
            created += resp.created

    await asyncio.gather(write(), read())
    return call


async def hold(endpoint: str, count: int, streams: int, channels: int, timeout: float) -> int:
    chans = [
        grpc.aio.insecure_channel(endpoint, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(channels)
    ]
    calls: list[grpc.aio.StreamStreamCall] = []
    try:
        start = time.monotonic()
        per_stream = [[watch_key(i) for i in range(s, count, streams)] for s in range(streams)]
        opening = [_open_stream(chans[s % channels], keys) for s, keys in enumerate(per_stream) if keys]
        try:
            calls = await asyncio.wait_for(asyncio.gather(*opening), timeout)
        except TimeoutError:
            print(json.dumps({"error": f"not all {count} watchers created in {timeout}s"}), flush=True)
            return 1
        except (RuntimeError, grpc.RpcError) as e:
            print(json.dumps({"error": f"{type(e).__name__}: {e}"[-500:]}), flush=True)
            return 1
        print(json.dumps({"created": count, "seconds": time.monotonic() - start}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        return 0
    finally:
        for call in calls:
            call.cancel()
        for ch in chans:
            await ch.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.watchers", description=__doc__.split("\n\n")[0])
    ap.add_argument("endpoint", help="host:port")
    ap.add_argument("count", type=int)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=300.0)
    a = ap.parse_args(argv)
    sys.exit(asyncio.run(hold(a.endpoint, a.count, a.streams, a.channels, a.timeout)))


if __name__ == "__main__":
    main()
