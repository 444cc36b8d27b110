"""Fault injectors: one kind of fault per scenario, injected again and again while traffic runs.

Contract: a ``Fault`` has a name, says which clusters it can run on (``applies(kind, size, netns)``) and what
the run must set up for it (``needs_lazyfs``, ``needs_tmpfs``, ``needs_proxy``, ``member_env``,
``extra_flags``), and ``inject(ctx)`` performs one whole fault cycle against a harness ``Cluster``: break
something, hold it a moment, repair it, and return a ``Injection`` (what it did, whether the fault really
happened, e.g. whether an armed failpoint fired, and a ``failure`` when the member broke a promise during the
fault). When ``inject`` returns, every member it touched is running again (restarted if it died). Faults act
only on processes, mounts, proxies and namespaces the run started.

- ``Kill(target)``: SIGKILL of the leader, a follower or any member, then a restart on the same data dir.
- ``Pause``: SIGSTOP of the leader for 1–5 s, then SIGCONT (the old leader must step down, not corrupt).
- ``Failpoint(action)``: arms every failpoint in turn (one per injection; ``points=`` for a few) at run
  time through the member's failpoints endpoint (``PYETCD_FAILPOINTS_HTTP``; ours only) on the member it
  concerns; the member must end the process itself
  (fail-stop) within a few seconds, and is restarted. A failpoint that traffic did not reach in time is
  disarmed and the injection counted as not fired.
- ``Partition``: the leader's network namespace is cut off for 1–3 s (needs ``netns``).
- ``PowerLoss``: a member loses power: SIGKILL, and every byte it wrote but did not fsync is gone (its data
  dir is on ``lazyfs``, a FUSE filesystem that holds unsynced writes in memory); then it restarts.
- ``PeerNetwork(mode)``: latency, connection drops, a blackhole or one-way loss on every link of one member,
  through userspace proxies in front of the peer ports (``proxy.PeerNet``), lifted after 1–4 s.
- ``PowerLossInSnapshotInstall``: a lagging follower loses power exactly before or after applying the
  snapshot the leader sent it (an exit failpoint, then lazyfs drops what was not synced).
- ``FsyncError``: every fsync on one member's lazyfs fails with EIO: the member must stop by itself.
- ``DiskFull``: one member's data dir (its own small tmpfs) is filled up for 1–3 s, then freed.
- ``Replace``: a follower is removed from the cluster (``etcdctl member remove``), its data dir wiped, and a
  new member added in its place (``member add``, started with ``--initial-cluster-state existing``).
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import random
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.cluster import Cluster, Member, NoLeader
from harness.servers import free_port
from pyetcd_fast.embed.proxy import PeerNet, Rule
from robustness.lazyfs import LazyFS
from robustness.tmpfs import Tmpfs

FIRE_TIMEOUT = 5.0  # how long an armed failpoint may wait for traffic to reach it
FAILSTOP_TIMEOUT = 5.0  # how long a member whose fsyncs fail may take to stop (traffic fsyncs many times a second)


@dataclass
class Injection:
    fault: str
    member: str
    fired: bool
    started: float
    ended: float
    note: str = ""
    failure: str = ""  # the member broke a promise during the fault itself (e.g. it did not stop)


@dataclass
class Context:
    cluster: Cluster
    rng: random.Random
    failpoint_ports: dict[str, int] = field(default_factory=dict)  # member name -> failpoints endpoint port
    filesystems: dict[str, LazyFS] = field(default_factory=dict)  # member name -> its data dir's lazyfs
    peers: PeerNet | None = None  # the proxies between members (peer network faults)
    disks: dict[str, Tmpfs] = field(default_factory=dict)  # member name -> its own tmpfs data dir (disk full)
    turns: dict[str, int] = field(default_factory=dict)  # fault name -> its next turn (rotating faults)


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
    needs_proxy = False  # members talk through ``proxy.PeerNet``
    needs_tmpfs = False  # each member's data dir is a small tmpfs of its own (``tmpfs.Tmpfs``)
    extra_flags: tuple[str, ...] = ()  # added to every member's flags
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


def wait_stopped(m: Member, timeout: float) -> bool:
    """Whether ``m``'s process ended within ``timeout`` seconds."""
    assert m.proc is not None
    with contextlib.suppress(subprocess.TimeoutExpired):
        m.proc.wait(timeout)
    return not m.alive()


def said_since_launch(m: Member, line: str) -> bool:
    """Whether ``m``'s log has ``line`` since the harness last (re)started it."""
    return line in m.log_path.read_text(errors="replace").rsplit("--- harness: restart", 1)[-1]


