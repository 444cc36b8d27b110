"""The real etcdctl ``watch`` (v3) against our server and against etcd: the same output.

``etcdctl watch`` runs until it is killed, so each run is a background process
(``CtlWatch``) whose stdout a reader thread collects. The same watch is started on
both servers, the same writes go to both (``DiffPair``, which also compares the
write responses), then both processes are terminated and their output compared:
simple output as text, ``-w json`` line by line with member ids dropped and
revisions relative to the test's base, ``-w fields`` with id lines dropped and
revision lines rebased.

A watch without ``--rev`` sees only what is written after the server created it,
and etcdctl prints nothing when that happens. So before the writes each watch is
synced: the test puts a marker value on a watched key until the marker shows up
in the output, deletes the key again, waits for that event to be printed and
cuts the output there. Revisions are then compared relative to the revision after
the sync, which may differ between the servers.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness import ops
from harness.etcdctl import ETCDCTL_BIN, _drop_ids, normalize_fields
from harness.kvclient import Client, DiffPair
from harness.normalize import rebase

WAIT = 10.0
QUIET = 0.4
SYNC_TRIES = 50


class CtlWatch:
    """``etcdctl --endpoints <endpoint> <args>`` in the background; stdout collected as it is printed."""

    def __init__(self, endpoint: str, args: list[str], interactive: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env["ETCDCTL_API"] = "3"
        self.args = args
        self.proc = subprocess.Popen(
            [ETCDCTL_BIN, "--endpoints", endpoint, *args],
            stdin=subprocess.PIPE if interactive is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        if interactive is not None:
            # Commands for `watch -i`; stdin stays open, as etcdctl stops reading commands at EOF.
            self.proc.stdin.write(interactive.encode())
            self.proc.stdin.flush()
        self._buf = bytearray()
        self._err = bytearray()
        self._cond = threading.Condition()
        self._last = time.monotonic()
        self.cut = 0  # output before this offset belongs to the sync
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._buf), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream, buf: bytearray) -> None:
        fd = stream.fileno()
        while chunk := os.read(fd, 65536):
            with self._cond:
                buf.extend(chunk)
                self._last = time.monotonic()
                self._cond.notify_all()

    def text(self) -> str:
        with self._cond:
            return self._buf.decode(errors="replace")

    def wait_text(self, pred: Callable[[str], bool], timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self._buf.decode(errors="replace")):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return pred(self._buf.decode(errors="replace"))
                self._cond.wait(min(left, 0.1))
            return True

    def settle(self, quiet: float = QUIET, timeout: float = WAIT) -> None:
        """Wait until nothing has been printed for ``quiet`` seconds (counted from now at the earliest)."""
        start = time.monotonic()
        deadline = start + timeout
        with self._cond:
            while (idle := time.monotonic() - max(self._last, start)) < quiet:
                if time.monotonic() > deadline:
                    raise AssertionError(f"etcdctl {self.args} keeps printing: {self._buf[-2000:]!r}")
                self._cond.wait(quiet - idle)

    def stop(self) -> tuple[int, str, str]:
        """Terminate etcdctl (if still running); return (rc, stdout after the sync cut, stderr)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(WAIT)
        for t in self._threads:
            t.join(WAIT)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        with self._cond:
            return rc, self._buf[self.cut :].decode(errors="replace"), self._err.decode(errors="replace")


def sync(w: CtlWatch, client: Client, key: bytes) -> int:
    """Put a marker on ``key`` (watched by ``w``) until it is printed, delete it, cut the output there.

    Returns the store revision after the sync: the base for comparing revisions.
    """
    for i in range(SYNC_TRIES):
        marker = f"__sync__{i}"
        client.kv.Put(ops.put(key, marker.encode()), timeout=WAIT)
        b64 = base64.b64encode(marker.encode()).decode()
        if w.wait_text(lambda t, m=marker, b=b64: m in t or b in t, timeout=0.3):
            break
    else:
        raise AssertionError(f"etcdctl {w.args} never printed a sync marker; output {w.text()!r}")
    client.kv.DeleteRange(ops.delete(key), timeout=WAIT)
    w.settle()
    w.cut = len(w.text().encode())
    return client.revision()


