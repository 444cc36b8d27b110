"""Running the suite: servers up in A B A B order, the generator against each, results collected."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.progress import Progress
from bench.workloads import CHECK_PERF, WORKLOADS, Workload

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness import etcdctl  # noqa: E402
from harness.cluster import Cluster  # noqa: E402
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402

GENERATOR = REPO / "target" / "release" / "pyetcd-bench"
# The same settings for every kind (etcd's defaults spelled out where they differ between versions).
SERVER_FLAGS = ["--snapshot-count", "10000", "--quota-backend-bytes", str(8 << 30)]
KIND_LABELS = {"etcd": "etcd 3.4.23", "etcd35": "etcd 3.5.1", "ours": "pyetcd_fast"}


@dataclass
class Sample:
    kind: str
    size: int
    round: int
    workload: str
    result: dict


def save_result(name: str, text: str) -> Path:
    """Prints a result table and writes it to ``bench/results/<today>-<name>.md``; returns the file."""
    import datetime

    out = REPO / "bench" / "results" / f"{datetime.date.today()}-{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out.relative_to(REPO)}")
    return out


def ensure_generator() -> Path:
    """Builds ``pyetcd-bench`` (release) if it is not there yet."""
    if not GENERATOR.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "etcd_bench"], cwd=REPO, check=True)
    return GENERATOR


def run_generator(argv: list[str], endpoints: list[str], timeout: float = 600) -> dict:
    cmd = [str(GENERATOR), *argv, "--endpoints", ",".join(endpoints)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        return {"error": p.stderr.strip()[-500:]}
    return json.loads(p.stdout)


def seed(endpoints: list[str], keys: tuple[str, ...]) -> None:
    with grpc.insecure_channel(endpoints[0]) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for k in keys:
            kv.Put(rpc_pb2.PutRequest(key=k.encode(), value=b"bar"), timeout=10)


def check_perf(endpoints: list[str], load: str) -> dict:
    r = etcdctl.run(",".join(endpoints), "check", "perf", f"--load={load}", timeout=300)
    m = re.search(r"(?:Throughput is|Throughput too low:) (\d+) writes/s", r.stdout)
    return {"rps": float(m.group(1))} if m else {"error": (r.stdout + r.stderr)[-500:]}


def status_kb(text: str) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile (kB) from the text of ``/proc/<pid>/status``."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            out[name] = int(rest.split()[0])
    return out


def rss_mb(pid: int) -> float:
    """The process's VmRSS in MB (0 once it has exited)."""
    try:
        return status_kb(Path(f"/proc/{pid}/status").read_text()).get("VmRSS", 0) / 1024
    except OSError:
        return 0.0


def dir_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total / (1 << 20)


def plan(kinds: list[str], sizes: list[int], rounds: int) -> list[tuple[int, int, str]]:
    """(size, round, kind) in A B A B order: every round runs each kind once, the order alternating."""
    out = []
    for size in sizes:
        for r in range(rounds):
            order = kinds if r % 2 == 0 else list(reversed(kinds))
            out += [(size, r, k) for k in order]
    return out


def selected(only: list[str] | None, with_check_perf: bool) -> tuple[list[Workload], dict[str, str]]:
    """The workloads and ``check perf`` loads whose names contain one of ``only`` (all without ``only``)."""
    workloads = [w for w in WORKLOADS if not only or any(o in w.name for o in only)]
    perf = {k: v for k, v in CHECK_PERF.items() if with_check_perf and (not only or any(o in k for o in only))}
    return workloads, perf


def suite_steps(kinds: list[str], sizes: list[int], rounds: int, only: list[str] | None, with_check_perf: bool) -> int:
    """How many progress steps ``run_suite`` takes."""
    workloads, perf = selected(only, with_check_perf)
    return len(plan(kinds, sizes, rounds)) * (len(workloads) + len(perf))


def run_suite(
    kinds: list[str],
    sizes: list[int],
    rounds: int,
    quick: bool,
    only: list[str] | None,
    with_check_perf: bool,
    progress: Progress | None = None,
) -> list[Sample]:
    """Every selected workload against every kind and size; ``progress`` (shared with later parts) or a new one."""
    workloads, perf = selected(only, with_check_perf)
    if not workloads and not perf:
        return []
    ensure_generator()
    steps = plan(kinds, sizes, rounds)
    progress = progress or Progress(suite_steps(kinds, sizes, rounds, only, with_check_perf))
    samples: list[Sample] = []
    base = Path(tempfile.mkdtemp(prefix="pyetcd-bench-"))
    try:
        for size, r, kind in steps:
            workdir = base / f"{kind}-{size}-{r}"
            c = Cluster(kind, workdir, size, extra_flags=SERVER_FLAGS, token=f"bench-{kind}-{size}-{r}")
            c.start()
            endpoints = [m.endpoint for m in c.members]
            try:
                for w in workloads:
                    seed(endpoints, w.seed_keys)
                    res = run_generator(w.argv(quick), endpoints)
                    samples.append(Sample(kind, size, r, w.name, res))
                    progress.step(f"{KIND_LABELS.get(kind, kind)} x{size} round {r + 1}: {w.name}")
                for name, load in perf.items():
                    samples.append(Sample(kind, size, r, name, check_perf(endpoints, load)))
                    progress.step(f"{KIND_LABELS.get(kind, kind)} x{size} round {r + 1}: {name}")
                procs = [m.proc for m in c.members if m.proc is not None]
                usage = {
                    "rss_mb": sum(rss_mb(p.pid) for p in procs),
                    "data_mb": sum(dir_mb(m.data_dir) for m in c.members),
                }
                samples.append(Sample(kind, size, r, "memory", usage))
            finally:
                c.stop_all()
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return samples
