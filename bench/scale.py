"""Memory, size and recovery: what a server costs to hold data and watchers, and how long it takes to come back.

Contract: ``run_scale(kinds, quick, only, progress)`` runs, for each kind in turn, every part below on fresh
one-member clusters (``tests/harness/cluster.py``, the suite's ``SERVER_FLAGS``) and returns one ``Sample``
(size 1, round 0) per figure, named as the report shows it. Every figure is lower-is-better; the report reads
it through :func:`metric_for`. A part that fails records ``{"error": ...}`` for each figure it did not produce,
which the report shows as "n/a"; the other parts and kinds still run.

Sizes are ``FULL`` or, with ``--quick``, ``QUICK`` (in brackets):

- **RSS at 100k [10k] and 1M [100k] keys (MB), data dir at 1M [100k] keys (MB)**: the generator puts
  ``keys[0]`` distinct keys with 256-byte values (100 clients, 10 connections), the member settles for
  ``SETTLE`` seconds, then VmRSS (and RssAnon, RssFile) of the server process and the size of its data dir are
  read; then the rest up to ``keys[1]``, all new keys (:func:`load_argvs`), and the same again.
- **memory per watcher, 10k [2k] and 100k [10k] watchers (KB)**: on a fresh member, RSS is read, a separate
  client process (:mod:`bench.watchers`) opens W watchers on distinct keys over 100 streams and waits for all
  their ``created`` responses, the member settles, RSS is read again: (after - before) / W.
- **recovery: first Range after restart with a 1M [100k]-entry log (s)**: a member whose
  ``--snapshot-count`` (``RECOVERY_SNAPSHOT_COUNT``) is above the load, so its WAL holds every entry, takes
  that many puts over 1000 keys, is SIGKILLed and started again on the same data dir; the figure is the time
  from that process's start to its first successful serializable Range (polled every ``POLL`` seconds).
- **check datascale s (MB)**: ``etcdctl check datascale --load=s`` on a fresh member: its "Approximate system
  memory used" (the change of the server's ``process_resident_memory_bytes`` from ``/metrics`` over 10k
  1 KiB puts). A server without ``/metrics`` fails it; the error is recorded.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.progress import Progress
from bench.run import KIND_LABELS, REPO, SERVER_FLAGS, Sample, dir_mb, ensure_generator, run_generator, status_kb
from harness import etcdctl
from harness.cluster import Cluster, Member
from harness.servers import spawn
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

SETTLE = 2.0  # seconds between the end of a load and reading RSS
POLL = 0.01  # the recovery poll's period
RESTART_TIMEOUT = 600.0
LOAD_TIMEOUT = 3600.0
RECOVERY_SNAPSHOT_COUNT = 10_000_000
RECOVERY_KEY_SPACE = 1000
LOAD = {"key-size": 8, "val-size": 256, "clients": 100, "conns": 10}


@dataclass(frozen=True)
class Sizes:
    keys: tuple[int, ...]  # RSS is read after each; the data dir row is the last one's
    watchers: tuple[int, ...]
    log_entries: int
    datascale_load: str


FULL = Sizes(keys=(100_000, 1_000_000), watchers=(10_000, 100_000), log_entries=1_000_000, datascale_load="s")
QUICK = Sizes(keys=(10_000, 100_000), watchers=(2_000, 10_000), log_entries=100_000, datascale_load="s")


# -- names and metrics ----------------------------------------------------------------------------------------


def human(n: int) -> str:
    """100000 -> "100k", 1000000 -> "1M", 2500 -> "2.5k", 999 -> "999"."""
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= unit:
            return f"{n / unit:g}{suffix}"
    return str(n)


def rss_name(keys: int) -> str:
    return f"RSS at {human(keys)} keys (MB)"


def data_name(keys: int) -> str:
    return f"data dir at {human(keys)} keys (MB)"


def watcher_name(watchers: int) -> str:
    return f"memory per watcher, {human(watchers)} watchers (KB)"


def recovery_name(entries: int) -> str:
    return f"recovery: first Range after restart with a {human(entries)}-entry log (s)"


def datascale_name(load: str) -> str:
    return f"check datascale {load} (MB)"


# Name prefix -> the key of the sample's result the report reads; all lower-is-better.
METRICS = (
    ("RSS at ", "rss_mb"),
    ("data dir at ", "data_mb"),
    ("memory per watcher, ", "kb_per_watcher"),
    ("recovery: ", "seconds"),
    ("check datascale ", "memory_mb"),
)


def metric_for(name: str) -> str | None:
    """The result key a scale figure is read from, or None if ``name`` is not one of this module's."""
    return next((metric for prefix, metric in METRICS if name.startswith(prefix)), None)


