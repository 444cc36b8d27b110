"""A v2 HTTP API client for tests (stdlib only): requests as curl sends them, answers as (status, headers, body).

``V2Diff`` sends each request to real etcd and to the server under test and normalizes both answers for
comparison: every store index (``modifiedIndex``, ``createdIndex``, an error's ``index``, ``X-Etcd-Index``
and the index in an in-order key's name) is made relative to the index each server had at ``begin()``, so
etcd's extra membership writes in its v2 store do not count; ``expiration`` (a wall-clock time) is dropped
while ``ttl`` is kept; the children of a dir are sorted by key (etcd lists them in map order unless asked
``sorted=true``).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

IN_ORDER = re.compile(r"/(\d{20})(?=/|$)")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def index(self) -> int:
        return int(self.headers["x-etcd-index"])


def request(
    endpoint: str,
    method: str,
    path: str,
    form: dict[str, str] | list[tuple[str, str]] | None = None,
    query: dict[str, str] | list[tuple[str, str]] | None = None,
    timeout: float = 10.0,
    json_body: str | None = None,
    auth: tuple[str, str] | None = None,
) -> Answer:
    """``method path?query`` with ``form`` as an ``application/x-www-form-urlencoded`` body (curl's ``-d``), or
    ``json_body`` as ``application/json`` (the members API and the JSON gateway); ``auth`` is sent as HTTP Basic
    credentials (curl's ``-u user:password``)."""
    host, port = endpoint.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        body: str | None = None
        headers: dict[str, str] = {}
        if form is not None:
            body, headers = urllib.parse.urlencode(form), {"Content-Type": "application/x-www-form-urlencoded"}
        elif json_body is not None:
            body, headers = json_body, {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        conn.request(method, url, body=body, headers=headers)
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode())
    finally:
        conn.close()


def _rebase_key(key: str, base: int) -> str:
    return IN_ORDER.sub(lambda m: f"/#{int(m[1]) - base}", key)


def normalize_node(n: dict[str, Any], base: int) -> dict[str, Any]:
    out = dict(n)
    out.pop("expiration", None)
    for f in ("modifiedIndex", "createdIndex"):
        if f in out:
            out[f] = out[f] - base
    if "key" in out:
        out["key"] = _rebase_key(out["key"], base)
    if "nodes" in out:
        out["nodes"] = sorted((normalize_node(c, base) for c in out["nodes"]), key=lambda c: c.get("key", ""))
    return out


def normalize(a: Answer, base: int) -> dict[str, Any]:
    """What must match between etcd and us: status, index headers (rebased) and the JSON body (rebased)."""
    out: dict[str, Any] = {"status": a.status}
    if "x-etcd-index" in a.headers:
        # A request etcd refuses before it reaches the store carries index 0, on both servers.
        out["X-Etcd-Index"] = a.index() - base if a.index() else 0
    out["raft headers"] = sorted(h for h in ("x-raft-index", "x-raft-term") if h in a.headers)
    try:
        body = json.loads(a.body) if a.body else None
    except json.JSONDecodeError:
        out["body"] = a.body
        return out
    if isinstance(body, dict):
        body = dict(body)
        for f in ("node", "prevNode"):
            if f in body:
                body[f] = normalize_node(body[f], base)
        if "errorCode" in body:
            if body.get("index"):
                body["index"] -= base
            body["cause"] = _rebase_key(body.get("cause", ""), base)
    out["body"] = body
    return out


class Rel(int):
    """A store index relative to ``V2Diff.begin()``: each server is sent its own absolute value."""


def _absolute(v: Any, base: int) -> Any:
    if isinstance(v, dict):
        return {k: str(base + x) if isinstance(x, Rel) else x for k, x in v.items()}
    return v


class V2Diff:
    """Lock-step v2 requests to etcd (``ref``) and to us (``ours``)."""

    def __init__(self, ref: str, ours: str) -> None:
        self.ref, self.ours = ref, ours
        self.ref_base = self.ours_base = 0

    def begin(self, auth: tuple[str, str] | None = None) -> None:
        """Indices from here on are relative to each server's current store index."""
        self.ref_base = request(self.ref, "GET", "/v2/keys/", auth=auth).index()
        self.ours_base = request(self.ours, "GET", "/v2/keys/", auth=auth).index()

    def both(self, method: str, path: str, **kw: Any) -> tuple[Answer, Answer]:
        ref = {k: _absolute(v, self.ref_base) for k, v in kw.items()}
        ours = {k: _absolute(v, self.ours_base) for k, v in kw.items()}
        return request(self.ref, method, path, **ref), request(self.ours, method, path, **ours)

    def run(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """Sends the request to both; asserts the normalized answers are equal and returns etcd's."""
        a, b = self.both(method, path, **kw)
        na, nb = normalize(a, self.ref_base), normalize(b, self.ours_base)
        assert nb == na, f"{method} {path} {kw}:\n etcd: {na}\n ours: {nb}"
        return na
