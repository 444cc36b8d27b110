"""The traffic generator against real servers: its histories validate, and they exercise what they claim to.

- ``ours`` and real etcd, one member each: ~4 s at ~300 requests/s; the history is valid, has operations of
  every kind and at least one progress notification. The one violation tolerated, on real etcd only, is its
  progress race (``KNOWN_PROGRESS_RACE``); ours has none.
- a crash in the middle (the member frozen for 0.2 s, then SIGKILL, then restarted on the same data dir and
  port): clients and watches reconnect, the history is still valid and holds writes of unknown outcome.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from harness.servers import start_server
from robustness.history import History
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
    keyspace = history.watches[0]
    assert len(keyspace.streams) >= 2, "the whole-keyspace watch was not re-created after the restart"
    # Clients came back: requests succeeded after the restart, not only before the kill.
    last = max(op.call for op in history.operations if op.error is None)
    assert last > max(op.call for op in history.operations if op.error is not None)
