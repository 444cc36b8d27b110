"""Auth and RBAC: the real etcdctl's ``user``, ``role`` and ``auth`` flows and permission-denied cases, run
against real etcd 3.4.23 and against us with the same state; exit codes, output and errors must match.

Each test gets a fresh pair of servers (auth state is cluster-wide). Where etcd 3.4.23 itself has a known
authorization hole fixed in later releases, the behaviour is tested on ours alone (``tests/auth``).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import etcdctl as ctl
from harness.certs import cert_auth
from harness.etcdctl import CtlPair
from harness.servers import Server, free_port, server_pair, spawn

ROOT = ["--user", "root:rootpw"]
ALICE = ["--user", "alice:apw"]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with server_pair(tmp_path) as both:
        yield both


@pytest.fixture
def pair(servers: tuple[Server, Server]) -> CtlPair:
    return CtlPair(servers[0].endpoint, servers[1].endpoint)


def setup_auth(pair: CtlPair) -> None:
    """root, alice with role r1 (readwrite a/ prefix, read b, write [c, d), read e and on), auth on."""
    for args in (
        ["user", "add", "root:rootpw"],
        ["user", "add", "alice:apw"],
        ["role", "add", "r1"],
        ["role", "grant-permission", "r1", "readwrite", "a/", "--prefix"],
        ["role", "grant-permission", "r1", "read", "b"],
        ["role", "grant-permission", "r1", "write", "c", "d"],
        ["role", "grant-permission", "r1", "read", "e", "--from-key"],
        ["user", "grant-role", "alice", "r1"],
        ["put", "b", "bee"],
        ["put", "secret", "s3cr3t"],
        ["auth", "enable"],
    ):
        assert pair.run(*args).rc == 0, args


def test_user_and_role_management(pair: CtlPair) -> None:
    r = pair.run("auth", "enable")
    assert r.rc != 0 and "root user does not exist" in " ".join(r.err)
    pair.run("user", "add", "root:rootpw")
    assert "already exists" in " ".join(pair.run("user", "add", "root:x").err)
    assert pair.run("auth", "enable").out == "Authentication Enabled\n"  # etcdctl grants root the root role
    for args in (
        ["user", "get", "root"],  # no credentials: "user name is empty"
        ["put", "k", "v"],
        ["--user", "root:bad", "put", "k", "v"],  # "authentication failed"
        [*ROOT, "user", "get", "root"],
        [*ROOT, "user", "add", "alice:apw"],
        [*ROOT, "role", "add", "r1"],
        [*ROOT, "role", "add", "r1"],
        [*ROOT, "role", "grant-permission", "r1", "readwrite", "a/", "--prefix"],
        [*ROOT, "role", "grant-permission", "r1", "read", "b"],
        [*ROOT, "role", "grant-permission", "r1", "write", "c", "d"],
        [*ROOT, "role", "grant-permission", "r1", "read", "e", "--from-key"],
        [*ROOT, "role", "grant-permission", "r1", "readwrite", "b"],  # same range: its type changes
        [*ROOT, "role", "get", "r1"],
        [*ROOT, "role", "get", "r1", "-w", "json"],
        [*ROOT, "user", "grant-role", "alice", "r1"],
        [*ROOT, "user", "grant-role", "alice", "r1"],  # already granted: ignored
        [*ROOT, "user", "grant-role", "alice", "nope"],
        [*ROOT, "user", "grant-role", "nobody", "r1"],
        [*ALICE, "user", "list"],
        [*ALICE, "user", "get", "alice"],
        [*ALICE, "user", "get", "root"],
        [*ALICE, "role", "get", "r1"],
        [*ALICE, "role", "get", "root"],
        [*ALICE, "role", "list"],
        [*ROOT, "role", "revoke-permission", "r1", "zz"],
        [*ROOT, "role", "revoke-permission", "r1", "b"],
        [*ROOT, "user", "revoke-role", "alice", "nope"],
        [*ROOT, "role", "delete", "root"],
        [*ROOT, "user", "revoke-role", "root", "root"],
        [*ROOT, "user", "delete", "root"],
        [*ROOT, "user", "get", "nobody"],
        [*ROOT, "role", "get", "nobody"],
        [*ROOT, "user", "add", "nopw", "--no-password"],
        [*ROOT, "user", "get", "nopw"],
        [*ROOT, "user", "list"],
        [*ROOT, "user", "list", "-w", "json"],
        [*ROOT, "role", "list"],
        [*ROOT, "user", "passwd", "alice", "--interactive=false"],
        [*ALICE, "get", "a/x"],  # the old password no longer works
        ["--user", "alice:apw2", "put", "a/x", "1"],
        [*ROOT, "role", "delete", "r1"],  # also revoked from alice
        [*ROOT, "user", "get", "alice"],
        ["--user", "alice:apw2", "get", "a/x"],
        [*ROOT, "user", "delete", "alice"],
        [*ROOT, "user", "delete", "alice"],
        [*ROOT, "auth", "disable"],
        ["put", "k", "v"],
        ["user", "list"],
        ["auth", "disable"],
    ):
        stdin = "apw2\n" if "passwd" in args else None
        pair.run(*args, stdin=stdin)


def test_permissions_of_a_user_as_etcd_checks_them(pair: CtlPair) -> None:
    setup_auth(pair)
    for args in (
        ["put", "a/1", "x"],
        ["get", "a/1"],
        ["get", "a/", "--prefix"],
        ["get", "a", "--prefix"],  # wider than the grant
        ["put", "b", "x"],  # read only
        ["get", "b"],
        ["get", "secret"],
        ["put", "c", "x"],  # write only
        ["get", "c"],
        ["put", "cz", "x"],
        ["put", "d", "x"],  # the range's end is not in it
        ["get", "e"],
        ["get", "zzz"],
        ["get", "e", "--from-key"],
        ["get", "a/1", "--from-key"],
        ["del", "a/1"],
        ["del", "a/", "--prefix", "--prev-kv"],
        ["del", "b"],
        ["del", "c"],  # write without read: allowed without --prev-kv
        ["del", "c", "--prev-kv"],
        ["get", "a/", "--prefix", "--count-only"],
    ):
        pair.run(*ALICE, *args)
    txns = [
        'value("a/1") = "x"\n\nput a/2 y\n\nget b\n\n',
        'value("secret") = "x"\n\nput a/2 y\n\n\n',  # a compare on a key alice cannot read
        'value("a/1") = "x"\n\nput secret y\n\n\n',
        "\n\nget b\n\nget secret\n\n",  # the else branch is checked too
        "\n\nget b\n\nget a/1\n\n",
    ]
    for t in txns:
        pair.run(*ALICE, "txn", stdin=t)
    for args in (["get", "secret"], ["get", "", "--from-key"]):
        pair.run(*ROOT, *args)
    for ep in (pair.ref, pair.ours):  # ids and sizes differ; both answer root
        assert ctl.run(ep, *ROOT, "endpoint", "status").rc == 0
        assert ctl.run(ep, *ROOT, "member", "list").rc == 0


def test_a_token_outlives_nothing_it_should_not(pair: CtlPair) -> None:
    """Deleting a user, or revoking its role, takes effect on its next request."""
    setup_auth(pair)
    pair.run(*ALICE, "put", "a/1", "x")
    pair.run(*ROOT, "user", "revoke-role", "alice", "r1")
    pair.run(*ALICE, "put", "a/1", "y")
    pair.run(*ROOT, "user", "delete", "alice")
    pair.run(*ALICE, "get", "a/1")


def test_client_certificate_cn_is_the_user(tmp_path: Path) -> None:
    """Under --client-cert-auth a request without a token runs as its certificate's common name."""
    c = cert_auth(tmp_path / "pki")
    with server_pair(tmp_path, c.flags, client_scheme="https", credentials=c.grpc_credentials()) as (ref, ours):
        tls = ["--cacert", str(c.ca.pair.cert)]
        as_root = [*tls, "--cert", str(c.root.cert), "--key", str(c.root.key)]
        as_alice = [*tls, "--cert", str(c.alice.cert), "--key", str(c.alice.key)]
        p = CtlPair(f"https://{ref.endpoint}", f"https://{ours.endpoint}")
        for args in (
            [*as_root, "user", "add", "root:rootpw"],
            [*as_root, "user", "add", "alice", "--no-password"],
            [*as_root, "role", "add", "r1"],
            [*as_root, "role", "grant-permission", "r1", "readwrite", "a/", "--prefix"],
            [*as_root, "user", "grant-role", "alice", "r1"],
            [*as_root, "auth", "enable"],
            [*as_alice, "put", "a/1", "x"],
            [*as_alice, "put", "secret", "x"],
            [*as_alice, "get", "a/1"],
            [*as_root, "get", "a/1"],
            [*as_root, "user", "list"],
            [*as_alice, "user", "list"],
            # A token wins over the certificate.
            [*as_alice, "--user", "root:rootpw", "put", "secret", "x"],
        ):
            p.run(*args)


