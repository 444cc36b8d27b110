"""One robustness run: a cluster, traffic, one kind of fault injected repeatedly, then every check.

Contract of ``run_once(spec, workdir)``:
1. start a cluster of ``spec.size`` members of ``spec.kind`` (ours, or real etcd 3.4.23) on loopback, or each
   member in its own network namespace when the fault needs one; ours gets a failpoints endpoint per member;
   data dirs on lazyfs or a tmpfs of their own, and proxies in front of the peer ports, when the fault needs
   them (a fault that cannot be set up here is reported as "skipped: <why>");
2. record traffic (``traffic.Traffic``) for ``spec.duration`` seconds while ``spec.fault`` is injected again
   and again (a pause of 0.5–1.5 s between injections);
3. heal: every member running, a leader agreed on; stop the traffic (its watches catch up first);
4. check: the history (``validate``: linearizability, watches, leases); HashKV equal on every member at one
   revision; every member restarts (kill -9, start) and serves; a final write succeeds;
5. return a ``RunResult`` with the counts the report needs, and save the history as JSON beside the
   members' logs when anything failed (``python -m robustness.validate <file>`` checks it again). A run that
   breaks (an exception, e.g. a member that cannot restart) is a failed run with its traceback, and what it
   recorded until then is validated too.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from harness.cluster import Cluster
from harness.netns import NetnsFabric, NetnsUnavailable
from harness.servers import free_port
from pyetcd_fast.embed.proxy import PeerNet
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from robustness.faults import Context, Fault, Injection, wait_healthy
from robustness.history import History, Operation
from robustness.lazyfs import LazyFS, fuse_unavailable_reason
from robustness.tmpfs import Tmpfs, tmpfs_unavailable_reason
from robustness.traffic import Traffic
from robustness.validate import validate

# etcd's robustness suite snapshots often, so that snapshot paths run under faults too.
SNAPSHOT_COUNT = 100


@dataclass
class Spec:
    kind: str
    size: int
    fault: Fault
    duration: float = 20.0
    seed: int = 0
    rate: float = 500.0
    clients: int = 8
    extra_flags: list[str] = field(default_factory=list)

    @property
    def scenario(self) -> str:
        return self.fault.name


@dataclass
class RunResult:
    spec: Spec
    ok: bool
    operations: int = 0
    faults: int = 0
    faults_fired: int = 0
    linearizability_violations: int = 0
    lost_writes: int = 0
    watch_violations: int = 0
    lease_violations: int = 0
    other_failures: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    max_unavailable_s: float = 0.0
    members_restarted: int = 0
    seconds: float = 0.0
    saved: Path | None = None
    injections: list[Injection] = field(default_factory=list)


def longest_unavailability(history: History, start: float, end: float) -> float:
    """The longest stretch of the run in which no write succeeded (a put, delete or txn with an answer)."""
    done = sorted(op.ret for op in history.operations if op.ret is not None and op.error is None and is_write(op))
    points = [start, *(t for t in done if start <= t <= end), end]
    return max((b - a for a, b in zip(points, points[1:], strict=False)), default=0.0)


def is_write(op: Operation) -> bool:
    return type(op.request).__name__ in ("Put", "Delete", "Txn")


class MountUnavailable(Exception):
    """The power-loss filesystem or a tmpfs cannot be mounted here (the reason is the message)."""


def start_cluster(spec: Spec, workdir: Path, ctx: Context) -> NetnsFabric | None:
    """Starts ``ctx.cluster`` with what the fault needs: failpoints endpoints (ours), lazyfs or tmpfs data
    dirs, peer proxies, network namespaces, the fault's environment and flags. On any failure, whatever was
    set up is released before the exception goes on."""
    if spec.fault.needs_lazyfs and (reason := fuse_unavailable_reason()):
        raise MountUnavailable(reason)
    if spec.fault.needs_tmpfs and (reason := tmpfs_unavailable_reason()):
        raise MountUnavailable(reason)
    fabric = NetnsFabric() if spec.fault.name.startswith("partition") else None
    try:
        _start(spec, workdir, ctx, fabric)
    except BaseException:
        release(ctx)
        if fabric is not None:
            fabric.close()
        raise
    return fabric


def _start(spec: Spec, workdir: Path, ctx: Context, fabric: NetnsFabric | None) -> None:
    flags = ["--snapshot-count", str(SNAPSHOT_COUNT), *spec.fault.extra_flags, *spec.extra_flags]
    cluster = ctx.cluster = Cluster(
        spec.kind, workdir, spec.size, extra_flags=flags, fabric=fabric, peer_proxies=spec.fault.needs_proxy
    )
    if spec.fault.needs_proxy:
        ctx.peers = PeerNet(random.Random(spec.seed))
        for m in cluster.members:
            ctx.peers.add(m.name, m.peer_port, m.listen_peer_port)
    for m in cluster.members:
        m.env.update(spec.fault.member_env)
        if spec.kind == "ours":
            ctx.failpoint_ports[m.name] = free_port() if fabric is None else 2381
            m.env["PYETCD_FAILPOINTS_HTTP"] = f"{m.host}:{ctx.failpoint_ports[m.name]}"
        if spec.fault.needs_lazyfs:
            m.data_dir.mkdir(parents=True, exist_ok=True)
            fs = ctx.filesystems[m.name] = LazyFS(m.data_dir.parent / "backing", m.data_dir)
            fs.mount()
        if spec.fault.needs_tmpfs:
            disk = ctx.disks[m.name] = Tmpfs(m.data_dir)
            try:
                disk.mount()
            except subprocess.CalledProcessError as e:
                raise MountUnavailable(f"mounting a tmpfs failed: {e.stderr.decode(errors='replace').strip()}") from e
    cluster.start()
    if ctx.peers is not None:
        ctx.peers.ids = {m.member_id: m.name for m in cluster.members}


def release(ctx: Context) -> None:
    """Unmounts the run's filesystems and closes its peer proxies."""
    for fs in ctx.filesystems.values():
        fs.unmount()
    for disk in ctx.disks.values():
        disk.unmount()
    if ctx.peers is not None:
        ctx.peers.close()


