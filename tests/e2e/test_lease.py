"""The real etcdctl (v3) ``lease`` commands against our server and against etcd.

Each command runs on both servers and the exit code, stdout and stderr must match
after normalization (``LeaseCtl``):

- Lease IDs differ between servers. ``LeaseCtl.grant(name, ...)`` reads the ID each
  server printed and remembers it under ``name``; a later argument ``Lease(name)``
  becomes that server's ID (hex, as etcdctl takes it), and every occurrence of a
  remembered ID in the output (hex, or decimal in ``-w json``) becomes ``<name>``.
  IDs the test typed itself (an unknown ``1234``) are the same on both and stay.
- ``remaining(Ns)`` of ``timetolive`` (and json ``ttl``) must be within a second of
  the granted TTL and is then compared as ``remaining(~)``; the attached-keys list,
  and the lines of ``lease list``, come from Go maps in etcd and are sorted.
- stderr: etcdctl's JSON retry log is reduced to its error, as in ``harness.etcdctl``.

The interactive ``lease keep-alive <id>`` runs under ``Popen`` on both servers at once.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness import etcdctl
from harness.etcdctl import Outcome, normalize_stderr
from harness.kvclient import CALL_TIMEOUT, Client
from harness.normalize import ID_FIELDS
from harness.servers import Server
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

GRANTED = re.compile(r"^lease ([0-9a-f]{16}) granted with TTL\((-?\d+)s\)$", re.M)
REMAINING = re.compile(r"granted with TTL\((\d+)s\), remaining\((-?\d+)s\)")
ATTACHED = re.compile(r"attached keys\(\[([^\]]*)\]\)")
KEEPALIVED = re.compile(r"^lease ([0-9a-f]{16}) keepalived with TTL\((\d+)\)$")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@dataclass(frozen=True)
class Lease:
    """An argument: this side's ID of the lease granted as ``name``; ``fmt`` formats the hex ID."""

    name: str
    fmt: str = "{}"


@dataclass
class Side:
    who: str
    endpoint: str
    base: int = 0
    ids: dict[str, int] = field(default_factory=dict)  # name -> lease ID

    def arg(self, a: str | Lease) -> str:
        return a.fmt.format(f"{self.ids[a.name]:x}") if isinstance(a, Lease) else a

    def text(self, s: str) -> str:
        """Remembered IDs in ``s`` (hex, zero-padded or not) become ``<name>``."""
        for name, lid in self.ids.items():
            s = re.sub(rf"\b0*{lid:x}\b", f"<{name}>", s)
        return s

    def remaining(self, s: str) -> str:
        def fix(m: re.Match) -> str:
            granted, left = int(m[1]), int(m[2])
            assert granted - 1 <= left <= granted, f"{self.who}: remaining {left}s of {granted}s: {s!r}"
            return f"granted with TTL({granted}s), remaining(~)"

        s = REMAINING.sub(fix, s)
        return ATTACHED.sub(lambda m: f"attached keys([{' '.join(sorted(m[1].split()))}])", s)

    def json(self, s: str) -> Any:
        def walk(obj: Any) -> Any:
            if isinstance(obj, list):
                return [walk(x) for x in obj]
            if not isinstance(obj, dict):
                return obj
            out = {}
            for k, v in obj.items():
                if k in ID_FIELDS:
                    continue
                if k == "revision":
                    v = f"@{v - self.base:+d}"
                elif k in ("ID", "id"):
                    v = next((f"<{n}>" for n, lid in self.ids.items() if lid == v), v)
                elif k == "keys" and v:
                    v = sorted(v)  # base64 of each key; order is the server's map order
                out[k] = walk(v)
            if "granted-ttl" in out and out["granted-ttl"] > 0:
                granted, left = out["granted-ttl"], out["ttl"]
                assert granted - 1 <= left <= granted, f"{self.who}: ttl {left} of granted-ttl {granted}"
                out["ttl"] = "~"
            if "leases" in out:
                out["leases"] = sorted(out["leases"], key=str)
            return out

        return walk(json.loads(s))


