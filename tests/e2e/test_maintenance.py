"""The real etcdctl (v3) maintenance, cluster and concurrency commands against our server and against etcd.

Each command runs on both servers with the same arguments; exit codes, stdout and stderr must be equal after
removing what legitimately differs between two correct one-member servers:

- the endpoint (``127.0.0.1:<port>``), the member's peer and client URLs and the member ID (hex in simple
  output, decimal in json) become ``<endpoint>``, ``<peer-url>``, ``<client-url>`` and ``<member-id>``; the
  test first checks that each server printed its *own* values there (leader == member ID, URLs are the ones
  it was started with);
- ``endpoint status``: ``dbSize``/``dbSizeInUse`` (different storage engines and page sizes) and
  ``raftIndex``/``raftAppliedIndex`` (etcd's log holds extra bootstrap entries: conf change, member attributes,
  cluster version) become ``<varies>`` after checking ``0 < dbSizeInUse <= dbSize`` and
  ``0 < raftAppliedIndex <= raftIndex``; the header's revision is compared relative to the test's start;
- ``endpoint health``: the ``took = ...`` latency;
- lease IDs inside lock and election keys (``name/<lease hex>``) become ``<lease1>``, ``<lease2>``... in
  order of first appearance on each server;
- ``snapshot save``: the file path in "Snapshot saved at" and the client's JSON progress log on stderr.

``endpoint hashkv`` is NOT normalized: after the same puts, deletes and compactions on two fresh servers the
hash must equal etcd's (``HashKV`` is defined over the MVCC key space, independent of the storage engine).

``lock`` and ``elect`` run under ``Popen`` on both servers at once; a contender that must wait is checked to
print nothing (and stay running) for a second while the first holds the lock or leadership.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import etcdctl
from harness.etcdctl import ETCDCTL_BIN, normalize_json, normalize_stderr
from harness.kvclient import CALL_TIMEOUT, Client
from harness.servers import Server, free_port, start_server
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

WAIT_QUIET = 1.0  # how long a blocked contender must stay silent
LINE_TIMEOUT = 15.0
STATUS_VARYING = ("dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex")


@dataclass
class Side:
    """One server, what identifies it in etcdctl output, and the lease IDs seen in lock/election keys."""

    who: str
    server: Server
    member_id: int = 0
    base: int = 0
    leases: dict[str, str] = field(default_factory=dict)  # lease hex -> <leaseN>

    def begin(self) -> None:
        c = Client(self.server.endpoint)
        try:
            self.member_id = c.maintenance.Status(rpc_pb2.StatusRequest(), timeout=CALL_TIMEOUT).header.member_id
            self.base = c.revision()
        finally:
            c.close()

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.server.peer_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.server.client_port}"

    def run(self, *args: str, timeout: float = etcdctl.TIMEOUT) -> etcdctl.Result:
        return etcdctl.run(self.server.endpoint, *args, timeout=timeout)

    def text(self, s: str) -> str:
        """This server's endpoint, URLs and member ID replaced by placeholders."""
        s = s.replace(self.peer_url, "<peer-url>").replace(self.client_url, "<client-url>")
        s = s.replace(self.server.endpoint, "<endpoint>")
        s = re.sub(rf"\b0*{self.member_id:x}\b", "<member-id>", s)
        return re.sub(rf"\b{self.member_id}\b", "<member-id>", s)

    def lease_keys(self, s: str) -> str:
        """``name/<lease hex>`` keys: each distinct lease becomes ``<leaseN>`` (first seen = 1)."""

        def sub(m: re.Match) -> str:
            name = self.leases.setdefault(m[2], f"<lease{len(self.leases) + 1}>")
            return m[1] + name

        return re.sub(r"^(\S+/)([0-9a-f]{1,16})$", sub, s, flags=re.M)


def both(sides: list[Side], *args: str) -> list[etcdctl.Result]:
    return [s.run(*args) for s in sides]


def assert_same(sides: list[Side], what: str, values: list[object]) -> object:
    ref, ours = values
    assert ref == ours, f"etcdctl {what}\n{sides[0].who}: {ref!r}\n{sides[1].who}: {ours!r}"
    return ref


@pytest.fixture(scope="module")
def module_sides(etcd_server: Server, ours_server: Server) -> list[Side]:
    return [Side("etcd", etcd_server), Side("ours", ours_server)]


