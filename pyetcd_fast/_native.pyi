"""Type stubs for the compiled module ``pyetcd_fast._native`` (native/py)."""

import os
from collections.abc import Callable
from typing import Any, TypedDict, final

__version__: str

class ServerConfig(TypedDict):
    name: str
    wal_dir: str
    backend_dir: str
    member_id: int
    cluster_id: int
    # (id, name, peer URLs) of the members known at start; with new_cluster they become the log's first
    # entries (a new cluster), otherwise only the transport's first peers (joining a running cluster).
    initial_members: list[tuple[int, str, list[str]]]
    new_cluster: bool
    heartbeat_ms: int
    election_ms: int
    max_request_bytes: int
    max_txn_ops: int
    snapshot_count: int
    snapshot_catchup_entries: int
    pre_vote: bool
    wal_fsync: bool
    watch_progress_notify_ms: int
    quota_bytes: int
    backend_batch_interval_ms: int
    backend_batch_limit: int
    client_urls: list[str]
    enable_v2: bool
    auth_token: str
    auth_token_ttl: int
    bcrypt_cost: int
    max_concurrent_streams: int

class Status(TypedDict):
    member_id: int
    cluster_id: int
    term: int
    leader: int
    applied_index: int
    committed_index: int
    revision: int
    compact_revision: int
    db_size: int
    db_size_in_use: int
    is_learner: bool

@final
class Server:
    """One member: raft node, WAL, MVCC store and, once served, the client edge.

    Opening replays the WAL after the backend's consistent index; the ids stored in an existing WAL win over
    the ones in ``cfg``. Raises OSError when the data cannot be opened.
    """

    def __new__(cls, cfg: ServerConfig) -> Server: ...
    def notify_fd(self) -> int:
        """An eventfd that becomes readable when requests wait for ``process_ready``."""
    def process_ready(self) -> int:
        """One batch of the Ready loop (propose, persist, apply, advance); returns entries applied.

        Releases the GIL. Raises OSError on a storage failure, after which the member must stop.
        """
    def compact(self, rev: int) -> None:
        """Proposes a compaction to ``rev`` through raft without waiting for it (the auto-compactor)."""
    def tick(self) -> None:
        """One raft tick; call every heartbeat interval. Raises OSError when the backend commit it may run
        fails, after which the member must stop (``fail``)."""
    def fail(self) -> None:
        """Fail-stop after a fatal error: fails every pending request and stops acknowledging, proposing,
        sending and writing, without the sync ``stop`` does; the restart recovers from the WAL."""
    def serve_peers(self, listen: list[tuple[str, bool]], tls: dict[str, object] | None = None) -> list[str]:
        """Starts the peer transport on each ``(host:port, TLS)`` with the peer TLS flags ``tls`` (``TlsInfo``'s
        field names); returns the bound addresses. Raises OSError."""
    def transfer_leadership(self) -> int | None:
        """Starts handing leadership to the most caught-up voter; returns its id, or None if not leading."""
    @property
    def removed(self) -> bool:
        """Whether the member was removed from the cluster (its driver then stops it)."""
    @property
    def published(self) -> bool:
        """Whether this member's name and client URLs went through raft (it then serves clients)."""
    def members(self) -> list[tuple[int, str, list[str], list[str], bool]]:
        """The membership as applied: (id, name, peer URLs, client URLs, is learner) per member."""
    def serve(
        self, listen: list[tuple[str, bool]], worker_threads: int, tls: dict[str, object] | None = None
    ) -> list[str]:
        """Serves gRPC and HTTP on each ``(host:port, TLS)`` with the client TLS flags ``tls``; returns the bound
        addresses. Raises OSError."""
    def stop(self) -> None:
        """Stops the edge, fails pending requests and syncs the member's files."""
    @property
    def member_id(self) -> int: ...
    @property
    def cluster_id(self) -> int: ...
    def status(self) -> Status: ...

def set_log_level(level: int) -> None:
    """0 debug, 1 info, 2 warn, 3 error: native log lines below it are dropped."""

def install_fail_stop() -> None:
    """Every native panic, on any thread, ends the process at once with status 2 after a zap "panic" line."""

def set_failpoint(name: str, term: str) -> bool:
    """Arms failpoint ``name`` with ``term`` (``panic``, ``exit``, ``sleep(ms)``, ``panic@N``: from the Nth
    hit); an empty term disarms it. False if the term does not parse."""