def test_a_snapshot_of_ours_restored_gives_real_etcd_the_same_users(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    _, ours = servers
    pair = CtlPair(servers[0].endpoint, ours.endpoint)
    setup_auth(pair)
    db = tmp_path / "snap.db"
    saved = ctl.run(ours.endpoint, *ROOT, "snapshot", "save", str(db))
    assert saved.rc == 0, saved.stderr
    data = tmp_path / "restored"
    peer = free_port()
    env = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [ctl.ETCDCTL_BIN, "snapshot", "restore", str(db), "--data-dir", str(data), "--name", "t",
         "--initial-cluster", f"t=http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    restored = Server("etcd", data, free_port(), peer, tmp_path / "restored.log")
    argv = [
        "/usr/bin/etcd", "--name", "t", "--data-dir", str(data),
        "--listen-client-urls", f"http://127.0.0.1:{restored.client_port}",
        "--advertise-client-urls", f"http://127.0.0.1:{restored.client_port}",
        "--listen-peer-urls", f"http://127.0.0.1:{restored.peer_port}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{restored.peer_port}",
        "--initial-cluster", f"t=http://127.0.0.1:{restored.peer_port}",
    ]  # fmt: skip
    proc = spawn(argv, restored.log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            got = ctl.run(restored.endpoint, *ALICE, "get", "b", "--print-value-only")
            if got.rc == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert (got.rc, got.stdout.strip()) == (0, "bee"), got.stderr
        users = ctl.run(restored.endpoint, *ROOT, "user", "list")
        assert users.stdout.split() == ["alice", "root"]
        denied = ctl.run(restored.endpoint, *ALICE, "get", "a")  # outside alice's grants
        assert denied.rc != 0 and "permission denied" in denied.stderr
        assert ctl.run(restored.endpoint, "get", "b").rc != 0  # auth stays enabled
    finally:
        proc.kill()
        proc.wait()