# -- pure helpers -----------------------------------------------------------------------------------------------


def load_argvs(checkpoints: tuple[int, ...]) -> list[list[str]]:
    """Generator runs that bring a member to each of ``checkpoints`` distinct keys, every run writing new keys.

    pyetcd-bench names sequential key ``i`` as ``<--key-prefix><i % key-space-size, zero-padded to --key-size>``
    and has no offset, so run 0 writes ``00000000``.. and run ``j`` > 0 writes ``<j>0000000``.. (prefix ``j``,
    seven digits): all 8 bytes, distinct between runs as long as run 0 stays under 10^7 keys.
    """
    if any(b <= a for a, b in zip(checkpoints, checkpoints[1:], strict=False)) or len(checkpoints) > 9:
        raise ValueError(f"checkpoints must increase, at most 9 of them: {checkpoints}")
    if checkpoints and checkpoints[0] > 10**7:
        raise ValueError("the first load must stay under 10^7 keys")
    out, done = [], 0
    for j, n in enumerate(checkpoints):
        count = n - done
        naming = {"key-size": 8} if j == 0 else {"key-prefix": str(j), "key-size": 7}
        args = {**LOAD, **naming, "total": count, "key-space-size": count}
        out.append(["put", *(x for k, v in args.items() for x in (f"--{k}", str(v))), "--sequential-keys"])
        done = n
    return out


def recovery_argv(entries: int) -> list[str]:
    """``entries`` puts over ``RECOVERY_KEY_SPACE`` random keys: as many raft entries, a small key space."""
    args = {**LOAD, "total": entries, "key-space-size": RECOVERY_KEY_SPACE}
    return ["put", *(x for k, v in args.items() for x in (f"--{k}", str(v)))]


def with_flag(flags: list[str], name: str, value: str) -> list[str]:
    """``flags`` with ``name``'s value replaced (or the pair appended)."""
    out = list(flags)
    if name in out:
        out[out.index(name) + 1] = value
    else:
        out += [name, value]
    return out


class LoadFailed(RuntimeError):
    """The generator failed, or fewer puts than asked for succeeded."""


def checked_load(result: dict, expected: int) -> dict:
    """The generator's summary of a load that must have done ``expected`` puts, all of them successful."""
    if "error" in result:
        raise LoadFailed(f"generator: {result['error']}")
    if result.get("requests") != expected or result.get("errors"):
        raise LoadFailed(f"{result.get('requests')} of {expected} puts succeeded, {result.get('errors')} errors")
    return {k: result[k] for k in ("requests", "seconds", "rps") if k in result}


def memory(pid: int) -> dict[str, float]:
    """The process's resident memory in MB: total (VmRSS), anonymous and file-backed."""
    kb = status_kb(Path(f"/proc/{pid}/status").read_text())
    if "VmRSS" not in kb:
        raise RuntimeError(f"no VmRSS for pid {pid} (has it exited?)")
    return {"rss_mb": kb["VmRSS"] / 1024, "rss_anon_mb": kb.get("RssAnon", 0) / 1024,
            "rss_file_mb": kb.get("RssFile", 0) / 1024}  # fmt: skip


def per_watcher_kb(before_mb: float, after_mb: float, watchers: int) -> float:
    return (after_mb - before_mb) * 1024 / watchers


def parse_datascale(rc: int, stdout: str, stderr: str) -> dict:
    """``etcdctl check datascale`` output -> ``{"memory_mb", "pairs", "kv_bytes", "clients"}`` or ``{"error"}``.

    etcdctl prints "Start data scale check for work load [N key-value pairs, B bytes per key-value, C concurrent
    clients]." a progress bar, then "PASS: Approximate system memory used : X MB." (X may be negative: RSS can
    shrink), or FAIL lines, or "fetch error: ..." when the server's /metrics cannot be read.
    """
    out: dict = {}
    start = re.search(r"work load \[(\d+) key-value pairs, (\d+) bytes per key-value, (\d+) concurrent", stdout)
    if start:
        out.update(pairs=int(start[1]), kv_bytes=int(start[2]), clients=int(start[3]))
    used = re.search(r"PASS: Approximate system memory used : (-?[\d.]+) MB", stdout)
    if rc == 0 and used:
        out["memory_mb"] = float(used[1])
        return out
    lines = [ln.strip() for ln in (stdout + "\n" + stderr).replace("\r", "\n").splitlines()]
    why = [ln for ln in lines if ln.startswith(("FAIL", "fetch error", "could not find", "Error"))]
    out["error"] = f"rc={rc}: " + (" | ".join(why) or " | ".join(ln for ln in lines if ln)[-500:])
    return out


