"""A partitioned leader: the majority goes on without it, and it rejoins without keeping its own writes.

A 3-member cluster runs in network namespaces (``netns.NetnsFabric``; the test is skipped
with the reason when they cannot be created). The leader's veth is set down, which cuts it
off from its peers and from the test process. Then:

- a put sent to the old leader by an etcdctl inside its namespace (``--command-timeout=3s``),
  started right away so the old leader may still take it into its log, fails;
- the two others elect a new leader among themselves within ``MAX_ELECTIONS`` election
  timeouts and accept puts through both of them;
- a linearizable get on the old leader, from inside its namespace, fails (it cannot confirm
  it is still leader, so it must not answer from its possibly stale state).

After healing, the members agree on one leader, the old leader catches up (applied index),
it serves the majority's value (serializable and linearizable), the failed put is nowhere,
and Maintenance.HashKV at the common revision is the same on all members.
"""

from __future__ import annotations

import threading

from harness.cluster import Cluster, hashes_at, read_prefix
from harness.etcdctl import Result
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

MAX_ELECTIONS = 5
CALL_TIMEOUT = 5.0
PREFIX = b"part/"


def test_partitioned_leader(fabric, new_cluster) -> None:
    c: Cluster = new_cluster(3, fabric=fabric)
    old, _ = c.wait_leader()
    before = c.stubs(old).kv.Put(rpc_pb2.PutRequest(key=PREFIX + b"before", value=b"1"), timeout=CALL_TIMEOUT)

    c.partition(old)
    minority: list[Result] = []
    t = threading.Thread(
        target=lambda: minority.append(
            c.etcdctl_inside(old, "--command-timeout=3s", "put", "part/minority", "lost", timeout=30)
        )
    )
    t.start()
    bound = MAX_ELECTIONS * c.election_ms / 1000
    new, waited = c.wait_leader(exclude=[old], timeout=bound)
    majority = [m for m in c.members if m is not old]
    assert new in majority
    revs = {
        m.name: c.stubs(m)
        .kv.Put(rpc_pb2.PutRequest(key=PREFIX + b"majority/" + m.name.encode(), value=b"won"), timeout=CALL_TIMEOUT)
        .header.revision
        for m in majority
    }
    assert min(revs.values()) > before.header.revision
    t.join(30)
    assert minority, "etcdctl put on the old leader did not return"
    assert minority[0].rc != 0, f"a put on the partitioned old leader succeeded: {minority[0]}"
    stale = c.etcdctl_inside(old, "--command-timeout=2s", "get", "part/majority/", "--prefix", timeout=30)
    assert stale.rc != 0, f"the partitioned old leader answered a linearizable read: {stale}"

    c.heal(old)
    c.wait_leader(timeout=3 * bound)
    c.wait_caught_up(old)
    revision = c.wait_converged()
    for serializable in (True, False):
        _, kvs = read_prefix(c, old, PREFIX, serializable=serializable)
        got = {k: (kv.value, kv.mod_revision) for k, kv in kvs.items()}
        want = {PREFIX + b"before": (b"1", before.header.revision)}
        want.update({PREFIX + b"majority/" + name.encode(): (b"won", rev) for name, rev in revs.items()})
        assert got == want, f"old leader after healing (serializable={serializable})"
    for m in majority:
        assert PREFIX + b"minority" not in read_prefix(c, m, PREFIX)[1], f"the failed put is on {m.name}"
    hashes = hashes_at(c, revision)
    assert len(set(hashes.values())) == 1, f"HashKV at {revision} differs: {hashes}"
    print(f"\npartition: new leader {new.name} after {waited:.2f}s; old leader {old.name} rejoined")
