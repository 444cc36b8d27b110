"""Lock, election, cluster, maintenance and auth calls of ``pyetcd_fast.Client``, against ours and real etcd
3.4.23 (the same bodies on both)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import pyetcd_fast as etcd
from harness.servers import Server
from pyetcd_fast import errors


def test_lock_contention_and_a_waiter_timing_out(client: etcd.Client, server: Server) -> None:
    held = client.lock("jobs", ttl=10)
    assert held.key.startswith(b"jobs/")
    with etcd.Client(server.endpoint) as other:
        t0 = time.monotonic()
        with pytest.raises(errors.Timeout):
            other.lock("jobs", ttl=10, timeout=0.5)  # the wait is bounded apart from the TTL
        assert time.monotonic() - t0 < 3
        assert len(client.get_prefix("jobs/")) == 1  # the waiter withdrew its key
        got: list[bytes] = []
        waiter = threading.Thread(target=lambda: got.append(other.lock("jobs", ttl=10, timeout=10).key))
        waiter.start()
        time.sleep(0.3)
        assert not got  # still waiting behind the holder
        held.release()
        waiter.join(5)
        assert got and got[0] != held.key
        other.revoke(client.get_prefix("jobs/")[0].lease)


def test_election(client: etcd.Client, server: Server) -> None:
    first = client.election("leader", ttl=10)
    assert first.leader() is None
    first.campaign("a")
    kv = first.leader()
    assert kv is not None and kv.value == b"a"
    first.proclaim("a2")
    assert (first.leader() or kv).value == b"a2"
    with etcd.Client(server.endpoint) as other:
        with pytest.raises(errors.Timeout):
            other.election("leader", ttl=10).campaign("b", timeout=0.5)
        first.resign()
        with other.election("leader", ttl=10).campaign("b", timeout=5) as second:
            now = second.leader()
            assert now is not None and now.value == b"b"


def test_cluster_and_maintenance(client: etcd.Client, tmp_path: Path) -> None:
    [m] = client.members()
    assert m.id == client.status().header.member_id and m.client_urls and not m.is_learner
    learner = client.add_member(["http://127.0.0.1:1"], learner=True)
    assert learner.is_learner and learner.peer_urls == ["http://127.0.0.1:1"] and learner.name == ""
    assert len(client.update_member(learner.id, ["http://127.0.0.1:2"])) == 2
    assert [x.id for x in client.remove_member(learner.id)] == [m.id]
    assert client.alarms() == []
    client.put("k", "v")
    h = client.hash_kv()
    assert h.hash != 0 and h.header.revision >= 2
    client.defragment()  # etcd 3.4 answers it with an empty header
    n = client.snapshot(str(tmp_path / "snap.db"))
    assert n == (tmp_path / "snap.db").stat().st_size and n > 0 and not (tmp_path / "snap.db.part").exists()


def test_auth_calls(client: etcd.Client, server: Server) -> None:
    client.user_add("root", "rootpw")
    client.role_add("root")
    client.user_grant_role("root", "root")
    client.role_add("reader")
    client.role_grant_permission("reader", "pub/", prefix=True, perm="read")
    client.user_add("alice", "pw")
    client.user_grant_role("alice", "reader")
    assert client.user_roles("alice") == ["reader"] and sorted(client.users()) == ["alice", "root"]
    assert sorted(client.roles()) == ["reader", "root"]
    [p] = client.role_permissions("reader")
    assert (p.perm, p.key, p.range_end) == ("read", b"pub/", b"pub0")
    client.auth_enable()
    with etcd.Client(server.endpoint, user="alice", password="pw") as alice:
        assert alice.get("pub/x") is None
        with pytest.raises(errors.PermissionDenied):
            alice.put("pub/x", "1")
    with pytest.raises(errors.AuthFailed), etcd.Client(server.endpoint, user="alice", password="wrong") as bad:
        bad.get("x")
    with etcd.Client(server.endpoint, user="root", password="rootpw") as root:
        root.role_revoke_permission("reader", "pub/", prefix=True)
        assert root.role_permissions("reader") == []
        root.auth_disable()
