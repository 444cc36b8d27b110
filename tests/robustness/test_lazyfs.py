"""Tests of ``robustness.lazyfs``: the overlay's bookkeeping (no FUSE needed), then a real mount: unsynced writes
are lost on a power loss and synced ones are not, through read(), mmap, fallocate'd files, renames, locks and an
SQLite WAL database. The mount tests are skipped, with the reason, where FUSE cannot be used."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from robustness.lazyfs import LazyFS, fsync_write_rate, fuse_unavailable_reason
from robustness.lazyfs_ops import _Overlay

FUSE_REASON = fuse_unavailable_reason()
needs_fuse = pytest.mark.skipif(FUSE_REASON is not None, reason=f"FUSE unusable here: {FUSE_REASON}")


def test_overlay_matches_a_byte_model(tmp_path: Path) -> None:
    """Random writes, truncates and zeroed ranges over a backing file: the merged view equals a plain bytearray
    model, the extents stay sorted and disjoint, and a flush leaves exactly the model in the backing file."""
    rng = random.Random(7)
    path = tmp_path / "backing"
    base = bytes(rng.randrange(256) for _ in range(3000))
    path.write_bytes(base)
    fd = os.open(path, os.O_RDWR)
    try:
        ov = _Overlay(os.dup(fd), len(base))
        model = bytearray(base)
        for step in range(400):
            kind = rng.random()
            if kind < 0.8:
                off = rng.randrange(0, 6000)
                data = bytes([step % 251 + 1]) * rng.randrange(1, 700)
                ov.write(off, data)
                if off > len(model):
                    model += bytes(off - len(model))
                model[off : off + len(data)] = data
            elif kind < 0.9:
                length = rng.randrange(0, 6000)
                os.ftruncate(fd, length)  # as LazyOps does: the backing file and the overlay together
                ov.truncate(length)
                del model[length:]
                model += bytes(length - len(model))
            else:
                off, n = rng.randrange(0, 6000), rng.randrange(1, 500)
                ov.zero(off, n)
                end = min(off + n, len(model))
                if off < end:
                    model[off:end] = bytes(end - off)
                    os.pwrite(fd, bytes(end - off), off)  # the backing side of a punched/zeroed range
            assert ov.size == len(model)
            assert ov.read(0, ov.size, os.pread(fd, ov.size, 0)) == bytes(model), f"step {step}"
            ends = [s + len(b) for s, b in zip(ov.starts, ov.bufs, strict=True)]
            assert all(e < s for e, s in zip(ends, ov.starts[1:], strict=False)), "extents must not touch"
        ov.flush()
        os.close(ov.fd)
        assert path.read_bytes() == bytes(model)
    finally:
        os.close(fd)


@pytest.fixture
def lazyfs(tmp_path: Path) -> Iterator[LazyFS]:
    fs = LazyFS(tmp_path / "backing", tmp_path / "mnt", log_path=tmp_path / "lazyfs.log")
    fs.mount()
    try:
        yield fs
    finally:
        fs.unmount()
        assert not fs.mounted


def _mmap_bytes(path: Path) -> bytes:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
        return bytes(mm)


@needs_fuse
def test_power_loss_drops_unsynced_writes(lazyfs: LazyFS) -> None:
    path = lazyfs.mountpoint / "data"
    a, b = os.urandom(8192), os.urandom(4096)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, a, 0)
        os.fsync(fd)
        os.pwrite(fd, b, len(a))
        # Everything is visible before the power loss, through every path, with the unsynced size.
        assert os.stat(path).st_size == os.fstat(fd).st_size == len(a + b)
        assert path.read_bytes() == _mmap_bytes(path) == a + b
        assert (lazyfs.backing / "data").read_bytes() == a  # only the synced part is in the backing file
        assert lazyfs.stats()["dirty_bytes"] == len(b)

        assert lazyfs.power_loss() == len(b)
        # The durable state is served at once, even through the descriptor that wrote B: the file got shorter,
        # so the kernel dropped what it had cached of it.
        assert os.fstat(fd).st_size == len(a)
        assert os.pread(fd, 3 * len(a), 0) == a
    finally:
        os.close(fd)
    lazyfs.remount()
    assert os.stat(path).st_size == len(a)
    assert path.read_bytes() == _mmap_bytes(path) == a
    assert lazyfs.dropped_bytes == len(b)


@needs_fuse
def test_a_failing_fsync_says_eio_and_loses_the_unsynced_data(lazyfs: LazyFS) -> None:
    """``fail_fsync(True)``: fsync and fdatasync fail with EIO and the file's unsynced bytes are gone (as on Linux
    after a writeback error); synced bytes stay; ``fail_fsync(False)`` makes fsync work again."""
    path = lazyfs.mountpoint / "data"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"durable", 0)
        os.fsync(fd)
        os.pwrite(fd, b"+lost", 7)
        lazyfs.fail_fsync(True)
        for sync in (os.fsync, os.fdatasync):
            with pytest.raises(OSError) as e:
                sync(fd)
            assert e.value.errno == errno.EIO
        assert os.pread(fd, 100, 0) == b"durable"
        lazyfs.fail_fsync(False)
        os.pwrite(fd, b"+kept", 7)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert (lazyfs.backing / "data").read_bytes() == b"durable+kept"
    assert lazyfs.stats()["failed_fsyncs"] == 2


@needs_fuse
def test_wal_pattern_fallocate_pwrite_fdatasync(lazyfs: LazyFS) -> None:
    """The store's WAL: a segment preallocated with fallocate, records written with pwrite + fdatasync."""
    path = lazyfs.mountpoint / "wal" / "0000.wal"
    path.parent.mkdir()
    synced, unsynced = os.urandom(4096), os.urandom(4096)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    straggler = os.open(path, os.O_RDWR)  # left open across the crash, like a descriptor of the dead process
    try:
        os.posix_fallocate(fd, 0, 64 * 1024)
        assert os.fstat(fd).st_size == 64 * 1024
        os.pwrite(fd, synced, 16 * 1024)
        os.fdatasync(fd)
        os.pwrite(fd, unsynced, 32 * 1024)
        with open(path, "rb") as f:
            assert f.read()[32 * 1024 : 36 * 1024] == unsynced
    finally:
        os.close(fd)
    try:
        assert lazyfs.crash() == len(unsynced)
        # A handle opened before the crash is fenced: nothing from before the power loss reaches the disk.
        for late in (lambda: os.pwrite(straggler, b"late", 0), lambda: os.fsync(straggler)):
            with pytest.raises(OSError) as exc:
                late()
            assert exc.value.errno == errno.EIO
    finally:
        os.close(straggler)
    # No remount: a new open sees only the durable state.
    data = path.read_bytes()
    assert len(data) == 64 * 1024
    assert data[16 * 1024 : 20 * 1024] == synced
    assert data[32 * 1024 : 36 * 1024] == bytes(4096)
    assert _mmap_bytes(path) == data


