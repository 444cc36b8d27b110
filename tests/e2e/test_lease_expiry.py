"""Lease expiry over time, keep-alive streams, and leases across a restart.

The same bodies run against real etcd and against our server (``server`` is
parametrized by kind), with absolute checks instead of a lock-step diff, since
timing differs between servers:

- keys attached to a 2 s lease are there for the first second and gone within
  2 s + ``SLACK``, all in one revision: at revision R (the last put) every key is
  there, at R+1 none is, and R+1 is the store's revision afterwards; the lease is
  then unknown to TimeToLive, KeepAlive, Revoke and Put;
- a LeaseKeepAlive stream (gRPC bidi, one request every 500 ms) keeps the keys for
  5 s, each response carrying the granted TTL; once it stops they expire;
- after the server is stopped (SIGTERM) or killed (SIGKILL) and restarted on the
  same data dir, a granted lease still exists with its keys and TTL, a revoke
  deletes them in one revision, and a short lease granted before the restart
  expires after it (etcd restarts every TTL in full when a leader takes over).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from harness import ops
from harness.keepalive import KeepAlive
from harness.kvclient import CALL_TIMEOUT, Client
from harness.servers import Server, start_server
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

SLACK = 3.0  # seconds past the TTL by which expired keys must be gone
POLL = 0.1
KEEPALIVE_EVERY = 0.5


@pytest.fixture(scope="module", params=["etcd", "ours"])
def server(request, tmp_path_factory) -> Iterator[Server]:
    srv = start_server(request.param, tmp_path_factory.mktemp(request.param))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    c = Client(server.endpoint)
    try:
        yield c
    finally:
        c.close()


def count(c: Client, prefix: bytes, revision: int = 0) -> int:
    req = ops.rng(prefix, ops.prefix_end(prefix), count_only=True, revision=revision)
    return c.kv.Range(req, timeout=CALL_TIMEOUT).count


def time_to_live(c: Client, lease_id: int) -> rpc_pb2.LeaseTimeToLiveResponse:
    return c.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=True), timeout=CALL_TIMEOUT)


def attach(c: Client, lease_id: int, ttl: int, prefix: bytes, n: int) -> int:
    """Grant ``lease_id``, put ``n`` keys on it and one key without a lease; returns the last put's revision."""
    r = c.lease.LeaseGrant(ops.lease_grant(lease_id, ttl), timeout=CALL_TIMEOUT)
    assert (r.ID, r.TTL) == (lease_id, ttl)
    c.kv.Put(ops.put(prefix + b"unleased", b"stays"), timeout=CALL_TIMEOUT)
    rev = 0
    for i in range(n):
        rev = c.kv.Put(ops.put(prefix + b"k%02d" % i, b"v", lease=lease_id), timeout=CALL_TIMEOUT).header.revision
    return rev


def wait_gone(c: Client, prefix: bytes, n_left: int, deadline: float) -> float:
    """Poll until only ``n_left`` keys are left under ``prefix``; returns when (monotonic)."""
    while True:
        now = time.monotonic()
        if count(c, prefix) == n_left:
            return now
        assert now < deadline, f"keys under {prefix!r} still there {SLACK}s past their lease's TTL"
        time.sleep(POLL)