def check_cluster(cluster: Cluster) -> tuple[list[str], int]:
    """HashKV equal everywhere at one revision; every member restarts and serves; a final write succeeds."""
    failures: list[str] = []
    rev = cluster.wait_converged(timeout=30)
    hashes = {}
    for m in cluster.live():
        r = cluster.hashkv(m, rev)
        hashes[m.name] = (r.hash, r.compact_revision)
    if len(set(hashes.values())) != 1:
        failures.append(f"HashKV at revision {rev} differs: {hashes}")
    restarted = 0
    for m in list(cluster.live()):
        cluster.kill(m)
        try:
            cluster.restart(m)
            restarted += 1
        except Exception as e:  # noqa: BLE001 (reported, not raised: the other checks still run)
            failures.append(f"{m.name} did not restart: {e}")
    wait_healthy(cluster)
    leader, _ = cluster.wait_leader(timeout=15)
    try:
        kv = rpc_pb2_grpc.KVStub(cluster.channel(leader))
        kv.Put(rpc_pb2.PutRequest(key=b"robustness/final", value=b"ok"), timeout=10)
    except grpc.RpcError as e:
        failures.append(f"the final write failed: {e.code().name} {e.details()}")
    return failures, restarted


def record_verdict(result: RunResult, history: History) -> None:
    """Validates ``history`` and counts its violations by kind into ``result``."""
    result.violations = validate(history).violations
    for v in result.violations:
        if v.startswith("lease:"):
            result.lease_violations += 1
        elif "lost" in v:
            result.lost_writes += 1
        elif "watch" in v.lower():
            result.watch_violations += 1
        else:
            result.linearizability_violations += 1


def run_once(spec: Spec, workdir: Path) -> RunResult:
    t0 = time.monotonic()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    result = RunResult(spec, ok=False)
    ctx = Context(None, random.Random(spec.seed))  # type: ignore[arg-type]  # the cluster comes next
    try:
        fabric = start_cluster(spec, workdir, ctx)
    except (NetnsUnavailable, MountUnavailable) as e:
        result.other_failures.append(f"skipped: {e}")
        return result
    except Exception:  # noqa: BLE001 (a cluster that does not start is a failed run, not the end of the matrix)
        result.other_failures.append(traceback.format_exc(limit=6))
        return result
    cluster = ctx.cluster
    injections: list[Injection] = []
    history: History | None = None
    traffic = Traffic([m.endpoint for m in cluster.members], clients=spec.clients, rate=spec.rate, seed=spec.seed)
    try:
        traffic.start()
        begin = time.monotonic()
        end = begin + spec.duration
        while time.monotonic() < end:
            time.sleep(ctx.rng.uniform(0.5, 1.5))
            if time.monotonic() >= end:
                break
            injections.append(spec.fault.inject(ctx))
        wait_healthy(cluster)
        history = traffic.stop()
        result.operations = len(history.operations)
        # Up to when the clients ran: after them the recorder only watches the kept leases expire.
        result.max_unavailable_s = longest_unavailability(history, begin, traffic.stopped_at)
        record_verdict(result, history)
        failures, result.members_restarted = check_cluster(cluster)
        result.other_failures += failures
    except Exception:  # noqa: BLE001 (a run that breaks is a failed run, with its traceback in the report)
        result.other_failures.append(traceback.format_exc(limit=6))
        if history is None:
            traffic.drain_timeout = 0.0  # the cluster may be down: do not wait for the watches
            try:
                history = traffic.stop()
                result.operations = len(history.operations)
                record_verdict(result, history)  # what was recorded until the break is checked too
            except Exception as e:  # noqa: BLE001
                result.other_failures.append(f"stopping the traffic or checking its history: {e}")
    finally:
        cluster.stop_all()
        release(ctx)
        if fabric is not None:
            fabric.close()
    result.injections = injections
    result.other_failures += [f"{i.fault} on {i.member}: {i.failure}" for i in injections if i.failure]
    result.faults = len(injections)
    result.faults_fired = sum(i.fired for i in injections)
    result.ok = not result.violations and not result.other_failures
    result.seconds = time.monotonic() - t0
    if history is not None and not result.ok:
        result.saved = workdir / "history.json"
        history.to_json(result.saved)
    elif result.ok:
        shutil.rmtree(workdir, ignore_errors=True)
    return result