def fmt_of(args: list[str]) -> str:
    for i, a in enumerate(args):
        if a in ("-w", "--write-out"):
            return args[i + 1]
    return "simple"


def normalize(fmt: str, text: str, base: int) -> Any:
    if fmt == "json":
        return [rebase(_drop_ids(json.loads(line)), base) for line in text.splitlines() if line.strip()]
    if fmt == "fields":
        out = []
        for line in normalize_fields(text, None):
            name, sep, value = line.partition(" : ")
            if sep and name in ('"Revision"', '"CreateRevision"', '"ModRevision"') and value.isdigit() and value != "0":
                line = f"{name} : @{int(value) - base:+d}"
            out.append(line)
        return out
    return text


def run_watch(
    diff: DiffPair,
    args: list[str],
    writes: Callable[[DiffPair], None],
    sync_key: bytes | None = None,
    interactive: str | None = None,
    before: Callable[[DiffPair], None] | None = None,
    rev_text: bool = False,
) -> tuple[int, Any, str]:
    """Run ``etcdctl <args>`` on both servers around ``writes``; return the (equal) normalized outcome.

    ``before`` writes history before etcdctl starts (for ``--rev``, which then needs no sync);
    an argument containing ``{base}`` arithmetic is given as ``"{rev:+k}"`` and becomes base + k.
    ``rev_text`` rebases every number at the start of a line (exec-command output).
    """
    diff.begin()
    if before is not None:
        before(diff)

    def argv(base: int) -> list[str]:
        return [re.sub(r"\{rev:\+(\d+)\}", lambda m: str(base + int(m[1])), a) for a in args]

    ref_w = CtlWatch(diff.ref.endpoint, argv(diff.ref_base), interactive)
    ours_w = CtlWatch(diff.ours.endpoint, argv(diff.ours_base), interactive)
    try:
        if sync_key is not None:
            diff.ref_base = sync(ref_w, diff.ref, sync_key)
            diff.ours_base = sync(ours_w, diff.ours, sync_key)
        elif before is not None:
            # --rev into the history: wait until the history is printed, so what follows is live.
            for cw in (ref_w, ours_w):
                assert cw.wait_text(lambda t: t.strip() != ""), f"etcdctl {cw.args} printed no history"
                cw.settle()
        writes(diff)
        for cw in (ref_w, ours_w):
            cw.settle()
    finally:
        ref = ref_w.stop()
        ours = ours_w.stop()
    fmt = fmt_of(args)
    outcomes = []
    for (rc, out, err), base in ((ref, diff.ref_base), (ours, diff.ours_base)):
        norm = normalize(fmt, out, base)
        if rev_text:
            norm = re.sub(r"(?m)^(\d+) ", lambda m, b=base: f"@{int(m[1]) - b:+d} ", norm)
        outcomes.append((rc, norm, err))
    assert outcomes[0] == outcomes[1], f"etcdctl {args}\netcd: {outcomes[0]}\nours: {outcomes[1]}"
    return outcomes[0]


TERMINATED = -15  # etcdctl watch runs until SIGTERM


def put(d: DiffPair, key: bytes, value: bytes = b"v") -> None:
    d.run("Put", ops.put(key, value), f"put {key!r}")


def delete(d: DiffPair, key: bytes, end: bytes = b"") -> None:
    d.run("DeleteRange", ops.delete(key, end), f"delete {key!r}")


def txn(d: DiffPair, *success) -> None:
    d.run("Txn", ops.txn(success=success), "txn")


# -- tests ------------------------------------------------------------------------------------


def test_watch_key(diff: DiffPair) -> None:
    k = b"ctlw/key/k"

    def writes(d: DiffPair) -> None:
        put(d, k, b"v1")
        put(d, k + b"x", b"other")  # another key sharing the name as a prefix: not shown
        put(d, k, b"v2")
        delete(d, k)
        txn(d, ops.put(k, b"v3"), ops.put(b"ctlw/key/other", b"o"))
        delete(d, k)

    rc, out, err = run_watch(diff, ["watch", k.decode()], writes, sync_key=k)
    assert (rc, err) == (TERMINATED, "")
    assert (
        out
        == "PUT\nctlw/key/k\nv1\nPUT\nctlw/key/k\nv2\nDELETE\nctlw/key/k\n\nPUT\nctlw/key/k\nv3\nDELETE\nctlw/key/k\n\n"
    )


