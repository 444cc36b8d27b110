"""Hostile input on the client and peer ports stays bounded: each attack adds less than 64 MiB of anonymous
memory to the server, logs no panic, changes no data, and other clients' Range p99 stays under 100 ms
while it runs.

The attacks are raw bytes on sockets (frames built here), so nothing in a client library smooths them.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from harness.servers import Server, start_server
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

RSS_BUDGET = 64 << 20
P99_BUDGET = 0.100


def rss_anon(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server("ours", tmp_path_factory.mktemp("hostile"))
    yield srv
    srv.stop()


def attack(server: Server, run: Callable[[], None]) -> None:
    """Runs ``run`` while a client measures Range latency; checks memory, data, log and latency."""
    assert server.proc is not None
    pid = server.proc.pid
    ch = grpc.insecure_channel(server.endpoint)
    kv = rpc_pb2_grpc.KVStub(ch)
    kv.Put(rpc_pb2.PutRequest(key=b"canary", value=b"still-here"), timeout=10)
    before = kv.Range(rpc_pb2.RangeRequest(key=b"canary"), timeout=10)
    base = rss_anon(pid)
    peak = base
    latencies: list[float] = []
    stop = threading.Event()

    def measure() -> None:
        nonlocal peak
        while not stop.is_set():
            t = time.perf_counter()
            kv.Range(rpc_pb2.RangeRequest(key=b"canary"), timeout=10)
            latencies.append(time.perf_counter() - t)
            peak = max(peak, rss_anon(pid))
            time.sleep(0.01)

    th = threading.Thread(target=measure, daemon=True)
    th.start()
    try:
        run()
        time.sleep(0.5)
    finally:
        stop.set()
        th.join(10)
    after = kv.Range(rpc_pb2.RangeRequest(key=b"canary"), timeout=10)
    ch.close()
    assert server.proc.poll() is None, server.log_tail()
    assert after.kvs == before.kvs and after.header.revision == before.header.revision
    assert peak - base < RSS_BUDGET, f"RSS grew by {(peak - base) >> 20} MiB"
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if len(latencies) >= 10 else max(latencies)
    assert p99 < P99_BUDGET, f"Range p99 {p99 * 1000:.1f} ms during the attack"
    assert "panic" not in Path(server.log_path).read_text(errors="replace")


def h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(0x4, 0, 0, b"")


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    return s


def send_until_closed(s: socket.socket, chunks: Iterator[bytes], limit_s: float = 20) -> None:
    deadline = time.monotonic() + limit_s
    try:
        for c in chunks:
            s.sendall(c)
            if time.monotonic() > deadline:
                break
    except OSError:
        pass  # the server closed the connection: what it should do
    finally:
        s.close()


def test_a_continuation_flood(server: Server) -> None:
    """HEADERS without END_HEADERS, then 100k CONTINUATION frames of 16 KiB of junk."""

    def run() -> None:
        s = connect(server.client_port)
        s.sendall(PREFACE + h2_frame(0x1, 0x0, 1, b"\x82"))
        body = h2_frame(0x9, 0x0, 1, b"\x00" * 16000)
        send_until_closed(s, (body for _ in range(100_000)))

    attack(server, run)


@pytest.mark.parametrize("block", [b"\x3f", b"\x3f\xe2\x1f", b"\x40\x7f\xff\xff\xff\xff"])
def test_a_malformed_hpack_block(server: Server, block: bytes) -> None:
    """A size update cut short (0x3f at the end), one past the table size, an endless integer."""

    def run() -> None:
        s = connect(server.client_port)
        s.sendall(PREFACE + h2_frame(0x1, 0x5, 1, block))
        s.settimeout(5)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
        s.close()

    attack(server, run)


def test_unterminated_json_on_the_gateways_watch(server: Server) -> None:
    """100 MB of one JSON object that never ends, posted to /v3/watch."""

    def run() -> None:
        s = connect(server.client_port)
        head = (
            b"POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" + b'{"create_request":{"key":"'
        )
        s.sendall(head)
        chunk = b"A" * (1 << 20)
        send_until_closed(s, (chunk for _ in range(100)))

    attack(server, run)


def test_a_million_watch_creates_never_read(server: Server) -> None:
    """Watch creates sent as fast as the stream takes them; the answers are never read."""

    def run() -> None:
        ch = grpc.insecure_channel(server.endpoint, options=[("grpc.max_receive_message_length", 1 << 20)])
        sent = 0
        done = threading.Event()

        def creates() -> Iterator[rpc_pb2.WatchRequest]:
            nonlocal sent
            while sent < 1_000_000 and not done.is_set():
                sent += 1
                yield rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"w%d" % sent))

        call = rpc_pb2_grpc.WatchStub(ch).Watch(creates())
        time.sleep(15)  # never read: the server must push back rather than queue
        done.set()
        call.cancel()
        ch.close()

    attack(server, run)


def member_ids(server: Server) -> tuple[int, int]:
    ch = grpc.insecure_channel(server.endpoint)
    st = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=10)
    ch.close()
    return st.header.cluster_id, st.header.member_id


def test_a_peer_frame_claiming_4_gib(server: Server) -> None:
    """A raft stream whose first frame claims 0xFFFFFFFF bytes and sends 8 MiB of them."""
    cid, mid = member_ids(server)

    def run() -> None:
        s = socket.create_connection(("127.0.0.1", server.peer_port), timeout=10)
        s.sendall(b"RAFT" + struct.pack(">QQQ", cid, mid, mid))
        assert s.recv(1) == b"\x00"
        send_until_closed(s, iter([struct.pack(">I", 0xFFFFFFFF)] + [b"\x00" * (1 << 20)] * 8))

    attack(server, run)


def test_ten_thousand_idle_peer_sockets(server: Server) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 12_000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    def run() -> None:
        socks = []
        try:
            for _ in range(min(10_000, want - 200)):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", server.peer_port), timeout=5))
                except OSError:
                    break
            assert len(socks) >= min(10_000, want - 200) // 2
            time.sleep(2)
        finally:
            for x in socks:
                x.close()

    try:
        attack(server, run)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_forged_snapshot_from_a_non_member_is_refused(server: Server) -> None:
    """A raft stream from an id that is not a member is refused before any frame is read."""
    cid, mid = member_ids(server)
    s = socket.create_connection(("127.0.0.1", server.peer_port), timeout=10)
    s.sendall(b"RAFT" + struct.pack(">QQQ", cid, 0xBAD, mid))
    answer = s.recv(1)
    assert answer != b"\x00", "a stranger's raft stream was accepted"
    s.close()
    # And the peer port's internal endpoints want this cluster's id and a member as sender.
    for headers in ({}, {"X-Etcd-Cluster-ID": f"{cid:x}", "X-Server-From": "bad"}):
        s = socket.create_connection(("127.0.0.1", server.peer_port), timeout=10)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"POST /leases HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: 0\r\n\r\n".encode())
        status_line = s.recv(4096).split(b"\r\n")[0]
        assert status_line.split()[1] in (b"403", b"412"), status_line
        s.close()
