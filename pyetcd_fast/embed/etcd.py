"""``Etcd``: one member's lifecycle — open the data dir, drive raft, serve clients, stop."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from urllib.parse import urlsplit

from pyetcd_fast import _native
from pyetcd_fast.embed import bootstrap, tls
from pyetcd_fast.embed.compactor import Compactor, parse_retention
from pyetcd_fast.embed.raftloop import ReadyLoop
from pyetcd_fast.etcdmain.config import Config, ConfigError
from pyetcd_fast.etcdmain.log import get_logger

# How often a stopping leader looks whether it has handed leadership over yet.
HANDOVER_POLL = 0.01

LOG_LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3, "panic": 3, "fatal": 3}


def has_wal(wal_dir: str) -> bool:
    """Whether ``wal_dir`` holds a WAL segment (the member was bootstrapped before)."""
    try:
        return any(name.endswith(".wal") for name in os.listdir(wal_dir))
    except FileNotFoundError:
        return False


def url_host_port(url: str) -> str:
    """``http://localhost:2379`` → ``localhost:2379`` (what the native edge binds)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.hostname is None or parts.port is None:
        raise ValueError(f'URL address does not have the form "host:port": {url}')
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}"


def edge_threads() -> int:
    """Tokio workers for the client ports: every CPU this process may use but one, which the raft Ready loop
    and its fsyncs keep busy; at least one. (On 2 cores a second edge worker only adds context switches.)"""
    return max(1, len(os.sched_getaffinity(0)) - 1)


