"""``Lease``: a granted lease, and keeping it alive in the background.

Contract: ``client.lease(ttl)`` grants a lease and keeps it alive until the ``with`` block ends, then revokes
it (its keys go with it). The keep-alive runs natively on the client's runtime (one task, no thread), sends a
keep-alive every third of the TTL, rides out failovers and leader changes, and declares the lease *lost* only
when the server says it is gone or the lease's expiry passed without an answer: then ``lost`` is true,
``wait_lost`` returns and ``on_lost`` (if given) is called once, from a native thread.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from pyetcd_fast import _native
from pyetcd_fast.errors import LeaseNotFound
from pyetcd_fast.responses import LeaseTimeToLive

__all__ = ["Lease", "grant", "lease_id"]


class Lease:
    """A granted lease: attach it to keys with ``put(..., lease=lease)``."""

    def __init__(self, id: int, ttl: int, native: _native.Client) -> None:
        self.id = id
        """The lease's id."""
        self.ttl = ttl
        """The TTL granted, in seconds."""
        self._native = native
        self._keep: _native.KeepAlive | None = None

    def __repr__(self) -> str:
        return f"Lease(id={self.id:#x}, ttl={self.ttl}, kept_alive={self._keep is not None})"

    def keep_alive(self, on_lost: Callable[[], object] | None = None) -> Lease:
        """Starts keeping the lease alive in the background (until ``stop`` or ``revoke``)."""
        if self._keep is None:
            self._keep = self._native.lease_keep_alive(self.id, self.ttl, on_lost)
        return self

    def keep_alive_once(self) -> int:
        """One keep-alive now: the TTL the server granted (0: the lease is gone)."""
        ttl: int = self._native.lease_keep_alive_once(self.id)
        return ttl

    @property
    def lost(self) -> bool:
        """Whether the background keep-alive found the lease gone."""
        return self._keep is not None and self._keep.lost

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Waits (GIL released) until the lease is lost (True) or ``timeout`` passes (False)."""
        if self._keep is None:
            raise RuntimeError("the lease is not being kept alive")
        return self._keep.wait_lost(timeout)

    def stop(self) -> None:
        """Stops the background keep-alive; the lease then expires after its TTL."""
        if self._keep is not None:
            self._keep.stop()
            self._keep = None

    def revoke(self) -> None:
        """Ends the lease now, deleting its keys."""
        self.stop()
        self._native.lease_revoke(self.id)

    def time_to_live(self, keys: bool = False) -> LeaseTimeToLive:
        """The lease's granted TTL and what is left of it (and its keys)."""
        return LeaseTimeToLive(*self._native.lease_time_to_live(self.id, keys))

    def release(self) -> None:
        """Stops the keep-alive and revokes the lease, if it still exists."""
        self.stop()
        try:
            self._native.lease_revoke(self.id)
        except LeaseNotFound:
            pass

    def __enter__(self) -> Lease:
        return self.keep_alive()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def grant(native: _native.Client, ttl: int, id: int = 0, timeout: float | None = None) -> Lease:
    """A new lease of ``ttl`` seconds granted through ``native`` (``id`` 0: the server picks one)."""
    _, granted_id, granted = native.lease_grant(ttl, id, timeout)
    return Lease(granted_id, granted, native)


def lease_id(lease: Lease | int) -> int:
    """The id of ``lease`` (a ``Lease`` or an id)."""
    return lease.id if isinstance(lease, Lease) else lease
