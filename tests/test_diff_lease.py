"""Differential tests of the v3 Lease service (LeaseGrant, LeaseRevoke, LeaseKeepAlive,
LeaseTimeToLive, LeaseLeases) and of leases as seen through KV (Put, DeleteRange, Txn).

Every request goes to real etcd and to the server under test; the normalized answers
(ids dropped, revisions relative to ``DiffPair.begin()``) must be equal, and where
etcd's answer is a fact clients rely on (error code and text, the minimum TTL, one
revision for a revoke) the test also asserts it.

Leases use fixed IDs (``LEASE_BASE`` plus a per-test offset) because server-chosen IDs
differ between servers; for a server-chosen ID only the shape is checked. What is
time-dependent is compared with a tolerance, not exactly:

- ``LeaseTimeToLive.TTL`` (seconds remaining) must lie in ``[grantedTTL - 1, grantedTTL]``
  on each server and is then replaced by a placeholder; ``grantedTTL`` is compared exactly.
- ``LeaseTimeToLive.keys`` and ``LeaseLeases.leases`` come from Go maps in etcd (random
  order), so they are sorted; ``LeaseLeases`` is filtered to the IDs the test created,
  since the shared servers hold other tests' leases too.

Expiry and keep-alive over time are in ``e2e/test_lease_expiry.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from harness import ops
from harness.kvclient import CALL_TIMEOUT, Client, DiffPair, Mismatch, _short
from harness.normalize import error, ok, outcome
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

LEASE_BASE = 0x1EA5_0000_0000
UNKNOWN = 0x0BAD_0000_1EA5
MAX_LEASE_TTL = 9_000_000_000  # etcd's MaxLeaseTTL, seconds
MIN_TTL = 2  # ceil(1.5 * election timeout of 1 s)

E_LEASE_EXISTS = ("FAILED_PRECONDITION", "etcdserver: lease already exists")
E_LEASE_NOT_FOUND = ("NOT_FOUND", "etcdserver: requested lease not found")
E_TTL_TOO_LARGE = ("OUT_OF_RANGE", "etcdserver: too large lease TTL")


def rev(o: dict[str, Any]) -> str:
    return ok(o)["header"]["revision"]


@pytest.fixture
def d(diff: DiffPair) -> DiffPair:
    diff.begin()
    return diff


# -- requests the DiffPair does not send itself -----------------------------------------------


def compare_custom(
    d: DiffPair,
    desc: str,
    call: Callable[[Client], Message | grpc.RpcError],
    fix: Callable[[dict[str, Any], str], dict[str, Any]] = lambda o, _who: o,
) -> dict[str, Any]:
    """Like ``DiffPair.run`` for a call made by ``call(client)``; ``fix(outcome, who)`` normalizes further."""
    outs = []
    for who, client, base in (("etcd", d.ref, d.ref_base), ("ours", d.ours, d.ours_base)):
        outs.append(fix(outcome(call(client), base), who))
    d.log.append(desc)
    if outs[0] != outs[1]:
        history = "\n".join(f"  {i}: {line}" for i, line in enumerate(d.log))
        raise Mismatch(
            f"step {len(d.log) - 1} {desc}\netcd: {_short(outs[0])}\nours: {_short(outs[1])}\nhistory:\n{history}"
        )
    return outs[0]


def _unary(method: str, req) -> Callable[[Client], Any]:
    def call(c: Client):
        try:
            return getattr(c.lease, method)(req, timeout=CALL_TIMEOUT)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
            return e

    return call


def _ttl_fix(o: dict[str, Any], who: str) -> dict[str, Any]:
    r = o.get("ok")
    if r is None:
        return o
    if "keys" in r:
        r["keys"] = sorted(r["keys"])
    if "grantedTTL" in r:
        granted, ttl = int(r["grantedTTL"]), int(r.get("TTL", 0))
        assert granted - 1 <= ttl <= granted, f"{who}: TTL {ttl} remaining of grantedTTL {granted}"
        r["TTL"] = "<remaining>"
    return o


def time_to_live(d: DiffPair, lease_id: int, keys: bool = False) -> dict[str, Any]:
    """LeaseTimeToLive on both; remaining TTL checked against grantedTTL, then compared as a placeholder."""
    req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
    return compare_custom(d, f"LeaseTimeToLive {lease_id:#x} keys={keys}", _unary("LeaseTimeToLive", req), _ttl_fix)


def leases(d: DiffPair, mine: set[int]) -> dict[str, Any]:
    """LeaseLeases on both, restricted to ``mine`` and sorted."""

    def fix(o: dict[str, Any], _who: str) -> dict[str, Any]:
        r = o.get("ok")
        if r is not None:
            r["leases"] = sorted(int(x["ID"]) for x in r.get("leases", []) if int(x["ID"]) in mine)
        return o

    return compare_custom(d, "LeaseLeases", _unary("LeaseLeases", rpc_pb2.LeaseLeasesRequest()), fix)


def keepalive_once(client: Client, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse | grpc.RpcError:
    """One request on a LeaseKeepAlive stream and its response; the stream is then cancelled, as clientv3 does."""
    done = threading.Event()

    def requests():
        yield rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)
        done.wait(CALL_TIMEOUT)

    stream = client.lease.LeaseKeepAlive(requests(), timeout=CALL_TIMEOUT)
    try:
        return next(stream)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        return e
    finally:
        done.set()
        stream.cancel()


def keepalive(d: DiffPair, lease_id: int) -> dict[str, Any]:
    return compare_custom(d, f"LeaseKeepAlive {lease_id:#x}", lambda c: keepalive_once(c, lease_id))


def grant(d: DiffPair, lease_id: int, ttl: int = 3600) -> dict[str, Any]:
    return d.run("LeaseGrant", ops.lease_grant(lease_id, ttl), f"{lease_id:#x} ttl={ttl}")


def revoke(d: DiffPair, lease_id: int) -> dict[str, Any]:
    return d.run("LeaseRevoke", ops.lease_revoke(lease_id), f"{lease_id:#x}")


def kvs(d: DiffPair, prefix: bytes) -> list[dict[str, Any]]:
    return ok(d.run("Range", ops.rng(prefix, ops.prefix_end(prefix)))).get("kvs", [])


# -- LeaseGrant ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl, granted", [(1, MIN_TTL), (2, 2), (5, 5), (3600, 3600)])
def test_grant_explicit_id(d: DiffPair, ttl: int, granted: int) -> None:
    lid = LEASE_BASE + 0x100 + ttl
    r = ok(grant(d, lid, ttl))
    assert r == {"header": {"revision": "@+0"}, "ID": str(lid), "TTL": str(granted)}  # a grant takes no revision
    r = ok(time_to_live(d, lid))
    assert r["grantedTTL"] == str(granted) and r["ID"] == str(lid)
    assert ok(revoke(d, lid)) == {"header": {"revision": "@+0"}}  # nothing attached: no revision either


@pytest.mark.parametrize("ttl", [0, -1, -3600])
def test_grant_zero_or_negative_ttl(d: DiffPair, ttl: int) -> None:
    lid = LEASE_BASE + 0x200 + abs(ttl) % 0x100 + (ttl < 0)
    r = ok(grant(d, lid, ttl))
    assert r["TTL"] == str(MIN_TTL)  # etcd raises it to the minimum too
    revoke(d, lid)


def test_grant_existing_id(d: DiffPair) -> None:
    lid = LEASE_BASE + 0x300
    grant(d, lid, 60)
    assert error(grant(d, lid, 60)) == E_LEASE_EXISTS
    assert error(grant(d, lid, 120)) == E_LEASE_EXISTS
    assert ok(time_to_live(d, lid))["grantedTTL"] == "60"  # the first grant stands
    revoke(d, lid)
    ok(grant(d, lid, 30))  # a revoked ID may be granted again
    assert ok(time_to_live(d, lid))["grantedTTL"] == "30"
    revoke(d, lid)


def test_grant_huge_ttl(d: DiffPair) -> None:
    lid = LEASE_BASE + 0x400
    assert error(grant(d, lid, MAX_LEASE_TTL + 1)) == E_TTL_TOO_LARGE
    assert error(grant(d, lid, 2**62)) == E_TTL_TOO_LARGE
    assert error(grant(d, 0, MAX_LEASE_TTL + 1)) == E_TTL_TOO_LARGE
    assert ok(time_to_live(d, lid))["TTL"] == "-1"  # nothing was granted
    assert ok(grant(d, lid, MAX_LEASE_TTL))["TTL"] == str(MAX_LEASE_TTL)  # the limit itself is allowed
    revoke(d, lid)


def test_grant_negative_id(d: DiffPair) -> None:
    # etcd 3.4 takes any nonzero ID, negative ones included.
    lid = -(LEASE_BASE + 0x500)
    assert ok(grant(d, lid, 60))["ID"] == str(lid)
    ok(d.run("Put", ops.put(b"lease/negid/k", b"v", lease=lid)))
    assert ok(time_to_live(d, lid, keys=True))["keys"] == [b"lease/negid/k"]
    revoke(d, lid)
    assert kvs(d, b"lease/negid/") == []


def test_grant_server_chosen_id(d: DiffPair) -> None:
    """ID 0: each server picks its own ID, so only the shape of the answer is compared."""
    got = {}
    for who, c in (("etcd", d.ref), ("ours", d.ours)):
        r = c.call("LeaseGrant", ops.lease_grant(0, 5))
        assert not isinstance(r, grpc.RpcError), f"{who}: {r}"
        assert r.ID > 0 and r.TTL == 5 and r.header.revision == c.revision(), f"{who}: {r}"
        got[who] = r.ID
        r2 = c.call("LeaseGrant", ops.lease_grant(0, 1))
        assert not isinstance(r2, grpc.RpcError) and r2.ID > 0 and r2.ID != r.ID and r2.TTL == MIN_TTL, f"{who}: {r2}"
        # The chosen IDs are real leases: a put may use them and a revoke removes them.
        assert not isinstance(c.call("Put", ops.put(b"lease/chosen/k", b"v", lease=r.ID)), grpc.RpcError)
        ttl = c.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=r.ID, keys=True), timeout=CALL_TIMEOUT)
        assert ttl.grantedTTL == 5 and list(ttl.keys) == [b"lease/chosen/k"], f"{who}: {ttl}"
        for lid in (r.ID, r2.ID):
            assert not isinstance(c.call("LeaseRevoke", ops.lease_revoke(lid)), grpc.RpcError)
    assert kvs(d, b"lease/chosen/") == []


# -- LeaseRevoke -------------------------------------------------------------------------------------


def test_revoke_unknown(d: DiffPair) -> None:
    assert error(revoke(d, UNKNOWN)) == E_LEASE_NOT_FOUND
    assert error(revoke(d, 0)) == E_LEASE_NOT_FOUND
    lid = LEASE_BASE + 0x600
    grant(d, lid)
    ok(revoke(d, lid))
    assert error(revoke(d, lid)) == E_LEASE_NOT_FOUND  # twice
    assert rev(d.run("Range", ops.rng(b"lease/x"))) == "@+0"


@pytest.mark.parametrize("n", [1, 3, 10])
def test_revoke_deletes_attached_keys_in_one_revision(d: DiffPair, n: int) -> None:
    lid = LEASE_BASE + 0x700 + n
    p = b"lease/revoke/%d/" % n
    grant(d, lid)
    d.run("Put", ops.put(p + b"unleased", b"stays"))  # @+1
    for i in range(n):  # @+2 .. @+n+1
        r = ok(d.run("Put", ops.put(p + b"k%02d" % i, b"v%d" % i, lease=lid)))
        assert r["header"]["revision"] == f"@+{i + 2}"
    r = ok(time_to_live(d, lid, keys=True))
    assert r["keys"] == [p + b"k%02d" % i for i in range(n)]
    assert [kv.get("lease") for kv in kvs(d, p)] == [str(lid)] * n + [None]
    r = ok(revoke(d, lid))
    assert r == {"header": {"revision": f"@+{n + 2}"}}  # one revision for all n keys
    assert [kv["key"] for kv in kvs(d, p)] == [p + b"unleased"]
    assert rev(d.run("Range", ops.rng(p))) == f"@+{n + 2}"
    # Just before the revoke every key was there; at the revoke's revision all are gone.
    r = ok(d.run("Range", lambda base: ops.rng(p, ops.prefix_end(p), revision=base + n + 1, count_only=True)))
    assert r["count"] == str(n + 1)
    r = ok(d.run("Range", lambda base: ops.rng(p, ops.prefix_end(p), revision=base + n + 2, count_only=True)))
    assert r["count"] == "1"
    assert ok(time_to_live(d, lid, keys=True)) == {"header": {"revision": f"@+{n + 2}"}, "ID": str(lid), "TTL": "-1"}


# -- attaching and detaching keys ---------------------------------------------------------------------


def test_put_without_lease_detaches(d: DiffPair) -> None:
    lid = LEASE_BASE + 0x800
    p = b"lease/detach/"
    grant(d, lid)
    d.run("Put", ops.put(p + b"a", b"1", lease=lid))
    d.run("Put", ops.put(p + b"b", b"1", lease=lid))
    assert ok(time_to_live(d, lid, keys=True))["keys"] == [p + b"a", p + b"b"]
    d.run("Put", ops.put(p + b"a", b"2"))  # no lease: detaches a
    assert ok(time_to_live(d, lid, keys=True))["keys"] == [p + b"b"]
    assert [kv.get("lease") for kv in kvs(d, p)] == [None, str(lid)]
    r = ok(revoke(d, lid))
    assert r["header"]["revision"] == "@+4"
    assert [(kv["key"], kv["value"]) for kv in kvs(d, p)] == [(p + b"a", b"2")]


def test_put_moves_key_to_another_lease(d: DiffPair) -> None:
    l1, l2 = LEASE_BASE + 0x900, LEASE_BASE + 0x901
    p = b"lease/move/"
    grant(d, l1)
    grant(d, l2)
    d.run("Put", ops.put(p + b"k", b"1", lease=l1))
    d.run("Put", ops.put(p + b"k", b"2", lease=l2))
    assert "keys" not in ok(time_to_live(d, l1, keys=True))
    assert ok(time_to_live(d, l2, keys=True))["keys"] == [p + b"k"]
    assert ok(revoke(d, l1))["header"]["revision"] == "@+2"  # nothing attached any more
    assert [kv["value"] for kv in kvs(d, p)] == [b"2"]
    assert ok(revoke(d, l2))["header"]["revision"] == "@+3"
    assert kvs(d, p) == []


def test_put_ignore_lease_keeps_lease(d: DiffPair) -> None:
    lid = LEASE_BASE + 0xA00
    p = b"lease/ignore/"
    grant(d, lid)
    d.run("Put", ops.put(p + b"k", b"1", lease=lid))
    r = ok(d.run("Put", ops.put(p + b"k", b"2", ignore_lease=True, prev_kv=True)))
    assert r["prev_kv"]["lease"] == str(lid)
    d.run("Put", ops.put(p + b"k", ignore_value=True, ignore_lease=True))
    r = kvs(d, p)
    assert [(kv["value"], kv["version"], kv.get("lease")) for kv in r] == [(b"2", "3", str(lid))]
    assert ok(time_to_live(d, lid, keys=True))["keys"] == [p + b"k"]
    assert ok(revoke(d, lid))["header"]["revision"] == "@+4"
    assert kvs(d, p) == []


def test_put_ignore_value_keeps_lease_only_if_given(d: DiffPair) -> None:
    lid = LEASE_BASE + 0xA80
    p = b"lease/ignval/"
    grant(d, lid)
    d.run("Put", ops.put(p + b"k", b"1", lease=lid))
    d.run("Put", ops.put(p + b"k", ignore_value=True))  # lease 0 and not ignored: detaches
    assert "keys" not in ok(time_to_live(d, lid, keys=True))
    d.run("Put", ops.put(p + b"k", ignore_value=True, lease=lid))  # attaches again, value kept
    assert [(kv["value"], kv.get("lease")) for kv in kvs(d, p)] == [(b"1", str(lid))]
    revoke(d, lid)
    assert kvs(d, p) == []


def test_delete_detaches(d: DiffPair) -> None:
    lid = LEASE_BASE + 0xB00
    p = b"lease/delete/"
    grant(d, lid)
    for k in (b"a", b"b", b"c"):
        d.run("Put", ops.put(p + k, b"v", lease=lid))
    r = ok(d.run("DeleteRange", ops.delete(p + b"a", p + b"c", prev_kv=True)))  # a and b
    assert [kv["lease"] for kv in r["prev_kvs"]] == [str(lid)] * 2
    assert ok(time_to_live(d, lid, keys=True))["keys"] == [p + b"c"]
    d.run("Put", ops.put(p + b"a", b"new"))  # re-created without a lease
    assert ok(revoke(d, lid))["header"]["revision"] == "@+6"
    assert [kv["key"] for kv in kvs(d, p)] == [p + b"a"]
    # A lease whose keys were all deleted revokes without a revision.
    lid2 = LEASE_BASE + 0xB01
    grant(d, lid2)
    d.run("Put", ops.put(p + b"z", b"v", lease=lid2))
    d.run("DeleteRange", ops.delete(p + b"z"))
    assert ok(revoke(d, lid2))["header"]["revision"] == "@+8"


# -- LeaseTimeToLive, LeaseKeepAlive, LeaseLeases ---------------------------------------------------------


def test_time_to_live(d: DiffPair) -> None:
    lid = LEASE_BASE + 0xC00
    p = b"lease/ttl/"
    grant(d, lid, 100)
    r = ok(time_to_live(d, lid))
    assert r == {"header": {"revision": "@+0"}, "ID": str(lid), "TTL": "<remaining>", "grantedTTL": "100"}
    assert ok(time_to_live(d, lid, keys=True)) == r  # keys=true with no keys attached: no keys field
    d.run("Put", ops.put(p + b"b", b"v", lease=lid))
    d.run("Put", ops.put(p + b"a", b"v", lease=lid))
    assert "keys" not in ok(time_to_live(d, lid, keys=False))
    assert ok(time_to_live(d, lid, keys=True))["keys"] == [p + b"a", p + b"b"]
    for unknown in (UNKNOWN, 0, -1):
        for keys in (False, True):
            r = ok(time_to_live(d, unknown, keys=keys))
            assert r == {"header": {"revision": "@+2"}, **({"ID": str(unknown)} if unknown else {}), "TTL": "-1"}
    revoke(d, lid)


def test_keepalive(d: DiffPair) -> None:
    lid = LEASE_BASE + 0xD00
    grant(d, lid, 30)
    assert ok(keepalive(d, lid)) == {"header": {"revision": "@+0"}, "ID": str(lid), "TTL": "30"}
    assert ok(time_to_live(d, lid))["grantedTTL"] == "30"
    grant(d, lid + 1, 1)
    assert ok(keepalive(d, lid + 1))["TTL"] == str(MIN_TTL)  # the raised TTL
    # Unknown or revoked: TTL 0 and no error.
    assert ok(keepalive(d, UNKNOWN)) == {"header": {"revision": "@+0"}, "ID": str(UNKNOWN)}
    revoke(d, lid)
    assert ok(keepalive(d, lid)) == {"header": {"revision": "@+0"}, "ID": str(lid)}
    revoke(d, lid + 1)


def keepalive_batch(client: Client, ids: list[int]) -> list[Message] | grpc.RpcError:
    """Several requests on one stream, then a half-close: every response and the stream's end."""
    out: list[Message] = []
    try:
        for r in client.lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=i) for i in ids]), timeout=5):
            out.append(r)
    except grpc.RpcError as e:
        return e  # a hang (DEADLINE_EXCEEDED) shows up as a mismatch with etcd's clean end
    return out