@pytest.fixture
def sides(module_sides: list[Side]) -> list[Side]:
    for s in module_sides:
        s.begin()
        s.leases.clear()
    return module_sides


@pytest.fixture
def fresh_sides(tmp_path: Path) -> Iterator[list[Side]]:
    """Two brand-new servers: identical histories from revision 1, for whole-keyspace hashes and compaction."""
    ref = start_server("etcd", tmp_path / "etcd")
    try:
        ours = start_server("ours", tmp_path / "ours")
        try:
            out = [Side("etcd", ref), Side("ours", ours)]
            for s in out:
                s.begin()
            yield out
        finally:
            ours.stop()
    finally:
        ref.stop()


# -- endpoint status / health -----------------------------------------------------------------------------


def normalized_status_json(side: Side, res: etcdctl.Result) -> object:
    assert res.rc == 0, f"{side.who}: {res}"
    [entry] = json.loads(res.stdout)
    assert entry["Endpoint"] == side.server.endpoint
    st = entry["Status"]
    assert st["header"]["member_id"] == side.member_id, f"{side.who}: {st}"
    assert st["leader"] == side.member_id, f"{side.who}: the only member must be the leader: {st}"
    assert st["version"] == "3.4.23", f"{side.who}: {st}"
    assert not st.get("isLearner", False), f"{side.who}: {st}"
    assert st.get("errors", []) == [], f"{side.who}: {st}"
    assert 0 < st["dbSizeInUse"] <= st["dbSize"], f"{side.who}: {st}"
    assert 0 < st["raftAppliedIndex"] <= st["raftIndex"], f"{side.who}: {st}"
    [doc] = normalize_json(res.stdout, side.base)
    doc["Endpoint"] = "<endpoint>"
    doc["Status"]["leader"] = "<member-id>"
    for k in STATUS_VARYING:
        doc["Status"][k] = "<varies>"
    return doc


def test_endpoint_status_json(sides: list[Side]) -> None:
    res = both(sides, "endpoint", "status", "-w", "json")
    docs = [normalized_status_json(s, r) for s, r in zip(sides, res, strict=True)]
    assert_same(sides, "endpoint status -w json", docs)


def status_cells(side: Side, cells: list[str]) -> list[str]:
    """A status row: ENDPOINT, ID, VERSION, DB SIZE, IS LEADER, IS LEARNER, TERM, INDEX, APPLIED INDEX, ERRORS."""
    assert cells[0] == side.server.endpoint and cells[1] == f"{side.member_id:x}", f"{side.who}: {cells}"
    assert cells[2:3] == ["3.4.23"] and cells[4:6] == ["true", "false"], f"{side.who}: {cells}"
    return ["<endpoint>", "<member-id>", cells[2], "<db size>", *cells[4:7], "<index>", "<index>", *cells[9:]]


def test_endpoint_status_simple_and_table(sides: list[Side]) -> None:
    simple = []
    for s, r in zip(sides, both(sides, "endpoint", "status"), strict=True):
        assert r.rc == 0 and r.stderr == "", f"{s.who}: {r}"
        [line] = r.stdout.splitlines()
        simple.append(status_cells(s, line.split(", ")))
    assert_same(sides, "endpoint status", simple)

    tables = []
    for s, r in zip(sides, both(sides, "endpoint", "status", "-w", "table"), strict=True):
        assert r.rc == 0, f"{s.who}: {r}"
        lines = r.stdout.splitlines()
        rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if ln.startswith("|")]
        assert len(rows) == 2, f"{s.who}: {r.stdout}"
        borders = {re.sub(r"-+", "-", ln) for ln in lines if ln.startswith("+")}
        tables.append((rows[0], status_cells(s, rows[1]), borders))
    assert_same(sides, "endpoint status -w table", tables)


def test_endpoint_health(sides: list[Side]) -> None:
    outs = []
    for s, r in zip(sides, both(sides, "endpoint", "health"), strict=True):
        # etcdctl prints the health line on stderr.
        assert re.fullmatch(
            rf"{re.escape(s.server.endpoint)} is healthy: successfully committed proposal: took = \S+\n", r.stderr
        ), f"{s.who}: {r}"
        outs.append((r.rc, r.stdout, re.sub(r"took = \S+", "took = <t>", s.text(r.stderr))))
    assert_same(sides, "endpoint health", outs)


