"""Leases kept alive in the background, and paged ranges, against ours and real etcd 3.4.23."""

from __future__ import annotations

import threading
import time

import pytest

import pyetcd_fast as etcd
from pyetcd_fast import errors


def test_a_lease_is_kept_alive_until_the_block_ends(client: etcd.Client) -> None:
    with client.lease(ttl=2) as lease:
        client.put("leased", "v", lease=lease)
        time.sleep(3.5)  # past the TTL: only the keep-alive holds it
        assert client.get("leased") is not None and not lease.lost
        assert client.time_to_live(lease).ttl > 0
    assert client.get("leased") is None  # revoked when the block ended
    assert client.time_to_live(lease).ttl == -1


def test_a_lost_lease_is_reported(client: etcd.Client) -> None:
    called = threading.Event()
    lease = client.lease(ttl=3, on_lost=called.set)
    client.revoke(lease.id)  # behind the keep-alive's back
    assert lease.wait_lost(timeout=5) and lease.lost
    assert called.wait(2)
    lease.stop()


def test_keep_alive_by_id_and_once(client: etcd.Client) -> None:
    lease = client.grant(2)
    assert client.keep_alive_once(lease.id) == 2
    kept = client.keep_alive(lease.id)
    time.sleep(3)
    assert client.time_to_live(lease.id).ttl > 0 and not kept.lost
    kept.revoke()
    assert client.keep_alive_once(lease.id) == 0
    with pytest.raises(errors.LeaseNotFound):
        client.keep_alive(lease.id)


def test_range_iter_pages_at_one_revision(client: etcd.Client) -> None:
    for i in range(25):
        client.put(f"r/{i:02d}", str(i))
    pages = client.range_iter("r/", prefix=True, page_size=10)
    first = [next(pages) for _ in range(10)]
    client.put("r/99", "late")  # after the first page: not seen, the range stays at its revision
    client.delete("r/20")
    keys = [kv.key for kv in first + list(pages)]
    assert keys == [f"r/{i:02d}".encode() for i in range(25)]
    assert [kv.key for kv in client.range_iter("r/2", from_key=True, page_size=2)] == [
        b"r/21",
        b"r/22",
        b"r/23",
        b"r/24",
        b"r/99",
    ]
