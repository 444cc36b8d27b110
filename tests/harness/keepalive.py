"""A LeaseKeepAlive stream driven from a thread, for tests that keep a lease alive while they look elsewhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc

from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

JOIN_TIMEOUT = 5.0


class KeepAlive:
    """Sends a LeaseKeepAliveRequest for ``lease_id`` every ``every`` seconds on one stream of ``lease``
    until ``stop()``; ``responses`` collects the answers and ``error`` the stream's failure, if any (the
    cancellation ``stop`` causes is not one)."""

    def __init__(self, lease: rpc_pb2_grpc.LeaseStub, lease_id: int, every: float) -> None:
        self.lease_id = lease_id
        self.every = every
        self.stopped = threading.Event()
        self.responses: list[rpc_pb2.LeaseKeepAliveResponse] = []
        self.error: Exception | None = None
        self.stream = lease.LeaseKeepAlive(self._requests())
        self.reader = threading.Thread(target=self._read, name="keepalive", daemon=True)
        self.reader.start()

    def _requests(self) -> Iterator[rpc_pb2.LeaseKeepAliveRequest]:
        while not self.stopped.is_set():
            yield rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id)
            self.stopped.wait(self.every)

    def _read(self) -> None:
        try:
            for r in self.stream:
                self.responses.append(r)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e

    def stop(self) -> None:
        self.stopped.set()
        self.stream.cancel()
        self.reader.join(JOIN_TIMEOUT)
