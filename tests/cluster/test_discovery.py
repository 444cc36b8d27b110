"""Bootstrapping through the discovery protocol, with one of our servers as the discovery service.

As in etcd 2's clustering guide: a size-3 token is made on a discovery server, then three members start
with ``-discovery`` (one with the current flags on 2379/2380, two with etcd 0.4's ``-addr/-bind-addr/
-peer-addr/-peer-bind-addr``), all on 127.0.0.1; they find each other, elect a leader, and
``curl -L http://localhost:2379/v2/members`` lists three. A fourth member with the same token finds the
cluster full and exits with etcd's error (``--discovery-fallback exit``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from harness.servers import child_env, free_port, spawn, start_server
from harness.v2client import request

TOKEN = "/v2/keys/_etcd/registry/6c007a14875d53d9bf0ef5a6fc0257c817f0fb83"


def member_argv(flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "pyetcd_fast", *flags]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def wait_for_members(list_members, procs: list[subprocess.Popen], logs: list[Path], timeout: float = 60) -> list[dict]:
    """The member list once it has three members that published their client URLs; fails with the members'
    log tails if one exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        listed = list_members()
        if len(listed) == 3 and all(m["clientURLs"] for m in listed):
            return listed
        tails = [log.read_text(errors="replace")[-1500:] for log in logs]
        assert all(p.poll() is None for p in procs), tails
        assert time.monotonic() < deadline, tails
        time.sleep(0.3)


def test_three_members_bootstrap_through_discovery(tmp_path: Path) -> None:
    disc = start_server("ours", tmp_path / "discovery")
    procs: list[subprocess.Popen] = []
    try:
        assert request(disc.endpoint, "PUT", f"{TOKEN}/_config/size", form={"value": "3"}).status == 201
        durl = f"http://{disc.endpoint}{TOKEN}"
        p2, p3, c2, c3 = (free_port() for _ in range(4))
        members = [
            ["--name", "m1", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
             "--listen-peer-urls", "http://127.0.0.1:2380", "--listen-client-urls", "http://127.0.0.1:2379",
             "--advertise-client-urls", "http://127.0.0.1:2379", "--discovery", durl],
            ["-name", "m2", "-addr", f"127.0.0.1:{c2}", "-bind-addr", f"127.0.0.1:{c2}",
             "-peer-addr", f"127.0.0.1:{p2}", "-peer-bind-addr", f"127.0.0.1:{p2}", "-discovery", durl],
            ["-name", "m3", "-addr", f"127.0.0.1:{c3}", "-bind-addr", f"127.0.0.1:{c3}",
             "-peer-addr", f"127.0.0.1:{p3}", "-peer-bind-addr", f"127.0.0.1:{p3}", "-discovery", durl],
        ]  # fmt: skip
        for i, flags in enumerate(members):
            d = tmp_path / f"m{i + 1}"
            d.mkdir()
            procs.append(spawn(member_argv([*flags, "--data-dir", str(d / "data")]), d / "log"))

        def curl_members() -> list[dict]:
            r = subprocess.run(["curl", "-sL", "http://localhost:2379/v2/members"], capture_output=True, text=True,
                               timeout=5)  # fmt: skip
            try:
                return json.loads(r.stdout)["members"] if r.returncode == 0 and r.stdout else []
            except ValueError:
                return []

        logs = [tmp_path / f"m{i}" / "log" for i in (1, 2, 3)]
        listed = wait_for_members(curl_members, procs, logs)
        assert sorted(m["name"] for m in listed) == ["m1", "m2", "m3"]
        assert sorted(u for m in listed for u in m["peerURLs"]) == sorted(
            ["http://127.0.0.1:2380", f"http://127.0.0.1:{p2}", f"http://127.0.0.1:{p3}"]
        )
        pretty = subprocess.run("curl -sL http://localhost:2379/v2/members | python -m json.tool", shell=True,
                                capture_output=True, text=True, timeout=10)  # fmt: skip
        assert pretty.returncode == 0 and pretty.stdout.count('"name"') == 3
        # The token's dir holds the three registrations, each "name=peerURL".
        reg = request(disc.endpoint, "GET", TOKEN).json["node"]["nodes"]
        assert sorted(n["value"].split("=")[0] for n in reg if not n["key"].endswith("/_config")) == ["m1", "m2", "m3"]
        # A write through one member is read through another.
        assert request(f"127.0.0.1:{c2}", "PUT", "/v2/keys/hello", form={"value": "world"}).status == 201
        got = request(f"127.0.0.1:{c3}", "GET", "/v2/keys/hello", query={"quorum": "true"})
        assert got.json["node"]["value"] == "world"

        d4 = tmp_path / "m4"
        p4, c4 = free_port(), free_port()
        late = subprocess.run(
            member_argv(["-name", "m4", "-addr", f"127.0.0.1:{c4}", "-peer-addr", f"127.0.0.1:{p4}",
                         "-bind-addr", f"127.0.0.1:{c4}", "-peer-bind-addr", f"127.0.0.1:{p4}",
                         "-discovery", durl, "-discovery-fallback", "exit", "-data-dir", str(d4)]),
            env=child_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert late.returncode == 1
        assert "failed to join discovery cluster (discovery: cluster is full)" in late.stderr + late.stdout
    finally:
        stop(procs)
        disc.stop()


DISCOVERY_SERVICE = "/usr/bin/discovery.etcd.io"  # Debian's etcd-discovery (make deps-test installs it)


def test_three_members_bootstrap_through_debians_etcd_discovery(tmp_path: Path) -> None:
    backend = start_server("ours", tmp_path / "backend")
    port = free_port()
    svc = spawn([DISCOVERY_SERVICE, "-a", f"127.0.0.1:{port}", "-e", f"http://{backend.endpoint}",
                 "-h", f"http://127.0.0.1:{port}"], tmp_path / "discovery.log")  # fmt: skip
    procs: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            r = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/new?size=3"], capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.startswith("http"):
                durl = r.stdout.strip()
                break
            assert time.monotonic() < deadline, (tmp_path / "discovery.log").read_text()
            time.sleep(0.2)
        clients = []
        for i in range(3):
            cp, pp = free_port(), free_port()
            clients.append(f"127.0.0.1:{cp}")
            d = tmp_path / f"d{i}"
            d.mkdir()
            client, peer = f"http://127.0.0.1:{cp}", f"http://127.0.0.1:{pp}"
            flags = ["--name", f"n{i}", "--data-dir", str(d / "data"), "--discovery", durl,
                     "--listen-client-urls", client, "--advertise-client-urls", client,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]  # fmt: skip
            procs.append(spawn(member_argv(flags), d / "log"))

        def members() -> list[dict]:
            try:
                return request(clients[0], "GET", "/v2/members").json["members"]
            except (OSError, ValueError):
                return []

        listed = wait_for_members(members, procs, [tmp_path / f"d{i}" / "log" for i in range(3)])
        assert sorted(m["name"] for m in listed) == ["n0", "n1", "n2"]
        token = durl.rsplit("/", 1)[1]
        reg = request(backend.endpoint, "GET", f"/v2/keys/_etcd/registry/{token}").json["node"]["nodes"]
        assert len([n for n in reg if not n["key"].endswith("/_config")]) == 3
    finally:
        stop(procs)
        svc.terminate()
        svc.wait(10)
        backend.stop()
