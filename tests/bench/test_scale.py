"""The memory, size and recovery part of the benchmark suite (bench/scale.py), without servers: figure names and
the metrics the report reads them by, the generator arguments that load new keys at each checkpoint, parsing
``/proc/<pid>/status`` and ``etcdctl check datascale``, the per-watcher arithmetic, and "n/a" in the report for a
kind whose figure failed."""

from __future__ import annotations

import pytest

from bench.report import markdown, summarize
from bench.run import SERVER_FLAGS, Sample
from bench.scale import (
    FULL,
    LOAD,
    QUICK,
    RECOVERY_KEY_SPACE,
    LoadFailed,
    checked_load,
    data_name,
    datascale_name,
    human,
    load_argvs,
    metric_for,
    parse_datascale,
    per_watcher_kb,
    recovery_argv,
    recovery_name,
    rss_name,
    scale_steps,
    selected,
    status_kb,
    watcher_name,
    with_flag,
)


def generator_keys(argv: list[str]) -> list[bytes]:
    """pyetcd-bench's keys for a ``put --sequential-keys`` run (``key_for`` in native/bench/src/workloads.rs):
    request ``i`` writes ``<key-prefix><i % key-space-size, zero-padded to key-size>``."""
    assert argv[0] == "put" and "--sequential-keys" in argv
    args = dict(zip(argv[1::2], argv[2::2], strict=False))
    space, size, prefix = int(args["--key-space-size"]), int(args["--key-size"]), args.get("--key-prefix", "")
    return [f"{prefix}{i % space:0{size}d}".encode() for i in range(int(args["--total"]))]


def test_human_counts() -> None:
    assert [human(n) for n in (999, 2_000, 2_500, 10_000, 100_000, 1_000_000)] == [
        "999", "2k", "2.5k", "10k", "100k", "1M",
    ]  # fmt: skip


def test_names_are_the_reports_and_map_to_metrics() -> None:
    assert rss_name(100_000) == "RSS at 100k keys (MB)"
    assert rss_name(1_000_000) == "RSS at 1M keys (MB)"
    assert data_name(1_000_000) == "data dir at 1M keys (MB)"
    assert watcher_name(10_000) == "memory per watcher, 10k watchers (KB)"
    assert recovery_name(1_000_000) == "recovery: first Range after restart with a 1M-entry log (s)"
    assert datascale_name("s") == "check datascale s (MB)"
    assert [metric_for(n(10)) for n in (rss_name, data_name, watcher_name, recovery_name)] == [
        "rss_mb", "data_mb", "kb_per_watcher", "seconds",
    ]  # fmt: skip
    assert metric_for(datascale_name("s")) == "memory_mb"
    assert metric_for("put 1000 clients") is None


@pytest.mark.parametrize("checkpoints", [(10, 100), (7, 50, 51), QUICK.keys])
def test_loads_write_new_keys_up_to_each_checkpoint(checkpoints: tuple[int, ...]) -> None:
    argvs = load_argvs(checkpoints)
    seen: set[bytes] = set()
    for n, argv in zip(checkpoints, argvs, strict=True):
        keys = generator_keys(argv)
        assert not seen & set(keys), "a later load rewrote an earlier key"
        seen |= set(keys)
        assert len(seen) == n
    assert {len(k) for k in seen} == {8}
    for argv in argvs:
        args = dict(zip(argv[1::2], argv[2::2], strict=False))
        assert args["--val-size"] == "256" and args["--clients"] == "100" and args["--conns"] == "10"


def test_full_loads_stay_eight_byte_and_distinct() -> None:
    first, second = load_argvs(FULL.keys)
    a = dict(zip(first[1::2], first[2::2], strict=False))
    b = dict(zip(second[1::2], second[2::2], strict=False))
    assert (a["--total"], a["--key-space-size"], a["--key-size"]) == ("100000", "100000", "8")
    assert "--key-prefix" not in a  # keys 00000000..00099999
    assert (b["--total"], b["--key-space-size"], b["--key-prefix"], b["--key-size"]) == ("900000", "900000", "1", "7")
    # keys 10000000..10899999: the generator pads to 7 digits after the prefix
    assert f"1{899_999:07d}" == "10899999"


