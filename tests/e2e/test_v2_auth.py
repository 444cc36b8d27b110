"""v2 auth on ours alone, where there is nothing to compare with etcd: the users, roles and the enabled flag
survive a restart (and a kill -9: they are applied in the same backend batch as the raft entry), and the
store index they advanced stays where it was.
"""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import pytest

from harness.servers import start_server
from harness.v2client import request

ROOT = ("root", "rootpw")


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_v2_auth_survives_a_restart(tmp_path: Path, how: str) -> None:
    s = start_server("ours", tmp_path / "ours", ["--enable-v2"])
    try:
        ep = s.endpoint
        for path, doc in (
            ("/v2/auth/users/root", {"user": "root", "password": "rootpw"}),
            ("/v2/auth/users/alice", {"user": "alice", "password": "apw", "roles": ["r1"]}),
            ("/v2/auth/roles/r1", {"role": "r1", "permissions": {"kv": {"read": ["/a/*"], "write": ["/a/*"]}}}),
        ):
            assert request(ep, "PUT", path, json_body=json.dumps(doc)).status in (200, 201)
        assert request(ep, "PUT", "/v2/auth/enable").status == 200
        revoke = {"role": "guest", "revoke": {"kv": {"read": ["/*"], "write": ["/*"]}}}
        assert request(ep, "PUT", "/v2/auth/roles/guest", json_body=json.dumps(revoke), auth=ROOT).status == 200
        index = request(ep, "GET", "/v2/keys/", auth=ROOT).index()
        assert index == 10  # the auth dirs and /2/enabled (4), 2 users, r1, guest, enabled=true, guest updated
        s.kill() if how == "kill" else s.stop()
        s.restart()
        assert request(ep, "GET", "/v2/auth/enable").json == {"enabled": True}
        assert request(ep, "GET", "/v2/keys/").status == 401
        assert request(ep, "PUT", "/v2/keys/a/1", form={"value": "x"}, auth=("alice", "apw")).status == 201
        assert request(ep, "PUT", "/v2/keys/b", form={"value": "x"}, auth=("alice", "apw")).status == 401
        assert request(ep, "GET", "/v2/keys/b", auth=("alice", "wrong")).status == 401
        users = request(ep, "GET", "/v2/auth/users", auth=ROOT).json["users"]
        assert [u["user"] for u in users] == ["alice", "root"]
        assert request(ep, "GET", "/v2/keys/a/1", auth=ROOT).index() == index + 1
    finally:
        s.stop()


def test_concurrent_grants_are_all_kept(tmp_path: Path) -> None:
    """Ten root clients grant ten roles to one user at once: each update is merged from the value it replaces,
    so none is lost (etcd 3.4 writes each merge over whatever is there, and may drop some)."""
    s = start_server("ours", tmp_path / "ours", ["--enable-v2"])
    try:
        ep = s.endpoint
        assert request(ep, "PUT", "/v2/auth/users/alice", json_body='{"user":"alice","password":"apw"}').status == 201
        for i in range(10):
            assert request(ep, "PUT", f"/v2/auth/roles/r{i}", json_body=json.dumps({"role": f"r{i}"})).status == 201

        def grant(i: int) -> int:
            doc = json.dumps({"user": "alice", "grant": [f"r{i}"]})
            return request(ep, "PUT", "/v2/auth/users/alice", json_body=doc).status

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            assert list(pool.map(grant, range(10))) == [200] * 10
        roles = request(ep, "GET", "/v2/auth/users/alice").json["roles"]
        assert sorted(r["role"] for r in roles) == sorted(f"r{i}" for i in range(10))
    finally:
        s.stop()
