"""Differential tests of the grpc-gateway JSON endpoints (``/v3/...``, ``/v3beta/...``) against etcd 3.4.

Each request is POSTed to both servers; status and body must match once the header's ids are dropped,
revisions are made relative to ``begin()`` and lease ids are replaced by their order of appearance. bytes
are base64 and int64 are strings on both sides, which is asserted outright too.
"""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any

import pytest

from harness.servers import server_pair
from harness.v2client import request


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def post(endpoint: str, path: str, body: Any) -> tuple[int, Any]:
    """A gateway call: (status, the decoded answer, or its text when it is not JSON)."""
    a = request(endpoint, "POST", path, json_body=body if isinstance(body, str) else json.dumps(body))
    try:
        return a.status, a.json
    except ValueError:
        return a.status, a.body


REV_FIELDS = {"revision", "create_revision", "mod_revision", "compact_revision"}


class Pair:
    def __init__(self, ref: str, ours: str) -> None:
        self.ref, self.ours = ref, ours
        self.bases = (0, 0)

    def begin(self) -> None:
        revs = []
        for ep in (self.ref, self.ours):
            _, r = post(ep, "/v3/kv/range", {"key": b64("\0")})
            revs.append(int(r["header"]["revision"]))
        self.bases = (revs[0], revs[1])

    def norm(self, o: Any, base: int, leases: dict[str, int]) -> Any:
        if isinstance(o, dict):
            out = {}
            for k, v in o.items():
                if k in ("cluster_id", "member_id", "raft_term"):
                    continue
                if k in REV_FIELDS and isinstance(v, str):
                    out[k] = f"@{int(v) - base:+d}" if int(v) else "0"
                elif k in ("ID", "lease") and isinstance(v, str):
                    out[k] = f"lease#{leases.setdefault(v, len(leases))}"
                else:
                    out[k] = self.norm(v, base, leases)
            return out
        if isinstance(o, list):
            return [self.norm(v, base, leases) for v in o]
        return o

    def both(self, path: str, body: Any) -> tuple[tuple[int, Any], tuple[int, Any]]:
        return post(self.ref, path, body), post(self.ours, path, body)

    def run(self, path: str, body: Any, leases: tuple[dict, dict] | None = None) -> Any:
        (sa, a), (sb, b) = self.both(path, body)
        la, lb = leases or ({}, {})
        na, nb = (sa, self.norm(a, self.bases[0], la)), (sb, self.norm(b, self.bases[1], lb))
        assert nb == na, f"{path} {body}:\n etcd: {na}\n ours: {nb}"
        return a


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with server_pair(tmp_path_factory.mktemp("gw")) as (ref, ours):
        yield Pair(ref.endpoint, ours.endpoint)


@pytest.fixture
def gw(pair: Pair) -> Pair:
    pair.begin()
    return pair


def test_kv(gw: Pair) -> None:
    put = gw.run("/v3/kv/put", {"key": b64("gw/a"), "value": b64("1")})
    assert isinstance(put["header"]["revision"], str)
    gw.run("/v3/kv/put", {"key": b64("gw/b"), "value": b64("2"), "prev_kv": True})
    gw.run("/v3/kv/put", {"key": b64("gw/b"), "value": b64("3"), "prev_kv": True})
    got = gw.run("/v3/kv/range", {"key": b64("gw/a")})
    assert got["kvs"][0]["value"] == b64("1") and got["kvs"][0]["version"] == "1"
    gw.run("/v3/kv/range", {"key": b64("gw/"), "range_end": b64("gw0"), "limit": 1, "sort_order": "DESCEND"})
    gw.run("/v3/kv/range", {"key": b64("gw/"), "range_end": b64("gw0"), "count_only": True})
    gw.run("/v3/kv/range", {"key": b64("gw/nope")})
    gw.run("/v3beta/kv/range", {"key": b64("gw/"), "range_end": b64("gw0"), "keys_only": True})
    gw.run("/v3/kv/deleterange", {"key": b64("gw/b"), "prev_kv": True})
    txn = {
        "compare": [{"key": b64("gw/a"), "target": "VALUE", "result": "EQUAL", "value": b64("1")}],
        "success": [{"request_put": {"key": b64("gw/t"), "value": b64("yes")}}],
        "failure": [{"request_range": {"key": b64("gw/a")}}],
    }
    assert gw.run("/v3/kv/txn", txn)["succeeded"] is True
    txn["compare"][0]["value"] = b64("2")
    gw.run("/v3/kv/txn", txn)


def test_errors(gw: Pair) -> None:
    (sa, a), (sb, b) = gw.both("/v3/kv/put", {"value": b64("x")})
    assert (sa, a) == (sb, b) == (400, {"error": "etcdserver: key is not provided",
                                        "message": "etcdserver: key is not provided", "code": 3})  # fmt: skip
    gw.run("/v3/kv/range", {"key": b64("a"), "revision": "1000000"})
    gw.run("/v3/lease/revoke", {"ID": "12345"})
    (sa, a), (sb, b) = gw.both("/v3/kv/range", "{not json")
    assert sa == sb == 400 and a["code"] == b["code"] == 3
    (sa, _), (sb, _) = gw.both("/v3alpha/kv/range", {"key": b64("a")})
    assert sa == sb == 404


