"""``etcdctl check perf --load=m`` against our server: 60 s of writes from 200 clients.

etcdctl judges the run itself (throughput at least 90% of the load's target, slowest
request under 500 ms, stddev under 100 ms) and prints a PASS or FAIL line for each
check and a final verdict; its exit code is 0 only when every check passed.
"""

from __future__ import annotations

import pytest

from harness import etcdctl
from harness.servers import Server

PERF_PREFIX = "/etcdctl-check-perf/"


@pytest.mark.slow
def test_check_perf_medium(ours_server: Server) -> None:
    r = etcdctl.run(ours_server.endpoint, "check", "perf", "--load=m", timeout=240)
    verdicts = [line for line in r.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert r.rc == 0 and verdicts and verdicts[-1] == "PASS", f"rc={r.rc}\n{verdicts}\n{r.stderr[-2000:]}"
    assert all(v.startswith("PASS") for v in verdicts), verdicts
    # check perf deletes what it wrote.
    left = etcdctl.run(ours_server.endpoint, "get", "--prefix", PERF_PREFIX, "--keys-only")
    assert (left.rc, left.stdout) == (0, "")