class LeaseCtl:
    def __init__(self, ref: str, ours: str) -> None:
        self.sides = [Side("etcd", ref), Side("ours", ours)]

    def begin(self) -> None:
        for side in self.sides:
            c = Client(side.endpoint)
            try:
                side.base = c.revision()
            finally:
                c.close()

    def outcome(self, side: Side, args: list[str], res: etcdctl.Result) -> Outcome:
        out: Any = side.text(res.stdout)
        if res.rc == 0 and etcdctl.output_format(args) == "json":
            out = side.json(res.stdout)
        else:
            out = side.remaining(out)
            if args[:2] == ["lease", "list"]:
                head, *ids = out.splitlines()
                out = [head, *sorted(ids)]
        return Outcome(res.rc, out, [side.text(line) for line in normalize_stderr(res.stderr)])

    def run(self, *args: str | Lease) -> Outcome:
        outs = []
        for side in self.sides:
            a = [side.arg(x) for x in args]
            outs.append(self.outcome(side, a, etcdctl.run(side.endpoint, *a)))
        assert outs[0] == outs[1], f"etcdctl {list(args)}\netcd: {outs[0]}\nours: {outs[1]}"
        return outs[0]

    def grant(self, name: str, *args: str) -> Outcome:
        """``lease grant <args>`` on both; the ID each printed (simple or json) is remembered as ``name``."""
        outs = []
        for side in self.sides:
            res = etcdctl.run(side.endpoint, "lease", "grant", *args)
            m = GRANTED.search(res.stdout)
            if m:
                lid = int(m[1], 16)
            else:
                assert res.rc == 0, f"{side.who}: lease grant {args}: rc={res.rc} {res.stdout!r} {res.stderr!r}"
                lid = json.loads(res.stdout)["ID"]
            assert lid not in side.ids.values()
            side.ids[name] = lid
            outs.append(self.outcome(side, ["lease", "grant", *args], res))
        assert outs[0] == outs[1], f"etcdctl lease grant {list(args)}\netcd: {outs[0]}\nours: {outs[1]}"
        return outs[0]

    def revoke_all(self) -> None:
        """Revoke every lease on both servers (over gRPC), so ``lease list`` shows only the test's own."""
        for side in self.sides:
            c = Client(side.endpoint)
            try:
                for lease in c.lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=CALL_TIMEOUT).leases:
                    c.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease.ID), timeout=CALL_TIMEOUT)
            finally:
                c.close()


@pytest.fixture
def ctl(etcd_server: Server, ours_server: Server) -> LeaseCtl:
    c = LeaseCtl(etcd_server.endpoint, ours_server.endpoint)
    c.begin()
    return c


# -- one lease through its life --------------------------------------------------------------------


def test_lease_lifecycle(ctl: LeaseCtl) -> None:
    assert ctl.grant("a", "60").out == "lease <a> granted with TTL(60s)\n"
    o = ctl.run("lease", "timetolive", Lease("a"))
    assert o.out == "lease <a> granted with TTL(60s), remaining(~)\n"
    assert ctl.run("put", "--lease", Lease("a"), "ctl/lease/k", "v").out == "OK\n"
    assert ctl.run("put", Lease("a", "--lease={}"), "ctl/lease/k2", "v").out == "OK\n"
    o = ctl.run("lease", "timetolive", Lease("a"), "--keys")
    assert o.out == "lease <a> granted with TTL(60s), remaining(~), attached keys([ctl/lease/k ctl/lease/k2])\n"
    o = ctl.run("lease", "timetolive", Lease("a"))
    assert o.out == "lease <a> granted with TTL(60s), remaining(~)\n"
    o = ctl.run("lease", "keep-alive", "--once", Lease("a"))
    assert (o.rc, o.out) == (0, "lease <a> keepalived with TTL(60)\n")
    assert ctl.run("get", "--prefix", "ctl/lease/", "--keys-only").out == "ctl/lease/k\n\nctl/lease/k2\n\n"
    o = ctl.run("lease", "revoke", Lease("a"))
    assert (o.rc, o.out) == (0, "lease <a> revoked\n")
    assert ctl.run("get", "--prefix", "ctl/lease/").out == ""
    assert ctl.run("lease", "timetolive", Lease("a"), "--keys").out == "lease <a> already expired\n"
    o = ctl.run("lease", "keep-alive", "--once", Lease("a"))
    assert o.rc != 0 and "Error: etcdserver: requested lease not found" in o.err
    o = ctl.run("lease", "revoke", Lease("a"))
    assert o.rc == 1 and "Error: failed to revoke lease (etcdserver: requested lease not found)" in o.err


