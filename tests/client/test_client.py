"""``pyetcd_fast.Client`` against our server and against real etcd 3.4.23: the same test bodies on both
(``server`` is parametrized), so the client is checked as an etcd client, not as ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pyetcd_fast as etcd
from harness.etcdctl import ETCDCTL_BIN
from harness.servers import Server, free_port, start_server
from pyetcd_fast import errors


@pytest.fixture(params=["ours", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    s = start_server(request.param, tmp_path / request.param)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(server: Server) -> Iterator[etcd.Client]:
    with etcd.Client(server.endpoint) as c:
        yield c


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
