"""A healthy cluster: bootstrap, linearizable reads across members, and followers serving every API.

- bootstrap (3 and 5 members): ``etcdctl member list -w json`` names every member with
  its peer and client URL (and no learner); a put through each member is read,
  linearizably, from every member with the put's revision; ``endpoint status --cluster``
  shows every member with the same leader (one of them) and raft term; ``endpoint hashkv
  --cluster`` shows one hash and one revision.
- linearizable reads: 200 times, a put through member i is seen by an immediately
  following linearizable Range through a member j != i, with ``mod_revision`` equal to the
  put's header revision and the Range's header revision at least that.
- followers: a lease granted through one follower and kept alive through the other for
  twice its TTL keeps its key, then expires once the keep-alives stop; a watch opened on a
  follower sees puts made through the leader and a delete through the other follower, in
  order, with their revisions; Maintenance.Status works on every member and all agree.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from harness.cluster import Cluster, Member
from harness.keepalive import KeepAlive
from harness.watchclient import WatchStream
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2
from pyetcd_fast.etcdpb.mvccpb import kv_pb2

CALL_TIMEOUT = 5.0
LINEARIZABLE_ROUNDS = 200
LEASE_TTL = 3
KEEPALIVE_EVERY = 0.5
EXPIRY_SLACK = 4.0


def put(c: Cluster, m: Member, key: bytes, value: bytes, lease: int = 0) -> int:
    return (
        c.stubs(m).kv.Put(rpc_pb2.PutRequest(key=key, value=value, lease=lease), timeout=CALL_TIMEOUT).header.revision
    )


def get(c: Cluster, m: Member, key: bytes, serializable: bool = False) -> rpc_pb2.RangeResponse:
    return c.stubs(m).kv.Range(rpc_pb2.RangeRequest(key=key, serializable=serializable), timeout=CALL_TIMEOUT)


def followers(c: Cluster) -> tuple[Member, list[Member]]:
    leader, _ = c.wait_leader()
    return leader, [m for m in c.live() if m is not leader]


def ctl_json(c: Cluster, m: Member, *args: str):
    res = c.etcdctl(*args, "-w", "json", member=m)
    assert res.rc == 0, f"etcdctl {' '.join(args)} via {m.name}: {res.stderr}"
    return json.loads(res.stdout)


@pytest.mark.parametrize("size", [3, 5])
def test_bootstrap(size: int, request, new_cluster) -> None:
    c: Cluster = request.getfixturevalue("cluster3") if size == 3 else new_cluster(size)
    leader, _ = c.wait_leader()
    expected = sorted(
        (
            {"ID": m.member_id, "name": m.name, "peerURLs": [m.peer_url], "clientURLs": [m.client_url]}
            for m in c.members
        ),
        key=lambda x: x["ID"],
    )
    for m in c.members:
        listed = ctl_json(c, m, "member", "list")["members"]
        assert sorted(listed, key=lambda x: x["ID"]) == expected, f"member list via {m.name}"

    for i, m in enumerate(c.members):
        key, value = b"boot/%d/from-%s" % (size, m.name.encode()), b"v%d" % i
        rev = put(c, m, key, value)
        for other in c.members:
            kvs = get(c, other, key).kvs
            assert [(kv.key, kv.value, kv.mod_revision) for kv in kvs] == [(key, value, rev)], (
                f"put through {m.name} at {rev}, read through {other.name}"
            )

    revision = c.wait_converged()
    statuses = ctl_json(c, leader, "endpoint", "status", "--cluster")
    by_endpoint = {s["Endpoint"]: s["Status"] for s in statuses}
    assert sorted(by_endpoint) == sorted(m.client_url for m in c.members)
    for m in c.members:
        st = by_endpoint[m.client_url]
        assert st["header"]["member_id"] == m.member_id, m.name
        assert st["header"]["revision"] == revision, m.name
    assert {s["leader"] for s in by_endpoint.values()} == {leader.member_id}, statuses
    assert len({s["raftTerm"] for s in by_endpoint.values()}) == 1, statuses

    hashes = ctl_json(c, leader, "endpoint", "hashkv", "--cluster")
    assert sorted(h["Endpoint"] for h in hashes) == sorted(m.client_url for m in c.members)
    assert len({h["HashKV"]["hash"] for h in hashes}) == 1, hashes
    assert {h["HashKV"]["header"]["revision"] for h in hashes} == {revision}, hashes


def test_linearizable_reads_across_members(cluster3: Cluster) -> None:
    c = cluster3
    rnd = random.Random(4242)
    for n in range(LINEARIZABLE_ROUNDS):
        writer, reader = rnd.sample(c.members, 2)
        key, value = b"lin/%03d" % n, b"%s-%d" % (writer.name.encode(), n)
        rev = put(c, writer, key, value)
        resp = get(c, reader, key)
        got = [(kv.value, kv.mod_revision) for kv in resp.kvs]
        assert got == [(value, rev)], f"round {n}: put via {writer.name} at {rev}, linearizable read via {reader.name}"
        assert resp.header.revision >= rev, f"round {n}: read header revision {resp.header.revision} < {rev}"


def test_lease_kept_alive_through_a_follower(cluster3: Cluster) -> None:
    c = cluster3
    leader, (f1, f2) = followers(c)
    grant = c.stubs(f1).lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=LEASE_TTL), timeout=CALL_TIMEOUT)
    assert grant.ID != 0 and grant.TTL == LEASE_TTL and not grant.error
    key = b"lease/held"
    put(c, f1, key, b"v", lease=grant.ID)

    ka = KeepAlive(c.stubs(f2).lease, grant.ID, KEEPALIVE_EVERY)
    try:
        time.sleep(2 * LEASE_TTL)
        assert ka.error is None, ka.error
        for m in c.members:
            assert [kv.lease for kv in get(c, m, key).kvs] == [grant.ID], f"key gone via {m.name} while kept alive"
        ttl = c.stubs(leader).lease.LeaseTimeToLive(
            rpc_pb2.LeaseTimeToLiveRequest(ID=grant.ID, keys=True), timeout=CALL_TIMEOUT
        )
        assert ttl.grantedTTL == LEASE_TTL and 0 < ttl.TTL <= LEASE_TTL and list(ttl.keys) == [key], ttl
    finally:
        ka.stop()
    assert len(ka.responses) >= 2 * LEASE_TTL / KEEPALIVE_EVERY - 2, f"only {len(ka.responses)} keep-alive responses"
    assert {(r.ID, r.TTL) for r in ka.responses} == {(grant.ID, LEASE_TTL)}

    deadline = time.monotonic() + LEASE_TTL + EXPIRY_SLACK
    while get(c, f1, key).kvs:
        assert time.monotonic() < deadline, f"lease {grant.ID:x} did not expire after its keep-alives stopped"
        time.sleep(0.1)


def test_watch_on_a_follower(cluster3: Cluster) -> None:
    c = cluster3
    leader, (f1, f2) = followers(c)
    start = get(c, leader, b"watch/").header.revision + 1
    ws = WatchStream(c.channel(f1))
    try:
        ws.create(b"watch/", b"watch0", start_revision=start)
        ws.wait_for(lambda rs: any(r.created for r in rs), what="created")
        revs = [put(c, leader, b"watch/%02d" % i, b"v%d" % i) for i in range(20)]
        del_rev = (
            c.stubs(f2)
            .kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"watch/00"), timeout=CALL_TIMEOUT)
            .header.revision
        )

        def events(rs: list[rpc_pb2.WatchResponse]) -> list:
            return [(e.type, e.kv.key, e.kv.mod_revision) for r in rs for e in r.events]

        ws.wait_for(lambda rs: len(events(rs)) >= 21, what="21 events")
        want = [(kv_pb2.Event.PUT, b"watch/%02d" % i, rev) for i, rev in enumerate(revs)]
        want.append((kv_pb2.Event.DELETE, b"watch/00", del_rev))
        assert events(ws.settle()) == want
    finally:
        ws.close()


def test_status_on_every_member(cluster3: Cluster) -> None:
    c = cluster3
    leader, _ = c.wait_leader()
    c.wait_converged()
    statuses = {m.name: c.status(m) for m in c.members}
    for m in c.members:
        st = statuses[m.name]
        assert st.header.member_id == m.member_id and st.leader == leader.member_id, st
        assert not st.isLearner and st.version and st.dbSize > 0, st
    assert len({(st.raftTerm, st.raftIndex, st.header.revision) for st in statuses.values()}) == 1, statuses
