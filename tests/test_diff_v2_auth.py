"""The v2 auth API (``/v2/auth/enable``, ``/v2/auth/users``, ``/v2/auth/roles``) and v2 keys and members checked
against v2 roles, differentially against real etcd 3.4.23 with ``--enable-v2``: each request goes to both,
status and JSON body must match (``harness.v2client``), and the real etcdctl's v2 ``user``, ``role`` and
``auth`` commands must print the same and exit the same on both.

Each test gets a fresh pair of servers (auth state is cluster-wide).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.certs import cert_auth
from harness.etcdctl import ETCDCTL_BIN
from harness.servers import server_pair
from harness.v2client import V2Diff

ROOT = ("root", "rootpw")
ALICE = ("alice", "apw")


@pytest.fixture
def v2(tmp_path: Path) -> Iterator[V2Diff]:
    with server_pair(tmp_path, ["--enable-v2"]) as (ref, ours):
        yield V2Diff(ref.endpoint, ours.endpoint)


def put(v2: V2Diff, path: str, doc: object, auth: tuple[str, str] | None = None) -> dict:
    return v2.run("PUT", path, json_body=json.dumps(doc), auth=auth)


def test_users_roles_and_enable(v2: V2Diff) -> None:
    assert v2.run("GET", "/v2/auth/enable")["body"] == {"enabled": False}
    assert v2.run("GET", "/v2/auth/users")["body"] == {"users": None}
    v2.run("GET", "/v2/auth/roles")
    refused = v2.run("PUT", "/v2/auth/enable")
    assert refused["status"] == 409 and refused["body"]["message"] == "auth: No root user available, please create one"
    made = put(v2, "/v2/auth/users/root", {"user": "root", "password": "rootpw", "roles": None})
    assert made == {"status": 201, "raft headers": [], "body": {"user": "root", "roles": ["root"]}}
    put(v2, "/v2/auth/users/root", {"user": "root", "password": "rootpw2"})  # an update: 200
    put(v2, "/v2/auth/users/root", {"user": "root", "password": "rootpw"})
    for doc in (
        {"user": "alice", "password": ""},
        {"user": "bob", "password": "x"},
        {"user": "alice", "roles": ["x"], "grant": ["y"]},
        {"user": "nobody", "grant": ["r1"]},
    ):
        put(v2, f"/v2/auth/users/{'nobody' if doc['user'] == 'nobody' else 'alice'}", doc)
    v2.run("PUT", "/v2/auth/users/alice", json_body="{not json")
    v2.run("PUT", "/v2/auth/users/alice", json_body="")
    assert put(v2, "/v2/auth/users/alice", {"user": "alice", "password": "apw", "roles": ["r1"]})["status"] == 200
    put(v2, "/v2/auth/users/alice", {"user": "alice", "grant": ["r1"]})  # 409 duplicate
    put(v2, "/v2/auth/users/alice", {"user": "alice", "revoke": ["zz"]})  # 409 ungranted
    put(v2, "/v2/auth/users/alice", {"user": "alice", "roles": ["r1"], "password": "x"})  # 409 exists
    v2.run("GET", "/v2/auth/users/alice")  # its role r1 does not exist yet: 404
    v2.run("GET", "/v2/auth/users")
    role = {"role": "r1", "permissions": {"kv": {"read": ["/foo/*"], "write": None}}}
    assert put(v2, "/v2/auth/roles/r1", role)["status"] == 201
    put(v2, "/v2/auth/roles/r1", role)  # 409
    put(v2, "/v2/auth/roles/root", {"role": "root"})  # 403
    put(v2, "/v2/auth/roles/r2", {"role": "r3"})
    put(v2, "/v2/auth/roles/r1", {"role": "r1", "grant": {"kv": {"read": ["/foo/*"]}}})  # 409
    assert put(v2, "/v2/auth/roles/r1", {"role": "r1", "grant": {"kv": {"write": ["/foo/bar"]}}})["status"] == 200
    both = {"role": "r1", "permissions": {"kv": {"read": ["/a"]}}, "grant": {"kv": {"read": ["/b"]}}}
    put(v2, "/v2/auth/roles/r1", both)  # 400
    put(v2, "/v2/auth/roles/r1", {"role": "r1", "revoke": {"kv": {"read": ["/nope"]}}})  # not updated: 400
    put(v2, "/v2/auth/roles/nope", {"role": "nope", "revoke": {"kv": {"read": ["/x"]}}})  # 404
    for path in ("/v2/auth/roles/r1", "/v2/auth/roles/root", "/v2/auth/roles/nope", "/v2/auth/roles/"):
        v2.run("GET", path)
    v2.run("GET", "/v2/auth/users/alice")
    v2.run("GET", "/v2/auth/users/")
    v2.run("DELETE", "/v2/auth/roles/nope")
    v2.run("DELETE", "/v2/auth/roles/root")
    v2.run("DELETE", "/v2/auth/users/nobody")
    v2.run("POST", "/v2/auth/users/alice")
    v2.run("POST", "/v2/auth/users")
    v2.run("GET", "/v2/auth/users/a/b")
    for unclean in ("/v2/auth/users//alice", "/v2/auth/users/./alice", "/v2/auth/roles/r1/.."):
        assert v2.run("GET", unclean)["status"] == 301
    v2.run("GET", "/v2/auth/enable/")
    v2.run("GET", "/v2/auth/other")
    put(v2, "/v2/auth/roles/gone", {"role": "gone"})
    assert v2.run("DELETE", "/v2/auth/roles/gone")["status"] == 200

    assert v2.run("PUT", "/v2/auth/enable") == {"status": 200, "raft headers": [], "body": None}
    v2.run("GET", "/v2/auth/enable")
    v2.run("GET", "/v2/auth/roles/guest", auth=ROOT)
    assert v2.run("GET", "/v2/auth/users")["status"] == 401
    v2.run("GET", "/v2/auth/users", auth=("root", "wrong"))
    v2.run("GET", "/v2/auth/users", auth=ALICE)
    v2.run("GET", "/v2/auth/users", auth=ROOT)
    v2.run("GET", "/v2/auth/roles", auth=ROOT)
    v2.run("DELETE", "/v2/auth/users/root", auth=ROOT)  # 403 while enabled
    v2.run("PUT", "/v2/auth/enable", auth=ROOT)  # 409 already enabled
    v2.run("DELETE", "/v2/auth/enable")  # 401
    v2.run("DELETE", "/v2/auth/enable", auth=ALICE)  # 401: not root
    assert v2.run("DELETE", "/v2/auth/enable", auth=ROOT)["status"] == 200
    v2.run("DELETE", "/v2/auth/enable")  # 409 already disabled
    assert v2.run("DELETE", "/v2/auth/users/alice")["status"] == 200
    v2.run("GET", "/v2/auth/users")


def test_keys_and_members_checked_against_v2_roles(v2: V2Diff) -> None:
    v2.begin()
    put(v2, "/v2/auth/users/root", {"user": "root", "password": "rootpw"})
    put(v2, "/v2/auth/users/alice", {"user": "alice", "password": "apw", "roles": ["r1"]})
    put(v2, "/v2/auth/roles/r1", {"role": "r1", "permissions": {"kv": {"read": ["/foo/*"], "write": ["/foo/bar"]}}})
    v2.run("PUT", "/v2/auth/enable")
    # Every auth write bumped the store index as on etcd (its first one made /2, /2/users/, /2/roles/, /2/enabled).
    v2.run("PUT", "/v2/keys/open", form={"value": "guest may write"})
    put(v2, "/v2/auth/roles/guest", {"role": "guest", "revoke": {"kv": {"write": ["/*"]}}}, auth=ROOT)
    denied = v2.run("PUT", "/v2/keys/open", form={"value": "no more"})
    assert denied["status"] == 401 and denied["body"]["errorCode"] == 110
    v2.run("GET", "/v2/keys/open")
    v2.run("GET", "/v2/keys/?recursive=true")  # a guest never reads recursively
    v2.run("GET", "/v2/keys/", query={"recursive": "true"})
    assert v2.run("PUT", "/v2/keys/foo/bar", form={"value": "1"}, auth=ALICE)["status"] == 201
    for method, path, kw in (
        ("PUT", "/v2/keys/foo/baz", {"form": {"value": "1"}}),  # read-only there
        ("GET", "/v2/keys/foo/baz", {}),
        ("GET", "/v2/keys/foo/bar", {}),
        ("HEAD", "/v2/keys/foo/bar", {}),
        ("GET", "/v2/keys/foo", {"query": {"recursive": "true"}}),  # "/foo/*" does not cover /foo
        ("GET", "/v2/keys/foo/", {"query": {"recursive": "true"}}),
        ("DELETE", "/v2/keys/foo/bar", {}),
        ("GET", "/v2/keys/open", {}),
    ):
        v2.run(method, path, auth=ALICE, **kw)
    v2.run("GET", "/v2/keys/foo/bar", auth=("alice", "wrong"))
    v2.run("GET", "/v2/keys/foo/bar", auth=("nobody", "x"))
    v2.run("PUT", "/v2/keys/anything", form={"value": "r"}, auth=ROOT)
    v2.run("GET", "/v2/keys/", query={"recursive": "true"}, auth=ROOT)
    # Membership changes need root; reading the list does not.
    body = json.dumps({"peerURLs": ["http://127.0.0.1:1"]})
    v2.run("POST", "/v2/members", json_body=body)
    v2.run("POST", "/v2/members", json_body=body, auth=ALICE)
    ref, ours = v2.both("GET", "/v2/members")
    assert ref.status == ours.status == 200
    # With guest read revoked too, a request without credentials can do nothing.
    put(v2, "/v2/auth/roles/guest", {"role": "guest", "revoke": {"kv": {"read": ["/*"]}}}, auth=ROOT)
    v2.run("GET", "/v2/keys/open")
    v2.run("DELETE", "/v2/auth/roles/guest", auth=ROOT)
    v2.run("GET", "/v2/keys/open")


def etcdctl2(endpoint: str, *args: str) -> tuple[int, str, str]:
    """The real etcdctl with the v2 API against ``endpoint`` (``host:port``, or a URL): rc, stdout, stderr."""
    env = {**os.environ, "ETCDCTL_API": "2"}
    url = endpoint if "://" in endpoint else f"http://{endpoint}"
    p = subprocess.run(
        [ETCDCTL_BIN, "--endpoints", url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return p.returncode, p.stdout, p.stderr.replace(url, "<endpoint>")


def test_etcdctl_v2_user_role_auth_flows(v2: V2Diff) -> None:
    root = ["--username", "root:rootpw"]
    alice = ["--username", "alice:apw"]
    for args in (
        ["user", "add", "root:rootpw"],
        ["auth", "enable"],
        ["auth", "enable"],
        [*root, "user", "add", "alice:apw"],
        [*root, "user", "add", "alice:apw"],
        [*root, "role", "add", "r1"],
        [*root, "role", "add", "r1"],
        [*root, "role", "grant", "r1", "--readwrite", "--path", "/foo/*"],
        [*root, "role", "grant", "r1", "--read", "--path", "/bar"],
        [*root, "role", "get", "r1"],
        [*root, "role", "list"],
        [*root, "user", "grant", "alice", "--roles", "r1"],
        [*root, "user", "grant", "alice", "--roles", "r1"],
        [*root, "user", "get", "alice"],
        [*root, "user", "list"],
        [*alice, "set", "/foo/a", "1"],
        [*alice, "get", "/foo/a"],
        [*alice, "set", "/bar", "1"],
        ["--username", "alice:wrong", "get", "/foo/a"],
        ["set", "/guest", "1"],
        [*root, "role", "revoke", "guest", "--readwrite", "--path", "/*"],
        ["set", "/guest", "2"],
        ["get", "/guest"],
        [*alice, "user", "list"],
        [*root, "role", "revoke", "r1", "--read", "--path", "/bar"],
        [*root, "user", "revoke", "alice", "--roles", "r1"],
        [*root, "user", "remove", "alice"],
        [*root, "role", "remove", "r1"],
        [*root, "user", "remove", "root"],
        ["auth", "disable"],
        [*root, "auth", "disable"],
        ["auth", "disable"],
        ["user", "list"],
    ):
        want = etcdctl2(v2.ref, *args)
        got = etcdctl2(v2.ours, *args)
        assert got == want, f"etcdctl {' '.join(args)}:\n etcd: {want}\n ours: {got}"


def test_client_certificate_cn_is_the_v2_user(tmp_path: Path) -> None:
    """Under --client-cert-auth a v2 request without an Authorization header runs as its certificate's CN."""
    c = cert_auth(tmp_path / "pki")
    flags = ["--enable-v2", *c.flags]
    with server_pair(tmp_path, flags, client_scheme="https", credentials=c.grpc_credentials()) as (ref, ours):
        tls = ["--ca-file", str(c.ca.pair.cert)]
        as_root = [*tls, "--cert-file", str(c.root.cert), "--key-file", str(c.root.key)]
        as_alice = [*tls, "--cert-file", str(c.alice.cert), "--key-file", str(c.alice.key)]
        outcomes = []
        for args in (
            [*as_root, "user", "add", "root:rootpw"],
            [*as_root, "user", "add", "alice:apw"],
            [*as_root, "role", "add", "r1"],
            [*as_root, "role", "grant", "r1", "--readwrite", "--path", "/a/*"],
            [*as_root, "user", "grant", "alice", "--roles", "r1"],
            [*as_root, "auth", "enable"],
            [*as_root, "role", "revoke", "guest", "--readwrite", "--path", "/*"],
            [*as_alice, "set", "/a/1", "x"],
            [*as_alice, "set", "/secret", "x"],
            [*as_alice, "get", "/a/1"],
            [*as_root, "set", "/secret", "x"],
            [*as_root, "user", "list"],
            [*as_alice, "user", "list"],
            # Basic credentials win over the certificate.
            [*as_alice, "--username", "root:rootpw", "set", "/secret", "y"],
            [*as_root, "--username", "alice:apw", "user", "list"],
        ):
            want = etcdctl2(f"https://{ref.endpoint}", *args)
            got = etcdctl2(f"https://{ours.endpoint}", *args)
            assert got == want, f"etcdctl {' '.join(args)}:\n etcd: {want}\n ours: {got}"
            outcomes.append(got[0])
        # alice may write under /a/ only; root (by CN) may do anything; Basic credentials win.
        assert outcomes[7:] == [0, 4, 0, 0, 0, 1, 0, 1], outcomes
