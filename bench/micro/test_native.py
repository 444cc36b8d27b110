"""pytest-benchmark runs of the native pieces (see the package docstring)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyetcd_fast import _native

pytest.importorskip("pytest_benchmark")


@pytest.mark.parametrize("batch", [1, 10, 100])
def test_wal_append_fsync(benchmark, tmp_path: Path, batch: int) -> None:
    """One Ready batch of ``batch`` 300-byte entries made durable: append, then fdatasync."""
    wal = _native.MicroWal(str(tmp_path / "wal"), 300)
    last = benchmark(wal.save, batch)
    assert last % batch == 0


@pytest.mark.parametrize("keys", [10_000, 1_000_000])
def test_index_put(benchmark, keys: int) -> None:
    """1,000 puts on existing keys of an index of ``keys`` keys (one tree search each)."""
    index = _native.MicroIndex(keys, 8)
    benchmark(index.put, 1000)
    assert index.range(0, keys, 0) == keys


@pytest.mark.parametrize(("span", "limit"), [(1, 0), (1000, 100), (100_000, 0)])
def test_index_range(benchmark, span: int, limit: int) -> None:
    """The revisions a Range over ``span`` keys sees, the first ``limit`` (0: all), in an index of 1M keys."""
    index = _native.MicroIndex(1_000_000, 8)
    assert benchmark(index.range, 500_000, span, limit) == span


@pytest.mark.parametrize("count", [1, 100, 1000])
def test_backend_range(benchmark, tmp_path: Path, count: int) -> None:
    """A serializable Range of ``count`` keys with 256-byte values read from LMDB, in a store of 100k keys."""
    store = _native.MicroRange(str(tmp_path / "db"), 100_000, 256)
    assert benchmark(store.range, 50_000, count) == count


@pytest.mark.parametrize(
    ("watchers", "prefix", "events"), [(10_000, False, 100), (100_000, False, 100), (1000, True, 10)]
)
def test_watch_matching(benchmark, tmp_path: Path, watchers: int, prefix: bool, events: int) -> None:
    """``events`` revisions of one put each matched against ``watchers`` synced watchers over 100 streams, and
    queued: on distinct keys (each event has one taker) or all on one prefix (each event goes to every watcher;
    few enough events that no stream passes etcd's slow-stream mark)."""
    w = _native.MicroWatch(str(tmp_path / "db"), watchers, 100, prefix)
    delivered = benchmark(w.notify, events)
    assert delivered == (events * watchers if prefix else events)
