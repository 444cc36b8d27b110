"""Watch guarantees, checked for every logical watch against W and the model.

Contract of ``check_watches(history, log=None) -> Result`` (``operations_checked`` counts events):
- ordered: event revisions never decrease across a logical watch (all of its streams).
- unique: no (revision, key) is delivered twice by one logical watch.
- atomic: within a stream, all events of one revision arrive in a single response.
- reliable: a stream starting at s delivers, for every revision of W from s up to what it covered (its
  last event, or a progress notification's revision), exactly W's events in the watched range; a
  missing revision is "skipped", a partial one "delivered partially".
- resumable: a re-created stream starts where the last one left off (last event + 1, or the watch's
  start if there was no event). Starting later is a violation when the skipped revisions hold events
  in range, except after a stream canceled as compacted: those revisions are gone, a warning only. A
  stream canceled as compacted at C must not already have delivered past C.
- correct: a PUT event's kv follows from the model's state at r-1 (version + 1, create revision kept
  or r for a new key) and a DELETE deletes a live key; prev_kv, if present, must have been requested
  and equal the model's previous value (absent prev_kv is accepted: etcd omits it when compacted).
  Disagreements between streams are reported once, by W's construction (see ``writelog``).
- progress: after a progress notification at R, a stream delivers no event at <= R; no response's
  header revision is below an event it carries; a progress notification carries no events.
- in range: every event's key is in the watch's range and its revision >= the stream's start.
"""

from __future__ import annotations

import time

from robustness.describe import describe_event, describe_kv, short
from robustness.history import History, KeyValue, Result, Watch, WatchEvent, WatchStream
from robustness.model import in_range
from robustness.writelog import WriteLog, build_write_log

MAX_VIOLATIONS = 200


def check_watches(history: History, log: WriteLog | None = None) -> Result:
    started = time.perf_counter()
    log = log if log is not None else build_write_log(history)
    violations: list[str] = []
    warnings: list[str] = []
    events = 0
    for watch in history.watches:
        events += _check_watch(watch, log, violations, warnings)
    shown = violations[:MAX_VIOLATIONS]
    if len(violations) > MAX_VIOLATIONS:
        shown.append(f"... and {len(violations) - MAX_VIOLATIONS} more violations")
    return Result(not violations, shown, warnings, events, 0, 0, time.perf_counter() - started)


def _effective_start(stream: WatchStream) -> int | None:
    if stream.start_revision > 0:
        return stream.start_revision
    if not stream.responses:
        return None
    # "From now": etcd's created response carries the current revision; events follow it.
    return stream.responses[0].revision + 1


def _in_range_revisions(log: WriteLog, w: Watch, lo: int, hi: int) -> list[int]:
    lo = max(lo, log.base_revision + 1)
    hi = min(hi, log.last_revision)
    return [r for r in range(lo, hi + 1) if any(in_range(k, w.key, w.range_end) for k in log.events.get(r, ()))]


def _span(revs: list[int]) -> str:
    return ", ".join(map(str, revs[:10])) + (f" ... ({len(revs)} revisions)" if len(revs) > 10 else "")


