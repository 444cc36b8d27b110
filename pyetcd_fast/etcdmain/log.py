"""The server's log: one zap-production JSON line per event, shaped like etcd 3.4's ``--logger zap`` output.

Contract:

- ``get_logger()`` returns the process logger; ``.debug/.info/.warn/.error(msg, **fields)`` each write one
  line ``{"level":..,"ts":..,"caller":..,"msg":..,<fields in call order>}`` and flush it. Field names are
  etcd's (often with dashes, so pass them as ``**{"data-dir": ...}``); values are anything ``json`` encodes.
- ``ts`` is zap's ISO8601 encoder: local time, milliseconds, ``Z`` or ``±hhmm`` ("2024-05-01T10:00:00.123Z").
- ``caller`` is ``<package dir>/<file>:<line>`` of the call site, as zap's short caller encoder prints it.
- ``configure(cfg)`` applies ``--log-level`` (``--debug`` means debug) and ``--log-outputs``: ``default``
  and ``stderr`` write to stderr, ``stdout`` to stdout, anything else appends to that file. Until then the
  logger writes info and above to stderr. Streams are looked up at write time, so redirection works.
- ``--logger capnslog`` is accepted but still logs zap JSON; ``capnslog_line`` only reproduces the lines
  etcd prints before its logger exists (flag and environment handling).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import threading
from typing import IO, Any

LEVELS = {"debug": -1, "info": 0, "warn": 1, "error": 2, "dpanic": 3, "panic": 4, "fatal": 5}


def zap_timestamp(now: datetime.datetime | None = None) -> str:
    """zapcore.ISO8601TimeEncoder: ``2006-01-02T15:04:05.000Z0700`` in local time."""
    now = (now or datetime.datetime.now()).astimezone()
    offset = now.utcoffset() or datetime.timedelta(0)
    if offset == datetime.timedelta(0):
        zone = "Z"
    else:
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}" + zone


def zap_line(level: str, msg: str, caller: str, **fields: Any) -> str:
    """One zap JSON line (no newline): level, ts, caller, msg, then the fields in order."""
    record: dict[str, Any] = {"level": level, "ts": zap_timestamp(), "caller": caller, "msg": msg}
    for key, value in fields.items():
        if key not in record:
            record[key] = value
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def capnslog_line(level: str, pkg: str, msg: str) -> str:
    """A capnslog line as etcd 3.4 prints before its logger is set up: ``<time> E | etcdmain: <msg>``.

    An empty ``pkg`` gives Go's standard ``log`` redirected through capnslog (``<time> I | <msg>``).
    """
    now = datetime.datetime.now()
    return f"{now:%Y-%m-%d %H:%M:%S.%f} {level} | {pkg + ': ' if pkg else ''}{msg}"


def _caller(depth: int) -> str:
    frame = sys._getframe(depth)  # 0 is this function
    path = frame.f_code.co_filename
    return f"{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}:{frame.f_lineno}"


class Logger:
    """A zap-style logger; thread-safe, one ``write`` + ``flush`` per line."""

    def __init__(self, level: str = "info", outputs: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, IO[str]] = {}
        self.level = level
        self.outputs = list(outputs or ["default"])

    def set_level(self, level: str) -> None:
        if level not in LEVELS:
            raise ValueError(f'unknown level "{level}"')
        self.level = level

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= LEVELS[self.level]

    def _streams(self) -> list[IO[str]]:
        streams = []
        for out in self.outputs:
            if out in ("default", "stderr"):
                streams.append(sys.stderr)
            elif out == "stdout":
                streams.append(sys.stdout)
            else:
                if out not in self._files:
                    self._files[out] = open(out, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the process)
                streams.append(self._files[out])
        return streams

    def log(self, level: str, msg: str, *, depth: int = 1, **fields: Any) -> None:
        """Writes one line at ``level``; ``depth`` picks the stack frame named as the caller."""
        if not self.enabled(level):
            return
        line = zap_line(level, msg, _caller(depth + 1), **fields) + "\n"
        with self._lock:
            for stream in self._streams():
                stream.write(line)
                stream.flush()

    def debug(self, msg: str, **fields: Any) -> None:
        self.log("debug", msg, depth=2, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        self.log("info", msg, depth=2, **fields)

    def warn(self, msg: str, **fields: Any) -> None:
        self.log("warn", msg, depth=2, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.log("error", msg, depth=2, **fields)

    def close(self) -> None:
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()


_logger = Logger()


def get_logger() -> Logger:
    """The process logger (configured by ``configure``; info to stderr before that)."""
    return _logger


def configure(cfg: Any) -> Logger:
    """Applies a ``Config``'s ``log_level``/``debug`` and ``log_outputs`` to the process logger."""
    level = "debug" if getattr(cfg, "debug", False) else cfg.log_level
    _logger.set_level(level)
    with _logger._lock:
        for f in _logger._files.values():
            f.close()
        _logger._files.clear()
        _logger.outputs = list(cfg.log_outputs or ["default"])
    return _logger