def test_lease(gw: Pair) -> None:
    leases: tuple[dict, dict] = ({}, {})
    (sa, a), (sb, b) = gw.both("/v3/lease/grant", {"TTL": "60"})
    assert sa == sb == 200 and a["TTL"] == b["TTL"] == "60"
    ids = (a["ID"], b["ID"])
    for ep, i in ((gw.ref, ids[0]), (gw.ours, ids[1])):
        post(ep, "/v3/kv/put", {"key": b64("gw/leased"), "value": b64("v"), "lease": i})
    a = post(gw.ref, "/v3/lease/timetolive", {"ID": ids[0], "keys": True})[1]
    b = post(gw.ours, "/v3/lease/timetolive", {"ID": ids[1], "keys": True})[1]
    assert a["keys"] == b["keys"] == [b64("gw/leased")] and a["grantedTTL"] == b["grantedTTL"] == "60"
    la = post(gw.ref, "/v3/lease/leases", {})[1]
    lb = post(gw.ours, "/v3/kv/lease/leases", {})[1]
    assert {"ID": ids[0]} in la["leases"] and {"ID": ids[1]} in lb["leases"]
    for ep, i in ((gw.ref, ids[0]), (gw.ours, ids[1])):
        status, body = post(ep, "/v3/lease/revoke", {"ID": i})
        assert status == 200 and list(body) == ["header"]
    gw.run("/v3/kv/range", {"key": b64("gw/leased")}, leases)


def test_compaction_and_maintenance(gw: Pair) -> None:
    gw.run("/v3/kv/put", {"key": b64("gw/c"), "value": b64("1")})
    gw.run("/v3/kv/put", {"key": b64("gw/c"), "value": b64("2")})
    for ep, base in ((gw.ref, gw.bases[0]), (gw.ours, gw.bases[1])):
        assert post(ep, "/v3/kv/compaction", {"revision": str(base + 1)})[0] == 200
    gw.run("/v3/kv/range", {"key": b64("gw/c"), "revision": str(1)})
    gw.run("/v3/maintenance/alarm", {"action": "GET"})
    for path in ("/v3/maintenance/status", "/v3/maintenance/hash", "/v3/cluster/member/list"):
        (sa, a), (sb, b) = gw.both(path, {})
        assert sa == sb == 200 and sorted(a) == sorted(b), path
    gw.run("/v3/auth/authenticate", {"name": "root", "password": "x"})  # "authentication is not enabled"
    gw.run("/v3/auth/user/list", {})
    gw.run("/v3/auth/role/get", {"role": "nobody"})


def test_watch_stream(gw: Pair) -> None:
    results = []
    for ep in (gw.ref, gw.ours):
        host, port = ep.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        body = json.dumps({"create_request": {"key": b64("gw/w")}})
        conn.request("POST", "/v3/watch", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        created = json.loads(r.readline())
        post(ep, "/v3/kv/put", {"key": b64("gw/w"), "value": b64("x")})
        event = json.loads(r.readline())
        conn.close()
        results.append((created, event))
    for (created, event), base in zip(results, gw.bases, strict=True):
        assert created["result"]["created"] is True
        ev = event["result"]["events"][0]
        assert ev["kv"]["key"] == b64("gw/w") and ev["kv"]["value"] == b64("x")
        assert int(ev["kv"]["mod_revision"]) == base + 1
    assert [sorted(c["result"]) for c, _ in results][0] == [sorted(c["result"]) for c, _ in results][1]


def test_keepalive_and_snapshot_streams(gw: Pair) -> None:
    shapes = []
    for ep in (gw.ref, gw.ours):
        lease = post(ep, "/v3/lease/grant", {"TTL": "30"})[1]["ID"]
        host, port = ep.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/v3/lease/keepalive", body=json.dumps({"ID": lease}),
                     headers={"Content-Type": "application/json"})  # fmt: skip
        r = conn.getresponse()
        first = json.loads(r.readline())
        conn.close()
        assert first["result"]["ID"] == lease and first["result"]["TTL"] == "30"
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/v3/maintenance/snapshot", body="{}", headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        chunk = json.loads(r.readline())
        conn.close()
        shapes.append(sorted(chunk["result"]))
        assert base64.b64decode(chunk["result"]["blob"])
    assert shapes[0] == shapes[1]


def test_lock_and_election(gw: Pair) -> None:
    for ep in (gw.ref, gw.ours):
        locked = post(ep, "/v3/lock/lock", {"name": b64("gw-lock")})[1]
        assert base64.b64decode(locked["key"]).startswith(b"gw-lock/")
        assert post(ep, "/v3/lock/unlock", {"key": locked["key"]})[0] == 200
        lease = post(ep, "/v3/lease/grant", {"TTL": "30"})[1]["ID"]
        won = post(ep, "/v3/election/campaign", {"name": b64("gw-el"), "lease": lease, "value": b64("me")})[1]
        leader = post(ep, "/v3/election/leader", {"name": b64("gw-el")})[1]
        assert base64.b64decode(leader["kv"]["value"]) == b"me"
        assert post(ep, "/v3/election/resign", {"leader": won["leader"]})[0] == 200