# Micro-benchmark drivers (etcd_core::micro), for bench/micro only.
@final
class MicroWal:
    """A new WAL in ``dir``; ``save`` appends one batch of ``entry_size``-byte entries and syncs it."""
    def __new__(cls, dir: str, entry_size: int, fsync: bool = True) -> MicroWal: ...
    def save(self, batch: int) -> int:
        """Appends ``batch`` entries and fdatasyncs them; returns the last index. Raises OSError."""

@final
class MicroIndex:
    """A revision index of ``keys`` keys of ``key_size`` digits, each put once."""
    def __new__(cls, keys: int, key_size: int) -> MicroIndex: ...
    def put(self, count: int) -> None:
        """Puts the next ``count`` keys (round robin) at new revisions."""
    def range(self, start: int, span: int, limit: int) -> int:
        """Collects the revisions of keys ``start..start+span`` (first ``limit``; 0 all); returns the count."""

@final
class MicroRange:
    """A store in ``dir`` whose backend holds ``keys`` committed keys with ``value_size``-byte values."""
    def __new__(cls, dir: str, keys: int, value_size: int) -> MicroRange: ...
    def range(self, start: int, count: int) -> int:
        """A serializable Range of the ``count`` keys from key ``start``; returns how many came back."""

@final
class MicroWatch:
    """``watchers`` synced watchers over ``streams`` streams, on distinct keys or all on one prefix."""
    def __new__(cls, dir: str, watchers: int, streams: int, prefix: bool = False) -> MicroWatch: ...
    def notify(self, events: int) -> int:
        """Matches ``events`` revisions against the watchers and drains the streams; returns responses."""

def self_cert(dir: str | os.PathLike[str], hosts: list[str], validity_days: int) -> tuple[str, str]:
    """``--auto-tls``: ``cert.pem`` and ``key.pem`` in ``dir`` for ``hosts`` (made once, then reused)."""

def check_tls(tls: dict[str, object], server: bool) -> None:
    """Loads TLS flags as a listener (``server``) or a dialer would; raises OSError with etcd's message."""

# -- the client (native/py/src/client.rs) -------------------------------------------------------------------

class EtcdError(Exception): ...
class ConnectionFailed(EtcdError): ...
class Timeout(EtcdError): ...
class Unavailable(EtcdError): ...
class NoLeader(Unavailable): ...
class Compacted(EtcdError): ...
class FutureRevision(EtcdError): ...
class LeaseNotFound(EtcdError): ...
class PermissionDenied(EtcdError): ...
class AuthFailed(EtcdError): ...
class InvalidAuthToken(EtcdError): ...
class RequestTooLarge(EtcdError): ...

