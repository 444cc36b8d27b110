"""Run the real etcdctl (v3 API) against an endpoint and normalize what it prints.

``run(endpoint, *args)`` returns a ``Result`` (rc, stdout, stderr; ``stdout_bytes``
for ``-w protobuf``). ``CtlPair`` runs one command line against the reference
server and the server under test and compares the normalized outcomes, the
etcdctl counterpart of ``kvclient.DiffPair``:

- ``-w json``: parsed, ``cluster_id``/``member_id``/``raft_term`` dropped from
  every header, revisions rebased to ``"@+k"`` and base64 keys/values decoded
  (the same ``normalize.rebase`` the gRPC suite uses).
- ``-w fields``: the ``"ClusterID"``, ``"MemberID"`` and ``"RaftTerm"`` lines are
  dropped and revision lines rebased.
- ``-w protobuf``: decoded as the command's response message, then as json.
- simple output is compared as text. Text that holds a revision (``compaction``
  prints "compacted revision N") is built per server from its base, see
  ``CtlPair.run``.
- stderr: etcdctl's client logs a JSON "retrying of unary invoker failed" line
  carrying a random target id and a timestamp; only its ``error`` (gRPC code and
  message) is kept, next to the ``Error: ...`` lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.kvclient import Client
from harness.normalize import ID_FIELDS, message_dict, rebase
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2

ETCDCTL_BIN = os.environ.get("PYETCD_TEST_ETCDCTL", "/usr/bin/etcdctl")
TIMEOUT = 60.0

# Lines `etcdctl txn -i` prints before it reads each section.
TXN_PROMPTS = ("compares:", "success requests (get, put, del):", "failure requests (get, put, del):")
FIELDS_IDS = {'"ClusterID"', '"MemberID"', '"RaftTerm"'}
FIELDS_REVISIONS = {'"Revision"', '"CreateRevision"', '"ModRevision"', '"CompactRevision"'}
PROTOBUF_RESPONSES = {
    "get": rpc_pb2.RangeResponse,
    "put": rpc_pb2.PutResponse,
    "del": rpc_pb2.DeleteRangeResponse,
    "txn": rpc_pb2.TxnResponse,
}


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str
    stdout_bytes: bytes

    def __iter__(self):
        """Unpacks as ``rc, stdout, stderr``."""
        return iter((self.rc, self.stdout, self.stderr))


def run(
    endpoint: str, *args: str, stdin: str | None = None, timeout: float = TIMEOUT, argv_prefix: Sequence[str] = ()
) -> Result:
    """``ETCDCTL_API=3 etcdctl --endpoints <endpoint> <args>``; a hang fails the test via TimeoutExpired.

    ``argv_prefix`` runs it through another command, e.g. ``["ip", "netns", "exec", ns]``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    p = subprocess.run(
        [*argv_prefix, ETCDCTL_BIN, "--endpoints", endpoint, *args],
        input=None if stdin is None else stdin.encode(),
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        timeout=timeout,
        env=env,
    )
    return Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), p.stdout)


# -- normalizers ---------------------------------------------------------------------


def strip_prompts(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if line.rstrip("\n") not in TXN_PROMPTS)


def _drop_ids(obj: Any) -> Any:
    """Drop member ids at any depth: etcdctl's txn json nests headers under Go field names."""
    if isinstance(obj, list):
        return [_drop_ids(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _drop_ids(v) for k, v in obj.items() if k not in ID_FIELDS}
    return obj


def normalize_json(text: str, base: int | None) -> Any:
    """A ``-w json`` document with ids dropped, revisions rebased and bytes decoded."""
    return rebase(_drop_ids(json.loads(strip_prompts(text))), base)


def normalize_fields(text: str, base: int | None) -> list[str]:
    out = []
    for line in strip_prompts(text).splitlines():
        name, sep, value = line.partition(" : ")
        if sep and name in FIELDS_IDS:
            continue
        if sep and name in FIELDS_REVISIONS and base is not None and value.lstrip("-").isdigit():
            line = f"{name} : @{int(value) - base:+d}"
        out.append(line)
    return out


def normalize_protobuf(command: str, data: bytes, base: int | None) -> Any:
    return message_dict(PROTOBUF_RESPONSES[command].FromString(data), base)


def normalize_stderr(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                out.append(line)
                continue
            if "error" in rec:
                out.append(f"log: {rec['error']}")
            continue
        out.append(line)
    return out


def output_format(args: Sequence[str]) -> str:
    for i, a in enumerate(args):
        if a in ("-w", "--write-out") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(("-w=", "--write-out=")):
            return a.split("=", 1)[1]
    return "simple"


# -- differential runner ---------------------------------------------------------------

Arg = str | Callable[[int], str]


@dataclass
class Outcome:
    """What one etcdctl run looks like after normalization; equal for two correct servers."""

    rc: int
    out: Any
    err: list[str]


def outcome(result: Result, args: Sequence[str], base: int | None) -> Outcome:
    fmt = output_format(args)
    if result.rc != 0 or not result.stdout_bytes.strip():
        out: Any = result.stdout
    elif fmt == "json":
        out = normalize_json(result.stdout, base)
    elif fmt == "fields":
        out = normalize_fields(result.stdout, base)
    elif fmt == "protobuf":
        out = normalize_protobuf(args[0], result.stdout_bytes, base)
    else:
        out = result.stdout
    return Outcome(result.rc, out, normalize_stderr(result.stderr))


class CtlPair:
    """etcdctl against a reference endpoint and an endpoint under test, compared run by run."""

    def __init__(self, ref_endpoint: str, ours_endpoint: str) -> None:
        self.ref = ref_endpoint
        self.ours = ours_endpoint
        self.ref_base = 0
        self.ours_base = 0

    def begin(self) -> None:
        """Revisions in later outputs are compared relative to this point."""
        for attr, ep in (("ref_base", self.ref), ("ours_base", self.ours)):
            c = Client(ep)
            try:
                setattr(self, attr, c.revision())
            finally:
                c.close()

    def run(self, *args: Arg, stdin: str | None = None) -> Outcome:
        """Run ``args`` on both and return the (equal) outcome.

        An argument may be ``make(base) -> str`` for values that are revisions, e.g.
        ``lambda b: str(b + 2)``; simple-format text is compared after replacing each
        server's absolute revisions given that way by ``@+k``.
        """
        ref_args = [a(self.ref_base) if callable(a) else a for a in args]
        ours_args = [a(self.ours_base) if callable(a) else a for a in args]
        o_ref = outcome(run(self.ref, *ref_args, stdin=stdin), ref_args, self.ref_base)
        o_ours = outcome(run(self.ours, *ours_args, stdin=stdin), ours_args, self.ours_base)
        assert o_ref == o_ours, f"etcdctl {ref_args}\netcd: {o_ref}\nours: {o_ours}"
        return o_ref

    def run_rev_text(self, *args: Arg, stdin: str | None = None) -> Outcome:
        """Like ``run`` for simple output that prints revisions (``compaction``); every number becomes ``@+k``."""
        results = []
        for ep, base in ((self.ref, self.ref_base), (self.ours, self.ours_base)):
            a = [x(base) if callable(x) else x for x in args]
            res = run(ep, *a, stdin=stdin)
            text = re.sub(r"\b\d+\b", lambda m, base=base: f"@{int(m[0]) - base:+d}", res.stdout)
            results.append(Outcome(res.rc, text, normalize_stderr(res.stderr)))
        assert results[0] == results[1], f"etcdctl {args}\netcd: {results[0]}\nours: {results[1]}"
        return results[0]
