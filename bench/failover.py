"""``python -m bench.failover``: how long a cluster is without a leader after its leader is killed, ours beside etcd.

For each kind in turn (``--kinds``, default ours then etcd 3.4.23), a fresh cluster of ``--members`` members
with the harness's timing (100 ms heartbeat, 1 s election timeout, as etcd's defaults) has its leader killed
with SIGKILL ``--kills`` times; each time, the figure is the seconds from the kill until every surviving member's
Status names the same new leader (polled every few milliseconds); the killed member is then restarted and the
cluster settles before the next kill. Prints each kill's figure and a Markdown table of min, median and max per
kind, and the ratio of medians ours/etcd. Not part of the test command or of ``make bench``'s report.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.report import table
from bench.run import REPO  # noqa: F401  (puts tests/ on sys.path)
from harness.cluster import Cluster

SETTLE = 1.5  # seconds after the restarted member rejoins, so the next kill starts from a steady cluster


def failovers(kind: str, members: int, kills: int) -> list[float]:
    """Seconds from each kill -9 of the leader until the survivors agree on a new one."""
    out: list[float] = []
    with tempfile.TemporaryDirectory(prefix=f"failover-{kind}-") as d:
        c = Cluster(kind, Path(d), members).start()
        try:
            for _ in range(kills):
                old, _ = c.wait_leader()
                t0 = time.monotonic()
                c.kill(old)
                c.wait_leader(exclude=[old], timeout=30)
                out.append(time.monotonic() - t0)
                print(f"{kind}: a new leader {out[-1]:.2f} s after the kill", flush=True)
                c.start_member(old)
                c.wait_leader(timeout=30)
                time.sleep(SETTLE)
        finally:
            c.stop_all()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    ap.add_argument("--kinds", default="ours,etcd", help="comma-separated server kinds, run in turn")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--kills", type=int, default=6)
    args = ap.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    results = {k: failovers(k, args.members, args.kills) for k in kinds}
    rows = [
        [k, str(len(v)), f"{min(v):.2f}", f"{statistics.median(v):.2f}", f"{max(v):.2f}"] for k, v in results.items()
    ]
    print()
    print(table(["kind", "kills", "min (s)", "median (s)", "max (s)"], rows))
    if "ours" in results and "etcd" in results:
        ratio = statistics.median(results["ours"]) / statistics.median(results["etcd"])
        print(f"\nmedian ours/etcd: {ratio:.2f}x")


if __name__ == "__main__":
    main()
