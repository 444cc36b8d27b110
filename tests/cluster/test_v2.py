"""The v2 keys store replicated by raft across three members: a write through any member is seen by every
member, a wait on one member wakes for a write made through another, and the leader's expiry of a TTL key
reaches all members (each holds the same tree and the same store index)."""

from __future__ import annotations

import concurrent.futures
import time

from harness.cluster import Cluster, Member
from harness.v2client import Answer, request


def tree(m: Member) -> Answer:
    return request(m.endpoint, "GET", "/v2/keys/v2c", query={"recursive": "true", "sorted": "true"})


def wait_same_tree(c: Cluster, timeout: float = 10.0) -> Answer:
    """Every member's local tree (and store index) once they agree."""
    deadline = time.monotonic() + timeout
    while True:
        answers = [tree(m) for m in c.members]
        if all(
            (a.status, a.body, a.index()) == (answers[0].status, answers[0].body, answers[0].index()) for a in answers
        ):
            return answers[0]
        assert time.monotonic() < deadline, [(a.status, a.index(), a.body) for a in answers]
        time.sleep(0.1)


def test_v2_writes_replicate_and_waits_wake_on_other_members(cluster3: Cluster) -> None:
    a, b, c = cluster3.members
    assert request(a.endpoint, "PUT", "/v2/keys/v2c/k", form={"value": "1"}).status == 201
    assert request(b.endpoint, "POST", "/v2/keys/v2c/q", form={"value": "job"}).status == 201
    got = request(c.endpoint, "GET", "/v2/keys/v2c/k", query={"quorum": "true"})
    assert got.status == 200 and got.json["node"]["value"] == "1"
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        waiting = ex.submit(request, c.endpoint, "GET", "/v2/keys/v2c/k", query={"wait": "true"}, timeout=20)
        time.sleep(0.3)
        assert not waiting.done()
        request(a.endpoint, "PUT", "/v2/keys/v2c/k", form={"value": "2"})
        event = waiting.result()
    assert event.status == 200 and event.json["node"]["value"] == "2" and event.json["prevNode"]["value"] == "1"
    same = wait_same_tree(cluster3)
    assert [n["key"] for n in same.json["node"]["nodes"]] == ["/v2c/k", "/v2c/q"]


def test_v2_ttl_expiry_reaches_every_member(cluster3: Cluster) -> None:
    a, b, _ = cluster3.members
    request(b.endpoint, "PUT", "/v2/keys/v2c/ttl", form={"value": "x", "ttl": "1"})
    deadline = time.monotonic() + 10
    while any(request(m.endpoint, "GET", "/v2/keys/v2c/ttl").status != 404 for m in cluster3.members):
        assert time.monotonic() < deadline, "the 1 s key is still there on some member"
        time.sleep(0.2)
    wait_same_tree(cluster3)
    expired = request(a.endpoint, "GET", "/v2/keys/v2c/ttl", query={"wait": "true", "waitIndex": "1"})
    assert expired.status == 200
