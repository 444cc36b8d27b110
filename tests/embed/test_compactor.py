"""Auto-compaction scheduling (``pyetcd_fast.embed.compactor``) against a real member, with the intervals
stepped by hand: periodic keeps about one retention of history, revision keeps ``retention`` revisions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from harness.embedded import embedded_member
from pyetcd_fast import _native
from pyetcd_fast.embed.compactor import Compactor, parse_retention
from pyetcd_fast.embed.etcd import Etcd


@pytest.mark.parametrize(
    ("mode", "text", "want"),
    [
        ("periodic", "1h", 3600.0),
        ("periodic", "30m", 1800.0),
        ("periodic", "2", 7200.0),
        ("periodic", "1h30m", 5400.0),
        ("periodic", "0", 0.0),
        ("revision", "1000", 1000.0),
    ],
)
def test_parse_retention(mode: str, text: str, want: float) -> None:
    assert parse_retention(mode, text) == want


@pytest.mark.parametrize(("mode", "text"), [("periodic", "1x"), ("periodic", "h"), ("revision", "1h")])
def test_parse_retention_rejects(mode: str, text: str) -> None:
    with pytest.raises(ValueError, match="invalid auto-compaction-retention"):
        parse_retention(mode, text)


@pytest.fixture
def member(tmp_path: Path):
    with embedded_member(tmp_path / "d") as etcd:
        yield etcd


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def put(server: _native.Server, etcd: Etcd, n: int) -> None:
    """n writes through the member's own client port."""
    import grpc

    from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    with grpc.insecure_channel(etcd.client_addrs[0]) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(n):
            kv.Put(rpc_pb2.PutRequest(key=b"k", value=str(i).encode()), timeout=5)


def wait_compacted(server: _native.Server, rev: int) -> None:
    deadline = time.monotonic() + 5
    while server.status()["compact_revision"] != rev:
        assert time.monotonic() < deadline, server.status()
        time.sleep(0.02)


def test_revision_mode_keeps_retention_revisions(member: Etcd, loop: asyncio.AbstractEventLoop) -> None:
    server = member.server
    assert server is not None
    put(server, member, 20)  # revisions 2..21
    c = Compactor(server, loop, "revision", 5)
    assert c.step() == 16
    wait_compacted(server, 16)
    assert c.step() is None, "nothing new to compact"


def test_periodic_mode_compacts_to_the_revision_one_retention_ago(
    member: Etcd, loop: asyncio.AbstractEventLoop
) -> None:
    server = member.server
    assert server is not None
    c = Compactor(server, loop, "periodic", 10.0)  # samples every 1 s (stepped by hand)
    c._samples.append(server.status()["revision"])
    first = server.status()["revision"]
    put(server, member, 3)
    results = [c.step() for _ in range(9)]
    assert results == [None] * 9, "no compaction before one retention has passed"
    assert c.step() == first
    wait_compacted(server, first)