def assert_expired_in_one_revision(c: Client, lease_id: int, prefix: bytes, n: int, last_put: int) -> None:
    """All ``n`` leased keys went in revision ``last_put + 1``, the only write since; the lease is gone."""
    assert count(c, prefix, last_put) == n + 1
    assert count(c, prefix, last_put + 1) == 1
    assert c.revision() == last_put + 1
    assert time_to_live(c, lease_id).TTL == -1
    leases = c.lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=CALL_TIMEOUT).leases
    assert lease_id not in [x.ID for x in leases]
    with pytest.raises(grpc.RpcError) as e:
        c.lease.LeaseRevoke(ops.lease_revoke(lease_id), timeout=CALL_TIMEOUT)
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
    with pytest.raises(grpc.RpcError) as e:
        c.kv.Put(ops.put(prefix + b"late", b"v", lease=lease_id), timeout=CALL_TIMEOUT)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_expiry_deletes_attached_keys_in_one_revision(client: Client) -> None:
    lid, prefix, n = 0x5E_0001, b"expiry/once/", 3
    t0 = time.monotonic()
    last_put = attach(client, lid, 2, prefix, n)
    time.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
    assert count(client, prefix) == n + 1, "keys gone before their lease's TTL"
    ttl = time_to_live(client, lid)
    assert 0 <= ttl.TTL < 2 and ttl.grantedTTL == 2 and len(ttl.keys) == n
    gone = wait_gone(client, prefix, 1, t0 + 2 + SLACK)
    assert gone - t0 >= 1.5, f"expired after {gone - t0:.2f}s of a 2s TTL"
    assert_expired_in_one_revision(client, lid, prefix, n, last_put)
    # KeepAlive on the expired lease: TTL 0, no error.
    ka = KeepAlive(client.lease, lid, KEEPALIVE_EVERY)
    time.sleep(0.3)
    ka.stop()
    assert ka.error is None and ka.responses and ka.responses[0].ID == lid and ka.responses[0].TTL == 0


def test_keepalive_stream_keeps_keys(client: Client) -> None:
    lid, prefix, n = 0x5E_0002, b"expiry/keepalive/", 4
    last_put = attach(client, lid, 2, prefix, n)
    ka = KeepAlive(client.lease, lid, KEEPALIVE_EVERY)
    try:
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            assert count(client, prefix) == n + 1, f"keys expired while kept alive ({len(ka.responses)} renewals)"
            assert ka.error is None, ka.error
            time.sleep(0.5)
    finally:
        ka.stop()
    stopped = time.monotonic()
    assert ka.error is None, ka.error
    assert len(ka.responses) >= 8, f"only {len(ka.responses)} keep-alive responses in 5 s"
    assert all((r.ID, r.TTL) == (lid, 2) for r in ka.responses), ka.responses[:3]
    assert client.revision() == last_put  # renewals take no revision
    gone = wait_gone(client, prefix, 1, stopped + 2 + SLACK)
    assert gone - stopped >= 1.0, f"expired {gone - stopped:.2f}s after the last renewals of a 2s lease"
    assert_expired_in_one_revision(client, lid, prefix, n, last_put)


# -- restart --------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "kill"])
@pytest.mark.parametrize("kind", ["etcd", "ours"])
def test_lease_survives_restart(tmp_path: Path, kind: str, how: str) -> None:
    long_id, short_id = 0x5E_0100, 0x5E_0101
    srv = start_server(kind, tmp_path)
    try:
        c = Client(srv.endpoint)
        try:
            attach(c, long_id, 60, b"restart/long/", 3)
            short_put = attach(c, short_id, 2, b"restart/short/", 2)
            t_grant = time.monotonic()
        finally:
            c.close()
        getattr(srv, how)()
        srv.restart()
        c = Client(srv.endpoint)
        try:
            t_up = time.monotonic()
            ttl = time_to_live(c, long_id)
            assert 0 < ttl.TTL <= 60 and ttl.grantedTTL == 60, ttl
            assert sorted(ttl.keys) == [b"restart/long/k%02d" % i for i in range(3)]
            with pytest.raises(grpc.RpcError) as e:
                c.lease.LeaseGrant(ops.lease_grant(long_id, 10), timeout=CALL_TIMEOUT)
            assert e.value.details() == "etcdserver: lease already exists"
            # The short lease expires after the restart (its TTL counted afresh), its keys in one revision.
            wait_gone(c, b"restart/short/", 1, max(t_grant, t_up) + 2 + SLACK)
            assert count(c, b"restart/short/", short_put) == 3 and count(c, b"restart/short/", short_put + 1) == 1
            assert time_to_live(c, short_id).TTL == -1
            # Revoking the long lease deletes its keys in one revision.
            before = c.revision()
            r = c.lease.LeaseRevoke(ops.lease_revoke(long_id), timeout=CALL_TIMEOUT)
            assert r.header.revision == before + 1
            assert count(c, b"restart/long/") == 1 and count(c, b"restart/long/", before) == 4
            assert time_to_live(c, long_id).TTL == -1
        finally:
            c.close()
    finally:
        srv.stop()
