"""Fixtures that start servers for the differential and e2e suites.

- ``etcd_server`` / ``ours_server``: one real etcd and one server under test per
  test module (``server.endpoint`` is "127.0.0.1:port").
- ``diff``: a ``DiffPair`` over those two, for lock-step differential checks.
- ``fresh_diff``: a brand-new pair for one test, for cases that read or change
  global state (whole-keyspace ranges, compaction).

The server under test is ``python -m pyetcd_fast``; with PYETCD_TEST_OURS_IS_ETCD=1
it is a second real etcd, which validates the harness (etcd vs etcd must match).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tools"))

import gen_pb  # noqa: E402  (needs the path set above)

# The stubs are generated, not committed; this is a no-op when they are current.
gen_pb.main([])

from harness.kvclient import Client, DiffPair  # noqa: E402
from harness.servers import Server, start_server  # noqa: E402


def _serve(kind: str, workdir: Path):
    srv = start_server(kind, workdir)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory) -> Server:
    yield from _serve("etcd", tmp_path_factory.mktemp("etcd"))


@pytest.fixture(scope="module")
def ours_server(tmp_path_factory) -> Server:
    yield from _serve("ours", tmp_path_factory.mktemp("ours"))


@pytest.fixture(scope="module")
def etcd_endpoint(etcd_server: Server) -> str:
    return etcd_server.endpoint


@pytest.fixture(scope="module")
def ours_endpoint(ours_server: Server) -> str:
    return ours_server.endpoint


@contextlib.contextmanager
def _pair(ref: Server, ours: Server):
    a, b = Client(ref.endpoint), Client(ours.endpoint)
    try:
        yield DiffPair(a, b)
    finally:
        a.close()
        b.close()


@pytest.fixture(scope="module")
def diff(etcd_server: Server, ours_server: Server) -> DiffPair:
    with _pair(etcd_server, ours_server) as pair:
        yield pair


@pytest.fixture
def fresh_diff(tmp_path: Path) -> DiffPair:
    ref = start_server("etcd", tmp_path / "etcd")
    try:
        ours = start_server("ours", tmp_path / "ours")
        try:
            with _pair(ref, ours) as pair:
                pair.begin()
                yield pair
        finally:
            ours.stop()
    finally:
        ref.stop()
