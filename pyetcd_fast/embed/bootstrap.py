"""Who a new member is and whom it starts with: etcd's bootstrap from ``--initial-cluster``.

- ``--initial-cluster-state new``: every member derives the same ids from the peer URLs and the token
  (:func:`compute_ids`), and the initial members become the first entries of its raft log.
- ``--initial-cluster-state existing``: the member asks the running members for the cluster
  (``GET <peer URL>/members``, etcd's ``GetClusterFromRemotePeers``), takes the cluster id from the answer
  and its own id from the member with its peer URLs (``ValidateClusterAndAssignIDs``); the membership then
  arrives through raft.

- ``--discovery URL`` (with state new): the member registers at the discovery URL and waits for the rest
  (:mod:`pyetcd_fast.embed.discovery`); the cluster they form is then bootstrapped as from
  ``--initial-cluster``, with the discovery URL as the cluster token (etcd's choice).

A restart uses none of them: the WAL holds the ids and the backend the membership.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from pyetcd_fast.embed import discovery
from pyetcd_fast.etcdmain.config import (
    CLUSTER_STATE_NEW,
    Config,
    ConfigError,
    compute_ids,
    member_id,
    verify_bootstrap,
)
from pyetcd_fast.etcdmain.log import capnslog_line

# etcd's timeout for asking a peer for the cluster.
FETCH_TIMEOUT = 2.0


@dataclass
class Start:
    """What the native server is opened with when its WAL does not exist yet."""

    member_id: int
    cluster_id: int
    # (id, name, peer URLs) per member known at start.
    members: list[tuple[int, str, list[str]]]
    new_cluster: bool


def new_cluster(cfg: Config) -> Start:
    """The start of a member of a new cluster: everyone's ids from ``--initial-cluster`` and the token, once
    the flags pass etcd's bootstrap checks."""
    try:
        verify_bootstrap(cfg)
    except ValueError as e:
        raise ConfigError(str(e), 1) from None
    cid, mid = compute_ids(cfg)
    urls_map = cfg.initial_cluster_map()
    members = [(member_id(urls, cfg.initial_cluster_token), name, urls) for name, urls in urls_map.items()]
    return Start(mid, cid, members, True)


def fetch_cluster(
    peer_urls: list[str], timeout: float = FETCH_TIMEOUT, context: ssl.SSLContext | None = None
) -> tuple[int, list[dict]]:
    """(cluster id, members) from the first peer that answers ``GET /members`` (``context`` for https peers)."""
    for url in peer_urls:
        try:
            ctx = context if url.startswith("https://") else None
            with urllib.request.urlopen(url.rstrip("/") + "/members", timeout=timeout, context=ctx) as resp:
                members = json.loads(resp.read())
                cid = int(resp.headers.get("X-Etcd-Cluster-ID", "0"), 16)
        except (OSError, ValueError, urllib.error.URLError):
            continue
        if isinstance(members, list) and cid:
            return cid, members
    raise ConfigError(
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs", 1
    )


def join_existing(cfg: Config, context: ssl.SSLContext | None = None) -> Start:
    """The start of a member added with MemberAdd: the cluster as its members report it."""
    try:
        urls_map = cfg.initial_cluster_map()
    except ValueError as e:
        raise ConfigError(f"error setting up initial cluster: {e}", 1) from None
    mine = sorted(cfg.initial_advertise_peer_urls)
    others = [u for name, urls in urls_map.items() if name != cfg.name for u in urls]
    cid, members = fetch_cluster(others, context=context)
    me = next((m for m in members if sorted(m.get("peerURLs") or []) == mine), None)
    if me is None:
        raise ConfigError(
            f"error validating peerURLs {{ClusterID:{cid:x} Members:{members}}}: "
            f"PeerURLs: no match found for existing member ({','.join(mine)})",
            1,
        )
    if len(members) != len(urls_map):
        raise ConfigError(f"error validating peerURLs {{ClusterID:{cid:x}}}: member count is unequal", 1)
    known = [(int(m["id"]), str(m.get("name") or ""), list(m.get("peerURLs") or [])) for m in members]
    return Start(int(me["id"]), cid, known, False)


def via_discovery(cfg: Config, log: Callable[..., None] | None = None) -> Start:
    """The start of a member of a new cluster found through ``--discovery``."""
    peer_urls = sorted(cfg.initial_advertise_peer_urls)
    me = member_id(peer_urls, cfg.discovery)
    self_config = ",".join(f"{cfg.name}={u}" for u in peer_urls)
    try:
        cluster = discovery.join_cluster(cfg.discovery, me, self_config, log)
    except discovery.DiscoveryError as e:
        why = f"failed to join discovery cluster ({e})"
        if str(e) == discovery.ERR_FULL_CLUSTER and cfg.discovery_fallback == "proxy":
            why += "; a proxy (--discovery-fallback=proxy) is not supported here: use --discovery-fallback=exit"
        raise ConfigError(capnslog_line("C", "etcdmain", why), 1) from None
    found = dataclasses.replace(cfg, initial_cluster=cluster, initial_cluster_token=cfg.discovery, discovery="")
    return new_cluster(found)


def plan(cfg: Config, log: Callable[..., None] | None = None, context: ssl.SSLContext | None = None) -> Start:
    """How a member without a WAL starts, by ``--initial-cluster-state`` and ``--discovery``."""
    if cfg.initial_cluster_state == CLUSTER_STATE_NEW and cfg.discovery:
        return via_discovery(cfg, log)
    if cfg.initial_cluster_state == CLUSTER_STATE_NEW:
        return new_cluster(cfg)
    return join_existing(cfg, context)
