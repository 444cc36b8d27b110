"""Differential tests of the v2 keys API (``/v2/keys``) against real etcd 3.4 with ``--enable-v2``.

Each request goes to both servers; status, ``X-Etcd-Index`` and the JSON body must match after
``harness.v2client.normalize`` (indices relative to ``begin()``, expirations dropped, listings sorted). Where
etcd's answer is a fact clients rely on (an error code, a status, an action), the test asserts it outright
too. Tests share one server pair and keep to their own dir.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import time

import pytest

from harness.servers import server_pair
from harness.v2client import Answer, Rel, V2Diff, normalize, request


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with server_pair(tmp_path_factory.mktemp("v2"), ["--enable-v2"]) as (ref, ours):
        yield V2Diff(ref.endpoint, ours.endpoint)


@pytest.fixture
def v2(pair: V2Diff) -> V2Diff:
    pair.begin()
    return pair


def body(o: dict) -> dict:
    return o["body"]


def compare_failed(v2: V2Diff, method: str, path: str, shape: str, **kw) -> None:
    """A 101 Compare failed whose cause names absolute indices: ``{N}`` in ``shape`` is index ``Rel(N)``."""
    a, b = v2.both(method, path, **kw)
    for ans, base in ((a, v2.ref_base), (b, v2.ours_base)):
        assert (ans.status, ans.json["errorCode"]) == (412, 101)
        want = shape
        for n in range(1, 10):
            want = want.replace(f"{{{n}}}", str(base + n))
        assert ans.json["cause"] == want


def test_set_get_and_overwrite(v2: V2Diff) -> None:
    created = v2.run("PUT", "/v2/keys/t_set/foo", form={"value": "bar"})
    assert created["status"] == 201 and body(created)["action"] == "set"
    v2.run("GET", "/v2/keys/t_set/foo")
    again = v2.run("PUT", "/v2/keys/t_set/foo", form={"value": "baz"})
    assert again["status"] == 200 and body(again)["prevNode"]["value"] == "bar"
    v2.run("PUT", "/v2/keys/t_set/empty", form={"value": ""})
    v2.run("PUT", "/v2/keys/t_set/q", query={"value": "from query"})
    v2.run("PUT", "/v2/keys/t_set/both", form={"value": "body wins"}, query={"value": "query"})
    missing = v2.run("GET", "/v2/keys/t_set/missing")
    assert missing["status"] == 404 and body(missing)["errorCode"] == 100
    v2.run("GET", "/v2/keys/t_set")
    v2.run("GET", "/v2/keys/t_set/", query={"recursive": "true", "sorted": "true"})
    v2.run("GET", "/v2/keys/t_set/foo/deeper")
    v2.run("HEAD", "/v2/keys/t_set/foo")
    v2.run("HEAD", "/v2/keys/t_set/missing")


def test_prev_exist(v2: V2Diff) -> None:
    assert v2.run("PUT", "/v2/keys/t_pe/k", form={"value": "1", "prevExist": "false"})["status"] == 201
    exists = v2.run("PUT", "/v2/keys/t_pe/k", form={"value": "2", "prevExist": "false"})
    assert exists["status"] == 412 and body(exists)["errorCode"] == 105
    update = v2.run("PUT", "/v2/keys/t_pe/k", form={"value": "3", "prevExist": "true"})
    assert body(update)["action"] == "update"
    v2.run("PUT", "/v2/keys/t_pe/none", form={"value": "3", "prevExist": "true"})
    v2.run("PUT", "/v2/keys/t_pe/k", form={"value": "3", "prevExist": "maybe"})
    v2.run("PUT", "/v2/keys/t_pe/k", form={"value": "4", "prevExist": "true", "prevValue": "3"})


def test_compare_and_swap_and_delete(v2: V2Diff) -> None:
    v2.run("PUT", "/v2/keys/t_cas/k", form={"value": "one"})
    assert body(v2.run("PUT", "/v2/keys/t_cas/k", form={"value": "two", "prevValue": "one"}))["action"] == (
        "compareAndSwap"
    )
    fail = v2.run("PUT", "/v2/keys/t_cas/k", form={"value": "x", "prevValue": "nope"})
    assert fail["status"] == 412 and body(fail)["cause"] == "[nope != two]"
    # The cause of an index mismatch names absolute indices: "[requested != current]".
    mismatches = [
        ({"prevIndex": Rel(1)}, "[{1} != {2}]"),
        ({"prevIndex": Rel(1), "prevValue": "nope"}, "[nope != two] [{1} != {2}]"),
        ({"prevIndex": Rel(2), "prevValue": "nope"}, "[nope != two]"),
    ]
    for form, shape in mismatches:
        compare_failed(v2, "PUT", "/v2/keys/t_cas/k", shape, form={"value": "x", **form})
    assert v2.run("PUT", "/v2/keys/t_cas/k", form={"value": "three", "prevIndex": Rel(2)})["status"] == 200
    v2.run("PUT", "/v2/keys/t_cas/k", form={"value": "x", "prevIndex": "abc"})
    v2.run("PUT", "/v2/keys/t_cas/k", form={"value": "x", "prevValue": ""})
    v2.run("PUT", "/v2/keys/t_cas/missing", form={"value": "x", "prevValue": "a"})
    v2.run("DELETE", "/v2/keys/t_cas/k", query={"prevValue": "nope"})
    compare_failed(v2, "DELETE", "/v2/keys/t_cas/k", "[{1} != {3}]", query={"prevIndex": Rel(1)})
    gone = v2.run("DELETE", "/v2/keys/t_cas/k", query={"prevValue": "three", "prevIndex": Rel(3)})
    assert body(gone)["action"] == "compareAndDelete"
    v2.run("GET", "/v2/keys/t_cas/k")


def test_dirs(v2: V2Diff) -> None:
    assert v2.run("PUT", "/v2/keys/t_dir/d", form={"dir": "true"})["status"] == 201
    v2.run("PUT", "/v2/keys/t_dir/d", form={"value": "x"})
    v2.run("PUT", "/v2/keys/t_dir/d", form={"dir": "true"})
    v2.run("PUT", "/v2/keys/t_dir/d", form={"dir": "true", "prevExist": "false"})
    v2.run("PUT", "/v2/keys/t_dir/d/a/b", form={"value": "1"})
    v2.run("PUT", "/v2/keys/t_dir/d/a/b/c", form={"value": "1"})
    v2.run("GET", "/v2/keys/t_dir/d", query={"recursive": "true"})
    v2.run("DELETE", "/v2/keys/t_dir/d")
    not_empty = v2.run("DELETE", "/v2/keys/t_dir/d", query={"dir": "true"})
    assert not_empty["status"] == 403 and body(not_empty)["errorCode"] == 108
    v2.run("PUT", "/v2/keys/t_dir/d", form={"dir": "true", "prevExist": "true", "ttl": "100"})
    v2.run("DELETE", "/v2/keys/t_dir/d", query={"recursive": "true"})
    v2.run("PUT", "/v2/keys/t_dir/e", form={"dir": "true"})
    v2.run("DELETE", "/v2/keys/t_dir/e", query={"dir": "true"})
    root = v2.run("DELETE", "/v2/keys/", query={"recursive": "true"})
    assert body(root)["errorCode"] == 107


def test_in_order_keys_and_hidden(v2: V2Diff) -> None:
    first = v2.run("POST", "/v2/keys/t_q/queue", form={"value": "Job1"})
    assert first["status"] == 201 and body(first)["action"] == "create"
    v2.run("POST", "/v2/keys/t_q/queue", form={"value": "Job2"})
    v2.run("GET", "/v2/keys/t_q/queue", query={"recursive": "true", "sorted": "true"})
    v2.run("PUT", "/v2/keys/t_q/_hidden", form={"value": "h"})
    v2.run("PUT", "/v2/keys/t_q/shown", form={"value": "s"})
    v2.run("GET", "/v2/keys/t_q", query={"recursive": "true"})
    v2.run("GET", "/v2/keys/t_q/_hidden")
    v2.run("PUT", "/v2/keys/t_q/a%2Fb", form={"value": "escaped"})
    v2.run("GET", "/v2/keys/t_q/a/b")
    v2.run("GET", "/v2/keys/t_q/a//b/", query={"quorum": "true"})


def test_ttl_and_refresh(v2: V2Diff) -> None:
    t = v2.run("PUT", "/v2/keys/t_ttl/k", form={"value": "v", "ttl": "100"})
    assert body(t)["node"]["ttl"] == 100
    v2.run("PUT", "/v2/keys/t_ttl/k", form={"value": "v", "ttl": "abc"})
    v2.run("PUT", "/v2/keys/t_ttl/k", form={"ttl": "200", "refresh": "true", "prevExist": "true"})
    v2.run("PUT", "/v2/keys/t_ttl/k", form={"ttl": "300", "refresh": "true"})
    v2.run("PUT", "/v2/keys/t_ttl/k", form={"value": "x", "ttl": "300", "refresh": "true"})
    v2.run("PUT", "/v2/keys/t_ttl/k", form={"refresh": "true"})
    v2.run("PUT", "/v2/keys/t_ttl/k", form={"value": "permanent", "ttl": "", "prevExist": "true"})
    v2.run("GET", "/v2/keys/t_ttl/k")


def test_ttl_expires(v2: V2Diff) -> None:
    v2.run("PUT", "/v2/keys/t_exp/k", form={"value": "v", "ttl": "1"})
    v2.run("PUT", "/v2/keys/t_exp/d", form={"dir": "true", "ttl": "1"})
    v2.run("PUT", "/v2/keys/t_exp/d/child", form={"value": "c"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        a, b = v2.both("GET", "/v2/keys/t_exp/k")
        c, d = v2.both("GET", "/v2/keys/t_exp/d")
        if {a.status, b.status, c.status, d.status} == {404}:
            break
        time.sleep(0.2)
    v2.run("GET", "/v2/keys/t_exp", query={"recursive": "true"})
    # The expirations are in the history: a wait from the start sees the first change of each key, and the
    # expire events come after the sets.
    v2.run("GET", "/v2/keys/t_exp/k", query={"wait": "true", "waitIndex": Rel(1)})
    v2.run("GET", "/v2/keys/t_exp/k", query={"wait": "true", "waitIndex": Rel(2)})
    v2.run("GET", "/v2/keys/t_exp/d/child", query={"wait": "true", "waitIndex": Rel(4)})


def test_wait_for_a_change(v2: V2Diff) -> None:
    v2.run("PUT", "/v2/keys/t_wait/k", form={"value": "0"})
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futs = [
            ex.submit(request, ep, "GET", "/v2/keys/t_wait/k", query={"wait": "true"}, timeout=30)
            for ep in (v2.ref, v2.ours)
        ] + [
            ex.submit(request, ep, "GET", "/v2/keys/t_wait", query={"wait": "true", "recursive": "true"}, timeout=30)
            for ep in (v2.ref, v2.ours)
        ]
        time.sleep(0.5)
        assert not any(f.done() for f in futs)
        v2.run("PUT", "/v2/keys/t_wait/k", form={"value": "1"})
        answers = [f.result() for f in futs]
    for ref, ours in (answers[:2], answers[2:]):
        na, nb = normalize(ref, v2.ref_base), normalize(ours, v2.ours_base)
        assert nb == na
        assert na["X-Etcd-Index"] == 1 and na["body"]["action"] == "set"


def test_wait_errors_and_history(v2: V2Diff) -> None:
    v2.run("PUT", "/v2/keys/t_hist/k", form={"value": "0"}, query={"wait": "true"})
    v2.run("GET", "/v2/keys/t_hist/k", query={"wait": "yes"})
    v2.run("GET", "/v2/keys/t_hist/k", query={"waitIndex": "x", "wait": "true"})
    for i in range(1001):
        a, b = v2.both("PUT", "/v2/keys/t_hist/k", form={"value": str(i)})
        assert (a.status, b.status) in ((200, 200), (201, 201))
    a, b = v2.both("GET", "/v2/keys/t_hist/k", query={"wait": "true", "waitIndex": Rel(1)})
    for ans in (a, b):
        assert ans.status == 400
        assert ans.json["errorCode"] == 401
        assert ans.json["message"] == "The event in requested index is outdated and cleared"
        assert ans.json["cause"].startswith("the requested history has been cleared [")
    v2.run("GET", "/v2/keys/t_hist/k", query={"wait": "true", "waitIndex": Rel(1001)})


def test_bad_requests(v2: V2Diff) -> None:
    a, b = v2.both("PATCH", "/v2/keys/t_bad/k")
    assert (a.status, a.body, a.headers["allow"]) == (b.status, b.body, b.headers["allow"]) == (
        405, "Method Not Allowed\n", "HEAD,GET,PUT,POST,DELETE")  # fmt: skip
    v2.run("GET", "/v2/keys/t_bad/k", query={"sorted": "1x"})
    v2.run("PUT", "/v2/keys/t_bad/k", form={"value": "v", "noValueOnSuccess": "true"})
    v2.run("PUT", "/v2/keys/t_bad/k", form={"value": "v", "dir": "nope"})
    v2.run("PUT", "/v2/keys/", form={"value": "v"})


def test_store_stats_shape(v2: V2Diff) -> None:
    a, b = v2.both("GET", "/v2/stats/store")
    assert a.status == b.status == 200
    assert list(a.json) == list(b.json)


def test_members_machines_and_stats_shapes(v2: V2Diff) -> None:
    a, b = v2.both("GET", "/v2/members")
    assert a.status == b.status == 200
    assert [list(m) for m in a.json["members"]] == [list(m) for m in b.json["members"]]
    for path in ("/v2/members/leader", "/v2/stats/self", "/v2/stats/leader"):
        a, b = v2.both("GET", path)
        assert (a.status, list(a.json)) == (b.status, list(b.json)), path
    a, b = v2.both("GET", "/v2/stats/self")
    assert a.json["state"] == b.json["state"] == "StateLeader"
    assert list(a.json["leaderInfo"]) == list(b.json["leaderInfo"])
    a, b = v2.both("GET", "/v2/machines")
    assert a.status == b.status == 200 and a.body.startswith("http://127.0.0.1:") and b.body.startswith("http://")
    # Refusals: etcd's statuses and messages.
    for method, path, kw in (
        ("DELETE", "/v2/members/abc", {}),
        ("DELETE", "/v2/members/zz", {}),
        ("POST", "/v2/members", {"form": {"peerURLs": "x"}}),
        ("PATCH", "/v2/members", {}),
        ("GET", "/v2/members/nope", {}),
    ):
        a, b = v2.both(method, path, **kw)
        assert (a.status, a.body) == (b.status, b.body), (method, path, a.body, b.body)


def test_member_changes_are_refused_like_etcd(v2: V2Diff) -> None:
    for method, path, body in (
        ("POST", "/v2/members", '{"peerURLs":["foo"]}'),
        ("PUT", "/v2/members", '{"peerURLs":["http://127.0.0.1:1"]}'),
        ("PUT", "/v2/members/zz", '{"peerURLs":["http://127.0.0.1:1"]}'),
    ):
        a, b = (request(ep, method, path, json_body=body) for ep in (v2.ref, v2.ours))
        assert (a.status, a.body) == (b.status, b.body), (method, path, body)
    # Bad JSON: 400 with the decoder's message (Go's wording is not reproduced).
    a, b = (request(ep, "POST", "/v2/members", json_body="{nope") for ep in (v2.ref, v2.ours))
    assert a.status == b.status == 400 and "message" in a.json and "message" in b.json


def test_stream_watch(v2: V2Diff) -> None:
    conns, responses = [], []
    for ep in (v2.ref, v2.ours):
        host, port = ep.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/v2/keys/t_stream?wait=true&stream=true&recursive=true")
        conns.append(conn)
        responses.append(conn.getresponse())
    v2.run("PUT", "/v2/keys/t_stream/a", form={"value": "1"})
    v2.run("PUT", "/v2/keys/t_stream/b", form={"value": "2"})
    events = [[r.readline().decode() for _ in range(2)] for r in responses]
    for c in conns:
        c.close()
    for ea, eb in zip(*events, strict=True):
        na = normalize(Answer(200, {}, ea), v2.ref_base)
        nb = normalize(Answer(200, {}, eb), v2.ours_base)
        assert nb == na and na["body"]["action"] == "set"
