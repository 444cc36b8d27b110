"""The authoritative write sequence W of a history, assembled from every watch stream.

Contract:
- ``build_write_log(history)`` takes the union of all watch streams' events, grouped by revision
  (an event's revision is its kv's mod_revision) and by key. Two streams that report different events
  for the same (revision, key) are a violation. Events at or below ``history.base_revision`` are
  before the history and ignored here.
- W spans (base_revision, last]: ``last`` is the highest revision any watch delivered. Revisions in
  that span that no watch delivered are ``gaps`` ("incomplete watch coverage"); the linearizability
  checker decides whether a gap is a violation (some operation observed it) or only a warning.
- ``store`` is the KV store at every revision of W: the base state, then W's events one revision at a
  time (a gap revision changes nothing in it). Every checker reads "the state at revision r" from it,
  so each check depends only on what the server itself reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robustness.describe import describe_event, short
from robustness.history import History, KeyValue, WatchEvent
from robustness.model import VersionedStore


@dataclass
class WriteLog:
    base_revision: int
    last_revision: int
    events: dict[int, dict[bytes, WatchEvent]]  # revision -> key -> first event seen for it
    gaps: list[tuple[int, int]]  # inclusive revision ranges inside (base, last] that no watch delivered
    store: VersionedStore
    violations: list[str] = field(default_factory=list)

    def in_gap(self, revision: int) -> bool:
        return self.base_revision < revision <= self.last_revision and revision not in self.events

    def changes(self, revision: int) -> dict[bytes, tuple[str, KeyValue]]:
        return {k: (ev.type, ev.kv) for k, ev in self.events.get(revision, {}).items()}


def build_write_log(history: History) -> WriteLog:
    base = history.base_revision
    events: dict[int, dict[bytes, WatchEvent]] = {}
    source: dict[tuple[int, bytes], str] = {}
    violations: list[str] = []
    for watch in history.watches:
        for si, stream in enumerate(watch.streams):
            for resp in stream.responses:
                for ev in resp.events:
                    rev, key = ev.kv.mod_revision, ev.kv.key
                    if rev <= base:
                        continue
                    here = f"watch {watch.id} stream {si} (t={resp.time:.6f})"
                    known = events.setdefault(rev, {}).get(key)
                    if known is None:
                        events[rev][key] = ev
                        source[(rev, key)] = here
                    elif (known.type, known.kv) != (ev.type, ev.kv):
                        violations.append(
                            f"watch streams disagree at revision {rev} on key {short(key)}: "
                            f"{source[(rev, key)]} delivered {describe_event(known)}, "
                            f"{here} delivered {describe_event(ev)}"
                        )
    last = max(events, default=base)
    store = VersionedStore(base, history.base_state)
    gaps: list[tuple[int, int]] = []
    for rev in range(base + 1, last + 1):
        revision_events = events.get(rev)
        if revision_events is None:
            if gaps and gaps[-1][1] == rev - 1:
                gaps[-1] = (gaps[-1][0], rev)
            else:
                gaps.append((rev, rev))
            store.append({})
        else:
            store.append_events(revision_events.values())
    return WriteLog(base, last, events, gaps, store, violations)
