"""The traffic generator against real servers: its histories validate, and they exercise what they claim to.

- ``ours`` and real etcd, one member each: ~4 s at ~300 requests/s; the history is valid, has operations of
  every kind and at least one progress notification. The one violation tolerated, on real etcd only, is its
  progress race (``KNOWN_PROGRESS_RACE``); ours has none.
- on both, the two kept leases were kept alive (keep-alives recorded, answered with their TTL), then watched
  expire at the end: the last LeaseTimeToLive found each gone and the last read of its key found nothing, and
  the lease checks (``leases``) warn of nothing. The lease cycles' keep-alives are recorded too.
- a crash in the middle (the member frozen for 0.2 s, then SIGKILL, then restarted on the same data dir and
  port): clients and watches reconnect, the history is still valid and holds writes of unknown outcome; the
  kept leases' keep-alives failed while the member was down, and the leases lived on.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from harness.servers import start_server
from robustness.history import History, Range, RangeResponse
from robustness.leases import lease_not_found
from robustness.model import classify
from robustness.traffic import Traffic, op_kind
from robustness.validate import validate

ALL_KINDS = {
    "put",
    "get",
    "get_serializable",
    "range",
    "delete",
    "cas",
    "txn_multi",
    "lease_grant",
    "lease_put",
    "lease_revoke",
    "compact",
}


# etcd-io/etcd#15220: etcd 3.4.23 may answer a progress request with a revision whose events the stream has not
# sent yet (the answer takes a different path than the events). Ours reports only notified revisions and defers
# the answer for a stream still catching up (the robustness suite's bug table). Requests at ~2/s rarely hit it
# on etcd, but they can: it is the one violation tolerated there, and none is tolerated on ours.
KNOWN_PROGRESS_RACE = "watch: watch event after a progress notification"


def _check(history: History, traffic: Traffic, kind: str = "ours") -> None:
    print(traffic.summary())
    result = validate(history)
    print(result.summary(limit=30))
    unexpected = [v for v in result.violations if not (kind == "etcd" and v.startswith(KNOWN_PROGRESS_RACE))]
    assert not unexpected, result.summary(limit=30)
    assert not [w for w in result.warnings if w.startswith("lease: ")], result.summary(limit=30)
    _check_kept_leases(history)


def _check_kept_leases(history: History) -> None:
    kept = {k.id for k in history.kept_leases}
    assert len(kept) == 2, history.kept_leases
    for k in history.kept_leases:
        answered = [ka for ka in history.keep_alives if ka.lease == k.id and ka.ttl is not None and ka.ttl > 0]
        assert len(answered) >= 3, f"lease {k.id:x}: only {len(answered)} keep-alives answered"
        checks = [c for c in history.lease_checks if c.lease == k.id]
        assert checks and lease_not_found(checks[-1]), f"lease {k.id:x} not seen gone: {checks[-1:]}"
        reads = [o for o in history.operations if isinstance(o.request, Range) and o.request.key == k.key]
        last = reads[-1].response if reads else None
        assert isinstance(last, RangeResponse) and not last.kvs, f"key {k.key!r} not seen gone: {last}"
    assert any(ka.lease not in kept for ka in history.keep_alives), "no keep-alive of a lease cycle recorded"


@pytest.mark.parametrize("kind", ["ours", "etcd"])
def test_traffic_validates(tmp_path: Path, kind: str) -> None:
    srv = start_server(kind, tmp_path)
    try:
        traffic = Traffic([srv.endpoint], rate=300.0, seed=1)
        traffic.start()
        time.sleep(4.0)
        history = traffic.stop()
    finally:
        srv.stop()
    _check(history, traffic, kind)
    kinds = {op_kind(op) for op in history.operations if op.error is None}
    assert kinds == ALL_KINDS, f"missing: {ALL_KINDS - kinds}"
    summary = traffic.summary()
    assert summary.ops_per_s > 150, summary
    assert summary.progress >= 1, summary
    # Short-lived watches ran besides the whole-keyspace one.
    assert len(history.watches) > 1


def test_traffic_survives_a_kill(tmp_path: Path) -> None:
    srv = start_server("ours", tmp_path)
    try:
        traffic = Traffic([srv.endpoint], rate=300.0, seed=2)
        traffic.start()
        time.sleep(2.0)
        # Freeze the member an instant before the crash, so that clients are inside requests when it dies
        # (requests take ~1 ms: a bare kill often finds none in flight, and a refused connection is not
        # an unknown outcome, the request was never sent).
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        srv.kill()
        time.sleep(0.5)
        srv.restart()
        time.sleep(2.0)
        history = traffic.stop()
    finally:
        srv.stop()
    _check(history, traffic)
    assert any(classify(op) == "unknown" for op in history.operations), "no write of unknown outcome"
    kept = {k.id for k in history.kept_leases}
    assert any(ka.error for ka in history.keep_alives if ka.lease in kept), "no keep-alive failed during the kill"
    keyspace = history.watches[0]
    assert len(keyspace.streams) >= 2, "the whole-keyspace watch was not re-created after the restart"
    # Clients came back: requests succeeded after the restart, not only before the kill.
    last = max(op.call for op in history.operations if op.error is None)
    assert last > max(op.call for op in history.operations if op.error is not None)
