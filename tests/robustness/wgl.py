"""An exact Wing-Gong-Lowe linearizability search: small, slow, and the reference for cross-checks.

Contract:
- ``check_wgl(ops, model)`` decides whether the operations have a linearization under ``model``. Ops
  are classified as the revision checker does (``model.classify``): dropped ops are left out, a write
  of unknown outcome may be linearized anywhere after its call or not at all (its response is not
  checked), every other op must be linearized between its call and its return. Real time is strict:
  A must precede B only when A.ret < B.call. Serializable reads get no exemption here.
- The search is depth-first over (linearized set, model state) with memoization of visited pairs;
  ``model.partition`` may split the ops into independent groups (per key, when the model allows it).
- ``RevisionModel`` is etcd's model constrained by the write log W of a history: the state is just
  the revision reached (the KV state at a revision is W's), and a change is allowed only if it
  reproduces W's events at the next revision; the search ends at W's last revision. It supports no
  lease expiry and no gaps in W (nothing could fill them), so cross-checks avoid both.
- ``RegisterModel`` treats every key as an independent register over single-key Put and Range,
  ignoring revisions, and partitions by key.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from robustness.history import History, Operation, Put, Range, RangeResponse
from robustness.model import RequestRejected, apply_request, classify, event_map, same_response
from robustness.writelog import WriteLog, build_write_log


class WglModel(Protocol):
    def init(self) -> Hashable: ...

    def step(self, state: Hashable, op: Operation) -> list[Hashable]:
        """The states the op may lead to from ``state`` (none: it cannot be linearized here).
        ``op.response`` is None for an op of unknown outcome."""
        ...

    def is_final(self, state: Hashable) -> bool: ...

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]: ...


@dataclass
class WglResult:
    ok: bool
    explored: int  # (linearized set, state) pairs visited
    failed_group: list[Operation] | None = None


def check_wgl(ops: Sequence[Operation], model: WglModel, max_states: int = 5_000_000) -> WglResult:
    kept = []
    for op in ops:
        kind = classify(op)
        if kind == "unknown":
            kept.append(replace(op, response=None, ret=None))
        elif kind is not None:
            kept.append(op)
    explored = 0
    for group in model.partition(kept):
        ok, n = _search(group, model, max_states - explored)
        explored += n
        if not ok:
            return WglResult(False, explored, group)
    return WglResult(True, explored)


def _search(group: Sequence[Operation], model: WglModel, budget: int) -> tuple[bool, int]:
    ops = sorted(group, key=lambda o: o.call)
    calls = [o.call for o in ops]
    rets = [math.inf if o.ret is None else o.ret for o in ops]
    required = sum(1 << i for i, o in enumerate(ops) if o.ret is not None)
    seen: set[tuple[int, Hashable]] = set()
    stack: list[tuple[int, Hashable]] = [(0, model.init())]
    while stack:
        mask, state = stack.pop()
        if (mask, state) in seen:
            continue
        seen.add((mask, state))
        if len(seen) > budget:
            raise RuntimeError(f"WGL search gave up after {budget} states")
        if mask & required == required and model.is_final(state):
            return True, len(seen)
        # An op may go next only if no other pending op returned before it was called.
        horizon = min((rets[i] for i in range(len(ops)) if not mask >> i & 1), default=math.inf)
        for i, op in enumerate(ops):
            if calls[i] > horizon:
                break
            if mask >> i & 1:
                continue
            for nxt in model.step(state, op):
                stack.append((mask | 1 << i, nxt))
    return False, len(seen)


class RevisionModel:
    def __init__(self, history: History, log: WriteLog | None = None) -> None:
        self.log = log if log is not None else build_write_log(history)

    def init(self) -> Hashable:
        return self.log.base_revision

    def is_final(self, state: Hashable) -> bool:
        return state == self.log.last_revision

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        return [list(ops)]  # revisions tie every key together

    def step(self, state: Hashable, op: Operation) -> list[Hashable]:
        assert isinstance(state, int)
        log = self.log
        try:
            applied = apply_request(log.store.at(state), op.request, log.store.at)
        except RequestRejected:
            return []
        nxt = state
        if applied.events:
            nxt = state + 1
            if nxt > log.last_revision or event_map(applied.events) != log.changes(nxt):
                return []
        if op.response is not None and not same_response(applied.response, op.response):
            return []
        return [nxt]


class RegisterModel:
    def init(self) -> Hashable:
        return None

    def is_final(self, state: Hashable) -> bool:
        return True

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        groups: dict[bytes, list[Operation]] = {}
        for op in ops:
            req = op.request
            if not isinstance(req, Put | Range) or (isinstance(req, Range) and req.range_end):
                raise ValueError(f"RegisterModel takes single-key Put and Range only, not {req!r}")
            groups.setdefault(req.key, []).append(op)
        return list(groups.values())

    def step(self, state: Hashable, op: Operation) -> list[Hashable]:
        req, resp = op.request, op.response
        if isinstance(req, Put):
            return [req.value]
        if resp is None:
            return [state]
        got = resp.kvs[0].value if isinstance(resp, RangeResponse) and resp.kvs else None
        return [state] if got == state else []
