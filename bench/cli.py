"""``python -m bench [--quick] [--rounds N] [--kinds etcd,ours] [--sizes 1,3] [--only put,watch] [--[no-]scale]``.

The workloads (:mod:`bench.run`) run first, then the memory, size and recovery figures (:mod:`bench.scale`), at
reduced sizes with ``--quick`` (about a minute and a half for two kinds) and skipped with ``--no-scale``;
``--only`` filters both by name.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

from bench.progress import Progress
from bench.report import write
from bench.run import REPO, run_suite, suite_steps
from bench.scale import run_scale, scale_steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs, one round, no check perf (< 5 minutes)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per kind (default 3; 1 with --quick)")
    ap.add_argument("--kinds", default=None, help="server kinds: etcd (3.4.23), etcd35 (3.5.1), ours")
    ap.add_argument("--sizes", default="1,3", help="cluster sizes")
    ap.add_argument("--only", default="", help="comma-separated substrings of workload names")
    ap.add_argument(
        "--scale",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="memory per key and per watcher, data dir size, recovery time, check datascale (reduced with --quick)",
    )
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    a = ap.parse_args(argv)
    rounds = a.rounds or (1 if a.quick else 3)
    kinds = (a.kinds or ("etcd,ours" if a.quick else "etcd,etcd35,ours")).split(",")
    sizes = [int(s) for s in a.sizes.split(",")]
    only = [o for o in a.only.split(",") if o]
    scale = a.scale
    with_check_perf = not a.quick
    progress = Progress(
        suite_steps(kinds, sizes, rounds, only, with_check_perf) + (scale_steps(kinds, a.quick, only) if scale else 0)
    )
    samples = run_suite(kinds, sizes, rounds, a.quick, only, with_check_perf, progress)
    if scale:
        samples += run_scale(kinds, a.quick, only, progress)
    meta = {
        "mode": "quick" if a.quick else "full",
        "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": rounds,
        "kinds": kinds,
        "sizes": sizes,
        "scale": scale,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
    }
    path = write(samples, kinds, Path(a.out), meta)
    sys.stdout.write(path.read_text())