# -- member list ---------------------------------------------------------------------------------------------


def test_member_list_simple(sides: list[Side]) -> None:
    outs = []
    for s, r in zip(sides, both(sides, "member", "list"), strict=True):
        assert r.rc == 0, f"{s.who}: {r}"
        assert r.stdout == f"{s.member_id:x}, started, t, {s.peer_url}, {s.client_url}, false\n", f"{s.who}: {r}"
        outs.append((r.rc, s.text(r.stdout), r.stderr))
    assert_same(sides, "member list", outs)


def test_member_list_json(sides: list[Side]) -> None:
    docs = []
    for s, r in zip(sides, both(sides, "member", "list", "-w", "json"), strict=True):
        assert r.rc == 0, f"{s.who}: {r}"
        raw = json.loads(r.stdout)
        assert raw["header"]["member_id"] == s.member_id, f"{s.who}: {raw}"
        [m] = raw["members"]
        assert m["ID"] == s.member_id and m["name"] == "t", f"{s.who}: {m}"
        assert m["peerURLs"] == [s.peer_url] and m["clientURLs"] == [s.client_url], f"{s.who}: {m}"
        assert not m.get("isLearner", False), f"{s.who}: {m}"
        doc = normalize_json(r.stdout, s.base)
        doc["members"] = [
            {**m, "ID": "<member-id>", "peerURLs": ["<peer-url>"], "clientURLs": ["<client-url>"]}
            for m in doc["members"]
        ]
        docs.append(doc)
    # The whole document, header included: etcd 3.4's Cluster responses carry no revision.
    assert_same(sides, "member list -w json", docs)


# -- hashkv and compaction (fresh servers) -------------------------------------------------------------------

HISTORY = [
    ("put", "h/a", "1"),
    ("put", "h/b", "2"),
    ("put", "h/a", "3"),
    ("del", "h/b"),
    ("put", "h/c", "4"),
    ("put", "h/b", "5"),
    ("del", "h/c"),
]  # revisions base+1 .. base+7


def play(sides: list[Side], ops: list[tuple[str, ...]]) -> None:
    for op in ops:
        outs = [(r.rc, r.stdout) for r in both(sides, *op)]
        assert_same(sides, " ".join(op), outs)
        assert outs[0][0] == 0


def hashkv(sides: list[Side], *extra: str) -> tuple[object, object]:
    """``endpoint hashkv`` in json (hash compared exactly) and simple form; returns the normalized pair."""
    docs = []
    for s, r in zip(sides, both(sides, "endpoint", "hashkv", "-w", "json", *extra), strict=True):
        assert r.rc == 0, f"{s.who}: {r}"
        [doc] = normalize_json(r.stdout, s.base)
        doc["Endpoint"] = s.text(doc["Endpoint"])
        docs.append(doc)
    hashes = [d["HashKV"]["hash"] for d in docs]
    simple = []
    for s, r in zip(sides, both(sides, "endpoint", "hashkv", *extra), strict=True):
        simple.append((r.rc, s.text(r.stdout)))
    assert_same(sides, f"endpoint hashkv {' '.join(extra)} (hash values)", hashes)
    assert_same(sides, f"endpoint hashkv -w json {' '.join(extra)}", docs)
    return assert_same(sides, f"endpoint hashkv {' '.join(extra)}", simple)


def test_hashkv_equals_etcd(fresh_sides: list[Side]) -> None:
    sides = fresh_sides
    hashkv(sides)  # the empty store
    play(sides, HISTORY)
    hashkv(sides)
    for k in (1, 3, 7):
        hashkv(sides, "--rev", str(sides[0].base + k))  # bases are equal on fresh servers
    outs = []
    for s, r in zip(sides, both(sides, "endpoint", "hashkv", "--rev", str(sides[0].base + 100)), strict=True):
        outs.append((r.rc, r.stdout, [s.text(x) for x in normalize_stderr(r.stderr)]))
    err = assert_same(sides, "endpoint hashkv --rev <future>", outs)
    assert err[0] != 0 and "Error: etcdserver: mvcc: required revision is a future revision" in err[2]


