"""``Watch`` and ``AsyncWatch``: the events of a watch as an iterator / async iterator.

Contract: events arrive in revision order, each revision's events together. The watch resumes by itself
after a disconnect or a leader change, from the revision after the last one delivered (no event lost or
repeated). ``cancel()`` (or leaving a ``with`` block) ends it; Ctrl-C interrupts a sync wait at once, and
cancelling the task that awaits an async one loses nothing (the next wait gets what that one would have). A
compacted start revision raises ``errors.Compacted``, whose ``compact_revision`` says where history begins.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

from pyetcd_fast import _native
from pyetcd_fast._native import Event

__all__ = ["FILTERS", "AsyncWatch", "Event", "Watch"]

FILTERS = {"noput": 0, "nodelete": 1}

Batch = tuple[int, list[Event]]


class Watch:
    """The events of a watch (see the module docstring): ``for event in watch``. Iteration is native: a batch
    of events is built once and handed out one by one without Python code in between."""

    def __init__(self, native: _native.Watch) -> None:
        self._native = native

    def __iter__(self) -> Iterator[Event]:
        return self._native

    def __next__(self) -> Event:
        return next(self._native)

    def next_batch(self, timeout: float | None = None) -> Batch | None:
        """The next answer's events with its header revision (no events: a progress notification); None
        once canceled; ``errors.Timeout`` after ``timeout`` seconds without one."""
        return self._native.next_batch(timeout)

    def request_progress(self) -> None:
        """Asks the server how far the watch is; the answer comes as an empty batch."""
        self._native.request_progress()

    @property
    def next_revision(self) -> int:
        """The revision the watch would resume from."""
        return self._native.next_revision

    def cancel(self) -> None:
        """Ends the watch: iteration stops at once (events received but not yet taken are dropped)."""
        self._native.cancel()

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()


class AsyncWatch:
    """The events of a watch for asyncio (see the module docstring): ``async for event in watch``."""

    def __init__(self, native: _native.Watch, submit: Callable[..., asyncio.Future[Any]]) -> None:
        self._native = native
        self._submit = submit
        self._buf: deque[Event] = deque()
        self._waiting: asyncio.Future[Any] | None = None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while not self._buf:
            batch = await self.next_batch()
            if batch is None:
                raise StopAsyncIteration
            self._buf.extend(batch[1])
        return self._buf.popleft()

    async def next_batch(self) -> Batch | None:
        """The next answer's events with its header revision (no events: progress); None once canceled."""
        if self._buf:
            events = list(self._buf)
            self._buf.clear()
            return (events[-1].kv.mod_revision, events)
        if self._waiting is None:
            self._waiting = self._submit(self._native.next_batch_async)
        # Shielded: a cancelled await leaves the wait running, and the next call takes its answer.
        batch: Batch | None = await asyncio.shield(self._waiting)
        self._waiting = None
        return batch

    def cancel(self) -> None:
        """Ends the watch: iteration stops at once (events received but not yet taken are dropped)."""
        self._native.cancel()
        self._buf.clear()
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()
