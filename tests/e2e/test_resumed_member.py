"""A member that could not run for a while (SIGSTOP, a long GC-like stall) keeps its clients' connections.

Requests whose deadline passed meanwhile reach it, on resume, as HEADERS followed by RST_STREAM, before the
server accepted the streams. h2's default bound for those (20 per connection) made the server answer a GOAWAY
(ENHANCE_YOUR_CALM, "too_many_resets") that broke every stream of the connection, watches included; etcd
(grpc-go) keeps the connection. Found by tests/robustness ("pause leader": the recorder's gRPC clients logged
the GOAWAYs).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from harness.servers import start_server
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc


@pytest.mark.parametrize("kind", ["ours", "etcd"])
def test_requests_abandoned_during_a_pause_do_not_close_the_connection(tmp_path: Path, kind: str) -> None:
    srv = start_server(kind, tmp_path)
    try:
        with grpc.insecure_channel(srv.endpoint) as ch:
            kv, watch = rpc_pb2_grpc.KVStub(ch), rpc_pb2_grpc.WatchStub(ch)
            requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
            create = rpc_pb2.WatchCreateRequest(key=b"w")
            requests.put(rpc_pb2.WatchRequest(create_request=create))
            stream = watch.Watch(iter(requests.get, None))
            assert next(stream).created
            events: queue.Queue[object] = queue.Queue()

            def pump() -> None:
                try:
                    for resp in stream:
                        events.put(resp)
                except grpc.RpcError as e:
                    events.put(e)

            threading.Thread(target=pump, daemon=True).start()
            assert srv.proc is not None
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                futures = [kv.Range.future(rpc_pb2.RangeRequest(key=b"x%d" % i), timeout=0.2) for i in range(100)]
                for f in futures:
                    with pytest.raises(grpc.RpcError):
                        f.result()
                time.sleep(0.3)  # every RST_STREAM sent
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
            kv.Put(rpc_pb2.PutRequest(key=b"w", value=b"after"), timeout=5)
            got = events.get(timeout=5)
            requests.put(None)
            assert isinstance(got, rpc_pb2.WatchResponse), f"the watch broke after the pause: {got}"
            assert [e.kv.value for e in got.events] == [b"after"]
    finally:
        srv.stop()