def test_keepalive_stream_half_closed(d: DiffPair) -> None:
    lid = LEASE_BASE + 0xD80
    grant(d, lid, 40)
    grant(d, lid + 1, 50)
    ids = [lid, UNKNOWN, lid + 1, lid]
    outs: dict[str, Any] = {}
    for who, c, base in (("etcd", d.ref, d.ref_base), ("ours", d.ours, d.ours_base)):
        r = keepalive_batch(c, ids)
        outs[who] = outcome(r, base) if isinstance(r, grpc.RpcError) else [outcome(x, base) for x in r]
    assert isinstance(outs["etcd"], list), outs["etcd"]
    assert outs["etcd"] == outs["ours"], f"etcd: {outs['etcd']}\nours: {outs['ours']}"
    assert [ok(x).get("TTL") for x in outs["etcd"]] == ["40", None, "50", "40"]
    revoke(d, lid)
    revoke(d, lid + 1)


def test_leases(d: DiffPair) -> None:
    mine = {LEASE_BASE + 0xE00 + i for i in range(4)} | {-(LEASE_BASE + 0xE00)}
    assert ok(leases(d, mine))["leases"] == []
    for lid in sorted(mine):
        grant(d, lid, 600)
    r = ok(leases(d, mine))
    assert r == {"header": {"revision": "@+0"}, "leases": sorted(mine)}
    gone = min(mine)
    revoke(d, gone)
    assert ok(leases(d, mine))["leases"] == sorted(mine - {gone})
    for lid in mine - {gone}:
        revoke(d, lid)
    assert ok(leases(d, mine))["leases"] == []