@final
class KeyValue:
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def create_revision(self) -> int: ...
    @property
    def mod_revision(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def lease(self) -> int: ...

@final
class ResponseHeader:
    @property
    def cluster_id(self) -> int: ...
    @property
    def member_id(self) -> int: ...
    @property
    def revision(self) -> int: ...
    @property
    def raft_term(self) -> int: ...

@final
class Client:
    def __new__(
        cls,
        endpoints: list[str],
        timeout: float,
        dial_timeout: float,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        user: tuple[str, str] | None = None,
        completions: Completions | None = None,
    ) -> Client: ...
    @property
    def endpoints(self) -> list[str]: ...
    def range(
        self,
        key: bytes,
        range_end: bytes,
        limit: int,
        revision: int,
        sort_order: int,
        sort_target: int,
        serializable: bool,
        keys_only: bool,
        count_only: bool,
        timeout: float | None = None,
        token: int | None = None,
    ) -> tuple[ResponseHeader, list[KeyValue], bool, int]: ...
    def put(
        self,
        key: bytes,
        value: bytes,
        lease: int,
        prev_kv: bool,
        ignore_value: bool,
        ignore_lease: bool,
        timeout: float | None = None,
        token: int | None = None,
    ) -> tuple[ResponseHeader, KeyValue | None]: ...
    def delete_range(
        self, key: bytes, range_end: bytes, prev_kv: bool, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, int, list[KeyValue]]: ...
    def compact(
        self, revision: int, physical: bool, timeout: float | None = None, token: int | None = None
    ) -> ResponseHeader: ...
    def lease_grant(
        self, ttl: int, id: int, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, int, int]: ...
    def lease_revoke(self, id: int, timeout: float | None = None, token: int | None = None) -> ResponseHeader: ...
    def lease_time_to_live(
        self, id: int, keys: bool, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, int, int, int, list[bytes]]: ...
    def lease_leases(
        self, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, list[int]]: ...
    def status(
        self, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, str, int, int, int, int, int, list[str], int, bool]: ...
    def txn(
        self,
        compares: list[tuple[int, int, bytes, bytes, bytes, int]],
        success: list[tuple[object, ...]],
        failure: list[tuple[object, ...]],
        timeout: float | None = None,
        token: int | None = None,
    ) -> tuple[ResponseHeader, bool, list[tuple[object, ...]]]: ...
    def lock(
        self, name: bytes, lease: int, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, bytes]: ...
    def unlock(self, key: bytes, timeout: float | None = None, token: int | None = None) -> ResponseHeader: ...
    def campaign(
        self, name: bytes, lease: int, value: bytes, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, tuple[bytes, bytes, int, int]]: ...
    def proclaim(
        self,
        leader: tuple[bytes, bytes, int, int],
        value: bytes,
        timeout: float | None = None,
        token: int | None = None,
    ) -> ResponseHeader: ...
    def resign(
        self, leader: tuple[bytes, bytes, int, int], timeout: float | None = None, token: int | None = None
    ) -> ResponseHeader: ...
    def election_leader(
        self, name: bytes, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, KeyValue | None]: ...
    def member_list(
        self, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, list[tuple[int, str, list[str], list[str], bool]]]: ...
    def member_add(
        self, peer_urls: list[str], is_learner: bool, timeout: float | None = None, token: int | None = None
    ) -> tuple[
        ResponseHeader,
        tuple[int, str, list[str], list[str], bool],
        list[tuple[int, str, list[str], list[str], bool]],
    ]: ...
    def member_remove(
        self, id: int, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, list[tuple[int, str, list[str], list[str], bool]]]: ...
    def member_update(
        self, id: int, peer_urls: list[str], timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, list[tuple[int, str, list[str], list[str], bool]]]: ...
    def member_promote(
        self, id: int, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, list[tuple[int, str, list[str], list[str], bool]]]: ...
    def alarm(
        self, action: int, member_id: int, alarm: int, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, list[tuple[int, int]]]: ...
    def defragment(self, timeout: float | None = None, token: int | None = None) -> ResponseHeader: ...
    def hash_kv(
        self, revision: int, timeout: float | None = None, token: int | None = None
    ) -> tuple[ResponseHeader, int, int]: ...
    def move_leader(self, target_id: int, timeout: float | None = None, token: int | None = None) -> ResponseHeader: ...
    def snapshot(self, path: str, token: int | None = None) -> int: ...
    def auth(self, call: str, args: list[bytes], timeout: float | None = None, token: int | None = None) -> Any: ...
    def lease_keep_alive_once(self, id: int, token: int | None = None) -> int: ...
    def lease_keep_alive(self, id: int, ttl: int, on_lost: Callable[[], object] | None = None) -> KeepAlive: ...
    def watch(
        self,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        prev_kv: bool,
        filters: list[int],
        progress_notify: bool,
    ) -> Watch: ...

@final
class Event:
    @property
    def type(self) -> str: ...
    @property
    def kv(self) -> KeyValue: ...
    @property
    def prev_kv(self) -> KeyValue | None: ...

@final
class Watch:
    def next_batch(self, timeout: float | None = None) -> tuple[int, list[Event]] | None: ...
    def next_batch_async(self, token: int) -> None: ...
    def __iter__(self) -> Watch: ...
    def __next__(self) -> Event: ...
    def cancel(self) -> None: ...
    def request_progress(self) -> None: ...
    @property
    def next_revision(self) -> int: ...

@final
class KeepAlive:
    @property
    def id(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def lost(self) -> bool: ...
    def wait_lost(self, timeout: float | None = None) -> bool: ...
    def stop(self) -> None: ...

@final
class Completions:
    def __new__(cls) -> Completions: ...
    def fileno(self) -> int: ...
    def drain(self) -> list[tuple[int, bool, Any]]: ...