# -- the parts --------------------------------------------------------------------------------------------------

Emit = Callable[[str, dict], None]


@contextmanager
def fresh_member(kind: str, workdir: Path, flags: list[str] = SERVER_FLAGS) -> Iterator[tuple[Cluster, Member]]:
    """A one-member cluster of ``kind`` on a new data dir, killed and removed afterwards."""
    c = Cluster(kind, workdir, 1, extra_flags=flags, token=f"bench-scale-{kind}-{workdir.name}")
    c.start()
    try:
        yield c, c.members[0]
    finally:
        c.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def measure_keys(kind: str, workdir: Path, sizes: Sizes, emit: Emit) -> None:
    with fresh_member(kind, workdir) as (_, m):
        done, usage = 0, {}
        for n, argv in zip(sizes.keys, load_argvs(sizes.keys), strict=True):
            load = checked_load(run_generator(argv, [m.endpoint], timeout=LOAD_TIMEOUT), n - done)
            done = n
            time.sleep(SETTLE)
            usage = {"keys": n, **memory(m.proc.pid), "data_mb": dir_mb(m.data_dir), "load": load}
            emit(rss_name(n), usage)
        emit(data_name(sizes.keys[-1]), usage)


@contextmanager
def watchers_open(endpoint: str, count: int, log: Path) -> Iterator[dict]:
    """``count`` watchers held open by a :mod:`bench.watchers` process; yields what it printed once all were
    created; the process is told to exit (stdin closed) afterwards. Its stderr goes to ``log``."""
    with open(log, "ab") as err:
        p = subprocess.Popen(
            [sys.executable, "-m", "bench.watchers", endpoint, str(count)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
        )  # fmt: skip
    try:
        line = p.stdout.readline()  # the client has its own deadline: this returns
        info = json.loads(line) if line.strip() else {"error": f"exited with {p.wait()}"}
        if "error" in info:
            tail = log.read_text(errors="replace")[-500:]
            raise RuntimeError(f"watcher client: {info['error']}" + (f"\n{tail}" if tail else ""))
        yield info
    finally:
        p.stdin.close()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def measure_watchers(kind: str, workdir: Path, sizes: Sizes, emit: Emit) -> None:
    for w in sizes.watchers:
        with fresh_member(kind, workdir / f"w{w}") as (_, m):
            time.sleep(SETTLE)
            before = memory(m.proc.pid)
            with watchers_open(m.endpoint, w, m.log_path.with_name("watchers.log")) as client:
                time.sleep(SETTLE)
                after = memory(m.proc.pid)
            emit(watcher_name(w), {
                "watchers": w, "kb_per_watcher": per_watcher_kb(before["rss_mb"], after["rss_mb"], w),
                "before": before, "after": after, "client_seconds": client.get("seconds"),
            })  # fmt: skip


def first_range_after_start(m: Member) -> float:
    """Start ``m``'s process again (same argv, log appended) and return the seconds from its start to the first
    successful serializable Range.

    Each attempt uses a fresh channel (a local subchannel pool, so no reconnect backoff carries over) and a long
    deadline: while the port is closed it fails at once and is retried ``POLL`` later; once the port accepts
    connections the attempt waits for the server to serve and returns the moment it answers.
    """
    with open(m.log_path, "ab") as log:
        log.write(b"\n--- bench: restart on the same data dir (recovery timing) ---\n")
    start = time.monotonic()
    m.proc = spawn(m.argv, m.log_path)
    req = rpc_pb2.RangeRequest(key=b"__bench_recovery__", serializable=True)
    while True:
        left = start + RESTART_TIMEOUT - time.monotonic()
        if m.proc.poll() is not None:
            raise RuntimeError(f"{m.name} exited with {m.proc.returncode} on restart\n{m.log_tail()}")
        if left <= 0:
            raise TimeoutError(f"{m.name} served no Range within {RESTART_TIMEOUT}s of restart\n{m.log_tail()}")
        with grpc.insecure_channel(m.endpoint, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            try:
                rpc_pb2_grpc.KVStub(ch).Range(req, timeout=left)
                return time.monotonic() - start
            except grpc.RpcError:
                pass
        time.sleep(POLL)


def measure_recovery(kind: str, workdir: Path, sizes: Sizes, emit: Emit) -> None:
    n = sizes.log_entries
    flags = with_flag(SERVER_FLAGS, "--snapshot-count", str(RECOVERY_SNAPSHOT_COUNT))
    with fresh_member(kind, workdir, flags) as (c, m):
        load = checked_load(run_generator(recovery_argv(n), [m.endpoint], timeout=LOAD_TIMEOUT), n)
        data_mb, wal_mb = dir_mb(m.data_dir), dir_mb(m.data_dir / "member" / "wal")
        c.kill(m)
        seconds = first_range_after_start(m)
        with grpc.insecure_channel(m.endpoint) as ch:
            st = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=30, wait_for_ready=True)
        emit(recovery_name(n), {
            "seconds": seconds, "entries": n, "revision_after": st.header.revision,
            "raft_index_after": st.raftIndex, "data_mb": data_mb, "wal_mb": wal_mb, "load": load,
        })  # fmt: skip


def measure_datascale(kind: str, workdir: Path, sizes: Sizes, emit: Emit) -> None:
    with fresh_member(kind, workdir) as (_, m):
        r = etcdctl.run(m.endpoint, "check", "datascale", f"--load={sizes.datascale_load}", timeout=900)
        emit(datascale_name(sizes.datascale_load), parse_datascale(r.rc, r.stdout, r.stderr))


@dataclass(frozen=True)
class Part:
    slug: str
    names: Callable[[Sizes], list[str]]
    run: Callable[[str, Path, Sizes, Emit], None]


PARTS = [
    Part("keys", lambda s: [*map(rss_name, s.keys), data_name(s.keys[-1])], measure_keys),
    Part("watchers", lambda s: [*map(watcher_name, s.watchers)], measure_watchers),
    Part("recovery", lambda s: [recovery_name(s.log_entries)], measure_recovery),
    Part("datascale", lambda s: [datascale_name(s.datascale_load)], measure_datascale),
]


def selected(sizes: Sizes, only: list[str] | None) -> list[Part]:
    """The parts with a figure whose name contains one of ``only`` (all of them without ``only``)."""
    return [p for p in PARTS if not only or any(o in name for o in only for name in p.names(sizes))]


def scale_steps(kinds: list[str], quick: bool, only: list[str] | None, sizes: Sizes | None = None) -> int:
    """How many progress steps ``run_scale`` takes: one per figure per kind."""
    sizes = sizes or (QUICK if quick else FULL)
    return len(kinds) * sum(len(p.names(sizes)) for p in selected(sizes, only))


def run_scale(
    kinds: list[str],
    quick: bool,
    only: list[str] | None,
    progress: Progress | None = None,
    sizes: Sizes | None = None,
) -> list[Sample]:
    """Every selected part for each kind in turn; ``sizes`` overrides FULL/QUICK (for a tiny trial run)."""
    sizes = sizes or (QUICK if quick else FULL)
    parts = selected(sizes, only)
    if not parts:
        return []
    ensure_generator()
    progress = progress or Progress(scale_steps(kinds, quick, only, sizes))
    samples: list[Sample] = []
    base = Path(tempfile.mkdtemp(prefix="pyetcd-bench-scale-"))
    try:
        for kind in kinds:
            for part in parts:
                done: set[str] = set()

                def emit(name: str, result: dict, kind: str = kind, done: set[str] = done) -> None:
                    done.add(name)
                    samples.append(Sample(kind, 1, 0, name, result))
                    progress.step(f"{KIND_LABELS.get(kind, kind)} x1 scale: {name}")

                try:
                    part.run(kind, base / f"{kind}-{part.slug}", sizes, emit)
                except Exception as e:  # one failed part is n/a in the report, the rest still runs
                    for name in part.names(sizes):
                        if name not in done:
                            emit(name, {"error": f"{type(e).__name__}: {e}"[-1000:]})
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return samples
