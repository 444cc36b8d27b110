"""Differential gRPC tests of Maintenance (HashKV, Alarm, NOSPACE quota, Defragment, MoveLeader, Status) and of the
v3lock and v3election services: each request goes to real etcd and to our server and the normalized outcomes
(response or gRPC code + message) must be equal.

Normalization on top of ``harness.normalize`` (header ids dropped, revisions relative to the test's start):

- ``HashKV.hash`` is compared exactly: it is a CRC-32C over the MVCC key space (revision keys and KeyValue
  protobufs), so identical histories must give identical hashes whatever the storage engine.
- Alarm ``memberID``: the server's own ID becomes ``"<self>"``; IDs the test typed (123) stay. The alarm list
  is sorted (etcd returns it in Go map order).
- ``Status``: ``dbSize``, ``dbSizeInUse``, ``raftIndex`` and ``raftAppliedIndex`` differ legitimately (storage
  engine; etcd's extra bootstrap log entries) and are only range-checked; ``leader`` must equal the member's
  own ID; ``errors`` are compared with the member ID replaced.
- Lease IDs (in ``lease`` fields and in lock/election keys ``name/<lease hex>``) become the name the test gave
  the lease; a lease the server created itself (Lock with lease 0) becomes ``<session lease TTL=n>``.
  ``LeaderKey.rev`` is rebased like other revisions.
- Observe: etcd sends each leader change with the header of the watch response that carried it, whose revision
  depends on timing; only the key-values are compared, and each header's revision must be >= the kv's
  mod_revision.

The NOSPACE test starts both servers with ``--quota-backend-bytes 1048576`` and fills each with 100 KiB values
until the first "database space exceeded": how many puts fit differs (different storage engines) and is not
compared; everything after is, step by step.

Most tests collect every mismatch and report them all at the end instead of stopping at the first. Response
*bodies* of Alarm and Defragment are compared in the behaviour tests; the complete responses, headers included,
in ``test_response_shapes``.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from harness.kvclient import CALL_TIMEOUT, Client, DiffPair, Mismatch
from harness.normalize import message_dict, outcome
from harness.servers import start_server
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2
from pyetcd_fast.etcdpb.v3electionpb import v3election_pb2 as epb
from pyetcd_fast.etcdpb.v3electionpb import v3election_pb2_grpc as epb_grpc
from pyetcd_fast.etcdpb.v3lockpb import v3lock_pb2 as lpb
from pyetcd_fast.etcdpb.v3lockpb import v3lock_pb2_grpc as lpb_grpc

GET, ACTIVATE, DEACTIVATE = (rpc_pb2.AlarmRequest.GET, rpc_pb2.AlarmRequest.ACTIVATE, rpc_pb2.AlarmRequest.DEACTIVATE)
NOSPACE_ERR = {"error": {"code": "RESOURCE_EXHAUSTED", "details": "etcdserver: mvcc: database space exceeded"}}
QUOTA_FLAGS = ["--quota-backend-bytes", "1048576"]
BIG_VALUE = b"x" * (100 * 1024)
FILL_SECONDS = 5.0
WAIT_QUIET = 0.7  # how long a blocked Lock/Campaign must stay pending


def call(fn: Callable[..., Message], req: Message, timeout: float = CALL_TIMEOUT) -> Message | grpc.RpcError:
    try:
        return fn(req, timeout=timeout)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        return e


def member_id(c: Client) -> int:
    return c.maintenance.Status(rpc_pb2.StatusRequest(), timeout=CALL_TIMEOUT).header.member_id


class Collector:
    """Runs steps on both servers and collects every mismatch; ``done()`` fails with all of them."""

    def __init__(self, pair: DiffPair) -> None:
        self.pair = pair
        self.failures: list[str] = []
        self.ids = (member_id(pair.ref), member_id(pair.ours))

    def run(self, method: str, make: Callable[[int], Message] | Message, desc: str = "") -> dict[str, Any] | None:
        try:
            return self.pair.run(method, make, desc)
        except Mismatch as e:
            self.failures.append(str(e).split("\nhistory:", 1)[0])  # the steps so far are the test's own code
            return None

    def same(self, desc: str, ref: Any, ours: Any) -> Any:
        if ref != ours:
            self.failures.append(f"{desc}\netcd: {ref!r}\nours: {ours!r}")
        return ref

    def both(self, desc: str, fn: Callable[[Client, int, int], Any]) -> Any:
        """``fn(client, base, member_id)`` on each side; the two results must be equal."""
        p = self.pair
        return self.same(desc, fn(p.ref, p.ref_base, self.ids[0]), fn(p.ours, p.ours_base, self.ids[1]))

    def done(self) -> None:
        assert not self.failures, f"{len(self.failures)} mismatch(es):\n\n" + "\n\n".join(self.failures)


# -- HashKV ---------------------------------------------------------------------------------------------------


def put(key: bytes, value: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))


HISTORY: list[tuple[str, Message]] = [
    ("Put", rpc_pb2.PutRequest(key=b"a", value=b"1")),  # +1
    ("Put", rpc_pb2.PutRequest(key=b"b", value=b"2")),  # +2
    ("Put", rpc_pb2.PutRequest(key=b"a", value=b"3")),  # +3
    ("DeleteRange", rpc_pb2.DeleteRangeRequest(key=b"b")),  # +4
    ("Txn", rpc_pb2.TxnRequest(success=[put(b"c", b"4"), put(b"d", b"5")])),  # +5, two sub-revisions
    ("Put", rpc_pb2.PutRequest(key=b"b", value=b"6")),  # +6
    ("DeleteRange", rpc_pb2.DeleteRangeRequest(key=b"c")),  # +7
    ("DeleteRange", rpc_pb2.DeleteRangeRequest(key=b"a", range_end=b"z")),  # +8: a, b, d at once
]
LAST = len(HISTORY)


def play(pair: DiffPair) -> None:
    for method, req in HISTORY:
        pair.run(method, req, f"history {method}")


def hashkv(c: Collector, rel: int | None) -> None:
    """HashKV at revision 0 (``rel=None``) or base+rel."""
    if rel is None:
        c.run("HashKV", rpc_pb2.HashKVRequest(revision=0), "HashKV revision=0")
    else:
        c.run("HashKV", lambda b: rpc_pb2.HashKVRequest(revision=b + rel), f"HashKV revision=@+{rel}")


def test_hashkv_without_compaction(fresh_diff: DiffPair) -> None:
    c = Collector(fresh_diff)
    hashkv(c, None)  # empty store
    play(fresh_diff)
    hashkv(c, None)
    for rel in range(LAST + 1):
        hashkv(c, rel)
    hashkv(c, LAST + 1)  # future
    hashkv(c, LAST + 1000)
    c.done()


def test_hashkv_after_compaction(fresh_diff: DiffPair) -> None:
    # Physical compactions only: when nothing below the hashed revision is kept (after the last compaction here)
    # etcd hashes every revision still on disk, which after a non-physical Compact depends on how far its
    # background compaction got (etcd against etcd differs then).
    c = Collector(fresh_diff)
    play(fresh_diff)
    for at in (3, 6, LAST):  # the last one deletes everything: nothing is kept below it
        c.run("Compact", lambda b, at=at: rpc_pb2.CompactionRequest(revision=b + at, physical=True), f"@+{at}")
        hashkv(c, None)
        for rel in range(at - 1, LAST + 2):  # below, at (compacted), above, future
            hashkv(c, rel)
    c.done()


# -- Alarm ------------------------------------------------------------------------------------------------------


def alarm_body(result: Message | grpc.RpcError, own: int) -> Any:
    """The alarm list (sorted, own member ID as "<self>") or the error; the header is not part of it."""
    if isinstance(result, grpc.RpcError):
        return outcome(result, None)
    alarms = [
        {"memberID": "<self>" if a.memberID == own else a.memberID, "alarm": rpc_pb2.AlarmType.Name(a.alarm)}
        for a in result.alarms
    ]
    return sorted(alarms, key=lambda a: (str(a["memberID"]), a["alarm"]))


def alarm(c: Collector, action: int, member: int | None = None, kind: int = rpc_pb2.NOSPACE) -> Any:
    """An Alarm request; ``member=None`` means the server's own ID."""

    def go(cl: Client, _base: int, own: int) -> Any:
        req = rpc_pb2.AlarmRequest(action=action, memberID=own if member is None else member, alarm=kind)
        return alarm_body(cl.call("Alarm", req), own)

    who = "<self>" if member is None else member
    desc = f"Alarm {rpc_pb2.AlarmRequest.AlarmAction.Name(action)} memberID={who} {rpc_pb2.AlarmType.Name(kind)}"
    return c.both(desc, go)