def test_watch_prefix(diff: DiffPair) -> None:
    p = b"ctlw/prefix/"

    def writes(d: DiffPair) -> None:
        put(d, p + b"a", b"1")
        put(d, b"ctlw/prefix", b"outside")
        put(d, p + b"b", b"2")
        txn(d, ops.put(p + b"c", b"3"), ops.put(p + b"a", b"4"))
        delete(d, p, ops.prefix_end(p))

    rc, out, _ = run_watch(diff, ["watch", "--prefix", p.decode()], writes, sync_key=p + b"sync")
    assert rc == TERMINATED
    assert out == (
        "PUT\nctlw/prefix/a\n1\nPUT\nctlw/prefix/b\n2\nPUT\nctlw/prefix/c\n3\nPUT\nctlw/prefix/a\n4\n"
        "DELETE\nctlw/prefix/a\n\nDELETE\nctlw/prefix/b\n\nDELETE\nctlw/prefix/c\n\n"
    )


def test_watch_range(diff: DiffPair) -> None:
    p = b"ctlw/range/"

    def writes(d: DiffPair) -> None:
        for key in (b"a", b"b", b"c", b"bb", b"0"):
            put(d, p + key, key)

    rc, out, _ = run_watch(diff, ["watch", (p + b"a").decode(), (p + b"c").decode()], writes, sync_key=p + b"b")
    assert out == "PUT\nctlw/range/a\na\nPUT\nctlw/range/b\nb\nPUT\nctlw/range/bb\nbb\n"


def test_watch_prev_kv(diff: DiffPair) -> None:
    p = b"ctlw/prevkv/"

    def writes(d: DiffPair) -> None:
        put(d, p + b"a", b"1")
        put(d, p + b"a", b"2")
        delete(d, p + b"a")

    _, out, _ = run_watch(diff, ["watch", "--prefix", "--prev-kv", p.decode()], writes, sync_key=p + b"sync")
    a = "ctlw/prevkv/a"
    assert out == f"PUT\n{a}\n1\nPUT\n{a}\n1\n{a}\n2\nDELETE\n{a}\n2\n{a}\n\n"


@pytest.mark.parametrize("prev_kv", [False, True], ids=["plain", "prev-kv"])
def test_watch_json(diff: DiffPair, prev_kv: bool) -> None:
    p = f"ctlw/json{int(prev_kv)}/".encode()

    def writes(d: DiffPair) -> None:
        put(d, p + b"a", b"1")
        txn(d, ops.put(p + b"b", b"2"), ops.put(p + b"a", b"3"))
        delete(d, p, ops.prefix_end(p))

    args = ["watch", "--prefix", p.decode(), "-w", "json", *(["--prev-kv"] if prev_kv else [])]
    _, out, _ = run_watch(diff, args, writes, sync_key=p + b"sync")
    assert [line["Header"]["revision"] for line in out] == ["@+1", "@+2", "@+3"]
    assert [len(line["Events"]) for line in out] == [1, 2, 2]
    assert out[1]["Events"][1]["kv"] == {"key": p + b"a", "create_revision": "@+1", "mod_revision": "@+2",
                                         "version": 2, "value": b"3"}  # fmt: skip
    assert all((line["Canceled"], line["Created"], line["CompactRevision"]) == (False, False, 0) for line in out)


def test_watch_fields(diff: DiffPair) -> None:
    k = b"ctlw/fields/k"

    def writes(d: DiffPair) -> None:
        put(d, k, b"1")
        put(d, k, b"2")
        delete(d, k)

    _, out, _ = run_watch(diff, ["watch", k.decode(), "-w", "fields"], writes, sync_key=k)
    assert out[:7] == ['"Revision" : @+1', '"Type" : PUT', '"Key" : "ctlw/fields/k"', '"CreateRevision" : @+1',
                       '"ModRevision" : @+1', '"Version" : 1', '"Value" : "1"']  # fmt: skip


