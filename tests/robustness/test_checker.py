"""The robustness checkers are themselves tested: they accept valid histories and reject broken ones.

- model: etcd's rules the checkers rely on (compares on absent keys, no-op writes keep the revision,
  range limits and counts, lease attach/detach/revoke, the versioned store).
- synthetic histories (``synth``) pass, with unknown outcomes, lease expiry, compaction and watches.
- each known-bad history is rejected with a message naming the problem: stale read, lost or altered
  acknowledged write, a read of a value never written, a write no client made, a real-time inversion
  of two writes, and the watch faults (duplicate, out of order, skipped, progress before an event at
  or below it, a revision split over two responses, a late resume, a wrong prev_kv).
- leases (``leases``): a kept lease found gone while its keep-alives succeeded within the TTL is rejected, and
  so is a kept lease or its key still seen well after its last keep-alive + TTL + slack; keep-alives that
  failed prove nothing, and a revoke explains a lease found gone.
- agreement: on 200 small random histories, valid and mutated, the revision checker and the exact
  WGL search (``check_wgl`` with ``RevisionModel``) give the same verdict.
- performance: a 10,000-operation history from 16 clients, with watches, is checked in under 60 s.
- a history survives a JSON round trip exactly, its lease records too.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from robustness.history import (
    Compare,
    Delete,
    DeleteResponse,
    History,
    KeepAlive,
    KeptLease,
    KeyValue,
    LeaseCheck,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseRevoke,
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Txn,
    TxnResponse,
    Watch,
    WatchEvent,
    WatchResponse,
    WatchStream,
)
from robustness.linearizability import RegisterModel, RevisionModel, check_linearizability, check_wgl
from robustness.model import ALL_KEYS, Snapshot, State, VersionedStore, apply_request, prefix_end
from robustness.mutate import mutate
from robustness.synth import SynthConfig, generate
from robustness.validate import validate
from robustness.watches import check_watches

A1 = KeyValue(b"a", b"1", 2, 2, 1)
A2 = KeyValue(b"a", b"2", 2, 3, 2)
A3 = KeyValue(b"a", b"3", 2, 4, 3)


def put_ev(kv: KeyValue, prev: KeyValue | None = None) -> WatchEvent:
    return WatchEvent("PUT", kv, prev)


def del_ev(key: bytes, rev: int, prev: KeyValue | None = None) -> WatchEvent:
    return WatchEvent("DELETE", KeyValue(key, b"", 0, rev, 0, 0), prev)


def stream(*batches: list[WatchEvent], start: int = 2, progress: dict[int, int] | None = None) -> WatchStream:
    """One response per batch (header = its highest revision); progress={position: revision} inserts notifications."""
    responses = [WatchResponse(0.0, start - 1, [], created=True)]
    for i, batch in enumerate(batches):
        if progress and i in progress:
            responses.append(WatchResponse(float(i), progress[i], [], progress=True))
        responses.append(WatchResponse(float(i), max(ev.kv.mod_revision for ev in batch), list(batch)))
    return WatchStream(start, responses)


def watch(*streams: WatchStream, wid: int = 0, key: tuple[bytes, bytes] = ALL_KEYS, prev_kv: bool = True) -> Watch:
    return Watch(wid, key[0], key[1], streams[0].start_revision, prev_kv, list(streams))


def op(client: int, call: float, ret: float | None, req, resp, error: str | None = None) -> Operation:
    return Operation(client, call, ret, req, resp, error)


def two_puts_and_a_read(read: RangeResponse | None = None) -> History:
    """Client 0 puts a=1 (rev 2), then client 1 puts a=2 (rev 3), then client 2 reads a."""
    return History(
        [
            op(0, 0.0, 1.0, Put(b"a", b"1"), PutResponse(2)),
            op(1, 2.0, 3.0, Put(b"a", b"2"), PutResponse(3)),
            op(2, 4.0, 5.0, Range(b"a"), read or RangeResponse(3, [A2], 1)),
        ],
        [watch(stream([put_ev(A1)], [put_ev(A2, A1)]))],
    )


def violations(history: History) -> str:
    result = validate(history)
    assert not result.ok, "expected a violation"
    return "\n".join(result.violations)


# --- the model ---------------------------------------------------------------------------------


def test_model_compares_on_absent_keys() -> None:
    empty = State(1)
    for result in ("=", "!=", "<", ">"):
        txn = Txn([Compare(b"k", "value", result, b"x")], [Put(b"k", b"v")], [])
        assert apply_request(empty, txn).response.succeeded is False  # type: ignore[union-attr]
    assert apply_request(empty, Txn([Compare(b"k", "mod", "=", 0)], [Put(b"k", b"v")], [])).response.succeeded  # type: ignore[union-attr]
    assert apply_request(empty, Txn([Compare(b"k", "lease", "=", 0)], [], [])).response.succeeded  # type: ignore[union-attr]


def test_model_no_op_writes_keep_the_revision() -> None:
    s = apply_request(State(1), Put(b"a", b"1")).state
    assert s.revision == 2
    for req in (
        Delete(b"zz"),
        Delete(b"b", b"c"),
        Txn([Compare(b"a", "version", ">", 5)], [Put(b"a", b"x")], [Range(b"a")]),
        Txn([], [Delete(b"nope")], []),
        LeaseRevoke(7),
    ):
        applied = apply_request(s, req)
        assert not applied.events and applied.state.revision == 2 and applied.response.revision == 2, req


def test_model_txn_changes_share_one_revision_and_ranges_see_own_writes() -> None:
    s = apply_request(State(1), Put(b"a", b"1")).state
    txn = Txn([Compare(b"a", "value", "=", b"1")], [Put(b"b", b"2"), Delete(b"a", prev_kv=True), Range(b"a", b"c")], [])
    applied = apply_request(s, txn)
    assert [ev.kv.mod_revision for ev in applied.events] == [3, 3]
    resp = applied.response
    assert isinstance(resp, TxnResponse) and resp.succeeded and resp.revision == 3
    ranged = resp.responses[2]
    assert isinstance(ranged, RangeResponse) and [kv.key for kv in ranged.kvs] == [b"b"]
    assert resp.responses[1] == DeleteResponse(3, 1, [KeyValue(b"a", b"1", 2, 2, 1)])
    assert applied.events[1] == del_ev(b"a", 3, KeyValue(b"a", b"1", 2, 2, 1))


def test_model_versions_leases_and_ranges() -> None:
    s: Snapshot = State(1)
    for req in (Put(b"k/1", b"a", lease=9), Put(b"k/2", b"b", lease=9), Put(b"k/1", b"c"), Put(b"k/3", b"d")):
        s = apply_request(s, req).state
    assert s.get(b"k/1") == KeyValue(b"k/1", b"c", 2, 4, 2, 0)  # the put without lease detached it
    revoke = apply_request(s, LeaseRevoke(9))
    assert [ev.kv.key for ev in revoke.events] == [b"k/2"] and revoke.state.revision == 6
    r = apply_request(s, Range(b"k/", prefix_end(b"k/"), limit=2, keys_only=True)).response
    assert isinstance(r, RangeResponse) and r.count == 3 and r.more and [kv.value for kv in r.kvs] == [b"", b""]
    r = apply_request(s, Range(b"k/", prefix_end(b"k/"), count_only=True)).response
    assert r == RangeResponse(5, [], 3, False)
    r = apply_request(s, Range(b"k/2", b"\0")).response
    assert isinstance(r, RangeResponse) and [kv.key for kv in r.kvs] == [b"k/2", b"k/3"]


def test_versioned_store_serves_every_revision() -> None:
    store = VersionedStore(1)
    for i in range(1, 6):
        store.append_events(apply_request(store.at(store.revision), Put(b"k", str(i).encode())).events)
    store.append_events(apply_request(store.at(store.revision), Delete(b"k")).events)
    assert [kv.value if (kv := store.at(r).get(b"k")) else None for r in range(1, 8)] == [
        None, b"1", b"2", b"3", b"4", b"5", None
    ]  # fmt: skip
    old = apply_request(store.at(7), Range(b"k", revision=4), store.at).response
    assert isinstance(old, RangeResponse) and old.revision == 7 and old.kvs[0].version == 3


# --- valid histories ---------------------------------------------------------------------------


def test_hand_built_history_passes() -> None:
    result = validate(two_puts_and_a_read())
    assert result.ok, result.summary()


@pytest.mark.parametrize("seed", range(6))
def test_synthetic_histories_pass(seed: int) -> None:
    history = generate(SynthConfig(seed=seed, operations=600, clients=6, base_keys=seed % 3, expiry_rate=0.03))
    assert any(o.error == "timeout" for o in history.operations)
    result = validate(history)
    assert result.ok, result.summary()


def test_unknown_outcomes_either_way() -> None:
    happened = History(
        [op(0, 0.0, None, Put(b"a", b"1"), None, "timeout"), op(1, 5.0, 6.0, Range(b"a"), RangeResponse(2, [A1], 1))],
        [watch(stream([put_ev(A1)]))],
    )
    assert validate(happened).ok
    lost = History([op(0, 0.0, 1.0, Put(b"a", b"1"), None, "timeout")], [])
    assert validate(lost).ok


def test_unknown_write_cannot_land_before_what_preceded_it() -> None:
    """W[3] could be client 1's put, but a read that returned before it was called had seen revision 3."""
    b3 = KeyValue(b"b", b"x", 3, 3, 1)
    history = History(
        [
            op(0, 0.0, 1.0, Put(b"a", b"1"), PutResponse(2)),
            op(2, 1.5, 2.0, Range(b"b"), RangeResponse(3, [b3], 1)),
            op(1, 3.0, None, Put(b"b", b"x"), None, "timeout"),
        ],
        [watch(stream([put_ev(A1)], [put_ev(b3)]))],
    )
    assert "write no client made: revision 3" in violations(history)


