"""Synthetic valid histories: simulated clients against a model server, with the watches they would see.

Contract of ``generate(SynthConfig) -> History`` (deterministic for a seed):
- ``clients`` clients each issue one request at a time (``operations`` in all) with random latencies,
  so calls and returns overlap. The server is ``model.apply_request`` over a ``VersionedStore``: a
  request takes effect at one instant between its call and return, in a single global order, so the
  history is linearizable by construction.
- Requests: puts with unique values (some with prev_kv, some attached to a lease), gets, serializable
  gets (answered from a revision up to 3 behind), prefix ranges with limit/keys_only/count_only, reads
  at a past revision, deletes and range deletes, compare-and-swap txns on mod_revision, value-compare
  txns, multi-key txns, read-only txns, lease grants and revokes, compactions.
- Failures: a write may fail with an error of unknown outcome, having happened (sometimes long after
  the client gave up) or not, and sometimes without ever returning; a read may fail; requests etcd
  refuses (unknown lease, compacted or future revision) fail with a "definite:" error. The server
  expires leases on its own now and then (deleting their keys in one revision no client made).
- Watches: every key from the first revision in two streams (the second re-created from the last
  event + 1), a prefix watch created "from now" (start 0), a single-key watch with prev_kv, and, when
  a compaction happened, a watch whose re-created stream is canceled as compacted and resumed at the
  compaction revision. Responses batch whole revisions and include progress notifications.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, replace

from robustness.history import (
    Compact,
    Compare,
    Delete,
    History,
    LeaseGrant,
    LeaseRevoke,
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Request,
    Response,
    Txn,
    TxnResponse,
    Watch,
    WatchEvent,
    WatchResponse,
    WatchStream,
)
from robustness.model import ALL_KEYS, VersionedStore, apply_request, in_range, is_write, prefix_end


@dataclass
class SynthConfig:
    clients: int = 4
    operations: int = 200
    keys: int = 12
    seed: int = 0
    unknown_rate: float = 0.04  # writes failing with an error of unknown outcome
    read_error_rate: float = 0.02
    never_return_rate: float = 0.3  # share of unknown-outcome writes that never return
    serializable: bool = True
    leases: bool = True
    compaction: bool = True
    historical_reads: bool = True
    txns: bool = True
    expiry_rate: float = 0.01  # per applied request, the server expires a lease
    base_keys: int = 0  # keys written before the history starts (base_revision > 1)
    watches: bool = True
    latency: float = 0.002  # mean seconds from call to effect and from effect to return


class _Server:
    def __init__(self, rng: random.Random, cfg: SynthConfig) -> None:
        self.rng, self.cfg = rng, cfg
        self.store = VersionedStore()
        self.events: dict[int, list[WatchEvent]] = {}
        self.times: dict[int, float] = {}
        self.live: set[int] = set()
        self.compacted = 0
        self.base = 1

    def _commit(self, events: list[WatchEvent], t: float) -> None:
        rev = self.store.append_events(events)
        self.events[rev] = events
        self.times[rev] = t

    def _refusal(self, req: Request) -> str | None:
        cur = self.store.revision
        ops: list[Request] = [req]
        if isinstance(req, Txn):
            ops = list(req.success + req.failure)
        for op in ops:
            if isinstance(op, Put) and op.lease and op.lease not in self.live:
                return "lease not found"
            if isinstance(op, Range) and op.revision:
                if op.revision > cur:
                    return "required revision is a future revision"
                if op.revision < self.compacted:
                    return "required revision has been compacted"
        if isinstance(req, LeaseRevoke) and req.id not in self.live:
            return "lease not found"
        if isinstance(req, LeaseGrant) and req.id in self.live:
            return "lease already exists"
        if isinstance(req, Compact) and not self.compacted < req.revision <= cur:
            return "required revision has been compacted" if req.revision <= self.compacted else "future revision"
        return None

    def execute(self, req: Request, t: float) -> tuple[Response | None, str | None]:
        self._maybe_expire(t)
        refusal = self._refusal(req)
        if refusal is not None:
            return None, f"definite: {refusal}"
        cur = self.store.revision
        snap = self.store.at(cur)
        if isinstance(req, Range) and req.serializable:
            snap = self.store.at(self.rng.randint(max(self.base, self.compacted, cur - 3), cur))
        applied = apply_request(snap, req, self.store.at)
        if applied.events:
            self._commit(applied.events, t)
        if isinstance(req, LeaseGrant):
            self.live.add(req.id)
        elif isinstance(req, LeaseRevoke):
            self.live.discard(req.id)
        elif isinstance(req, Compact):
            self.compacted = req.revision
        return applied.response, None

    def _maybe_expire(self, t: float) -> None:
        if not self.live or self.rng.random() >= self.cfg.expiry_rate:
            return
        lease = self.rng.choice(sorted(self.live))
        self.live.discard(lease)
        applied = apply_request(self.store.at(self.store.revision), LeaseRevoke(lease))
        if applied.events:
            self._commit(applied.events, t)


class _Client:
    def __init__(self, cid: int, keys: list[bytes], cfg: SynthConfig, rng: random.Random) -> None:
        self.id, self.keys, self.cfg, self.rng = cid, keys, cfg, rng
        self.n = 0
        self.leases: list[int] = []
        self.mods: dict[bytes, int] = {}
        self.values: dict[bytes, bytes] = {}
        self.max_rev = 1
        weights: dict[str, float] = {"put": 25, "get": 15, "range": 8, "delete": 6, "delete_range": 1}
        if cfg.txns:
            weights |= {"cas": 10, "txn_multi": 4, "txn_read": 3, "txn_value": 3}
        if cfg.serializable:
            weights["get_serializable"] = 5
        if cfg.historical_reads:
            weights["get_rev"] = 3
        if cfg.leases:
            weights |= {"lease_grant": 3, "lease_put": 6, "lease_revoke": 2}
        if cfg.compaction:
            weights["compact"] = 0.5
        self.kinds, self.weights = list(weights), list(weights.values())

    def number(self) -> int:
        self.n += 1
        return self.n

    def value(self) -> bytes:
        return f"c{self.id}.{self.number()}".encode()

    def request(self, base: int) -> Request:
        rng, key = self.rng, self.rng.choice(self.keys)
        other = rng.choice([k for k in self.keys if k != key])
        prefix = rng.choice([b"key/", b"key/0", b"key/1"])
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "put" or (kind == "lease_put" and not self.leases):
            return Put(key, self.value(), prev_kv=rng.random() < 0.3)
        if kind == "lease_put":
            return Put(key, self.value(), lease=rng.choice(self.leases))
        if kind == "get":
            return Range(key)
        if kind == "get_serializable":
            if rng.random() < 0.7:
                return Range(key, serializable=True)
            return Range(prefix, prefix_end(prefix), serializable=True)
        if kind == "range":
            end = prefix_end(prefix) if rng.random() < 0.8 else b"\0"
            return Range(
                prefix,
                end,
                limit=rng.choice([0, 0, 0, 2, 3]),
                keys_only=rng.random() < 0.2,
                count_only=rng.random() < 0.1,
            )
        if kind == "get_rev":
            return Range(key, revision=rng.randint(max(base, self.max_rev - 10), self.max_rev))
        if kind == "delete":
            return Delete(key, prev_kv=rng.random() < 0.5)
        if kind == "delete_range":
            return Delete(b"key/1", prefix_end(b"key/1"), prev_kv=rng.random() < 0.5)
        if kind == "cas":
            return Txn([Compare(key, "mod", "=", self.mods.get(key, 0))], [Put(key, self.value())], [Range(key)])
        if kind == "txn_multi":
            target = rng.choice([("version", ">", 0), ("lease", "=", 0), ("create", "<", self.max_rev)])
            return Txn(
                [Compare(key, *target)],
                [Put(key, self.value()), Delete(other, prev_kv=True)],
                [Put(other, self.value()), Range(key)],
            )
        if kind == "txn_read":
            return Txn([], [Range(key), Range(prefix, prefix_end(prefix), count_only=rng.random() < 0.3)], [])
        if kind == "txn_value":
            expected = self.values.get(key, b"never")
            return Txn([Compare(key, "value", "=", expected)], [Delete(key, prev_kv=True)], [Range(key)])
        if kind == "lease_grant":
            return LeaseGrant(ttl=10, id=(self.id + 1) * 1_000_000 + self.number())
        if kind == "lease_revoke" and self.leases:
            return LeaseRevoke(self.leases.pop(rng.randrange(len(self.leases))))
        if kind == "compact" and self.max_rev - 5 > base:
            return Compact(self.max_rev - rng.randint(3, 5))
        return Range(key)

    def learn(self, req: Request, resp: Response) -> None:
        self.max_rev = max(self.max_rev, resp.revision)
        if isinstance(req, LeaseGrant):
            self.leases.append(req.id)
        pairs: list[tuple[Request, Response]] = [(req, resp)]
        if isinstance(req, Txn) and isinstance(resp, TxnResponse):
            pairs = list(zip(req.success if resp.succeeded else req.failure, resp.responses, strict=True))
        for q, a in pairs:
            if isinstance(q, Put) and isinstance(a, PutResponse):
                self.mods[q.key], self.values[q.key] = resp.revision, q.value
            elif isinstance(q, Range) and isinstance(a, RangeResponse) and not q.keys_only and not q.revision:
                for kv in a.kvs:
                    self.mods[kv.key], self.values[kv.key] = kv.mod_revision, kv.value
            elif isinstance(q, Delete):
                for k in [k for k in self.mods if in_range(k, q.key, q.range_end)]:
                    self.mods[k] = 0


def generate(cfg: SynthConfig) -> History:
    rng = random.Random(cfg.seed)
    keys = [f"key/{i:02d}".encode() for i in range(cfg.keys)]
    server = _Server(rng, cfg)
    for k in keys[: cfg.base_keys]:
        server._commit(apply_request(server.store.at(server.store.revision), Put(k, b"base")).events, 0.0)
    base = server.base = server.store.revision
    base_state = server.store.at(base).range(*ALL_KEYS)
    clients = [_Client(i, keys, cfg, random.Random(rng.random())) for i in range(cfg.clients)]
    for c in clients:
        c.max_rev = base
    ops: list[Operation] = []
    heap: list[tuple[float, int, str, tuple]] = []
    seq = 0

    def push(t: float, kind: str, data: tuple) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, data))

    def lat() -> float:
        return rng.expovariate(1 / cfg.latency)

    for c in clients:
        push(rng.uniform(0, cfg.latency), "call", (c,))
    while heap:
        t, _, kind, data = heapq.heappop(heap)
        if kind == "call":
            (c,) = data
            if len(ops) >= cfg.operations:
                continue
            op = Operation(c.id, t, None, c.request(base), None)
            ops.append(op)
            write = is_write(op.request)
            if write and rng.random() < cfg.unknown_rate:
                # The client gives up; the request may still take effect, even after that.
                if rng.random() < 0.5:
                    push(t + lat() * rng.choice([0.5, 1, 4]), "effect", (c, op, "silent"))
                push(t + lat(), "timeout", (c, op))
            else:
                fail = not write and rng.random() < cfg.read_error_rate
                push(t + lat(), "effect", (c, op, "fail" if fail else "answer"))
        elif kind == "effect":
            c, op, mode = data
            if mode == "fail":
                push(t + lat(), "return", (c, op, None, "unavailable"))
                continue
            resp, err = server.execute(op.request, t)
            if mode == "answer":
                push(t + lat(), "return", (c, op, resp, err))
        elif kind == "timeout":
            c, op = data
            op.error = "timeout"
            op.ret = None if rng.random() < cfg.never_return_rate else t
            push(t + lat(), "call", (c,))
        else:
            c, op, resp, err = data
            op.ret, op.response, op.error = t, resp, err
            if resp is not None:
                c.learn(op.request, resp)
            push(t + lat() / 4, "call", (c,))
    watches = _watches(server, rng, keys) if cfg.watches else []
    return History(ops, watches, base, base_state)


# --- watches -----------------------------------------------------------------------------------


def _stream(
    server: _Server, rng: random.Random, key: bytes, end: bytes, start: int, stop: int, prev_kv: bool, requested: int
) -> tuple[WatchStream, int]:
    """A stream delivering W's events in range for revisions [start, stop]; returns it and its last event."""
    responses = [WatchResponse(server.times.get(start - 1, 0.0), max(start - 1, server.base), [], created=True)]
    pending: list[WatchEvent] = []
    last = 0
    for r in range(start, stop + 1):
        evs = [ev for ev in server.events.get(r, []) if in_range(ev.kv.key, key, end)]
        if not prev_kv:
            evs = [replace(ev, prev_kv=None) for ev in evs]
        if evs:
            pending.extend(evs)
            last = r
            if rng.random() < 0.7:
                header = min(stop, r + rng.choice([0, 0, 1]))
                responses.append(WatchResponse(server.times[r], header, pending))
                pending = []
        elif not pending and rng.random() < 0.05:
            responses.append(WatchResponse(server.times.get(r, 0.0), r, [], progress=True))
    if pending:
        responses.append(WatchResponse(server.times.get(stop, 0.0), stop, pending))
    return WatchStream(requested, responses), last


