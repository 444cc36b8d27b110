"""Traffic for a robustness run: concurrent clients, compaction and watches against an etcd-compatible cluster,
recorded as a ``History`` for the checkers.

Contract of ``Traffic(endpoints, ...)``:
- ``start()`` reads the base (one linearizable Range of every key, retried for a few seconds on any endpoint):
  ``History.base_revision`` is its header revision, ``base_state`` its kvs. Then it starts the threads.
- ``clients`` client threads, client i on endpoints[i % n] through its own channel (it moves to the next
  endpoint after repeated UNAVAILABLE/DEADLINE_EXCEEDED errors), issue about ``rate`` requests/s in all on
  the keys ``prefix + b"key%d"`` (``keys`` of them), mixed by a seeded RNG: put (every value unique,
  ``b"<client>-<seq>"``), linearizable get, serializable get, a get of the whole prefix, delete, a
  compare-and-swap (a get, then a txn on the key's mod_revision), a lease cycle (grant, put with the lease,
  one or two keep-alives on one stream, revoke) and a txn of two puts. Every request carries a
  ``timeout`` deadline and etcd's ``hasleader`` metadata.
- Every request is one ``Operation``: ``call``/``ret`` are ``time.monotonic()`` around the RPC, the response
  is converted field for field (``convert``). A failed request has ``response=None`` and ``error`` =
  "<status code>: <details>"; errors that certainly mean "not applied" (INVALID_ARGUMENT, OUT_OF_RANGE,
  NOT_FOUND, FAILED_PRECONDITION, and UNAVAILABLE "failed to connect": never sent) start with "definite:".
  Others leave a write of unknown outcome.
- ``kept_leases`` leases of ``kept_ttl`` s are granted in ``start()``, each with one key put on it
  (``prefix + b"kept%d"``, written by nothing else, outside the clients' keys), and kept alive by a thread of
  their own: one LeaseKeepAlive every TTL/4 s, at once again after a failure, on the next endpoint after
  repeated UNAVAILABLE/DEADLINE_EXCEEDED, and renewed once more, until it succeeds, when the traffic
  stops (a renewal overrides a leader change's extension). They are never revoked. Every keep-alive
  attempt, of these and of the lease cycles, is a ``KeepAlive`` in the History (``call`` before the stream
  opens, ``ret`` at its answer).
- One compaction thread compacts (not physical) every uniform(*compact_every) s to the lowest revision
  every whole-keyspace watch has delivered minus ``compact_lag``, when that is above the last compaction,
  so compaction never overtakes the watches that build the write log. Compactions are recorded too.
- ``watchers_per_member`` whole-keyspace watches per endpoint (prev_kv, from base_revision + 1), each a
  logical ``Watch`` in its own thread that re-creates its stream after any error, end or cancel, from its
  last event + 1 (or its start; after a cancel for compaction, from the compact revision), on its own
  endpoint first and then on the others. They are asked for progress notifications now and then. Every
  few seconds a short-lived watch on one key or the prefix starts at a recently written revision, runs
  1-2 s and is closed. Every watch response is recorded (``convert.watch_response``).
- The kept leases are ``keeper.KeptLeases``'s.
- ``stop()`` stops the clients, the keep-alives and the compactor. Then, for all kept leases at once, it polls
  LeaseTimeToLive (a ``LeaseCheck``) and a linearizable Range of the lease's key (an ``Operation``) every
  ``keeper.POLL_EVERY`` s until both are gone, for at most TTL + ``leases.EXPIRY_SLACK`` + 1 s after its last
  keep-alive returned. Then it waits (at most ``drain_timeout`` s) until every whole-keyspace watch has
  delivered the highest revision any operation or watch observed (the kept keys' expiry included), closes
  every stream and returns the History (operations by call time). An exception in any of its threads is a
  bug of the recorder and is raised here, after cleanup.
- ``summary()`` counts operations per kind, errors by status code, unknown outcomes and watch traffic.
"""

from __future__ import annotations

import collections
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from robustness.convert import keep_alive, lease_check, request_pb, response, watch_response
from robustness.history import (
    Compact,
    Compare,
    Delete,
    History,
    KeepAlive,
    LeaseCheck,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseRevoke,
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Request,
    Response,
    Txn,
    Watch,
    WatchStream,
)
from robustness.keeper import KeptLeases
from robustness.leases import EXPIRY_SLACK
from robustness.model import classify, prefix_end