def status_errors(c: Collector) -> Any:
    def go(cl: Client, _base: int, own: int) -> list[str]:
        st = cl.maintenance.Status(rpc_pb2.StatusRequest(), timeout=CALL_TIMEOUT)
        return [e.replace(f"memberID:{own} ", "memberID:<self> ") for e in st.errors]

    return c.both("Status.errors", go)


def lease_grant(c: Collector, desc: str = "LeaseGrant TTL=60") -> Any:
    """LeaseGrant compared without the (server-chosen) ID."""

    def go(cl: Client, base: int, _own: int) -> Any:
        o = outcome(cl.call("LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=60)), base)
        o.get("ok", {}).pop("ID", None)
        return o

    return c.both(desc, go)


def small_put(c: Collector, desc: str) -> Any:
    return c.run("Put", rpc_pb2.PutRequest(key=b"small", value=b"v"), desc)


def test_alarm_actions(fresh_diff: DiffPair) -> None:
    c = Collector(fresh_diff)
    assert alarm(c, GET) == []
    alarm(c, ACTIVATE)
    alarm(c, GET)
    status_errors(c)
    small_put(c, "Put under NOSPACE")
    lease_grant(c, "LeaseGrant under NOSPACE")
    c.run("Range", rpc_pb2.RangeRequest(key=b"small"), "Range under NOSPACE")

    # An alarm raised for another member caps this one too; deactivating member 0 matches no alarm.
    alarm(c, ACTIVATE, member=123)
    alarm(c, GET)
    alarm(c, DEACTIVATE, member=0)
    alarm(c, DEACTIVATE)
    small_put(c, "Put while member 123's NOSPACE is still raised")
    alarm(c, DEACTIVATE, member=123)
    alarm(c, DEACTIVATE, member=123)  # nothing left to deactivate
    alarm(c, GET)
    status_errors(c)
    small_put(c, "Put after all alarms are cleared")

    # etcd 3.4 stores an ACTIVATE of type NONE like any other alarm.
    alarm(c, ACTIVATE, kind=rpc_pb2.NONE)
    alarm(c, GET)
    status_errors(c)
    alarm(c, DEACTIVATE, kind=rpc_pb2.NONE)
    alarm(c, GET)

    # CORRUPT: reads still work, writes and lease grants fail with DataLoss, until it is deactivated.
    alarm(c, ACTIVATE, kind=rpc_pb2.CORRUPT)
    c.run("Range", rpc_pb2.RangeRequest(key=b"small"), "Range under CORRUPT")
    small_put(c, "Put under CORRUPT")
    lease_grant(c, "LeaseGrant under CORRUPT")
    status_errors(c)
    alarm(c, DEACTIVATE, kind=rpc_pb2.CORRUPT)
    fresh_diff.begin()  # revisions relative to here: a write that went through above is reported once, not again
    small_put(c, "Put after CORRUPT is deactivated")
    c.done()


def test_response_shapes(diff: DiffPair) -> None:
    """Complete Alarm / Defragment / MoveLeader responses, headers included (etcd 3.4 sends none on these)."""
    diff.begin()
    c = Collector(diff)
    c.run("Alarm", rpc_pb2.AlarmRequest(action=GET), "Alarm GET (no alarms)")
    c.run("Defragment", rpc_pb2.DefragmentRequest(), "Defragment")
    c.both(
        "MoveLeader to itself",
        lambda cl, base, own: outcome(cl.call("MoveLeader", rpc_pb2.MoveLeaderRequest(targetID=own)), base),
    )
    c.run("MoveLeader", rpc_pb2.MoveLeaderRequest(targetID=1234), "MoveLeader to an unknown member")
    c.done()


def normalized_status(cl: Client, base: int, own: int) -> dict[str, Any]:
    st = cl.maintenance.Status(rpc_pb2.StatusRequest(), timeout=CALL_TIMEOUT)
    assert st.leader == own, st
    assert st.version == "3.4.23" and not st.isLearner, st
    assert 0 < st.dbSizeInUse <= st.dbSize, st
    assert 0 < st.raftAppliedIndex <= st.raftIndex, st
    d = message_dict(st, base)
    for k in ("dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex"):
        d[k] = "<varies>"
    d["leader"] = "<self>"
    d["errors"] = [e.replace(f"memberID:{own} ", "memberID:<self> ") for e in d.get("errors", [])]
    return d


def test_status(diff: DiffPair) -> None:
    diff.begin()
    c = Collector(diff)
    c.both("Status", normalized_status)
    c.done()


# -- NOSPACE ------------------------------------------------------------------------------------------------------


@pytest.fixture
def quota_pair(tmp_path: Path) -> Iterator[DiffPair]:
    ref = start_server("etcd", tmp_path / "etcd", QUOTA_FLAGS)
    try:
        ours = start_server("ours", tmp_path / "ours", QUOTA_FLAGS)
        try:
            a, b = Client(ref.endpoint), Client(ours.endpoint)
            try:
                yield DiffPair(a, b)
            finally:
                a.close()
                b.close()
        finally:
            ours.stop()
    finally:
        ref.stop()


def fill(cl: Client) -> tuple[int, dict[str, Any]]:
    """100 KiB puts to big/0..2 until the first error; returns how many succeeded and that error. The quota is
    checked against the backend's size at its last commit (etcd's and ours, every batch interval, 100 ms), so
    a fast disk can take many puts before the first refusal: the bound is on time, not on a count."""
    deadline = time.monotonic() + FILL_SECONDS
    i = 0
    while time.monotonic() < deadline:
        r = cl.call("Put", rpc_pb2.PutRequest(key=b"big/%d" % (i % 3), value=BIG_VALUE))
        if isinstance(r, grpc.RpcError):
            return i, outcome(r, None)
        i += 1
    pytest.fail(f"{cl.endpoint}: {i} puts of 100 KiB in {FILL_SECONDS} s fit under a 1 MiB quota")


def txn(*ops: rpc_pb2.RequestOp, failure: tuple[rpc_pb2.RequestOp, ...] = ()) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(success=list(ops), failure=list(failure))


def test_nospace(quota_pair: DiffPair) -> None:
    pair = quota_pair
    (n_ref, err_ref), (n_ours, err_ours) = fill(pair.ref), fill(pair.ours)
    assert err_ref == NOSPACE_ERR, err_ref
    assert err_ours == NOSPACE_ERR, f"after {n_ours} puts of 100 KiB: {err_ours}"
    assert n_ref >= 3 and n_ours >= 3, (n_ref, n_ours)  # big/0..2 all exist on both

    pair.begin()
    c = Collector(pair)
    alarm(c, GET)
    status_errors(c)
    small_put(c, "Put")
    c.run("Txn", txn(put(b"small", b"v")), "Txn with a put")
    c.run(
        "Txn",
        rpc_pb2.TxnRequest(
            compare=[rpc_pb2.Compare(key=b"big/0", target=rpc_pb2.Compare.VERSION, result=rpc_pb2.Compare.GREATER)],
            success=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"big/0", keys_only=True))],
            failure=[put(b"small", b"v")],
        ),
        "Txn whose put is only in the (untaken) failure branch",
    )
    c.run(
        "Txn",
        txn(rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"big/", range_end=b"big0", count_only=True))),
        "read-only Txn",
    )
    c.run("Txn", txn(rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"nokey"))), "delete Txn")
    c.run("Range", rpc_pb2.RangeRequest(key=b"big/", range_end=b"big0", count_only=True), "Range")
    lease_grant(c, "LeaseGrant")
    c.run("DeleteRange", rpc_pb2.DeleteRangeRequest(key=b"big/", range_end=b"big0"), "DeleteRange big/")
    c.run("Compact", lambda b: rpc_pb2.CompactionRequest(revision=b + 1, physical=True), "Compact physical")
    c.both(
        "Defragment succeeds",
        lambda cl, _b, _o: not isinstance(cl.call("Defragment", rpc_pb2.DefragmentRequest()), grpc.RpcError),
    )
    alarm(c, GET)
    small_put(c, "Put after compact+defrag, alarm still raised")
    alarm(c, DEACTIVATE)
    alarm(c, GET)
    status_errors(c)
    small_put(c, "Put after disarm")
    c.run("Txn", txn(put(b"small", b"w")), "Txn with a put after disarm")
    lease_grant(c, "LeaseGrant after disarm")
    c.both("Status after disarm", normalized_status)
    c.done()


