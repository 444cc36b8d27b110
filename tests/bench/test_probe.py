"""bench.probe's arithmetic on known counters, its two-process generator run against one member of ours, and the
null server it puts beside etcd and us."""

from __future__ import annotations

import os

import pytest

from bench.probe import COMMITTED, counters, generators_once, null_server, proc_cpu_seconds, table, xl_figures
from bench.run import GENERATOR
from harness import etcdctl

METRICS = """# HELP etcd_server_proposals_committed_total The total number of consensus proposals committed.
# TYPE etcd_server_proposals_committed_total gauge
etcd_server_proposals_committed_total 1200
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 90
etcd_disk_wal_fsync_duration_seconds_sum 0.05
etcd_disk_wal_fsync_duration_seconds_count 100
etcd_server_proposals_committed_total_other 7
"""


def test_counters_reads_only_the_named_unlabelled_samples() -> None:
    assert counters(METRICS) == {
        "etcd_server_proposals_committed_total": 1200.0,
        "etcd_disk_wal_fsync_duration_seconds_sum": 0.05,
        "etcd_disk_wal_fsync_duration_seconds_count": 100.0,
    }


def test_xl_figures_per_write_and_per_fsync() -> None:
    before = {"etcd_server_proposals_committed_total": 200.0, "etcd_disk_wal_fsync_duration_seconds_count": 0.0}
    x = xl_figures(9000.0, before, counters(METRICS), server_cpu=0.075, ctl_cpu=0.08)
    assert x["rps"] == 9000.0
    assert x["writes_per_fsync"] == 10.0
    assert x["fsync_mean_us"] == pytest.approx(500.0)
    assert x["server_cpu_us_per_write"] == pytest.approx(75.0)
    assert x["etcdctl_cpu_us_per_write"] == pytest.approx(80.0)


def test_xl_figures_without_fsync_has_no_per_fsync_figures() -> None:
    after = {"etcd_server_proposals_committed_total": 10.0}
    x = xl_figures(1.0, {}, after, 0.0, 0.0)
    assert x["writes_per_fsync"] is None and x["fsync_mean_us"] is None


def test_proc_cpu_seconds_of_this_process() -> None:
    sum(range(2_000_000))
    assert proc_cpu_seconds(os.getpid()) > 0


def test_table() -> None:
    assert table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n"


def test_two_generator_processes_share_the_load(ours_server) -> None:
    if not GENERATOR.exists():
        pytest.fail(f"{GENERATOR} is missing: `make develop` builds it")
    g = generators_once(ours_server.endpoint, procs=2, clients=4, conns=2, total=200)
    assert (g["procs"], g["requests"], g["errors"]) == (2, 200, 0), g
    assert g["rps"] > 0 and g["generator_cpu_us_per_request"] > 0


def test_null_server_answers_etcdctl_and_counts_its_puts() -> None:
    if not GENERATOR.exists():
        pytest.fail(f"{GENERATOR} is missing: `make develop` builds it")
    with null_server() as (endpoint, pid, scrape):
        assert scrape() == {COMMITTED: 0.0}
        for i in range(3):
            assert etcdctl.run(endpoint, "put", f"k{i}", "v").stdout.strip() == "OK"
        got = etcdctl.run(endpoint, "get", "k0")
        assert (got.rc, got.stdout) == (0, "")
        assert etcdctl.run(endpoint, "del", "--prefix", "k").rc == 0
        assert scrape() == {COMMITTED: 3.0}
        assert proc_cpu_seconds(pid) >= 0