CHANNEL_OPTIONS = [
    # A restarted member must be reached again quickly: gRPC's default reconnect backoff grows to minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    # Detect a silently dead peer (a partition) on a long watch; etcd refuses pings closer than 5 s apart.
    ("grpc.keepalive_time_ms", 6000),
    ("grpc.keepalive_timeout_ms", 2000),
    # A watch catching up sends up to 1000 revisions in one response, like etcd.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
# What etcd's clientv3.WithRequireLeader sends: a member without a leader fails the call (or cancels the
# watch) instead of leaving it hanging.
LEADER_METADATA = (("hasleader", "true"),)
DEFINITE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,  # compacted or future revision
    grpc.StatusCode.NOT_FOUND,  # lease not found
    grpc.StatusCode.FAILED_PRECONDITION,
}
UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
FAILOVER_AFTER = 3  # consecutive UNREACHABLE errors before a client moves to another endpoint
BASE_READ_TIMEOUT = 10.0
DRAIN_TIMEOUT = 10.0
JOIN_TIMEOUT = 10.0
PROGRESS_EVERY = (0.3, 0.8)  # seconds between progress requests on the whole-keyspace watches
SHORT_WATCH_EVERY = (1.0, 3.0)
SHORT_WATCH_FOR = (1.0, 2.0)
KINDS = {"put": 24, "get": 14, "get_serializable": 8, "range": 8, "delete": 10, "cas": 12, "txn_multi": 4, "lease": 5}


# gRPC fails a call this way when it found no connection to send it on: the server never saw the request.
NEVER_SENT = "failed to connect to all addresses"


def error_text(e: grpc.RpcError) -> str:
    """The recorded error: "<code>: <details>", with "definite: " when the request certainly had no effect."""
    code, details = e.code(), e.details() or ""  # type: ignore[attr-defined]
    text = f"{code}: {details}"
    never_sent = code == grpc.StatusCode.UNAVAILABLE and details.startswith(NEVER_SENT)
    return f"definite: {text}" if code in DEFINITE or never_sent else text


def op_kind(op: Operation) -> str:
    """The traffic's name for an operation's request (``summary`` counts by it)."""
    req = op.request
    if isinstance(req, Put):
        return "lease_put" if req.lease else "put"
    if isinstance(req, Range):
        if req.serializable:
            return "get_serializable"
        return "range" if req.range_end else "get"
    if isinstance(req, Delete):
        return "delete"
    if isinstance(req, Txn):
        return "cas" if req.compares else "txn_multi"
    return {LeaseGrant: "lease_grant", LeaseRevoke: "lease_revoke", Compact: "compact"}[type(req)]


