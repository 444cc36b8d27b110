"""etcd's v2 discovery client (its ``v2discovery``): a new member bootstraps through a discovery URL.

The URL names a dir in some etcd's v2 keys API, e.g. ``http://127.0.0.1:4001/v2/keys/_etcd/registry/TOKEN``
(or a discovery service, such as Debian's ``etcd-discovery``, that serves the same paths). The operator put
the expected cluster size at ``TOKEN/_config/size``. :func:`join_cluster` then, as etcd does:

1. reads the size and the registered members; if the cluster is already full without this member, fails
   with ``ErrFullCluster`` before registering;
2. registers this member: ``PUT TOKEN/<member id hex>?prevExist=false`` with value ``name=peerURL[,...]``
   (an existing key is ``ErrDuplicateID``);
3. waits (``wait=true&recursive=true&waitIndex=``) until ``size`` members are registered; the first ``size``
   by createdIndex form the cluster, returned as an ``--initial-cluster`` string.

The member ids it registers are etcd's for a bootstrap whose cluster token is the discovery URL itself.
Runs once per start (a lifecycle event), in Python, with urllib; transient failures (no answer, 5xx) are
retried with etcd's backoff up to ``MAX_RETRIES`` times.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from pyetcd_fast.etcdmain.flags import new_urls_map

# etcd's client.DefaultRequestTimeout, its retry count and its backoff cap.
REQUEST_TIMEOUT = 5.0
MAX_RETRIES = 5
MAX_BACKOFF = 60.0


class DiscoveryError(Exception):
    """A discovery failure, worded as etcd's (``str(e)`` is e.g. "discovery: cluster is full")."""


ERR_INVALID_URL = "discovery: invalid URL"
ERR_BAD_SIZE_KEY = "discovery: size key is bad"
ERR_SIZE_NOT_FOUND = "discovery: size key not found"
ERR_DUPLICATE_ID = "discovery: found duplicate id"
ERR_DUPLICATE_NAME = "discovery: found duplicate name"
ERR_FULL_CLUSTER = "discovery: cluster is full"
ERR_TOO_MANY_RETRIES = "discovery: too many retries"
ERR_BAD_ENDPOINT = "discovery: bad discovery endpoint"


class _Transient(Exception):
    """No answer, or an answer etcd's client would retry (5xx)."""


def _call(
    method: str, url: str, form: dict[str, str] | None = None, timeout: float | None = REQUEST_TIMEOUT
) -> tuple[Any, int]:
    """One v2 request: the decoded JSON (a ``dict`` with ``errorCode`` for a v2 error) and ``X-Etcd-Index``."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body, index = resp.read(), resp.headers.get("X-Etcd-Index", "0")
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            raise _Transient(f"{method} {url}: {e.code}") from None
        body, index = e.read(), e.headers.get("X-Etcd-Index", "0")
    except (OSError, urllib.error.URLError) as e:
        raise _Transient(f"{method} {url}: {e}") from None
    try:
        return json.loads(body), int(index)
    except ValueError:
        raise DiscoveryError(ERR_BAD_ENDPOINT) from None


def _v2_error(got: dict) -> DiscoveryError:
    """A v2 error the protocol has no name for, worded as etcd's client prints it."""
    return DiscoveryError(f"{got.get('message')} ({got.get('cause')}) [{got.get('index')}]")


