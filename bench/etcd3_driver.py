"""Runs python-etcd3 0.12's share of ``bench.client`` inside the venv that can import it (``bench.client``
makes the venv and starts this script with its python): one JSON object of figures on stdout.

``python bench/etcd3_driver.py ENDPOINT SECONDS WATCH_PREFIX WATCH_FROM WATCH_EVENTS``. Only the standard
library, etcd3 and ``bench/rates.py`` are imported here (this file runs outside the project's environment).
"""

from __future__ import annotations

import json
import sys
import time

import etcd3  # type: ignore[import-not-found]
from rates import ops_per_s  # bench/rates.py: this script's directory is on sys.path

THREADS = (1, 16)


def main() -> None:
    endpoint, seconds, prefix, start, events = sys.argv[1:6]
    host, port = endpoint.rsplit(":", 1)
    c = etcd3.client(host=host, port=int(port))
    value = b"v" * 256
    c.put("bench/get", value)
    out: dict[str, float] = {}
    for threads in THREADS:
        out[f"put {threads}"] = ops_per_s(lambda i: c.put(f"bench/{i}", value), threads, float(seconds))
        out[f"get {threads}"] = ops_per_s(lambda i: c.get("bench/get"), threads, float(seconds))
    want = int(events)
    it, cancel = c.watch_prefix(prefix, start_revision=int(start))
    t0 = time.monotonic()
    got = 0
    for _ in it:
        got += 1
        if got >= want:
            break
    out["watch"] = want / (time.monotonic() - t0)
    cancel()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
