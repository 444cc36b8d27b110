"""``EtcdCluster``: member processes on free ports; crashes, restarts, pauses and partitions between them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pyetcd_fast
from pyetcd_fast.client import Client
from pyetcd_fast.embed.cluster import ClusterMember, EtcdCluster
from pyetcd_fast.errors import EtcdError

CATCH_UP = 15.0


def eventually(check: Callable[[], bool], timeout: float = CATCH_UP) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except EtcdError:
            pass
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.05)


def sees(member: ClusterMember, key: str, value: bytes) -> Callable[[], bool]:
    """Whether ``member`` alone (a serializable read of its own state) has ``key`` = ``value``."""

    def check() -> bool:
        with member.client(timeout=1.0) as c:
            kv = c.get(key, serializable=True)
        return kv is not None and kv.value == value

    return check


def test_the_contract_runs_as_written() -> None:
    t0 = time.monotonic()
    with EtcdCluster(size=3) as cluster:
        ready = time.monotonic() - t0
        before = Client([cluster.wait_leader().endpoint, *cluster.endpoints])  # connected to the leader
        assert before.status().leader == before.status().header.member_id
        old = cluster.wait_leader()
        old.kill()  # a new leader is elected; the client fails over
        cluster.client().put("k", "v")
        new = cluster.wait_leader()
        assert new is not old and new.running and not old.running
        before.put("k2", "v2")  # a client that was connected to the dead leader moves on
        before.close()
        assert len({m.id for m in cluster.members}) == 3 and all(m.id for m in cluster.members)
        with cluster.client() as c:
            kv = c.get("k")
            assert kv is not None and kv.value == b"v"
        base, procs = cluster.base, [m._proc for m in cluster.members]
        assert all(m.log_path.stat().st_size > 0 for m in cluster.members), "output goes to the logs"
    assert not base.exists(), "the base dir is removed"
    assert all(p is not None and p.poll() is not None for p in procs), "no member outlives the cluster"
    assert ready < 5.0, ready


def test_flags_the_cluster_sets_are_refused() -> None:
    with pytest.raises(ValueError, match="data_dir"):
        EtcdCluster(size=1, data_dir="/tmp/x")


@pytest.fixture(scope="module")
def shared() -> Iterator[EtcdCluster]:
    with EtcdCluster(size=3) as cluster:
        yield cluster


@pytest.fixture
def cluster(shared: EtcdCluster) -> Iterator[EtcdCluster]:
    """The module's cluster, whole again after each test: healed, every member running and a leader."""
    yield shared
    shared.heal()
    for m in shared.members:
        if m.paused:
            m.resume()
        if not m.running:
            m.restart()
    shared.wait_leader()


def followers(cluster: EtcdCluster) -> list[ClusterMember]:
    leader = cluster.wait_leader()
    return [m for m in cluster.members if m is not leader]


def test_a_stopped_follower_restarts_with_its_data(cluster: EtcdCluster) -> None:
    follower = followers(cluster)[0]
    with cluster.wait_leader().client() as c:
        c.put("restart/before", "1")
        eventually(sees(follower, "restart/before", b"1"))
        follower.stop()
        assert not follower.running
        c.put("restart/while", "2")  # two of three still commit
    data_dir = cluster.base / follower.name
    member_id = follower.id
    follower.restart()
    assert follower.running and follower.id == member_id and data_dir.is_dir()
    eventually(sees(follower, "restart/before", b"1"))
    eventually(sees(follower, "restart/while", b"2"))


def test_a_paused_leader_is_replaced_and_catches_up_when_resumed(cluster: EtcdCluster) -> None:
    old = cluster.wait_leader()
    old.pause()
    assert old.running and old.paused
    new = cluster.wait_leader()
    assert new is not old
    with new.client() as c:
        c.put("pause/k", "during")
    old.resume()
    eventually(sees(old, "pause/k", b"during"))
    assert cluster.wait_leader() is not None


def test_the_majority_side_of_a_partition_elects_and_the_old_leader_catches_up(cluster: EtcdCluster) -> None:
    old = cluster.wait_leader()
    others = [m for m in cluster.members if m is not old]
    cluster.partition([old], others)
    new = cluster.wait_leader()
    assert new in others
    with new.client() as c:
        c.put("partition/k", "majority")
    assert not sees(old, "partition/k", b"majority")(), "the cut-off member did not get the write"
    cluster.heal()
    eventually(sees(old, "partition/k", b"majority"))


def test_isolate_cuts_one_follower_off(cluster: EtcdCluster) -> None:
    follower = followers(cluster)[0]
    cluster.isolate(follower.name)
    with cluster.wait_leader().client() as c:
        c.put("isolate/k", "1")  # the two others are a majority
    time.sleep(0.2)
    assert not sees(follower, "isolate/k", b"1")()
    cluster.heal()
    eventually(sees(follower, "isolate/k", b"1"))


def test_clients_of_the_whole_cluster_and_of_one_member(cluster: EtcdCluster) -> None:
    assert cluster.endpoints == [m.endpoint for m in cluster.members]
    with cluster.client() as c:
        assert isinstance(c, Client)
        assert c.status().header.member_id in {m.id for m in cluster.members}
    for m in cluster.members:
        with m.client() as c:
            assert c.status().header.member_id == m.id
    assert os.path.isdir(cluster.base)


def test_a_cluster_never_closed_is_gone_at_interpreter_exit(tmp_path: Path) -> None:
    script = tmp_path / "leave.py"
    script.write_text(
        "from pyetcd_fast.embed.cluster import EtcdCluster\n"
        "cluster = EtcdCluster(size=1).start()\n"
        "print(cluster.base, *(m._proc.pid for m in cluster.members))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(pyetcd_fast.__file__).parent.parent)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    base, *pids = out.stdout.split()
    assert not Path(base).exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
