"""``/metrics`` on the client port: Prometheus text with etcd's names, enough for ``etcdctl check datascale``.

The text is parsed line by line (``# HELP``/``# TYPE`` comments, then ``name value`` samples); the figures must
agree with what the gRPC API says. ``check datascale --load=s`` (10k puts of 1 KiB from 50 clients) reads
``process_resident_memory_bytes`` before and after and must pass, and it deletes what it wrote.
"""

from __future__ import annotations

import re
import urllib.request

from harness import etcdctl
from harness.servers import Server

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def parse(text: str) -> dict[str, float]:
    """Every unlabelled sample; a malformed line fails the test."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert line == "" or line.startswith(("# HELP ", "# TYPE ")), line
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        out[m.group(1)] = float(m.group(3))
    return out


def scrape(endpoint: str) -> tuple[str, dict[str, float]]:
    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=10) as r:
        return r.headers["Content-Type"], parse(r.read().decode())


def test_metrics_names_and_values(ours_server: Server) -> None:
    ctype, m = scrape(ours_server.endpoint)
    assert ctype.startswith("text/plain")
    assert m["etcd_server_has_leader"] == 1 and m["etcd_server_is_leader"] == 1
    assert m["etcd_server_is_learner"] == 0
    assert m["process_resident_memory_bytes"] > 1 << 20
    assert 0 < m["etcd_mvcc_db_total_size_in_use_in_bytes"] <= m["etcd_mvcc_db_total_size_in_bytes"]
    before = m["etcd_server_proposals_applied_total"]
    assert etcdctl.run(ours_server.endpoint, "put", "metrics/k", "v").rc == 0
    _, after = scrape(ours_server.endpoint)
    assert after["etcd_server_proposals_applied_total"] > before
    assert after["etcd_server_proposals_committed_total"] >= after["etcd_server_proposals_applied_total"]
    assert after["etcd_server_leader_changes_seen_total"] == 1
    assert after["etcd_server_proposals_pending"] == 0 and after["etcd_server_proposals_failed_total"] == 0
    keys = after["etcd_debugging_mvcc_keys_total"]
    assert etcdctl.run(ours_server.endpoint, "put", "metrics/k2", "v").rc == 0
    _, more = scrape(ours_server.endpoint)
    assert more["etcd_debugging_mvcc_keys_total"] == keys + 1


def test_durability_histograms(ours_server: Server) -> None:
    """The WAL fsync and backend commit histograms count what the server did, in etcd's buckets."""
    with urllib.request.urlopen(f"http://{ours_server.endpoint}/metrics", timeout=10) as r:
        text = r.read().decode()
    for name in ("etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds"):
        assert f"# TYPE {name} histogram" in text
        buckets = re.findall(rf'^{name}_bucket{{le="([^"]+)"}} (\d+)$', text, re.M)
        assert [le for le, _ in buckets][:2] == ["0.001", "0.002"] and buckets[-1][0] == "+Inf"
        counts = [int(c) for _, c in buckets]
        assert counts == sorted(counts) and counts[-1] > 0
        assert re.search(rf"^{name}_count {counts[-1]}$", text, re.M)


def test_check_datascale_passes(ours_server: Server) -> None:
    r = etcdctl.run(ours_server.endpoint, "check", "datascale", "--load=s", timeout=240)
    assert r.rc == 0, f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert re.search(r"PASS: Approximate system memory used : [\d.]+ MB", r.stdout), r.stdout
    left = etcdctl.run(ours_server.endpoint, "get", "--prefix", "/etcdctl-check-datascale/", "--keys-only")
    assert (left.rc, left.stdout) == (0, "")


def handled(text: str, method: str, code: str) -> int:
    m = re.search(
        rf'^grpc_server_handled_total{{grpc_code="{code}",grpc_method="{method}",grpc_service="[^"]+",'
        rf'grpc_type="[^"]+"}} (\d+)$',
        text,
        re.M,
    )
    assert m, f"no grpc_server_handled_total for {method} {code}"
    return int(m.group(1))


def test_grpc_server_handled_total(ours_server: Server) -> None:
    """Each RPC is counted once by method and code, as go-grpc-prometheus counts it for etcd."""

    def text() -> str:
        with urllib.request.urlopen(f"http://{ours_server.endpoint}/metrics", timeout=10) as r:
            return r.read().decode()

    before = text()
    assert etcdctl.run(ours_server.endpoint, "get", "metrics/none").rc == 0
    assert etcdctl.run(ours_server.endpoint, "put", "", "v").rc != 0  # InvalidArgument: key is not provided
    after = text()
    assert handled(after, "Range", "OK") == handled(before, "Range", "OK") + 1
    assert handled(after, "Put", "InvalidArgument") == handled(before, "Put", "InvalidArgument") + 1
    assert handled(after, "Watch", "OK") == handled(before, "Watch", "OK")