def test_lease_expiry_explains_a_revision_but_other_deletes_do_not() -> None:
    leased = KeyValue(b"a", b"1", 2, 2, 1, lease=5)
    ops = [op(0, 0.0, 1.0, Put(b"a", b"1", lease=5), PutResponse(2))]
    assert validate(History(ops, [watch(stream([put_ev(leased)], [del_ev(b"a", 3)]))])).ok
    ops = [op(0, 0.0, 1.0, Put(b"a", b"1"), PutResponse(2))]
    assert "write no client made" in violations(History(ops, [watch(stream([put_ev(A1)], [del_ev(b"a", 3)]))]))


def test_serializable_reads_may_be_stale_but_not_from_the_future() -> None:
    stale = two_puts_and_a_read(RangeResponse(2, [A1], 1))
    stale.operations[2].request = Range(b"a", serializable=True)
    assert validate(stale).ok
    future = two_puts_and_a_read(RangeResponse(4, [A2], 1))
    future.operations[2].request = Range(b"a", serializable=True)
    assert "greater than the highest revision in W" in violations(future)


def test_gaps_in_watch_coverage() -> None:
    """No watch delivered revision 3: a warning, unless an operation observed revision 3."""
    unobserved = History([], [watch(stream([put_ev(A1)]), wid=0), watch(stream([put_ev(A3, A2)], start=4), wid=1)])
    result = validate(unobserved)
    assert any("incomplete watch coverage: revisions 3..3" in w for w in result.warnings), result.summary()
    observed = History([op(0, 0.0, 1.0, Range(b"a"), RangeResponse(3, [A2], 1))], unobserved.watches)
    assert "incomplete watch coverage: revisions 3..3" in violations(observed)


