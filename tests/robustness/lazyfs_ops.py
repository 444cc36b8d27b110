"""LazyFS's filesystem operations: the overlay of unsynced writes and the FUSE callbacks over a backing directory.

The child process that ``lazyfs.py`` starts serves these (``LazyOps``) through the FUSE binding; the contract of
the whole filesystem (what is durable when, what a power loss drops) is in ``lazyfs.py``'s docstring. Nothing
here mounts or talks to the parent: ``LazyOps.power_loss``/``crash``/``sync``/``stats`` are what the control
channel calls.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import errno
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("lazyfs")

FUSE_CAP_AUTO_INVAL_DATA = 1 << 12  # fuse_common.h (libfuse 3)
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
_FALLOC_MODES = {
    0,
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_ZERO_RANGE,
    FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
}

# The flags never passed to the backing open(2): the kernel computes O_APPEND offsets itself (and pwrite on an
# O_APPEND descriptor would ignore the offset when we flush), O_TRUNC is done by us so the overlay is cut too,
# O_DIRECT would demand aligned buffers, and O_SYNC/O_DSYNC writes reach us followed by an fsync request anyway.
_STRIPPED_FLAGS = os.O_APPEND | os.O_TRUNC | os.O_SYNC | os.O_DSYNC | getattr(os, "O_DIRECT", 0) | os.O_CREAT


class _Overlay:
    """The unsynced writes to one inode: sorted, disjoint, non-adjacent extents, and the logical size."""

    __slots__ = ("fd", "size", "starts", "bufs", "mtime_ns")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd  # a writable descriptor of the backing inode, owned by the overlay (for the flush)
        self.size = size
        self.starts: list[int] = []
        self.bufs: list[bytearray] = []
        self.mtime_ns = time.time_ns()

    @property
    def dirty(self) -> int:
        return sum(len(b) for b in self.bufs)

    def write(self, off: int, data: bytes) -> None:
        end = off + len(data)
        self.size = max(self.size, end)
        self.mtime_ns = time.time_ns()
        starts, bufs = self.starts, self.bufs
        # Extents [lo, hi) overlap or touch [off, end): they are merged into one.
        lo = bisect.bisect_right(starts, off) - 1
        if lo < 0 or starts[lo] + len(bufs[lo]) < off:
            lo += 1
        hi = bisect.bisect_right(starts, end)
        if lo == hi:
            starts.insert(lo, off)
            bufs.insert(lo, bytearray(data))
        elif hi - lo == 1 and starts[lo] <= off:
            # The common cases (overwrite inside an extent, append right after it) change it in place: slice
            # assignment grows a bytearray in amortized O(len(data)), so long sequential runs stay linear.
            rel = off - starts[lo]
            bufs[lo][rel : rel + len(data)] = data
        else:
            first, last = starts[lo], starts[hi - 1]
            merged = bytearray(bufs[lo][: max(0, off - first)])
            merged += data
            last_buf = bufs[hi - 1]
            if last + len(last_buf) > end:
                merged += last_buf[end - last :]
            starts[lo:hi] = [min(first, off)]
            bufs[lo:hi] = [merged]

    def read(self, off: int, n: int, base: bytes) -> bytes:
        """``n`` bytes at ``off`` (already clamped to ``size``): ``base`` (the backing bytes, maybe short) with
        the overlay on top."""
        out = bytearray(base)
        if len(out) < n:
            out += bytes(n - len(out))  # the backing file is shorter than the logical size: a hole reads zeros
        end = off + n
        i = max(0, bisect.bisect_right(self.starts, off) - 1)
        while i < len(self.starts) and self.starts[i] < end:
            s, b = self.starts[i], self.bufs[i]
            lo, hi = max(off, s), min(end, s + len(b))
            if lo < hi:
                out[lo - off : hi - off] = b[lo - s : hi - s]
            i += 1
        return bytes(out)

    def truncate(self, length: int) -> None:
        i = bisect.bisect_left(self.starts, length)
        del self.starts[i:], self.bufs[i:]
        if self.starts and self.starts[-1] + len(self.bufs[-1]) > length:
            del self.bufs[-1][length - self.starts[-1] :]
        self.size = length
        self.mtime_ns = time.time_ns()

    def zero(self, off: int, n: int) -> None:
        """Zero the overlay's bytes in [off, off+n) (a hole was punched or zeroed in the backing file)."""
        end = off + n
        for s, b in zip(self.starts, self.bufs, strict=True):
            lo, hi = max(off, s), min(end, s + len(b))
            if lo < hi:
                b[lo - s : hi - s] = bytes(hi - lo)

    def flush(self) -> int:
        """Write every extent to the backing file; return the bytes written. The caller then drops the overlay."""
        total = 0
        for s, b in zip(self.starts, self.bufs, strict=True):
            view = memoryview(b)
            pos = 0
            while pos < len(view):
                pos += os.pwrite(self.fd, view[pos:], s + pos)
            total += len(b)
        # Only writes grow the logical size beyond the backing one (truncate/fallocate apply to both), and those
        # bytes are in the extents; this is a guard against a logical size the extents did not reach.
        if os.fstat(self.fd).st_size < self.size:
            os.ftruncate(self.fd, self.size)
        return total


