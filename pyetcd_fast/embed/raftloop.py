"""The raft Ready loop on an asyncio event loop: one native call per batch.

The native server wakes us through an eventfd when requests are queued; each wake-up (and each tick)
runs ``process_ready``, which proposes everything queued, persists, applies and advances in one GIL-free call.

Fail-stop: anything ``process_ready`` or ``tick`` raises (an OSError from the WAL or the backend, a native
panic surfacing as PanicException) means a batch may be half done on the durability path. The loop stops at
once and hands the error to ``on_fatal``, which must stop the member without acknowledging anything more
(``Server.fail``); the ``pyetcd`` process then exits non-zero and its restart recovers from the WAL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pyetcd_fast import _native


class ReadyLoop:
    """Drives ``server`` from ``loop``: ticks every ``tick_seconds`` and runs a batch on every wake-up."""

    def __init__(
        self,
        server: _native.Server,
        loop: asyncio.AbstractEventLoop,
        tick_seconds: float,
        on_fatal: Callable[[BaseException], None],
        *,
        on_removed: Callable[[], None] | None = None,
        on_published: Callable[[], None] | None = None,
    ) -> None:
        self._server = server
        self._loop = loop
        self._tick_seconds = tick_seconds
        self._on_fatal = on_fatal
        self._on_removed = on_removed
        self._on_published = on_published
        self._published = False
        self._fd = server.notify_fd()
        self._tick_handle: asyncio.TimerHandle | None = None
        self._running = False
        # How often Python ran for this member: once per wake-up and once per tick, never per request,
        # watch event or keep-alive (tests read these to check that).
        self.batches = 0
        self.ticks = 0

    def start(self) -> None:
        self._running = True
        self._loop.add_reader(self._fd, self._process)
        self._tick_handle = self._loop.call_later(self._tick_seconds, self._tick)
        self._process()

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._loop.remove_reader(self._fd)
        if self._tick_handle is not None:
            self._tick_handle.cancel()

    def _process(self) -> None:
        if not self._running:
            return
        self.batches += 1
        if not self._survived(self._server.process_ready):
            return
        if self._server.removed:
            self.stop()
            if self._on_removed is not None:
                self._on_removed()
        elif not self._published and self._server.published:
            self._published = True
            if self._on_published is not None:
                self._loop.call_soon(self._on_published)

    def _survived(self, call: Callable[[], object]) -> bool:
        """Runs one native call; on any failure the loop stops and the member is failed (fail-stop)."""
        try:
            call()
        except (KeyboardInterrupt, SystemExit):
            raise  # the call itself completed: these came after it, for the embedding program
        except BaseException as e:  # a PanicException is a BaseException
            self.stop()
            self._on_fatal(e)
            return False
        return True

    def _tick(self) -> None:
        if not self._running:
            return
        self.ticks += 1
        if not self._survived(self._server.tick):
            return
        self._process()
        self._tick_handle = self._loop.call_later(self._tick_seconds, self._tick)