# --- known-bad histories -----------------------------------------------------------------------


def test_stale_linearizable_read() -> None:
    assert "stale read" in violations(two_puts_and_a_read(RangeResponse(2, [A1], 1)))


def test_lost_acknowledged_write() -> None:
    history = two_puts_and_a_read()
    history.operations.append(op(3, 6.0, 7.0, Put(b"b", b"x"), PutResponse(4)))
    assert "lost or altered acknowledged write" in violations(history)


def test_acknowledged_write_altered_in_watches() -> None:
    history = two_puts_and_a_read()
    altered = KeyValue(b"a", b"2-altered", 2, 3, 2)
    history.watches = [watch(stream([put_ev(A1)], [put_ev(altered, A1)]))]
    assert "lost or altered acknowledged write" in violations(history)


def test_read_of_a_value_never_written() -> None:
    bogus = KeyValue(b"a", b"zzz", 2, 3, 2)
    assert "wrong answer to a read" in violations(two_puts_and_a_read(RangeResponse(3, [bogus], 1)))


def test_write_no_client_made() -> None:
    history = two_puts_and_a_read()
    ghost = KeyValue(b"b", b"ghost", 4, 4, 1)
    history.watches = [watch(stream([put_ev(A1)], [put_ev(A2, A1)], [put_ev(ghost)]))]
    assert "write no client made: revision 4" in violations(history)


