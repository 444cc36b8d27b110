"""Fault injectors: one kind of fault per scenario, injected again and again while traffic runs.

Contract: a ``Fault`` has a name, says which clusters it can run on (``applies(kind, size, netns)``), and
``inject(ctx)`` performs one whole fault cycle against a harness ``Cluster``: break something, hold it a
moment, repair it, and return a ``Injection`` (what it did, whether the fault really happened, e.g. whether an
armed failpoint fired). When ``inject`` returns, every member it touched is running again (restarted if it
died). Faults act only on processes and namespaces the run started.

- ``Kill(target)``: SIGKILL of the leader, a follower or any member, then a restart on the same data dir.
- ``Pause``: SIGSTOP of the leader for 1–5 s, then SIGCONT (the old leader must step down, not corrupt).
- ``Failpoint(name, action)``: arms a failpoint at run time through the member's failpoints endpoint
  (``PYETCD_FAILPOINTS_HTTP``; ours only) on the member it concerns; the member must end the process itself
  (fail-stop) within a few seconds, and is restarted. A failpoint that traffic did not reach in time is
  disarmed and the injection counted as not fired.
- ``Partition``: the leader's network namespace is cut off for 1–3 s (needs ``netns``).
- ``PowerLoss``: a member loses power: SIGKILL, and every byte it wrote but did not fsync is gone (its data
  dir is on ``lazyfs``, a FUSE filesystem that holds unsynced writes in memory); then it restarts.
- ``Replace``: a follower is removed from the cluster (``etcdctl member remove``), its data dir wiped, and a
  new member added in its place (``member add``, started with ``--initial-cluster-state existing``).
"""

from __future__ import annotations

import abc
import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from harness.cluster import Cluster, Member, NoLeader
from harness.servers import free_port
from robustness.lazyfs import LazyFS

FIRE_TIMEOUT = 5.0  # how long an armed failpoint may wait for traffic to reach it


@dataclass
class Injection:
    fault: str
    member: str
    fired: bool
    started: float
    ended: float
    note: str = ""


@dataclass
class Context:
    cluster: Cluster
    rng: random.Random
    failpoint_ports: dict[str, int] = field(default_factory=dict)  # member name -> failpoints endpoint port
    filesystems: dict[str, LazyFS] = field(default_factory=dict)  # member name -> its data dir's lazyfs


def pick(ctx: Context, target: str) -> Member:
    """The leader, a follower or any live member; a cluster of one has only its leader."""
    c = ctx.cluster
    if target == "random" or len(c.live()) == 1:
        return ctx.rng.choice(c.reachable())
    leader, _ = c.wait_leader(timeout=15)
    if target == "leader":
        return leader
    return ctx.rng.choice([m for m in c.reachable() if m is not leader])


def restart(ctx: Context, m: Member) -> None:
    if not m.alive():
        ctx.cluster.restart(m)


class Fault(abc.ABC):
    name = "fault"
    # The members' data dirs go on lazyfs (power loss), and what the members' environment gets.
    needs_lazyfs = False
    member_env: dict[str, str] = {}

    def applies(self, kind: str, size: int, netns: bool) -> bool:
        return True

    @abc.abstractmethod
    def inject(self, ctx: Context) -> Injection:
        """One whole fault cycle: break, hold, repair (see the module docstring)."""


class Kill(Fault):
    def __init__(self, target: str) -> None:
        self.target = target
        self.name = f"kill {target}"

    def applies(self, kind: str, size: int, netns: bool) -> bool:
        return self.target != "follower" or size > 1

    def inject(self, ctx: Context) -> Injection:
        m = pick(ctx, self.target)
        t0 = time.monotonic()
        ctx.cluster.kill(m)
        time.sleep(ctx.rng.uniform(0.2, 1.0))
        restart(ctx, m)
        return Injection(self.name, m.name, True, t0, time.monotonic())


