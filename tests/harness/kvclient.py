"""gRPC clients for the differential suite.

``Client`` wraps one server's stubs. ``DiffPair`` drives a reference server
(real etcd) and the server under test in lock step: every request goes to the
reference first, then to ours, and both outcomes are normalized (see
``normalize``) and must be equal.

Requests whose contents depend on a revision (Range.revision, Compact, the
min/max revision filters, Compare on MOD/CREATE) are given as a function of the
base revision, ``make(base) -> request``, so each server gets the absolute value
that corresponds to the same relative point in its own history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from harness.normalize import outcome
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

CALL_TIMEOUT = 10.0
# etcd accepts requests up to --max-request-bytes (1.5 MiB) plus gRPC overhead; allow
# clients to send more so the server, not the client, produces the "too large" error.
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]

# method name -> (stub attribute, rpc name)
METHODS = {
    "Range": ("kv", "Range"),
    "Put": ("kv", "Put"),
    "DeleteRange": ("kv", "DeleteRange"),
    "Txn": ("kv", "Txn"),
    "Compact": ("kv", "Compact"),
    "LeaseGrant": ("lease", "LeaseGrant"),
    "LeaseRevoke": ("lease", "LeaseRevoke"),
    "LeaseTimeToLive": ("lease", "LeaseTimeToLive"),
    "Status": ("maintenance", "Status"),
    "HashKV": ("maintenance", "HashKV"),
    "Alarm": ("maintenance", "Alarm"),
    "Defragment": ("maintenance", "Defragment"),
    "MoveLeader": ("maintenance", "MoveLeader"),
}

RequestMaker = Callable[[int], Message]


class Client:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.channel = grpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)

    def call(self, method: str, req: Message) -> Message | grpc.RpcError:
        stub, name = METHODS[method]
        try:
            return getattr(getattr(self, stub), name)(req, timeout=CALL_TIMEOUT)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise  # a hang is a harness-level failure, not a comparable outcome
            return e

    def revision(self) -> int:
        """Current store revision, from the header of a linearizable read."""
        return self.kv.Range(rpc_pb2.RangeRequest(key=b"\x00harness"), timeout=CALL_TIMEOUT).header.revision

    def close(self) -> None:
        self.channel.close()


@dataclass
class Step:
    """One request of a sequence, for both servers."""

    method: str
    make: RequestMaker
    desc: str = ""


def _short(obj: object, limit: int = 4000) -> str:
    text = str(obj)
    return text if len(text) <= limit else text[:limit] + f"... <{len(text) - limit} more chars>"


class Mismatch(AssertionError):
    pass


class DiffPair:
    """A reference client and a client under test, compared call by call."""

    def __init__(self, ref: Client, ours: Client) -> None:
        self.ref = ref
        self.ours = ours
        self.ref_base = 0
        self.ours_base = 0
        self.log: list[str] = []

    def begin(self) -> None:
        """Mark the start of a sequence: revisions are reported relative to this point."""
        self.ref_base = self.ref.revision()
        self.ours_base = self.ours.revision()
        self.log = []

    def run(self, method: str, make: RequestMaker | Message, desc: str = "") -> dict[str, Any]:
        """Send one request to both servers; return the (equal) normalized outcome."""
        if isinstance(make, Message):
            req = make
            make = lambda _base: req  # noqa: E731
        r_ref = self.ref.call(method, make(self.ref_base))
        r_ours = self.ours.call(method, make(self.ours_base))
        o_ref = outcome(r_ref, self.ref_base)
        o_ours = outcome(r_ours, self.ours_base)
        self.log.append(f"{method} {desc}".rstrip())
        if o_ref != o_ours:
            history = "\n".join(f"  {i}: {line}" for i, line in enumerate(self.log))
            raise Mismatch(
                f"step {len(self.log) - 1} {method} {desc}\nrequest (ref): {_short(make(self.ref_base))}\n"
                f"etcd: {_short(o_ref)}\nours: {_short(o_ours)}\nhistory:\n{history}"
            )
        return o_ref

    def steps(self, steps: list[Step]) -> list[dict[str, Any]]:
        return [self.run(s.method, s.make, s.desc) for s in steps]
