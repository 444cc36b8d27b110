"""Crash safety: every acknowledged write survives ``kill -9``.

One server with a data dir goes through several cycles of: 16 gRPC clients (threads,
one connection each) put unique keys as fast as they can; after a short, seeded
delay the server is killed with SIGKILL mid-load; it is restarted on the same data
dir and ports. After each restart:

- every put that was acknowledged, in any cycle so far, is there with its value, and
  with ``create_revision == mod_revision ==`` the revision its response reported;
- the store revision is at least the highest acknowledged one;
- every key present was written by some client (in-flight puts may or may not be
  there; nothing else may).

A put is acknowledged only when the server answered it; etcd answers after the
entry is fsynced to the WAL and applied, so the test holds for real etcd.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from harness.servers import Server, start_server
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

CLIENTS = 16
CYCLES = 5
PREFIX = b"crash/"
MIN_ACKED_BEFORE_KILL = 50
CALL_TIMEOUT = 5.0
VALUE_PAD = b"." * 64


def key_of(cycle: int, client: int, i: int) -> bytes:
    return PREFIX + b"%d/%02d/%06d" % (cycle, client, i)


def value_of(key: bytes) -> bytes:
    return key[len(PREFIX) :] + VALUE_PAD


@dataclass
class Writers:
    """CLIENTS threads putting unique keys until the server goes away."""

    endpoint: str
    cycle: int
    acked: dict[bytes, int] = field(default_factory=dict)  # key -> header.revision of the put
    attempted: set[bytes] = field(default_factory=set)
    errors: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, error)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for c in range(CLIENTS):
            t = threading.Thread(target=self._run, args=(c,), name=f"writer-{c}", daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, client: int) -> None:
        # A local subchannel pool gives each thread its own TCP connection, like separate clients.
        with grpc.insecure_channel(self.endpoint, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            i = 0
            while not self.stop.is_set():
                key = key_of(self.cycle, client, i)
                with self.lock:
                    self.attempted.add(key)
                try:
                    resp = kv.Put(rpc_pb2.PutRequest(key=key, value=value_of(key)), timeout=CALL_TIMEOUT)
                except grpc.RpcError as e:
                    with self.lock:
                        self.errors.append((time.monotonic(), f"{e.code().name}: {e.details()}"))
                    return
                with self.lock:
                    self.acked[key] = resp.header.revision
                i += 1

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(CALL_TIMEOUT * 2)
            assert not t.is_alive(), f"{t.name} did not stop"


def read_all(endpoint: str) -> tuple[int, dict[bytes, rpc_pb2.KeyValue]]:
    with grpc.insecure_channel(endpoint, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        end = PREFIX[:-1] + bytes([PREFIX[-1] + 1])
        resp = kv.Range(rpc_pb2.RangeRequest(key=PREFIX, range_end=end), timeout=30)
        return resp.header.revision, {x.key: x for x in resp.kvs}


def verify(srv: Server, acked: dict[bytes, int], attempted: set[bytes], cycle: int) -> None:
    revision, kvs = read_all(srv.endpoint)
    lost = sorted(k for k in acked if k not in kvs)
    assert not lost, f"cycle {cycle}: {len(lost)} acknowledged puts lost after kill -9, e.g. {lost[:5]}"
    wrong = [
        (k, acked[k], kvs[k].create_revision, kvs[k].mod_revision, kvs[k].value)
        for k in acked
        if (kvs[k].mod_revision, kvs[k].create_revision, kvs[k].version, kvs[k].value)
        != (acked[k], acked[k], 1, value_of(k))
    ]
    assert not wrong, (
        f"cycle {cycle}: {len(wrong)} keys differ from their ack (key, acked, create, mod, value): {wrong[:5]}"
    )
    assert revision >= max(acked.values()), f"cycle {cycle}: revision {revision} < acknowledged {max(acked.values())}"
    stray = [k for k in kvs if k not in attempted]
    assert not stray, f"cycle {cycle}: keys nobody wrote: {stray[:5]}"
    bad = [k for k in kvs if kvs[k].value != value_of(k)]
    assert not bad, f"cycle {cycle}: unacknowledged keys with wrong values: {bad[:5]}"


def test_acknowledged_puts_survive_kill_9(tmp_path: Path) -> None:
    srv = start_server("ours", tmp_path / "ours")
    rnd = random.Random(2379)
    acked: dict[bytes, int] = {}
    attempted: set[bytes] = set()
    try:
        for cycle in range(CYCLES):
            writers = Writers(srv.endpoint, cycle)
            writers.start()
            deadline = time.monotonic() + 20
            while writers.count() < MIN_ACKED_BEFORE_KILL and time.monotonic() < deadline:
                time.sleep(0.02)
            assert writers.count() >= MIN_ACKED_BEFORE_KILL, f"cycle {cycle}: writes too slow\n{writers.errors[:5]}"
            time.sleep(rnd.uniform(0.5, 1.5))
            killed_at = time.monotonic()
            srv.kill()
            writers.join()
            early = [e for t, e in writers.errors if t < killed_at]
            assert not early, f"cycle {cycle}: puts failed before the kill: {early[:5]}"
            acked.update(writers.acked)
            attempted |= writers.attempted
            srv.restart()
            verify(srv, acked, attempted, cycle)
    finally:
        srv.stop()
