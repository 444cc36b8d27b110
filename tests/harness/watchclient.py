"""A Watch bidi stream driven from a test: send requests, collect responses with timeouts.

``WatchStream(channel)`` opens one ``etcdserverpb.Watch/Watch`` stream. Requests go
through a queue that feeds the stream's request iterator; a reader thread appends
every response to a list under a condition variable. Tests wait on that list with
bounded waits (``wait_for``, ``settle``), never on a blocking read, so a server
that stays silent fails the test instead of hanging it.

``WatchPair`` opens the same stream on a reference server and on the server under
test (the channels of a ``DiffPair``), sends every request to both, and compares
the responses normalized like every other response in the suite (``normalize``:
ids dropped, revisions relative to each server's base revision).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from harness.kvclient import DiffPair, _short
from harness.normalize import message_dict
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

WatchRequest = rpc_pb2.WatchRequest
WatchResponse = rpc_pb2.WatchResponse

WAIT_TIMEOUT = 10.0
# etcd moves unsynced watchers (start_revision in the past) to synced every 100 ms.
SETTLE_QUIET = 0.35


def create_req(key: bytes, range_end: bytes = b"", **kw) -> rpc_pb2.WatchRequest:
    return WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key, range_end=range_end, **kw))


def cancel_req(watch_id: int) -> rpc_pb2.WatchRequest:
    return WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id))


def progress_req() -> rpc_pb2.WatchRequest:
    return WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())


class WatchStream:
    """One Watch stream: ``send`` requests, responses accumulate in ``responses``."""

    def __init__(self, channel: grpc.Channel, keep: bool = True) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self.responses: list[rpc_pb2.WatchResponse] = []
        self.count = 0  # responses received so far (also counted when ``keep`` is False)
        self.error: grpc.RpcError | None = None
        self.done = False
        self._on_response: Callable[[rpc_pb2.WatchResponse], None] | None = None
        self._keep = keep
        self._last_arrival = self._last_request = time.monotonic()
        self._call = rpc_pb2_grpc.WatchStub(channel).Watch(self._request_iter())
        self._reader = threading.Thread(target=self._read, name="watch-reader", daemon=True)
        self._reader.start()

    def on_response(self, fn: Callable[[rpc_pb2.WatchResponse], None]) -> None:
        """Call ``fn`` in the reader thread for every later response (before it is counted)."""
        self._on_response = fn

    def _request_iter(self) -> Iterator[rpc_pb2.WatchRequest]:
        while True:
            req = self._requests.get()
            if req is None:
                return
            yield req

    def _read(self) -> None:
        try:
            for resp in self._call:
                if self._on_response is not None:
                    self._on_response(resp)
                with self._cond:
                    if self._keep:
                        self.responses.append(resp)
                    self.count += 1
                    self._last_arrival = time.monotonic()
                    self._cond.notify_all()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e
        finally:
            with self._cond:
                self.done = True
                self._cond.notify_all()

    # -- requests -------------------------------------------------------------------------

    def send(self, req: rpc_pb2.WatchRequest) -> None:
        with self._cond:
            self._last_request = time.monotonic()  # quiet is measured from the last request too
        self._requests.put(req)

    def create(self, key: bytes, range_end: bytes = b"", **kw) -> None:
        self.send(create_req(key, range_end, **kw))

    def cancel(self, watch_id: int) -> None:
        self.send(cancel_req(watch_id))

    def progress(self) -> None:
        self.send(progress_req())

    # -- waiting --------------------------------------------------------------------------

    def wait_for(self, pred: Callable[[list[rpc_pb2.WatchResponse]], bool], timeout: float = WAIT_TIMEOUT,
                 what: str = "") -> list[rpc_pb2.WatchResponse]:  # fmt: skip
        """Block until ``pred(responses)`` holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.responses):
                left = deadline - time.monotonic()
                if left <= 0 or self.done:
                    raise AssertionError(
                        f"watch stream: timed out waiting for {what or pred} (error={self.error}); "
                        f"got {len(self.responses)} responses: {_short(self.responses, 3000)}"
                    )
                self._cond.wait(min(left, 0.2))
            return list(self.responses)

    def wait_count(self, n: int, timeout: float = WAIT_TIMEOUT) -> list[rpc_pb2.WatchResponse]:
        return self.wait_for(lambda rs: len(rs) >= n, timeout, f"{n} responses")

    def settle(self, quiet: float = SETTLE_QUIET, timeout: float = WAIT_TIMEOUT,
               since: float | None = None) -> list[rpc_pb2.WatchResponse]:  # fmt: skip
        """Wait until nothing has arrived for ``quiet`` seconds since the later of the last request,
        the last response and ``since`` (default: now); return everything received."""
        deadline = time.monotonic() + timeout
        since = time.monotonic() if since is None else since
        with self._cond:
            while True:
                now = time.monotonic()
                idle = now - max(self._last_arrival, self._last_request, since)
                if idle >= quiet:
                    return list(self.responses)
                if now >= deadline:
                    raise AssertionError(f"watch stream: still receiving after {timeout}s ({self.count} responses)")
                self._cond.wait(min(quiet - idle, deadline - now))

    def take(self) -> list[rpc_pb2.WatchResponse]:
        """Remove and return the responses received so far."""
        with self._cond:
            out, self.responses = self.responses, []
            return out

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._reader.join(WAIT_TIMEOUT)
        if self.error is not None:
            raise AssertionError(f"watch stream ended with {self.error.code().name}: {self.error.details()}")


