"""The v2 keys API on one member of ours: on by default, off with ``--enable-v2=false``, and durable: every
acknowledged v2 write survives kill -9, TTLs keep counting after a restart, and the store index goes on
from where it was."""

from __future__ import annotations

import time
from pathlib import Path

from harness.servers import start_server
from harness.v2client import request


def test_v2_is_served_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    on = start_server("ours", tmp_path / "on")
    try:
        assert request(on.endpoint, "PUT", "/v2/keys/k", form={"value": "v"}).status == 201
    finally:
        on.stop()
    off = start_server("ours", tmp_path / "off", ["--enable-v2=false"])
    try:
        assert request(off.endpoint, "GET", "/v2/keys/k").status == 404
    finally:
        off.stop()


def test_acknowledged_v2_writes_survive_kill_9(tmp_path: Path) -> None:
    s = start_server("ours", tmp_path / "s")
    try:
        ep = s.endpoint
        for i in range(50):
            assert request(ep, "PUT", f"/v2/keys/dir/k{i}", form={"value": str(i)}).status == 201
        request(ep, "POST", "/v2/keys/queue", form={"value": "job"})
        request(ep, "DELETE", "/v2/keys/dir/k0")
        request(ep, "PUT", "/v2/keys/short", form={"value": "x", "ttl": "2"})
        request(ep, "PUT", "/v2/keys/long", form={"value": "y", "ttl": "300"})
        before = request(ep, "GET", "/v2/keys/", query={"recursive": "true", "sorted": "true"})
        s.kill()
        s.restart()
        after = request(ep, "GET", "/v2/keys/", query={"recursive": "true", "sorted": "true"})
        assert after.index() == before.index()
        strip = [{k: v for k, v in n.items() if k != "ttl"} for n in after.json["node"]["nodes"]]
        assert strip == [{k: v for k, v in n.items() if k != "ttl"} for n in before.json["node"]["nodes"]]
        # The TTL came back with the key, and the restarted leader still expires it.
        deadline = time.monotonic() + 10
        while request(ep, "GET", "/v2/keys/short").status != 404:
            assert time.monotonic() < deadline, "the 2 s key did not expire after the restart"
            time.sleep(0.2)
        assert request(ep, "GET", "/v2/keys/long").json["node"]["ttl"] > 200
        nxt = request(ep, "PUT", "/v2/keys/next", form={"value": "z"})
        assert nxt.json["node"]["modifiedIndex"] == after.index() + 2  # the expiry took one index
    finally:
        s.stop()
