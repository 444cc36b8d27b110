"""Differential tests of the v3 Watch service (one bidi stream, many watchers).

Each test opens the same Watch stream on real etcd and on the server under test
(``harness.watchclient.WatchPair``), sends the same create / cancel / progress
requests, runs the same KV operations on both (``DiffPair``, which also compares
their answers), then waits until both streams are quiet and compares the
responses normalized like the KV suite: member ids and raft_term dropped,
revisions relative to the test's base revision. Responses are compared per
watch id, in arrival order: etcd hands one revision's responses to a stream's
watchers in Go map order, so the interleaving across watchers is not fixed.

A watch whose start_revision lies in the past is caught up by etcd's sync loop
(every 100 ms) with all the missed revisions in one response; tests let such a
watch catch up (``settle``) before they write again, so what is history and what
is live is the same on both servers.

The module shares one server pair; each test keeps to its own key prefix.
Compaction cases use ``fresh_diff``. The generated part at the end runs
``harness.kvgen`` sequences under a prefix watch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from harness import kvgen, ops
from harness.kvclient import Client, DiffPair
from harness.servers import start_server
from harness.watchclient import WatchPair

GENERATED_SEEDS = int(os.environ.get("PYETCD_TEST_WATCH_SEEDS", "50"))
MAX_REQUEST_BYTES = 1536 * 1024  # etcd --max-request-bytes default; fragments are cut at this size

E_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
E_EMPTY_RANGE = "mvcc: watcher range is empty"


@pytest.fixture
def w(diff: DiffPair) -> WatchPair:
    diff.begin()
    pair = WatchPair(diff)
    try:
        yield pair
    finally:
        pair.close()


@pytest.fixture
def fw(fresh_diff: DiffPair) -> WatchPair:
    pair = WatchPair(fresh_diff)
    try:
        yield pair
    finally:
        pair.close()


# -- helpers -------------------------------------------------------------------------------


def put(w: WatchPair, key: bytes, value: bytes = b"v", **kw) -> None:
    shown = value if len(value) <= 40 else value[:20] + f"...<{len(value)} bytes>".encode()
    w.diff.run("Put", ops.put(key, value, **kw), f"put {key!r}={shown!r}")


def delete(w: WatchPair, key: bytes, end: bytes = b"", **kw) -> None:
    w.diff.run("DeleteRange", ops.delete(key, end, **kw), f"delete {key!r}..{end!r}")


def txn(w: WatchPair, *success, desc: str = "txn") -> None:
    w.diff.run("Txn", ops.txn(success=success), desc)


def event(ev: dict[str, Any]) -> tuple:
    """(type, key, value, create, mod, version) of a normalized event; a DELETE has only key and mod."""
    kv = ev["kv"]
    return (ev.get("type", "PUT"), kv["key"], kv.get("value"), kv.get("create_revision"), kv["mod_revision"],
            kv.get("version"))  # fmt: skip


def events(group: list[dict[str, Any]]) -> list[tuple]:
    return [event(ev) for r in group for ev in r.get("events", [])]


def event_keys(group: list[dict[str, Any]]) -> list[tuple[str, bytes, str]]:
    """(type, key, mod revision) of every event, in order."""
    return [(t, k, mod) for t, k, _v, _c, mod, _ver in events(group)]


def event_responses(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in group if r.get("events")]


def assert_one_revision_per_response(group: list[dict[str, Any]]) -> None:
    """Live delivery: every response with events covers exactly one revision, its header revision."""
    for r in event_responses(group):
        mods = {ev["kv"]["mod_revision"] for ev in r["events"]}
        assert mods == {r["header"]["revision"]}, f"response mixes revisions {sorted(mods)}: {r}"


def created(group: list[dict[str, Any]]) -> dict[str, Any]:
    assert group and group[0].get("created") is True, f"first response is not the creation: {group[:1]}"
    return group[0]


# -- key ranges ------------------------------------------------------------------------------


def test_single_key(w: WatchPair) -> None:
    p = b"w/single/"
    w.create(p + b"k")
    w.wait_count(1)
    put(w, p + b"k", b"1")  # +1
    put(w, p + b"k0", b"x")  # +2, another key sharing the prefix
    put(w, p + b"k", b"2")  # +3
    delete(w, p + b"k")  # +4
    delete(w, p + b"k")  # nothing to delete: no revision, no event
    put(w, p + b"j", b"x")  # +5
    put(w, p + b"k", b"3")  # +6, created again: version 1
    g = w.compare()
    assert created(g["0"]) == {"created": True, "header": {"revision": "@+0"}}
    assert events(g["0"]) == [
        ("PUT", p + b"k", b"1", "@+1", "@+1", "1"),
        ("PUT", p + b"k", b"2", "@+1", "@+3", "2"),
        ("DELETE", p + b"k", None, None, "@+4", None),
        ("PUT", p + b"k", b"3", "@+6", "@+6", "1"),
    ]
    assert_one_revision_per_response(g["0"])


def test_prefix(w: WatchPair) -> None:
    p = b"w/prefix/"
    w.create(p, ops.prefix_end(p))
    w.wait_count(1)
    put(w, p + b"a")  # +1
    put(w, p[:-1])  # +2 "w/prefix": outside
    put(w, b"w/prefix0")  # +3 outside ("0" follows "/")
    put(w, p)  # +4 the prefix itself is inside
    put(w, p + b"b/c", b"deep")  # +5
    put(w, p + b"\xff")  # +6
    delete(w, p, ops.prefix_end(p))  # +7: a, the prefix, b/c and \xff in one revision
    g = w.compare()
    assert event_keys(g["0"]) == [
        ("PUT", p + b"a", "@+1"),
        ("PUT", p, "@+4"),
        ("PUT", p + b"b/c", "@+5"),
        ("PUT", p + b"\xff", "@+6"),
        ("DELETE", p, "@+7"),
        ("DELETE", p + b"a", "@+7"),
        ("DELETE", p + b"b/c", "@+7"),
        ("DELETE", p + b"\xff", "@+7"),
    ]
    assert len(event_responses(g["0"])) == 5
    assert_one_revision_per_response(g["0"])


def test_from_key(w: WatchPair) -> None:
    # "~" sorts after the other prefixes of this module: the from-key watch sees only this test's keys.
    p = b"~w/fromkey/"
    w.create(p + b"b", b"\x00")
    w.wait_count(1)
    put(w, p + b"a")  # +1 before the start key
    put(w, p + b"b")  # +2 the start key is included
    put(w, p + b"c")  # +3
    put(w, b"~w/fromkez")  # +4 after the prefix: still included
    put(w, b"~\xff\xff")  # +5
    delete(w, p, b"\x00")  # +6 deletes a, b, c, fromkez, \xff\xff; b.. are seen
    g = w.compare()
    assert event_keys(g["0"]) == [
        ("PUT", p + b"b", "@+2"),
        ("PUT", p + b"c", "@+3"),
        ("PUT", b"~w/fromkez", "@+4"),
        ("PUT", b"~\xff\xff", "@+5"),
        ("DELETE", p + b"b", "@+6"),
        ("DELETE", p + b"c", "@+6"),
        ("DELETE", b"~w/fromkez", "@+6"),
        ("DELETE", b"~\xff\xff", "@+6"),
    ]


def test_range(w: WatchPair) -> None:
    p = b"w/range/"
    w.create(p + b"a", p + b"c")  # [a, c)
    w.wait_count(1)
    for k in (b"a", b"b", b"b\x00", b"bz", b"c", b"c\x00", b"0", b"a"):
        put(w, p + k)
    delete(w, p, ops.prefix_end(p))
    g = w.compare()
    assert [k for _t, k, _m in event_keys(g["0"])] == [p + k for k in (b"a", b"b", b"b\x00", b"bz", b"a")] + [
        p + k for k in (b"a", b"b", b"b\x00", b"bz")
    ]


def test_empty_key(w: WatchPair) -> None:
    """An empty key is accepted: alone it watches the key "\\x00", with range_end "\\x00" every key."""
    w.create(b"")
    w.create(b"", b"\x00", filters=["NOPUT"])
    w.wait_count(2)
    put(w, b"\x00", b"zero")  # +1 seen by the first
    put(w, b"w/empty/k")  # +2
    delete(w, b"w/empty/k")  # +3 seen by the second
    delete(w, b"\x00")  # +4 seen by both
    g = w.compare()
    assert event_keys(g["0"]) == [("PUT", b"\x00", "@+1"), ("DELETE", b"\x00", "@+4")]
    assert event_keys(g["1"]) == [("DELETE", b"w/empty/k", "@+3"), ("DELETE", b"\x00", "@+4")]


@pytest.mark.parametrize("end", [b"w/empty-range/a", b"w/empty-range/b"], ids=["reversed", "key==end"])
def test_empty_range_is_refused(w: WatchPair, end: bytes) -> None:
    w.create(b"w/empty-range/b", end)
    w.create(b"w/empty-range/b")  # a good one after it gets id 0: the refused create took none
    w.wait_count(2)
    put(w, b"w/empty-range/b")
    g = w.compare()
    assert g["-1"] == [{"created": True, "canceled": True, "cancel_reason": E_EMPTY_RANGE, "watch_id": "-1",
                        "header": {"revision": "@+0"}}]  # fmt: skip
    assert len(events(g["0"])) == 1


def test_many_watchers_on_one_stream(w: WatchPair) -> None:
    p = b"w/many/"
    w.create(p, ops.prefix_end(p))  # 0
    w.create(p + b"a")  # 1
    w.create(p + b"a", p + b"c")  # 2
    w.create(p + b"b", b"\x00")  # 3
    w.create(p + b"a")  # 4, the same key twice is fine
    w.wait_count(5)
    put(w, p + b"a")
    put(w, p + b"b")
    txn(w, ops.put(p + b"a", b"2"), ops.put(p + b"c", b"2"))
    delete(w, p + b"a", p + b"c")
    g = w.compare()
    assert sorted(g) == ["0", "1", "2", "3", "4"]
    assert len(events(g["0"])) == 6 and len(events(g["1"])) == len(events(g["4"])) == 3


# -- transactions: one revision, one response ------------------------------------------------


def test_txn_is_one_response(w: WatchPair) -> None:
    p = b"w/txn/"
    w.create(p, ops.prefix_end(p))
    w.create(p, ops.prefix_end(p), prev_kv=True)
    w.wait_count(2)
    put(w, p + b"a", b"0")  # +1
    put(w, p + b"z", b"0")  # +2
    # +3: puts in request order, then the delete
    txn(w, ops.put(p + b"c", b"1"), ops.put(p + b"a", b"1"), ops.put(p + b"b", b"1"), ops.delete(p + b"z"))
    # +4: a nested txn's writes are in the same revision
    w.diff.run("Txn", ops.txn(success=[ops.put(p + b"d", b"2"), ops.txn(success=[ops.put(p + b"e", b"2")])]), "nested")
    txn(w, ops.rng(p, ops.prefix_end(p)), desc="read-only txn")  # no revision, no event
    w.diff.run("Txn", ops.txn([ops.cmp(p + b"a", "VALUE", "EQUAL", b"nope")], [ops.put(p + b"x")], [ops.put(p + b"y")]))
    g = w.compare()
    for wid in ("0", "1"):
        rs = event_responses(g[wid])
        assert len(rs) == 5
        assert [(k, m) for _t, k, m in event_keys([rs[2]])] == [
            (p + b"c", "@+3"), (p + b"a", "@+3"), (p + b"b", "@+3"), (p + b"z", "@+3")]  # fmt: skip
        assert [k for _t, k, _m in event_keys([rs[3]])] == [p + b"d", p + b"e"]
        assert [k for _t, k, _m in event_keys([rs[4]])] == [p + b"y"]
        assert_one_revision_per_response(g[wid])
    assert [ev.get("prev_kv", {}).get("value") for ev in event_responses(g["1"])[2]["events"]] == [
        None, b"0", None, b"0"]  # fmt: skip


def test_delete_range_is_one_response(w: WatchPair) -> None:
    p = b"w/delrange/"
    w.create(p, ops.prefix_end(p), prev_kv=True)
    w.wait_count(1)
    for k in (b"c", b"a", b"b", b"d"):
        put(w, p + k, k)
    delete(w, p + b"a", p + b"d", prev_kv=True)
    delete(w, p + b"a", p + b"d")  # nothing left in [a, d): no revision
    g = w.compare()
    last = event_responses(g["0"])[-1]
    assert [(e["type"], e["kv"]["key"], e["prev_kv"]["value"]) for e in last["events"]] == [
        ("DELETE", p + b"a", b"a"), ("DELETE", p + b"b", b"b"), ("DELETE", p + b"c", b"c")]  # fmt: skip


# -- start_revision --------------------------------------------------------------------------


def history(w: WatchPair, p: bytes) -> None:
    """Relative revisions +1..+7 under ``p``: puts, an overwrite, a txn, a delete, a range delete."""
    put(w, p + b"a", b"1")  # +1
    put(w, p + b"b", b"1")  # +2
    put(w, p + b"a", b"2")  # +3
    txn(w, ops.put(p + b"c", b"1"), ops.put(p + b"d", b"1"))  # +4
    delete(w, p + b"b")  # +5
    put(w, b"w/other", b"x")  # +6 outside p
    delete(w, p + b"c", p + b"e")  # +7 c, d


@pytest.mark.parametrize("start", [1, 2, 4, 7, 8])
def test_start_revision_in_the_past(w: WatchPair, start: int) -> None:
    p = f"w/past{start}/".encode()
    history(w, p)
    w.create(p, ops.prefix_end(p), start_rel=start)
    w.create(p + b"a", start_rel=start, prev_kv=True)
    w.settle()  # caught up before anything else is written
    put(w, p + b"a", b"3")  # +8 live
    txn(w, ops.put(p + b"e", b"1"), ops.put(p + b"a", b"4"))  # +9 live
    g = w.compare()
    for wid in ("0", "1"):
        assert created(g[wid])["header"] == {"revision": "@+7"}
        mods = [m for _t, _k, m in event_keys(g[wid])]
        assert mods == sorted(mods, key=lambda m: int(m[1:])) and all(int(m[1:]) >= start for m in mods)
    # History comes in one response with the store's revision in the header, then one response per revision.
    past = [r for r in event_responses(g["0"]) if int(r["events"][0]["kv"]["mod_revision"][1:]) < 8]
    if start <= 7:
        assert len(past) == 1 and past[0]["header"]["revision"] == "@+7"
    assert [r["header"]["revision"] for r in event_responses(g["0"])[len(past) :]] == ["@+8", "@+9"]


def test_start_revision_in_the_future(w: WatchPair) -> None:
    p = b"w/future/"
    w.create(p, ops.prefix_end(p), start_rel=3)
    w.create(p, ops.prefix_end(p), start_rel=100)
    w.wait_count(2)
    for i in range(5):
        put(w, p + b"k", str(i).encode())  # +1..+5
    g = w.compare()
    assert [m for _t, _k, m in event_keys(g["0"])] == ["@+3", "@+4", "@+5"]
    assert len(g["1"]) == 1  # only the creation
    assert_one_revision_per_response(g["0"])


def test_start_revision_current_and_zero(w: WatchPair) -> None:
    p = b"w/current/"
    put(w, p + b"k", b"0")  # +1
    w.create(p + b"k", start_rel=1)  # inclusive: replays +1
    w.create(p + b"k", start_revision=0)  # from the next revision
    w.settle()
    put(w, p + b"k", b"1")  # +2
    g = w.compare()
    assert [m for _t, _k, m in event_keys(g["0"])] == ["@+1", "@+2"]
    assert [m for _t, _k, m in event_keys(g["1"])] == ["@+2"]


# -- prev_kv and filters -------------------------------------------------------------------


def test_prev_kv(w: WatchPair) -> None:
    p = b"w/prevkv/"
    w.create(p, ops.prefix_end(p), prev_kv=True)
    w.wait_count(1)
    put(w, p + b"a", b"1")  # created: no prev_kv
    put(w, p + b"a", b"2")
    put(w, p + b"a", b"3", prev_kv=True)  # the put's own prev_kv flag changes nothing here
    delete(w, p + b"a")
    put(w, p + b"a", b"4")  # created again: no prev_kv
    put(w, p + b"b", b"")  # empty value
    put(w, p + b"b", b"x")
    delete(w, p, ops.prefix_end(p))
    g = w.compare()
    prevs = [ev.get("prev_kv", {}).get("value", "-" if "prev_kv" not in ev else b"")
             for r in g["0"] for ev in r.get("events", [])]  # fmt: skip
    assert prevs == ["-", b"1", b"2", b"3", "-", "-", b"", b"4", b"x"]
    # History replay attaches prev_kv the same way.
    w.create(p, ops.prefix_end(p), start_rel=1, prev_kv=True)
    g = w.compare()
    assert events(g["1"]) == events(g["0"])
    assert [ev.get("prev_kv") for r in g["1"] for ev in r.get("events", [])] == [
        ev.get("prev_kv") for r in g["0"] for ev in r.get("events", [])
    ]


@pytest.mark.parametrize("filters", [["NOPUT"], ["NODELETE"], ["NOPUT", "NODELETE"]], ids="+".join)
def test_filters(w: WatchPair, filters: list[str]) -> None:
    p = f"w/filter/{'+'.join(filters)}/".encode()
    w.create(p, ops.prefix_end(p), filters=filters)
    w.create(p, ops.prefix_end(p), filters=filters, prev_kv=True)
    w.wait_count(2)
    put(w, p + b"a")
    put(w, p + b"b")
    delete(w, p + b"a")
    txn(w, ops.put(p + b"a"), ops.delete(p + b"b"), ops.put(p + b"c"))  # mixed: the filtered kind drops out
    txn(w, ops.put(p + b"d"), ops.put(p + b"e"))  # only puts
    delete(w, p, ops.prefix_end(p))  # only deletes
    # History replay is filtered the same way.
    w.create(p, ops.prefix_end(p), filters=filters, start_rel=1)
    g = w.compare()
    types = {t for t, _k, _m in event_keys(g["0"])}
    assert types == {"PUT", "DELETE"} - {f[2:] for f in filters}
    assert all(r.get("events") for r in g["0"][1:]), "a response whose events were all filtered must not be sent"
    assert events(g["2"]) == events(g["0"])


# -- watch ids, cancel, progress ---------------------------------------------------------------


def test_client_chosen_watch_ids(w: WatchPair) -> None:
    p = b"w/ids/"
    w.create(p + b"a", watch_id=2)
    w.create(p + b"a")  # server-chosen: 0
    w.create(p + b"a")  # 1
    w.create(p + b"a")  # 3 (2 is taken)
    w.create(p + b"a", watch_id=-5)  # negative ids are accepted
    w.create(p + b"a", watch_id=1000)
    w.create(p + b"b", watch_id=2)  # duplicate
    w.create(p + b"b", watch_id=1)  # duplicate of a server-chosen id
    w.create(p + b"a")  # 4
    w.wait_count(9)
    put(w, p + b"a")
    put(w, p + b"b")
    g = w.compare()
    assert sorted(g, key=int) == ["-5", "-1", "0", "1", "2", "3", "4", "1000"]
    dup = {"created": True, "canceled": True, "watch_id": "-1", "cancel_reason": E_DUPLICATE_ID,
           "header": {"revision": "@+0"}}  # fmt: skip
    assert g["-1"] == [dup, dup]
    assert all(len(events(g[k])) == 1 for k in ("-5", "0", "1", "2", "3", "4", "1000"))


def test_cancel(w: WatchPair) -> None:
    p = b"w/cancel/"
    w.create(p + b"k")  # 0
    w.create(p + b"k", watch_id=7)
    w.wait_count(2)
    put(w, p + b"k", b"1")
    w.cancel(0)
    w.cancel(12345)  # unknown: no reply at all
    w.wait_count(5)
    put(w, p + b"k", b"2")  # only 7 sees it
    w.cancel(0)  # already cancelled: no reply
    w.cancel(7)
    w.wait_count(7)
    put(w, p + b"k", b"3")  # nobody
    w.create(p + b"k", watch_id=7)  # the id is free again
    w.create(p + b"k")  # server-chosen ids keep counting: 1
    w.wait_count(9)
    put(w, p + b"k", b"4")
    g = w.compare()
    assert [r.get("canceled", False) for r in g["0"]] == [False, False, True]
    assert g["0"][-1] == {"canceled": True, "header": {"revision": "@+1"}}  # watch_id 0 is not on the wire
    assert [m for _t, _k, m in event_keys(g["7"])] == ["@+1", "@+2", "@+4"]
    assert [m for _t, _k, m in event_keys(g["1"])] == ["@+4"]
    assert "-1" not in g


def test_progress_request(w: WatchPair) -> None:
    p = b"w/progress/"
    w.progress()  # no watchers at all
    w.wait_count(1)
    w.create(p + b"k")
    w.create(p, ops.prefix_end(p), progress_notify=True)
    w.wait_count(3)
    put(w, p + b"k")  # +1
    put(w, b"w/elsewhere")  # +2, seen by neither watcher
    w.wait_count(5)
    w.progress()
    g = w.compare()
    assert g["-1"] == [{"watch_id": "-1", "header": {"revision": "@+0"}},
                       {"watch_id": "-1", "header": {"revision": "@+2"}}]  # fmt: skip


@pytest.mark.parametrize("start", [1, 100], ids=["catching-up", "future"])
def test_progress_request_while_not_caught_up(w: WatchPair, start: int) -> None:
    """A progress request right after creating a watch that replays history (or waits for a future revision).

    etcd 3.4.23 answers at once, before the history: a progress notification at R ahead of events at or
    before R, which is etcd #15220. We answer as 3.4.25+/3.5.8+ do, once the watchers are synced, so the
    answer follows the history; either way it is answered once. One watcher on the stream, so the whole
    stream's order is compared, not only the order per watch id.
    """
    p = f"w/progress-early{start}/".encode()
    history(w, p)
    w.create(p, ops.prefix_end(p), start_rel=start)
    w.progress()
    r, o = w.settle()
    assert sum(x.get("watch_id") == "-1" for x in r) == 1
    assert sum(x.get("watch_id") == "-1" for x in o) == 1
    progress = next(i for i, x in enumerate(o) if x.get("watch_id") == "-1")
    assert not any(x.get("events") for x in o[progress:]), f"events after the progress notification: {o}"
    strip = [x for x in r if x.get("watch_id") != "-1"], [x for x in o if x.get("watch_id") != "-1"]
    assert strip[0] == strip[1], f"etcd: {r}\nours: {o}\n{w.history()}"


def test_progress_after_history_catch_up(w: WatchPair) -> None:
    p = b"w/progress-history/"
    history(w, p)
    w.create(p, ops.prefix_end(p), start_rel=1)
    w.settle()
    w.progress()
    g = w.compare()
    assert g["-1"] == [{"watch_id": "-1", "header": {"revision": "@+7"}}]


@pytest.fixture
def notify_pair(tmp_path: Path) -> WatchPair:
    """A fresh pair started with a 1 s --experimental-watch-progress-notify-interval."""
    flags = ["--experimental-watch-progress-notify-interval", "1s"]
    servers = []
    try:
        for kind in ("etcd", "ours"):
            servers.append(start_server(kind, tmp_path / kind, extra_flags=flags))
        ref, ours = Client(servers[0].endpoint), Client(servers[1].endpoint)
        try:
            d = DiffPair(ref, ours)
            d.begin()
            pair = WatchPair(d)
            try:
                yield pair
            finally:
                pair.close()
        finally:
            ref.close()
            ours.close()
    finally:
        for srv in servers:
            srv.stop()


def test_progress_notify(notify_pair: WatchPair) -> None:
    """Watchers created with progress_notify get an empty response each interval without events."""
    w = notify_pair
    w.create(b"notify/k", progress_notify=True)  # 0
    w.create(b"notify/k")  # 1: never notified
    w.create(b"notify/", ops.prefix_end(b"notify/"), progress_notify=True, start_rel=100)  # 2: not synced yet
    w.wait_count(3)
    time.sleep(2.5)
    put(w, b"notify/other")  # +1, seen by neither: progress goes on at the new revision
    time.sleep(2.2)
    gr, go = w.groups()
    for g in (gr, go):
        for wid in ("0", "2"):  # a watcher waiting for a future revision counts as synced, so it is notified too
            notes = g[wid][1:]
            assert 3 <= len(notes) <= 6, f"watch {wid}: expected a progress notification about every second: {notes}"
            assert {n["header"]["revision"] for n in notes} == {"@+0", "@+1"}
            assert all("events" not in n and "created" not in n for n in notes), notes
        assert len(g["1"]) == 1
    # The number of ticks depends on timing: compare each watcher's distinct responses, in order.
    for wid in ("0", "1", "2"):
        assert distinct(gr[wid]) == distinct(go[wid]), f"watch {wid}\netcd: {gr[wid]}\nours: {go[wid]}"


def distinct(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for i, x in enumerate(group) if x not in group[:i]]


# -- fragment ------------------------------------------------------------------------------


def test_fragment(w: WatchPair) -> None:
    """A revision whose response exceeds --max-request-bytes is split when the watcher asked for it."""
    p = b"w/fragment/"
    big = 700 * 1024
    put(w, p + b"a", b"a" * big)
    put(w, p + b"b", b"b" * big)
    w.create(p, ops.prefix_end(p), prev_kv=True, fragment=True)  # 0
    w.create(p, ops.prefix_end(p), prev_kv=True)  # 1: one big response
    w.create(p, ops.prefix_end(p), fragment=True)  # 2: small enough without prev_kv
    w.wait_count(3)
    txn(w, ops.put(p + b"a", b"A" * big), ops.put(p + b"b", b"B" * big))  # ~2.8 MB of events with prev_kv
    g = w.compare()
    assert [(r.get("fragment", False), len(r["events"])) for r in event_responses(g["0"])] == [(True, 1), (False, 1)]
    assert [len(r["events"]) for r in event_responses(g["1"])] == [2]
    assert [(r.get("fragment", False), len(r["events"])) for r in event_responses(g["2"])] == [(False, 2)]


# -- compaction ----------------------------------------------------------------------------


def test_watch_at_compacted_revision(fw: WatchPair) -> None:
    p = b"w/compact/"
    for i in range(6):
        put(fw, p + b"k", str(i).encode())  # +1..+6
    put(fw, p + b"j", b"x")  # +7
    fw.diff.run("Compact", lambda base: ops.compact(base + 4), "compact +4")
    fw.create(p, ops.prefix_end(p), start_rel=2)  # 0: compacted
    fw.create(p + b"k", start_rel=3, prev_kv=True)  # 1: compacted
    fw.create(p, ops.prefix_end(p), start_rel=4, prev_kv=True)  # 2: the compact revision itself is readable
    fw.create(p, ops.prefix_end(p), start_rel=5)  # 3
    fw.settle()
    put(fw, p + b"k", b"live")  # +8: 0 and 1 are gone
    g = fw.compare()
    assert g["0"][0] == {"created": True, "header": {"revision": "@+7"}}
    assert g["1"][0] == {"created": True, "watch_id": "1", "header": {"revision": "@+7"}}
    for wid in ("0", "1"):
        assert len(g[wid]) == 2
        assert g[wid][1]["canceled"] is True and g[wid][1]["compact_revision"] == "@+4"
        assert "events" not in g[wid][1] and "cancel_reason" not in g[wid][1]
    assert [m for _t, _k, m in event_keys(g["2"])] == ["@+4", "@+5", "@+6", "@+7", "@+8"]
    # prev_kv of the event at the compact revision would be at +3, which is gone.
    assert "prev_kv" not in event_responses(g["2"])[0]["events"][0]
    assert [m for _t, _k, m in event_keys(g["3"])] == ["@+5", "@+6", "@+7", "@+8"]


def test_compaction_does_not_disturb_live_watchers(fw: WatchPair) -> None:
    p = b"w/compact-live/"
    fw.create(p, ops.prefix_end(p), prev_kv=True)
    fw.wait_count(1)
    for i in range(4):
        put(fw, p + b"k", str(i).encode())
    fw.diff.run("Compact", lambda base: ops.compact(base + 4), "compact +4")
    put(fw, p + b"k", b"after")
    g = fw.compare()
    assert len(event_responses(g["0"])) == 5
    assert event_responses(g["0"])[-1]["events"][0]["prev_kv"]["value"] == b"3"


# -- generated sequences ---------------------------------------------------------------------


def revision_sets(group: list[dict[str, Any]]) -> list[list[str]]:
    return [sorted({ev["kv"]["mod_revision"] for ev in r["events"]}) for r in event_responses(group)]


@pytest.mark.parametrize("seed", range(GENERATED_SEEDS))
def test_generated(diff: DiffPair, seed: int) -> None:
    """A prefix watch open during a random sequence; afterwards a replay of it from its start."""
    gen = kvgen.SeqGen(seed, with_leases=False)
    p = gen.prefix
    steps = gen.sequence()
    diff.begin()
    w = WatchPair(diff)
    try:
        w.create(p, ops.prefix_end(p))  # 0: live
        w.create(p + b"b", b"\x00")  # 1: from-key inside the prefix, and past it
        w.wait_count(2)
        diff.steps(steps)
        gr, go = w.groups()
        for wid in ("0", "1"):
            # Flattened events first (the clearer message), then how they are cut into responses.
            assert events(gr[wid]) == events(go[wid]), f"watch {wid}: events differ\n{w.history()}"
            assert revision_sets(gr[wid]) == revision_sets(go[wid]), f"watch {wid}: batching differs\n{w.history()}"
            for g in (gr, go):
                assert_one_revision_per_response(g[wid])
        w.compare((gr, go))
        # 2: the same history replayed, with prev_kv (canceled if the sequence compacted past its start).
        w.create(p, ops.prefix_end(p), start_rel=1, prev_kv=True)
        g = w.compare()
        if not any(r.get("compact_revision") for r in g["2"]):
            assert events(g["2"]) == events(g["0"])
    finally:
        w.close()


def test_a_half_closed_request_stream_keeps_its_watchers(tmp_path: Path) -> None:
    """grpcio's simplest watch, ``Watch(iter([create]))``, half-closes the requests after the create: etcd keeps
    the watcher until the call ends. Ours used to stop it there, so such a client never got an event."""
    import grpc

    from harness.servers import server_pair
    from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"half"))
    with server_pair(tmp_path) as servers:
        for s in servers:
            with grpc.insecure_channel(s.endpoint) as ch:
                stream = rpc_pb2_grpc.WatchStub(ch).Watch(iter([create]), timeout=10)
                assert next(stream).created
                rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=b"half", value=b"x"))
                assert [e.kv.key for e in next(stream).events] == [b"half"], s.kind
                stream.cancel()
