"""Start an N-member cluster of one server kind, find its leader, crash, restart and change members.

``Cluster(kind, workdir, size)`` bootstraps members ``m1..mN`` statically, as etcd's
clustering guide does: each gets ``--name --data-dir --listen-client-urls
--advertise-client-urls --listen-peer-urls --initial-advertise-peer-urls
--initial-cluster m1=<peer>,... --initial-cluster-token <token> --initial-cluster-state new
--heartbeat-interval --election-timeout`` (etcd's defaults, 100 and 1000 ms, unless given),
then ``extra_flags``. ``kind`` is as in ``servers.server_cmd`` ("ours" is real etcd under
``PYETCD_TEST_OURS_IS_ETCD=1``). All processes are started first, then each is waited
for: a member is ready when a linearizable Range succeeds on it (a learner: a serializable
one, the only read it serves); its member id is then read from Maintenance.Status.

Members listen on loopback with kernel-picked ports, or, given a ``netns.NetnsFabric``,
each in its own namespace on ``<subnet>.i:2379/2380`` and on 127.0.0.1:2379 inside it.
With ``peer_proxies=True`` (loopback only) a member listens for peers on one port and
advertises another, ``peer_port``, where the test puts a proxy that forwards to
``listen_peer_port``: every byte between members then passes through the test's proxies.

- ``leader()`` asks every reachable member's Status and returns the member whose id all
  of them report as leader; ``wait_leader(exclude, timeout)`` polls that, returning the
  leader and the seconds it took.
- ``kill`` (SIGKILL), ``stop`` (SIGTERM) and ``restart`` (the same argv, log appended;
  ``relaunch`` does not wait until it serves).
- ``add_member`` runs the real ``etcdctl member add`` (``--learner`` optional) and starts
  the new process with the ``ETCD_INITIAL_CLUSTER`` etcdctl printed and
  ``--initial-cluster-state existing``; ``remove_member`` runs ``etcdctl member remove``.
- ``partition``/``heal`` delegate to the fabric; a partitioned member is not asked by
  ``leader()`` and not used as a default etcdctl endpoint.

Every wait is bounded and fails with the members' log tails. ``stop_all`` kills what is
left; fixtures call it in finalizers and an atexit hook catches anything left over.

Helpers for tests: ``read_prefix`` (one member's view of a prefix), ``hashes_at``
(Maintenance.HashKV at one revision on each member) and ``bulk_put`` (many puts, fast,
with futures over several connections).
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from harness import etcdctl as ctl
from harness import ops
from harness.netns import NetnsFabric, Node
from harness.servers import STOP_TIMEOUT, free_port, server_cmd, spawn, wait_serving
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

HEARTBEAT_MS = 100
ELECTION_MS = 1000
STATUS_TIMEOUT = 1.0
POLL = 0.02
UNHEALTHY = "etcdserver: unhealthy cluster"
UNHEALTHY_RETRY = 20.0
# Reconnect quickly to a member that was killed and restarted (gRPC's default backoff grows to minutes).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
]

_counter = itertools.count()
_live: list[Cluster] = []


class NoLeader(AssertionError):
    """The members asked do not agree on a leader that is one of them."""


@dataclass(eq=False)
class Member:
    name: str
    data_dir: Path
    log_path: Path
    host: str  # the address peers and the test process use
    client_port: int
    peer_port: int  # advertised to the peers
    listen_hosts: list[str]  # client URLs are served on each
    listen_peer_port: int = 0  # where the member listens for peers, when not peer_port (a proxy between)
    node: Node | None = None
    prefix: list[str] = field(default_factory=list)  # argv prefix, e.g. ip netns exec
    flags: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    member_id: int = 0
    learner: bool = False
    removed: bool = False
    partitioned: bool = False
    env: dict[str, str] = field(default_factory=dict)  # set over the environment at every (re)start
    client_scheme: str = "http"
    peer_scheme: str = "http"

    @property
    def endpoint(self) -> str:
        """host:port for gRPC and etcdctl from the test process."""
        return f"{self.host}:{self.client_port}"

    @property
    def local_endpoint(self) -> str:
        """host:port from inside the member's own namespace (loopback there)."""
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"{self.client_scheme}://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"{self.peer_scheme}://{self.host}:{self.peer_port}"

    @property
    def listen_peer_url(self) -> str:
        return f"{self.peer_scheme}://{self.host}:{self.listen_peer_port or self.peer_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    def __repr__(self) -> str:
        return f"<{self.name} {self.endpoint} id={self.member_id:x}>"


