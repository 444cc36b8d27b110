"""LazyFS: a FUSE passthrough filesystem that loses the writes that were not synced, to simulate power loss.

Contract
--------
``LazyFS(backing, mountpoint)`` mounts a view of the directory ``backing`` at ``mountpoint``. The filesystem runs
in a child process (``python -m robustness.lazyfs BACKING MOUNT --control SOCKET``) so that it has its own GIL and
can be killed; the parent talks to it over a Unix socket (one JSON line per request and per answer).

Data: the backing files hold exactly the *durable* state.

- ``write`` keeps the bytes in memory only: an overlay of dirty extents per inode (keyed by the backing file's
  ``(st_dev, st_ino)``, so renames, hard links and unlinked-but-open files are handled). Reads merge the overlay
  over the backing file; ``getattr`` reports the size including any unsynced extension.
- ``fsync``/``fdatasync`` of a file (any descriptor of its inode, as on Linux) writes that inode's overlay to the
  backing file and, unless ``sync_backing=False``, ``os.fsync``/``os.fdatasync``-s it there: it is durable.
- Metadata operations are applied to the backing directory at once and so are treated as durable when they
  return: create, mkdir, rmdir, rename, unlink, link, symlink, chmod/chown/utimens, truncate/ftruncate and
  fallocate (modes 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE[|KEEP_SIZE]). This is more lenient than a real
  filesystem (a crash can undo an un-fsynced rename there) but simple; note that it makes "rename a file whose
  data was not fsynced" visible: after a power loss the new name exists with the durable (maybe empty) content.
  ``fsyncdir`` is accepted (and fsyncs the backing directory when ``sync_backing``).
- ``flock`` and POSIX locks are not implemented by the filesystem, so the kernel handles them locally on the
  mount: they work between processes of this machine, which is all the store needs.
- A power loss loses *all* unsynced data (the page cache was never written back): the strictest outcome, not a
  random subset (no torn writes are simulated).

Power loss:

- ``power_loss()`` drops every overlay and returns the number of bytes dropped (``dropped_bytes`` totals them
  over the object's life). The filesystem keeps serving the durable state: a new open re-reads the file (no
  ``kernel_cache``), and a file the loss made shorter is cut in the kernel's cache too (attribute timeouts 0);
  a descriptor or mmap kept open may still read other dropped bytes from the kernel's cache. ``remount()`` gives
  a view certainly free of it; the robustness suite always kills, crashes and remounts.
- ``crash()`` = ``power_loss()`` and, in addition, fences every file handle open at that moment (later writes
  and syncs through it fail with EIO, reads may be served from the kernel's cache), so nothing from "before the
  power went out" reaches the disk, not even the kernel writing back a dead process's dirty shared-mmap pages.
  Use it after SIGKILLing the process that used the mount, then restart that process on the same mount.
- Dirty pages of a shared writable mmap reach the filesystem only when the kernel writes them back (msync,
  close, or its own writeback); until then they are not in the overlay, and a power_loss() does not see them.

Page cache notes: the mount runs without ``direct_io`` (mmap reads work, as LMDB needs) and without
``kernel_cache``; writes are write-through (libfuse's writeback cache is off), so each write reaches the overlay
at once. The kernel's ``auto_inval_data`` is turned off: with it, a stat that saw the overlay's new mtime made
the kernel drop a file's cached pages while LMDB wrote it, LMDB read stale pages and corrupted its tree within a
second (robustness bug 9; ``test_lazyfs.py`` keeps LMDB under that load). The kernel still drops all of a
file's cached pages when it is opened and when a getattr reports a size it did not expect: the same hazard for a
file written by pwrite and read through mmap, so nothing may open ``data.mdb`` while a member writes it (the
suite opens files only when a member starts, and remounts after every crash). ``rename`` flags
(RENAME_NOREPLACE/EXCHANGE) are not passed on by the binding: plain rename(2) only.

Disk errors: ``fail_fsync(True)`` makes every fsync fail with EIO and drop that file's unsynced data (what Linux
does after a writeback error), and every fsync of a directory fail with EIO, until ``fail_fsync(False)``.

Other API: ``sync()`` makes everything durable (like sync(2)); ``stats()`` gives counters; ``kill()`` SIGKILLs
the filesystem process; ``fuse_unavailable_reason()`` says why FUSE cannot be used here (None when it can);
``fsync_write_rate()`` measures pwrite+fdatasync ops/s in a directory.

Requirements: Linux, ``/dev/fuse``, root (or fusermount), libfuse 3 (apt ``fuse3``, which brings ``libfuse3-3``)
or libfuse 2 (apt ``fuse``/``libfuse2``), and the ctypes binding ``mfusepy`` from PyPI (it exposes ``fallocate``,
which the older ``fusepy`` does not). ``LAZYFS_LIBFUSE=fuse|fuse3`` picks the library; the default is libfuse 3.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from robustness.lazyfs_ops import LazyOps

log = logging.getLogger("lazyfs")

_TESTS_DIR = Path(__file__).resolve().parent.parent


def _serve_control(sock_path: str, ops: LazyOps) -> None:
    """Answer control requests, one JSON line each, until the process exits (daemon thread)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(8)

    def answer(req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "ping":
            return {"mounted": ops.mounted.is_set(), "pid": os.getpid()}
        if op == "stats":
            return ops.stats()
        if op == "power_loss":
            return ops.power_loss()
        if op == "crash":
            return ops.power_loss(fence=True)
        if op == "sync":
            return ops.sync_all()
        if op == "fail_fsync":
            ops.failing_fsync = bool(req["on"])
            return {}
        raise ValueError(f"unknown op {op!r}")

    def loop() -> None:
        while True:
            conn, _ = server.accept()
            with conn, conn.makefile("rwb") as f:
                for line in f:
                    try:
                        resp = {"ok": True} | answer(json.loads(line))
                    except Exception as e:  # the channel must survive any bad request
                        resp = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                    f.write(json.dumps(resp).encode() + b"\n")
                    f.flush()

    threading.Thread(target=loop, name="lazyfs-control", daemon=True).start()


def _select_libfuse() -> None:
    # mfusepy reads FUSE_LIBRARY_NAME at import; it would otherwise prefer libfuse 2 whenever that is installed.
    choice = os.environ.get("LAZYFS_LIBFUSE") or ("fuse3" if ctypes.util.find_library("fuse3") else "fuse")
    os.environ.setdefault("FUSE_LIBRARY_NAME", choice)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robustness.lazyfs", description=__doc__.splitlines()[0])
    parser.add_argument("backing", help="directory holding the durable state")
    parser.add_argument("mountpoint")
    parser.add_argument("--control", required=True, help="Unix socket path for power_loss/crash/stats requests")
    parser.add_argument("--no-sync-backing", action="store_true", help="do not fsync the backing files on fsync")
    parser.add_argument("--debug", action="store_true", help="libfuse debug output on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="lazyfs %(levelname)s %(name)s: %(message)s")

    _select_libfuse()
    import mfusepy  # imported here: only the child process needs the binding

    ops = LazyOps(args.backing, sync_backing=not args.no_sync_backing)
    _serve_control(args.control, ops)
    options: dict[str, Any] = {
        "foreground": True,
        "debug": args.debug,
        "fsname": "lazyfs",
        "allow_other": True,
        "default_permissions": True,
        # 0: the kernel asks for sizes and names again each time, so a power loss is seen at once.
        "attr_timeout": 0,
        "entry_timeout": 0,
        "negative_timeout": 0,
        # Unlink for real even while the file is open (no .fuse_hidden files left in the backing directory).
        "hard_remove": True,
    }
    if mfusepy.fuse_version_major == 2:
        options["big_writes"] = True  # libfuse 2 splits writes into 4 KiB requests without it
    mfusepy.FUSE(ops, args.mountpoint, **options)
    return 0


# ---- the parent side


def _mounted_fuse(path: Path) -> bool:
    """Whether ``path`` is a FUSE mount point now (also when its daemon died: 'transport endpoint')."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields, _, rest = line.partition(" - ")
            point = fields.split()[4]
            point = point.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")
            if point == target and rest.split()[0].startswith("fuse"):
                return True
    return False


def fuse_unavailable_reason() -> str | None:
    """None if a LazyFS can be mounted here; otherwise what is missing."""
    if not sys.platform.startswith("linux"):
        return "FUSE passthrough needs Linux"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if os.geteuid() != 0 and not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "not root and no fusermount/fusermount3"
    if importlib.util.find_spec("mfusepy") is None:
        return "Python package mfusepy is not installed (pip install mfusepy)"
    if not (ctypes.util.find_library("fuse3") or ctypes.util.find_library("fuse")):
        return "libfuse is not installed (apt-get install fuse3)"
    return None


class LazyFS:
    """A mounted LazyFS, run in a child process. See the module docstring for the semantics."""

    def __init__(
        self,
        backing: Path,
        mountpoint: Path,
        *,
        sync_backing: bool = True,
        log_path: Path | None = None,
    ) -> None:
        self.backing = Path(backing)
        self.mountpoint = Path(mountpoint)
        self.sync_backing = sync_backing
        self.log_path = log_path
        self.dropped_bytes = 0  # over every power_loss()/crash(), across remounts
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None  # holds the control socket (short path: sun_path is 108 bytes)
        self._log_file: Any = None

    def __enter__(self) -> LazyFS:
        self.mount()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unmount()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def mounted(self) -> bool:
        return self._proc is not None and _mounted_fuse(self.mountpoint)

    def mount(self, timeout: float = 15.0) -> None:
        if self._proc is not None:
            raise RuntimeError("already mounted")
        if _mounted_fuse(self.mountpoint):
            raise RuntimeError(f"{self.mountpoint} is already a FUSE mount point")
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.mkdtemp(prefix="lazyfs-")
        log_path = self.log_path or Path(self._tmp) / "lazyfs.log"
        self._log_file = open(log_path, "ab")  # closed in unmount()
        cmd = [sys.executable, "-m", "robustness.lazyfs", str(self.backing), str(self.mountpoint)]
        cmd += ["--control", self._sock]
        if not self.sync_backing:
            cmd.append("--no-sync-backing")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_TESTS_DIR), env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=self._log_file, env=env
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"lazyfs exited with {self._proc.returncode}: {self._log_tail(log_path)}")
                with contextlib.suppress(OSError):
                    if self._request("ping", timeout=1.0)["mounted"] and _mounted_fuse(self.mountpoint):
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"lazyfs did not mount in {timeout}s: {self._log_tail(log_path)}")
                time.sleep(0.02)
        except BaseException:
            self.unmount()
            raise

    def unmount(self, timeout: float = 3.0) -> None:
        """Unmount and stop the filesystem process. A mount still busy after ``timeout`` s (a process keeps a
        file open in it) is detached lazily and the process killed: that holder then gets ENOTCONN."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                self._umount(timeout)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if _mounted_fuse(self.mountpoint):  # the daemon died: only a lazy unmount clears the dead mount
                self._umount(0, lazy=True)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    def remount(self) -> None:
        self.unmount()
        self.mount()

    def kill(self) -> None:
        """SIGKILL the filesystem process (its unsynced data is gone with it) and clear the dead mount."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(10)
        self.unmount()

    def power_loss(self) -> int:
        """Drop every unsynced write; return the bytes dropped."""
        n = int(self._request("power_loss")["dropped_bytes"])
        self.dropped_bytes += n
        return n

    def crash(self) -> int:
        """power_loss() and fence every handle open now; for after SIGKILLing the process using the mount."""
        n = int(self._request("crash")["dropped_bytes"])
        self.dropped_bytes += n
        return n

    def sync(self) -> int:
        """Make every unsynced write durable (like sync(2)); return the bytes written."""
        return int(self._request("sync")["synced_bytes"])

    def fail_fsync(self, on: bool) -> None:
        """From now on every fsync fails with EIO and loses the file's unsynced data (``on``), or works again."""
        self._request("fail_fsync", on=on)

    def stats(self) -> dict[str, int]:
        resp = self._request("stats")
        resp.pop("ok")
        return resp

    # ---- internals

    @property
    def _sock(self) -> str:
        assert self._tmp is not None
        return os.path.join(self._tmp, "control.sock")

    def _request(self, op: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        if self._proc is None:
            raise RuntimeError("not mounted")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self._sock)
            s.sendall(json.dumps({"op": op} | args).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("lazyfs control channel closed")
                buf += chunk
        resp: dict[str, Any] = json.loads(buf)
        if not resp.get("ok"):
            raise RuntimeError(f"lazyfs {op}: {resp.get('error')}")
        return resp

    def _umount(self, timeout: float, *, lazy: bool = False) -> None:
        if os.geteuid() == 0:
            cmd = ["umount", *(["-l"] if lazy else []), str(self.mountpoint)]
        else:
            tool = shutil.which("fusermount3") or "fusermount"
            cmd = [tool, "-u", *(["-z"] if lazy else []), str(self.mountpoint)]
        deadline = time.monotonic() + timeout
        while True:
            res = subprocess.run(cmd, capture_output=True, check=False)
            if res.returncode == 0 or not _mounted_fuse(self.mountpoint):
                return
            if time.monotonic() > deadline:  # still busy (a process keeps a file open): detach it lazily
                if not lazy:
                    self._umount(0, lazy=True)
                return
            time.sleep(0.05)

    @staticmethod
    def _log_tail(path: Path) -> str:
        try:
            return path.read_text(errors="replace")[-2000:].strip() or "(no output)"
        except OSError:
            return "(no log)"


def fsync_write_rate(directory: Path, ops: int = 300, block: int = 4096) -> float:
    """pwrite+fdatasync ops/s of ``block``-byte writes, appended into a file preallocated with fallocate in
    ``directory`` (the store's WAL pattern)."""
    path = Path(directory) / "fsync-rate.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, ops * block)
        data = os.urandom(block)
        start = time.perf_counter()
        for i in range(ops):
            os.pwrite(fd, data, i * block)
            os.fdatasync(fd)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()
    return ops / elapsed


if __name__ == "__main__":
    sys.exit(main())
