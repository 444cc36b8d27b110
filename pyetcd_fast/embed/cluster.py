"""``pyetcd_fast.EtcdCluster``: an N-member cluster of ``python -m pyetcd_fast`` processes, for tests.

Contract: ``with EtcdCluster(size=3) as cluster:`` starts members ``n1..nN`` in parallel as subprocesses on
free loopback ports, bootstrapped statically (``--initial-cluster n1=...,n2=... --initial-cluster-state new``)
under a temporary base dir, and returns once every member serves and a leader is agreed on. Keyword flags are
etcd's (as ``Etcd`` takes them) and go to every member; the per-member ones (name, data dir, URLs, initial
cluster) are the cluster's; ``ETCD_*`` variables are not passed on. Each member's output goes to
``<base>/<name>.log``, its data to ``<base>/<name>``.

- ``cluster.members`` are ``ClusterMember``s (``cluster.member("n2")`` by name); ``cluster.client()`` is a
  ``Client`` of every endpoint (it fails over), ``member.client()`` one of that member alone.
- ``wait_leader()`` polls until the running, unpaused members that agree on a leader are a majority of the
  cluster, all on the leader's side of any partition; ``leader`` looks once (None when there is none now).
- A member is ``stop``-ped (SIGTERM), ``kill``-ed (SIGKILL), ``restart``-ed on its data dir with
  ``--initial-cluster-state existing``, ``pause``-d and ``resume``-d (SIGSTOP/SIGCONT). Stopping or killing
  the leader returns once a majority still running has elected another (``wait_leader=False``: at once), so
  the next write is not forwarded to a dead leader and lost (it would time out, as with etcd).
- With ``proxy=True`` (the default) every byte between members passes a ``PeerNet`` (``embed.proxy``): each
  member advertises the proxy's port and listens on its own. ``partition(["n1"], ["n2", "n3"])`` blocks both
  directions between groups (members not named form one more group), ``isolate(m)`` cuts one member off, and
  ``heal()`` lifts every rule; held bytes then flow, as TCP retransmits them.
- ``close()`` (the end of the ``with`` block) kills what is left and removes the base dir; so does interpreter
  exit for a cluster never closed, so no member outlives the test process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import pyetcd_fast
from pyetcd_fast.client import Client
from pyetcd_fast.embed.member import flags_to_argv, free_port
from pyetcd_fast.embed.proxy import PeerNet, Rule
from pyetcd_fast.errors import EtcdError

__all__ = ["ClusterMember", "EtcdCluster"]

START_TIMEOUT = 30.0  # a member's process serves clients within this
STOP_TIMEOUT = 10.0  # a SIGTERM-ed member exits within this, or is killed
STATUS_TIMEOUT = 0.5
POLL = 0.02
# Flags the cluster sets per member; a caller giving one would break the bootstrap.
OWN_FLAGS = {
    "name", "data_dir", "listen_client_urls", "advertise_client_urls", "listen_peer_urls",
    "initial_advertise_peer_urls", "initial_cluster", "initial_cluster_state",
}  # fmt: skip
PACKAGE_ROOT = str(Path(pyetcd_fast.__file__).resolve().parent.parent)


def member_env() -> dict[str, str]:
    """A member process's environment: ours without etcd's ``ETCD_*`` variables (the cluster's flags alone
    configure a member), and with this pyetcd_fast's directory first on the path unless it is a site dir (a
    checkout run with ``PYTHONPATH=.`` or from a test's ``sys.path``), so the member runs the code we run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    sites = {str(Path(p).resolve()) for p in (*site.getsitepackages(), site.getusersitepackages())}
    if PACKAGE_ROOT not in sites:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return env


