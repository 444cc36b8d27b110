"""``python -m bench.probe generators|xl``: two diagnostics behind the suite's figures, outside its report.

- ``generators``: put with 1,000 clients over 100 connections against one member of each kind, first from one
  ``pyetcd-bench`` process, then from two with half the clients, connections and puts each, at the same
  time. If two processes reach no more than one, the generator is not what limits the rate (issue 6,
  acceptance 3).
- ``xl``: ``etcdctl check perf --load=xl`` (``--load`` to change) against one member of each kind, with
  what the server's ``/metrics`` and the kernel tell about the run: writes per WAL fsync, the mean fsync,
  CPU per write of the server and of etcdctl; then, on the same member, one client's put latency (p50) with
  check perf's key and value sizes. The kind ``ours-nofsync`` is ours with ``--unsafe-no-fsync``: the same
  run with the disk's sync taken away. The kind ``null`` is ``pyetcd-bench null-server``, a KV service over
  tonic and HTTP/2 like ours that stores nothing and answers at once: what etcdctl drives on this machine
  against a server that costs nothing. The server's CPU includes etcdctl's closing delete of its prefix, for
  every kind alike.

Both print a Markdown table. Kinds run in turn (A B C), ``--rounds`` times, each on a fresh member with the
suite's settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.report import number, table
from bench.run import GENERATOR, SERVER_FLAGS, check_perf, ensure_generator, run_generator
from bench.scale import fresh_member
from bench.workloads import WORKLOADS

PUT_1000 = next(w for w in WORKLOADS if w.name == "put 1000 clients")
# One client's put latency with check perf's key and value sizes: how soon a server answers, which sets how
# often etcdctl's producer is woken.
PUT_1 = next(w for w in WORKLOADS if w.name == "put 1 client p50 (ms)")
PUT_1_CHECK_PERF_SIZES = dataclasses.replace(PUT_1, args={**PUT_1.args, "key-size": 256, "val-size": 1024})
# The counters of /metrics the xl probe reads (no labels on any of them, in etcd as in ours).
COUNTERS = (
    "etcd_server_proposals_committed_total",
    "etcd_disk_wal_fsync_duration_seconds_count",
    "etcd_disk_wal_fsync_duration_seconds_sum",
)
COMMITTED = COUNTERS[0]
VARIANTS = {"ours-nofsync": ("ours", ["--unsafe-no-fsync"])}


def counters(text: str, names: tuple[str, ...] = COUNTERS) -> dict[str, float]:
    """The named unlabelled samples of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[name] = float(value)
    return out


def proc_cpu_seconds(pid: int) -> float:
    """User plus system CPU of a running process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User plus system CPU of the children this process has waited for."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@contextmanager
def member(kind: str) -> Iterator[tuple[str, int]]:
    """One fresh member of ``kind`` (or a variant of it): its endpoint and pid."""
    base, extra = VARIANTS.get(kind, (kind, []))
    with fresh_member(base, Path(tempfile.mkdtemp(prefix="pyetcd-probe-")), SERVER_FLAGS + extra) as (_, m):
        assert m.proc is not None
        yield m.endpoint, m.proc.pid


Scrape = Callable[[], dict[str, float]]


@contextmanager
def null_server() -> Iterator[tuple[str, int, Scrape]]:
    """``pyetcd-bench null-server`` on a free port: its endpoint, pid, and a scrape giving its Put count as
    ``COMMITTED``."""
    argv = [str(GENERATOR), "null-server"]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as p:
        assert p.stdin is not None and p.stdout is not None
        stdin, stdout = p.stdin, p.stdout

        def scrape() -> dict[str, float]:
            stdin.write("\n")
            stdin.flush()
            return {COMMITTED: float(json.loads(stdout.readline())["puts"])}

        try:
            yield stdout.readline().split()[1], p.pid, scrape
        finally:
            p.kill()


@contextmanager
def target(kind: str) -> Iterator[tuple[str, int, Scrape]]:
    """The server of ``kind`` for the xl probe: endpoint, pid and how to read its counters."""
    if kind == "null":
        with null_server() as t:
            yield t
        return
    with member(kind) as (endpoint, pid):

        def scrape() -> dict[str, float]:
            return counters(urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=10).read().decode())

        yield endpoint, pid, scrape


def xl_figures(
    rps: float, before: dict[str, float], after: dict[str, float], server_cpu: float, ctl_cpu: float
) -> dict:
    """Per-write figures of a check perf run from the counters and CPU seconds spent during it."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in COUNTERS}
    writes = d[COMMITTED] or 1.0
    syncs = d["etcd_disk_wal_fsync_duration_seconds_count"]
    return {
        "rps": rps,
        "writes_per_fsync": writes / syncs if syncs else None,
        "fsync_mean_us": d["etcd_disk_wal_fsync_duration_seconds_sum"] / syncs * 1e6 if syncs else None,
        "server_cpu_us_per_write": server_cpu / writes * 1e6,
        "etcdctl_cpu_us_per_write": ctl_cpu / writes * 1e6,
    }