def test_lease_json(ctl: LeaseCtl) -> None:
    o = ctl.grant("g", "60", "-w", "json")
    assert o.out == {"revision": "@+0", "ID": "<g>", "TTL": 60, "Error": ""}
    ctl.revoke_all()
    ctl.begin()
    ctl.grant("j", "60")
    ctl.run("put", "--lease", Lease("j"), "ctl/lease/json/k", "v")
    o = ctl.run("lease", "timetolive", Lease("j"), "--keys", "-w", "json")
    assert o.out == {"revision": "@+1", "id": "<j>", "ttl": "~", "granted-ttl": 60, "keys": [b64("ctl/lease/json/k")]}
    o = ctl.run("lease", "keep-alive", "--once", Lease("j"), "-w", "json")
    assert o.out == {"revision": "@+1", "ID": "<j>", "TTL": 60}
    assert ctl.run("lease", "list", "-w", "json").out == {"revision": "@+1", "leases": [{"id": "<j>"}]}
    o = ctl.run("lease", "timetolive", "1234", "-w", "json")
    assert o.out == {"revision": "@+1", "id": 0x1234, "ttl": -1, "granted-ttl": 0, "keys": None}
    assert ctl.run("lease", "revoke", Lease("j"), "-w", "json").out == {"header": {"revision": "@+2"}}


# -- grant ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl, shown", [("1", 2), ("0", 2), ("-5", 2), ("5", 5), ("9000000000", 9000000000)])
def test_grant_ttl(ctl: LeaseCtl, ttl: str, shown: int) -> None:
    name = f"t{ttl}"
    assert ctl.grant(name, "--", ttl).out == f"lease <{name}> granted with TTL({shown}s)\n"
    o = ctl.run("lease", "timetolive", Lease(name))
    assert o.out == f"lease <{name}> granted with TTL({shown}s), remaining(~)\n"
    ctl.run("lease", "revoke", Lease(name))


def test_grant_errors(ctl: LeaseCtl) -> None:
    o = ctl.run("lease", "grant", "9000000001")
    assert o.rc == 1 and o.out == ""
    assert o.err == [
        "log: rpc error: code = OutOfRange desc = etcdserver: too large lease TTL",
        "Error: failed to grant lease (etcdserver: too large lease TTL)",
    ]
    o = ctl.run("lease", "grant", "abc")
    assert o.rc != 0 and "Error: bad TTL" in "\n".join(o.err)
    assert ctl.run("lease", "grant").rc != 0


# -- list ------------------------------------------------------------------------------------------------


def test_list(ctl: LeaseCtl) -> None:
    ctl.revoke_all()
    assert ctl.run("lease", "list").out == ["found 0 leases"]
    ctl.grant("l1", "60")
    ctl.grant("l2", "120")
    assert ctl.run("lease", "list").out == ["found 2 leases", "<l1>", "<l2>"]
    ctl.run("lease", "revoke", Lease("l1"))
    assert ctl.run("lease", "list").out == ["found 1 leases", "<l2>"]
    ctl.run("lease", "revoke", Lease("l2"))