def compaction(sides: list[Side], *args: str, rel: int) -> None:
    outs = []
    for s in sides:
        r = s.run("compaction", *args, str(s.base + rel))
        outs.append((r.rc, r.stdout.replace(str(s.base + rel), f"@+{rel}"), r.stderr))
    out = assert_same(sides, f"compaction {' '.join(args)} <base+{rel}>", outs)
    assert out == (0, f"compacted revision @+{rel}\n", "")


def test_compaction_then_hashkv(fresh_sides: list[Side]) -> None:
    sides = fresh_sides
    play(sides, HISTORY)
    compaction(sides, rel=3)
    hashkv(sides)
    hashkv(sides, "--rev", str(sides[0].base + 6))
    play(sides, [("put", "h/a", "6"), ("put", "h/d", "7")])
    compaction(sides, "--physical", rel=6)
    hashkv(sides)
    hashkv(sides, "--rev", str(sides[0].base + 8))


# -- alarm, defrag, snapshot, move-leader ----------------------------------------------------------------------


def test_alarm_list_empty(sides: list[Side]) -> None:
    outs = [tuple(r) for r in both(sides, "alarm", "list")]
    assert assert_same(sides, "alarm list", outs) == (0, "", "")


def test_defrag(sides: list[Side]) -> None:
    outs = [(r.rc, s.text(r.stdout), r.stderr) for s, r in zip(sides, both(sides, "defrag"), strict=True)]
    assert assert_same(sides, "defrag", outs) == (0, "Finished defragmenting etcd member[<endpoint>]\n", "")


def test_snapshot_save(sides: list[Side], tmp_path: Path) -> None:
    play(sides, [("put", "snap/k", "v")])
    outs = []
    for s in sides:
        path = tmp_path / f"{s.who}.db"
        r = s.run("snapshot", "save", str(path))
        assert r.rc == 0, f"{s.who}: {r}"
        data = path.read_bytes()
        assert len(data) > 32, f"{s.who}: snapshot of {len(data)} bytes"
        # The stream ends with the sha256 of everything before it; `snapshot restore` finds it by size % 512 == 32.
        assert hashlib.sha256(data[:-32]).digest() == data[-32:], f"{s.who}: trailer is not sha256 of the body"
        assert len(data) % 512 == 32, f"{s.who}: snapshot size {len(data)} % 512 != 32"
        outs.append((r.rc, r.stdout.replace(str(path), "<file>")))
    assert assert_same(sides, "snapshot save", outs) == (0, "Snapshot saved at <file>\n")


def test_snapshot_status_reads_saved_file(sides: list[Side], tmp_path: Path) -> None:
    """``snapshot status`` (and ``restore``) open the saved file as a bbolt database."""
    outs = []
    for s in sides:
        path = tmp_path / f"{s.who}.db"
        assert s.run("snapshot", "save", str(path)).rc == 0
        r = s.run("snapshot", "status", str(path), "-w", "json")
        outs.append((r.rc, r.stderr))
    assert_same(sides, "snapshot status -w json <saved file> (rc, stderr)", outs)


def test_snapshot_restores_into_real_etcd(fresh_sides: list[Side], tmp_path: Path) -> None:
    """Our snapshot, restored by the real ``etcdctl snapshot restore`` and served by the real etcd, holds our
    data: the same keys, leases, compaction revision and HashKV as the server it came from."""
    ours = fresh_sides[1]
    play(fresh_sides, HISTORY)
    snap = tmp_path / "ours.db"
    assert ours.run("snapshot", "save", str(snap)).rc == 0
    assert ours.run("compaction", str(ours.base + 3)).rc == 0
    assert ours.run("snapshot", "save", str(snap)).rc == 0
    restored = start_restored_etcd(snap, tmp_path / "restored")
    try:
        for args in (("get", "", "--from-key", "-w", "json"), ("lease", "list")):
            want, got = ours.run(*args), etcdctl.run(restored.endpoint, *args)
            assert (want.rc, got.rc) == (0, 0), (want, got)
            if args[0] == "get":
                want_kvs, got_kvs = (json.loads(r.stdout).get("kvs") for r in (want, got))
                assert got_kvs == want_kvs
            else:
                assert got.stdout == want.stdout
        old = etcdctl.run(restored.endpoint, "get", "k", "--rev", str(ours.base + 1))
        assert "required revision has been compacted" in old.stderr
        hashes = [
            json.loads(etcdctl.run(ep, "endpoint", "hashkv", "-w", "json").stdout)[0]["HashKV"]["hash"]
            for ep in (ours.server.endpoint, restored.endpoint)
        ]
        assert hashes[0] == hashes[1]
    finally:
        restored.stop()