@dataclass
class Stubs:
    kv: rpc_pb2_grpc.KVStub
    lease: rpc_pb2_grpc.LeaseStub
    watch: rpc_pb2_grpc.WatchStub
    maintenance: rpc_pb2_grpc.MaintenanceStub
    cluster: rpc_pb2_grpc.ClusterStub


class Cluster:
    def __init__(
        self,
        kind: str,
        workdir: Path,
        size: int = 3,
        *,
        heartbeat_ms: int = HEARTBEAT_MS,
        election_ms: int = ELECTION_MS,
        extra_flags: Iterable[str] = (),
        fabric: NetnsFabric | None = None,
        token: str | None = None,
        peer_proxies: bool = False,
        client_scheme: str = "http",
        peer_scheme: str = "http",
        credentials: grpc.ChannelCredentials | None = None,
        ctl_flags: Iterable[str] = (),
    ) -> None:
        """With ``https`` schemes the members' TLS flags go in ``extra_flags``; the test reaches their client
        ports with ``credentials`` (gRPC) and ``ctl_flags`` (etcdctl's ``--cacert ...``)."""
        self.kind = kind
        self.workdir = workdir
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.extra_flags = list(extra_flags)
        self.fabric = fabric
        self.peer_proxies = peer_proxies
        self.client_scheme = client_scheme
        self.peer_scheme = peer_scheme
        self.credentials = credentials
        self.ctl_flags = list(ctl_flags)
        self.token = token or f"pyetcd-test-{os.getpid()}-{next(_counter)}"
        self.members: list[Member] = []
        self._created = 0
        self._ports: set[int] = set()
        self._channels: dict[Member, grpc.Channel] = {}
        self._lock = threading.Lock()  # writer threads share the channels
        for i in range(size):
            self.members.append(self._new_member(f"m{i + 1}"))

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Cluster:
        """Bootstrap every member with ``--initial-cluster-state new``: start all, then wait for each."""
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        try:
            for m in self.members:
                m.flags = self._flags(m, initial, "new")
                self._spawn(m)
            for m in self.members:
                self._wait_ready(m)
        except BaseException:
            self.stop_all()
            raise
        return self

    def live(self) -> list[Member]:
        """Members whose process runs (and that were not removed)."""
        return [m for m in self.members if m.alive() and not m.removed]

    def reachable(self) -> list[Member]:
        return [m for m in self.live() if not m.partitioned]

    def by_id(self, member_id: int) -> Member | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    def kill(self, m: Member) -> None:
        """SIGKILL, as a crash; the data dir and ports are kept for ``restart``."""
        if m.alive():
            m.proc.kill()
            m.proc.wait(STOP_TIMEOUT)

    def stop(self, m: Member) -> None:
        """SIGTERM (a clean stop), SIGKILL if it does not exit."""
        if m.alive():
            m.proc.terminate()
            try:
                m.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(STOP_TIMEOUT)

    def restart(self, m: Member) -> None:
        """Start ``m`` again with the same flags (``--initial-cluster-state`` is ignored on an existing data dir)."""
        self.relaunch(m)
        self._wait_ready(m)

    def relaunch(self, m: Member) -> None:
        """``restart`` without waiting until it serves (for a member expected to stop again on its own)."""
        if m.alive():
            raise RuntimeError(f"{m.name} is still running")
        with open(m.log_path, "ab") as log:
            log.write(b"\n--- harness: restart on the same data dir ---\n")
        self._spawn(m)

    def start_member(self, m: Member) -> None:
        """Start a member whose flags are set (one ``add_member(start=False)`` made, or after a stop)."""
        self._spawn(m)
        self._wait_ready(m)

    def stop_all(self) -> None:
        """SIGKILL every member (a clean stop of a whole cluster waits seconds on leader transfer)."""
        procs = [m.proc for m in self.members if m.alive()]
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(STOP_TIMEOUT)
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
        if self in _live:
            _live.remove(self)

    # -- clients -------------------------------------------------------------------------

    def channel(self, m: Member) -> grpc.Channel:
        """A cached channel to ``m`` that reconnects within half a second after a restart."""
        with self._lock:
            ch = self._channels.get(m)
            if ch is None:
                if self.credentials is None:
                    ch = grpc.insecure_channel(m.endpoint, options=CHANNEL_OPTIONS)
                else:
                    ch = grpc.secure_channel(m.endpoint, self.credentials, options=CHANNEL_OPTIONS)
                self._channels[m] = ch
            return ch

    def stubs(self, m: Member) -> Stubs:
        ch = self.channel(m)
        return Stubs(
            rpc_pb2_grpc.KVStub(ch),
            rpc_pb2_grpc.LeaseStub(ch),
            rpc_pb2_grpc.WatchStub(ch),
            rpc_pb2_grpc.MaintenanceStub(ch),
            rpc_pb2_grpc.ClusterStub(ch),
        )

    def status(self, m: Member, timeout: float = STATUS_TIMEOUT) -> rpc_pb2.StatusResponse:
        return self.stubs(m).maintenance.Status(rpc_pb2.StatusRequest(), timeout=timeout)

    def hashkv(self, m: Member, revision: int, timeout: float = 10.0) -> rpc_pb2.HashKVResponse:
        return self.stubs(m).maintenance.HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=timeout)

    def etcdctl(self, *args: str, member: Member | None = None, timeout: float = ctl.TIMEOUT) -> ctl.Result:
        """The real etcdctl against ``member``, or against every reachable voter."""
        targets = [member] if member else [m for m in self.reachable() if not m.learner]
        return ctl.run(",".join(m.endpoint for m in targets), *self.ctl_flags, *args, timeout=timeout)

    def etcdctl_inside(self, m: Member, *args: str, timeout: float = ctl.TIMEOUT) -> ctl.Result:
        """etcdctl run next to ``m`` (in its namespace, against its loopback URL): it reaches ``m`` when cut off."""
        prefix = self.fabric.exec_prefix(m.node) if m.node else []
        return ctl.run(m.local_endpoint, *args, timeout=timeout, argv_prefix=prefix)

    # -- leadership and progress -----------------------------------------------------------

    def leader(self, exclude: Iterable[Member] = ()) -> Member:
        """The member every reachable member (but ``exclude``) names as leader; ``NoLeader`` otherwise."""
        excluded = set(exclude)
        asked = [m for m in self.reachable() if m not in excluded]
        seen: dict[str, int] = {}
        for m in asked:
            try:
                seen[m.name] = self.status(m).leader
            except grpc.RpcError as e:
                raise NoLeader(f"{m.name}: Status failed: {e.code().name} {e.details()}") from None
        ids = set(seen.values())
        if len(ids) != 1 or 0 in ids:
            raise NoLeader(f"no agreement on a leader: {seen}")
        leader = self.by_id(ids.pop())
        if leader not in asked:
            raise NoLeader(f"the agreed leader is not among the members asked: {seen}")
        return leader

    def wait_leader(self, exclude: Iterable[Member] = (), timeout: float | None = None) -> tuple[Member, float]:
        """Poll ``leader(exclude)`` until it answers; returns (leader, seconds waited)."""
        excluded = list(exclude)
        timeout = timeout if timeout is not None else 10 * self.election_ms / 1000
        start = time.monotonic()
        while True:
            try:
                return self.leader(excluded), time.monotonic() - start
            except NoLeader as e:
                if time.monotonic() - start > timeout:
                    raise NoLeader(f"no leader after {timeout}s: {e}\n{self.log_tails()}") from None
            time.sleep(POLL)

    def wait_caught_up(self, m: Member, timeout: float = 30.0) -> rpc_pb2.StatusResponse:
        """Wait until ``m`` has applied as far as the leader had when this was called; returns ``m``'s Status."""
        leader, _ = self.wait_leader(timeout=timeout)
        target = self.status(leader).raftAppliedIndex
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                st = self.status(m)
                if st.raftAppliedIndex >= target:
                    return st
                last = st.raftAppliedIndex
            except grpc.RpcError as e:
                last = e.code().name
            time.sleep(POLL)
        raise TimeoutError(f"{m.name} did not reach applied index {target} in {timeout}s (at {last})\n{m.log_tail()}")

    def wait_converged(self, timeout: float = 30.0) -> int:
        """With writes stopped: wait until every live member has the same applied index and revision; returns it."""
        deadline = time.monotonic() + timeout
        seen: dict[str, object] = {}
        while time.monotonic() < deadline:
            seen = {}
            for m in self.live():
                try:
                    st = self.status(m)
                    seen[m.name] = (st.raftAppliedIndex, st.header.revision)
                except grpc.RpcError as e:
                    seen[m.name] = e.code().name
            if len(set(seen.values())) == 1 and isinstance(next(iter(seen.values())), tuple):
                return next(iter(seen.values()))[1]
            time.sleep(POLL)
        raise TimeoutError(f"members did not converge in {timeout}s: {seen}\n{self.log_tails()}")

    def log_tails(self, n: int = 15) -> str:
        return "\n".join(f"--- {m.name} ---\n{m.log_tail(n)}" for m in self.members)

    # -- membership ------------------------------------------------------------------------

    def add_member(self, name: str, *, learner: bool = False, start: bool = True) -> Member:
        """``etcdctl member add`` (with ``--learner``), then start it as etcdctl said to (unless ``start=False``)."""
        m = self._new_member(name)
        args = ["member", "add", name, f"--peer-urls={m.peer_url}"] + (["--learner"] if learner else [])
        res = self.reconfigure(*args)
        if res.rc != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed ({res.rc}): {res.stderr}")
        # etcdctl prints ids with Go's %16x: space-padded to 16 columns.
        added = re.search(r"^Member +([0-9a-f]+) added to cluster +([0-9a-f]+)$", res.stdout, re.M)
        env = dict(re.findall(r'^(ETCD_[A-Z_]+)="(.*)"$', res.stdout, re.M))
        if not added or "ETCD_INITIAL_CLUSTER" not in env:
            raise RuntimeError(f"unexpected etcdctl member add output:\n{res.stdout}")
        m.member_id = int(added[1], 16)
        m.learner = learner
        m.flags = self._flags(m, env["ETCD_INITIAL_CLUSTER"], env.get("ETCD_INITIAL_CLUSTER_STATE", "existing"))
        self.members.append(m)
        if start:
            self.start_member(m)
        return m

    def reconfigure(self, *args: str, member: Member | None = None) -> ctl.Result:
        """``etcdctl member ...``, retried while etcd says "unhealthy cluster".

        With --strict-reconfig-check (the default) etcd refuses to add or remove a member until
        the member it asks has been connected to every voter for 5 s (etcdserver.HealthInterval),
        so right after a start or restart the first attempt fails.
        """
        deadline = time.monotonic() + UNHEALTHY_RETRY
        while True:
            res = self.etcdctl(*args, member=member)
            if res.rc == 0 or UNHEALTHY not in res.stderr or time.monotonic() > deadline:
                return res
            time.sleep(0.25)

    def remove_member(self, m: Member) -> ctl.Result:
        """``etcdctl member remove <id>`` through another member; ``m`` is then no longer live."""
        other = next(x for x in self.reachable() if x is not m and not x.learner)
        res = self.reconfigure("member", "remove", f"{m.member_id:x}", member=other)
        if res.rc != 0:
            raise RuntimeError(f"etcdctl member remove {m.member_id:x} failed ({res.rc}): {res.stderr}")
        m.removed = True
        return res

    def promote_member(self, m: Member) -> ctl.Result:
        """``etcdctl member promote <id>``; on success ``m`` counts as a voter from then on."""
        res = self.reconfigure("member", "promote", f"{m.member_id:x}")
        if res.rc == 0:
            m.learner = False
        return res

    # -- partitions ------------------------------------------------------------------------

    def partition(self, m: Member) -> None:
        self.fabric.partition(m.node)
        m.partitioned = True

    def heal(self, m: Member) -> None:
        self.fabric.heal(m.node)
        m.partitioned = False

    # -- internals -------------------------------------------------------------------------

    def _new_member(self, name: str) -> Member:
        self._created += 1
        member_dir = self.workdir / name
        member_dir.mkdir(parents=True, exist_ok=True)
        data_dir = member_dir / "data"
        shutil.rmtree(data_dir, ignore_errors=True)
        if self.fabric is not None:
            node = self.fabric.node(self._created)
            return Member(
                name, data_dir, member_dir / "server.log", node.ip, 2379, 2380, [node.ip, "127.0.0.1"], node=node,
                prefix=self.fabric.exec_prefix(node),
            )  # fmt: skip
        client_port, peer_port = self._port(), self._port()
        listen_peer_port = self._port() if self.peer_proxies else 0
        return Member(
            name, data_dir, member_dir / "server.log", "127.0.0.1", client_port, peer_port, ["127.0.0.1"],
            listen_peer_port=listen_peer_port, client_scheme=self.client_scheme, peer_scheme=self.peer_scheme,
        )  # fmt: skip

    def _port(self) -> int:
        while True:
            p = free_port()
            if p not in self._ports:
                self._ports.add(p)
                return p

    def _flags(self, m: Member, initial_cluster: str, state: str) -> list[str]:
        return [
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", ",".join(f"{m.client_scheme}://{h}:{m.client_port}" for h in m.listen_hosts),
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.listen_peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", state,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            *self.extra_flags,
        ]  # fmt: skip

    def _spawn(self, m: Member) -> None:
        if self not in _live:
            _live.append(self)
        m.argv = [*m.prefix, *server_cmd(self.kind, m.flags)]
        m.proc = spawn(m.argv, m.log_path, env=m.env)

    def _wait_ready(self, m: Member) -> None:
        wait_serving(
            m.proc,
            m.endpoint,
            f"{self.kind} member {m.name}",
            m.argv,
            m.log_tail,
            serializable=m.learner,
            credentials=self.credentials,
        )
        # The cached channel may still be backing off from the member's previous life: wait for it to connect
        # rather than fail fast.
        st = self.stubs(m).maintenance.Status(rpc_pb2.StatusRequest(), timeout=10.0, wait_for_ready=True)
        m.member_id = st.header.member_id