class Etcd:
    """One member. ``start`` on a running loop, or ``start_background`` for a thread of its own."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.log = get_logger()
        self.server: _native.Server | None = None
        self.client_addrs: list[str] = []
        self.peer_addrs: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready_loop: ReadyLoop | None = None
        self._compactor: Compactor | None = None
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._tls: tls.Tls | None = None
        self.stopped = threading.Event()
        # Set once clients are served (after the member published itself through raft).
        self.serving = threading.Event()
        # Set once the member serves or stopped (what start_background waits for).
        self._settled = threading.Event()
        self.fatal: BaseException | None = None

    def _open(self) -> _native.Server:
        cfg = self.cfg
        member_dir = cfg.member_dir
        os.makedirs(os.path.join(member_dir, "snap"), mode=0o700, exist_ok=True)
        self._lock_fd = os.open(os.path.join(member_dir, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(f"data dir {cfg.data_dir_path} is in use by another etcd process") from None
        if has_wal(cfg.wal_dir_path):
            # A restart: the ids live in the WAL, the membership in the backend; --initial-cluster* are
            # ignored, as etcd does.
            start = bootstrap.Start(0, 0, [], False)
        else:
            peer_ctx = tls.ssl_context(self._tls.peer) if self._tls is not None else None
            start = bootstrap.plan(cfg, self.log.info, peer_ctx)
        _native.set_log_level(LOG_LEVELS.get(cfg.log_level, 1))
        return _native.Server(
            {
                "name": cfg.name,
                "wal_dir": cfg.wal_dir_path,
                "backend_dir": os.path.join(cfg.snap_dir, "db"),
                "member_id": start.member_id,
                "cluster_id": start.cluster_id,
                "initial_members": start.members,
                "new_cluster": start.new_cluster,
                "heartbeat_ms": cfg.heartbeat_interval,
                "election_ms": cfg.election_timeout,
                "max_request_bytes": cfg.max_request_bytes,
                "max_txn_ops": cfg.max_txn_ops,
                "snapshot_count": cfg.snapshot_count,
                "snapshot_catchup_entries": cfg.experimental_snapshot_catchup_entries,
                "pre_vote": cfg.pre_vote,
                "wal_fsync": not cfg.unsafe_no_fsync,
                "watch_progress_notify_ms": int(cfg.experimental_watch_progress_notify_interval * 1000),
                "quota_bytes": cfg.quota_backend_bytes_effective or 0,
                "backend_batch_interval_ms": int(cfg.backend_batch_interval * 1000),
                "backend_batch_limit": cfg.backend_batch_limit,
                "client_urls": list(cfg.advertise_client_urls),
                "enable_v2": cfg.enable_v2,
                "auth_token": cfg.auth_token,
                "auth_token_ttl": cfg.auth_token_ttl,
                "bcrypt_cost": cfg.bcrypt_cost,
                "max_concurrent_streams": min(cfg.max_concurrent_streams, 2**32 - 1),
            }
        )

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Opens the member and serves it from ``loop`` (the caller's running loop)."""
        cfg = self.cfg
        self._loop = loop
        self.log.info(
            "starting an etcd server",
            name=cfg.name,
            **{"data-dir": cfg.data_dir_path, "listen-client-urls": cfg.listen_client_urls},
        )
        self._tls = tls.prepare(cfg, self.log.warn)
        self.server = server = self._open()
        self.peer_addrs = server.serve_peers(
            [(url_host_port(u), tls.is_tls(u)) for u in cfg.listen_peer_urls], self._tls.peer
        )
        self._ready_loop = ReadyLoop(
            server,
            loop,
            cfg.heartbeat_interval / 1000.0,
            self._on_fatal,
            on_removed=self._on_removed,
            on_published=self._serve_clients,
        )
        self._ready_loop.start()
        mode = cfg.auto_compaction_mode or "periodic"
        try:
            retention = parse_retention(mode, cfg.auto_compaction_retention)
        except ValueError as e:
            raise ConfigError(str(e), 1) from None
        self._compactor = Compactor(server, loop, mode, retention)
        self._compactor.start()
        st = server.status()
        self.log.info(
            "enabled capabilities for version",
            **{
                "local-member-id": f"{st['member_id']:x}",
                "cluster-id": f"{st['cluster_id']:x}",
                "cluster-version": "3.4",
            },
        )

    def _serve_clients(self) -> None:
        """Clients are served once this member's attributes went through raft (etcd's ReadyNotify): by
        then it has a leader and has caught up, and every member lists its name. The Ready loop calls this
        after the batch that applied them."""
        if self.stopped.is_set() or self.server is None:
            return
        listen = [(url_host_port(u), tls.is_tls(u)) for u in self.cfg.listen_client_urls]
        client_tls = self._tls.client if self._tls is not None else None
        try:
            self.client_addrs = self.server.serve(listen, worker_threads=edge_threads(), tls=client_tls)
        except OSError as e:
            self._on_fatal(e)
            return
        self.log.info("ready to serve client requests")
        for addr, (_, secure) in zip(self.client_addrs, listen, strict=False):
            if secure:
                self.log.info("serving client traffic securely", address=addr)
            else:
                self.log.warn(f"serving insecure client requests on {addr}, this is strongly discouraged!")
        self.serving.set()
        self._settled.set()

    def _on_removed(self) -> None:
        self.log.error("the member has been permanently removed from the cluster")
        self.log.info("the data-dir used by this member must be removed")
        self.stop()

    def _on_fatal(self, exc: BaseException) -> None:
        """Fail-stop (etcd's lg.Fatal): nothing more is acknowledged or written; unlike ``stop``, nothing is
        synced or committed, since the failed batch may be half applied. The restart recovers from the WAL."""
        if self.stopped.is_set():
            return
        self.fatal = exc
        self.log.error("etcd server stopped on a fatal error", error=f"{type(exc).__name__}: {exc}")
        self._halt(fail=True)

    async def graceful_stop(self) -> None:
        """``stop``, after handing leadership to another voter if this member leads (etcd does the same on
        SIGTERM), so the others need not wait out an election timeout."""
        server = self.server
        if server is not None and not self.stopped.is_set() and server.transfer_leadership() is not None:
            me = server.member_id
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2 * self.cfg.election_timeout / 1000.0
            while loop.time() < deadline and server.status()["leader"] == me and not self.stopped.is_set():
                await asyncio.sleep(HANDOVER_POLL)
        self.stop()

    def stop(self) -> None:
        """Stops serving and syncs the member's files. Safe to call twice."""
        if self.stopped.is_set():
            return
        self.log.info("closing etcd server", name=self.cfg.name, **{"data-dir": self.cfg.data_dir_path})
        self._halt(fail=False)

    def _halt(self, *, fail: bool) -> None:
        """Stops the compactor, the Ready loop and the member: ``Server.stop`` (synced) or ``Server.fail``."""
        if self._compactor is not None:
            self._compactor.stop()
        if self._ready_loop is not None:
            self._ready_loop.stop()
        if self.server is not None and fail:
            self.server.fail()
        elif self.server is not None:
            self.server.stop()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.stopped.set()
        self._settled.set()

    def start_background(self) -> None:
        """Serves from a thread with its own event loop (for embedding in programs and test suites); returns
        once clients are served, or raises what stopped the member first."""

        def run() -> None:
            loop = new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                self.start(loop)
            except BaseException as e:  # surfaced to the caller below
                self.fatal = e
                self._settled.set()
                return
            loop.run_until_complete(asyncio.to_thread(self.stopped.wait))
            loop.close()

        self._thread = threading.Thread(target=run, name="pyetcd-raft", daemon=True)
        self._thread.start()
        self._settled.wait()
        if self.fatal is not None:
            raise self.fatal

    def close(self) -> None:
        """``stop`` from any thread, then wait for a background member's thread."""
        if self._loop is not None and self._thread is not None and not self.stopped.is_set():
            self._loop.call_soon_threadsafe(self.stop)
            self.stopped.wait(10)
        else:
            self.stop()
        if self._thread is not None:
            self._thread.join(10)
        # Let go of the native member, so that its files close now and the same process may open the data dir
        # again (LMDB allows one environment per file per process). A fatal error's traceback holds the Ready
        # loop's frames, and through them the member.
        self.server = None
        self._ready_loop = None
        self._compactor = None
        if self.fatal is not None:
            self.fatal = self.fatal.with_traceback(None)

    def __enter__(self) -> Etcd:
        self.start_background()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
