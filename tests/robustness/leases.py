"""The lease checker: a lease kept alive is not revoked, and a kept lease's key does not outlive it.

Contract of ``check_leases(history) -> Result`` (``validate`` prefixes its violations with "lease: "):
- Times are the recorder's ``time.monotonic()``; the members run on the same machine, so their lessors count
  on the same clock.
- A *proof of life* of lease L is its answered LeaseGrant or a ``KeepAlive`` of L answered with TTL > 0. It
  promises that L lives at least until ``call + ttl``: the lessor sets expiry = now + TTL when it handles the
  request, which is after the call, and a leader change only extends leases (etcd's lessor Promote).
- L is *found gone* by a ``KeepAlive`` answered with TTL <= 0, a ``LeaseCheck`` saying not found, or, for a kept
  lease, a linearizable Range that no longer finds its key on L after the put of the key on L was answered
  (nothing else writes that key). L is *seen alive* by a ``LeaseCheck`` that found it, or a Range that finds
  a kept lease's key still on it.

Rules:
1. A kept-alive lease is not revoked (etcd-io/etcd#12528): for each observation O that found L gone, take the
   proof P of L that returned before O was called and promised the most; a violation when
   ``O.ret < P.call + P.ttl - SLACK``, unless a LeaseRevoke of L (answered or of unknown outcome) was sent
   before O returned. This applies to every lease with keep-alives or checks, the lease cycles' too.
2. A kept lease and its key do not outlive it (``KeptLease`` only: there every keep-alive is recorded and none
   is sent after the traffic stops). R is the latest return of its grant or of any keep-alive attempt, failed
   or not (any may have refreshed it), and TTL the longest the server stated for it. An observation that saw
   L or its key alive and was called after ``R + TTL + EXPIRY_SLACK`` is a violation. A kept lease never
   found gone at the end is a warning: the recorder could not look (the cluster was down), nothing more.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from dataclasses import dataclass

from robustness.describe import short
from robustness.history import (
    History,
    KeepAlive,
    KeptLease,
    LeaseCheck,
    LeaseGrantResponse,
    LeaseRevoke,
    Operation,
    Put,
    Range,
    RangeResponse,
    Result,
)

# Rule 1 is exact on paper (the refresh happens after P.call, the observation before O.ret, on one clock). The
# slack absorbs a lessor that dates a renewal from a clock read taken a little before the request reached it
# (the start of a batch) or rounds what it keeps. It is small against the 3 s TTL and the 0.75 s keep-alive
# period, so a lease revoked despite its keep-alives is still found gone more than a second early.
SLACK = 0.3
# Rule 2: after the expiry a lessor notices it on its next check (etcd looks every 500 ms, our server on every
# 100 ms raft tick), proposes the revoke through raft and applies it (an fsync on a loaded machine), and the
# poller looks again within POLL_EVERY (0.1 s). 2 s covers all of that several times over and still catches a
# lease that was never revoked or revoked on a later, unrelated trigger. A leader change extends every lease
# (etcd promotes them with TTL + an election timeout) at a moment the history does not show: the recorder's
# keepers therefore end with a renewal that succeeded on the healed cluster's leader, which sets the expiry
# to that moment + TTL; rule 2 holds only if no leader changes after it (the run is over by then).
EXPIRY_SLACK = 2.0


def lease_not_found(check: LeaseCheck) -> bool:
    """etcd answers LeaseTimeToLive for an unknown lease with TTL -1 and granted TTL 0 (an error NOT_FOUND is
    accepted too). An expired lease not yet revoked still has its granted TTL, whatever the remaining one."""
    if check.error is not None:
        return "NOT_FOUND" in check.error
    return check.ttl is not None and check.ttl <= 0 and check.granted_ttl == 0


@dataclass(frozen=True)
class _Seen:
    call: float
    ret: float
    alive: bool
    what: str
    of_key: bool = False  # a read of a kept lease's key, not a look at the lease itself


@dataclass(frozen=True)
class _Proof:
    call: float
    ret: float
    ttl: int
    what: str

    @property
    def until(self) -> float:
        return self.call + self.ttl


class _Lease:
    """What the history says about one lease."""

    def __init__(self, lease: int) -> None:
        self.id = lease
        self.grants: list[_Proof] = []
        self.proofs: list[_Proof] = []  # the grants and the keep-alives answered with TTL > 0
        self.seen: list[_Seen] = []
        self.attempts: list[KeepAlive] = []
        self.revoked_at: float | None = None  # the earliest call of a LeaseRevoke that may have taken effect


def _gather(history: History) -> dict[int, _Lease]:
    leases: dict[int, _Lease] = {}

    def lease(i: int) -> _Lease:
        return leases.setdefault(i, _Lease(i))

    for op in history.operations:
        resp = op.response
        if isinstance(resp, LeaseGrantResponse) and op.error is None and op.ret is not None:
            grant = _Proof(op.call, op.ret, resp.ttl, f"its grant at {op.call:.3f}")
            lease(resp.id).grants.append(grant)
            lease(resp.id).proofs.append(grant)
        elif isinstance(op.request, LeaseRevoke) and not (op.error or "").startswith("definite:"):
            ls = lease(op.request.id)
            ls.revoked_at = op.call if ls.revoked_at is None else min(ls.revoked_at, op.call)
    for ka in history.keep_alives:
        ls = lease(ka.lease)
        ls.attempts.append(ka)
        if ka.ttl is not None and ka.ttl > 0:
            ls.proofs.append(_Proof(ka.call, ka.ret, ka.ttl, f"a keep-alive at {ka.call:.3f}"))
        elif ka.ttl is not None:
            ls.seen.append(_Seen(ka.call, ka.ret, False, f"a keep-alive answered TTL {ka.ttl} at {ka.ret:.3f}"))
    for check in history.lease_checks:
        if lease_not_found(check):
            lease(check.lease).seen.append(_Seen(check.call, check.ret, False, _describe_check(check)))
        elif check.error is None:
            lease(check.lease).seen.append(_Seen(check.call, check.ret, True, _describe_check(check)))
    for kept in history.kept_leases:
        lease(kept.id).seen.extend(_key_reads(history.operations, kept))
    return leases


def _describe_check(check: LeaseCheck) -> str:
    return f"LeaseTimeToLive called at {check.call:.3f} (TTL {check.ttl}, granted {check.granted_ttl})"


def _key_reads(operations: Iterable[Operation], kept: KeptLease) -> list[_Seen]:
    """The linearizable reads of a kept lease's key, from the first answered put of it on the lease."""
    put_ret: float | None = None
    seen: list[_Seen] = []
    for op in sorted(operations, key=lambda o: o.call):
        req, resp = op.request, op.response
        if op.error is not None or op.ret is None:
            continue
        if isinstance(req, Put) and req.key == kept.key and req.lease == kept.id:
            put_ret = op.ret if put_ret is None else min(put_ret, op.ret)
        elif put_ret is not None and op.call > put_ret and isinstance(resp, RangeResponse) and _reads_key(req, kept):
            leases = {kv.lease for kv in resp.kvs if kv.key == kept.key}
            if leases and kept.id not in leases:
                continue  # on another lease: says nothing about this one (the traffic never does that)
            what = f"a read of its key {short(kept.key)} called at {op.call:.3f} (revision {resp.revision})"
            seen.append(_Seen(op.call, op.ret, bool(leases), what, of_key=True))
    return seen


