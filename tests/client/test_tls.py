"""The client over TLS, against ours and real etcd 3.4.23 with test-made certificates: a CA to trust and a
client certificate (``--client-cert-auth``); without them the client cannot connect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import pyetcd_fast as etcd
from harness.certs import CertAuth, cert_auth
from harness.servers import Server, start_server
from pyetcd_fast import errors


@pytest.fixture(params=["ours", "etcd"])
def tls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, CertAuth]]:
    auth = cert_auth(tmp_path / "pki")
    kind = request.param
    s = start_server(kind, tmp_path / kind, auth.flags, client_scheme="https", credentials=auth.grpc_credentials())
    try:
        yield s, auth
    finally:
        s.stop()


def test_a_client_certificate_over_tls(tls: tuple[Server, CertAuth]) -> None:
    server, auth = tls
    url = f"https://{server.endpoint}"
    ca, cert, key = str(auth.ca.pair.cert), str(auth.alice.cert), str(auth.alice.key)
    with etcd.Client(url, ca_cert=ca, cert=cert, key=key) as c:
        c.put("k", "v")
        kv = c.get("k")
        assert kv is not None and kv.value == b"v"

    async def main() -> None:
        async with etcd.AsyncClient(url, ca_cert=ca, cert=cert, key=key) as a:
            got = await a.get("k")
            assert got is not None and got.value == b"v"

    asyncio.run(main())
    with etcd.Client(url, dial_timeout=1) as untrusting, pytest.raises(errors.ConnectionFailed):
        untrusting.get("k")  # the server's CA is not trusted
    with etcd.Client(url, ca_cert=ca, dial_timeout=1, timeout=2) as anonymous, pytest.raises(errors.EtcdError):
        anonymous.get("k")  # no client certificate
