"""The ``pyetcd`` command: etcd's flags in, a serving member out, a clean stop on SIGTERM/SIGINT.

Fail-stop, as etcd: a native panic on any thread ends the process at once with status 2 (the panic hook);
a fatal error the Ready loop sees (a failed fsync or backend commit) stops the member without syncing and
ends the process with status 1, skipping interpreter shutdown so nothing more reaches the disk.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from pyetcd_fast import _native
from pyetcd_fast.embed.etcd import Etcd, new_event_loop
from pyetcd_fast.etcdmain.config import ConfigError, parse
from pyetcd_fast.etcdmain.log import configure, get_logger


async def _serve(etcd: Etcd) -> int:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        get_logger().info("received signal; shutting down", signal=sig.name)
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    etcd.start(loop)
    stop_watch = asyncio.ensure_future(asyncio.to_thread(etcd.stopped.wait))
    signalled = asyncio.ensure_future(done.wait())
    await asyncio.wait([stop_watch, signalled], return_when=asyncio.FIRST_COMPLETED)
    await etcd.graceful_stop()
    signalled.cancel()
    await stop_watch
    return 1 if etcd.fatal is not None else 0


def raise_fd_limit() -> None:
    """Open files up to the hard limit, as Go's runtime does for etcd: a member holds a descriptor per client
    and peer connection, and the default soft limit (1024) is soon reached."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    import os

    try:
        cfg = parse(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as e:
        if e.message:
            print(e.message, file=sys.stderr if e.exit_code else sys.stdout)
        sys.exit(e.exit_code)
    configure(cfg)
    _native.install_fail_stop()
    raise_fd_limit()
    etcd = Etcd(cfg)
    loop = new_event_loop()
    try:
        code = loop.run_until_complete(_serve(etcd))
    except (OSError, ConfigError) as e:
        get_logger().error("failed to start etcd", error=str(e))
        code = 1
    finally:
        loop.close()
    if etcd.fatal is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    sys.exit(code)
