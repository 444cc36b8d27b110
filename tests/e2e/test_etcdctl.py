"""The real etcdctl (v3) against our server and against etcd: same exit code, same output.

Each command runs on both servers (``harness.etcdctl.CtlPair``); json, fields and
protobuf output is compared with member ids dropped and revisions relative to the
test's start, simple output as text. Where the text itself is what clients depend
on (``OK``, error lines), the test also asserts it.

Tests share one pair of servers and keep to their own key prefix; the compaction
tests get fresh servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.etcdctl import CtlPair
from harness.servers import Server, start_server

SORT_TARGETS = ["CREATE", "KEY", "MODIFY", "VALUE", "VERSION"]


@pytest.fixture(scope="module")
def pair(etcd_server: Server, ours_server: Server) -> CtlPair:
    return CtlPair(etcd_server.endpoint, ours_server.endpoint)


@pytest.fixture
def ctl(pair: CtlPair) -> CtlPair:
    pair.begin()
    return pair


@pytest.fixture
def fresh_ctl(tmp_path: Path) -> CtlPair:
    ref = start_server("etcd", tmp_path / "etcd")
    try:
        ours = start_server("ours", tmp_path / "ours")
        try:
            p = CtlPair(ref.endpoint, ours.endpoint)
            p.begin()
            yield p
        finally:
            ours.stop()
    finally:
        ref.stop()


def populate(ctl: CtlPair, prefix: str) -> None:
    """a, b, c, d under ``prefix`` with distinct versions, values and revisions (relative 1..7)."""
    for key, value in [("b", "2"), ("a", "4"), ("d", "1"), ("b", "3"), ("c", "9"), ("a", "0"), ("a", "5")]:
        assert ctl.run("put", prefix + key, value).out == "OK\n"


# -- put / get and the output formats ------------------------------------------------------


def test_put_get_simple(ctl: CtlPair) -> None:
    assert ctl.run("put", "ctl/pg/k", "hello world").out == "OK\n"
    assert ctl.run("get", "ctl/pg/k").out == "ctl/pg/k\nhello world\n"
    assert ctl.run("get", "ctl/pg/missing").out == ""
    assert ctl.run("put", "ctl/pg/k", "v2", "--prev-kv").out == "OK\nctl/pg/k\nhello world\n"
    assert ctl.run("put", "ctl/pg/empty", "").out == "OK\n"
    assert ctl.run("get", "ctl/pg/empty").out == "ctl/pg/empty\n\n"
    # The value may come from stdin.
    assert ctl.run("put", "ctl/pg/stdin", stdin="from stdin").out == "OK\n"
    assert ctl.run("get", "ctl/pg/stdin", "--print-value-only").out == "from stdin\n"


def test_get_json(ctl: CtlPair) -> None:
    ctl.run("put", "ctl/json/k", "v1")
    ctl.run("put", "ctl/json/k", "v2")
    o = ctl.run("get", "ctl/json/k", "-w", "json")
    assert o.out == {
        "header": {"revision": "@+2"},
        "kvs": [{"key": b"ctl/json/k", "create_revision": "@+1", "mod_revision": "@+2", "version": 2, "value": b"v2"}],
        "count": 1,
    }
    assert ctl.run("get", "ctl/json/missing", "-w", "json").out == {"header": {"revision": "@+2"}}
    o = ctl.run("put", "ctl/json/k", "v3", "--prev-kv", "-w", "json")
    assert o.out["prev_kv"]["value"] == b"v2" and o.out["header"] == {"revision": "@+3"}
    ctl.run("get", "ctl/json/", "--prefix", "-w", "json", "--keys-only")
    ctl.run("get", "ctl/json/", "--prefix", "-w", "json", "--limit", "1")


def test_get_fields(ctl: CtlPair) -> None:
    ctl.run("put", "ctl/fields/k", "v1")
    o = ctl.run("get", "ctl/fields/k", "-w", "fields")
    assert o.out == [
        '"Revision" : @+1',
        '"Key" : "ctl/fields/k"',
        '"CreateRevision" : @+1',
        '"ModRevision" : @+1',
        '"Version" : 1',
        '"Value" : "v1"',
        '"Lease" : 0',
        '"More" : false',
        '"Count" : 1',
    ]
    ctl.run("put", "ctl/fields/k", "v2", "--prev-kv", "-w", "fields")
    ctl.run("get", "ctl/fields/", "--prefix", "--limit", "1", "-w", "fields")
    ctl.run("del", "ctl/fields/k", "--prev-kv", "-w", "fields")


def test_protobuf_output(ctl: CtlPair) -> None:
    ctl.run("put", "ctl/pb/k", "v1", "-w", "protobuf")
    o = ctl.run("get", "ctl/pb/k", "-w", "protobuf")
    assert o.out["kvs"][0]["value"] == b"v1"
    ctl.run("get", "ctl/pb/", "--prefix", "--keys-only", "-w", "protobuf")
    ctl.run("del", "ctl/pb/k", "--prev-kv", "-w", "protobuf")


def test_table_output_is_refused(ctl: CtlPair) -> None:
    o = ctl.run("get", "ctl/table/k", "-w", "table")
    assert o.rc != 0 and "Error: table not supported as output format" in o.err


def test_get_prefix_range_and_limit(ctl: CtlPair) -> None:
    p = "ctl/range/"
    populate(ctl, p)
    assert ctl.run("get", p, "--prefix").out == f"{p}a\n5\n{p}b\n3\n{p}c\n9\n{p}d\n1\n"
    assert ctl.run("get", p + "b", p + "d").out == f"{p}b\n3\n{p}c\n9\n"  # explicit range_end
    assert ctl.run("get", p, "--prefix", "--limit", "2").out == f"{p}a\n5\n{p}b\n3\n"
    o = ctl.run("get", p, "--prefix", "--limit", "2", "-w", "json")
    assert o.out["more"] is True and o.out["count"] == 4 and len(o.out["kvs"]) == 2
    assert ctl.run("get", p, "--prefix", "--keys-only").out == f"{p}a\n\n{p}b\n\n{p}c\n\n{p}d\n\n"
    assert ctl.run("get", p, "--prefix", "--print-value-only").out == "5\n3\n9\n1\n"
    assert ctl.run("get", p, "--prefix", "--consistency", "s", "--print-value-only").out == "5\n3\n9\n1\n"
    ctl.run("get", p, "--prefix", "--keys-only", "-w", "json")
    ctl.run("get", p + "a", "--prefix", "--limit", "1", "-w", "fields")


@pytest.mark.parametrize("order", ["ASCEND", "DESCEND", ""])
@pytest.mark.parametrize("target", SORT_TARGETS)
def test_get_sort(ctl: CtlPair, order: str, target: str) -> None:
    p = f"ctl/sort/{target}{order}/"
    populate(ctl, p)
    args = ["get", p, "--prefix", "--sort-by", target, *(["--order", order] if order else [])]
    o = ctl.run(*args, "--keys-only")
    keys = [line[len(p) :] for line in o.out.splitlines() if line]
    expected = {
        "CREATE": ["b", "a", "d", "c"],
        "KEY": ["a", "b", "c", "d"],
        "MODIFY": ["d", "b", "c", "a"],
        "VALUE": ["d", "b", "a", "c"],
        "VERSION": ["c", "d", "b", "a"],
    }[target]
    if order == "DESCEND":
        # Ties (c and d have version 1) keep ascending key order in either direction.
        expected = ["a", "b", "c", "d"] if target == "VERSION" else expected[::-1]
    assert keys == expected
    ctl.run(*args, "--limit", "2", "-w", "json")
    ctl.run("get", p, "--prefix", "--order", order or "ASCEND", "--limit", "3")


def test_get_from_key(ctl: CtlPair) -> None:
    # "~" sorts after every other prefix in this module, so from-key sees only these keys.
    p = "~fromkey/"
    populate(ctl, p)
    assert ctl.run("get", p + "b", "--from-key", "--keys-only").out == f"{p}b\n\n{p}c\n\n{p}d\n\n"
    ctl.run("get", p + "b", "--from-key", "--limit", "1", "-w", "json")
    ctl.run("get", p + "b", "--from-key", "--sort-by", "VALUE", "--order", "DESCEND")


def test_get_rev(ctl: CtlPair) -> None:
    p = "ctl/rev/"
    populate(ctl, p)
    # Relative revision 4 is the second put of b, 3 the put of d.
    assert ctl.run("get", p, "--prefix", lambda b: f"--rev={b + 3}", "--print-value-only").out == "4\n2\n1\n"
    assert ctl.run("get", p + "b", "--rev", lambda b: str(b + 4), "--print-value-only").out == "3\n"
    ctl.run("get", p, "--prefix", lambda b: f"--rev={b + 5}", "-w", "json")
    ctl.run("get", p, "--prefix", "--rev=0", "-w", "json")  # 0 = latest
    o = ctl.run("get", p, lambda b: f"--rev={b + 100}")
    assert o.rc == 1 and "Error: etcdserver: mvcc: required revision is a future revision" in o.err
    assert "log: rpc error: code = OutOfRange desc = etcdserver: mvcc: required revision is a future revision" in o.err


# -- del -------------------------------------------------------------------------------------


def test_del(ctl: CtlPair) -> None:
    p = "ctl/del/"
    populate(ctl, p)
    assert ctl.run("del", p + "a").out == "1\n"
    assert ctl.run("del", p + "a").out == "0\n"
    assert ctl.run("del", p + "b", "--prev-kv").out == f"1\n{p}b\n3\n"
    o = ctl.run("del", p + "c", "--prev-kv", "-w", "json")
    assert o.out["deleted"] == 1 and o.out["prev_kvs"][0]["value"] == b"9"
    ctl.run("put", p + "x/1", "1")
    ctl.run("put", p + "x/2", "2")
    assert ctl.run("del", p + "x/", "--prefix", "--prev-kv").out == f"2\n{p}x/1\n1\n{p}x/2\n2\n"
    assert ctl.run("del", p, "--prefix").out == "1\n"  # only d is left
    assert ctl.run("get", p, "--prefix").out == ""
    o = ctl.run("del", p + "nothing", "-w", "json")
    assert o.out == {"header": {"revision": o.out["header"]["revision"]}}


def test_del_from_key(ctl: CtlPair) -> None:
    p = "~zdel/"  # sorts after "~fromkey/": deletes nothing of the other tests
    populate(ctl, p)
    assert ctl.run("del", p + "b", "--from-key").out == "3\n"
    assert ctl.run("get", p, "--prefix", "--keys-only").out == f"{p}a\n\n"
    ctl.run("del", p, "--prefix")


# -- txn -------------------------------------------------------------------------------------

PROMPTS = "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"


def test_txn_interactive_success(ctl: CtlPair) -> None:
    p = "ctl/txn/ok/"
    ctl.run("put", p + "k", "v1")
    script = (
        f'value("{p}k") = "v1"\nmod("{p}k") > "0"\nversion("{p}k") = "1"\ncreate("{p}k") != "0"\n\n'
        f"put {p}new v2\nget {p}k\ndel {p}gone\n\n"
        f"put {p}else x\n\n"
    )
    o = ctl.run("txn", "-i", stdin=script)
    assert o.rc == 0 and o.out == PROMPTS + f"SUCCESS\n\nOK\n\n{p}k\nv1\n\n0\n"
    assert ctl.run("get", p + "new", "--print-value-only").out == "v2\n"
    assert ctl.run("get", p + "else").out == ""
    ctl.run("txn", "-i", "-w", "json", stdin=script)
    ctl.run("txn", "-i", "-w", "fields", stdin=script)


def test_txn_interactive_failure(ctl: CtlPair) -> None:
    p = "ctl/txn/fail/"
    ctl.run("put", p + "k", "v1")
    script = f'value("{p}k") = "nope"\n\nput {p}then x\n\nput {p}else y\nget {p}k --prefix\ndel {p}k --prev-kv\n\n'
    o = ctl.run("txn", "-i", stdin=script)
    assert o.rc == 0 and o.out == PROMPTS + f"FAILURE\n\nOK\n\n{p}k\nv1\n\n1\n{p}k\nv1\n"
    ctl.run("put", p + "k", "v1")
    o = ctl.run("txn", "-i", "-w", "json", stdin=script)
    assert "succeeded" not in o.out and len(o.out["responses"]) == 3


def test_txn_non_interactive_and_errors(ctl: CtlPair) -> None:
    p = "ctl/txn/misc/"
    # Without -i the same sections are read from stdin and no prompts are printed.
    o = ctl.run("txn", stdin=f'create("{p}k") = "0"\n\nput {p}k created\n\n\n')
    assert o.out == "SUCCESS\n\nOK\n"
    o = ctl.run("txn", stdin=f'create("{p}k") = "0"\n\nput {p}k again\n\n\n')
    assert o.out == "FAILURE\n"
    o = ctl.run("txn", stdin=f"\nput {p}d 1\nput {p}d 2\n\n\n")
    assert o.rc == 1 and "Error: etcdserver: duplicate key given in txn request" in o.err
    ctl.run("txn", stdin=f'value("{p}k") > "a"\nversion("{p}k") < "5"\n\nget {p} --prefix --keys-only\n\n\n')
    ctl.run("txn", "-w", "json", stdin=f'mod("{p}k") = "0"\n\n\nget {p}k\n\n')


# -- errors ------------------------------------------------------------------------------------


def test_errors(ctl: CtlPair) -> None:
    o = ctl.run("put", "", "v")
    assert o.rc == 1 and "Error: etcdserver: key is not provided" in o.err
    o = ctl.run("get", "")
    assert o.rc == 1 and "Error: etcdserver: key is not provided" in o.err
    o = ctl.run("put", "ctl/err/k", "v", "--lease", "1234abcd")
    assert o.rc == 1 and "Error: etcdserver: requested lease not found" in o.err
    assert "log: rpc error: code = NotFound desc = etcdserver: requested lease not found" in o.err
    o = ctl.run("put", "ctl/err/k", "--ignore-value")
    assert o.rc == 1 and "Error: etcdserver: key not found" in o.err
    ctl.run("put", "ctl/err/k", "v")
    assert ctl.run("put", "ctl/err/k", "--ignore-value").out == "OK\n"
    o = ctl.run("put", "ctl/err/k", "x", "--ignore-lease", "--lease", "1234abcd")
    assert o.rc == 1 and "Error: etcdserver: lease is provided" in o.err
    assert ctl.run("get", "ctl/err/k", "--print-value-only").out == "v\n"


# -- compaction ----------------------------------------------------------------------------------


def test_compaction(fresh_ctl: CtlPair) -> None:
    ctl = fresh_ctl
    for i in range(5):  # relative revisions 1..5
        ctl.run("put", "k", f"v{i}")
    o = ctl.run_rev_text("compaction", lambda b: str(b + 3))
    assert (o.rc, o.out) == (0, "compacted revision @+3\n")
    assert (ctl.ref_base, ctl.ours_base) == (1, 1)  # fresh stores: the absolute numbers match too
    o = ctl.run("get", "k", lambda b: f"--rev={b + 2}")
    assert o.rc == 1 and "Error: etcdserver: mvcc: required revision has been compacted" in o.err
    assert "log: rpc error: code = OutOfRange desc = etcdserver: mvcc: required revision has been compacted" in o.err
    assert ctl.run("get", "k", lambda b: f"--rev={b + 3}", "--print-value-only").out == "v2\n"
    o = ctl.run("compaction", lambda b: str(b + 3))
    assert o.rc == 1 and "Error: etcdserver: mvcc: required revision has been compacted" in o.err
    o = ctl.run("compaction", lambda b: str(b + 9))
    assert o.rc == 1 and "Error: etcdserver: mvcc: required revision is a future revision" in o.err
    o = ctl.run_rev_text("compaction", "--physical", lambda b: str(b + 5))
    assert (o.rc, o.out) == (0, "compacted revision @+5\n")
    o = ctl.run("get", "k", lambda b: f"--rev={b + 4}")
    assert o.rc == 1 and "Error: etcdserver: mvcc: required revision has been compacted" in o.err
    o = ctl.run("get", "k", "-w", "json")
    assert o.out["kvs"][0]["version"] == 5 and o.out["kvs"][0]["create_revision"] == "@+1"
    ctl.run("get", "k", lambda b: f"--rev={b + 5}", "-w", "json")