def test_real_time_order_of_writes() -> None:
    a, b = KeyValue(b"a", b"1", 3, 3, 1), KeyValue(b"b", b"2", 2, 2, 1)
    history = History(
        [op(0, 0.0, 1.0, Put(b"a", b"1"), PutResponse(3)), op(1, 2.0, 3.0, Put(b"b", b"2"), PutResponse(2))],
        [watch(stream([put_ev(b)], [put_ev(a)]))],
    )
    assert "real-time order violated" in violations(history)


def _watch_violations(history: History) -> str:
    result = check_watches(history)
    assert not result.ok, "expected a watch violation"
    return "\n".join(result.violations)


def test_duplicate_watch_event() -> None:
    h = History([], [watch(stream([put_ev(A1)], [put_ev(A2, A1)], [put_ev(A2, A1)]))])
    assert "duplicate watch event" in _watch_violations(h)


def test_out_of_order_watch_event() -> None:
    h = History([], [watch(stream([put_ev(A2, A1)], [put_ev(A1)]))])
    assert "out of order" in _watch_violations(h)


def test_watch_skips_a_revision() -> None:
    full = watch(stream([put_ev(A1)], [put_ev(A2, A1)], [put_ev(A3, A2)]), wid=0)
    holed = watch(stream([put_ev(A1)], [put_ev(A3, A2)]), wid=1)
    assert "watch skipped revision 3" in _watch_violations(History([], [full, holed]))


def test_progress_notification_before_an_event_at_or_below_it() -> None:
    h = History([], [watch(stream([put_ev(A1)], [put_ev(A2, A1)], progress={1: 3}))])
    assert "after a progress notification at revision 3" in _watch_violations(h)


def test_revision_split_over_two_responses() -> None:
    b4 = KeyValue(b"b", b"x", 4, 4, 1)
    a4 = KeyValue(b"a", b"3", 2, 4, 3)
    h = History([], [watch(stream([put_ev(A1)], [put_ev(A2, A1)], [put_ev(a4, A2)], [put_ev(b4)]))])
    assert "non-atomic watch response: revision 4" in _watch_violations(h)


def test_late_resume_is_a_violation_unless_compacted() -> None:
    first = stream([put_ev(A1)])
    late = stream([put_ev(A3, A2)], start=4)
    full = watch(stream([put_ev(A1)], [put_ev(A2, A1)], [put_ev(A3, A2)]), wid=1)
    assert "watch not resumable" in _watch_violations(History([], [watch(first, late, wid=0), full]))
    canceled = WatchStream(3, [WatchResponse(1.0, 4, [], compact_revision=4, canceled=True)])
    result = check_watches(History([], [watch(first, canceled, late, wid=0), full]))
    assert result.ok and any("compaction" in w for w in result.warnings), result.summary()


def test_wrong_prev_kv() -> None:
    h = History([], [watch(stream([put_ev(A1)], [put_ev(A2, A2)]), prev_kv=True)])
    assert "prev_kv is wrong" in _watch_violations(h)


# --- leases ------------------------------------------------------------------------------------

LEASE, KEPT_KEY = 0x5EED, b"kept0"
KEPT_KV = KeyValue(KEPT_KEY, b"9-1", 2, 2, 1, lease=LEASE)


