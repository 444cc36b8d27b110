"""The peer port and leader transfer.

- MoveLeader on the leader hands leadership to the named follower, and every member then
  reports that follower as leader; MoveLeader to an id that is no member answers
  ``etcdserver: bad leader transferee``; MoveLeader asked of a follower answers
  ``etcdserver: not leader``.
- The peer port (our own wire format, so not run when "ours" is real etcd): a raft stream
  opened with another cluster's id is refused (answer byte 1), one addressed to another
  member is refused (2), one with the right ids is accepted (0); ``GET /members`` lists
  the members with the cluster id in ``X-Etcd-Cluster-ID``, as a joining member reads it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
import urllib.request

import grpc
import pytest

from harness.cluster import Cluster, hashes_at
from harness.servers import ours_is_etcd
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

CALL_TIMEOUT = 10.0


def move_leader(c: Cluster, via, target: int) -> None:
    c.stubs(via).maintenance.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=target), timeout=CALL_TIMEOUT)


def test_move_leader(cluster3: Cluster) -> None:
    leader, _ = cluster3.wait_leader()
    follower = next(m for m in cluster3.live() if m is not leader)
    target = cluster3.status(follower).header.member_id

    with pytest.raises(grpc.RpcError) as err:
        move_leader(cluster3, follower, target)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "etcdserver: not leader"

    with pytest.raises(grpc.RpcError) as err:
        move_leader(cluster3, leader, 0x1234)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "etcdserver: bad leader transferee"

    move_leader(cluster3, leader, target)
    deadline = time.monotonic() + CALL_TIMEOUT
    while True:
        leaders = {cluster3.status(m).leader for m in cluster3.live()}
        if leaders == {target}:
            break
        assert time.monotonic() < deadline, f"members report leaders {leaders}, want {target:x}"
        time.sleep(0.05)


def handshake(port: int, cluster_id: int, from_id: int, to_id: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"RAFT" + struct.pack(">QQQ", cluster_id, from_id, to_id))
        answer = s.recv(1)
    assert len(answer) == 1
    return answer[0]


@pytest.mark.skipif(ours_is_etcd(), reason="the raft stream is our own wire format")
def test_peer_port_checks_cluster_and_member(cluster3: Cluster) -> None:
    m = cluster3.live()[0]
    other = cluster3.live()[1]
    header = cluster3.status(m).header
    other_id = cluster3.status(other).header.member_id
    port = int(m.peer_url.rsplit(":", 1)[1])

    assert handshake(port, header.cluster_id ^ 1, other_id, header.member_id) == 1
    assert handshake(port, header.cluster_id, other_id, header.member_id ^ 1) == 2
    assert handshake(port, header.cluster_id, other_id, header.member_id) == 0

    with urllib.request.urlopen(m.peer_url + "/members", timeout=5) as resp:
        assert int(resp.headers["X-Etcd-Cluster-ID"], 16) == header.cluster_id
        members = json.loads(resp.read())
    assert sorted(x["name"] for x in members) == sorted(x.name for x in cluster3.live())
    assert sorted(x["peerURLs"][0] for x in members) == sorted(x.peer_url for x in cluster3.live())


def test_a_paused_follower_does_not_pile_up_the_leaders_memory(new_cluster) -> None:
    """A follower that stops reading (SIGSTOP) makes the leader's queue for it full: past 64 MiB the leader
    drops messages with etcd's warning and raft probes the follower later, instead of queueing every append
    (up to 512 of 1 MiB before). Once resumed, the follower catches up and hashes like the others."""
    c: Cluster = new_cluster(3)
    leader, _ = c.wait_leader()
    paused = next(m for m in c.members if m is not leader)
    assert paused.proc is not None
    value = b"v" * (1 << 20)
    os.kill(paused.proc.pid, signal.SIGSTOP)
    try:
        kv = c.stubs(leader).kv
        for i in range(100):
            kv.Put(rpc_pb2.PutRequest(key=b"big/%03d" % i, value=value), timeout=CALL_TIMEOUT)
        deadline = time.monotonic() + 10
        while "sending buffer is full" not in leader.log_tail(400) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "dropped internal Raft message since sending buffer is full" in leader.log_tail(400)
    finally:
        os.kill(paused.proc.pid, signal.SIGCONT)
    c.wait_caught_up(paused, timeout=60)
    revision = c.wait_converged(timeout=60)
    hashes = hashes_at(c, revision)
    assert len(set(hashes.values())) == 1, f"HashKV at {revision} after the pause: {hashes}"
