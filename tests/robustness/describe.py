"""Short, human-readable text for requests, responses, events and operations in checker messages.

Contract: every function returns one line; byte strings are shown as Python literals cut to a few
dozen characters, so a message names the key and value without flooding the report.
"""

from __future__ import annotations

from robustness.history import (
    Compact,
    Delete,
    DeleteResponse,
    KeyValue,
    LeaseGrant,
    LeaseRevoke,
    Operation,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    Request,
    Response,
    Txn,
    TxnResponse,
    WatchEvent,
)


def short(b: bytes, limit: int = 40) -> str:
    text = repr(b)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_kv(kv: KeyValue | None) -> str:
    if kv is None:
        return "none"
    lease = f" lease={kv.lease:x}" if kv.lease else ""
    return (
        f"{short(kv.key)}={short(kv.value)} (create={kv.create_revision} mod={kv.mod_revision} ver={kv.version}{lease})"
    )


def describe_event(ev: WatchEvent | tuple[str, KeyValue]) -> str:
    kind, kv = (ev.type, ev.kv) if isinstance(ev, WatchEvent) else ev
    if kind == "DELETE":
        return f"DELETE {short(kv.key)}@{kv.mod_revision}"
    return f"PUT {describe_kv(kv)}"


def describe_changes(changes: dict[bytes, tuple[str, KeyValue]]) -> str:
    if not changes:
        return "{nothing}"
    return "{" + ", ".join(describe_event(changes[k]) for k in sorted(changes)) + "}"


def _span(key: bytes, range_end: bytes) -> str:
    if range_end == b"":
        return short(key)
    if range_end == b"\0":
        return f"[{short(key)}, end)"
    return f"[{short(key)}, {short(range_end)})"


def describe_request(req: Request) -> str:
    if isinstance(req, Put):
        lease = f", lease={req.lease:x}" if req.lease else ""
        return f"Put({short(req.key)}={short(req.value)}{lease})"
    if isinstance(req, Range):
        flags = (("serializable", req.serializable), ("keys_only", req.keys_only), ("count_only", req.count_only))
        opts = [name for name, on in flags if on]
        if req.revision:
            opts.append(f"rev={req.revision}")
        if req.limit:
            opts.append(f"limit={req.limit}")
        return f"Range({_span(req.key, req.range_end)}{''.join(', ' + o for o in opts)})"
    if isinstance(req, Delete):
        return f"Delete({_span(req.key, req.range_end)})"
    if isinstance(req, Txn):
        cmps = " & ".join(f"{c.target}({short(c.key)}) {c.result} {c.operand!r}" for c in req.compares)
        return (
            f"Txn(if [{cmps}] then [{'; '.join(describe_request(o) for o in req.success)}] "
            f"else [{'; '.join(describe_request(o) for o in req.failure)}])"
        )
    if isinstance(req, LeaseGrant):
        return f"LeaseGrant(id={req.id:x}, ttl={req.ttl})"
    if isinstance(req, LeaseRevoke):
        return f"LeaseRevoke(id={req.id:x})"
    if isinstance(req, Compact):
        return f"Compact({req.revision})"
    return repr(req)


def describe_response(resp: Response | None) -> str:
    if resp is None:
        return "no response"
    if isinstance(resp, RangeResponse):
        kvs = ", ".join(describe_kv(kv) for kv in resp.kvs[:5]) + (", ..." if len(resp.kvs) > 5 else "")
        return f"RangeResponse(rev={resp.revision}, count={resp.count}, more={resp.more}, kvs=[{kvs}])"
    if isinstance(resp, PutResponse):
        return f"PutResponse(rev={resp.revision}, prev_kv={describe_kv(resp.prev_kv)})"
    if isinstance(resp, DeleteResponse):
        prev = ", ".join(describe_kv(kv) for kv in resp.prev_kvs[:5])
        return f"DeleteResponse(rev={resp.revision}, deleted={resp.deleted}, prev_kvs=[{prev}])"
    if isinstance(resp, TxnResponse):
        nested = "; ".join(describe_response(r) for r in resp.responses)
        return f"TxnResponse(rev={resp.revision}, succeeded={resp.succeeded}, [{nested}])"
    return repr(resp)


def describe_op(index: int, op: Operation) -> str:
    ret = "never" if op.ret is None else f"{op.ret:.6f}"
    outcome = f", error {op.error!r}" if op.error else ""
    return f"op #{index} (client {op.client}, {describe_request(op.request)}, call {op.call:.6f}, ret {ret}{outcome})"
