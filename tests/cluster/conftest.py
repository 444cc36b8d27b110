"""Fixtures for the clustering suite.

The server under test is ``kind="ours"`` (``python -m pyetcd_fast``; real etcd with
PYETCD_TEST_OURS_IS_ETCD=1). Clusters use etcd's default timing (heartbeat 100 ms,
election timeout 1000 ms).

- ``cluster3``: one 3-member cluster per module, for tests that leave it whole.
- ``new_cluster(size=3, **kw)``: a fresh cluster for one test (``kw`` as for ``Cluster``,
  e.g. ``extra_flags``, ``fabric``), stopped when the test ends.
- ``fabric``: a network-namespace fabric for partitions; the test is skipped, with the
  reason, when namespaces cannot be created here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.cluster import Cluster
from harness.netns import NetnsFabric, NetnsUnavailable

KIND = "ours"


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory) -> Iterator[Cluster]:
    c = Cluster(KIND, tmp_path_factory.mktemp("cluster3"), 3)
    try:
        yield c.start()
    finally:
        c.stop_all()


@pytest.fixture
def new_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(size: int = 3, **kw) -> Cluster:
        c = Cluster(KIND, tmp_path / f"cluster{len(made)}", size, **kw)
        made.append(c)
        return c.start()

    try:
        yield make
    finally:
        for c in made:
            c.stop_all()


@pytest.fixture
def fabric() -> Iterator[NetnsFabric]:
    try:
        f = NetnsFabric()
    except NetnsUnavailable as e:
        pytest.skip(f"network namespaces unavailable: {e}")
    try:
        yield f
    finally:
        f.close()
