"""The recorder's kept leases: granted at the start, kept alive through every fault, watched expire at the end.

Contract of ``KeptLeases(traffic, count, ttl)`` (``traffic.Traffic`` owns one):
- ``start(new_caller)`` grants ``count`` leases of ``ttl`` s, each with one key put on it (``prefix +
  b"kept%d"``, written by nothing else), on callers made by ``new_caller(i)``, and spawns one keeper thread
  each (``traffic._spawn``): a LeaseKeepAlive every TTL/4 s, at once again (after ``RETRY_AFTER``) after a
  failure; once the traffic stops, one more renewal, retried until it succeeds (at most ``FINAL_RENEW_FOR`` s,
  or the traffic's drain timeout): a renewal overrides a leader change's extension. They are never revoked.
  Every attempt is recorded by the caller as a ``KeepAlive``.
- ``await_expiry()`` (after the keepers stopped) starts one thread per lease that polls LeaseTimeToLive and a
  linearizable Range of its key every ``POLL_EVERY`` s until both are gone, for at most TTL +
  ``leases.EXPIRY_SLACK`` + 1 s after its last keep-alive returned; returns the threads to join.
- ``leases()`` are the ``KeptLease`` records for the History.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from robustness.history import KeptLease, LeaseGrant, LeaseGrantResponse, Put, PutResponse, Range, RangeResponse
from robustness.leases import EXPIRY_SLACK, lease_not_found

if TYPE_CHECKING:
    from robustness.traffic import Traffic, _Caller

RETRY_AFTER = 0.1  # seconds before a kept lease's next keep-alive after a failed one
POLL_EVERY = 0.1  # seconds between looks at a kept lease once its keep-alives stopped
FINAL_RENEW_FOR = 5.0  # seconds a kept lease's last renewal may be retried when the traffic stops
GRANT_FOR = 10.0  # seconds to get each lease granted with its key on it


class KeptLeases:
    def __init__(self, traffic: Traffic, count: int, ttl: int) -> None:
        self.traffic, self.count, self.ttl = traffic, count, ttl
        self.kept: list[tuple[KeptLease, int, _Caller]] = []  # (lease, granted TTL, its caller)

    def leases(self) -> list[KeptLease]:
        return [k for k, _, _ in self.kept]

    def start(self, new_caller: Callable[[int], _Caller]) -> None:
        for i in range(self.count):
            caller = new_caller(i)
            kept, ttl = self._grant(caller, self.traffic.prefix + b"kept%d" % i)
            self.kept.append((kept, ttl, caller))
            self.traffic._spawn(lambda lease=kept.id, c=caller: self._keep(lease, c), f"keeper-{i}")

    def _grant(self, caller: _Caller, key: bytes) -> tuple[KeptLease, int]:
        """Grants a lease and puts ``key`` on it. A put of unknown outcome is retried with the same lease (so the
        key never ends up on another one); a lease is granted again only after a put certainly failed."""
        deadline = time.monotonic() + GRANT_FOR
        granted = None
        n = 0
        while time.monotonic() < deadline:
            if not isinstance(granted, LeaseGrantResponse):
                granted = caller.call(LeaseGrant(self.ttl, 0))
            if isinstance(granted, LeaseGrantResponse):
                n += 1
                if isinstance(caller.call(Put(key, b"%d-%d" % (caller.client, n), lease=granted.id)), PutResponse):
                    return KeptLease(granted.id, key), granted.ttl
                if caller.last_error is not None and caller.last_error.startswith("definite:"):
                    granted = None
            time.sleep(0.1)
        raise TimeoutError(f"no kept lease with {key!r} on it within {GRANT_FOR}s: {caller.last_error}")

    def _keep(self, lease: int, caller: _Caller) -> None:
        every = self.ttl / 4
        while True:
            ka = caller.keep_alive(lease)
            if self.traffic._stopping.wait(every if ka.error is None else RETRY_AFTER):
                break
        # A last renewal that succeeds, on the leader of the healed cluster: a renewal sets the expiry to now +
        # TTL, so a leader change late in the run (whose promotion extends every lease at a moment nobody
        # records) cannot move the expiry past what ``leases`` rule 2 computes from the keep-alives.
        deadline = time.monotonic() + min(FINAL_RENEW_FOR, self.traffic.drain_timeout)
        while caller.keep_alive(lease).error is not None and time.monotonic() < deadline:
            time.sleep(RETRY_AFTER)

    def await_expiry(self) -> list[threading.Thread]:
        return [self._await(*k) for k in self.kept]

    def _await(self, kept: KeptLease, ttl: int, caller: _Caller) -> threading.Thread:
        """Starts polling ``kept`` until it and its key are gone, or for at most TTL + EXPIRY_SLACK + 1 s after
        its last keep-alive returned (``leases`` rule 2 needs a look past that bound to call it outlived)."""
        last = self.traffic.last_keep_alive(kept.id)
        deadline = last + max(ttl, self.ttl) + EXPIRY_SLACK + 1.0

        def poll() -> None:
            lease_gone = key_gone = False
            try:
                while not (lease_gone and key_gone) and time.monotonic() < deadline:
                    lease_gone = lease_gone or lease_not_found(caller.time_to_live(kept.id))
                    if not key_gone:
                        got = caller.call(Range(kept.key))
                        key_gone = isinstance(got, RangeResponse) and all(kv.lease != kept.id for kv in got.kvs)
                    time.sleep(POLL_EVERY)
            finally:
                caller.close()

        th = threading.Thread(target=self.traffic._guard(poll), name=f"expiry-{kept.id:x}", daemon=True)
        th.start()
        return th