# -- unknown leases ----------------------------------------------------------------------------------------


def test_unknown_lease(ctl: LeaseCtl) -> None:
    o = ctl.run("lease", "revoke", "1234")
    assert o.rc == 1 and o.out == ""
    assert o.err == [
        "log: rpc error: code = NotFound desc = etcdserver: requested lease not found",
        "Error: failed to revoke lease (etcdserver: requested lease not found)",
    ]
    o = ctl.run("put", "--lease=1234", "ctl/lease/unknown", "v")
    assert o.rc == 1 and o.out == ""
    assert o.err == [
        "log: rpc error: code = NotFound desc = etcdserver: requested lease not found",
        "Error: etcdserver: requested lease not found",
    ]
    assert ctl.run("get", "ctl/lease/unknown").out == ""
    assert ctl.run("lease", "timetolive", "1234", "--keys").out == "lease 0000000000001234 already expired\n"
    o = ctl.run("lease", "keep-alive", "--once", "1234")
    assert o.rc != 0 and o.out == "" and "Error: etcdserver: requested lease not found" in o.err


# -- interactive keep-alive --------------------------------------------------------------------------------


def _popen(endpoint: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return subprocess.Popen(
        [etcdctl.ETCDCTL_BIN, "--endpoints", endpoint, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _keepalive_lines(side: Side, name: str, stdout: bytes) -> list[str]:
    lines = side.text(stdout.decode(errors="replace")).splitlines()
    for line in lines[:-1]:
        assert line == f"lease <{name}> keepalived with TTL(3)", f"{side.who}: {lines}"
    return lines


def test_keepalive_interactive(ctl: LeaseCtl) -> None:
    """clientv3 renews every TTL/3 s: a 3 s lease is kept alive once a second until etcdctl is stopped."""
    ctl.grant("ka", "3")
    procs = [_popen(side.endpoint, "lease", "keep-alive", f"{side.ids['ka']:x}") for side in ctl.sides]
    try:
        time.sleep(3.5)  # longer than the TTL: without the renewals the lease would be gone
        for p in procs:
            assert p.poll() is None, f"etcdctl exited early: rc={p.returncode} {p.communicate()}"
            p.send_signal(signal.SIGTERM)
        results = [p.communicate(timeout=10) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for side, (out, err) in zip(ctl.sides, results, strict=True):
        lines = _keepalive_lines(side, "ka", out)
        assert len(lines) >= 3 and lines[-1] == "lease <ka> keepalived with TTL(3)", f"{side.who}: {lines} {err!r}"
    # Alive after longer than its TTL (remaining depends on when the last renewal went out).
    assert ctl.run("lease", "keep-alive", "--once", Lease("ka")).out == "lease <ka> keepalived with TTL(3)\n"
    ctl.run("lease", "revoke", Lease("ka"))


def test_keepalive_interactive_until_revoked(ctl: LeaseCtl) -> None:
    """A revoke ends ``lease keep-alive``: the next renewal gets TTL 0 and etcdctl exits 0."""
    ctl.grant("kr", "3")
    procs = [_popen(side.endpoint, "lease", "keep-alive", f"{side.ids['kr']:x}") for side in ctl.sides]
    try:
        time.sleep(1.5)
        ctl.run("lease", "revoke", Lease("kr"))
        results = [p.communicate(timeout=10) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    outs = []
    for side, p, (out, err) in zip(ctl.sides, procs, results, strict=True):
        lines = _keepalive_lines(side, "kr", out)
        assert len(lines) >= 2 and lines[-1] == "lease <kr> expired or revoked.", f"{side.who}: {lines} {err!r}"
        outs.append((p.returncode, lines[-1], [side.text(x) for x in normalize_stderr(err.decode())]))
    assert outs[0] == outs[1], f"etcd: {outs[0]}\nours: {outs[1]}"
