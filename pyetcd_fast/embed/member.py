"""``pyetcd_fast.Etcd``: a member started inside this Python process from etcd's flags as keyword arguments.

Contract: ``Etcd(name="n1", snapshot_count=1000, ...)`` takes any flag ``pyetcd`` takes (``data_dir`` for
``--data-dir``; ``True`` for a bare boolean flag, lists joined by commas) and builds its config through the
same parser as the command line. Flags left out get what a test wants: a temporary data dir (removed on
stop), free loopback ports for clients and peers, and ``log_level="error"`` (a library is quiet).
``with Etcd() as server:`` returns once the member serves clients and has a leader; ``server.client()`` is a
``pyetcd_fast.Client`` connected to it, ``server.async_client()`` a ``pyetcd_fast.AsyncClient``.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from types import TracebackType

from pyetcd_fast.aio import AsyncClient
from pyetcd_fast.client import Client
from pyetcd_fast.embed.etcd import Etcd as Member
from pyetcd_fast.errors import EtcdError
from pyetcd_fast.etcdmain.config import parse
from pyetcd_fast.etcdmain.log import configure

__all__ = ["Etcd", "flags_to_argv"]

# How long `start` waits for a leader once clients are served.
LEADER_TIMEOUT = 10.0


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def flags_to_argv(flags: dict[str, object]) -> list[str]:
    """``{"data_dir": "d", "auto_tls": True}`` → ``["--data-dir=d", "--auto-tls=true"]``."""
    argv = []
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(f"{flag}={'true' if value else 'false'}")
        elif isinstance(value, (list, tuple)):
            argv.append(f"{flag}={','.join(str(v) for v in value)}")
        else:
            argv.append(f"{flag}={value}")
    return argv


class Etcd:
    """One member in this process (see the module docstring); ``start``/``stop`` or a ``with`` block."""

    def __init__(self, **flags: object) -> None:
        self.flags = dict(flags)
        self._tmp: str | None = None
        self._member: Member | None = None
        self.endpoints: list[str] = []

    def start(self) -> Etcd:
        flags = dict(self.flags)
        flags.setdefault("log_level", "error")  # a library is quiet unless asked
        if "data_dir" not in flags:
            self._tmp = tempfile.mkdtemp(prefix="pyetcd-")
            flags["data_dir"] = self._tmp
        if "listen_client_urls" not in flags:
            url = f"http://127.0.0.1:{free_port()}"
            flags["listen_client_urls"] = url
            flags.setdefault("advertise_client_urls", url)
        if "listen_peer_urls" not in flags:
            url = f"http://127.0.0.1:{free_port()}"
            flags["listen_peer_urls"] = url
            flags.setdefault("initial_advertise_peer_urls", url)
            flags.setdefault("initial_cluster", f"{flags.get('name', 'default')}={url}")
        cfg = parse(flags_to_argv(flags), {})
        configure(cfg)  # the process logger takes the member's level and outputs, as the command line does
        member = Member(cfg)
        member.start_background()
        self._member = member
        self.endpoints = [u.split("://", 1)[-1] for u in cfg.advertise_client_urls]
        try:
            self._wait_leader()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_leader(self) -> None:
        with self.client(timeout=1.0) as c:
            deadline = time.monotonic() + LEADER_TIMEOUT
            while True:
                try:
                    if c.status().leader:
                        return
                except EtcdError:
                    if time.monotonic() > deadline:
                        raise
                if time.monotonic() > deadline:
                    raise TimeoutError("no leader")
                time.sleep(0.01)

    def client(self, **kw: object) -> Client:
        """A client of this member (keyword arguments as ``Client`` takes them)."""
        return Client(self.endpoints, **kw)  # type: ignore[arg-type]

    def async_client(self, **kw: object) -> AsyncClient:
        """An asyncio client of this member (keyword arguments as ``AsyncClient`` takes them)."""
        return AsyncClient(self.endpoints, **kw)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Stops the member and removes the temporary data dir it made."""
        if self._member is not None:
            self._member.close()
            self._member = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Etcd:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