class _Conn:
    """One channel to one endpoint and its stubs."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.channel = grpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)

    def method(self, req: Request) -> Callable:
        if isinstance(req, Put):
            return self.kv.Put
        if isinstance(req, Range):
            return self.kv.Range
        if isinstance(req, Delete):
            return self.kv.DeleteRange
        if isinstance(req, Txn):
            return self.kv.Txn
        if isinstance(req, Compact):
            return self.kv.Compact
        if isinstance(req, LeaseGrant):
            return self.lease.LeaseGrant
        return self.lease.LeaseRevoke

    def close(self) -> None:
        self.channel.close()


class _Caller:
    """Issues requests on a connection that fails over, recording each as an Operation."""

    def __init__(self, traffic: Traffic, client: int, endpoint_index: int) -> None:
        self.traffic = traffic
        self.client = client
        self.index = endpoint_index % len(traffic.endpoints)
        self.conn = _Conn(traffic.endpoints[self.index])
        self.unreachable = 0
        self.last_error: str | None = None

    def call(self, req: Request) -> Response | None:
        t = self.traffic
        method = self.conn.method(req)
        started = time.monotonic()
        try:
            pb = method(request_pb(req), timeout=t.timeout, metadata=LEADER_METADATA)
        except grpc.RpcError as e:
            self.last_error = error_text(e)
            t._record(Operation(self.client, started, time.monotonic(), req, None, self.last_error))
            self._failed(e)
            return None
        ret = time.monotonic()
        resp = response(req, pb)
        t._record(Operation(self.client, started, ret, req, resp))
        self.unreachable, self.last_error = 0, None
        return resp

    def keep_alive(self, lease: int, times: int = 1) -> KeepAlive:
        """``times`` LeaseKeepAlive requests sent at once on a stream of its own, closed after the answers (one:
        clientv3's KeepAliveOnce). Each answer is recorded with the stream's start as its call; returns the last
        record (the error, when the stream failed or ended early)."""
        started = time.monotonic()
        req = rpc_pb2.LeaseKeepAliveRequest(ID=lease)
        stream = self.conn.lease.LeaseKeepAlive(
            iter([req] * times), timeout=self.traffic.timeout, metadata=LEADER_METADATA
        )
        try:
            answered = 0
            for pb in stream:
                ka = keep_alive(lease, started, time.monotonic(), pb)
                self.traffic._record_lease(ka)
                answered += 1
                if answered == times:
                    break
            if answered < times:
                ka = KeepAlive(lease, started, time.monotonic(), None, "the stream ended without an answer")
                self.traffic._record_lease(ka)
            self.unreachable = 0
        except grpc.RpcError as e:
            ka = KeepAlive(lease, started, time.monotonic(), None, error_text(e))
            self.traffic._record_lease(ka)
            self._failed(e)
        finally:
            stream.cancel()
        return ka

    def time_to_live(self, lease: int) -> LeaseCheck:
        started = time.monotonic()
        req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True)
        try:
            pb = self.conn.lease.LeaseTimeToLive(req, timeout=self.traffic.timeout, metadata=LEADER_METADATA)
            check = lease_check(lease, started, time.monotonic(), pb)
            self.unreachable = 0
        except grpc.RpcError as e:
            check = LeaseCheck(lease, started, time.monotonic(), None, error=error_text(e))
            self._failed(e)
        self.traffic._record_lease(check)
        return check

    def _failed(self, e: grpc.RpcError) -> None:
        if e.code() not in UNREACHABLE:  # type: ignore[attr-defined]
            self.unreachable = 0
            return
        self.unreachable += 1
        endpoints = self.traffic.endpoints
        if self.unreachable >= FAILOVER_AFTER and len(endpoints) > 1:
            self.unreachable = 0
            self.conn.close()
            self.index = (self.index + 1) % len(endpoints)
            self.conn = _Conn(endpoints[self.index])

    def close(self) -> None:
        self.conn.close()


class _Client:
    """One client thread: paced requests of random kinds until the traffic stops."""

    def __init__(self, traffic: Traffic, cid: int) -> None:
        self.traffic = traffic
        self.id = cid
        self.rng = random.Random(traffic.seed * 1_000_003 + cid)
        self.caller = _Caller(traffic, cid, cid)
        self.seq = 0
        self.kinds, self.weights = list(KINDS), list(KINDS.values())

    def value(self) -> bytes:
        self.seq += 1
        return f"{self.id}-{self.seq}".encode()

    def key(self) -> bytes:
        return self.traffic.key(self.rng.randrange(self.traffic.keys))

    def run(self) -> None:
        t = self.traffic
        interval = t.clients / t.rate  # each client's share of the rate
        next_at = time.monotonic() + self.rng.uniform(0, interval)
        try:
            while not t._stopping.is_set():
                delay = next_at - time.monotonic()
                if delay > 0 and t._stopping.wait(delay):
                    break
                n = self.step()
                # Pay for every request made; after a stall (a fault) do not burst to catch up.
                next_at = max(next_at + n * interval, time.monotonic() - interval)
        finally:
            self.caller.close()

    def step(self) -> int:
        """One action of a random kind; returns how many requests it made."""
        rng, call = self.rng, self.caller.call
        kind = rng.choices(self.kinds, self.weights)[0]
        key = self.key()
        if kind == "put":
            resp = call(Put(key, self.value(), prev_kv=rng.random() < 0.2))
            if isinstance(resp, PutResponse):
                self.traffic._note_put(resp.revision)
            return 1
        if kind == "get":
            call(Range(key))
        elif kind == "get_serializable":
            call(Range(key, serializable=True))
        elif kind == "range":
            p = self.traffic.prefix + b"key"
            call(Range(p, prefix_end(p)))
        elif kind == "delete":
            call(Delete(key, prev_kv=rng.random() < 0.3))
        elif kind == "cas":
            return self.cas(key)
        elif kind == "txn_multi":
            other = self.key()
            while other == key and self.traffic.keys > 1:
                other = self.key()
            ops: list[Put | Delete | Range] = [Put(key, self.value())]
            if other != key:  # etcd refuses a txn that writes one key twice
                ops.append(Put(other, self.value()))
            call(Txn([], ops, []))
        else:
            return self.lease_cycle(key)
        return 1

    def cas(self, key: bytes) -> int:
        got = self.caller.call(Range(key))
        if not isinstance(got, RangeResponse):
            return 1
        mod = got.kvs[0].mod_revision if got.kvs else 0
        self.caller.call(Txn([Compare(key, "mod", "=", mod)], [Put(key, self.value())], [Range(key)]))
        return 2

    def lease_cycle(self, key: bytes) -> int:
        call = self.caller.call
        granted = call(LeaseGrant(ttl=self.rng.randint(2, 5), id=0))
        if not isinstance(granted, LeaseGrantResponse):
            return 1
        call(Put(key, self.value(), lease=granted.id))
        self.caller.keep_alive(granted.id, self.rng.randint(1, 2))
        call(LeaseRevoke(granted.id))
        return 3


class _WatchRunner:
    """Runs the streams of one logical watch in a thread; a stream is recorded once it answers."""

    def __init__(self, traffic: Traffic, watch: Watch, endpoints: list[str], keyspace: bool) -> None:
        self.traffic = traffic
        self.watch = watch
        self.endpoints = endpoints  # in the order to try them
        self.keyspace = keyspace  # a whole-keyspace watch: re-created until closed, holds compaction back
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.call: grpc.RpcContext | None = None
        self.requests: queue.Queue[rpc_pb2.WatchRequest | None] | None = None
        self.created = False
        self.caught_up = False  # the current stream has delivered through its created response's revision
        self.last_event = 0  # the highest event revision this logical watch delivered
        self.resume_at = 0  # set by a cancel for compaction: the next stream starts there
        self.errors: list[str] = []
        self.thread = threading.Thread(target=traffic._guard(self.run), name=f"watch-{watch.id}", daemon=True)

    def position(self) -> int:
        """The revision through which this watch has delivered every event."""
        return self.last_event or self.watch.start_revision - 1

    def next_start(self) -> int:
        if self.resume_at:
            return self.resume_at
        return self.last_event + 1 if self.last_event else self.watch.start_revision

    def run(self) -> None:
        failures = 0
        conn: _Conn | None = None
        try:
            while not self.closing.is_set():
                endpoint = self.endpoints[failures % len(self.endpoints)]
                if conn is None or conn.endpoint != endpoint:
                    if conn is not None:
                        conn.close()
                    conn = _Conn(endpoint)
                answered = self.run_stream(conn, self.next_start())
                if not self.keyspace or self.closing.is_set():
                    break
                failures = 0 if answered else failures + 1
                self.closing.wait(min(1.0, 0.05 * 2 ** min(failures, 5)))
        finally:
            if conn is not None:
                conn.close()

    def run_stream(self, conn: _Conn, start: int) -> bool:
        """One stream from ``start`` until it breaks or the watch closes; True if the server served it."""
        w = self.watch
        requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
        done = threading.Event()
        create = rpc_pb2.WatchCreateRequest(key=w.key, range_end=w.range_end, start_revision=start, prev_kv=w.prev_kv)
        requests.put(rpc_pb2.WatchRequest(create_request=create))

        def feed() -> Iterator[rpc_pb2.WatchRequest]:
            # Never half-close while the stream is wanted: a server may stop the watchers when the client does.
            while not done.is_set():
                try:
                    item = requests.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is None:
                    return
                yield item

        stream = WatchStream(start, [], member=conn.endpoint)
        call = conn.watch.Watch(feed(), metadata=LEADER_METADATA)
        with self.lock:
            self.call, self.requests, self.created, self.caught_up = call, requests, False, False
        created_at = 0
        if self.closing.is_set():
            call.cancel()
        try:
            for pb in call:
                resp = watch_response(pb, time.monotonic())
                with self.lock:
                    if not stream.responses:
                        w.streams.append(stream)
                    stream.responses.append(resp)
                    if resp.events:
                        self.last_event = max(self.last_event, max(ev.kv.mod_revision for ev in resp.events))
                        self.resume_at = 0
                    if resp.created and not self.created:
                        self.created, created_at = True, resp.revision
                    self.caught_up = self.created and (start > created_at or self.last_event >= created_at)
                self.traffic._observe(resp.revision)
                if resp.canceled:
                    if resp.compact_revision:
                        self.resume_at = resp.compact_revision
                    else:
                        self.errors.append(f"canceled: {pb.cancel_reason}")
                    break
        except grpc.RpcError as e:
            if not self.closing.is_set():
                self.errors.append(f"{e.code()}: {e.details()}")  # type: ignore[attr-defined]
        finally:
            with self.lock:
                self.call, self.requests, self.created, self.caught_up = None, None, False, False
            done.set()
            requests.put(None)
            call.cancel()
        # A stream whose only answer refused it counts as a failure, so the next try moves on to another member.
        return any(not r.canceled for r in stream.responses)

    def request_progress(self) -> bool:
        """Ask for a progress notification, once the stream has caught up with its backlog.

        Both etcd 3.4.23 and our server answer a watcher that is still catching up with the current
        revision, ahead of the events it has yet to send (etcd-io/etcd#15220, fixed upstream by holding the
        answer back). Asking then would flag that known bug after every re-created stream; asking a caught-up
        stream still tests the guarantee (and still catches the race that remains, see the tests).
        """
        with self.lock:
            if self.requests is None or not self.caught_up:
                return False
            self.requests.put(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
            return True

    def close(self) -> None:
        self.closing.set()
        with self.lock:
            call = self.call
        if call is not None:
            call.cancel()


@dataclass
class TrafficSummary:
    duration_s: float
    operations: int
    per_kind: dict[str, int]
    errors: dict[str, int]  # by status code
    unknown: int  # writes of unknown outcome
    definite: int  # requests that certainly did not take effect
    watches: int
    watch_streams: int
    watch_responses: int
    watch_events: int
    progress: int
    watch_errors: list[str] = field(default_factory=list)
    keep_alives: int = 0
    keep_alive_errors: int = 0
    lease_checks: int = 0

    @property
    def ops_per_s(self) -> float:
        return self.operations / self.duration_s if self.duration_s > 0 else 0.0

    def __str__(self) -> str:
        kinds = ", ".join(f"{k}={n}" for k, n in sorted(self.per_kind.items()))
        errors = ", ".join(f"{k}={n}" for k, n in sorted(self.errors.items())) or "none"
        return (
            f"{self.operations} operations in {self.duration_s:.1f}s ({self.ops_per_s:.0f}/s): {kinds}\n"
            f"errors: {errors}; {self.unknown} writes of unknown outcome, {self.definite} definite failures\n"
            f"watches: {self.watches} ({self.watch_streams} streams), {self.watch_responses} responses, "
            f"{self.watch_events} events, {self.progress} progress notifications, "
            f"{len(self.watch_errors)} stream errors\n"
            f"leases: {self.keep_alives} keep-alives ({self.keep_alive_errors} failed), "
            f"{self.lease_checks} TimeToLive checks"
        )


class Traffic:
    def __init__(
        self,
        endpoints: list[str],
        *,
        clients: int = 8,
        rate: float = 500.0,
        keys: int = 10,
        timeout: float = 1.0,
        seed: int = 0,
        compact_every: tuple[float, float] = (0.1, 0.2),
        compact_lag: int = 50,
        watchers_per_member: int = 1,
        prefix: bytes = b"",
        drain_timeout: float = DRAIN_TIMEOUT,
        kept_leases: int = 2,
        kept_ttl: int = 3,
    ) -> None:
        if not endpoints or clients < 1 or rate <= 0 or keys < 1:
            raise ValueError("Traffic needs endpoints, clients >= 1, rate > 0 and keys >= 1")
        self.endpoints = list(endpoints)
        self.clients, self.rate, self.keys, self.timeout = clients, rate, keys, timeout
        self.seed, self.compact_every, self.compact_lag = seed, compact_every, compact_lag
        self.watchers_per_member, self.prefix, self.drain_timeout = watchers_per_member, prefix, drain_timeout
        self.kept_ttl = kept_ttl
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # clients, keep-alives, compactor and ticker
        self._operations: list[Operation] = []
        self._max_revision = 0
        self._recent_puts: collections.deque[int] = collections.deque(maxlen=32)
        self._threads: list[threading.Thread] = []
        self._keyspace: list[_WatchRunner] = []
        self._short: list[_WatchRunner] = []
        self._failures: list[BaseException] = []
        self._base_revision = 0
        self._base_state: list = []
        self._started = self.stopped_at = 0.0
        self._history: History | None = None
        self._keep_alives: list[KeepAlive] = []
        self._lease_checks: list[LeaseCheck] = []
        self._kept = KeptLeases(self, kept_leases, kept_ttl)

    def key(self, i: int) -> bytes:
        return self.prefix + b"key%d" % i

    # --- shared state -----------------------------------------------------------------------------

    def _record(self, op: Operation) -> None:
        with self._lock:
            self._operations.append(op)
            if op.response is not None:
                self._max_revision = max(self._max_revision, op.response.revision)

    def _record_lease(self, item: KeepAlive | LeaseCheck) -> None:
        with self._lock:
            if isinstance(item, KeepAlive):
                self._keep_alives.append(item)
            else:
                self._lease_checks.append(item)

    def last_keep_alive(self, lease: int) -> float:
        """When the last keep-alive attempt on ``lease`` returned (now, if there was none)."""
        with self._lock:
            return max((ka.ret for ka in self._keep_alives if ka.lease == lease), default=time.monotonic())

    def _observe(self, revision: int) -> None:
        with self._lock:
            self._max_revision = max(self._max_revision, revision)

    def _note_put(self, revision: int) -> None:
        with self._lock:
            self._recent_puts.append(revision)

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # a bug of the recorder: stop() raises it
                self._failures.append(e)

        return run

    def _spawn(self, fn: Callable[[], None], name: str) -> None:
        th = threading.Thread(target=self._guard(fn), name=name, daemon=True)
        self._threads.append(th)
        th.start()

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._read_base()
        self._started = time.monotonic()
        n = len(self.endpoints)
        for m in range(n):
            order = self.endpoints[m:] + self.endpoints[:m]
            for _ in range(self.watchers_per_member):
                w = Watch(self._watch_id(), b"\0", b"\0", self._base_revision + 1, True, [])
                runner = _WatchRunner(self, w, order, keyspace=True)
                self._keyspace.append(runner)
                runner.thread.start()
        # Client ids after the clients' and the compactor's.
        self._kept.start(lambda i: _Caller(self, self.clients + 1 + i, i))
        for i in range(self.clients):
            self._spawn(_Client(self, i).run, f"client-{i}")
        self._spawn(self._compactor, "compactor")
        self._spawn(self._ticker, "watch-ticker")

    def _watch_id(self) -> int:
        return len(self._keyspace) + len(self._short)

    def _read_base(self) -> None:
        deadline = time.monotonic() + BASE_READ_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            for ep in self.endpoints:
                conn = _Conn(ep)
                try:
                    req = Range(b"\0", b"\0")
                    pb = conn.kv.Range(request_pb(req), timeout=self.timeout, metadata=LEADER_METADATA)
                    base = response(req, pb)
                    assert isinstance(base, RangeResponse)
                    self._base_revision, self._base_state = base.revision, base.kvs
                    self._max_revision = base.revision
                    return
                except grpc.RpcError as e:
                    last = e
                finally:
                    conn.close()
            time.sleep(0.1)
        raise TimeoutError(f"no endpoint of {self.endpoints} answered a linearizable read: {last}")

    def stop(self) -> History:
        if self._history is not None:
            return self._history
        self._stopping.set()
        for th in self._threads:
            th.join(JOIN_TIMEOUT + 3 * self.timeout)
        self.stopped_at = time.monotonic()  # the clients stopped (the kept leases' expiry is watched after)
        expiring = self._kept.await_expiry()
        for th in expiring:
            th.join(self.kept_ttl + EXPIRY_SLACK + JOIN_TIMEOUT + 3 * self.timeout)
        with self._lock:
            target = self._max_revision
        # The write log comes from these watches: let them deliver everything any client saw.
        deadline = time.monotonic() + self.drain_timeout
        while time.monotonic() < deadline and any(r.position() < target for r in self._keyspace):
            time.sleep(0.02)
        runners = self._keyspace + self._short
        for r in runners:
            r.close()
        for r in runners:
            r.thread.join(JOIN_TIMEOUT)
        stuck = [th.name for th in self._threads + expiring + [r.thread for r in runners] if th.is_alive()]
        if self._failures:
            raise RuntimeError(f"traffic thread failed: {self._failures[0]!r}") from self._failures[0]
        if stuck:
            raise RuntimeError(f"traffic threads did not stop: {stuck}")
        ops = sorted(self._operations, key=lambda o: o.call)
        # A short-lived watch that never reached a server (it started during a fault) recorded nothing.
        watches = sorted((r.watch for r in runners if r.keyspace or r.watch.streams), key=lambda w: w.id)
        self._history = History(
            ops,
            watches,
            self._base_revision,
            list(self._base_state),
            sorted(self._keep_alives, key=lambda k: k.call),
            sorted(self._lease_checks, key=lambda c: c.call),
            self._kept.leases(),
        )
        return self._history

    # --- background threads -----------------------------------------------------------------------

    def _compactor(self) -> None:
        caller = _Caller(self, self.clients, 0)  # its own client id, after the clients'
        last = self._base_revision
        try:
            while not self._stopping.wait(self.rng.uniform(*self.compact_every)):
                target = min(r.position() for r in self._keyspace) - self.compact_lag if self._keyspace else 0
                if target > last:
                    caller.call(Compact(target))
                    last = target  # even on an error: a retry would only compete with the next, higher one
        finally:
            caller.close()

    def _ticker(self) -> None:
        rng = random.Random(self.seed * 7919 + 1)
        now = time.monotonic()
        next_progress = now + rng.uniform(*PROGRESS_EVERY)
        next_short = now + rng.uniform(*SHORT_WATCH_EVERY)
        closing: list[tuple[float, _WatchRunner]] = []
        while not self._stopping.wait(0.05):
            now = time.monotonic()
            if now >= next_progress:
                for r in self._keyspace:
                    r.request_progress()
                next_progress = now + rng.uniform(*PROGRESS_EVERY)
            if now >= next_short:
                runner = self._start_short_watch(rng)
                if runner is not None:
                    closing.append((now + rng.uniform(*SHORT_WATCH_FOR), runner))
                next_short = now + rng.uniform(*SHORT_WATCH_EVERY)
            for item in [c for c in closing if c[0] <= now]:
                item[1].close()
                closing.remove(item)

    def _start_short_watch(self, rng: random.Random) -> _WatchRunner | None:
        with self._lock:
            if not self._recent_puts:
                return None
            start = rng.choice(self._recent_puts)
        if rng.random() < 0.5:
            key, end = self.key(rng.randrange(self.keys)), b""
        else:
            key = self.prefix + b"key"
            end = prefix_end(key)
        w = Watch(self._watch_id(), key, end, start, rng.random() < 0.5, [])
        runner = _WatchRunner(self, w, [rng.choice(self.endpoints)], keyspace=False)
        self._short.append(runner)
        runner.thread.start()
        return runner

    # --- report -----------------------------------------------------------------------------------

    def summary(self) -> TrafficSummary:
        with self._lock:
            ops = list(self._operations)
            keep_alives = list(self._keep_alives)
        per_kind: dict[str, int] = collections.Counter(op_kind(op) for op in ops)
        errors: dict[str, int] = collections.Counter(
            op.error.removeprefix("definite: ").split(":")[0] for op in ops if op.error
        )
        runners = self._keyspace + self._short
        responses = [resp for r in runners for s in list(r.watch.streams) for resp in list(s.responses)]
        end = self.stopped_at or time.monotonic()
        return TrafficSummary(
            duration_s=end - self._started if self._started else 0.0,
            operations=len(ops),
            per_kind=dict(per_kind),
            errors=dict(errors),
            unknown=sum(classify(op) == "unknown" for op in ops),
            definite=sum(bool(op.error and op.error.startswith("definite:")) for op in ops),
            watches=len(runners),
            watch_streams=sum(len(r.watch.streams) for r in runners),
            watch_responses=len(responses),
            watch_events=sum(len(resp.events) for resp in responses),
            progress=sum(resp.progress for resp in responses),
            watch_errors=[e for r in runners for e in r.errors],
            keep_alives=len(keep_alives),
            keep_alive_errors=sum(ka.error is not None for ka in keep_alives),
            lease_checks=len(self._lease_checks),
        )


__all__ = ["Traffic", "TrafficSummary", "op_kind", "error_text"]
