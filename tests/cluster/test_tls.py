"""A cluster with TLS on every port: peers verify each other's certificates (``--peer-client-cert-auth``,
``--peer-cert-allowed-cn``), clients reach TLS client ports, and a member joins over TLS.

Certificates are made by the test (``harness.certs``): every member shares one certificate with CN
``member``; a certificate from the same CA with another CN is refused on the peer port.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import grpc
import pytest

from harness.certs import CA, Pair
from harness.cluster import Cluster
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2


def _peer_get(port: int, ca: CA, pair: Pair) -> bytes:
    """``GET /members`` on a peer port over TLS presenting ``pair``; what came back (b"" if dropped)."""
    ctx = ssl.create_default_context(cafile=str(ca.pair.cert))
    ctx.load_cert_chain(str(pair.cert), str(pair.key))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /members HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                out = b""
                while chunk := s.recv(65536):
                    out += chunk
                return out
        except (ssl.SSLError, ConnectionError):
            return b""


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CA, Pair, Pair]:
    ca = CA(tmp_path / "pki")
    return ca, ca.issue("member"), ca.issue("intruder")


def test_a_cluster_with_tls_on_every_port(new_cluster, pki: tuple[CA, Pair, Pair]) -> None:
    ca, member, intruder = pki
    cert = ["--cert-file", str(member.cert), "--key-file", str(member.key), "--trusted-ca-file", str(ca.pair.cert)]
    peer = [
        "--peer-cert-file", str(member.cert), "--peer-key-file", str(member.key),
        "--peer-trusted-ca-file", str(ca.pair.cert), "--peer-client-cert-auth", "--peer-cert-allowed-cn", "member",
    ]  # fmt: skip
    cluster: Cluster = new_cluster(
        3,
        extra_flags=[*cert, *peer],
        client_scheme="https",
        peer_scheme="https",
        credentials=grpc.ssl_channel_credentials(root_certificates=ca.pair.cert.read_bytes()),
        ctl_flags=["--cacert", str(ca.pair.cert)],
    )
    m1, m2, m3 = cluster.members
    cluster.stubs(m1).kv.Put(rpc_pb2.PutRequest(key=b"tls", value=b"1"), timeout=10)
    got = cluster.stubs(m3).kv.Range(rpc_pb2.RangeRequest(key=b"tls"), timeout=10)
    assert got.kvs[0].value == b"1"
    listed = cluster.etcdctl("member", "list", "-w", "json", member=m2)
    assert listed.rc == 0, listed.stderr
    urls = sorted(u for m in json.loads(listed.stdout)["members"] for u in m["peerURLs"])
    assert all(u.startswith("https://") for u in urls) and len(urls) == 3

    # The peer port answers a certificate with the allowed CN and drops any other, even from the same CA.
    assert b'"peerURLs"' in _peer_get(m1.peer_port, ca, member)
    assert _peer_get(m1.peer_port, ca, intruder) == b""
    assert "CommonName authentication failed" in m1.log_tail(200)

    # Leader changes ride the TLS streams; a new member joins over TLS (it asks its peers for the cluster).
    leader, _ = cluster.wait_leader()
    cluster.kill(leader)
    cluster.wait_leader(exclude=[leader])
    cluster.restart(leader)
    m4 = cluster.add_member("m4")
    cluster.wait_caught_up(m4)
    assert cluster.stubs(m4).kv.Range(rpc_pb2.RangeRequest(key=b"tls"), timeout=10).kvs[0].value == b"1"


def test_a_member_whose_certificate_has_another_cn_cannot_join(new_cluster, pki: tuple[CA, Pair, Pair]) -> None:
    ca, member, intruder = pki

    def flags(pair: Pair) -> list[str]:
        return [
            "--peer-cert-file", str(pair.cert), "--peer-key-file", str(pair.key),
            "--peer-trusted-ca-file", str(ca.pair.cert), "--peer-client-cert-auth", "--peer-cert-allowed-cn", "member",
        ]  # fmt: skip

    cluster: Cluster = new_cluster(3, extra_flags=flags(member), peer_scheme="https")
    m4 = cluster.add_member("m4", start=False)
    m4.flags = [f for f in m4.flags if f not in flags(member)] + flags(intruder)
    cluster.relaunch(m4)
    # It may dial out (the others' certificates are fine to it), but every stream and request it makes is
    # refused, so it never catches up and never serves.
    with pytest.raises((TimeoutError, RuntimeError)):
        cluster.wait_caught_up(m4, timeout=8)
    assert any("CommonName authentication failed" in m.log_tail(400) for m in cluster.members[:3])
