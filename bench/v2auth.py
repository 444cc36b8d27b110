"""``python -m bench.v2auth`` (``make bench-v2auth``): what v2 auth costs a v2 client, ours beside etcd 3.4.23.

One fresh member of each kind with ``--enable-v2`` serves GETs of one key from 8 client threads, each on a
keep-alive connection, for ``--seconds``: with auth off, then with auth on as a user sending HTTP Basic
credentials (etcd checks the bcrypt hash on every request), then as the guest role. The client is Python
(stdlib http.client), so a rate near its ceiling says "client-bound", not the server's limit.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from bench.progress import Progress
from bench.run import SERVER_FLAGS, save_result
from harness.servers import start_server
from harness.v2client import request

KINDS = ("ours", "etcd")
MODES = ("auth off", "auth on, Basic user", "auth on, guest")
THREADS = 8


def rate(endpoint: str, headers: dict[str, str], seconds: float) -> float:
    """GETs per second of one key from THREADS keep-alive connections (every answer must be 200)."""
    host, port = endpoint.rsplit(":", 1)
    stop = time.monotonic() + seconds
    counts = [0] * THREADS

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while time.monotonic() < stop:
            conn.request("GET", "/v2/keys/app/x", headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"GET answered {r.status}")
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def one(kind: str, work: Path, seconds: float, bar: Progress) -> dict[str, float]:
    srv = start_server(kind, work, [*SERVER_FLAGS, "--enable-v2"])
    try:
        ep = srv.endpoint
        out: dict[str, float] = {}
        assert request(ep, "PUT", "/v2/keys/app/x", form={"value": "1"}).status in (200, 201)
        out[MODES[0]] = rate(ep, {}, seconds)
        bar.step(f"{kind}: {MODES[0]}")
        for path, doc in (
            ("/v2/auth/users/root", {"user": "root", "password": "rootpw"}),
            ("/v2/auth/users/alice", {"user": "alice", "password": "apw", "roles": ["app"]}),
            ("/v2/auth/roles/app", {"role": "app", "permissions": {"kv": {"read": ["/app/*"], "write": []}}}),
        ):
            assert request(ep, "PUT", path, json_body=json.dumps(doc)).status in (200, 201), path
        assert request(ep, "PUT", "/v2/auth/enable").status == 200
        basic = {"Authorization": "Basic " + base64.b64encode(b"alice:apw").decode()}
        out[MODES[1]] = rate(ep, basic, seconds)
        bar.step(f"{kind}: {MODES[1]}")
        out[MODES[2]] = rate(ep, {}, seconds)
        bar.step(f"{kind}: {MODES[2]}")
        return out
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.v2auth", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pyetcd-bench-v2auth-"))
    bar = Progress(len(KINDS) * len(MODES))
    got = {kind: one(kind, work / kind, a.seconds, bar) for kind in KINDS}
    lines = [
        f"# v2 auth cost, {datetime.date.today()} (GET of one key, {THREADS} Python client threads on keep-alive "
        f"connections, {a.seconds:g} s each; one member of each kind, same run)",
        "",
        "| mode | ours (req/s) | etcd 3.4.23 (req/s) | ours/etcd |",
        "|---|---|---|---|",
    ]
    for m in MODES:
        o, e = got["ours"][m], got["etcd"][m]
        lines.append(f"| {m} | {o:,.0f} | {e:,.0f} | {o / e:.2f}× |")
    text = "\n".join(lines) + "\n"
    save_result("v2auth", text)


if __name__ == "__main__":
    main()