# -- v3lock and v3election ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Conc:
    """One server's lock/election stubs and the names of the leases the test granted there."""

    client: Client
    base: int
    lock: lpb_grpc.LockStub = field(init=False)
    election: epb_grpc.ElectionStub = field(init=False)
    leases: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = lpb_grpc.LockStub(self.client.channel)
        self.election = epb_grpc.ElectionStub(self.client.channel)

    def grant(self, name: str, ttl: int = 30) -> int:
        lid = self.client.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl), timeout=CALL_TIMEOUT).ID
        self.leases[lid] = name
        return lid

    def lease_name(self, lid: int) -> str:
        if lid in self.leases:
            return self.leases[lid]
        ttl = self.client.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lid), timeout=CALL_TIMEOUT)
        return f"<session lease TTL={ttl.grantedTTL}>" if ttl.TTL > 0 else f"<not a lease: {lid:x}>"

    def norm(self, obj: Any) -> Any:
        """A response (or error) as a comparable value: leases named, revisions rebased."""
        if isinstance(obj, (Message, grpc.RpcError)):
            obj = outcome(obj, self.base)
        if isinstance(obj, list):
            return [self.norm(x) for x in obj]
        if not isinstance(obj, dict):
            return obj
        out = {}
        for k, v in obj.items():
            if k == "lease" and isinstance(v, str):
                v = self.lease_name(int(v))
            elif k == "name" and isinstance(v, str):
                v = base64.b64decode(v)
            elif k == "rev" and isinstance(v, str):
                v = f"@{int(v) - self.base:+d}"
            elif k == "key" and isinstance(v, bytes) and (m := re.fullmatch(rb"(.+/)([0-9a-f]{1,16})", v)):
                v = m[1].decode() + self.lease_name(int(m[2], 16))
            out[k] = self.norm(v)
        return out


