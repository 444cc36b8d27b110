"""TLS on the client port, driven by the real etcdctl (v3 and v2) and by plain HTTPS clients.

Certificates are made here (``harness.certs``). Each test starts our server with etcd's flags; where the
failure itself is the behaviour (a bad certificate, an https URL without one), real etcd 3.4 runs with the
same flags and both must refuse to start with the same message.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from harness import etcdctl as ctl
from harness.certs import CA, Pair
from harness.servers import Server, etcd_flags, free_port, server_cmd, spawn, start_server


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_pair(ca: CA) -> Pair:
    return ca.issue("server")


def creds(ca: CA, client: Pair | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.pair.cert.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )


def tls_flags(pair: Pair, *extra: str) -> list[str]:
    return ["--cert-file", str(pair.cert), "--key-file", str(pair.key), *extra]


def https(url: str, ca: CA, client: Pair | None = None, data: bytes | None = None) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca.pair.cert))
    if client:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    with urllib.request.urlopen(url, data=data, context=ctx, timeout=10) as resp:
        return resp.read()


def served_cert(port: int) -> bytes:
    """The DER certificate a new TLS connection to ``port`` is shown."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as s:
        cert = s.getpeercert(binary_form=True)
    assert cert is not None
    return cert


@pytest.fixture
def tls_server(tmp_path: Path, ca: CA, server_pair: Pair) -> Server:
    srv = start_server("ours", tmp_path / "ours", tls_flags(server_pair), client_scheme="https", credentials=creds(ca))
    yield srv
    srv.stop()


def test_etcdctl_v3_over_tls_and_plaintext_refused(tls_server: Server, ca: CA) -> None:
    cacert = ["--cacert", str(ca.pair.cert)]
    url = f"https://{tls_server.endpoint}"
    put = ctl.run(url, *cacert, "put", "tls-key", "v1")
    assert (put.rc, put.stdout.strip()) == (0, "OK"), put.stderr
    got = ctl.run(url, *cacert, "get", "tls-key", "--print-value-only")
    assert got.stdout.strip() == "v1"
    # One port serves everything over TLS: /version, /health, /metrics and the JSON gateway.
    assert json.loads(https(f"{url}/version", ca))["etcdserver"] == "3.4.23"
    assert json.loads(https(f"{url}/health", ca))["health"] == "true"
    assert b"etcd_server_has_leader" in https(f"{url}/metrics", ca)
    body = json.loads(https(f"{url}/v3/kv/range", ca, data=b'{"key": "dGxzLWtleQ=="}'))
    assert body["kvs"][0]["value"] == "djE="
    # Plaintext on the TLS port gets nothing: never served without TLS.
    plain = ctl.run(tls_server.endpoint, "get", "tls-key", "--dial-timeout=1s", "--command-timeout=2s")
    assert plain.rc != 0 and "v1" not in plain.stdout
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://{tls_server.endpoint}/version", timeout=5).read()
    # Nor without trusting the CA.
    untrusted = ctl.run(url, "get", "tls-key", "--dial-timeout=1s", "--command-timeout=2s")
    assert untrusted.rc != 0


def test_seed_command_etcdctl_v2_over_tls(tmp_path: Path, ca: CA, server_pair: Pair) -> None:
    """The seed document's command, verbatim: ``etcdctl --cert-file=... --key-file=... --ca-file=... get``."""
    client = ca.issue("v2client")
    srv = start_server(
        "ours", tmp_path / "ours", tls_flags(server_pair, "--enable-v2"), client_scheme="https", credentials=creds(ca)
    )
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env["ETCDCTL_API"] = "2"
        base = [
            ctl.ETCDCTL_BIN,
            "--endpoints", f"https://{srv.endpoint}",
            f"--cert-file={client.cert}", f"--key-file={client.key}", f"--ca-file={ca.pair.cert}",
        ]  # fmt: skip
        s = subprocess.run([*base, "set", "/message", "Hello"], capture_output=True, text=True, env=env, timeout=30)
        assert s.returncode == 0, s.stderr
        g = subprocess.run([*base, "get", "/message"], capture_output=True, text=True, env=env, timeout=30)
        assert (g.returncode, g.stdout.strip()) == (0, "Hello"), g.stderr
    finally:
        srv.stop()