# -- helpers for tests ------------------------------------------------------------------------


def read_prefix(
    cluster: Cluster, m: Member, prefix: bytes, *, serializable: bool = False
) -> tuple[int, dict[bytes, rpc_pb2.KeyValue]]:
    """Every key under ``prefix`` as ``m`` sees it: (header revision, key -> KeyValue)."""
    req = rpc_pb2.RangeRequest(key=prefix, range_end=ops.prefix_end(prefix), serializable=serializable)
    resp = cluster.stubs(m).kv.Range(req, timeout=30.0)
    return resp.header.revision, {kv.key: kv for kv in resp.kvs}


def hashes_at(cluster: Cluster, revision: int, members: Iterable[Member] | None = None) -> dict[str, int]:
    """Maintenance.HashKV at ``revision`` on each member: name -> hash (equal on members in sync)."""
    return {m.name: cluster.hashkv(m, revision).hash for m in (members or cluster.live())}


def bulk_put(
    cluster: Cluster, members: Iterable[Member], items: Iterable[tuple[bytes, bytes]], *, inflight: int = 128
) -> dict[bytes, int]:
    """Put ``items`` fast: futures kept ``inflight`` deep, spread over two connections to each of ``members``.

    Returns key -> the revision its put reported; any failed put raises.
    """
    channels = [
        grpc.insecure_channel(m.endpoint, options=[("grpc.use_local_subchannel_pool", 1)])
        for m in members
        for _ in range(2)
    ]
    stubs = [rpc_pb2_grpc.KVStub(ch) for ch in channels]
    pending: deque[tuple[bytes, grpc.Future]] = deque()
    revisions: dict[bytes, int] = {}
    try:
        for i, (key, value) in enumerate(items):
            fut = stubs[i % len(stubs)].Put.future(rpc_pb2.PutRequest(key=key, value=value), timeout=30.0)
            pending.append((key, fut))
            if len(pending) >= inflight:
                k, f = pending.popleft()
                revisions[k] = f.result().header.revision
        while pending:
            k, f = pending.popleft()
            revisions[k] = f.result().header.revision
    finally:
        for ch in channels:
            ch.close()
    return revisions


@atexit.register
def _stop_leftovers() -> None:
    for c in list(_live):
        c.stop_all()