@pytest.fixture
def conc(diff: DiffPair) -> tuple[Collector, Conc, Conc]:
    diff.begin()
    return Collector(diff), Conc(diff.ref, diff.ref_base), Conc(diff.ours, diff.ours_base)


def lockstep(c: Collector, sides: tuple[Conc, Conc], desc: str, fn: Callable[[Conc], Any]) -> tuple[Any, Any]:
    """``fn`` on both sides; compares the normalized results and returns the raw ones."""
    raw = tuple(fn(s) for s in sides)
    c.same(desc, *(s.norm(r) for s, r in zip(sides, raw, strict=True)))
    return raw


def result(fut: grpc.Future) -> Message | grpc.RpcError:
    try:
        return fut.result(timeout=CALL_TIMEOUT)
    except grpc.RpcError as e:
        return e


def test_lock(conc: tuple[Collector, Conc, Conc]) -> None:
    c, *sides = conc
    sides = tuple(sides)
    for s in sides:
        s.grant("<L1>")
        s.grant("<L2>")
    lid = {s: {v: k for k, v in s.leases.items()} for s in sides}

    def lock(name: bytes, lease: str) -> Callable[[Conc], Any]:
        return lambda s: call(s.lock.Lock, lpb.LockRequest(name=name, lease=lid[s][lease]))

    first = lockstep(c, sides, "Lock lk L1", lock(b"lk", "<L1>"))
    lockstep(c, sides, "Lock lk L1 again (same lease: held already)", lock(b"lk", "<L1>"))
    futs = [s.lock.Lock.future(lpb.LockRequest(name=b"lk", lease=lid[s]["<L2>"]), timeout=CALL_TIMEOUT) for s in sides]
    time.sleep(WAIT_QUIET)
    c.same("Lock lk L2 is pending while L1 holds it", *(not f.done() for f in futs))
    lockstep(
        c, sides, "Unlock L1's key", lambda s: call(s.lock.Unlock, lpb.UnlockRequest(key=first[sides.index(s)].key))
    )
    second = lockstep(c, sides, "Lock lk L2 (granted after the Unlock)", lambda s: result(futs[sides.index(s)]))
    lockstep(
        c, sides, "Unlock L2's key", lambda s: call(s.lock.Unlock, lpb.UnlockRequest(key=second[sides.index(s)].key))
    )
    lockstep(
        c, sides, "Unlock a key that does not exist", lambda s: call(s.lock.Unlock, lpb.UnlockRequest(key=b"lk/nokey"))
    )
    lockstep(
        c, sides, "Lock with an unknown lease", lambda s: call(s.lock.Lock, lpb.LockRequest(name=b"lk2", lease=0x1234))
    )
    lockstep(
        c,
        sides,
        "Lock with lease 0 (etcd: a session lease of its own)",
        lambda s: call(s.lock.Lock, lpb.LockRequest(name=b"lk3")),
    )
    c.done()