def start_restored_etcd(snap: Path, workdir: Path) -> Server:
    """``etcdctl snapshot restore`` into a new data dir, then the real etcd serving it."""
    workdir.mkdir(parents=True)
    client_port, peer_port = free_port(), free_port()
    peer = f"http://127.0.0.1:{peer_port}"
    data_dir = workdir / "data"
    env = {**os.environ, "ETCDCTL_API": "3"}
    restore = [
        ETCDCTL_BIN, "snapshot", "restore", str(snap), "--data-dir", str(data_dir), "--name", "t",
        "--initial-cluster", f"t={peer}", "--initial-advertise-peer-urls", peer,
    ]  # fmt: skip
    r = subprocess.run(restore, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0, r.stderr
    srv = Server("etcd", data_dir, client_port, peer_port, workdir / "server.log")
    srv.start()
    return srv


def test_move_leader_to_self(sides: list[Side]) -> None:
    outs = []
    for s in sides:
        r = s.run("move-leader", f"{s.member_id:x}")
        outs.append((r.rc, s.text(r.stdout), r.stderr))
    assert assert_same(sides, "move-leader <self>", outs) == (
        0,
        "Leadership transferred from <member-id> to <member-id>\n",
        "",
    )


def test_move_leader_to_unknown_member(sides: list[Side]) -> None:
    outs = [(r.rc, r.stdout, normalize_stderr(r.stderr)) for r in both(sides, "move-leader", "1234")]
    rc, out, err = assert_same(sides, "move-leader 1234", outs)
    assert rc != 0 and err[-1] == "Error: etcdserver: bad leader transferee", err


# -- lock and elect --------------------------------------------------------------------------------------------


def ctl_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


class Bg:
    """An etcdctl process in the background; its stdout lines arrive on a queue."""

    def __init__(self, side: Side, *args: str) -> None:
        self.side = side
        self.args = args
        self.proc = subprocess.Popen(
            [ETCDCTL_BIN, "--endpoints", side.server.endpoint, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ctl_env(),
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.out: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self, timeout: float = LINE_TIMEOUT) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.side.who}: etcdctl {self.args} printed nothing for {timeout}s") from None
        assert line is not None, f"{self.side.who}: etcdctl {self.args} exited: {self.finish()}"
        self.out.append(line)
        return line

    def is_waiting(self) -> bool:
        """Still running and silent."""
        return self.proc.poll() is None and self.lines.empty()

    def finish(self, sig: int | None = None) -> tuple[int, str, str]:
        """Signal (or just wait for) the process; returns rc, the stdout not yet read by ``line`` and stderr."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(LINE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.side.who}: etcdctl {self.args} did not exit") from None
        self._reader.join(LINE_TIMEOUT)
        rest = []
        while (line := self.lines.get_nowait() if not self.lines.empty() else None) is not None:
            rest.append(line)
        err = self.proc.stderr.read()
        self.close()
        return rc, "".join(rest), err

    def close(self) -> None:
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None and not f.closed:
                f.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(LINE_TIMEOUT)
        self.close()


@pytest.fixture
def bg() -> Iterator[list[Bg]]:
    """Background etcdctl processes started in a test; killed at the end if still running."""
    procs: list[Bg] = []
    yield procs
    for p in procs:
        p.kill()


def spawn(procs: list[Bg], sides: list[Side], *args: str) -> list[Bg]:
    out = [Bg(s, *args) for s in sides]
    procs.extend(out)
    return out


def test_lock_second_contender_waits(sides: list[Side], bg: list[Bg]) -> None:
    first = spawn(bg, sides, "lock", "lk/two")
    held = [p.line() for p in first]
    second = spawn(bg, sides, "lock", "lk/two")
    time.sleep(WAIT_QUIET)
    for p in second:
        assert p.is_waiting(), f"{p.side.who}: second `lock` did not wait for the holder: {p.out}"
    ends = [p.finish(signal.SIGINT) for p in first]
    got = [p.line() for p in second]
    ends2 = [p.finish(signal.SIGINT) for p in second]
    outs = []
    for s, h, e, g, e2 in zip(sides, held, ends, got, ends2, strict=True):
        assert h != g, f"{s.who}: both contenders printed {h!r}"
        outs.append((s.lease_keys(h), e, s.lease_keys(g), e2))
    out = assert_same(sides, "lock lk/two (two contenders)", outs)
    # On SIGINT etcdctl unlocks, prints an empty line and exits 0.
    assert out == ("lk/two/<lease1>\n", (0, "\n", ""), "lk/two/<lease2>\n", (0, "\n", "")), out


def test_lock_runs_command_while_holding(sides: list[Side], bg: list[Bg]) -> None:
    # The command lists the lock's keys from inside: the holder's key is there while it runs.
    outs = []
    for s in sides:
        inner = [ETCDCTL_BIN, "--endpoints", s.server.endpoint, "get", "--prefix", "lk/cmd", "--keys-only"]
        r = s.run("lock", "lk/cmd", "--", *inner)
        outs.append((r.rc, s.lease_keys(r.stdout), r.stderr))
    assert assert_same(sides, "lock lk/cmd -- etcdctl get --prefix lk/cmd", outs) == (0, "lk/cmd/<lease1>\n\n", "")

    # A waiting `lock name cmd` runs cmd only once the holder lets go, with ETCD_LOCK_KEY/ETCD_LOCK_REV set,
    # releases the lock afterwards and exits non-zero when cmd does.
    holder = spawn(bg, sides, "lock", "lk/cmd2")
    held = [p.line() for p in holder]
    script = 'echo "key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"; exit 3'
    waiter = spawn(bg, sides, "lock", "lk/cmd2", "--", "sh", "-c", script)
    time.sleep(WAIT_QUIET)
    for p in waiter:
        assert p.is_waiting(), f"{p.side.who}: `lock name cmd` ran cmd while the lock was held: {p.out}"
    for p in holder:
        p.finish(signal.SIGINT)
    outs = []
    for s, h, p in zip(sides, held, waiter, strict=True):
        h = s.lease_keys(h)
        rc, rest, err = p.finish()
        rest = re.sub(r"rev=(\d+)", lambda m, s=s: f"rev=@+{int(m[1]) - s.base}", rest)
        rest = re.sub(r"key=(\S+)", lambda m, s=s: "key=" + s.lease_keys(m[1]), rest)
        left = s.run("get", "--prefix", "lk/cmd2")
        outs.append((h, rc, rest, err, tuple(left)))
    out = assert_same(sides, "lock lk/cmd2 -- sh -c ... (waiting)", outs)
    assert out[1:] == (1, "key=lk/cmd2/<lease3> rev=@+5\n", "Error: exit status 3\n", (0, "", "")), out


def test_elect_and_observe(sides: list[Side], bg: list[Bg]) -> None:
    observer = spawn(bg, sides, "elect", "-l", "el/one")
    first = spawn(bg, sides, "elect", "el/one", "p1")
    led1 = [p.line() + p.line() for p in first]
    second = spawn(bg, sides, "elect", "el/one", "p2")
    time.sleep(WAIT_QUIET)
    for p in second:
        assert p.is_waiting(), f"{p.side.who}: second candidate was elected while the first led: {p.out}"
    ends1 = [p.finish(signal.SIGINT) for p in first]
    led2 = [p.line() + p.line() for p in second]
    seen = [p.line() + p.line() + p.line() + p.line() for p in observer]
    ends2 = [p.finish(signal.SIGINT) for p in second]
    ends_obs = [p.finish(signal.SIGINT) for p in observer]
    outs = []
    for s, a, e1, b, e2, o, eo in zip(sides, led1, ends1, led2, ends2, seen, ends_obs, strict=True):
        outs.append((s.lease_keys(a), e1, s.lease_keys(b), e2, s.lease_keys(o), eo))
    out = assert_same(sides, "elect el/one p1 / p2 / -l", outs)
    assert out[0] == "el/one/<lease1>\np1\n" and out[2] == "el/one/<lease2>\np2\n", out
    assert out[4] == out[0] + out[2], out
