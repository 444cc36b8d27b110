"""Random corruptions of a history, for testing that the checkers catch what they should.

Contract: ``mutate(history, rng)`` returns a corrupted deep copy and a description of the change, or
None when no mutation applies. A mutation may happen to leave the history valid (a read moved to a
revision with the same value, say): callers that need a verdict compare checkers with each other, they
do not assume the result is invalid. Watch mutations change an event in every stream that carries it,
so W stays free of gaps and of disagreements between streams.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import replace

from robustness.history import (
    DeleteResponse,
    History,
    KeyValue,
    Operation,
    PutResponse,
    RangeResponse,
    TxnResponse,
)
from robustness.model import classify


def _answered(h: History, kinds: tuple[str, ...]) -> list[Operation]:
    return [op for op in h.operations if classify(op) in kinds]


def _read_value(h: History, rng: random.Random) -> str | None:
    ops = [op for op in _answered(h, ("read",)) if isinstance(op.response, RangeResponse) and op.response.kvs]
    if not ops:
        return None
    op = rng.choice(ops)
    assert isinstance(op.response, RangeResponse)
    i = rng.randrange(len(op.response.kvs))
    kvs = list(op.response.kvs)
    kvs[i] = replace(kvs[i], value=b"corrupt" + kvs[i].value)
    op.response = replace(op.response, kvs=kvs)
    return f"read value of client {op.client} at {op.call:.6f}"


def _shift_revision(h: History, rng: random.Random, kinds: tuple[str, ...]) -> str | None:
    ops = _answered(h, kinds)
    if not ops:
        return None
    op = rng.choice(ops)
    assert op.response is not None
    delta = rng.choice([-1, 1])
    op.response = replace(op.response, revision=op.response.revision + delta)
    return f"{kinds[0]} revision {delta:+d} of client {op.client} at {op.call:.6f}"


def _drop_op(h: History, rng: random.Random) -> str | None:
    ops = _answered(h, ("write", "read"))
    if not ops:
        return None
    op = rng.choice(ops)
    h.operations.remove(op)
    return f"dropped client {op.client}'s op at {op.call:.6f}"


def _make_unknown(h: History, rng: random.Random) -> str | None:
    ops = _answered(h, ("write",))
    if not ops:
        return None
    op = rng.choice(ops)
    op.response, op.error = None, "timeout"
    return f"client {op.client}'s write at {op.call:.6f} made of unknown outcome"


def _shift_time(h: History, rng: random.Random) -> str | None:
    ops = _answered(h, ("write", "read", "unknown"))
    others = _answered(h, ("write", "read"))
    if len(ops) < 2 or not others:
        return None
    op = rng.choice(ops)
    other = rng.choice([o for o in others if o is not op] or others)
    assert other.ret is not None
    # Move op entirely before or after the other one, keeping its duration (if it has one).
    span = (op.ret - op.call) if op.ret is not None else None
    if rng.random() < 0.5:
        op.call = other.call - (span or 0.0) - 1e-6
    else:
        op.call = other.ret + 1e-6
    if span is not None:
        op.ret = op.call + span
    return f"moved client {op.client}'s op relative to client {other.client}'s"


def _duplicate_write(h: History, rng: random.Random) -> str | None:
    ops = _answered(h, ("write",))
    if not ops:
        return None
    op = rng.choice(ops)
    twin = copy.deepcopy(op)
    twin.client = max(o.client for o in h.operations) + 1
    h.operations.append(twin)
    return f"duplicated client {op.client}'s write at {op.call:.6f}"


def _swap_write_revisions(h: History, rng: random.Random) -> str | None:
    ops = _answered(h, ("write",))
    if len(ops) < 2:
        return None
    a, b = rng.sample(ops, 2)
    assert a.response is not None and b.response is not None
    ra, rb = a.response.revision, b.response.revision
    a.response, b.response = replace(a.response, revision=rb), replace(b.response, revision=ra)
    return f"swapped write revisions {ra} and {rb}"


def _watch_value(h: History, rng: random.Random) -> str | None:
    found = [
        (ev.kv.mod_revision, ev.kv.key)
        for w in h.watches
        for s in w.streams
        for resp in s.responses
        for ev in resp.events
        if ev.type == "PUT"
    ]
    if not found:
        return None
    target = rng.choice(found)
    for w in h.watches:
        for s in w.streams:
            for resp in s.responses:
                for i, ev in enumerate(resp.events):
                    if (ev.kv.mod_revision, ev.kv.key) == target:
                        resp.events[i] = replace(ev, kv=replace(ev.kv, value=b"altered"))
    return f"watch value at revision {target[0]}"


def _flip_answer(h: History, rng: random.Random) -> str | None:
    ops = [
        op
        for op in _answered(h, ("write", "read"))
        if isinstance(op.response, TxnResponse | PutResponse | DeleteResponse | RangeResponse)
    ]
    if not ops:
        return None
    op = rng.choice(ops)
    resp = op.response
    if isinstance(resp, TxnResponse):
        op.response = replace(resp, succeeded=not resp.succeeded)
    elif isinstance(resp, PutResponse):
        fake = KeyValue(b"fake", b"fake", 1, 1, 1)
        op.response = replace(resp, prev_kv=None if resp.prev_kv else fake)
    elif isinstance(resp, DeleteResponse):
        op.response = replace(resp, deleted=resp.deleted + 1)
    elif isinstance(resp, RangeResponse):
        op.response = replace(resp, count=resp.count + 1)
    return f"flipped the answer of client {op.client} at {op.call:.6f}"


MUTATIONS: list[Callable[[History, random.Random], str | None]] = [
    _read_value,
    lambda h, rng: _shift_revision(h, rng, ("read",)),
    lambda h, rng: _shift_revision(h, rng, ("write",)),
    _drop_op,
    _make_unknown,
    _shift_time,
    _swap_write_revisions,
    _watch_value,
    _flip_answer,
    _duplicate_write,
]


def mutate(history: History, rng: random.Random) -> tuple[History, str] | None:
    for mutation in rng.sample(MUTATIONS, len(MUTATIONS)):
        h = copy.deepcopy(history)
        description = mutation(h, rng)
        if description is not None:
            return h, description
    return None