class Observer:
    """An Observe stream read on a thread."""

    def __init__(self, s: Conc, name: bytes) -> None:
        self.stream = s.election.Observe(epb.LeaderRequest(name=name), timeout=30)
        self.got: list[Any] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for m in self.stream:
                self.got.append(m)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e

    def wait(self, n: int) -> None:
        deadline = time.monotonic() + CALL_TIMEOUT
        while len(self.got) < n and self.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.stream.cancel()
        self.thread.join(CALL_TIMEOUT)


def test_election(conc: tuple[Collector, Conc, Conc]) -> None:
    c, *sides = conc
    sides = tuple(sides)
    for s in sides:
        s.grant("<L1>")
        s.grant("<L2>")
    lid = {s: {v: k for k, v in s.leases.items()} for s in sides}
    name = b"el"

    def campaign(lease: str, value: bytes) -> Callable[[Conc], Any]:
        return lambda s: call(s.election.Campaign, epb.CampaignRequest(name=name, lease=lid[s][lease], value=value))

    def leader(s: Conc) -> Any:
        return call(s.election.Leader, epb.LeaderRequest(name=name))

    lockstep(c, sides, "Leader with no candidate", leader)
    observers = [Observer(s, name) for s in sides]
    first = lockstep(c, sides, "Campaign L1 v1", campaign("<L1>", b"v1"))
    lockstep(c, sides, "Leader", leader)
    idx = sides.index
    lockstep(
        c,
        sides,
        "Proclaim v2",
        lambda s: call(s.election.Proclaim, epb.ProclaimRequest(leader=first[idx(s)].leader, value=b"v2")),
    )
    lockstep(c, sides, "Leader after Proclaim", leader)

    def bogus(s: Conc) -> epb.LeaderKey:
        return epb.LeaderKey(name=name, key=b"el/bogus", rev=1, lease=lid[s]["<L2>"])

    lockstep(
        c,
        sides,
        "Proclaim by a non-leader",
        lambda s: call(s.election.Proclaim, epb.ProclaimRequest(leader=bogus(s), value=b"x")),
    )
    lockstep(c, sides, "Proclaim without leader", lambda s: call(s.election.Proclaim, epb.ProclaimRequest(value=b"x")))
    lockstep(c, sides, "Resign without leader", lambda s: call(s.election.Resign, epb.ResignRequest()))
    lockstep(c, sides, "Resign by a non-leader", lambda s: call(s.election.Resign, epb.ResignRequest(leader=bogus(s))))

    futs = [
        s.election.Campaign.future(
            epb.CampaignRequest(name=name, lease=lid[s]["<L2>"], value=b"w1"), timeout=CALL_TIMEOUT
        )
        for s in sides
    ]
    time.sleep(WAIT_QUIET)
    c.same("Campaign L2 is pending while L1 leads", *(not f.done() for f in futs))
    lockstep(c, sides, "Resign L1", lambda s: call(s.election.Resign, epb.ResignRequest(leader=first[idx(s)].leader)))
    second = lockstep(c, sides, "Campaign L2 w1 (elected after the Resign)", lambda s: result(futs[idx(s)]))
    lockstep(c, sides, "Campaign L2 w2 again (same lease: already leader, value updated)", campaign("<L2>", b"w2"))
    lockstep(c, sides, "Leader", leader)
    lockstep(
        c,
        sides,
        "Campaign with an unknown lease",
        lambda s: call(s.election.Campaign, epb.CampaignRequest(name=b"el2", lease=0x1234, value=b"a")),
    )

    for o in observers:
        o.wait(4)
    seen = []
    for s, o in zip(sides, observers, strict=True):
        assert o.error is None, o.error
        for m in o.got:
            assert m.header.revision >= m.kv.mod_revision, m
        seen.append([s.norm(message_dict(m.kv, s.base)) for m in o.got])
    c.same("Observe: leader key-values in order", *seen)

    lockstep(c, sides, "Resign L2", lambda s: call(s.election.Resign, epb.ResignRequest(leader=second[idx(s)].leader)))
    lockstep(c, sides, "Leader after the last Resign", leader)
    c.done()