def kept_lease_history(
    gone_at: float, key_gone_at: float | None = None, failing: tuple[float, float] = (0.0, 0.0), stop: float = 6.0
) -> History:
    """A kept lease of TTL 3, granted at 0 with its key put on it (revision 2), kept alive every 0.75 s until
    ``stop`` (attempts called within ``failing`` fail), then polled every 0.1 s until it and its key are gone.
    The lease vanishes at ``gone_at`` (keep-alives answer TTL 0 from then), its key at ``key_gone_at``
    (revision 3, a lease expiry in W)."""
    key_gone = gone_at if key_gone_at is None else key_gone_at
    ops = [
        op(9, 0.0, 0.01, LeaseGrant(3, 0), LeaseGrantResponse(1, LEASE, 3)),
        op(9, 0.01, 0.02, Put(KEPT_KEY, b"9-1", lease=LEASE), PutResponse(2)),
    ]
    keep_alives, checks = [], []
    t = 0.5
    while t < stop:
        if failing[0] <= t < failing[1]:
            keep_alives.append(KeepAlive(LEASE, t, t + 1.0, None, "StatusCode.DEADLINE_EXCEEDED: Deadline Exceeded"))
        else:
            keep_alives.append(KeepAlive(LEASE, t, t + 0.002, 3 if t < gone_at else 0))
        t += 0.75
    t = stop + 0.1
    while t < max(gone_at, key_gone) + 0.1:
        found, not_found = LeaseCheck(LEASE, t, t + 0.002, 2, 3, [KEPT_KEY]), LeaseCheck(LEASE, t, t + 0.002, -1, 0)
        checks.append(found if t < gone_at else not_found)
        read = RangeResponse(2, [KEPT_KV], 1) if t < key_gone else RangeResponse(3, [], 0)
        ops.append(op(9, t + 0.003, t + 0.005, Range(KEPT_KEY), read))
        t += 0.1
    watches = [watch(stream([put_ev(KEPT_KV)], [del_ev(KEPT_KEY, 3, KEPT_KV)]))]
    return History(ops, watches, keep_alives=keep_alives, lease_checks=checks, kept_leases=[KeptLease(LEASE, KEPT_KEY)])


def test_kept_lease_expiring_after_its_keep_alives_passes() -> None:
    result = validate(kept_lease_history(gone_at=9.25))
    assert result.ok and not result.warnings, result.summary()


def test_kept_lease_revoked_while_kept_alive() -> None:
    """etcd-io/etcd#12528: keep-alives answered TTL 3 every 0.75 s, then one answers TTL 0."""
    message = violations(kept_lease_history(gone_at=3.0))
    assert "lease: lease 5eed revoked while kept alive: a keep-alive answered TTL 0 at 3.502" in message, message


def test_failed_keep_alives_prove_nothing() -> None:
    """The keep-alives called at 2.0 and 2.75 fail: the lease may expire 3 s after the last good one (1.25)."""
    result = validate(kept_lease_history(gone_at=4.0, failing=(1.5, 4.5)))
    assert result.ok, result.summary()
    # ... but not before it.
    message = violations(kept_lease_history(gone_at=3.4, failing=(1.5, 3.0)))
    assert "revoked while kept alive: a keep-alive answered TTL 0 at 3.502" in message, message
    assert "before a keep-alive at 1.250 (TTL 3)" in message, message


def test_kept_lease_or_its_key_outliving_the_ttl() -> None:
    """The last keep-alive returns at 5.752: both must be gone by 5.752 + 3 + EXPIRY_SLACK."""
    message = violations(kept_lease_history(gone_at=12.0))
    assert "lease: lease 5eed outlived the lease's TTL: LeaseTimeToLive called at 10.8" in message, message
    assert "lease: key b'kept0' of lease 5eed outlived the lease's TTL: a read of its key" in message, message
    message = violations(kept_lease_history(gone_at=9.25, key_gone_at=12.0))
    assert "lease: lease 5eed outlived" not in message and "key b'kept0' of lease 5eed outlived" in message, message