def _check_watch(w: Watch, log: WriteLog, violations: list[str], warnings: list[str]) -> int:
    seen: set[tuple[int, bytes]] = set()
    last_rev = 0  # highest event revision delivered by the logical watch so far
    expected_next: int | None = w.start_revision or None
    compacted_at = 0  # compact_revision of the previous stream's cancel, if it was canceled as compacted
    count = 0
    for si, stream in enumerate(w.streams):
        start = _effective_start(stream)
        if start is None:
            continue
        where = f"watch {w.id} stream {si}"
        if expected_next is not None and start > expected_next:
            skipped = _in_range_revisions(log, w, expected_next, start - 1)
            if skipped and compacted_at:
                warnings.append(
                    f"{where} resumed at {start} after a cancel for compaction at {compacted_at}: revisions "
                    f"{_span(skipped)} were not delivered (compacted)"
                )
            elif skipped:
                violations.append(
                    f"watch not resumable: {where} started at {start}, but the watch had delivered up to "
                    f"{expected_next - 1}; revisions {_span(skipped)} with events in range were never delivered"
                )
        progress_at = 0
        covered = start - 1
        first_response: dict[int, int] = {}  # revision -> index of the response that carried it
        delivered: dict[int, set[bytes]] = {}
        stream_last = 0
        for ri, resp in enumerate(stream.responses):
            here = f"{where} response {ri} (t={resp.time:.6f}, header revision {resp.revision})"
            if resp.progress:
                if resp.events:
                    violations.append(f"progress notification with events: {here}")
                progress_at = max(progress_at, resp.revision)
                covered = max(covered, resp.revision)
                continue
            for ev in resp.events:
                count += 1
                r, key = ev.kv.mod_revision, ev.kv.key
                what = f"{describe_event(ev)} in {here}"
                if r > resp.revision:
                    violations.append(f"watch response header revision below its event's revision: {what}")
                if r < last_rev:
                    violations.append(f"watch event out of order: {what} came after an event at revision {last_rev}")
                if (r, key) in seen:
                    violations.append(f"duplicate watch event: {what} was already delivered by watch {w.id}")
                seen.add((r, key))
                if not in_range(key, w.key, w.range_end):
                    span = f"{short(w.key)}..{short(w.range_end)}"
                    violations.append(f"watch event outside the watched range {span}: {what}")
                if r < start:
                    violations.append(f"watch event before the stream's start revision {start}: {what}")
                if r <= progress_at:
                    violations.append(
                        f"watch event after a progress notification at revision {progress_at}: {what} (at {r})"
                    )
                if first_response.setdefault(r, ri) != ri:
                    violations.append(
                        f"non-atomic watch response: revision {r} split over responses {first_response[r]} and {ri} "
                        f"of {where}"
                    )
                _check_event(ev, w, log, what, violations)
                delivered.setdefault(r, set()).add(key)
                covered = max(covered, r)
                last_rev = max(last_rev, r)
                stream_last = max(stream_last, r)
        for r in _in_range_revisions(log, w, start, covered):
            want = {k for k in log.events[r] if in_range(k, w.key, w.range_end)}
            missing = want - delivered.get(r, set())
            if missing and len(missing) == len(want):
                violations.append(
                    f"watch skipped revision {r}: {where} (from revision {start}, covered through {covered}) never "
                    f"delivered its events on {', '.join(short(k) for k in sorted(missing))}"
                )
            elif missing:
                names = ", ".join(short(k) for k in sorted(missing))
                violations.append(f"watch delivered revision {r} partially: {where} missed {names}")
        final = stream.responses[-1] if stream.responses else None
        compacted_at = 0
        if final is not None and final.canceled and final.compact_revision > 0:
            compacted_at = final.compact_revision
            position = max(start, stream_last + 1)
            if position > compacted_at:
                violations.append(
                    f"{where} was canceled as compacted at {compacted_at}, but it had already reached revision "
                    f"{position}, which compaction keeps"
                )
        if last_rev:
            expected_next = last_rev + 1
        elif stream.start_revision > 0:
            expected_next = stream.start_revision
    return count


def _check_event(ev: WatchEvent, w: Watch, log: WriteLog, what: str, violations: list[str]) -> None:
    r, key = ev.kv.mod_revision, ev.kv.key
    if r - 1 < log.base_revision or r > log.last_revision:
        return  # before the history: nothing to compare with
    prev: KeyValue | None = log.store.get(key, r - 1)
    if ev.type == "PUT":
        create = prev.create_revision if prev is not None else r
        version = prev.version + 1 if prev is not None else 1
        if (ev.kv.create_revision, ev.kv.version) != (create, version):
            violations.append(
                f"watch event inconsistent with the key's history: {what}; before it the key was {describe_kv(prev)}, "
                f"so create={create} ver={version} expected"
            )
    elif ev.type == "DELETE":
        if prev is None:
            violations.append(f"watch event deletes a key that did not exist at revision {r - 1}: {what}")
    else:
        violations.append(f"watch event of unknown type {ev.type!r}: {what}")
    if ev.prev_kv is not None:
        if not w.prev_kv:
            violations.append(f"watch event carries prev_kv, which watch {w.id} did not request: {what}")
        elif ev.prev_kv != prev:
            violations.append(
                f"watch event's prev_kv is wrong: {what} carries {describe_kv(ev.prev_kv)}, but the key was "
                f"{describe_kv(prev)} at revision {r - 1}"
            )
