"""``pyetcd_fast.Etcd``: a member from keyword flags, on free ports and a temporary data dir."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

import pyetcd_fast as etcd
from pyetcd_fast.embed.member import flags_to_argv


def test_the_contract_runs_as_written() -> None:
    t0 = time.monotonic()
    with etcd.Etcd() as server:
        ready = time.monotonic() - t0
        client = server.client()
        client.put("/svc/a", "10.0.0.1")
        kv = client.get("/svc/a")
        assert kv is not None and kv.value == b"10.0.0.1" and kv.version == 1
        assert kv.create_revision == kv.mod_revision
        assert [k.key for k in client.get_prefix("/svc/")] == [b"/svc/a"]
        with client.lease(ttl=5) as lease:  # kept alive in the background until the block ends
            client.put("/svc/b", "10.0.0.2", lease=lease)
        assert client.get("/svc/b") is None
        events = client.watch_prefix("/svc/", start_revision=1)  # an iterator of events, resumable
        assert next(events).kv.key == b"/svc/a"
        events.cancel()

        async def main() -> None:
            async with etcd.AsyncClient(server.endpoints) as aclient:
                await aclient.put("/svc/c", b"x")
                got = await aclient.get("/svc/c")
                assert got is not None and got.value == b"x"

        asyncio.run(main())
        data_dir = server.flags.get("data_dir") or server._tmp
        assert data_dir is not None and os.path.isdir(str(data_dir))
    assert not os.path.exists(str(data_dir)), "the temporary data dir is removed"
    # A member that is the only voter campaigns as soon as its bootstrap configuration is applied; it used to
    # wait a whole election timeout (1.15 s here), then ~50 ms.
    assert ready < 0.5, ready


def test_flags_become_the_command_lines(tmp_path: Path) -> None:
    assert flags_to_argv({"data_dir": "d", "auto_tls": True, "x": [1, 2]}) == [
        "--data-dir=d",
        "--auto-tls=true",
        "--x=1,2",
    ]
    with etcd.Etcd(name="n1", data_dir=str(tmp_path / "d"), snapshot_count=100) as server:
        assert server.client().status().header.member_id != 0
    assert (tmp_path / "d" / "member").is_dir(), "a given data dir is kept"


def test_an_embedded_member_is_quiet_unless_asked(capfd: pytest.CaptureFixture[str]) -> None:
    with etcd.Etcd() as server:
        server.client().put("k", "v")
    assert capfd.readouterr().err == ""
    with etcd.Etcd(log_level="info"):
        pass
    assert "ready to serve client requests" in capfd.readouterr().err