def history(p: bytes) -> Callable[[DiffPair], None]:
    """Relative revisions +1..+5 under ``p``."""

    def write(d: DiffPair) -> None:
        put(d, p + b"a", b"1")
        put(d, p + b"b", b"1")
        put(d, p + b"a", b"2")
        delete(d, p + b"b")
        txn(d, ops.put(p + b"c", b"1"), ops.put(p + b"d", b"1"))

    return write


@pytest.mark.parametrize("fmt", ["simple", "json"])
@pytest.mark.parametrize("rev", [1, 3, 5])
def test_watch_rev(diff: DiffPair, fmt: str, rev: int) -> None:
    p = f"ctlw/rev/{fmt}{rev}/".encode()

    def writes(d: DiffPair) -> None:
        put(d, p + b"a", b"live")
        delete(d, p, ops.prefix_end(p))

    args = ["watch", "--prefix", p.decode(), "--rev", f"{{rev:+{rev}}}", *(["-w", "json"] if fmt == "json" else [])]
    _, out, _ = run_watch(diff, args, writes, before=history(p))
    if fmt == "json":
        # The history arrives in one response carrying the store's revision, then one response per revision.
        assert [line["Header"]["revision"] for line in out] == ["@+5", "@+6", "@+7"]
        assert out[0]["Events"][0]["kv"]["mod_revision"] == f"@+{rev}"
    elif rev == 5:
        assert out.startswith("PUT\nctlw/rev/simple5/c\n1\nPUT\nctlw/rev/simple5/d\n1\nPUT\nctlw/rev/simple5/a\nlive\n")


def test_watch_rev_compacted(fresh_diff: DiffPair) -> None:
    d = fresh_diff
    for i in range(5):
        put(d, b"k", f"v{i}".encode())
    d.run("Compact", lambda base: ops.compact(base + 4))
    outcomes = []
    for ep, base in ((d.ref.endpoint, d.ref_base), (d.ours.endpoint, d.ours_base)):
        w = CtlWatch(ep, ["watch", "--rev", str(base + 2), "k"])
        w.proc.wait(WAIT)  # the server cancels the watch: etcdctl exits by itself
        outcomes.append(w.stop())
    assert outcomes[0] == outcomes[1], f"etcd: {outcomes[0]}\nours: {outcomes[1]}"
    assert outcomes[0] == (
        5,
        "",
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n"
        "Error: watch is canceled by the server\n",
    )


def test_watch_interactive(diff: DiffPair) -> None:
    k = b"ctlw/interactive/k"

    def writes(d: DiffPair) -> None:
        put(d, k, b"1")
        put(d, k + b"/x", b"not watched")
        put(d, k, b"2")
        delete(d, k)

    _, out, _ = run_watch(diff, ["watch", "-i"], writes, sync_key=k, interactive=f"watch {k.decode()}\n")
    assert out == f"PUT\n{k.decode()}\n1\nPUT\n{k.decode()}\n2\nDELETE\n{k.decode()}\n\n"


def test_watch_interactive_prefix_prev_kv(diff: DiffPair) -> None:
    p = b"ctlw/interactive2/"

    def writes(d: DiffPair) -> None:
        put(d, p + b"a", b"1")
        txn(d, ops.put(p + b"a", b"2"), ops.put(p + b"b", b"1"))
        delete(d, p, ops.prefix_end(p))

    run_watch(
        diff, ["watch", "-i"], writes, sync_key=p + b"sync", interactive=f"watch --prefix --prev-kv {p.decode()}\n"
    )


def test_watch_exec_command(diff: DiffPair) -> None:
    """Arguments after ``--`` run per event with ETCD_WATCH_* set; the revision is absolute, so rebased."""
    k = b"ctlw/exec/k"

    def writes(d: DiffPair) -> None:
        put(d, k, b"x")
        delete(d, k)

    cmd = 'echo "$ETCD_WATCH_REVISION" "$ETCD_WATCH_KEY" "$ETCD_WATCH_EVENT_TYPE" "$ETCD_WATCH_VALUE"'
    _, out, _ = run_watch(diff, ["watch", k.decode(), "--", "sh", "-c", cmd], writes, sync_key=k, rev_text=True)
    key = k.decode()
    assert out == f'PUT\n{key}\nx\n@+1 "{key}" "PUT" "x"\nDELETE\n{key}\n\n@+2 "{key}" "DELETE" ""\n'
