"""Differential test of the gRPC answers on the wire: the HTTP/2 headers and trailers of a call, read with curl
from real etcd and from our server, must be the same; so must the answer to a method neither server has.

Normalization: an empty ``grpc-message`` (grpc-go's trailer on success) counts as absent. The unknown-method
answers are compared through grpcio (code and decoded message): grpc-go sends spaces in ``grpc-message`` raw,
tonic percent-encodes them, and every gRPC client decodes both.
"""

from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

# A gRPC frame holding RangeRequest{key: "a"}.
RANGE_A = b"\x00\x00\x00\x00\x03\x0a\x01a"


def answer(endpoint: str, path: str) -> list[tuple[str, str]]:
    """The status line, headers and trailers of one gRPC call, normalized (see the module docstring)."""
    out = subprocess.run(
        ["curl", "-s", "-D", "-", "-o", "/dev/null", "--http2-prior-knowledge", "-X", "POST"]
        + ["-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@-"]
        + [f"http://{endpoint}{path}"],
        input=RANGE_A,
        capture_output=True,
        timeout=10,
    )
    assert out.returncode == 0, out
    text = out.stdout.decode()
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith("HTTP/"):
            fields.append(("status", line.split()[1]))
            continue
        name, sep, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not sep or (name == "grpc-message" and not value):
            continue
        fields.append((name, value))
    return fields


def test_grpc_headers_and_trailers(etcd_endpoint: str, ours_endpoint: str) -> None:
    ref, ours = answer(etcd_endpoint, "/etcdserverpb.KV/Range"), answer(ours_endpoint, "/etcdserverpb.KV/Range")
    assert ours == ref
    # No Date header: grpc-go sends none, and formatting one per response is pure cost on the hot path.
    assert "date" not in dict(ours)


@pytest.mark.parametrize(
    "path",
    [
        "/etcdserverpb.Nope/Call",  # a service neither has
        "/etcdserverpb.KV/Nope",  # a method the KV service does not have
    ],
)
def test_unknown_method(etcd_endpoint: str, ours_endpoint: str, path: str) -> None:
    # Through grpcio, not curl: a server may reset the stream right after this trailers-only answer, which
    # curl sometimes reports instead of the answer.
    def outcome(endpoint: str) -> tuple[grpc.StatusCode, str]:
        with grpc.insecure_channel(endpoint) as ch:
            call = ch.unary_unary(path, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as e:
                call(RANGE_A[5:], timeout=10)
            return e.value.code(), e.value.details()

    assert outcome(ours_endpoint) == outcome(etcd_endpoint)
