"""Auto-compaction (etcd's v3compactor): decides *when* and *to which revision*; the compaction itself is a
raft request executed natively.

- ``periodic``: the retention is a duration ("1h", "30m", or a plain number of hours). Every tenth of the
  retention (capped at an hour's tenth) the current revision is sampled; every retention (at most hourly) the
  store is compacted to the revision sampled one retention ago, so about a retention of history is kept.
- ``revision``: the retention is a number of revisions. Every 5 minutes the store is compacted to
  ``current - retention``.

A retention of 0 disables auto-compaction, as in etcd. Runs on the member's event loop, once per interval.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable

from pyetcd_fast import _native
from pyetcd_fast.etcdmain.log import get_logger

REVISION_INTERVAL = 300.0
RETRY_DIVISOR = 10
HOUR = 3600.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_retention(mode: str, retention: str) -> float:
    """Seconds (periodic) or revisions (revision); raises ValueError with etcd's wording."""
    text = retention.strip() or "0"
    if mode == "revision":
        try:
            return float(int(text))
        except ValueError:
            raise ValueError(f"invalid auto-compaction-retention {retention!r}") from None
    if re.fullmatch(r"\d+", text):
        return float(text) * HOUR  # a plain number means hours
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid auto-compaction-retention {retention!r}")
    return total


class Compactor:
    """Schedules compactions of ``server`` on ``loop`` according to ``mode`` and ``retention``."""

    def __init__(
        self,
        server: _native.Server,
        loop: asyncio.AbstractEventLoop,
        mode: str,
        retention: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._server = server
        self._loop = loop
        self._mode = mode
        self._retention = retention
        self._handle: asyncio.TimerHandle | None = None
        self._last_compacted = 0
        self.log = get_logger()
        if mode == "periodic" and retention > 0:
            self._period = min(retention, HOUR)
            self._interval = self._period / RETRY_DIVISOR
            # Samples one retention deep: the oldest is the revision to compact to.
            self._samples: deque[int] = deque(maxlen=int(round(retention / self._interval)) + 1)
            self._since_compact = 0.0
        else:
            self._interval = REVISION_INTERVAL

    @property
    def enabled(self) -> bool:
        return self._retention > 0

    def start(self) -> None:
        if not self.enabled:
            return
        if self._mode == "periodic":
            self._samples.append(self._revision())
        self._handle = self._loop.call_later(self._interval, self._run)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _revision(self) -> int:
        return int(self._server.status()["revision"])

    def _run(self) -> None:
        try:
            self.step()
        finally:
            self._handle = self._loop.call_later(self._interval, self._run)

    def step(self) -> int | None:
        """One interval passed: returns the revision compaction was requested to, if any.

        Only the leader compacts (etcd pauses the compactor on followers); its proposal reaches every member.
        """
        st = self._server.status()
        if st["leader"] != st["member_id"]:
            return None
        if self._mode == "periodic":
            self._samples.append(int(st["revision"]))
            self._since_compact += self._interval
            if self._since_compact + 1e-9 < self._period or len(self._samples) < (self._samples.maxlen or 0):
                return None
            self._since_compact = 0.0
            target = self._samples[0]
        else:
            target = int(st["revision"]) - int(self._retention)
        if target <= 0 or target == self._last_compacted:
            return None
        self.log.info(f"starting auto {self._mode} compaction", revision=target)
        self._server.compact(target)
        self._last_compacted = target
        self.log.info(f"completed auto {self._mode} compaction request", **{"compact-revision": target})
        return target