@needs_fuse
def test_metadata_ops_are_durable_at_once_and_locks_work(lazyfs: LazyFS) -> None:
    mnt = lazyfs.mountpoint
    (mnt / "d" / "e").mkdir(parents=True)
    # The classic hazard: write a temp file, rename it over the real name, no fsync. The rename is kept
    # (metadata is durable when done), the data is not.
    tmp = mnt / "d" / "conf.tmp"
    tmp.write_bytes(b"new contents")
    tmp.rename(mnt / "d" / "conf")
    # A file with unsynced data that is then unlinked: its overlay is discarded, not "dropped" by the power loss.
    (mnt / "d" / "gone").write_bytes(b"x" * 1000)
    (mnt / "d" / "gone").unlink()
    os.symlink("conf", mnt / "d" / "link")
    dfd = os.open(mnt / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    assert sorted(os.listdir(mnt / "d")) == ["conf", "e", "link"]

    with open(mnt / ".lock", "w") as f1, open(mnt / ".lock", "w") as f2:
        fcntl.flock(f1, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(f1, fcntl.LOCK_UN)
        fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(f1, fcntl.LOCK_EX | fcntl.LOCK_NB)  # POSIX record locks (LMDB's) are accepted too

    stats = lazyfs.stats()
    assert stats["orphan_bytes_discarded"] == 1000 and stats["fsyncdirs"] == 1
    assert lazyfs.power_loss() == len(b"new contents")
    lazyfs.remount()
    assert sorted(os.listdir(mnt / "d")) == ["conf", "e", "link"]
    assert (mnt / "d" / "conf").read_bytes() == b""
    assert os.readlink(mnt / "d" / "link") == "conf"
    # Unlinking for real (hard_remove): no .fuse_hidden files are left in the backing directory.
    assert sorted(os.listdir(lazyfs.backing / "d")) == ["conf", "e", "link"]


_SQLITE_WRITER = textwrap.dedent(
    """
    import os, signal, sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # each commit fsyncs the WAL: durable
    db.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB)")
    for i in range(10):
        db.execute("INSERT INTO kv VALUES (?, ?)", (i, os.urandom(200)))
    db.execute("PRAGMA synchronous=OFF")  # commits that never fsync: lost on power loss
    for i in range(10, 20):
        db.execute("INSERT INTO kv VALUES (?, ?)", (i, os.urandom(200)))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@needs_fuse
def test_sqlite_wal_keeps_synced_commits_after_crash(lazyfs: LazyFS) -> None:
    db_path = lazyfs.mountpoint / "kv.db"
    proc = subprocess.run([sys.executable, "-c", _SQLITE_WRITER, str(db_path)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert lazyfs.crash() > 0
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert [k for (k,) in db.execute("SELECT k FROM kv ORDER BY k")] == list(range(10))
    db.close()


# LMDB as the store uses it (mmap reads, pwrite + fdatasync commits, no meta sync), three named databases whose
# keys each have their own shape, while another thread stats the file (as the server's db-size metric does).
# Any key found in the wrong database, or LMDB reporting a database it no longer recognises, is a corrupt tree.
_LMDB_STRESS = textwrap.dedent(
    """
    import os, sys, threading, time, lmdb
    env = lmdb.open(sys.argv[1], map_size=1 << 30, max_dbs=4, metasync=False)
    shape = {b"key": 17, b"lease": 8, b"meta": 5}
    dbs = {name: env.open_db(name) for name in shape}
    stop, bad, revs = time.monotonic() + float(sys.argv[2]), [], [0]
    threading.excepthook = lambda args: bad.append(repr(args.exc_value))  # a thread that dies is a failure
    def writer():
        rev = 0
        while time.monotonic() < stop and not bad:
            revs[0] = rev
            with env.begin(write=True) as t:
                for _ in range(40):
                    rev += 1
                    t.put(rev.to_bytes(8, "big") + os.urandom(9), os.urandom(200), db=dbs[b"key"])
                if rev % 400 == 0:  # drop the oldest, as a compaction does
                    for k in list(t.cursor(db=dbs[b"key"]).iternext(values=False))[:300]:
                        t.delete(k, db=dbs[b"key"])
                t.put(os.urandom(8), b"lease", db=dbs[b"lease"])
                t.put(b"meta" + bytes([rev % 7]), rev.to_bytes(8, "big"), db=dbs[b"meta"])
    def reader():
        while time.monotonic() < stop and not bad:
            try:
                with env.begin() as t:
                    for name, db in dbs.items():
                        for k in t.cursor(db=db).iternext(values=False):
                            if len(k) != shape[name]:
                                bad.append(f"{name!r} holds {k!r}")
                                return
            except lmdb.Error as e:
                bad.append(str(e))
    def statter():
        while time.monotonic() < stop and not bad:
            os.stat(os.path.join(sys.argv[1], "data.mdb"))
    threads = [threading.Thread(target=f) for f in (writer, reader, reader, statter)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(bad[0] if bad else f"consistent after {revs[0]} writes")
    """
)


@needs_fuse
def test_lmdb_stays_consistent_while_the_file_is_statted(lazyfs: LazyFS) -> None:
    """Robustness bug 9: with the kernel's auto_inval_data, a stat between LMDB's writes made the kernel drop the
    file's cached pages under the writer, LMDB read stale pages and its tree went corrupt (keys of one database
    in another) within a second; the member of the suite that hit it served divergent data and failed to restart."""
    pytest.importorskip("lmdb")
    db = lazyfs.mountpoint / "db"
    db.mkdir()
    proc = subprocess.run([sys.executable, "-c", _LMDB_STRESS, str(db), "4"], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    said = proc.stdout.decode().strip()
    assert said.startswith("consistent after "), said
    assert int(said.split()[2]) >= 2000, f"LMDB must have been busy: {said}"


@needs_fuse
def test_fsync_throughput(lazyfs: LazyFS, capsys: pytest.CaptureFixture[str]) -> None:
    """pwrite+fdatasync of 4 KiB through the mount. The store needs a few hundred writes/s, each a WAL write and
    an LMDB commit (about two fsyncs); the floor is far below what is measured so a busy machine does not fail."""
    rate = fsync_write_rate(lazyfs.mountpoint, ops=300)
    with capsys.disabled():
        print(f"\nlazyfs: {rate:.0f} pwrite+fdatasync/s of 4 KiB")
    assert rate > 100
    assert lazyfs.stats()["dirty_bytes"] == 0
