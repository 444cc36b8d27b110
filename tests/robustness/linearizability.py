"""The linearizability checker: Wing-Gong specialised by revision, where etcd's revisions are the witness.

Contract of ``check_linearizability(history, log=None) -> Result``:
1. W, the write sequence, comes from the watches (``writelog``); streams that disagree are violations.
   A gap in W is a violation if some operation observed a revision in it (or beyond W's end), else a
   warning.
2. Each answered write with revision r either changed the store at r (the request applied to the state
   at r-1 must produce exactly W[r] and the same answer; its point is (r, 0)) or changed nothing (the
   state at r answers it as the op was answered; its point is (r, 1)). When both fit (a revoke's
   answer cannot tell), "changed nothing" is taken: it is never more constraining and leaves W[r] to
   a lease expiry. Anything else is "lost or altered acknowledged write"; two ops claiming one
   revision is a violation.
3. Each answered read (Range, read-only Txn) and no-op (LeaseGrant, Compact) at header revision r must
   equal the model at r (a Range with revision R reads at R, still with point (r, 1)). A serializable
   read is exempt from real time but must not observe a revision beyond W.
4. Writes of unknown outcome are matched to revisions of W that no answered write claimed: a candidate
   revision r reproduces W[r] from the state at r-1 and is higher than every revision observed by an
   op that returned before the write was called. Revisions that must be explained are matched to
   distinct candidates by bipartite matching (augmenting paths), so ambiguous deletes and revokes are
   decided exactly (an op's candidates do not depend on the others' choices: ops of unknown outcome
   never return). A revision that deletes exactly the keys of one lease is explained as a lease
   expiry when nothing claims it. Anything else unexplained is "write no client made".
   Not modelled: lease existence (an answered put naming a revoked lease is not flagged).
5. Real time: with points (r, 0) for writes and (r, 1) for reads, the history is linearizable iff for
   every pair A.ret < B.call implies point(A) <= point(B) (two writes never share a point, see 2).
   This is checked in O(n log n): ops sorted by return time with a running maximum of their points.
``check_wgl`` (re-exported from ``wgl``) is the exact search used to cross-check this on small histories.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass

from robustness.describe import describe_changes, describe_op, describe_response
from robustness.history import (
    Compact,
    CompactResponse,
    Delete,
    DeleteResponse,
    History,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Request,
    Result,
    Txn,
    TxnResponse,
)
from robustness.model import (
    RequestRejected,
    apply_request,
    claims_change,
    classify,
    event_map,
    in_range,
    same_response,
)
from robustness.wgl import RegisterModel, RevisionModel, WglResult, check_wgl
from robustness.writelog import WriteLog, build_write_log

__all__ = ["check_linearizability", "check_wgl", "RegisterModel", "RevisionModel", "WglResult"]

MAX_VIOLATIONS = 200

_ANSWER = {
    Put: PutResponse,
    Range: RangeResponse,
    Delete: DeleteResponse,
    Txn: TxnResponse,
    LeaseGrant: LeaseGrantResponse,
    LeaseRevoke: LeaseRevokeResponse,
    Compact: CompactResponse,
}


@dataclass
class _Op:
    index: int
    op: Operation
    kind: str  # "write" | "read" | "noop" | "unknown"
    serializable: bool
    point: tuple[int, int] | None = None

    def __str__(self) -> str:
        return describe_op(self.index, self.op)


def check_linearizability(history: History, log: WriteLog | None = None) -> Result:
    started = time.perf_counter()
    checker = _Checker(history, log if log is not None else build_write_log(history))
    checker.run()
    violations = checker.violations
    if len(violations) > MAX_VIOLATIONS:
        violations = violations[:MAX_VIOLATIONS] + [f"... and {len(violations) - MAX_VIOLATIONS} more violations"]
    ops = checker.ops
    return Result(
        ok=not checker.violations,
        violations=violations,
        warnings=checker.warnings,
        operations_checked=len(ops),
        writes=sum(o.kind in ("write", "unknown") for o in ops),
        reads=sum(o.kind == "read" for o in ops),
        duration_s=time.perf_counter() - started,
    )


class _Checker:
    def __init__(self, history: History, log: WriteLog) -> None:
        self.log = log
        self.store = log.store
        self.violations: list[str] = list(log.violations)
        self.warnings: list[str] = []
        self.ops: list[_Op] = []
        for i, op in enumerate(history.operations):
            kind = classify(op)
            if kind is not None:
                serializable = isinstance(op.request, Range) and op.request.serializable
                self.ops.append(_Op(i, op, kind, serializable))
        self.claimed: dict[int, _Op] = {}
        # The ops that observed each gap of W (key: index into log.gaps, or -1 for beyond W's end).
        self.gap_observers: dict[int, list[_Op]] = {}

    def run(self) -> None:
        for o in self.ops:
            if o.kind != "unknown":
                self._check_answered(o)
        self._report_gaps()
        keyed = sorted(
            (o for o in self.ops if o.point is not None and not o.serializable), key=lambda o: o.op.ret or 0.0
        )
        self.rets = [o.op.ret or 0.0 for o in keyed]
        self.prefix: list[_Op] = []
        for o in keyed:
            assert o.point is not None
            top = self.prefix[-1] if self.prefix else None
            self.prefix.append(o if top is None or top.point is None or o.point > top.point else top)
        self._match_unknown()
        for o in keyed:
            self._check_real_time(o)

    # --- answered operations --------------------------------------------------------------------

    def _observe(self, o: _Op, revision: int) -> bool:
        """Record that ``o`` observed ``revision``; False when W cannot vouch for the state there."""
        log = self.log
        if revision < log.base_revision:
            self.violations.append(f"{o} observed revision {revision}, below the history's base {log.base_revision}")
            return False
        if revision > log.last_revision:
            if o.serializable:
                self.violations.append(
                    f"serializable read observed revision {revision}, greater than the highest revision in W "
                    f"({log.last_revision}): {o}"
                )
            else:
                self.gap_observers.setdefault(-1, []).append(o)
            return False
        if log.in_gap(revision):
            gi = next(i for i, (a, b) in enumerate(log.gaps) if a <= revision <= b)
            self.gap_observers.setdefault(gi, []).append(o)
            return False
        return True

    def _check_answered(self, o: _Op) -> None:
        req, resp = o.op.request, o.op.response
        assert resp is not None
        if not isinstance(resp, _ANSWER[type(req)]):
            self.violations.append(f"{o} was answered with {describe_response(resp)}")
            return
        r = resp.revision
        if o.kind == "write":
            self._check_write(o, r)
            return
        o.point = (r, 1)
        if not self._observe(o, r):
            return
        if isinstance(req, Range) and req.revision > 0:
            if req.revision > r:
                self.violations.append(f"{o} read revision {req.revision}, beyond its header revision {r}")
                return
            if req.revision < self.log.base_revision:
                self.warnings.append(f"not checked: {o} read revision {req.revision}, before the history began")
                return
            if not self._observe(o, req.revision):
                return
        reason = self._try_noop(o, r)
        if reason is not None:
            what = "a read" if o.kind == "read" else "a request that changes nothing"
            self.violations.append(f"wrong answer to {what}: {o} at revision {r}: {reason}")

    def _check_write(self, o: _Op, r: int) -> None:
        resp = o.op.response
        assert resp is not None
        as_noop = self._try_noop(o, r)
        if as_noop is None:
            o.point = (r, 1)
            return
        as_write = self._try_write(o, r)
        if as_write is None:
            o.point = (r, 0)
            other = self.claimed.get(r)
            if other is not None:
                self.violations.append(f"two acknowledged writes claim revision {r}: {other} and {o}")
            else:
                self.claimed[r] = o
            return
        claim = claims_change(resp)
        o.point = (r, 1) if claim is False else (r, 0)
        if claim is True:
            self.violations.append(f"lost or altered acknowledged write: {o} acknowledged at revision {r}: {as_write}")
        elif claim is False:
            self.violations.append(f"wrong answer to a write that changed nothing: {o} at revision {r}: {as_noop}")
        else:
            self.violations.append(
                f"lost or altered acknowledged write: {o} at revision {r} fits neither a change at {r} "
                f"({as_write}) nor no change ({as_noop})"
            )

    def _try_write(self, o: _Op, r: int) -> str | None:
        log = self.log
        if r <= log.base_revision:
            return f"revision {r} is not after the history's base revision {log.base_revision}"
        if r > log.last_revision or log.in_gap(r):
            self._observe(o, r)
            return f"revision {r} was delivered by no watch (W ends at {log.last_revision})"
        try:
            applied = apply_request(self.store.at(r - 1), o.op.request, self.store.at)
        except RequestRejected as e:
            return f"etcd would refuse it at revision {r - 1}: {e}"
        if not applied.events:
            return f"it changes nothing at revision {r - 1}"
        want, got = log.changes(r), event_map(applied.events)
        if got != want:
            return f"W[{r}] is {describe_changes(want)} but the request writes {describe_changes(got)}"
        assert o.op.response is not None
        if not same_response(applied.response, o.op.response):
            return f"expected {describe_response(applied.response)}, got {describe_response(o.op.response)}"
        return None

    def _try_noop(self, o: _Op, r: int) -> str | None:
        log = self.log
        if not log.base_revision <= r <= log.last_revision or log.in_gap(r):
            return f"revision {r} is not in W [{log.base_revision}, {log.last_revision}]"
        try:
            applied = apply_request(self.store.at(r), o.op.request, self.store.at)
        except RequestRejected as e:
            return f"etcd would refuse it: {e}"
        if applied.events:
            return f"it would change {describe_changes(event_map(applied.events))}"
        assert o.op.response is not None
        if not same_response(applied.response, o.op.response):
            return f"expected {describe_response(applied.response)}, got {describe_response(o.op.response)}"
        return None

    def _report_gaps(self) -> None:
        log = self.log
        for gi, (a, b) in enumerate(log.gaps):
            observers = self.gap_observers.get(gi)
            if observers is None:
                self.warnings.append(
                    f"incomplete watch coverage: revisions {a}..{b} were delivered by no watch "
                    "(no operation observed them)"
                )
            else:
                self.violations.append(
                    f"incomplete watch coverage: revisions {a}..{b} were delivered by no watch, but {observers[0]} "
                    f"observed one of them ({len(observers)} operations did)"
                )
        beyond = self.gap_observers.get(-1)
        if beyond:
            self.violations.append(
                f"incomplete watch coverage: watches delivered revisions up to {log.last_revision}, but {beyond[0]} "
                f"observed revision {beyond[0].op.response.revision if beyond[0].op.response else '?'} "
                f"({len(beyond)} operations observed revisions beyond W)"
            )

    # --- writes of unknown outcome and unexplained revisions -------------------------------------

    def _max_before(self, t: float) -> _Op | None:
        """The op with the highest point among those that returned strictly before ``t``."""
        i = bisect.bisect_left(self.rets, t)
        return self.prefix[i - 1] if i else None

    def _match_unknown(self) -> None:
        log = self.log
        unknown = [o for o in self.ops if o.kind == "unknown"]
        unclaimed = [r for r in sorted(log.events) if r not in self.claimed]
        expiry = {r for r in unclaimed if self._is_lease_expiry(r)}
        candidates: dict[int, list[int]] = {r: [] for r in unclaimed}
        # Index the unclaimed revisions by the keys they change, so each op looks only at its own keys.
        by_key: dict[bytes, list[int]] = {}
        deletes_only: list[int] = []
        for r in unclaimed:
            for k in log.events[r]:
                by_key.setdefault(k, []).append(r)
            if all(ev.type == "DELETE" for ev in log.events[r].values()):
                deletes_only.append(r)
        floors = [self._floor(u) for u in unknown]
        for ui, u in enumerate(unknown):
            for r in self._touching(u.op.request, by_key, deletes_only):
                # Real time first (cheap): the write must come after everything that returned before its call.
                if r > floors[ui] and self._may_write(u.op.request, r) and self._reproduces(u.op.request, r):
                    candidates[r].append(ui)
        owner: dict[int, int] = {}  # unknown op index -> revision it explains
        unexplained = 0
        for r in unclaimed:
            if r in expiry or _augment(r, candidates, owner):
                continue
            unexplained += 1
            detail = ""
            if candidates[r]:
                detail = f" ({len(candidates[r])} unknown-outcome candidates, all needed for other revisions)"
            elif unexplained <= 20:  # looking for near misses costs a pass over the unknown ops
                for ui, u in enumerate(unknown):
                    if self._may_write(u.op.request, r) and self._reproduces(u.op.request, r):
                        before = self._max_before(u.op.call)
                        detail = (
                            f"; {u} would write it, but {before} returned before it was called, having observed "
                            f"revision {floors[ui]}"
                        )
                        break
            self.violations.append(
                f"write no client made: revision {r} changed {describe_changes(log.changes(r))} and no operation "
                f"explains it{detail}"
            )
        for ui, r in owner.items():
            unknown[ui].point = (r, 0)

    def _floor(self, u: _Op) -> int:
        """The highest revision observed by an op that returned before ``u`` was called."""
        before = self._max_before(u.op.call)
        return before.point[0] if before is not None and before.point is not None else self.log.base_revision

    def _touching(self, req: Request, by_key: dict[bytes, list[int]], deletes_only: list[int]) -> list[int]:
        """The unclaimed revisions that change at least one key the request could write."""
        if isinstance(req, LeaseRevoke):
            return deletes_only
        revs: set[int] = set()
        for t in _write_targets(req):
            for k in self.store.keys(t.key, b"" if isinstance(t, Put) else t.range_end):
                revs.update(by_key.get(k, ()))
        return sorted(revs)

    def _may_write(self, req: Request, r: int) -> bool:
        """A cheap filter before applying the request: does it touch every key W[r] changed?"""
        changed = self.log.events[r]
        if isinstance(req, LeaseRevoke):
            return all(ev.type == "DELETE" for ev in changed.values())
        if isinstance(req, Put):
            ev = changed.get(req.key)
            return len(changed) == 1 and ev is not None and ev.type == "PUT" and ev.kv.value == req.value
        targets = _write_targets(req)
        return bool(targets) and all(
            any(in_range(k, t.key, b"" if isinstance(t, Put) else t.range_end) for t in targets) for k in changed
        )

    def _reproduces(self, req: Request, r: int) -> bool:
        if r - 1 < self.log.base_revision:
            return False
        try:
            applied = apply_request(self.store.at(r - 1), req, self.store.at)
        except RequestRejected:
            return False
        return bool(applied.events) and event_map(applied.events) == self.log.changes(r)

    def _is_lease_expiry(self, r: int) -> bool:
        changed = self.log.events[r]
        if not changed or any(ev.type != "DELETE" for ev in changed.values()):
            return False
        before = self.store.at(r - 1).get(next(iter(changed)))
        return before is not None and before.lease != 0 and self._reproduces(LeaseRevoke(before.lease), r)

    # --- real time ------------------------------------------------------------------------------

    def _check_real_time(self, o: _Op) -> None:
        top = self._max_before(o.op.call)
        if top is None or top.point is None or o.point is None or o.point >= top.point:
            return
        what = "wrote" if top.point[1] == 0 else "observed"
        if o.point[1] == 1:
            self.violations.append(
                f"stale read (real-time order violated): {o} observed revision {o.point[0]}, but {top} had returned "
                f"before it was called and {what} revision {top.point[0]}"
            )
        else:
            self.violations.append(
                f"real-time order violated: {o} wrote revision {o.point[0]}, but {top} had returned before it was "
                f"called and {what} revision {top.point[0]}"
            )


def _write_targets(req: Request) -> list[Put | Delete]:
    if isinstance(req, Put | Delete):
        return [req]
    if isinstance(req, Txn):
        return [op for op in req.success + req.failure if isinstance(op, Put | Delete)]
    return []


def _augment(root: int, candidates: dict[int, list[int]], owner: dict[int, int]) -> bool:
    """Kuhn's augmenting path from an unmatched revision, iteratively (paths can be long)."""
    visited: set[int] = set()
    stack: list[tuple[int, int]] = [(root, 0)]  # (revision, next candidate position)
    chosen: list[int] = []  # chosen[i]: the op taken by stack[i]'s revision
    while stack:
        rev, pos = stack[-1]
        cands = candidates[rev]
        while pos < len(cands) and cands[pos] in visited:
            pos += 1
        if pos == len(cands):
            stack.pop()
            if chosen:
                chosen.pop()
            continue
        op = cands[pos]
        visited.add(op)
        stack[-1] = (rev, pos + 1)
        chosen.append(op)
        if op not in owner:
            for (srev, _), sop in zip(stack, chosen, strict=True):
                owner[sop] = srev
            return True
        stack.append((owner[op], 0))
    return False
