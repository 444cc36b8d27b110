"""Membership changes through the real etcdctl: learner add, promote, remove, and their errors.

On a 3-member cluster (etcd refuses to add or remove members until they have been connected
for 5 s; ``Cluster.reconfigure`` retries on "etcdserver: unhealthy cluster"):

- ``member remove`` of an unknown id fails with "etcdserver: member not found", and
  ``member add`` with a peer URL a member already has with "etcdserver: Peer URLs already
  exists" (etcdctl exit code 1, the message after "Error: " on stderr);
- ``member add --learner`` of m4: ``member list`` shows it as a learner with its peer URL,
  no name and no client URL (it has not started); ``member promote`` now fails with
  "etcdserver: can only promote a learner member which is in sync with leader";
- m4 started with ``--initial-cluster-state existing`` and the initial cluster etcdctl
  printed serves as a learner (Status.isLearner) and catches up; ``member promote`` then
  succeeds and ``member list`` shows m4 as a voter with its name and client URL;
- removing a member that is not the leader: ``member list`` no longer has it, its process
  exits with status 0 (as etcd does once it learns it was removed), and puts through every
  remaining member (m4 included) succeed and read back linearizably everywhere.
"""

from __future__ import annotations

import json
import time

from harness.cluster import Cluster, Member
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

CALL_TIMEOUT = 5.0
NOT_FOUND = "etcdserver: member not found"
PEER_EXISTS = "etcdserver: Peer URLs already exists"
NOT_IN_SYNC = "etcdserver: can only promote a learner member which is in sync with leader"
PROMOTE_TIMEOUT = 15.0
EXIT_TIMEOUT = 15.0


def member_list(c: Cluster) -> dict[int, dict]:
    res = c.etcdctl("member", "list", "-w", "json")
    assert res.rc == 0, res.stderr
    return {m["ID"]: m for m in json.loads(res.stdout)["members"]}


def assert_fails(res, message: str) -> None:
    assert res.rc == 1, f"expected failure with {message!r}: {res}"
    assert f"Error: {message}" in res.stderr.splitlines(), res.stderr


def test_learner_promote_and_remove(new_cluster) -> None:
    c: Cluster = new_cluster(3)

    assert_fails(c.reconfigure("member", "remove", "1234abcd"), NOT_FOUND)
    assert_fails(c.reconfigure("member", "add", "dup", f"--peer-urls={c.members[0].peer_url}"), PEER_EXISTS)
    assert set(member_list(c)) == {m.member_id for m in c.members}

    m4 = c.add_member("m4", learner=True, start=False)
    listed = member_list(c)
    assert listed[m4.member_id] == {"ID": m4.member_id, "peerURLs": [m4.peer_url], "isLearner": True}
    assert len(listed) == 4
    assert_fails(c.promote_member(m4), NOT_IN_SYNC)
    assert m4.learner

    c.start_member(m4)
    assert c.status(m4).isLearner
    c.wait_caught_up(m4)
    deadline = time.monotonic() + PROMOTE_TIMEOUT
    while (res := c.promote_member(m4)).rc != 0:
        assert NOT_IN_SYNC in res.stderr and time.monotonic() < deadline, f"promote after catching up: {res}"
        time.sleep(0.2)
    assert res.stdout.startswith(f"Member {m4.member_id:16x} promoted in cluster "), res.stdout  # Go's %16x
    listed = member_list(c)
    assert listed[m4.member_id] == {
        "ID": m4.member_id,
        "name": "m4",
        "peerURLs": [m4.peer_url],
        "clientURLs": [m4.client_url],
    }
    assert not c.status(m4).isLearner

    leader, _ = c.wait_leader()
    victim = next(m for m in c.members if m is not leader and m is not m4)
    res = c.remove_member(victim)
    assert res.stdout.startswith(f"Member {victim.member_id:16x} removed from cluster "), res.stdout
    assert set(member_list(c)) == {m.member_id for m in c.members if m is not victim}
    try:
        code = victim.proc.wait(EXIT_TIMEOUT)
    except Exception as e:
        raise AssertionError(f"removed member {victim.name} still runs after {EXIT_TIMEOUT}s") from e
    assert code == 0, f"removed member exited with {code}\n{victim.log_tail()}"

    remaining: list[Member] = c.live()
    assert sorted(m.name for m in remaining) == sorted(m.name for m in c.members if m is not victim)
    for m in remaining:
        key = b"members/after-remove/" + m.name.encode()
        rev = c.stubs(m).kv.Put(rpc_pb2.PutRequest(key=key, value=b"ok"), timeout=CALL_TIMEOUT).header.revision
        for other in remaining:
            kvs = c.stubs(other).kv.Range(rpc_pb2.RangeRequest(key=key), timeout=CALL_TIMEOUT).kvs
            assert [(kv.value, kv.mod_revision) for kv in kvs] == [(b"ok", rev)], f"via {m.name}, read on {other.name}"