def exit_note(m: Member) -> str:
    return f"exit {m.proc.returncode if m.proc else '?'}"


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
    """Every failpoint in turn with one action: each injection arms the next point that this cluster size
    can reach, starting at a point picked by the run's seed, so a few runs cover every point."""

    def __init__(self, action: str, points: list[str] | None = None) -> None:
        self.points = points or list(FAILPOINTS)
        self.action = action
        self.name = f"failpoints ({action})" if points is None else f"failpoint {','.join(points)}={action}"

    def applies(self, kind: str, size: int, netns: bool) -> bool:
        return kind == "ours" and bool(self.reachable(size))

    def reachable(self, size: int) -> list[str]:
        return [p for p in self.points if size > 1 or FAILPOINTS[p] == "any"]

    def inject(self, ctx: Context) -> Injection:
        points = self.reachable(len(ctx.cluster.members))
        turn = ctx.turns.setdefault(self.name, ctx.rng.randrange(len(points)))
        ctx.turns[self.name] = turn + 1
        point = points[turn % len(points)]
        where = FAILPOINTS[point]
        m = pick(ctx, "random" if where == "any" else where)
        t0 = time.monotonic()
        set_failpoint(ctx, m, point, self.action)
        if not wait_stopped(m, FIRE_TIMEOUT):
            # Traffic did not reach it in time: disarm (it may fire just now, as the member goes away).
            with contextlib.suppress(urllib.error.URLError, OSError):
                set_failpoint(ctx, m, point, None)
            wait_stopped(m, 0.5)  # a member that fired while being disarmed is on its way out
        fired = not m.alive()
        note = exit_note(m) if fired else ""
        restart(ctx, m)
        return Injection(f"failpoint {point}={self.action}", m.name, fired, t0, time.monotonic(), note)


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


def lose_power(ctx: Context, m: Member) -> int:
    """SIGKILL ``m`` (if it still runs) and drop every write it did not fsync; returns the bytes dropped. Its
    data dir is mounted afresh, so nothing of the dead process stays cached."""
    fs = ctx.filesystems[m.name]
    ctx.cluster.kill(m)
    dropped = fs.crash()
    fs.remount()
    return dropped


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
        t0 = time.monotonic()
        dropped = lose_power(ctx, m)
        time.sleep(ctx.rng.uniform(0.1, 0.5))
        restart(ctx, m)
        return Injection(self.name, m.name, True, t0, time.monotonic(), f"{dropped} bytes dropped")


class PowerLossInSnapshotInstall(Fault):
    """Power loss on a follower exactly at a step of installing a snapshot from the leader: the follower is
    killed, the leader moves on past its log (``--experimental-snapshot-catchup-entries 20``, ours only, so a
    second of traffic is enough), and the follower restarts with ``snapshot-before-apply`` or
    ``snapshot-after-apply`` armed with ``exit`` (one at random); when it exits there, every unsynced write is
    dropped (lazyfs), and it restarts once more, disarmed, and must catch up. An install that did not happen
    within ``FIRE_TIMEOUT`` (it caught up from the log) counts as not fired."""

    name = "power loss in snapshot install"
    needs_lazyfs = True
    extra_flags = ("--experimental-snapshot-catchup-entries", "20")
    POINTS = ("snapshot-before-apply", "snapshot-after-apply")

    def applies(self, kind: str, size: int, netns: bool) -> bool:
        return kind == "ours" and size > 1

    def inject(self, ctx: Context) -> Injection:
        c = ctx.cluster
        m = pick(ctx, "follower")
        point = ctx.rng.choice(self.POINTS)
        t0 = time.monotonic()
        c.kill(m)
        time.sleep(ctx.rng.uniform(1.0, 2.0))  # the leader snapshots and compacts its log past m's
        m.env["PYETCD_FAILPOINTS"] = f"{point}=exit"
        try:
            c.relaunch(m)
            stopped = wait_stopped(m, FIRE_TIMEOUT)
        finally:
            del m.env["PYETCD_FAILPOINTS"]
        # The failpoint's exit is an abort() that says so in the log; any other end (LMDB's or libc's abort
        # included) is the member breaking down, not this fault firing.
        fired = (
            stopped
            and m.proc is not None
            and m.proc.returncode == -signal.SIGABRT
            and said_since_launch(m, f"failpoint {point}: exiting")
        )
        how = exit_note(m)
        dropped = lose_power(ctx, m)
        restart(ctx, m)
        failure = "" if fired or not stopped else f"it stopped by itself while catching up: {how}"
        note = f"{point}, {dropped} bytes dropped" if fired else f"{point} not reached"
        return Injection(f"{self.name} ({point})", m.name, fired, t0, time.monotonic(), note, failure)


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


