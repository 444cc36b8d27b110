"""The benchmark suite's smoke run: every workload of ``pyetcd-bench`` for about a second against one
member of ours, each answering with requests done and no errors; and the report's arithmetic (medians,
per-round ratios, Markdown) on known samples. The benchmarks themselves live in bench/ and never run here."""

from __future__ import annotations

import pytest

from bench.report import markdown, summarize
from bench.run import GENERATOR, Sample, run_generator, seed
from bench.workloads import WORKLOADS

SMOKE = {"total": 200, "clients": 4, "conns": 2, "watchers": 20, "streams": 4, "puts": 10, "put-rate": 0}


@pytest.fixture(scope="module")
def ours(ours_server):
    if not GENERATOR.exists():
        pytest.fail(f"{GENERATOR} is missing: `make develop` builds it")
    return ours_server


@pytest.mark.parametrize("w", WORKLOADS, ids=lambda w: w.name)
def test_workload_runs(ours, w) -> None:
    argv = w.argv(quick=True)
    for k, v in SMOKE.items():
        if f"--{k}" in argv:
            argv[argv.index(f"--{k}") + 1] = str(v)
    seed([ours.endpoint], w.seed_keys)
    res = run_generator(argv, [ours.endpoint], timeout=60)
    assert "error" not in res, res
    assert res["requests"] > 0 and res["errors"] == 0, res
    assert res["latency_ms"]["p50"] > 0, res
    assert res["generator_cpu_seconds"] >= 0


UNARY = ["put", "range", "txn-put", "stm"]  # written straight onto h2 streams by the generator


@pytest.mark.parametrize("workload", UNARY)
def test_unary_calls_against_etcd(etcd_server, workload) -> None:
    """The generator's own gRPC framing speaks to grpc-go: every call answered and its message decoded (stm
    loops until its Txn decodes as succeeded, on the mod_revision its Range decoded)."""
    seed([etcd_server.endpoint], ("foo",))
    res = run_generator([workload, "--total", "50", "--clients", "4", "--conns", "2"], [etcd_server.endpoint], 60)
    assert "error" not in res, res
    assert (res["requests"], res["errors"]) == (50, 0), res


def test_unary_error_status_counts_as_error(ours) -> None:
    """A call answered with a non-zero grpc-status (a Range without a key) is an error, not a request done."""
    res = run_generator(["range", "--key", "", "--total", "5"], [ours.endpoint], timeout=60)
    assert (res["requests"], res["errors"]) == (0, 5), res


def test_report_ratios_and_table() -> None:
    name = WORKLOADS[0].name
    samples = [
        Sample("etcd", 1, 0, name, {"rps": 100.0}),
        Sample("ours", 1, 0, name, {"rps": 150.0}),
        Sample("etcd", 1, 1, name, {"rps": 200.0}),
        Sample("ours", 1, 1, name, {"rps": 200.0}),
    ]
    (row,) = summarize(samples)
    assert row["ratios"] == [1.5, 1.0]
    assert row["ratio"] == 1.25
    assert row["kinds"]["etcd"]["median"] == 150.0
    table = markdown([row], ["etcd", "ours"])
    assert "**1.25** (1.50, 1.00; higher is better)" in table
