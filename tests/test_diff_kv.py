"""Differential tests of the v3 KV service (Range, Put, DeleteRange, Txn, Compact).

Every request goes to real etcd and to the server under test; the normalized
answers (ids dropped, revisions relative to ``DiffPair.begin()``) must be equal.
Where etcd's answer is a fact the implementation must reproduce (error code and
text, the revision model, a quirk), the test also asserts it outright, so a
failure names the behaviour and not just "the two differ".

The module shares one server pair (``diff``); each test keeps to its own key
prefix. Tests that read or change global state (the whole keyspace, absolute
revisions, compaction) use ``fresh_diff``. The generated part at the end runs
``harness.kvgen`` sequences, one seed per test, against the shared pair.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from harness import kvgen, ops
from harness.kvclient import DiffPair
from harness.normalize import error, ok

MAX_TXN_OPS = 128  # etcd --max-txn-ops default
MAX_REQUEST_BYTES = 1536 * 1024  # etcd --max-request-bytes default
GENERATED_SEEDS = int(os.environ.get("PYETCD_TEST_KV_SEEDS", "400"))

# etcd's errors as the client sees them (gRPC code name, details).
E_KEY_NOT_PROVIDED = ("INVALID_ARGUMENT", "etcdserver: key is not provided")
E_KEY_NOT_FOUND = ("INVALID_ARGUMENT", "etcdserver: key not found")
E_VALUE_PROVIDED = ("INVALID_ARGUMENT", "etcdserver: value is provided")
E_LEASE_PROVIDED = ("INVALID_ARGUMENT", "etcdserver: lease is provided")
E_LEASE_NOT_FOUND = ("NOT_FOUND", "etcdserver: requested lease not found")
E_TOO_MANY_OPS = ("INVALID_ARGUMENT", "etcdserver: too many operations in txn request")
E_DUPLICATE_KEY = ("INVALID_ARGUMENT", "etcdserver: duplicate key given in txn request")
E_TOO_LARGE = ("INVALID_ARGUMENT", "etcdserver: request is too large")
E_COMPACTED = ("OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted")
E_FUTURE_REV = ("OUT_OF_RANGE", "etcdserver: mvcc: required revision is a future revision")


def kv_summary(resp: dict[str, Any]) -> list[tuple[bytes, bytes | None]]:
    return [(kv["key"], kv.get("value")) for kv in resp.get("kvs", [])]


def rev(o: dict[str, Any]) -> str:
    """The rebased header revision of a normalized response, e.g. "@+3"."""
    return ok(o)["header"]["revision"]


@pytest.fixture
def d(diff: DiffPair) -> DiffPair:
    diff.begin()
    return diff


# -- a small store for the Range tests ---------------------------------------------------

RP = b"kv/range/"
# (key, value) puts in order; relative revisions 1..11 after the fixture's base.
# Final state: a v2 "1" (create 1, mod 4); b v3 "0" (2, 7); c v2 "8" (3, 9); d v1 "2" (5, 5);
# e v1 "7" (8, 8); f created at 10 and deleted at 11. Versions tie (a/c, d/e) on purpose: etcd
# 3.4.23 (go1.19) sorts with sort.Sort, whose pdqsort falls back to a stable insertion sort up to
# 12 elements, so ties keep ascending key order, also for DESCEND (sort.Reverse). Past 12 keys the
# order of ties is pdqsort's, which no test here depends on.
RANGE_HISTORY = [(b"a", b"5"), (b"b", b"3"), (b"c", b"4"), (b"a", b"1"), (b"d", b"2"), (b"b", b"9"),
                 (b"b", b"0"), (b"e", b"7"), (b"c", b"8"), (b"f", b"6"), (b"f", None)]  # fmt: skip


@pytest.fixture(scope="module")
def range_bases(diff: DiffPair) -> tuple[int, int]:
    diff.begin()
    for k, v in RANGE_HISTORY:
        if v is None:
            diff.run("DeleteRange", ops.delete(RP + k), f"delete {k!r}")
        else:
            diff.run("Put", ops.put(RP + k, v), f"put {k!r}")
    return diff.ref_base, diff.ours_base


@pytest.fixture
def rd(diff: DiffPair, range_bases: tuple[int, int]) -> DiffPair:
    """The shared pair with revisions relative to the start of RANGE_HISTORY."""
    diff.ref_base, diff.ours_base = range_bases
    return diff


ALL = (RP, ops.prefix_end(RP))


def test_range_single_key(rd: DiffPair) -> None:
    r = ok(rd.run("Range", ops.rng(RP + b"a")))
    assert r["kvs"] == [{"key": RP + b"a", "create_revision": "@+1", "mod_revision": "@+4", "version": "2",
                         "value": b"1"}]  # fmt: skip
    assert r["count"] == "1"
    r = ok(rd.run("Range", ops.rng(RP + b"f")))  # deleted
    assert "kvs" not in r and "count" not in r
    ok(rd.run("Range", ops.rng(RP + b"zz")))


def test_range_prefix_span_and_from_key(rd: DiffPair) -> None:
    r = ok(rd.run("Range", ops.rng(*ALL)))
    assert [k for k, _ in kv_summary(r)] == [RP + k for k in (b"a", b"b", b"c", b"d", b"e")]
    r = ok(rd.run("Range", ops.rng(RP + b"b", RP + b"d")))  # [b, d)
    assert [k for k, _ in kv_summary(r)] == [RP + b"b", RP + b"c"]
    rd.run("Range", ops.rng(RP + b"d", RP + b"b"))  # reversed: nothing
    rd.run("Range", ops.rng(RP + b"b", RP + b"b"))  # empty interval: nothing
    rd.run("Range", ops.rng(RP + b"c", b"\x00"))  # from-key: c, d, e and whatever sorts after the prefix
    rd.run("Range", ops.rng(RP + b"c", b"\x00", limit=2))
    rd.run("Range", ops.rng(RP[:-1], ops.prefix_end(RP[:-1])))  # "kv/range" also matches "kv/range/..."


def test_range_empty_key_is_an_error(rd: DiffPair) -> None:
    assert error(rd.run("Range", ops.rng(b""))) == E_KEY_NOT_PROVIDED
    assert error(rd.run("Range", ops.rng(b"", RP))) == E_KEY_NOT_PROVIDED


@pytest.mark.parametrize("limit", [1, 2, 4, 5, 6, 100])
def test_range_limit(rd: DiffPair, limit: int) -> None:
    r = ok(rd.run("Range", ops.rng(*ALL, limit=limit)))
    assert r["count"] == "5"  # count is the whole range, not capped by limit
    assert len(r["kvs"]) == min(limit, 5)
    assert r.get("more", False) == (limit < 5)


@pytest.mark.parametrize("rel", range(0, 12))
def test_range_at_revision(rd: DiffPair, rel: int) -> None:
    # rel 0 is the store before the history (the prefix is empty), 11 its end.
    rd.run("Range", lambda base: ops.rng(*ALL, revision=base + rel), f"rev +{rel}")
    rd.run("Range", lambda base: ops.rng(RP + b"b", revision=base + rel, keys_only=True), f"b rev +{rel}")


def test_range_future_revision(d: DiffPair) -> None:
    ok(d.run("Range", lambda base: ops.rng(RP + b"a", revision=base)))  # the current revision is readable
    assert error(d.run("Range", lambda base: ops.rng(RP + b"a", revision=base + 1))) == E_FUTURE_REV
    assert error(d.run("Range", lambda base: ops.rng(*ALL, revision=base + 1000, count_only=True))) == E_FUTURE_REV
    assert error(d.run("Range", lambda base: ops.rng(b"", revision=base + 1))) == E_KEY_NOT_PROVIDED


def test_range_revision_history_of_one_key(rd: DiffPair) -> None:
    vals = []
    for rel in range(1, 12):
        r = ok(rd.run("Range", lambda base, rel=rel: ops.rng(RP + b"b", revision=base + rel)))
        vals.append(r["kvs"][0]["value"] if "kvs" in r else None)
    assert vals == [None, b"3", b"3", b"3", b"3", b"9", b"0", b"0", b"0", b"0", b"0"]
    r = ok(rd.run("Range", lambda base: ops.rng(RP + b"f", revision=base + 10)))
    assert kv_summary(r) == [(RP + b"f", b"6")]
    rd.run("Range", ops.rng(*ALL, revision=-1))  # non-positive means latest
    rd.run("Range", ops.rng(*ALL, revision=0))


@pytest.mark.parametrize("order", ops.SORT_ORDERS)
@pytest.mark.parametrize("target", ops.SORT_TARGETS)
@pytest.mark.parametrize("limit", [0, 2])
def test_range_sort(rd: DiffPair, order: str, target: str, limit: int) -> None:
    r = ok(rd.run("Range", ops.rng(*ALL, sort_order=order, sort_target=target, limit=limit)))
    assert r["count"] == "5"
    rd.run("Range", lambda base: ops.rng(*ALL, sort_order=order, sort_target=target, limit=limit, revision=base + 9))
    rd.run("Range", ops.rng(RP + b"b", ALL[1], sort_order=order, sort_target=target, limit=limit, keys_only=True))


def test_range_sort_results(rd: DiffPair) -> None:
    def keys(**kw):
        return [k[len(RP) :] for k, _ in kv_summary(ok(rd.run("Range", ops.rng(*ALL, **kw), str(kw))))]

    assert keys(sort_order="DESCEND") == [b"e", b"d", b"c", b"b", b"a"]
    assert keys(sort_order="ASCEND", sort_target="VALUE") == [b"b", b"a", b"d", b"e", b"c"]
    # Ties keep ascending key order in both directions (stable sort of the key-ordered scan).
    assert keys(sort_order="ASCEND", sort_target="VERSION") == [b"d", b"e", b"a", b"c", b"b"]
    assert keys(sort_order="DESCEND", sort_target="VERSION") == [b"b", b"a", b"c", b"d", b"e"]
    assert keys(sort_order="DESCEND", sort_target="MOD") == [b"c", b"e", b"b", b"d", b"a"]
    assert keys(sort_target="CREATE") == [b"a", b"b", b"c", b"d", b"e"]  # NONE with target != KEY: ascending
    assert keys(sort_order="DESCEND", sort_target="CREATE", limit=2) == [b"e", b"d"]


def test_range_sort_none_with_target_and_limit_quirk(d: DiffPair) -> None:
    """etcd 3.4: sort_order NONE with a target other than KEY sorts ascending, but it does not
    lift the limit first: it reads the first limit+1 keys in key order, sorts those, and truncates."""
    p = b"kv/sortquirk/"
    for k, v in [(b"a", b"5"), (b"b", b"4"), (b"c", b"3"), (b"d", b"2"), (b"e", b"1")]:
        d.run("Put", ops.put(p + k, v))
    end = ops.prefix_end(p)
    r = ok(d.run("Range", ops.rng(p, end, sort_target="VALUE", limit=2)))
    assert [k for k, _ in kv_summary(r)] == [p + b"c", p + b"b"] and r["more"] and r["count"] == "5"
    r = ok(d.run("Range", ops.rng(p, end, sort_target="VALUE", sort_order="ASCEND", limit=2)))
    assert [k for k, _ in kv_summary(r)] == [p + b"e", p + b"d"]
    d.run("Range", ops.rng(p, end, sort_target="MOD", sort_order="NONE", limit=1))
    d.run("Range", ops.rng(p, end, sort_target="VERSION", sort_order="NONE", limit=4))


def test_range_serializable(rd: DiffPair) -> None:
    rd.run("Range", ops.rng(*ALL, serializable=True))
    rd.run("Range", lambda base: ops.rng(*ALL, serializable=True, revision=base + 5))
    rd.run("Range", ops.rng(RP + b"a", serializable=True, keys_only=True))


def test_range_keys_only_and_count_only(rd: DiffPair) -> None:
    r = ok(rd.run("Range", ops.rng(*ALL, keys_only=True)))
    assert all("value" not in kv and "version" in kv for kv in r["kvs"])
    r = ok(rd.run("Range", ops.rng(*ALL, count_only=True)))
    assert r == {"header": r["header"], "count": "5"}
    r = ok(rd.run("Range", ops.rng(*ALL, count_only=True, limit=2)))
    assert "kvs" not in r and r["count"] == "5"
    rd.run("Range", ops.rng(*ALL, count_only=True, keys_only=True))
    rd.run("Range", ops.rng(*ALL, keys_only=True, limit=3, sort_order="DESCEND", sort_target="VALUE"))
    rd.run("Range", ops.rng(RP + b"zz", count_only=True))
    rd.run("Range", lambda base: ops.rng(*ALL, count_only=True, revision=base + 3))


@pytest.mark.parametrize(
    "filters",
    [
        {"min_mod_revision": 5},
        {"max_mod_revision": 5},
        {"min_mod_revision": 4, "max_mod_revision": 8},
        {"min_create_revision": 3},
        {"max_create_revision": 3},
        {"min_create_revision": 2, "max_create_revision": 5},
        {"min_mod_revision": 100},
        {"max_create_revision": 1, "min_mod_revision": 1},
    ],
    ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()),
)
@pytest.mark.parametrize("extra", [{}, {"limit": 1}, {"sort_order": "DESCEND"}, {"count_only": True}], ids=str)
def test_range_revision_filters(rd: DiffPair, filters: dict[str, int], extra: dict) -> None:
    r = rd.run("Range", lambda base: ops.rng(*ALL, **{k: base + v for k, v in filters.items()}, **extra))
    assert ok(r)["count"] == "5"  # count is taken before the filters
    rd.run("Range", lambda base: ops.rng(*ALL, **{k: base + v for k, v in filters.items()}, revision=base + 8))


def test_range_filter_results(rd: DiffPair) -> None:
    r = ok(rd.run("Range", lambda base: ops.rng(*ALL, min_mod_revision=base + 5, max_mod_revision=base + 8)))
    assert [k[len(RP) :] for k, _ in kv_summary(r)] == [b"b", b"d", b"e"]
    r = ok(rd.run("Range", lambda base: ops.rng(*ALL, min_create_revision=base + 3, limit=1)))
    assert [k[len(RP) :] for k, _ in kv_summary(r)] == [b"c"] and r["more"]


# -- Put ---------------------------------------------------------------------------------


def test_put_prev_kv_and_versions(d: DiffPair) -> None:
    k = b"kv/put/a"
    r = ok(d.run("Put", ops.put(k, b"v1", prev_kv=True)))
    assert r == {"header": {"revision": "@+1"}}  # no prev_kv for a new key
    r = ok(d.run("Put", ops.put(k, b"v2", prev_kv=True)))
    assert r["prev_kv"] == {"key": k, "create_revision": "@+1", "mod_revision": "@+1", "version": "1", "value": b"v1"}
    # An identical put is still a write: new revision, version + 1.
    ok(d.run("Put", ops.put(k, b"v2")))
    r = ok(d.run("Put", ops.put(k, b"v2", prev_kv=True)))
    assert r["header"]["revision"] == "@+4" and r["prev_kv"]["version"] == "3" and r["prev_kv"]["mod_revision"] == "@+3"
    r = ok(d.run("Range", ops.rng(k)))
    assert r["kvs"][0]["version"] == "4" and r["kvs"][0]["create_revision"] == "@+1"
    d.run("Put", ops.put(k, b"", prev_kv=True))  # empty value is a value
    d.run("Range", ops.rng(k))


def test_put_binary_keys_and_values(d: DiffPair) -> None:
    for k in (b"kv/put/\x00", b"kv/put/\xff\xfe", b"kv/put/\x00\x00", b"kv/put/ \t\n"):
        d.run("Put", ops.put(k, bytes(range(256))))
    r = ok(d.run("Range", ops.rng(b"kv/put/", ops.prefix_end(b"kv/put/"), keys_only=True)))
    assert len(r["kvs"]) >= 4


def test_put_ignore_value(d: DiffPair) -> None:
    k = b"kv/put/iv"
    assert error(d.run("Put", ops.put(k, ignore_value=True))) == E_KEY_NOT_FOUND
    d.run("Put", ops.put(k, b"keep"))
    r = ok(d.run("Put", ops.put(k, ignore_value=True, prev_kv=True)))
    assert r["prev_kv"]["value"] == b"keep"
    r = ok(d.run("Range", ops.rng(k)))
    assert r["kvs"][0]["value"] == b"keep" and r["kvs"][0]["version"] == "2"
    assert error(d.run("Put", ops.put(k, b"x", ignore_value=True))) == E_VALUE_PROVIDED
    d.run("Put", ops.put(k, ignore_value=True, ignore_lease=True))


def test_put_ignore_lease(d: DiffPair) -> None:
    k = b"kv/put/il"
    assert error(d.run("Put", ops.put(k, b"v", ignore_lease=True))) == E_KEY_NOT_FOUND
    d.run("Put", ops.put(k, b"v"))
    r = ok(d.run("Put", ops.put(k, b"w", ignore_lease=True, prev_kv=True)))
    assert r["prev_kv"]["value"] == b"v"
    assert error(d.run("Put", ops.put(k, b"w", ignore_lease=True, lease=kvgen.UNKNOWN_LEASE))) == E_LEASE_PROVIDED


def test_put_errors(d: DiffPair) -> None:
    assert error(d.run("Put", ops.put(b"", b"v"))) == E_KEY_NOT_PROVIDED
    assert error(d.run("Put", ops.put(b"kv/put/lease", b"v", lease=kvgen.UNKNOWN_LEASE))) == E_LEASE_NOT_FOUND
    assert error(d.run("Put", ops.put(b"kv/put/lease", b"v", lease=-1))) == E_LEASE_NOT_FOUND
    # Order of checks: an empty key wins over the ignore_value conflict.
    d.run("Put", ops.put(b"", b"v", ignore_value=True))
    d.run("Put", ops.put(b"kv/put/missing", b"v", ignore_value=True, lease=kvgen.UNKNOWN_LEASE))
    ok(d.run("Range", ops.rng(b"kv/put/lease")))
    assert rev(d.run("Range", ops.rng(b"kv/put/lease"))) == "@+0"  # failed requests take no revision


def test_put_request_too_large(d: DiffPair) -> None:
    k = b"kv/put/big"
    assert error(d.run("Put", ops.put(k, b"x" * (MAX_REQUEST_BYTES + 1)), "1.5 MiB + 1")) == E_TOO_LARGE
    ok(d.run("Put", ops.put(k, b"y" * (1024 * 1024)), "1 MiB"))
    r = ok(d.run("Range", ops.rng(k, keys_only=True)))
    assert r["kvs"][0]["version"] == "1"
    big_txn = ops.txn(success=[ops.put(k + bytes([i]), b"z" * (200 * 1024)) for i in range(8)])
    assert error(d.run("Txn", big_txn, "txn of 8 x 200 KiB")) == E_TOO_LARGE


# -- DeleteRange -------------------------------------------------------------------------


def test_delete(d: DiffPair) -> None:
    p = b"kv/del/"
    for k in (b"a", b"b", b"c", b"d"):
        d.run("Put", ops.put(p + k, k * 2))
    r = ok(d.run("DeleteRange", ops.delete(p + b"a", prev_kv=True)))
    assert r["deleted"] == "1" and r["prev_kvs"][0]["value"] == b"aa" and r["header"]["revision"] == "@+5"
    r = ok(d.run("DeleteRange", ops.delete(p + b"a", prev_kv=True)))  # nothing left: no revision taken
    assert r == {"header": {"revision": "@+5"}}
    r = ok(d.run("DeleteRange", ops.delete(p + b"b", p + b"d")))  # [b, d)
    assert r["deleted"] == "2" and "prev_kvs" not in r and r["header"]["revision"] == "@+6"
    r = ok(d.run("DeleteRange", ops.delete(p, ops.prefix_end(p), prev_kv=True)))
    assert [kv["key"] for kv in r["prev_kvs"]] == [p + b"d"]
    d.run("DeleteRange", ops.delete(p + b"x", p + b"a"))  # reversed
    # Re-creating a deleted key starts a new generation.
    d.run("Put", ops.put(p + b"a", b"again"))
    r = ok(d.run("Range", ops.rng(p + b"a")))
    assert r["kvs"][0]["version"] == "1" and r["kvs"][0]["create_revision"] == "@+8"
    assert error(d.run("DeleteRange", ops.delete(b""))) == E_KEY_NOT_PROVIDED
    # History is kept: the deleted keys are still readable at older revisions.
    r = ok(d.run("Range", lambda base: ops.rng(p, ops.prefix_end(p), revision=base + 4)))
    assert r["count"] == "4"


def test_delete_from_key_and_whole_keyspace(fresh_diff: DiffPair) -> None:
    d = fresh_diff
    for k in (b"a", b"b", b"c", b"\x00", b"\xff"):
        d.run("Put", ops.put(k, b"v"))
    r = ok(d.run("Range", ops.rng(b"\x00", b"\x00")))  # every key
    assert r["count"] == "5"
    r = ok(d.run("Range", ops.rng(b"\x00", b"\x00", count_only=True, serializable=True)))
    assert r["count"] == "5"
    r = ok(d.run("DeleteRange", ops.delete(b"b", b"\x00", prev_kv=True)))  # from-key
    assert [kv["key"] for kv in r["prev_kvs"]] == [b"b", b"c", b"\xff"]
    r = ok(d.run("Range", ops.rng(b"\x00", b"\x00", keys_only=True)))
    assert [kv["key"] for kv in r["kvs"]] == [b"\x00", b"a"]
    r = ok(d.run("DeleteRange", ops.delete(b"\x00", b"\x00")))
    assert r["deleted"] == "2"
    assert "kvs" not in ok(d.run("Range", ops.rng(b"\x00", b"\x00")))


# -- revision model ----------------------------------------------------------------------


def test_revision_model_on_an_empty_store(fresh_diff: DiffPair) -> None:
    d = fresh_diff
    # An empty store is at revision 1 and the first write gets revision 2, on both servers.
    assert (d.ref_base, d.ours_base) == (1, 1)
    assert rev(d.run("Put", ops.put(b"a", b"1"))) == "@+1"
    assert (d.ref.revision(), d.ours.revision()) == (2, 2)
    assert rev(d.run("Put", ops.put(b"a", b"1"))) == "@+2"  # identical put: still a write
    assert rev(d.run("DeleteRange", ops.delete(b"nothing"))) == "@+2"  # matches nothing: no revision
    assert rev(d.run("DeleteRange", ops.delete(b"n", b"\x00"))) == "@+2"
    assert rev(d.run("Txn", ops.txn(success=[ops.rng(b"a")]))) == "@+2"  # read-only txn
    assert rev(d.run("Txn", ops.txn(success=[ops.delete(b"zz")]))) == "@+2"  # write branch that changes nothing
    failed = ops.txn([ops.cmp(b"a", "VALUE", "EQUAL", b"no")], [ops.put(b"b", b"x")], [])
    assert rev(d.run("Txn", failed)) == "@+2"
    many = ops.txn(success=[ops.put(b"b", b"1"), ops.put(b"c", b"1"), ops.delete(b"a")])
    assert rev(d.run("Txn", many)) == "@+3"  # one revision for the whole txn
    r = ok(d.run("Range", ops.rng(b"\x00", b"\x00")))
    assert [(kv["key"], kv["mod_revision"]) for kv in r["kvs"]] == [(b"b", "@+3"), (b"c", "@+3")]
    assert error(d.run("Put", ops.put(b"", b""))) == E_KEY_NOT_PROVIDED
    assert (d.ref.revision(), d.ours.revision()) == (4, 4)


# -- Txn ---------------------------------------------------------------------------------

TP = b"kv/txn/"


def _cmp_holds(actual: int | bytes, result: str, operand: int | bytes) -> bool:
    return {
        "EQUAL": actual == operand,
        "NOT_EQUAL": actual != operand,
        "GREATER": actual > operand,
        "LESS": actual < operand,
    }[result]


@pytest.mark.parametrize("target", ops.COMPARE_TARGETS)
@pytest.mark.parametrize("result", ops.COMPARE_RESULTS)
def test_txn_compare(d: DiffPair, target: str, result: str) -> None:
    k = TP + f"cmp/{target}/{result}/".encode()
    d.run("Put", ops.put(k + b"x", b"m"))  # create_revision @+1
    d.run("Put", ops.put(k + b"x", b"m"))  # mod_revision @+2, version 2
    actual: dict[str, int | bytes] = {"VERSION": 2, "CREATE": 1, "MOD": 2, "VALUE": b"m", "LEASE": 0}
    operands: dict[str, list] = {
        "VERSION": [0, 1, 2, 3],
        "CREATE": [0, 1, 2],  # relative revisions; 0 stays absolute 0 ("absent")
        "MOD": [0, 1, 2, 3],
        "VALUE": [b"", b"l", b"m", b"n", b"mm"],
        "LEASE": [0, 1, kvgen.UNKNOWN_LEASE],
    }[target]

    def maker(key: bytes, operand: int | bytes):
        def make(base: int):
            v = base + operand if target in ("CREATE", "MOD") and operand else operand
            return ops.txn([ops.cmp(key, target, result, v)], [ops.rng(key)], [ops.rng(key, keys_only=True)])

        return make

    for operand in operands:
        r = ok(d.run("Txn", maker(k + b"x", operand), f"present {operand!r}"))
        assert r.get("succeeded", False) == _cmp_holds(actual[target], result, operand), operand
        r = ok(d.run("Txn", maker(k + b"missing", operand), f"missing {operand!r}"))
        # A missing key compares as 0 (version, revisions, lease); a VALUE compare on it is false.
        zero: int | bytes = b"" if target == "VALUE" else 0
        expect = False if target == "VALUE" else _cmp_holds(zero, result, operand)
        assert r.get("succeeded", False) == expect, operand


@pytest.mark.parametrize("target", ops.COMPARE_TARGETS)
def test_txn_compare_over_a_range(d: DiffPair, target: str) -> None:
    p = TP + f"cmprange/{target}/".encode()
    d.run("Put", ops.put(p + b"a", b"1"))
    d.run("Put", ops.put(p + b"b", b"2"))
    d.run("Put", ops.put(p + b"b", b"2"))
    operand = {"VERSION": 1, "CREATE": 0, "MOD": 0, "VALUE": b"1", "LEASE": 0}[target]
    for result in ops.COMPARE_RESULTS:
        for end in (ops.prefix_end(p), p + b"b", p + b"zz", p + b"a\x00", b"\x00"):
            for key in (p + b"a", p + b"c"):  # [c, ...) may match nothing
                c = ops.cmp(key, target, result, operand, range_end=end)
                d.run("Txn", ops.txn([c], [ops.rng(p + b"a")], []), f"{result} {key!r}..{end!r}")


def test_txn_compares_are_anded(d: DiffPair) -> None:
    k = TP + b"and"
    d.run("Put", ops.put(k, b"v"))
    t_ok = ops.cmp(k, "VALUE", "EQUAL", b"v")
    t_no = ops.cmp(k, "VERSION", "GREATER", 5)
    assert ok(d.run("Txn", ops.txn([t_ok, t_ok], [ops.rng(k)], [])))["succeeded"]
    assert not ok(d.run("Txn", ops.txn([t_ok, t_no], [ops.rng(k)], [ops.put(k, b"f")]))).get("succeeded")
    assert ok(d.run("Txn", ops.txn([], [], [])))["succeeded"]  # no compares: success
    r = ok(d.run("Range", ops.rng(k)))
    assert r["kvs"][0]["value"] == b"f"


def test_txn_ops_and_response_shape(d: DiffPair) -> None:
    p = TP + b"shape/"
    d.run("Put", ops.put(p + b"a", b"0"))
    d.run("Put", ops.put(p + b"c", b"1"))
    t = ops.txn(
        [ops.cmp(p + b"a", "VERSION", "EQUAL", 1)],
        [ops.rng(p + b"a"), ops.put(p + b"a", b"1", prev_kv=True), ops.rng(p + b"a"),
         ops.put(p + b"b", b"1"), ops.delete(p + b"zz"), ops.delete(p + b"c", prev_kv=True),
         ops.rng(p, ops.prefix_end(p), count_only=True)],
        [ops.put(p + b"c", b"no")],
    )  # fmt: skip
    r = ok(d.run("Txn", t))
    assert r["succeeded"] and r["header"]["revision"] == "@+3"
    resp = r["responses"]
    # A range before the txn's first write reports the old revision, after it the new one.
    assert resp[0]["response_range"]["header"] == {"revision": "@+2"}
    assert resp[2]["response_range"]["header"] == {"revision": "@+3"}
    assert resp[2]["response_range"]["kvs"][0]["value"] == b"1"  # reads see the txn's own writes
    assert resp[1]["response_put"]["prev_kv"]["value"] == b"0"
    assert resp[5]["response_delete_range"]["prev_kvs"][0]["value"] == b"1"
    d.run("Range", ops.rng(p, ops.prefix_end(p)))


def test_nested_txn(d: DiffPair) -> None:
    p = TP + b"nested/"
    d.run("Put", ops.put(p + b"a", b"old"))
    inner = ops.txn(
        [ops.cmp(p + b"a", "VALUE", "EQUAL", b"new")], [ops.put(p + b"m", b"saw-new")], [ops.put(p + b"m", b"saw-old")]
    )
    r = ok(d.run("Txn", ops.txn([], [ops.put(p + b"a", b"new"), inner, ops.rng(p + b"m")], [])))
    # Every compare, nested ones too, is evaluated against the store as it was before the txn.
    assert r["responses"][1]["response_txn"]["header"] == {}
    assert r["responses"][2]["response_range"]["kvs"][0]["value"] == b"saw-old"
    deep = ops.txn(
        [ops.cmp(p + b"a", "VERSION", "GREATER", 0)],
        [ops.txn([ops.cmp(p + b"x", "VERSION", "EQUAL", 0)],
                 [ops.txn([], [ops.put(p + b"d3", b"1"), ops.rng(p, ops.prefix_end(p))], []), ops.put(p + b"d2", b"1")],
                 [ops.put(p + b"never", b"1")]),
         ops.delete(p + b"m", prev_kv=True)],
        [],
    )  # fmt: skip
    r = ok(d.run("Txn", deep))
    d.run("Range", ops.rng(p, ops.prefix_end(p)))
    # The same key in both branches of a nested txn is fine: only one of them runs.
    both = ops.txn([], [ops.txn([ops.cmp(p + b"a", "VERSION", "LESS", 1)], [ops.put(p + b"z", b"s")],
                                [ops.put(p + b"z", b"f")])])  # fmt: skip
    ok(d.run("Txn", both))
    d.run("Txn", ops.txn([], [ops.txn([], [ops.txn([], [ops.txn()])])]))  # empty nesting


def test_txn_too_many_ops(d: DiffPair) -> None:
    p = TP + b"many/"
    puts = [ops.put(p + b"%03d" % i, b"v") for i in range(MAX_TXN_OPS + 1)]
    ok(d.run("Txn", ops.txn(success=puts[:MAX_TXN_OPS]), "128 puts"))
    assert error(d.run("Txn", ops.txn(success=puts), "129 puts")) == E_TOO_MANY_OPS
    assert error(d.run("Txn", ops.txn(failure=puts), "129 failure puts")) == E_TOO_MANY_OPS
    cmps = [ops.cmp(p + b"000", "VERSION", "GREATER", 0)] * (MAX_TXN_OPS + 1)
    assert error(d.run("Txn", ops.txn(cmps), "129 compares")) == E_TOO_MANY_OPS
    ok(d.run("Txn", ops.txn(cmps[:MAX_TXN_OPS]), "128 compares"))
    reads = [ops.rng(p + b"000")] * (MAX_TXN_OPS + 1)
    assert error(d.run("Txn", ops.txn(success=reads), "129 ranges")) == E_TOO_MANY_OPS

    # A nested txn gets what its parent left: 128 minus the parent's longest list (etcd's checkTxnRequest).
    def nested(n: int):  # the outer success list has 101 entries, so the budget left is 27
        return ops.txn(success=[ops.txn(success=puts[:n]), *[ops.rng(p + b"000")] * 100])

    ok(d.run("Txn", nested(27), "101 + nested 27"))
    assert error(d.run("Txn", nested(28), "101 + nested 28")) == E_TOO_MANY_OPS
    assert error(d.run("Txn", ops.txn(success=[ops.txn(success=puts)]), "nested 129")) == E_TOO_MANY_OPS


@pytest.mark.parametrize(
    "name,success",
    [
        ("put+put", lambda p: [ops.put(p + b"a"), ops.put(p + b"a")]),
        ("put+delete", lambda p: [ops.put(p + b"a"), ops.delete(p + b"a")]),
        ("delete+put", lambda p: [ops.delete(p + b"a"), ops.put(p + b"a")]),
        ("put in deleted range", lambda p: [ops.delete(p, ops.prefix_end(p)), ops.put(p + b"b")]),
        # etcd 3.4 checks [key, "\x00") as an (empty) interval: a from-key delete never conflicts.
        # The keys sort last so that the delete removes nothing of other tests.
        ("put in from-key delete", lambda _p: [ops.put(b"\xfe/dup/b"), ops.delete(b"\xfe/dup/a", b"\x00")]),
        ("put+nested put", lambda p: [ops.put(p + b"a"), ops.txn(success=[ops.put(p + b"a")])]),
        ("nested put+put", lambda p: [ops.txn(success=[ops.put(p + b"a")]), ops.txn(failure=[ops.put(p + b"a")])]),
        ("delete+delete", lambda p: [ops.delete(p + b"a"), ops.delete(p + b"a")]),
        ("overlapping deletes", lambda p: [ops.delete(p, ops.prefix_end(p)), ops.delete(p + b"a", p + b"c")]),
        ("put+range", lambda p: [ops.put(p + b"a"), ops.rng(p + b"a")]),
        ("put beside range delete", lambda p: [ops.put(p + b"c"), ops.delete(p + b"a", p + b"c")]),
        ("nested success+failure", lambda p: [ops.txn(success=[ops.put(p + b"a")], failure=[ops.put(p + b"a")])]),
    ],
)
def test_txn_duplicate_keys(d: DiffPair, name: str, success) -> None:
    p = TP + b"dup/" + name.replace(" ", "_").encode() + b"/"
    d.run("Put", ops.put(p + b"a", b"1"))
    o = d.run("Txn", ops.txn(success=success(p)), name)
    if name in ("put+put", "put+delete", "delete+put", "put in deleted range", "put+nested put", "nested put+put"):
        assert error(o) == E_DUPLICATE_KEY
    else:
        ok(o)
    # The check runs on both branches whatever the compares say.
    d.run("Txn", ops.txn([ops.cmp(p + b"a", "VERSION", "EQUAL", 0)], [], success(p)), name + " (failure branch)")
    d.run("Range", ops.rng(p, ops.prefix_end(p)))


def test_txn_errors(d: DiffPair) -> None:
    p = TP + b"err/"
    d.run("Put", ops.put(p + b"a", b"1"))
    assert error(d.run("Txn", ops.txn(success=[ops.put(b"", b"x")]))) == E_KEY_NOT_PROVIDED
    assert error(d.run("Txn", ops.txn(success=[ops.rng(b"")]))) == E_KEY_NOT_PROVIDED
    assert error(d.run("Txn", ops.txn(success=[ops.put(p + b"b", lease=kvgen.UNKNOWN_LEASE)]))) == E_LEASE_NOT_FOUND
    assert error(d.run("Txn", ops.txn(success=[ops.put(p + b"b", ignore_value=True)]))) == E_KEY_NOT_FOUND
    assert error(d.run("Txn", ops.txn(success=[ops.put(p + b"a", b"x", ignore_value=True)]))) == E_VALUE_PROVIDED
    o = d.run("Txn", lambda base: ops.txn(success=[ops.rng(p + b"a", revision=base + 100)]))
    assert error(o) == E_FUTURE_REV
    # Errors of the branch that does not run are not reported (except the static checks).
    c = [ops.cmp(p + b"a", "VERSION", "EQUAL", 1)]
    ok(d.run("Txn", ops.txn(c, [ops.rng(p + b"a")], [ops.put(p + b"b", lease=kvgen.UNKNOWN_LEASE)])))
    ok(d.run("Txn", lambda base: ops.txn(c, [], [ops.rng(p + b"a", revision=base + 100)])))
    d.run("Txn", ops.txn(c, [], [ops.put(b"", b"x")]))
    d.run("Txn", ops.txn([ops.cmp(b"", "VERSION", "EQUAL", 0)], [ops.rng(p + b"a")], []))
    assert rev(d.run("Range", ops.rng(p + b"a"))) == "@+1"


# -- Compact -----------------------------------------------------------------------------


def test_compact(fresh_diff: DiffPair) -> None:
    d = fresh_diff
    for i in range(6):  # revisions @+1..@+6: a = 0..5
        d.run("Put", ops.put(b"a", str(i).encode()))
    d.run("Put", ops.put(b"gone", b"x"))  # @+7
    d.run("DeleteRange", ops.delete(b"gone"))  # @+8
    d.run("Put", ops.put(b"b", b"x"))  # @+9
    assert error(d.run("Compact", lambda base: ops.compact(base + 10))) == E_FUTURE_REV
    r = ok(d.run("Compact", lambda base: ops.compact(base + 3)))
    assert r == {"header": {"revision": "@+9"}}
    assert error(d.run("Range", lambda base: ops.rng(b"a", revision=base + 2))) == E_COMPACTED
    assert kv_summary(ok(d.run("Range", lambda base: ops.rng(b"a", revision=base + 3)))) == [(b"a", b"2")]
    assert error(d.run("Compact", lambda base: ops.compact(base + 3))) == E_COMPACTED  # not above the last one
    assert error(d.run("Compact", lambda base: ops.compact(base + 1))) == E_COMPACTED
    o = d.run("Txn", lambda base: ops.txn(success=[ops.rng(b"a", revision=base + 1)]))
    assert error(o) == E_COMPACTED
    d.run("Range", lambda base: ops.rng(b"\x00", b"\x00", revision=base + 3))
    d.run("Range", lambda base: ops.rng(b"\x00", b"\x00", revision=base + 7))
    # Physical: the call returns once old revisions are purged from the backend.
    r = ok(d.run("Compact", lambda base: ops.compact(base + 8, physical=True)))
    assert r == {"header": {"revision": "@+9"}}
    r = ok(d.run("Range", lambda base: ops.rng(b"\x00", b"\x00", revision=base + 8)))
    assert kv_summary(r) == [(b"a", b"5")]
    assert error(d.run("Range", lambda base: ops.rng(b"\x00", b"\x00", revision=base + 7))) == E_COMPACTED
    d.run("Range", lambda base: ops.rng(b"a", revision=base + 9, min_mod_revision=base + 1))
    r = ok(d.run("Range", ops.rng(b"\x00", b"\x00")))
    assert [(kv["key"], kv["version"], kv["create_revision"]) for kv in r["kvs"]] == [
        (b"a", "6", "@+1"),  # compaction keeps version and create_revision of live keys
        (b"b", "1", "@+9"),
    ]
    # Writes after a compaction continue the key's generation.
    d.run("Put", ops.put(b"a", b"6", prev_kv=True))
    d.run("Compact", lambda base: ops.compact(base + 10, physical=True))  # the current revision
    d.run("Range", ops.rng(b"\x00", b"\x00"))
    d.run("Txn", ops.txn([ops.cmp(b"a", "CREATE", "EQUAL", 2), ops.cmp(b"gone", "CREATE", "EQUAL", 0)], [], []))


def test_compact_edge_revisions(fresh_diff: DiffPair) -> None:
    d = fresh_diff
    # A fresh store counts as compacted at -1: 0 and then 1 may be compacted once each.
    assert error(d.run("Compact", ops.compact(-1), "compact -1")) == E_COMPACTED
    assert ok(d.run("Compact", ops.compact(0), "compact 0")) == {"header": {"revision": "@+0"}}
    ok(d.run("Compact", ops.compact(1), "compact 1"))
    assert error(d.run("Compact", ops.compact(1), "compact 1 again")) == E_COMPACTED
    assert error(d.run("Compact", ops.compact(2), "compact future")) == E_FUTURE_REV
    d.run("Put", ops.put(b"k", b"v"))
    d.run("Compact", ops.compact(2, physical=True), "compact 2")
    d.run("Range", ops.rng(b"k", revision=1))
    d.run("Range", ops.rng(b"k", revision=2))


# -- generated sequences -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(GENERATED_SEEDS))
def test_generated(diff: DiffPair, seed: int) -> None:
    """One kvgen sequence; seeds run in order on the shared pair (see kvgen on why that is sound)."""
    diff.begin()
    diff.steps(kvgen.sequence(seed))
