"""``pyetcd_fast.Client`` against our server and against real etcd 3.4.23: the same test bodies on both
(``server`` is parametrized in conftest.py), so the client is checked as an etcd client, not as ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import pyetcd_fast as etcd
from harness.etcdctl import ETCDCTL_BIN
from harness.servers import Server, free_port, start_server
from pyetcd_fast import errors


def test_put_get_delete(client: etcd.Client) -> None:
    first = client.put("/svc/a", "10.0.0.1")
    kv = client.get("/svc/a")
    assert kv is not None and kv.key == b"/svc/a" and kv.value == b"10.0.0.1"
    assert kv.version == 1 and kv.create_revision == kv.mod_revision == first.header.revision and kv.lease == 0
    assert client.get(b"/svc/none") is None
    again = client.put(b"/svc/a", b"\x00\xff", prev_kv=True)
    assert again.prev_kv is not None and again.prev_kv.value == b"10.0.0.1"
    kv = client.get("/svc/a")
    assert kv is not None and (kv.value, kv.version) == (b"\x00\xff", 2)
    old = client.get("/svc/a", revision=first.header.revision)
    assert old is not None and old.value == b"10.0.0.1"
    gone = client.delete("/svc/a", prev_kv=True)
    assert gone.deleted == 1 and [k.value for k in gone.prev_kvs] == [b"\x00\xff"]
    assert client.delete("/svc/a").deleted == 0
    assert "KeyValue(key=b'/svc/a'" in repr(old)


def test_ranges(client: etcd.Client) -> None:
    for k in ("p/b", "p/a", "p/c", "q"):
        client.put(k, k.upper())
    assert [k.key for k in client.get_prefix("p/")] == [b"p/a", b"p/b", b"p/c"]
    assert [k.key for k in client.get_prefix("p/", sort_order="descend")] == [b"p/c", b"p/b", b"p/a"]
    assert [k.value for k in client.get_prefix("p/", keys_only=True)] == [b"", b"", b""]
    r = client.get_range("p/", "p0", limit=2)
    assert (len(r.kvs), r.more, r.count) == (2, True, 3)
    assert client.get_range("p/", "p0", count_only=True).count == 3
    assert [k.key for k in client.get_range("p/c", from_key=True).kvs] == [b"p/c", b"q"]
    assert [k.key for k in client.get_range("p/a", "p/c").kvs] == [b"p/a", b"p/b"]
    assert client.delete_prefix("p/").deleted == 3
    assert etcd.client.prefix_range_end(b"a\xff") == b"b" and etcd.client.prefix_range_end(b"\xff") == b"\0"


def test_compaction_and_revisions(client: etcd.Client) -> None:
    r1 = client.put("c", "1").header.revision
    client.put("c", "2")
    client.compact(r1 + 1)
    with pytest.raises(errors.Compacted, match="compacted"):
        client.get("c", revision=r1)
    with pytest.raises(errors.FutureRevision):
        client.get("c", revision=r1 + 100)
    assert isinstance(errors.Compacted("x"), etcd.EtcdError)


def test_leases(client: etcd.Client) -> None:
    lease = client.grant(30)
    assert lease.ttl == 30 and lease.id in client.leases()
    client.put("leased", "v", lease=lease)
    kv = client.get("leased")
    assert kv is not None and kv.lease == lease.id
    ttl = lease.time_to_live(keys=True)
    assert ttl.granted_ttl == 30 and 0 < ttl.ttl <= 30 and ttl.keys == [b"leased"]
    lease.revoke()
    assert client.get("leased") is None
    with pytest.raises(errors.LeaseNotFound):
        client.revoke(lease.id)
    assert client.time_to_live(lease).ttl == -1


def test_status(client: etcd.Client) -> None:
    s = client.status()
    assert s.version.startswith("3.") and s.leader == s.header.member_id and s.raft_index >= 1


def test_failover_and_unreachable(server: Server) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with etcd.Client([dead, server.endpoint], dial_timeout=1) as c:
        c.put("k", "v")
        kv = c.get("k")
        assert kv is not None and kv.value == b"v"
    with etcd.Client(dead, dial_timeout=0.5) as c, pytest.raises(errors.ConnectionFailed):
        c.get("k")


def test_a_call_times_out_and_the_next_one_works(server: Server) -> None:
    with etcd.Client(server.endpoint) as c:
        c.put("k", "v")
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(errors.Timeout):
                c.get("k", timeout=0.3)
            assert time.monotonic() - t0 < 2
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        kv = c.get("k")
        assert kv is not None and kv.value == b"v"


def test_auth_and_token_renewal(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A user's token is renewed when the server says it expired (--auth-token-ttl 1)."""
    for kind in ("ours", "etcd"):
        s = start_server(kind, tmp_path / kind, ["--auth-token-ttl", "1"])
        try:
            env = {**os.environ, "ETCDCTL_API": "3"}
            for args in (["user", "add", "root:rootpw"], ["auth", "enable"]):
                subprocess.run(
                    [ETCDCTL_BIN, "--endpoints", s.endpoint, *args], env=env, check=True, capture_output=True
                )
            with etcd.Client(s.endpoint, user="root", password="rootpw") as c:
                c.put("k", "v")
                time.sleep(2.5)  # the simple token expires after 1 s unused
                kv = c.get("k")
                assert kv is not None and kv.value == b"v", kind
            with etcd.Client(s.endpoint) as anon, pytest.raises(errors.EtcdError, match="user name is empty"):
                anon.get("k")
            with etcd.Client(s.endpoint, user="root", password="bad") as bad, pytest.raises(errors.AuthFailed):
                bad.get("k")
        finally:
            s.stop()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_reconnects(client: etcd.Client) -> None:
    client.put("fork", "parent")
    pid = os.fork()
    if pid == 0:  # the child: its first call must dial anew, not hang on the parent's connection
        try:
            client.put("fork", "child", timeout=5)
            kv = client.get("fork", timeout=5)
            os._exit(0 if kv is not None and kv.value == b"child" else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    kv = client.get("fork")
    assert kv is not None and kv.value == b"child"


def test_txn(client: etcd.Client) -> None:
    from pyetcd_fast import txn

    client.put("t/a", "1")
    r = client.txn(
        compare=[txn.value("t/a") == "1", txn.version("t/a") > 0, txn.create("t/none") == 0, txn.lease("t/a") == 0],
        success=[txn.put("t/b", "2", prev_kv=True), txn.get("t/", prefix=True), txn.delete("t/a", prev_kv=True)],
        failure=[txn.put("t/failed", "x")],
    )
    assert r.succeeded and r.header.revision > 0
    put, rng, dele = r.responses
    assert isinstance(put, etcd.client.PutResponse) and put.prev_kv is None
    assert isinstance(rng, etcd.client.RangeResponse) and [k.key for k in rng.kvs] == [b"t/a", b"t/b"]
    assert isinstance(dele, etcd.client.DeleteResponse) and dele.deleted == 1
    rev = client.get("t/b")
    assert rev is not None
    nested = client.txn(
        compare=[txn.mod("t/b") != rev.mod_revision],
        success=[txn.put("t/never", "x")],
        failure=[txn.txn([txn.value("t/b") == "2"], [txn.get("t/b")], [])],
    )
    assert not nested.succeeded
    inner = nested.responses[0]
    assert isinstance(inner, txn.TxnResponse) and inner.succeeded
    assert [k.value for k in inner.responses[0].kvs] == [b"2"]  # type: ignore[attr-defined]
    assert client.get("t/never") is None
    with pytest.raises(errors.EtcdError, match="duplicate key"):
        client.txn(success=[txn.put("d", "1"), txn.put("d", "2")])
    with pytest.raises(TypeError):
        txn.version("k") == "not an int"  # noqa: B015


def test_watch(client: etcd.Client) -> None:
    r1 = client.put("/w/a", "1").header.revision
    client.put("/w/b", "2")
    client.delete("/w/a")
    with client.watch_prefix("/w/", start_revision=r1, prev_kv=True) as events:
        first3 = [next(events) for _ in range(3)]
        got = [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision - r1) for e in first3]
        assert got == [("PUT", b"/w/a", b"1", 0), ("PUT", b"/w/b", b"2", 1), ("DELETE", b"/w/a", b"", 2)]
        assert events.next_revision == r1 + 3
    later = client.watch("/w/c")
    client.put("/w/c", "x")
    first = next(later)
    assert (first.type, first.kv.value, first.prev_kv) == ("PUT", b"x", None)
    later.cancel()
    assert list(later) == []
    deletes = client.watch("/w/d", filters=["noput"], prev_kv=True)
    client.put("/w/d", "1")
    client.delete("/w/d")
    gone = next(deletes)
    assert gone.type == "DELETE" and gone.prev_kv is not None and gone.prev_kv.value == b"1"
    # A revision's events arrive together.
    from pyetcd_fast import txn

    together = client.watch_prefix("/w/t/")
    client.txn(success=[txn.put("/w/t/1", "a"), txn.put("/w/t/2", "b")])
    batch = together.next_batch(timeout=5)
    assert batch is not None and [e.kv.key for e in batch[1]] == [b"/w/t/1", b"/w/t/2"]
    with pytest.raises(errors.Timeout):
        client.watch("/w/none").next_batch(timeout=0.3)
    progress = client.watch("/w/p")
    progress.request_progress()
    answer = progress.next_batch(timeout=5)
    assert answer is not None and answer[1] == [] and answer[0] >= batch[0]


def test_watch_of_a_compacted_revision(client: etcd.Client) -> None:
    rev = client.put("/w/e", "1").header.revision
    client.put("/w/e", "2")
    client.compact(rev + 1)
    with pytest.raises(errors.Compacted) as info:
        next(client.watch("/w/e", start_revision=rev))
    assert info.value.compact_revision == rev + 1  # type: ignore[attr-defined]


def test_watch_resumes_after_the_server_restarts(server: Server) -> None:
    """Events written while the watch is disconnected arrive once it reconnects: none lost, none repeated."""
    with etcd.Client(server.endpoint) as c:
        w = c.watch_prefix("r/")
        c.put("r/1", "a")
        assert next(w).kv.key == b"r/1"
        server.stop()
        server.restart()
        for i in range(2, 5):
            c.put(f"r/{i}", "b")
        batch = w.next_batch(timeout=20)
        keys = []
        while batch is not None and len(keys) < 3:
            keys += [e.kv.key for e in batch[1]]
            if len(keys) < 3:
                batch = w.next_batch(timeout=20)
        assert keys == [b"r/2", b"r/3", b"r/4"]
        with pytest.raises(errors.Timeout):
            w.next_batch(timeout=0.5)  # and nothing repeated after them