class Pause(Fault):
    name = "pause leader"

    def inject(self, ctx: Context) -> Injection:
        m = pick(ctx, "leader")
        assert m.proc is not None
        hold = ctx.rng.uniform(1.0, 5.0)
        t0 = time.monotonic()
        os.kill(m.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(hold)
        finally:
            os.kill(m.proc.pid, signal.SIGCONT)
        return Injection(self.name, m.name, True, t0, time.monotonic(), f"{hold:.1f}s")


# Where each failpoint is reached: "leader" ones on the member that leads (or the only one), "any" on any.
FAILPOINTS: dict[str, str] = {
    "raft-before-save": "any",
    "raft-after-save": "any",
    "wal-before-fsync": "any",
    "wal-after-fsync": "any",
    "apply-before-commit": "any",
    "backend-before-commit": "any",
    "backend-after-commit": "any",
    "snapshot-before-save": "any",
    "compaction-before-commit": "any",
    "compaction-after-commit": "any",
    "raft-before-leader-send": "leader",
    "raft-before-follower-send": "follower",
}


def set_failpoint(ctx: Context, m: Member, name: str, term: str | None) -> None:
    """Arms (``term``) or disarms (None) ``name`` on ``m`` through its failpoints endpoint."""
    url = f"http://{m.host}:{ctx.failpoint_ports[m.name]}/{name}"
    data = None if term is None else term.encode()
    req = urllib.request.Request(url, data=data, method="DELETE" if term is None else "PUT")
    with urllib.request.urlopen(req, timeout=2) as resp:
        resp.read()


class Failpoint(Fault):
    def __init__(self, point: str, action: str) -> None:
        self.point = point
        self.action = action
        self.name = f"failpoint {point}={action}"

    def applies(self, kind: str, size: int, netns: bool) -> bool:
        where = FAILPOINTS[self.point]
        return kind == "ours" and (where != "follower" or size > 1) and (where != "leader" or size > 1)

    def inject(self, ctx: Context) -> Injection:
        where = FAILPOINTS[self.point]
        m = pick(ctx, "random" if where == "any" else where)
        t0 = time.monotonic()
        set_failpoint(ctx, m, self.point, self.action)
        assert m.proc is not None
        try:
            m.proc.wait(FIRE_TIMEOUT)
        except subprocess.TimeoutExpired:
            # Traffic did not reach it in time: disarm (it may fire just now, as the member goes away).
            with contextlib.suppress(urllib.error.URLError, OSError):
                set_failpoint(ctx, m, self.point, None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                m.proc.wait(0.5)  # a member that fired while being disarmed is on its way out
        fired = not m.alive()
        note = f"exit {m.proc.returncode}" if fired else ""
        restart(ctx, m)
        return Injection(self.name, m.name, fired, t0, time.monotonic(), note)


class Partition(Fault):
    name = "partition leader"

    def applies(self, kind: str, size: int, netns: bool) -> bool:
        return netns and size > 1

    def inject(self, ctx: Context) -> Injection:
        m = pick(ctx, "leader")
        hold = ctx.rng.uniform(1.0, 3.0)
        t0 = time.monotonic()
        ctx.cluster.partition(m)
        try:
            time.sleep(hold)
        finally:
            ctx.cluster.heal(m)
        return Injection(self.name, m.name, True, t0, time.monotonic(), f"{hold:.1f}s")


class PowerLoss(Fault):
    """``broken=True`` is the test-only broken server: its WAL skips fsync, which power loss must expose."""

    needs_lazyfs = True

    def __init__(self, broken: bool = False) -> None:
        self.name = "power loss (broken server: WAL without fsync)" if broken else "power loss"
        self.member_env = {"PYETCD_FAILPOINTS": "wal-skip-fsync=sleep(0)"} if broken else {}

    def applies(self, kind: str, size: int, netns: bool) -> bool:
        return not self.member_env or kind == "ours"

    def inject(self, ctx: Context) -> Injection:
        m = ctx.rng.choice(ctx.cluster.live())
        fs = ctx.filesystems[m.name]
        t0 = time.monotonic()
        ctx.cluster.kill(m)
        dropped = fs.crash()
        fs.remount()
        time.sleep(ctx.rng.uniform(0.1, 0.5))
        restart(ctx, m)
        return Injection(self.name, m.name, True, t0, time.monotonic(), f"{dropped} bytes dropped")


class Replace(Fault):
    name = "replace follower"

    def applies(self, kind: str, size: int, netns: bool) -> bool:
        return size > 1

    def inject(self, ctx: Context) -> Injection:
        c = ctx.cluster
        old = pick(ctx, "follower")
        t0 = time.monotonic()
        c.remove_member(old)
        c.kill(old)
        shutil.rmtree(old.data_dir, ignore_errors=True)
        new = c.add_member(f"r{len(c.members) + 1}", start=False)
        if ctx.failpoint_ports:
            ctx.failpoint_ports[new.name] = free_port()
            new.env["PYETCD_FAILPOINTS_HTTP"] = f"{new.host}:{ctx.failpoint_ports[new.name]}"
        c.start_member(new)
        c.wait_caught_up(new)
        return Injection(self.name, f"{old.name}->{new.name}", True, t0, time.monotonic())


def all_faults() -> list[Fault]:
    out: list[Fault] = [Kill("leader"), Kill("follower"), Kill("random"), Pause(), Partition(), PowerLoss(), Replace()]
    for point in FAILPOINTS:
        for action in ("panic", "exit"):
            out.append(Failpoint(point, action))
    return out


def wait_healthy(cluster: Cluster, timeout: float = 30.0) -> None:
    """Every member alive and one leader agreed on (after the last fault)."""
    for m in cluster.members:
        if not m.removed and not m.alive():
            cluster.restart(m)
    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster.leader()
            return
        except NoLeader:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