@pytest.mark.parametrize("bad", [(100, 100), (100, 50), tuple(range(1, 11)), (10**7 + 1,)])
def test_load_argvs_rejects_what_it_cannot_keep_distinct(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        load_argvs(bad)


def test_recovery_load_and_flags() -> None:
    argv = recovery_argv(1_000_000)
    args = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert argv[0] == "put" and "--sequential-keys" not in argv
    assert args["--total"] == "1000000" and args["--key-space-size"] == str(RECOVERY_KEY_SPACE)
    assert int(args["--clients"]) == LOAD["clients"]
    flags = with_flag(SERVER_FLAGS, "--snapshot-count", "10000000")
    assert flags[flags.index("--snapshot-count") + 1] == "10000000"
    assert len(flags) == len(SERVER_FLAGS) and SERVER_FLAGS[SERVER_FLAGS.index("--snapshot-count") + 1] == "10000"
    assert with_flag(["--a", "1"], "--b", "2") == ["--a", "1", "--b", "2"]


def test_checked_load() -> None:
    ok = {"requests": 100, "errors": 0, "seconds": 2.0, "rps": 50.0, "latency_ms": {}}
    assert checked_load(ok, 100) == {"requests": 100, "seconds": 2.0, "rps": 50.0}
    with pytest.raises(LoadFailed, match="99 of 100"):
        checked_load({**ok, "requests": 99, "errors": 1}, 100)
    with pytest.raises(LoadFailed, match="connect"):
        checked_load({"error": "connect 127.0.0.1:1: refused"}, 100)


STATUS = """Name:\tetcd
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t11437764 kB
VmHWM:\t  600000 kB
VmRSS:\t  524288 kB
RssAnon:\t  409600 kB
RssFile:\t  114688 kB
RssShmem:\t       0 kB
Threads:\t12
"""


def test_status_kb() -> None:
    assert status_kb(STATUS) == {"VmRSS": 524288, "RssAnon": 409600, "RssFile": 114688}
    assert status_kb("Name:\tzombie\nState:\tZ (zombie)\n") == {}


def test_per_watcher_kb() -> None:
    assert per_watcher_kb(100.0, 110.0, 10_000) == pytest.approx(1.024)
    assert per_watcher_kb(100.0, 99.0, 1024) == pytest.approx(-1.0)


# What etcdctl 3.4.23 printed against etcd 3.4.23 (the progress bar redraws with \r).
DATASCALE_PASS = (
    "Start data scale check for work load [10000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients].\n"
    "\r 0 / 10000    0.00%\r 1050 / 10000   10.50% 00m01s\r 5792 / 10000   57.92%\r 9471 / 10000   94.71%"
    "\r 10000 / 10000  100.00% 1s\nPASS: Approximate system memory used : 49.80 MB.\n"
)
# ...and against a server whose client port answers /metrics without process_resident_memory_bytes.
DATASCALE_NO_METRIC = (
    "could not find: process_resident_memory_bytes\n"
    "FAIL: Could not read process_resident_memory_bytes before the put operations.\n"
)


def test_parse_datascale_pass() -> None:
    assert parse_datascale(0, DATASCALE_PASS, "") == {
        "pairs": 10000, "kv_bytes": 1024, "clients": 50, "memory_mb": 49.8,
    }  # fmt: skip
    negative = DATASCALE_PASS.replace("49.80", "-3.50")
    assert parse_datascale(0, negative, "")["memory_mb"] == -3.5


def test_parse_datascale_without_metrics_is_an_error() -> None:
    res = parse_datascale(1, DATASCALE_NO_METRIC, "")
    assert res == {
        "error": "rc=1: could not find: process_resident_memory_bytes | "
        "FAIL: Could not read process_resident_memory_bytes before the put operations."
    }
    fail = DATASCALE_NO_METRIC.splitlines(keepends=True)[1]
    refused = "fetch error: Get http://127.0.0.1:1234/metrics: dial tcp: connection refused\n" + fail
    res = parse_datascale(1, refused, '{"level":"warn","msg":"retrying of unary invoker failed"}\n')
    assert res["error"].startswith("rc=1: fetch error: Get http://127.0.0.1:1234/metrics")
    assert "retrying" not in res["error"]
    assert parse_datascale(2, "", "Error: unknown command\n") == {"error": "rc=2: Error: unknown command"}


def test_steps_and_only() -> None:
    assert scale_steps(["etcd", "ours"], quick=True, only=None) == 2 * (3 + 2 + 1 + 1)
    assert [p.slug for p in selected(FULL, ["RSS"])] == ["keys"]
    assert [p.slug for p in selected(FULL, ["watcher", "datascale"])] == ["watchers", "datascale"]
    assert selected(FULL, ["put"]) == []
    assert scale_steps(["etcd"], quick=False, only=["recovery"]) == 1


def test_report_rows_order_ratio_and_na() -> None:
    rss, ds = rss_name(1_000_000), datascale_name("s")
    samples = [
        Sample("etcd", 1, 0, rss, {"rss_mb": 400.0}),
        Sample("etcd", 1, 0, ds, {"memory_mb": 50.0}),
        Sample("ours", 1, 0, rss, {"rss_mb": 300.0}),
        Sample("ours", 1, 0, ds, {"error": "rc=1: FAIL: Could not read process_resident_memory_bytes"}),
        Sample("etcd", 1, 0, "put 1000 clients", {"rps": 1.0}),
    ]
    rows = summarize(samples)
    assert [r["workload"] for r in rows] == ["put 1000 clients", rss, ds]
    by_name = {r["workload"]: r for r in rows}
    assert by_name[rss]["ratio"] == 0.75 and by_name[rss]["higher_is_better"] is False
    assert by_name[ds]["ratio"] is None and "process_resident_memory_bytes" in by_name[ds]["errors"]["ours"]
    table = markdown(rows, ["etcd", "ours"])
    assert f"| 1 | {rss} | 400 (400–400) | 300 (300–300) | **0.75** (0.75; lower is better) |" in table
    assert f"| 1 | {ds} | 50 (50–50) | n/a | — |" in table
