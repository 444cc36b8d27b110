"""``Client``'s coordination and administration calls: Lock and Election (etcd's v3lock and v3election
services, run by the server), Cluster membership, Maintenance and Auth.

Contract: a lock or a candidacy is bound to a lease the client grants and keeps alive in the background for
as long as it is held, so a crashed holder lets go after ``ttl`` seconds; the *wait* for it is bounded
separately by ``timeout`` (``errors.Timeout``; the waiter's key is withdrawn by revoking its lease). Leaving
the ``with`` block unlocks (resigns) and revokes the lease. The rest are etcd's calls by their etcdctl names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from pyetcd_fast import _native
from pyetcd_fast._native import KeyValue, ResponseHeader
from pyetcd_fast.errors import EtcdError
from pyetcd_fast.lease import Lease, grant
from pyetcd_fast.txn import Data, end_of, to_bytes

__all__ = ["Admin", "Alarm", "Election", "HashKV", "Lock", "Member", "Permission"]

ALARMS = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}
PERMS = {"read": 0, "write": 1, "readwrite": 2}


@dataclass(frozen=True)
class Member:
    """A cluster member (etcd's Member): name and client URLs are empty until it has started."""

    id: int
    name: str
    peer_urls: list[str]
    client_urls: list[str]
    is_learner: bool


@dataclass(frozen=True)
class Alarm:
    """An alarm raised on a member: ``"NOSPACE"`` or ``"CORRUPT"``."""

    member_id: int
    alarm: str


@dataclass(frozen=True)
class HashKV:
    """A member's hash of its keys up to a revision, and the compaction revision it starts from."""

    header: ResponseHeader
    hash: int
    compact_revision: int


@dataclass(frozen=True)
class Permission:
    """One permission of a role: ``perm`` on ``[key, range_end)`` (``range_end`` empty: the key alone)."""

    perm: str
    key: bytes
    range_end: bytes


def _release(lease: Lease) -> None:
    with contextlib.suppress(EtcdError):  # gone already, or unreachable: it expires by itself
        lease.release()


def _kept_lease(native: _native.Client, ttl: int) -> Lease:
    return grant(native, ttl).keep_alive()


class Lock:
    """A held lock (``with client.lock("name"):``); ``key`` is its ownership key."""

    def __init__(self, lease: Lease, key: bytes) -> None:
        self.lease = lease
        self.key = key

    def release(self) -> None:
        """Unlocks and revokes the lock's lease."""
        try:
            self.lease._native.unlock(self.key)
        finally:
            _release(self.lease)

    def __enter__(self) -> Lock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class Election:
    """A candidacy in election ``name`` (``client.election(name)``); ``campaign`` waits to lead."""

    def __init__(self, native: _native.Client, name: Data, ttl: int) -> None:
        self._native = native
        self.name = to_bytes(name)
        self.ttl = ttl
        self._leader: tuple[bytes, bytes, int, int] | None = None
        self._lease: Lease | None = None

    def campaign(self, value: Data, *, timeout: float | None = None) -> Election:
        """Waits (up to ``timeout`` seconds) until this candidate leads, proclaiming ``value``."""
        lease = _kept_lease(self._native, self.ttl)
        try:
            _, self._leader = self._native.campaign(self.name, lease.id, to_bytes(value), timeout)
        except BaseException:
            _release(lease)
            raise
        self._lease = lease
        return self

    def proclaim(self, value: Data) -> None:
        """Changes the value the leader announces (only while leading)."""
        if self._leader is None:
            raise RuntimeError("not leading: campaign first")
        self._native.proclaim(self._leader, to_bytes(value))

    def leader(self) -> KeyValue | None:
        """The current leader's key and value, or None when no one leads."""
        try:
            return self._native.election_leader(self.name)[1]
        except EtcdError as e:
            if "no leader" in str(e):
                return None
            raise

    def resign(self) -> None:
        """Gives up leadership (and the candidacy's lease)."""
        if self._leader is not None and self._lease is not None:
            try:
                self._native.resign(self._leader)
            finally:
                _release(self._lease)
                self._leader = self._lease = None

    def __enter__(self) -> Election:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.resign()


class Admin:
    """The calls above, mixed into ``Client`` (which provides ``_native``)."""

    _native: _native.Client

    # -- lock and election -------------------------------------------------------------------------------

    def lock(self, name: Data, *, ttl: int = 60, timeout: float | None = None) -> Lock:
        """Waits (up to ``timeout`` seconds) to hold lock ``name``; held until ``release`` or the end of a
        ``with`` block, or until the client dies and its lease (``ttl`` seconds) expires."""
        lease = _kept_lease(self._native, ttl)
        try:
            _, key = self._native.lock(to_bytes(name), lease.id, timeout)
        except BaseException:
            _release(lease)
            raise
        return Lock(lease, key)

    def election(self, name: Data, *, ttl: int = 60) -> Election:
        """A candidate in election ``name`` (``campaign`` to run)."""
        return Election(self._native, name, ttl)

    # -- cluster -----------------------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """The cluster's members."""
        return [Member(*m) for m in self._native.member_list()[1]]

    def add_member(self, peer_urls: Sequence[str], *, learner: bool = False) -> Member:
        """Adds a member (``learner``: a non-voting one) that is to start with these peer URLs."""
        return Member(*self._native.member_add(list(peer_urls), learner)[1])

    def remove_member(self, member_id: int) -> list[Member]:
        """Removes a member; the members left."""
        return [Member(*m) for m in self._native.member_remove(member_id)[1]]

    def update_member(self, member_id: int, peer_urls: Sequence[str]) -> list[Member]:
        """Changes a member's peer URLs."""
        return [Member(*m) for m in self._native.member_update(member_id, list(peer_urls))[1]]

    def promote_member(self, member_id: int) -> list[Member]:
        """Makes a learner a voting member."""
        return [Member(*m) for m in self._native.member_promote(member_id)[1]]

    # -- maintenance -------------------------------------------------------------------------------------

    def alarms(self) -> list[Alarm]:
        """The alarms raised in the cluster."""
        return [Alarm(m, ALARMS.get(a, str(a))) for m, a in self._native.alarm(0, 0, 0)[1]]

    def disarm(self, alarm: Alarm | None = None) -> None:
        """Clears ``alarm`` (every alarm when None)."""
        for a in [alarm] if alarm is not None else self.alarms():
            code = next(k for k, v in ALARMS.items() if v == a.alarm)
            self._native.alarm(2, a.member_id, code)

    def defragment(self, *, timeout: float | None = None) -> ResponseHeader:
        """Defragments the connected member's backend."""
        return self._native.defragment(timeout)

    def hash_kv(self, revision: int = 0) -> HashKV:
        """The connected member's hash of its keys up to ``revision`` (0: the latest)."""
        return HashKV(*self._native.hash_kv(revision))

    def move_leader(self, target_id: int) -> ResponseHeader:
        """Hands leadership to ``target_id`` (call it on the leader)."""
        return self._native.move_leader(target_id)

    def snapshot(self, path: str) -> int:
        """Streams the connected member's backend to ``path`` (complete or absent); the bytes written."""
        return self._native.snapshot(path)

    # -- auth --------------------------------------------------------------------------------------------

    def _auth(self, call: str, *args: Data) -> Any:
        return self._native.auth(call, [to_bytes(a) for a in args])

    def auth_enable(self) -> None:
        """Turns auth on (a ``root`` user must exist)."""
        self._auth("enable")

    def auth_disable(self) -> None:
        self._auth("disable")

    def user_add(self, name: str, password: str) -> None:
        self._auth("user_add", name, password)

    def user_delete(self, name: str) -> None:
        self._auth("user_delete", name)

    def user_change_password(self, name: str, password: str) -> None:
        self._auth("user_change_password", name, password)

    def user_grant_role(self, user: str, role: str) -> None:
        self._auth("user_grant_role", user, role)

    def user_revoke_role(self, user: str, role: str) -> None:
        self._auth("user_revoke_role", user, role)

    def user_roles(self, name: str) -> list[str]:
        """The roles of user ``name``."""
        return list(self._auth("user_get", name))

    def users(self) -> list[str]:
        return list(self._auth("user_list"))

    def role_add(self, name: str) -> None:
        self._auth("role_add", name)

    def role_delete(self, name: str) -> None:
        self._auth("role_delete", name)

    def role_permissions(self, name: str) -> list[Permission]:
        """The permissions of role ``name``."""
        perms = self._auth("role_get", name)
        names = {v: k for k, v in PERMS.items()}
        return [Permission(names[t], k, e) for t, k, e in perms]

    def roles(self) -> list[str]:
        return list(self._auth("role_list"))

    def role_grant_permission(
        self,
        role: str,
        key: Data,
        range_end: Data | None = None,
        *,
        prefix: bool = False,
        perm: Literal["read", "write", "readwrite"] = "readwrite",
    ) -> None:
        """Lets ``role`` ``perm`` the key (or ``[key, range_end)``, or every key under it with ``prefix``)."""
        k = to_bytes(key)
        self._auth("role_grant_permission", role, str(PERMS[perm]), k, end_of(k, range_end, prefix))

    def role_revoke_permission(
        self, role: str, key: Data, range_end: Data | None = None, *, prefix: bool = False
    ) -> None:
        k = to_bytes(key)
        self._auth("role_revoke_permission", role, k, end_of(k, range_end, prefix))