class ClusterMember:
    """One member process of an ``EtcdCluster`` (see the module docstring).

    ``name`` (``n1``...), ``endpoint`` (its client ``host:port``), ``id`` (its member id, known once it served),
    ``log_path`` (its output), ``running`` (the process lives) and ``paused`` (SIGSTOP-ped).
    """

    def __init__(self, cluster: EtcdCluster, name: str, client_port: int, argv: list[str]) -> None:
        self._cluster = weakref.ref(cluster)  # not a strong one: the exit hook holds members, not the cluster
        self.name = name
        self.endpoint = f"127.0.0.1:{client_port}"
        self.id = 0  # the member id, read from Status once the member serves
        self.log_path = cluster.base / f"{name}.log"
        self.paused = False
        self._argv = argv
        self._proc: subprocess.Popen[bytes] | None = None
        self._status: Client | None = None

    @property
    def running(self) -> bool:
        """The process lives (a paused member too)."""
        return self._proc is not None and self._proc.poll() is None

    def client(self, **kw: object) -> Client:
        """A client of this member alone (keyword arguments as ``Client`` takes them)."""
        return Client([self.endpoint], **kw)  # type: ignore[arg-type]

    def stop(self, *, wait_leader: bool = True) -> None:
        """SIGTERM, a clean stop (SIGKILL if it has not exited within 10 s); waits until it has exited and, as
        ``kill`` does, for a new leader."""
        if self._proc is None or not self.running:
            return
        led = wait_leader and self._leads()
        self._proc.terminate()
        if self.paused:
            self.resume()  # a stopped process only handles SIGTERM once it runs again
        try:
            self._proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill(wait_leader=False)
        self._failover(led)

    def kill(self, *, wait_leader: bool = True) -> None:
        """SIGKILL, as a crash (the data dir is kept for ``restart``); waits until it has exited.

        When it led and a majority still runs, also waits until they have elected a new leader (unless
        ``wait_leader=False``): a write sent before that is forwarded to the dead leader and lost, and fails
        with "request timed out" after etcd's request timeout (5 s + 2 election timeouts), as with etcd.
        """
        led = wait_leader and self.running and self._leads()
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait(STOP_TIMEOUT)
        self.paused = False
        self._failover(led)

    def restart(self) -> None:
        """Start the stopped member again on its data dir and wait until it serves clients."""
        if self.running:
            raise RuntimeError(f"{self.name} is still running")
        self._argv = [a for a in self._argv if not a.startswith("--initial-cluster-state=")]
        self._argv.append("--initial-cluster-state=existing")
        with open(self.log_path, "ab") as log:
            log.write(b"\n--- EtcdCluster: restart on the same data dir ---\n")
        self._spawn()
        self._wait_serving()

    def pause(self) -> None:
        """SIGSTOP: the process stays but answers nothing, as a member stuck on a slow disk or a long GC."""
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGCONT)
        self.paused = False

    def _reported_leader(self) -> int | None:
        """The leader id this member reports now; None when it does not answer (0: it knows none)."""
        if not self.running or self.paused:
            return None
        if self._status is None:
            self._status = self.client(timeout=STATUS_TIMEOUT, dial_timeout=STATUS_TIMEOUT)
        try:
            st = self._status.status()
        except EtcdError:
            return None
        self.id = st.header.member_id
        return st.leader

    def _leads(self) -> bool:
        cluster = self._cluster()
        return cluster is not None and cluster.leader is self

    def _failover(self, led: bool) -> None:
        cluster = self._cluster()
        if led and cluster is not None and sum(m.running and not m.paused for m in cluster.members) > cluster.size // 2:
            cluster.wait_leader()

    def log_tail(self, n: int = 20) -> str:
        """The last ``n`` lines the process wrote."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            # -P: the working directory is not put on the path, so it cannot shadow the package (member_env).
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "pyetcd_fast", *self._argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=member_env(),
            )
        self.paused = False
        self._close_status()  # a new process: dial it afresh

    def _wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self._reported_leader() is None:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not serve within {timeout} s:\n{self.log_tail()}")
            time.sleep(POLL)

    def _close_status(self) -> None:
        if self._status is not None:
            self._status.close()
            self._status = None

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<ClusterMember {self.name} {self.endpoint} id={self.id:x} {state}>"


class EtcdCluster:
    """``size`` member processes (see the module docstring); ``start``/``close`` or a ``with`` block."""

    def __init__(self, size: int = 3, *, proxy: bool = True, **flags: object) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        if clash := OWN_FLAGS & flags.keys():
            raise ValueError(f"EtcdCluster sets these flags per member: {sorted(clash)}")
        self.size = size
        self.base = Path(tempfile.mkdtemp(prefix="pyetcd-cluster-"))
        self.members: list[ClusterMember] = []
        self._net = PeerNet() if proxy else None
        self._groups: dict[str, int] = {}  # member name -> partition group; empty when healed
        self._finalizer = weakref.finalize(self, _shut, self.members, self._net, self.base)
        self._build(flags)

    def _build(self, flags: dict[str, object]) -> None:
        taken: set[int] = set()

        def port() -> int:
            while (p := free_port()) in taken:
                pass
            taken.add(p)
            return p

        names = [f"n{i + 1}" for i in range(self.size)]
        ports = {n: (port(), port(), port() if self._net else 0) for n in names}  # client, peer, proxy
        advertised = {n: f"http://127.0.0.1:{p[2] or p[1]}" for n, p in ports.items()}
        common = {
            "initial_cluster": ",".join(f"{n}={u}" for n, u in advertised.items()),
            "initial_cluster_token": self.base.name,  # unique: two clusters never take each other's members
            **flags,
        }
        for n in names:
            client, peer, proxy = ports[n]
            argv = flags_to_argv(
                {
                    "name": n,
                    "data_dir": str(self.base / n),
                    "listen_client_urls": f"http://127.0.0.1:{client}",
                    "advertise_client_urls": f"http://127.0.0.1:{client}",
                    "listen_peer_urls": f"http://127.0.0.1:{peer}",
                    "initial_advertise_peer_urls": advertised[n],
                    "initial_cluster_state": "new",
                    **common,
                }
            )
            if self._net is not None:
                self._net.add(n, proxy, peer)
            self.members.append(ClusterMember(self, n, client, argv))

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> EtcdCluster:
        """Start every member at once, wait until each serves and a leader is agreed on."""
        try:
            for m in self.members:
                m._spawn()
            for m in self.members:
                m._wait_serving()
            if self._net is not None:
                self._net.ids.update({m.id: m.name for m in self.members})
            self.wait_leader()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill every member, stop the proxies and remove the base dir (logs too)."""
        self._finalizer()

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- clients and members ---------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """Every member's client ``host:port``, in member order."""
        return [m.endpoint for m in self.members]

    def client(self, **kw: object) -> Client:
        """A client of every member, failing over between them (keyword arguments as ``Client`` takes them)."""
        return Client(self.endpoints, **kw)  # type: ignore[arg-type]

    def member(self, name: str) -> ClusterMember:
        """The member called ``name``."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    # -- leadership ------------------------------------------------------------------------------------

    @property
    def leader(self) -> ClusterMember | None:
        """The leader a majority agrees on now (as ``wait_leader`` counts), or None."""
        votes: dict[int, list[ClusterMember]] = {}
        for m in self.members:
            lead = m._reported_leader()
            if lead:
                votes.setdefault(lead, []).append(m)
        for lead, voters in votes.items():
            leader = next((m for m in self.members if m.id == lead), None)
            if leader is None or not leader.running or leader.paused:
                continue
            side = self._groups.get(leader.name, 0)
            if sum(self._groups.get(v.name, 0) == side for v in voters) > self.size // 2:
                return leader
        return None

    def wait_leader(self, timeout: float = 10.0) -> ClusterMember:
        """Poll until a majority of members, running, unpaused and on the leader's side, agree on a leader."""
        deadline = time.monotonic() + timeout
        while (leader := self.leader) is None:
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {m.name} ---\n{m.log_tail(10)}" for m in self.members)
                raise TimeoutError(f"no leader within {timeout} s: {self.members}\n{tails}")
            time.sleep(POLL)
        return leader

    # -- network faults --------------------------------------------------------------------------------

    def partition(self, *groups: Iterable[str | ClusterMember] | str | ClusterMember) -> None:
        """Block peer traffic both ways between ``groups`` (each a list of names or members, or one of them);
        members not named form one more group. Replaces any earlier partition."""
        if self._net is None:
            raise RuntimeError("partitions need EtcdCluster(proxy=True)")
        side = {n: 0 for n in (m.name for m in self.members)}  # not named: group 0
        for i, group in enumerate(groups, 1):
            for m in [group] if isinstance(group, (str, ClusterMember)) else group:
                side[self.member(m if isinstance(m, str) else m.name).name] = i
        self._net.clear()
        for a in side:
            for b in side:
                if side[a] != side[b]:
                    self._net.set(a, b, Rule(blocked=True))
        self._groups = side

    def isolate(self, member: str | ClusterMember) -> None:
        """Cut ``member`` off from every other member."""
        self.partition([member])

    def heal(self) -> None:
        """Lift every network fault."""
        if self._net is not None:
            self._net.clear()
        self._groups = {}


def _shut(members: list[ClusterMember], net: PeerNet | None, base: Path) -> None:
    """``close`` and the interpreter-exit hook: holds no reference to the cluster, so it can be collected."""
    for m in members:
        m.kill(wait_leader=False)
        m._close_status()
    if net is not None:
        net.close()
    shutil.rmtree(base, ignore_errors=True)
