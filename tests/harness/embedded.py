"""An embedded member for tests that look inside the server process (``pyetcd_fast.embed.Etcd``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyetcd_fast.embed.etcd import Etcd
from pyetcd_fast.etcdmain.config import parse


@contextmanager
def embedded_member(data_dir: Path, *extra_flags: str) -> Iterator[Etcd]:
    """A member on ephemeral loopback ports, served from its own thread, closed on exit."""
    cfg = parse(
        [
            "--data-dir", str(data_dir),
            "--listen-client-urls", "http://127.0.0.1:0",
            "--advertise-client-urls", "http://127.0.0.1:2379",
            "--listen-peer-urls", "http://127.0.0.1:0",
            *extra_flags,
        ],
        {},
    )  # fmt: skip
    etcd = Etcd(cfg)
    etcd.start_background()
    try:
        yield etcd
    finally:
        etcd.close()
