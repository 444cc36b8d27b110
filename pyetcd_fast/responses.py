"""The answers of ``Client`` and ``AsyncClient`` calls: small frozen objects over what the native client
returned (``KeyValue`` and ``ResponseHeader`` are built natively, once per answer).

Contract: field names are etcd's (``RangeResponse.kvs``, ``more``, ``count``; ``Status.db_size``, ...), with
keys and values as ``bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyetcd_fast._native import KeyValue, ResponseHeader

__all__ = ["DeleteResponse", "LeaseTimeToLive", "PutResponse", "RangeResponse", "Status"]


@dataclass(frozen=True)
class RangeResponse:
    """A Range's keys (``kvs``), whether more are past ``limit`` (``more``) and how many match (``count``)."""

    header: ResponseHeader
    kvs: list[KeyValue]
    more: bool
    count: int


@dataclass(frozen=True)
class PutResponse:
    """A Put's header, and the key before it when ``prev_kv`` was asked for."""

    header: ResponseHeader
    prev_kv: KeyValue | None


@dataclass(frozen=True)
class DeleteResponse:
    """How many keys a delete removed, and them when ``prev_kv`` was asked for."""

    header: ResponseHeader
    deleted: int
    prev_kvs: list[KeyValue]


@dataclass(frozen=True)
class LeaseTimeToLive:
    """A lease's granted TTL, what is left of it, and its keys when asked for."""

    header: ResponseHeader
    id: int
    ttl: int
    """Seconds left; -1 when the lease has expired or does not exist."""
    granted_ttl: int
    keys: list[bytes]


@dataclass(frozen=True)
class Status:
    """A member's status (etcd's StatusResponse)."""

    header: ResponseHeader
    version: str
    db_size: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    errors: list[str]
    db_size_in_use: int
    is_learner: bool
