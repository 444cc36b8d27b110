"""``python -m bench.tls`` (``make bench-tls``): what TLS costs, ours beside real etcd 3.4.23 in one run.

One fresh member of each kind, plaintext and then over TLS (a test CA and a P-256 certificate, the client
verifying it), runs put with 1,000 clients over 100 connections and ``etcdctl check perf --load=xl``. The
table gives each figure, ours/etcd per mode, and how far the TLS ratio is from the plaintext one (the
target: within 10%). Kinds alternate A B B A across rounds so neither always runs first.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import re
import shutil
import tempfile
from pathlib import Path

import grpc

from bench.progress import Progress
from bench.run import SERVER_FLAGS, ensure_generator, run_generator, save_result
from bench.workloads import WORKLOADS
from harness import etcdctl
from harness.certs import CA
from harness.servers import start_server

PUT_1000 = next(w for w in WORKLOADS if w.name == "put 1000 clients")
MODES = ("plaintext", "tls")
KINDS = ("ours", "etcd")


def one(kind: str, mode: str, ca: CA, work: Path, total: int, load: str) -> dict[str, float]:
    pair = ca.issue("server")
    tls = mode == "tls"
    flags = list(SERVER_FLAGS) + (["--cert-file", str(pair.cert), "--key-file", str(pair.key)] if tls else [])
    creds = grpc.ssl_channel_credentials(ca.pair.cert.read_bytes()) if tls else None
    srv = start_server(kind, work, flags, client_scheme="https" if tls else "http", credentials=creds)
    try:
        ep = f"https://{srv.endpoint}" if tls else srv.endpoint
        extra = ["--cacert", str(ca.pair.cert)] if tls else []
        argv = dataclasses.replace(PUT_1000, args={**PUT_1000.args, "total": total}).argv(quick=False)
        put = run_generator(argv + extra, [ep])
        if "error" in put:
            raise RuntimeError(f"{kind} {mode} put: {put['error']}")
        r = etcdctl.run(ep, *extra, "check", "perf", f"--load={load}", timeout=300)
        m = re.search(r"(?:Throughput is|Throughput too low:) (\d+) writes/s", r.stdout)
        if not m:
            raise RuntimeError(f"{kind} {mode} check perf: {(r.stdout + r.stderr)[-400:]}")
        return {"put": float(put["rps"]), "xl": float(m.group(1))}
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--total", type=int, default=100_000, help="puts per put run")
    ap.add_argument("--load", default="xl", help="check perf load")
    a = ap.parse_args(argv)
    ensure_generator()
    work = Path(tempfile.mkdtemp(prefix="pyetcd-bench-tls-"))
    ca = CA(work / "pki")
    runs = [(r, k, m) for r in range(a.rounds) for k in (KINDS if r % 2 == 0 else KINDS[::-1]) for m in MODES]
    got: dict[tuple[str, str], list[dict[str, float]]] = {}
    bar = Progress(len(runs))
    for r, kind, mode in runs:
        bar.step(f"round {r + 1} {kind} {mode}")
        got.setdefault((kind, mode), []).append(one(kind, mode, ca, work / f"{kind}-{mode}-{r}", a.total, a.load))
    med = {key: {m: sorted(x[m] for x in xs)[len(xs) // 2] for m in ("put", "xl")} for key, xs in got.items()}
    lines = [
        f"# TLS cost, {datetime.date.today()} ({a.rounds} rounds, medians; put: {a.total} puts by 1,000 clients "
        f"over 100 connections; check perf --load={a.load})",
        "",
        "| figure | ours plaintext | etcd plaintext | ratio | ours TLS | etcd TLS | ratio | TLS ratio vs plaintext |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, name in (("put", "put 1000 clients (req/s)"), ("xl", f"check perf {a.load} (writes/s)")):
        op, ep_ = med[("ours", "plaintext")][m], med[("etcd", "plaintext")][m]
        ot, et = med[("ours", "tls")][m], med[("etcd", "tls")][m]
        rp, rt = op / ep_, ot / et
        lines.append(
            f"| {name} | {op:,.0f} | {ep_:,.0f} | {rp:.2f}× | {ot:,.0f} | {et:,.0f} | {rt:.2f}× | {rt / rp - 1:+.1%} |"
        )
    text = "\n".join(lines) + "\n"
    save_result("tls", text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