def xl_once(kind: str, load: str) -> dict:
    with target(kind) as (endpoint, pid, scrape):
        before, cpu0, ctl0 = scrape(), proc_cpu_seconds(pid), children_cpu_seconds()
        res = check_perf([endpoint], load)
        after, cpu1, ctl1 = scrape(), proc_cpu_seconds(pid), children_cpu_seconds()
        if "error" in res:
            return res
        one = run_generator(PUT_1_CHECK_PERF_SIZES.argv(quick=False), [endpoint])
    p50 = one.get("latency_ms", {}).get("p50")
    return {**xl_figures(res["rps"], before, after, cpu1 - cpu0, ctl1 - ctl0), "put_1_client_p50_us": p50 and p50 * 1e3}


def generators_once(endpoint: str, procs: int, clients: int = 1000, conns: int = 100, total: int = 200_000) -> dict:
    """``procs`` generator processes at once running the suite's put workload, splitting clients, connections and
    puts evenly."""
    split = {"clients": clients // procs, "conns": conns // procs, "total": total // procs}
    argv = dataclasses.replace(PUT_1000, args={**PUT_1000.args, **split}).argv(quick=False)
    start = time.monotonic()
    ps = [
        subprocess.Popen([str(GENERATOR), *argv, "--endpoints", endpoint], stdout=subprocess.PIPE, text=True)
        for _ in range(procs)
    ]
    outs = [json.loads(p.communicate(timeout=600)[0]) for p in ps]
    elapsed = time.monotonic() - start
    requests = sum(o.get("requests", 0) for o in outs)
    return {
        "procs": procs,
        "requests": requests,
        "errors": sum(o.get("errors", 0) for o in outs),
        "rps": requests / elapsed,
        "generator_cpu_us_per_request": sum(o["generator_cpu_seconds"] for o in outs) / max(requests, 1) * 1e6,
    }


def fmt(v: float | None) -> str:
    return "n/a" if v is None else number(v)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__)
    ap.add_argument("probe", choices=["generators", "xl"])
    ap.add_argument("--kinds", default=None, help="default: etcd,ours (generators); etcd,ours,ours-nofsync,null (xl)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--load", default="xl", help="check perf load of the xl probe")
    a = ap.parse_args(argv)
    rows: list[list[str]] = []
    ensure_generator()
    if a.probe == "generators":
        header = ["kind", "round", "generator processes", "puts/s", "generator CPU µs/put", "errors"]
        for r in range(a.rounds):
            for kind in (a.kinds or "etcd,ours").split(","):
                with member(kind) as (endpoint, _):
                    for procs in (1, 2):
                        g = generators_once(endpoint, procs)
                        row = [kind, str(r + 1), str(procs), fmt(g["rps"]), fmt(g["generator_cpu_us_per_request"])]
                        rows.append([*row, str(g["errors"])])
                        print(" ".join(rows[-1]), file=sys.stderr, flush=True)
    else:
        header = ["kind", "round", f"check perf {a.load} writes/s", "writes per fsync", "mean fsync µs"]
        header += ["server CPU µs/write", "etcdctl CPU µs/write", "put 1 client p50 µs"]
        for r in range(a.rounds):
            for kind in (a.kinds or "etcd,ours,ours-nofsync,null").split(","):
                x = xl_once(kind, a.load)
                if "error" in x:
                    rows.append([kind, str(r + 1), x["error"][-80:].replace("\n", " ")] + [""] * 5)
                else:
                    rows.append([kind, str(r + 1)] + [fmt(v) for v in x.values()])
                print(" ".join(rows[-1]), file=sys.stderr, flush=True)
    sys.stdout.write(table(header, rows))


if __name__ == "__main__":
    main()