# -- Txn ---------------------------------------------------------------------------------------------


def test_txn_put_with_lease_and_lease_compare(d: DiffPair) -> None:
    lid, other = LEASE_BASE + 0xF00, LEASE_BASE + 0xF01
    p = b"lease/txn/"
    grant(d, lid)
    grant(d, other)
    r = ok(d.run("Txn", ops.txn(success=[ops.put(p + b"a", b"1", lease=lid), ops.put(p + b"b", b"1")])))
    assert r["succeeded"] is True and r["header"]["revision"] == "@+1"
    assert ok(time_to_live(d, lid, keys=True))["keys"] == [p + b"a"]
    for target_key, operand, expected in [
        (p + b"a", lid, True),
        (p + b"a", other, False),
        (p + b"a", 0, False),
        (p + b"b", 0, True),
        (p + b"b", lid, False),
        (p + b"missing", 0, True),
    ]:
        c = [ops.cmp(target_key, "LEASE", "EQUAL", operand)]
        r = ok(d.run("Txn", ops.txn(c, [ops.rng(target_key)], []), f"LEASE({target_key!r}) == {operand:#x}"))
        assert r.get("succeeded", False) is expected
    for result, expected in [("NOT_EQUAL", True), ("GREATER", True), ("LESS", False)]:
        c = [ops.cmp(p + b"a", "LEASE", result, lid - 1)]
        r = ok(d.run("Txn", ops.txn(c, [], []), f"LEASE(a) {result} lid-1"))
        assert r.get("succeeded", False) is expected
    # A range compare over both keys: true only if every key matches.
    c = [ops.cmp(p + b"a", "LEASE", "EQUAL", lid, p + b"c")]
    assert "succeeded" not in ok(d.run("Txn", ops.txn(c, [], [])))
    # Move b onto the lease in a txn guarded by a LEASE compare, then revoke: both go in one revision.
    c = [ops.cmp(p + b"a", "LEASE", "EQUAL", lid)]
    r = ok(d.run("Txn", ops.txn(c, [ops.put(p + b"b", b"2", lease=lid)], [ops.put(p + b"b", b"3")])))
    assert r["succeeded"] is True and r["header"]["revision"] == "@+2"
    assert ok(time_to_live(d, lid, keys=True))["keys"] == [p + b"a", p + b"b"]
    c = [ops.cmp(p + b"a", "LEASE", "EQUAL", lid, p + b"c")]
    assert ok(d.run("Txn", ops.txn(c, [], [])))["succeeded"] is True
    assert ok(revoke(d, lid))["header"]["revision"] == "@+3"
    assert kvs(d, p) == []
    revoke(d, other)


def test_nested_txn_put_with_lease(d: DiffPair) -> None:
    lid = LEASE_BASE + 0xF80
    p = b"lease/nested/"
    grant(d, lid)
    inner = ops.txn([ops.cmp(p + b"a", "VERSION", "EQUAL", 0)], [ops.put(p + b"a", b"1", lease=lid)], [])
    r = ok(d.run("Txn", ops.txn(success=[inner, ops.put(p + b"b", b"1", lease=lid)])))
    assert r["succeeded"] is True and r["header"]["revision"] == "@+1"
    assert ok(time_to_live(d, lid, keys=True))["keys"] == [p + b"a", p + b"b"]
    assert ok(revoke(d, lid))["header"]["revision"] == "@+2"
    assert kvs(d, p) == []