def _watches(server: _Server, rng: random.Random, keys: list[bytes]) -> list[Watch]:
    base, final = server.base, server.store.revision
    everything, prefix = ALL_KEYS, (b"key/0", prefix_end(b"key/0"))
    watches = []
    # Every key, broken once and re-created from the last event + 1.
    brk = rng.randint(base + 1, max(base + 1, final))
    a, last = _stream(server, rng, *everything, base + 1, brk, True, base + 1)
    resume = last + 1 if last else base + 1
    b, _ = _stream(server, rng, *everything, resume, final, True, resume)
    watches.append(Watch(0, *everything, base + 1, True, [a, b]))
    # A prefix, "from now" at some revision h: the created response's header is h.
    h = rng.randint(base, final)
    s, _ = _stream(server, rng, *prefix, h + 1, final, False, 0)
    s.responses[0] = replace(s.responses[0], revision=h)
    watches.append(Watch(1, *prefix, 0, False, [s]))
    # One key with prev_kv.
    s, _ = _stream(server, rng, keys[0], b"", base + 1, final, True, base + 1)
    watches.append(Watch(2, keys[0], b"", base + 1, True, [s]))
    # Canceled as compacted on re-creation, then resumed at the compaction revision.
    c = server.compacted
    if c > base + 2:
        x = rng.randint(base + 1, c - 2)
        a, last = _stream(server, rng, *everything, base + 1, x, False, base + 1)
        cut = WatchResponse(server.times.get(c, 0.0), final, [], compact_revision=c, canceled=True)
        b = WatchStream(last + 1, [cut])
        d, _ = _stream(server, rng, *everything, c, final, False, c)
        watches.append(Watch(3, *everything, base + 1, False, [a, b, d]))
    return watches
