"""Ops/s of a call run in a loop for a fixed time: from threads (``ops_per_s``) or from asyncio tasks
(``tasks_ops_per_s``). Standard library only: ``bench/etcd3_driver.py`` imports it from python-etcd3's venv."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable


def ops_per_s(op: Callable[[int], object], threads: int, seconds: float) -> float:
    """``op(i)`` called in a loop by ``threads`` threads for ``seconds`` (``i`` unique per call)."""
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def worker(t: int) -> None:
        i = 0
        while time.monotonic() < stop:
            op(t * 1_000_000 + i)
            i += 1
        counts[t] = i

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


async def tasks_ops_per_s(op: Callable[[int], Awaitable[object]], tasks: int, seconds: float) -> float:
    """``await op(i)`` in a loop in each of ``tasks`` tasks for ``seconds``, on the running loop."""
    stop = time.monotonic() + seconds
    counts = [0] * tasks

    async def task(t: int) -> None:
        i = 0
        while time.monotonic() < stop:
            await op(t * 1_000_000 + i)
            i += 1
        counts[t] = i

    t0 = time.monotonic()
    await asyncio.gather(*(task(t) for t in range(tasks)))
    return sum(counts) / (time.monotonic() - t0)
