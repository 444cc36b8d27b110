"""Catching up past the leader's compacted log: a lagging follower and a new member get a snapshot.

A 3-member cluster runs with ``--snapshot-count 1000``. After a snapshot etcd keeps 5000
entries of log (etcdserver.SnapshotCatchUpEntries), so once a follower is stopped and more
than ``PUTS`` > 6000 entries are committed without it, the entries it needs are gone from the
leader's log and it can only catch up from a snapshot. (Real etcd logs "sending database
snapshot" on the leader and "applied snapshot" on the follower; this test checks state only.)

- one follower is stopped (SIGTERM); ``PUTS`` unique keys are put through the other two,
  concurrently over several connections;
- the follower is restarted on its data dir and catches up (applied index), then holds
  every key with its value and revision (serializable read) and HashKV at the common
  revision equals the others';
- v2 keys written before and during the stop reach the follower in the snapshot too (the v2 store is part
  of the backend);
- a new member m4 is added (``etcdctl member add``, started with
  ``--initial-cluster-state existing``); it catches up the same way and holds the same.
"""

from __future__ import annotations

import pytest

from harness.cluster import Cluster, Member, bulk_put, hashes_at, read_prefix
from harness.v2client import request

SNAPSHOT_COUNT = 1000
PUTS = 7000
PREFIX = b"snap/"


def check_member(c: Cluster, m: Member, revisions: dict[bytes, int]) -> None:
    c.wait_caught_up(m)
    _, kvs = read_prefix(c, m, PREFIX, serializable=True)
    got = {k: (kv.value, kv.mod_revision) for k, kv in kvs.items()}
    missing = sorted(set(revisions) - set(got))
    assert not missing, f"{m.name}: {len(missing)} of {len(revisions)} keys missing after catching up: {missing[:5]}"
    want = {k: (value_of(k), rev) for k, rev in revisions.items()}
    assert got == want, f"{m.name}: keys differ after catching up"


def v2_tree(m: Member) -> tuple[int, str]:
    a = request(m.endpoint, "GET", "/v2/keys/v2snap", query={"recursive": "true", "sorted": "true"})
    return a.status, a.body


def value_of(key: bytes) -> bytes:
    return key[len(PREFIX) :] * 4


def test_follower_and_new_member_catch_up_from_snapshot(new_cluster) -> None:
    c: Cluster = new_cluster(3, extra_flags=["--snapshot-count", str(SNAPSHOT_COUNT)])
    leader, _ = c.wait_leader()
    lagging, other = [m for m in c.members if m is not leader]
    assert request(leader.endpoint, "PUT", "/v2/keys/v2snap/before", form={"value": "b"}).status == 201
    stopped_at = c.status(lagging).raftAppliedIndex
    c.stop(lagging)
    for i in range(20):
        assert request(other.endpoint, "PUT", f"/v2/keys/v2snap/k{i}", form={"value": str(i)}).status == 201

    keys = [PREFIX + b"%05d" % i for i in range(PUTS)]
    revisions = bulk_put(c, [leader, other], ((k, value_of(k)) for k in keys))
    applied = c.status(leader).raftAppliedIndex
    assert applied - stopped_at > SNAPSHOT_COUNT + 5000, (
        f"only {applied - stopped_at} entries since the follower stopped: its log may not be compacted yet"
    )

    c.restart(lagging)
    check_member(c, lagging, revisions)
    assert v2_tree(lagging) == v2_tree(leader)
    assert v2_tree(leader)[1].count('"key"') == 22  # the dir and its 21 keys
    revision = c.wait_converged()
    hashes = hashes_at(c, revision)
    assert len(set(hashes.values())) == 1, f"HashKV at {revision} after the follower caught up: {hashes}"

    m4 = c.add_member("m4")
    check_member(c, m4, revisions)
    revision = c.wait_converged()
    hashes = hashes_at(c, revision)
    assert len(hashes) == 4 and len(set(hashes.values())) == 1, f"HashKV at {revision} after m4 caught up: {hashes}"


@pytest.mark.parametrize("failpoint", ["snapshot-before-apply", "snapshot-after-apply"])
def test_follower_killed_while_installing_a_snapshot_recovers(new_cluster, failpoint: str) -> None:
    """A follower that dies in the middle of installing the leader's snapshot (its WAL already records the
    snapshot; its backend is the old one, or the new one not yet cleaned up) finishes the install when it
    restarts: it serves every key and hashes like the others."""
    c: Cluster = new_cluster(3, extra_flags=["--snapshot-count", str(SNAPSHOT_COUNT)])
    leader, _ = c.wait_leader()
    lagging, other = [m for m in c.members if m is not leader]
    c.stop(lagging)
    keys = [PREFIX + b"%05d" % i for i in range(PUTS)]
    revisions = bulk_put(c, [leader, other], ((k, value_of(k)) for k in keys))
    lagging.env["PYETCD_FAILPOINTS"] = f"{failpoint}=exit"
    c._spawn(lagging)
    assert lagging.proc is not None
    assert lagging.proc.wait(30) != 0, lagging.log_tail()
    assert f"failpoint {failpoint}: exiting" in lagging.log_tail(200)
    del lagging.env["PYETCD_FAILPOINTS"]
    c.restart(lagging)
    check_member(c, lagging, revisions)
    revision = c.wait_converged()
    hashes = hashes_at(c, revision)
    assert len(set(hashes.values())) == 1, f"HashKV at {revision} after the interrupted install: {hashes}"