class Discovery:
    def __init__(self, durl: str, member_id: int, log: Callable[..., None] | None = None) -> None:
        u = urllib.parse.urlsplit(durl)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise DiscoveryError(ERR_INVALID_URL)
        self.base = f"{u.scheme}://{u.netloc}"
        self.cluster = u.path.rstrip("/")
        self.durl = durl
        self.self_key = f"{self.cluster}/{member_id:x}"
        self.log = log or (lambda msg, **fields: None)
        self.retries = 0

    def _url(self, key: str, **query: str) -> str:
        quoted = urllib.parse.quote(key)
        return self.base + quoted + ("?" + urllib.parse.urlencode(query) if query else "")

    def _request(
        self, method: str, url: str, form: dict[str, str] | None = None, timeout: float | None = REQUEST_TIMEOUT
    ) -> tuple[Any, int]:
        """``_call``, retried with etcd's backoff while the service does not answer (or answers 5xx)."""
        while True:
            try:
                return _call(method, url, form, timeout)
            except _Transient as e:
                self._retry(str(e))

    def _retry(self, why: str) -> None:
        """etcd's logAndBackoffForRetry: 2^n seconds, capped, then ErrTooManyRetries."""
        if self.retries >= MAX_RETRIES:
            raise DiscoveryError(ERR_TOO_MANY_RETRIES)
        wait = min(2.0**self.retries, MAX_BACKOFF)
        self.retries += 1
        self.log("retry connecting to discovery service", url=self.durl, reason=why, backoff=f"{wait}s")
        time.sleep(wait)

    def check_cluster(self) -> tuple[list[dict], int, int]:
        """(registered members sorted by createdIndex, size, the dir's X-Etcd-Index); ErrFullCluster when
        ``size`` others came first."""
        got, _ = self._request("GET", self._url(f"{self.cluster}/_config/size"))
        if got.get("errorCode") == 100:
            raise DiscoveryError(ERR_SIZE_NOT_FOUND)
        if "errorCode" in got:
            raise _v2_error(got)
        try:
            size = int(got["node"]["value"])
        except (KeyError, ValueError):
            raise DiscoveryError(ERR_BAD_SIZE_KEY) from None
        listing, index = self._request("GET", self._url(self.cluster))
        if "errorCode" in listing:
            raise DiscoveryError(ERR_BAD_ENDPOINT)
        nodes = [n for n in listing.get("node", {}).get("nodes", []) if n["key"].rsplit("/", 1)[-1] != "_config"]
        nodes.sort(key=lambda n: n.get("createdIndex", 0))
        me = self.self_key.rsplit("/", 1)[-1]
        for i, n in enumerate(nodes):
            if n["key"].rsplit("/", 1)[-1] == me:
                break
            if i >= size - 1:
                raise DiscoveryError(ERR_FULL_CLUSTER)
        return nodes, size, index

    def create_self(self, contents: str) -> None:
        got, _ = self._request("PUT", self._url(self.self_key), {"value": contents, "prevExist": "false"})
        if got.get("errorCode") == 105:
            raise DiscoveryError(ERR_DUPLICATE_ID)
        if "errorCode" in got:
            raise _v2_error(got)

    def wait_nodes(self, nodes: list[dict], size: int, index: int) -> list[dict]:
        found = nodes[:size]
        for n in found:
            who = "self" if n["key"] == self.self_key else "peer"
            self.log(f"found {who} from discovery server", peer=n["value"])
        after = index
        while len(found) < size:
            self.log("found peers from discovery server; waiting for more", found=len(found), needed=size - len(found))
            wait = self._url(self.cluster, wait="true", recursive="true", waitIndex=str(after + 1))
            got, _ = self._request("GET", wait, timeout=None)
            if got.get("errorCode") == 401:  # the history moved past us: list again
                nodes, size, after = self.check_cluster()
                found = nodes[:size]
                continue
            node = got.get("node") or {}
            after = max(after, node.get("modifiedIndex", after))
            new = got.get("action") in ("create", "set") and node.get("key", "").rsplit("/", 1)[-1] != "_config"
            if new and all(n["key"] != node["key"] for n in found):
                self.log("found peer from discovery server", peer=node.get("value"))
                found.append(node)
        self.log("found all needed peers from discovery server", peers=",".join(n["value"] for n in found))
        return found


def join_cluster(durl: str, member_id: int, self_config: str, log: Callable[..., None] | None = None) -> str:
    """Registers this member and waits for the rest; returns the ``--initial-cluster`` of the new cluster."""
    d = Discovery(durl, member_id, log)
    d.check_cluster()  # a full cluster fails here, before this member registers
    d.create_self(self_config)
    nodes, size, index = d.check_cluster()
    found = d.wait_nodes(nodes, size, index)
    cluster = ",".join(n["value"] for n in found)
    try:
        urls_map = new_urls_map(cluster)
    except ValueError:
        raise DiscoveryError(ERR_INVALID_URL) from None
    if len(urls_map) != size:
        raise DiscoveryError(ERR_DUPLICATE_NAME)
    return cluster