@dataclass
class _Handle:
    fd: int  # the backing descriptor; it is also the FUSE file handle
    key: tuple[int, int]
    epoch: int  # a handle opened before the last crash() is fenced


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


_libc: Any = None


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with any mode (os.posix_fallocate only does mode 0)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        _libc.fallocate.restype = ctypes.c_int
    if _libc.fallocate(fd, mode, offset, length) != 0:
        raise _oserror(ctypes.get_errno())


class LazyOps:
    """The filesystem operations (mfusepy's Operations protocol, without inheriting: a method that is not defined
    here is not registered with libfuse, which then uses its own fallback, e.g. the kernel's local locks).

    Every callback may run on any of libfuse's threads: one lock guards the overlays and handles. Backing I/O
    that changes what a read returns runs under it; the backing fsync (slow, and not visible to reads) does not.
    """

    use_ns = True  # times in integer nanoseconds

    def __init__(self, backing: str, *, sync_backing: bool = True) -> None:
        self.root = os.path.realpath(backing)
        self.sync_backing = sync_backing
        self.mounted = threading.Event()
        self._lock = threading.RLock()
        self._overlays: dict[tuple[int, int], _Overlay] = {}
        self._handles: dict[int, _Handle] = {}
        self._open_count: dict[tuple[int, int], int] = {}
        self._epoch = 0
        self.failing_fsync = False  # set by the control channel: every fsync fails with EIO
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "writes",
                "bytes_written",
                "reads",
                "fsyncs",
                "bytes_synced",
                "fsyncdirs",
                "fallocates",
                "truncates",
                "power_losses",
                "crashes",
                "dropped_bytes",
                "dropped_files",
                "orphan_bytes_discarded",
                "failed_fsyncs",
            ),
            0,
        )

    # ---- helpers

    def _full(self, path: str | None) -> str:
        if path is None:
            raise _oserror(errno.ENOENT)  # an unlinked file reached by path only
        return self.root + path

    def _handle(self, fh: int | None) -> _Handle:
        h = self._handles.get(fh) if fh is not None else None
        if h is None:
            raise _oserror(errno.EBADF)
        if h.epoch != self._epoch:
            raise _oserror(errno.EIO)  # opened before a crash(): the process that owned it is gone
        return h

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int]:
        return (st.st_dev, st.st_ino)

    def _register(self, fd: int, flags: int) -> int:
        st = os.fstat(fd)
        key = self._key(st)
        with self._lock:
            self._handles[fd] = _Handle(fd, key, self._epoch)
            self._open_count[key] = self._open_count.get(key, 0) + 1
            if flags & os.O_TRUNC and stat.S_ISREG(st.st_mode):
                self._truncate_locked(fd, key, 0)
        return fd

    def _truncate_locked(self, fd: int, key: tuple[int, int], length: int) -> None:
        os.ftruncate(fd, length)
        ov = self._overlays.get(key)
        if ov is not None:
            ov.truncate(length)
        self.counters["truncates"] += 1

    def _forget_if_orphan(self, key: tuple[int, int]) -> None:
        """Discard the overlay of an inode that has no name and no open handle left: nobody can read it again,
        and keeping its descriptor would pin the inode (and its number, which the key relies on)."""
        ov = self._overlays.get(key)
        if ov is None or self._open_count.get(key, 0) > 0 or os.fstat(ov.fd).st_nlink > 0:
            return
        del self._overlays[key]
        self.counters["orphan_bytes_discarded"] += ov.dirty
        os.close(ov.fd)

    @staticmethod
    def _backing_flags(flags: int) -> int:
        flags &= ~_STRIPPED_FLAGS
        if flags & os.O_ACCMODE == os.O_WRONLY:
            flags = (flags & ~os.O_ACCMODE) | os.O_RDWR  # the overlay is flushed and read through it
        return flags | os.O_CLOEXEC

    # ---- lifecycle

    def init_with_config(self, conn: Any, config: Any) -> None:
        """Turns off the kernel's ``auto_inval_data`` (libfuse asks for it by default): with it, any getattr
        that reports a new mtime (every write changes the overlay's) makes the kernel drop the file's cached
        pages while other threads write and fault them back in, and a process that reads through mmap and
        writes with pwrite (LMDB, bbolt) then reads stale pages and builds a corrupt B-tree. A new size still
        drops them all (a power loss that shortens a file), and so does every open (no ``kernel_cache``): the
        same hazard, which the suite avoids by opening files only when a member starts."""
        if conn is not None:
            conn.want &= ~FUSE_CAP_AUTO_INVAL_DATA
        self.mounted.set()

    # ---- files

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, int]:
        # The backing size and the overlay are read under one lock: a sync that flushes the overlay in between
        # would otherwise leave the pre-flush backing size to report, the kernel would shrink the file to it
        # and a process reading the new pages through mmap would get SIGBUS.
        with self._lock:
            return self._getattr_locked(path, fh)

    def _getattr_locked(self, path: str | None, fh: int | None) -> dict[str, int]:
        h = self._handles.get(fh) if fh is not None else None
        st = os.fstat(h.fd) if h is not None else os.lstat(self._full(path))
        attrs = {
            "st_mode": st.st_mode,
            "st_ino": st.st_ino,
            "st_nlink": st.st_nlink,
            "st_uid": st.st_uid,
            "st_gid": st.st_gid,
            "st_rdev": st.st_rdev,
            "st_size": st.st_size,
            "st_blksize": st.st_blksize,
            "st_blocks": st.st_blocks,
            "st_atime": st.st_atime_ns,
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
        }
        if stat.S_ISREG(st.st_mode):
            ov = self._overlays.get(self._key(st))
            if ov is not None:
                # The unsynced view. A size that shrank after a power loss makes the kernel drop the pages it
                # cached for the file the next time it asks.
                attrs["st_size"] = ov.size
                attrs["st_blocks"] = max(st.st_blocks, (ov.size + 511) // 512)
                attrs["st_mtime"] = attrs["st_ctime"] = max(ov.mtime_ns, st.st_mtime_ns)
        return attrs

    def open(self, path: str, flags: int) -> int:
        return self._register(os.open(self._full(path), self._backing_flags(flags)), flags)

    def create(self, path: str, mode: int, flags: int) -> int:
        return self._register(os.open(self._full(path), self._backing_flags(flags) | os.O_CREAT, mode), flags)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        h = self._handle(fh)
        with self._lock:
            self.counters["reads"] += 1
            ov = self._overlays.get(h.key)
            if ov is None:
                return os.pread(h.fd, size, offset)
            n = min(offset + size, ov.size) - offset
            if n <= 0:
                return b""
            return ov.read(offset, n, os.pread(h.fd, n, offset))

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        h = self._handle(fh)
        with self._lock:
            ov = self._overlays.get(h.key)
            if ov is None:
                ov = _Overlay(os.dup(h.fd), os.fstat(h.fd).st_size)
                self._overlays[h.key] = ov
            ov.write(offset, data)
            self.counters["writes"] += 1
            self.counters["bytes_written"] += len(data)
        return len(data)

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        h = self._handle(fh)
        with self._lock:
            ov = self._overlays.get(h.key)
            if self.failing_fsync:
                # As Linux after a writeback error: the unsynced pages are gone and the fsync says EIO.
                if ov is not None:
                    self.counters["dropped_bytes"] += ov.dirty
                    del self._overlays[h.key]
                    os.close(ov.fd)
                self.counters["failed_fsyncs"] += 1
                raise _oserror(errno.EIO)
            if ov is not None:
                # Written before it is forgotten: if a pwrite fails, the overlay stays and a retry rewrites it.
                self.counters["bytes_synced"] += ov.flush()
                del self._overlays[h.key]
                os.close(ov.fd)
            self.counters["fsyncs"] += 1
        if self.sync_backing:
            (os.fdatasync if datasync else os.fsync)(h.fd)
        return 0

    def release(self, path: str | None, fh: int) -> int:
        with self._lock:
            h = self._handles.pop(fh, None)
            if h is None:
                return 0
            os.close(h.fd)
            left = self._open_count[h.key] - 1
            if left:
                self._open_count[h.key] = left
            else:
                del self._open_count[h.key]
                self._forget_if_orphan(h.key)
        return 0

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        with self._lock:
            if fh is not None and fh in self._handles:
                h = self._handle(fh)
                self._truncate_locked(h.fd, h.key, length)
                return 0
            fd = os.open(self._full(path), os.O_WRONLY | os.O_CLOEXEC)
            try:
                self._truncate_locked(fd, self._key(os.fstat(fd)), length)
            finally:
                os.close(fd)
        return 0

    def fallocate(self, path: str | None, mode: int, offset: int, length: int, fh: int) -> int:
        if mode not in _FALLOC_MODES:
            raise _oserror(errno.EOPNOTSUPP)
        h = self._handle(fh)
        with self._lock:
            _fallocate(h.fd, mode, offset, length)
            ov = self._overlays.get(h.key)
            if ov is not None:
                if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
                    ov.zero(offset, length)
                if not mode & FALLOC_FL_KEEP_SIZE:
                    ov.size = max(ov.size, offset + length)
            self.counters["fallocates"] += 1
        return 0

    # ---- names and directories (applied at once: durable when they return)

    def unlink(self, path: str) -> int:
        full = self._full(path)
        st = os.lstat(full)
        with self._lock:
            os.unlink(full)
            self._forget_if_orphan(self._key(st))
        return 0

    def rename(self, old: str, new: str) -> int:
        new_full = self._full(new)
        try:
            replaced: os.stat_result | None = os.lstat(new_full)
        except FileNotFoundError:
            replaced = None
        with self._lock:
            os.rename(self._full(old), new_full)
            if replaced is not None:
                self._forget_if_orphan(self._key(replaced))
        return 0

    def link(self, target: str, source: str) -> int:
        os.link(self._full(source), self._full(target))
        return 0

    def symlink(self, target: str, source: str) -> int:
        os.symlink(source, self._full(target))
        return 0

    def readlink(self, path: str) -> str:
        return os.readlink(self._full(path))

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._full(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._full(path))
        return 0

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._full(path))]

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        self.counters["fsyncdirs"] += 1
        if self.failing_fsync:
            self.counters["failed_fsyncs"] += 1
            raise _oserror(errno.EIO)
        if self.sync_backing and path is not None:
            fd = os.open(self._full(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return 0

    def chmod(self, path: str | None, mode: int) -> int:
        os.chmod(self._full(path), mode)
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        os.chown(self._full(path), uid, gid, follow_symlinks=False)
        return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        full = self._full(path)
        if times is None:
            os.utime(full, follow_symlinks=False)
        else:
            os.utime(full, ns=times, follow_symlinks=False)
        with self._lock:
            ov = self._overlays.get(self._key(os.lstat(full)))
            if ov is not None:
                ov.mtime_ns = 0  # the explicit time wins over the overlay's (getattr takes the later one)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self._full(path))
        names = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail")
        return {name: getattr(sv, name) for name in names} | {"f_flag": sv.f_flag, "f_namemax": sv.f_namemax}

    # ---- control (called from the control thread, not by libfuse)

    def power_loss(self, *, fence: bool = False) -> dict[str, int]:
        with self._lock:
            dropped = sum(ov.dirty for ov in self._overlays.values())
            files = len(self._overlays)
            for ov in self._overlays.values():
                os.close(ov.fd)
            self._overlays.clear()
            self.counters["power_losses"] += 1
            self.counters["dropped_bytes"] += dropped
            self.counters["dropped_files"] += files
            if fence:
                self._epoch += 1
                self.counters["crashes"] += 1
        return {"dropped_bytes": dropped, "dropped_files": files}

    def sync_all(self) -> dict[str, int]:
        with self._lock:
            total = 0
            for key, ov in list(self._overlays.items()):
                total += ov.flush()
                if self.sync_backing:
                    os.fsync(ov.fd)
                del self._overlays[key]
                os.close(ov.fd)
            self.counters["bytes_synced"] += total
        return {"synced_bytes": total}

    def stats(self) -> dict[str, int]:
        with self._lock:
            return self.counters | {
                "dirty_bytes": sum(ov.dirty for ov in self._overlays.values()),
                "dirty_files": len(self._overlays),
                "open_handles": len(self._handles),
                "epoch": self._epoch,
            }


# ---- the child process: control server and main