def normalized(resps: list[rpc_pb2.WatchResponse], base: int) -> list[dict[str, Any]]:
    return [message_dict(r, base) for r in resps]


def abbreviate(obj: Any, limit: int = 64) -> Any:
    """``obj`` with long bytes values cut short, for failure messages."""
    if isinstance(obj, bytes) and len(obj) > limit:
        return obj[:limit] + f"...<{len(obj)} bytes>".encode()
    if isinstance(obj, list):
        return [abbreviate(x, limit) for x in obj]
    if isinstance(obj, dict):
        return {k: abbreviate(v, limit) for k, v in obj.items()}
    return obj


def by_watch(resps: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Normalized responses grouped by ``watch_id`` ("0" when absent), each group in arrival order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in resps:
        out.setdefault(r.get("watch_id", "0"), []).append(r)
    return out


class WatchPair:
    """The same Watch stream on the reference server and on the server under test."""

    def __init__(self, diff: DiffPair) -> None:
        self.diff = diff
        self.ref = WatchStream(diff.ref.channel)
        self.ours = WatchStream(diff.ours.channel)
        self.sent: list[str] = []

    def send(self, make: Callable[[int], rpc_pb2.WatchRequest] | rpc_pb2.WatchRequest) -> None:
        """Send a request (or ``make(base) -> request`` for revision operands) to both streams."""
        if isinstance(make, WatchRequest):
            req = make
            make = lambda _base: req  # noqa: E731
        self.sent.append(_short(make(self.diff.ref_base), 300).replace("\n", " ").replace("  ", " "))
        self.ref.send(make(self.diff.ref_base))
        self.ours.send(make(self.diff.ours_base))

    def create(self, key: bytes, range_end: bytes = b"", start_rel: int | None = None, **kw) -> None:
        """Create a watch; ``start_rel`` is a start revision relative to the pair's base revisions."""
        if start_rel is None:
            self.send(create_req(key, range_end, **kw))
        else:
            self.send(lambda base: create_req(key, range_end, start_revision=base + start_rel, **kw))

    def cancel(self, watch_id: int) -> None:
        self.send(cancel_req(watch_id))

    def progress(self) -> None:
        self.send(progress_req())

    def wait_count(self, n: int, timeout: float = WAIT_TIMEOUT) -> None:
        self.ref.wait_count(n, timeout)
        self.ours.wait_count(n, timeout)

    def settle(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Both streams' responses so far, normalized, once neither has received anything for a while."""
        now = time.monotonic()  # both quiet for the same window: the wait costs one quiet period, not two
        r = normalized(self.ref.settle(since=now), self.diff.ref_base)
        o = normalized(self.ours.settle(since=now), self.diff.ours_base)
        return r, o

    def groups(self) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
        """Both streams' settled, normalized responses grouped by watch id: (etcd, ours)."""
        r, o = self.settle()
        return by_watch(r), by_watch(o)

    def history(self) -> str:
        """The requests sent so far (watch and KV), for failure messages."""
        requests = "\n".join(f"  {i}: {s}" for i, s in enumerate(self.sent))
        kv_log = "\n".join(f"  {i}: {s}" for i, s in enumerate(self.diff.log))
        return f"watch requests:\n{requests}\nkv requests:\n{kv_log}"

    def compare(self, groups: tuple[dict, dict] | None = None) -> dict[str, list[dict[str, Any]]]:
        """Settle both streams and assert equal normalized responses per watch id; return etcd's.

        Responses are compared per ``watch_id`` (in arrival order), not as one list: etcd
        sends one revision's responses to a stream's watchers in Go map order, which varies.
        Control replies without a watcher (progress, refused creates) are under ``"-1"``.
        ``groups`` is a result of ``groups()`` already taken, to compare without settling again.
        """
        gr, go = groups if groups is not None else self.groups()
        if gr != go:
            wid = next(k for k in sorted(set(gr) | set(go), key=int) if gr.get(k) != go.get(k))
            a, b = gr.get(wid, []), go.get(wid, [])
            first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            raise AssertionError(
                f"watch_id {wid}: responses differ at index {first} (etcd {len(a)}, ours {len(b)})\n"
                f"etcd[{first}:]: {_short(abbreviate(a[first:]))}\nours[{first}:]: {_short(abbreviate(b[first:]))}\n"
                f"{self.history()}"
            )
        return gr

    def close(self) -> None:
        try:
            self.ref.close()
        finally:
            self.ours.close()
