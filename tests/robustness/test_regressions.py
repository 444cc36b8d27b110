"""Regression tests for the bugs the robustness work found, one reproduction each (the README's bug table).

Each test is the reproduction from the bug's report, run against our server as a user would run it: the real
etcdctl, a real process, a real restart.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from harness import etcdctl
from harness.embedded import embedded_member
from harness.servers import free_port, start_server
from harness.watchclient import WatchStream
from pyetcd_fast import _native
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd_fast.etcdpb.mvccpb import kv_pb2 as mvcc_pb2

FAILED_TXN = 'value("k1") = "nope"\n\nput x y\n\n\n'


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_restart_after_snapshot_over_no_op_entries(tmp_path: Path, stop: str) -> None:
    """A snapshot taken while the last applied entries changed nothing (failed compares) must not brick the
    member: the backend's consistent index has to reach the snapshot, or the restart finds the WAL's commit
    index below the snapshot and raft refuses to start ("hs.commit 8 is out of range [20, 20]")."""
    srv = start_server("ours", tmp_path, ["--snapshot-count", "10"])
    try:
        for i in range(1, 6):
            assert etcdctl.run(srv.endpoint, "put", f"k{i}", "v").rc == 0
        for _ in range(12):
            r = etcdctl.run(srv.endpoint, "txn", stdin=FAILED_TXN)
            assert r.rc == 0 and r.stdout.startswith("FAILURE"), r
        srv.stop() if stop == "terminate" else srv.kill()
        srv.restart()
        r = etcdctl.run(srv.endpoint, "get", "k", "--prefix", "--keys-only")
        assert r.rc == 0 and r.stdout.split() == [f"k{i}" for i in range(1, 6)], r
        assert etcdctl.run(srv.endpoint, "put", "after", "restart").rc == 0
    finally:
        srv.stop()


def arm_failpoint(http_addr: str, name: str, term: str) -> None:
    """Arms ``name`` in a running server through its failpoints endpoint (PYETCD_FAILPOINTS_HTTP)."""
    req = urllib.request.Request(f"http://{http_addr}/{name}", data=term.encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 204


# (failpoint, --snapshot-count): every failpoint a put reaches on one member.
DURABILITY_FAILPOINTS = [
    ("raft-before-save", 10000),
    ("raft-after-save", 10000),
    ("wal-before-fsync", 10000),
    ("wal-after-fsync", 10000),
    ("apply-before-commit", 10000),
    ("backend-before-commit", 10000),
    ("backend-after-commit", 10000),
    ("snapshot-before-save", 10),
]


@pytest.mark.parametrize(("failpoint", "snapshot_count"), DURABILITY_FAILPOINTS)
def test_a_panic_on_the_durability_path_ends_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failpoint: str, snapshot_count: int
) -> None:
    """Fail-stop: a panic at a durability boundary ends the process at once (status 2, as a Go panic), nothing
    is acknowledged after it, and the restart recovers every acknowledged write. Before the fix the member
    caught nothing but OSError: it panicked 9 times in 15 puts, acknowledged all 15, and then hung reads."""
    http_addr = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("PYETCD_FAILPOINTS_HTTP", http_addr)
    srv = start_server("ours", tmp_path, ["--snapshot-count", str(snapshot_count)])
    acked: dict[bytes, int] = {}
    try:
        with grpc.insecure_channel(srv.endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            for i in range(5):
                acked[b"k%d" % i] = kv.Put(rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v"), timeout=5).header.revision
            arm_failpoint(http_addr, failpoint, "panic")
            armed_at = time.monotonic()
            failed_at: float | None = None
            for i in range(5, 20):
                key = b"k%d" % i
                try:
                    acked[key] = kv.Put(rpc_pb2.PutRequest(key=key, value=b"v"), timeout=2).header.revision
                    assert failed_at is None, f"{key!r} acknowledged after an earlier put failed"
                except grpc.RpcError:
                    failed_at = failed_at or time.monotonic()
        # The backend commits on a timer after the puts are acknowledged (the WAL holds them), so for those
        # failpoints every put may succeed and the process ends just after.
        assert srv.proc is not None
        assert srv.proc.wait(timeout=2) == 2, srv.log_tail()
        assert time.monotonic() - armed_at < 5
        assert f"failpoint {failpoint}" in srv.log_tail(200) and '"level":"panic"' in srv.log_tail(200)
        monkeypatch.delenv("PYETCD_FAILPOINTS_HTTP")
        srv.restart()
        with grpc.insecure_channel(srv.endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            got = kv.Range(rpc_pb2.RangeRequest(key=b"k", range_end=b"l"), timeout=5)
            have = {x.key: x.mod_revision for x in got.kvs}
            for key, rev in acked.items():
                assert have.get(key) == rev, f"acknowledged {key!r} at {rev} lost: {have}"
            kv.Put(rpc_pb2.PutRequest(key=b"after", value=b"restart"), timeout=5)
    finally:
        srv.stop()


def test_an_embedded_member_stops_acknowledging_after_a_panic(tmp_path: Path) -> None:
    """Without the process-wide hook (a library user's process), the Ready loop sees the PanicException and
    fails the member: no acknowledgement after it, the error is kept, and nothing is synced."""
    with embedded_member(tmp_path / "m") as etcd:
        endpoint = etcd.client_addrs[0]
        with grpc.insecure_channel(endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            kv.Put(rpc_pb2.PutRequest(key=b"a", value=b"1"), timeout=5)
            assert _native.set_failpoint("apply-before-commit", "panic")
            try:
                with pytest.raises(grpc.RpcError):
                    kv.Put(rpc_pb2.PutRequest(key=b"b", value=b"2"), timeout=5)
                assert etcd.stopped.wait(2)
                assert type(etcd.fatal).__name__ == "PanicException"
                with pytest.raises(grpc.RpcError):
                    kv.Put(rpc_pb2.PutRequest(key=b"c", value=b"3"), timeout=2)
            finally:
                _native.set_failpoint("apply-before-commit", "")
    with embedded_member(tmp_path / "m") as etcd, grpc.insecure_channel(etcd.client_addrs[0]) as ch:
        got = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"), timeout=5)
        # b was in the WAL when the apply panicked: the restart replays it (an unacknowledged write may or may
        # not have happened); c came after the failure and must not.
        assert [x.key for x in got.kvs] in ([b"a"], [b"a", b"b"])


@pytest.mark.parametrize("prev_kv", [False, True])
@pytest.mark.parametrize("restart", [False, True])
def test_a_watch_from_the_compaction_revision_sees_the_delete_there(
    tmp_path: Path, prev_kv: bool, restart: bool
) -> None:
    """etcd #18089 (3.4.23 has it too): after `del wk` at r and a compaction at r, a watch from r must begin
    with that DELETE; before the fix the compaction purged the tombstone and the watcher saw only the PUT
    after it, never learning that the key was deleted. It must hold after a restart as well."""
    srv = start_server("ours", tmp_path)
    try:
        with grpc.insecure_channel(srv.endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            kv.Put(rpc_pb2.PutRequest(key=b"wk", value=b"a"), timeout=5)
            kv.Put(rpc_pb2.PutRequest(key=b"wk", value=b"b"), timeout=5)
            r = kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"wk"), timeout=5).header.revision
            kv.Put(rpc_pb2.PutRequest(key=b"wk", value=b"c"), timeout=5)
            kv.Compact(rpc_pb2.CompactionRequest(revision=r, physical=True), timeout=5)
        if restart:
            srv.stop()
            srv.restart()
        with grpc.insecure_channel(srv.endpoint) as ch:
            ws = WatchStream(ch)
            try:
                ws.create(b"wk", start_revision=r, prev_kv=prev_kv)
                got = ws.wait_for(lambda rs: sum(len(x.events) for x in rs) >= 2)
                events = [e for x in got for e in x.events]
                assert [(e.type, e.kv.key, e.kv.mod_revision) for e in events] == [
                    (mvcc_pb2.Event.DELETE, b"wk", r),
                    (mvcc_pb2.Event.PUT, b"wk", r + 1),
                ]
                assert events[1].kv.value == b"c"
                # The value before the delete was compacted away: no prev_kv for it (etcd gives none either).
                assert not events[0].HasField("prev_kv")
            finally:
                ws.close()
            # One compaction later, the tombstone goes the way of every other compacted revision.
            kv = rpc_pb2_grpc.KVStub(ch)
            kv.Compact(rpc_pb2.CompactionRequest(revision=r + 1, physical=True), timeout=5)
            ws = WatchStream(ch)
            try:
                ws.create(b"wk", start_revision=r + 1)
                got = ws.wait_for(lambda rs: any(x.events for x in rs))
                assert [(e.type, e.kv.mod_revision) for x in got for e in x.events] == [(mvcc_pb2.Event.PUT, r + 1)]
            finally:
                ws.close()
    finally:
        srv.stop()