def test_a_revoke_explains_a_lease_found_gone() -> None:
    """A lease cycle: grant, keep-alive, revoke; a keep-alive after the revoke finds it gone, rightly."""
    cycle = History(
        [
            op(0, 0.0, 0.1, LeaseGrant(5, 0), LeaseGrantResponse(1, 7, 5)),
            op(0, 0.3, 0.4, LeaseRevoke(7), None, "StatusCode.UNAVAILABLE: connection reset"),
        ],
        [],
        keep_alives=[KeepAlive(7, 0.1, 0.2, 5), KeepAlive(7, 0.5, 0.6, 0)],
    )
    assert validate(cycle).ok
    cycle.operations.pop()
    assert "lease 7 revoked while kept alive" in violations(cycle)


# --- the revision checker agrees with an exact search -------------------------------------------


def test_revision_checker_agrees_with_wgl() -> None:
    rng = random.Random(2026)
    verdicts = {True: 0, False: 0}
    for i in range(200):
        cfg = SynthConfig(
            seed=i, clients=4, operations=12, keys=3, leases=False, serializable=False, compaction=False,
            unknown_rate=0.3, expiry_rate=0.0,
        )  # fmt: skip
        history, what = generate(cfg), "valid"
        if i % 4:
            mutated = mutate(history, rng)
            assert mutated is not None
            history, what = mutated
        fast = check_linearizability(history)
        exact = check_wgl(history.operations, RevisionModel(history))
        assert fast.ok == exact.ok, f"history {i} ({what}): revision checker {fast.summary()}, WGL says {exact.ok}"
        if what == "valid":
            assert fast.ok, fast.summary()
        verdicts[fast.ok] += 1
    assert verdicts[False] >= 60, verdicts  # the mutations do break most histories


def test_wgl_register_model_partitions_by_key() -> None:
    def kv(k: bytes, v: bytes) -> KeyValue:
        return KeyValue(k, v, 0, 0, 1)

    ok = [
        op(0, 0.0, 2.0, Put(b"x", b"1"), PutResponse(0)),
        op(1, 1.0, 3.0, Range(b"x"), RangeResponse(0, [kv(b"x", b"1")], 1)),
        op(2, 0.5, 4.0, Put(b"y", b"9"), PutResponse(0)),
        op(3, 5.0, 6.0, Range(b"y"), RangeResponse(0, [kv(b"y", b"9")], 1)),
    ]
    assert check_wgl(ok, RegisterModel()).ok
    stale = ok + [op(4, 7.0, 8.0, Range(b"x"), RangeResponse(0, [], 0))]
    result = check_wgl(stale, RegisterModel())
    assert not result.ok and result.failed_group is not None and {o.request.key for o in result.failed_group} == {b"x"}  # type: ignore[union-attr]


# --- scale and format --------------------------------------------------------------------------


def test_ten_thousand_operations_are_checked_quickly() -> None:
    history = generate(SynthConfig(seed=7, operations=10_000, clients=16, keys=40))
    started = time.perf_counter()
    result = validate(history)
    elapsed = time.perf_counter() - started
    print(f"10k-operation history ({len(history.watches)} watches) checked in {elapsed:.2f}s: {result.summary(3)}")
    assert result.ok, result.summary()
    assert result.operations_checked > 9_000 and elapsed < 60


def test_history_json_round_trip(tmp_path: Path) -> None:
    history = generate(SynthConfig(seed=3, operations=300, base_keys=2))
    history.operations.append(
        op(9, 1.0, 2.5, Txn([Compare(b"\x00\xff", "value", "!=", b"\xfe\x00"), Compare(b"k", "mod", "<", 7)], [], []),
           TxnResponse(3, False, []), None)
    )  # fmt: skip
    path = tmp_path / "history.json"
    history.to_json(path)
    again = History.from_json(path)
    assert again == history
    assert isinstance(again.operations[-1].request.compares[0].operand, bytes)  # type: ignore[union-attr]
    leased = kept_lease_history(gone_at=9.25, failing=(1.0, 2.0))
    assert any(ka.error for ka in leased.keep_alives) and leased.lease_checks
    leased.to_json(path)
    again = History.from_json(path)
    assert again == leased
    assert again.lease_checks[0].keys == [KEPT_KEY] and again.kept_leases[0].key == KEPT_KEY