def _reads_key(req: object, kept: KeptLease) -> bool:
    return (
        isinstance(req, Range)
        and req.key == kept.key
        and req.range_end == b""
        and not req.serializable
        and req.revision == 0
        and not req.count_only
    )


def _check_revoked_while_kept(ls: _Lease) -> list[str]:
    """Rule 1: each observation that found the lease gone against the best proof that returned before it."""
    proofs = sorted(ls.proofs, key=lambda p: p.ret)
    rets = [p.ret for p in proofs]
    best: list[_Proof] = []
    for p in proofs:
        best.append(p if not best or p.until > best[-1].until else best[-1])
    early: list[tuple[_Seen, _Proof]] = []
    for o in sorted((o for o in ls.seen if not o.alive), key=lambda o: o.ret):
        if ls.revoked_at is not None and ls.revoked_at < o.ret:
            break
        i = bisect.bisect_right(rets, o.call)
        if i and o.ret < best[i - 1].until - SLACK:
            early.append((o, best[i - 1]))
    if not early:
        return []
    o, p = early[0]
    more = f" ({len(early) - 1} more such observations)" if len(early) > 1 else ""
    return [
        f"lease {ls.id:x} revoked while kept alive: {o.what} found it gone, {p.until - o.ret:.2f}s before "
        f"{p.what} (TTL {p.ttl}) promised it would live until {p.until:.3f}{more}"
    ]


def _check_outlived(ls: _Lease, kept: KeptLease, warnings: list[str]) -> list[str]:
    """Rule 2: nothing sees a kept lease or its key alive past its last possible refresh + TTL + EXPIRY_SLACK."""
    if not ls.grants:
        warnings.append(f"kept lease {ls.id:x} has no answered grant: not checked for outliving")
        return []
    refreshed = max([g.ret for g in ls.grants] + [ka.ret for ka in ls.attempts])
    ttl = max(p.ttl for p in ls.proofs)
    expiry = refreshed + ttl
    if not any(not o.alive and o.call > refreshed for o in ls.seen):
        warnings.append(f"kept lease {ls.id:x} (key {short(kept.key)}) was never seen gone after its keep-alives")
    out = []
    for of_key, who in ((False, f"lease {ls.id:x}"), (True, f"key {short(kept.key)} of lease {ls.id:x}")):
        late = sorted(
            (o for o in ls.seen if o.of_key == of_key and o.alive and o.call > expiry + EXPIRY_SLACK),
            key=lambda o: o.call,
        )
        if late:
            out.append(
                f"{who} outlived the lease's TTL: {late[0].what} still found it, {late[0].call - expiry:.2f}s after "
                f"the lease expired at the latest ({refreshed:.3f}, the last return of its grant or a keep-alive, "
                f"+ TTL {ttl}; slack {EXPIRY_SLACK}s; {len(late)} such observations)"
            )
    return out


def check_leases(history: History) -> Result:
    started = time.perf_counter()
    leases = _gather(history)
    violations: list[str] = []
    warnings: list[str] = []
    watched = {ka.lease for ka in history.keep_alives} | {c.lease for c in history.lease_checks}
    for kept in history.kept_leases:
        watched.add(kept.id)
    for lease_id in sorted(watched):
        violations += _check_revoked_while_kept(leases[lease_id])
    for kept in history.kept_leases:
        violations += _check_outlived(leases[kept.id], kept, warnings)
    return Result(
        ok=not violations,
        violations=violations,
        warnings=warnings,
        operations_checked=len(history.keep_alives) + len(history.lease_checks),
        duration_s=time.perf_counter() - started,
    )


__all__ = ["check_leases", "lease_not_found", "SLACK", "EXPIRY_SLACK"]
