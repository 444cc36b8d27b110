"""Leases across leader changes: only the member that leads now renews them.

A leader that was paused (SIGSTOP) or cut off answers the requests queued meanwhile as soon as it runs again,
before its raft loop hears of the new leader. Renewing a lease there, on its own stale clock, acknowledges a
keep-alive the real leader never saw, which then revokes the lease on time (etcd #15247, #12528; found by
tests/robustness in the "pause leader" scenario: a kept-alive lease was revoked 1.4 s before its last
acknowledged keep-alive said).
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from harness.cluster import Cluster
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

TTL = 10


def keep_alive_once(c: Cluster, m, lease: int) -> rpc_pb2.LeaseKeepAliveResponse:  # noqa: ANN001
    stream = c.stubs(m).lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease)]), timeout=15)
    try:
        return next(stream)
    finally:
        stream.cancel()


def test_a_deposed_leader_does_not_renew_a_lease_on_its_own_clock(new_cluster) -> None:  # noqa: ANN001
    c: Cluster = new_cluster(3)
    old, _ = c.wait_leader()
    assert old.proc is not None
    lease = c.stubs(old).lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=TTL), timeout=5).ID
    with ThreadPoolExecutor(1) as pool:
        os.kill(old.proc.pid, signal.SIGSTOP)
        try:
            new, _ = c.wait_leader(exclude=[old], timeout=15)
            time.sleep(3)  # the new leader's lessor counts down from its promotion
            answer = pool.submit(keep_alive_once, c, old, lease)  # queued on the paused old leader
            time.sleep(0.5)
        finally:
            os.kill(old.proc.pid, signal.SIGCONT)
        got = answer.result(timeout=20)
    remaining = c.stubs(new).lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease), timeout=5).TTL
    assert got.TTL == TTL, got
    # The keep-alive was acknowledged, so the leader's clock must have been restarted by it.
    assert remaining >= TTL - 1, f"acknowledged with TTL {got.TTL}, but the leader has {remaining} s left"