def test_client_cert_auth_requires_a_certificate_from_the_ca(tmp_path: Path, ca: CA, server_pair: Pair) -> None:
    alice = ca.issue("alice")
    stranger = CA(tmp_path / "other").issue("stranger")
    flags = tls_flags(server_pair, "--client-cert-auth", "--trusted-ca-file", str(ca.pair.cert))
    srv = start_server("ours", tmp_path / "ours", flags, client_scheme="https", credentials=creds(ca, alice))
    try:
        url = f"https://{srv.endpoint}"
        base = ["--cacert", str(ca.pair.cert)]
        ok = ctl.run(url, *base, "--cert", str(alice.cert), "--key", str(alice.key), "put", "k", "v")
        assert (ok.rc, ok.stdout.strip()) == (0, "OK"), ok.stderr
        for who in ([], ["--cert", str(stranger.cert), "--key", str(stranger.key)]):
            r = ctl.run(url, *base, *who, "get", "k", "--dial-timeout=1s", "--command-timeout=2s")
            assert r.rc != 0, who
        assert b"true" in https(f"{url}/health", ca, alice)
        with pytest.raises(OSError):
            https(f"{url}/health", ca)
    finally:
        srv.stop()


def test_a_revoked_certificate_is_refused_without_a_restart(tmp_path: Path, ca: CA, server_pair: Pair) -> None:
    alice, bob = ca.issue("alice-crl"), ca.issue("bob-crl")
    crl = ca.crl(tmp_path / "crl.pem", [bob])
    flags = tls_flags(server_pair, "--client-cert-auth", "--trusted-ca-file", str(ca.pair.cert))
    flags += ["--client-crl-file", str(crl)]
    srv = start_server("ours", tmp_path / "ours", flags, client_scheme="https", credentials=creds(ca, alice))
    try:
        url = f"https://{srv.endpoint}"

        def as_(who: Pair) -> ctl.Result:
            base = ["--cacert", str(ca.pair.cert), "--cert", str(who.cert), "--key", str(who.key)]
            return ctl.run(url, *base, "get", "k", "--dial-timeout=1s", "--command-timeout=2s")

        assert as_(alice).rc == 0
        assert as_(bob).rc != 0
        ca.crl(crl, [alice, bob])  # alice revoked too, while serving
        assert as_(alice).rc != 0
    finally:
        srv.stop()


def test_auto_tls_makes_a_certificate_and_keeps_it(tmp_path: Path) -> None:
    port, peer = free_port(), free_port()
    data = tmp_path / "data"
    flags = etcd_flags("t", data, port, peer, client_scheme="https") + ["--auto-tls"]
    argv = server_cmd("ours", flags)
    log = tmp_path / "server.log"
    url = f"https://127.0.0.1:{port}"
    skip = ["--insecure-skip-tls-verify", "--insecure-transport=false"]  # etcd 3.4 needs both, too
    for life in range(2):
        proc = spawn(argv, log)
        try:
            _wait_ctl(url, skip, proc, log)
            r = ctl.run(url, *skip, "put", f"auto-{life}", "v")
            assert (r.rc, r.stdout.strip()) == (0, "OK"), r.stderr
            cert = served_cert(port)
            if life == 0:
                first = cert
            else:
                assert cert == first  # the restart reused fixtures/client/cert.pem
        finally:
            proc.terminate()
            proc.wait(10)
    assert (data / "fixtures" / "client" / "cert.pem").exists()
    assert oct((data / "fixtures" / "client" / "key.pem").stat().st_mode & 0o777) == "0o600"