class FsyncError(Fault):
    """Every fsync of one member's filesystem fails with EIO (and drops that file's unsynced data, as Linux
    does): the member must stop (fail-stop) within ``FAILSTOP_TIMEOUT``; then fsync works again and it is
    restarted. A member still running then is a failure (it went on past a failed fsync)."""

    name = "fsync EIO"
    needs_lazyfs = True

    def inject(self, ctx: Context) -> Injection:
        m = ctx.rng.choice(ctx.cluster.live())
        fs = ctx.filesystems[m.name]
        t0 = time.monotonic()
        fs.fail_fsync(True)
        try:
            stopped = wait_stopped(m, FAILSTOP_TIMEOUT)
        finally:
            fs.fail_fsync(False)
        failure = "" if stopped else f"{m.name} still running {FAILSTOP_TIMEOUT:.0f}s after its fsyncs began to fail"
        note = f"{exit_note(m)} after {time.monotonic() - t0:.2f}s" if stopped else "killed by the harness"
        if not stopped:
            ctx.cluster.kill(m)
        restart(ctx, m)
        return Injection(self.name, m.name, stopped, t0, time.monotonic(), note, failure)


class DiskFull(Fault):
    """One member's data dir (a small tmpfs of its own) is filled to the last byte for 1–3 s: the member may
    stop (etcd exits on a failed WAL write) or go on refusing writes; once space is back it is restarted if
    it stopped. What it acknowledged must survive either way (the history checks)."""

    name = "disk full"
    needs_tmpfs = True

    def inject(self, ctx: Context) -> Injection:
        m = ctx.rng.choice(ctx.cluster.live())
        disk = ctx.disks[m.name]
        assert disk.mounted and os.path.ismount(m.data_dir), f"{m.data_dir} is not the member's own tmpfs"
        filler = m.data_dir / "robustness-filler"
        hold = ctx.rng.uniform(1.0, 3.0)
        t0 = time.monotonic()
        try:
            written = fill(filler, disk.size_mib << 20)
            stopped = wait_stopped(m, hold)
        finally:
            filler.unlink(missing_ok=True)
        outcome = exit_note(m) if stopped else "ran on"
        restart(ctx, m)
        return Injection(self.name, m.name, True, t0, time.monotonic(), f"{written >> 20} MiB filled, {outcome}")


def fill(path: Path, most: int) -> int:
    """Writes zeros to ``path`` until the filesystem is full (never more than ``most`` bytes); returns the bytes
    written."""
    chunk = bytes(1 << 20)
    written = 0
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while written + size <= most:
                    written += f.write(chunk[:size])
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    return written


class PeerNetwork(Fault):
    """A fault on the links between one member and every other, through the run's peer proxies:
    ``latency`` (a random member, 50–400 ms plus jitter each way, 1–4 s), ``drop`` (a random member's
    connections reset 1–4 times a second, 1–3 s), ``blackhole`` (the leader: nothing in or out, 1–3 s) and
    ``one-way loss`` (the leader: either nothing out or nothing in, 1–3 s)."""

    needs_proxy = True

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.name = f"peer {mode}"

    def applies(self, kind: str, size: int, netns: bool) -> bool:
        return size > 1

    def inject(self, ctx: Context) -> Injection:
        net = ctx.peers
        assert net is not None
        rng = ctx.rng
        m = pick(ctx, "leader" if self.mode in ("blackhole", "one-way loss") else "random")
        hold = rng.uniform(1.0, 4.0 if self.mode == "latency" else 3.0)
        out = inbound = Rule()
        note = f"{hold:.1f}s"
        if self.mode == "latency":
            d = rng.uniform(0.05, 0.4)
            out = inbound = Rule(delay=d, jitter=d / 2)
            note += f", {d * 1000:.0f} ms"
        elif self.mode == "drop":
            out = inbound = Rule(drop_per_s=rng.uniform(1.0, 4.0))
        elif self.mode == "blackhole":
            out = inbound = Rule(blocked=True)
        elif rng.random() < 0.5:
            out = Rule(blocked=True)
            note += ", nothing out"
        else:
            inbound = Rule(blocked=True)
            note += ", nothing in"
        t0 = time.monotonic()
        net.set(m.name, "*", out)
        net.set("*", m.name, inbound)
        try:
            time.sleep(hold)
        finally:
            net.clear()
        return Injection(self.name, m.name, True, t0, time.monotonic(), note)


def all_faults() -> list[Fault]:
    out: list[Fault] = [Kill("leader"), Kill("follower"), Kill("random"), Pause(), Partition(), PowerLoss(), Replace()]
    out += [PeerNetwork(mode) for mode in ("latency", "drop", "blackhole", "one-way loss")]
    out += [FsyncError(), DiskFull(), PowerLossInSnapshotInstall()]
    return out + [Failpoint("panic"), Failpoint("exit")]


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