def _wait_ctl(url: str, flags: list[str], proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        r = ctl.run(url, *flags, "get", "ready", "--dial-timeout=1s", "--command-timeout=2s")
        if r.rc == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(log.read_text()[-3000:])


def test_a_certificate_rotated_while_serving_is_used_by_new_connections(tmp_path: Path, ca: CA) -> None:
    live = ca.issue("live", cn="before")
    srv = start_server("ours", tmp_path / "ours", tls_flags(live), client_scheme="https", credentials=creds(ca))
    try:
        url = f"https://{srv.endpoint}"
        before = served_cert(srv.client_port)
        # A watch opened before the rotation keeps its connection (from revision 1: it sees the put however
        # late it registers).
        watcher = subprocess.Popen(
            [ctl.ETCDCTL_BIN, "--endpoints", url, "--cacert", str(ca.pair.cert), "watch", "rot", "--rev", "1"],
            stdout=subprocess.PIPE,
            env={**os.environ, "ETCDCTL_API": "3"},
            text=True,
        )
        rotated = ca.issue("rotated", cn="after")
        # Key first, then certificate, as a rotation tool would write them; a handshake between the two keeps
        # the old pair.
        live.key.write_bytes(rotated.key.read_bytes())
        live.cert.write_bytes(rotated.cert.read_bytes())
        after = served_cert(srv.client_port)
        assert after != before and after == ssl.PEM_cert_to_DER_cert(rotated.cert.read_text())
        r = ctl.run(url, "--cacert", str(ca.pair.cert), "put", "rot", "x")
        assert r.rc == 0, r.stderr
        assert watcher.stdout is not None
        ready, _, _ = select.select([watcher.stdout], [], [], 20)
        assert ready, "the watch opened before the rotation saw nothing"
        assert watcher.stdout.readline().strip() == "PUT"
        watcher.terminate()
        watcher.wait(10)
        watcher.stdout.close()
    finally:
        srv.stop()


def test_cipher_suites_restrict_tls12(tmp_path: Path, ca: CA, server_pair: Pair) -> None:
    flags = tls_flags(server_pair, "--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
    srv = start_server("ours", tmp_path / "ours", flags, client_scheme="https", credentials=creds(ca))
    try:
        ctx = ssl.create_default_context(cafile=str(ca.pair.cert))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
        with socket.create_connection(("127.0.0.1", srv.client_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                assert s.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        with pytest.raises(ssl.SSLError):
            with socket.create_connection(("127.0.0.1", srv.client_port), timeout=5) as raw:
                ctx.wrap_socket(raw, server_hostname="127.0.0.1").close()
    finally:
        srv.stop()


def _start_error(kind: str, tmp_path: Path, flags: list[str], client_scheme: str, peer_scheme: str) -> str:
    """Starts ``kind`` expecting it to refuse; returns its log."""
    port, peer = free_port(), free_port()
    log = tmp_path / f"{kind}.log"
    argv = server_cmd(
        kind,
        etcd_flags("t", tmp_path / f"{kind}.data", port, peer, client_scheme, peer_scheme) + ["--logger=zap", *flags],
    )
    proc = spawn(argv, log)
    try:
        rc = proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{kind} started with {flags}") from None
    assert rc == 1, log.read_text()
    return log.read_text()


@pytest.mark.parametrize(
    "case",
    ["https without certificate", "peer https without certificate", "missing file", "key mismatch", "unknown cipher"],
)
def test_inconsistent_tls_stops_the_start_as_etcd_does(tmp_path: Path, ca: CA, server_pair: Pair, case: str) -> None:
    other = ca.issue("other")
    client_scheme, peer_scheme, flags = {
        "https without certificate": ("https", "http", []),
        "peer https without certificate": ("http", "https", []),
        "missing file": ("https", "http", ["--cert-file", str(tmp_path / "nope.pem"), "--key-file", str(other.key)]),
        "key mismatch": ("https", "http", ["--cert-file", str(server_pair.cert), "--key-file", str(other.key)]),
        "unknown cipher": ("https", "http", [*tls_flags(server_pair), "--cipher-suites", "TLS_FOO"]),
    }[case]
    expected = {
        "https without certificate": "TLS key/cert (--cert-file, --key-file) must be provided for client url https://",
        "peer https without certificate": "KeyFile and CertFile are not presented",
        "missing file": f"open {tmp_path / 'nope.pem'}: no such file or directory",
        "key mismatch": "tls: private key does not match public key",
        "unknown cipher": 'unexpected TLS cipher suite \\"TLS_FOO\\"',
    }[case]
    for kind in ("etcd", "ours"):
        out = _start_error(kind, tmp_path, flags, client_scheme, peer_scheme)
        assert expected in out, (kind, out[-2000:])
    assert not (tmp_path / "ours.data" / "member" / "wal").exists()  # refused before anything was written
