"""A member's TLS set-up from its flags, once at start (etcd's ``embed`` listener configuration).

``prepare`` turns the client flags (``--cert-file``, ``--key-file``, ``--trusted-ca-file``,
``--client-cert-auth``, ``--client-crl-file``, ``--client-cert-allowed-hostname``, ``--auto-tls``) and the peer
flags (``--peer-*``) into the two dicts the native edge and transport take, makes the ``--auto-tls`` certificates
under ``<data-dir>/fixtures/{client,peer}`` (kept across restarts, as etcd does), and checks everything a
listener will need — an https URL with no certificate, an unreadable file, a key that does not match, an
unknown cipher suite — raising ``OSError`` with etcd's message before the member opens its data. Which
listener speaks TLS is its URL's scheme; an http listener ignores the files (with etcd's warning). Nothing here
runs per request: the native side loads the files once and re-reads them when they change.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pyetcd_fast import _native
from pyetcd_fast.etcdmain.config import Config

# etcd 3.4's SelfCert: a year.
SELF_CERT_DAYS = 365


@dataclass
class Tls:
    """The flags of each side, as the native ``serve``/``serve_peers`` take them."""

    client: dict[str, object]
    peer: dict[str, object]


def is_tls(url: str) -> bool:
    return url.startswith(("https://", "unixs://"))


def host_port(url: str) -> str:
    return urlsplit(url).netloc


def _has_files(info: dict[str, object]) -> bool:
    return bool(info["cert_file"] and info["key_file"])


def prepare(cfg: Config, log: Callable[..., None]) -> Tls:
    """The TLS of both sides, certificates made and checked; raises OSError as etcd fails its start."""
    client: dict[str, object] = {
        "cert_file": cfg.cert_file,
        "key_file": cfg.key_file,
        "trusted_ca_file": cfg.trusted_ca_file,
        "client_cert_auth": cfg.client_cert_auth,
        "crl_file": cfg.client_crl_file,
        "allowed_hostname": cfg.client_cert_allowed_hostname,
        "cipher_suites": list(cfg.cipher_suites),
    }
    peer: dict[str, object] = {
        "cert_file": cfg.peer_cert_file,
        "key_file": cfg.peer_key_file,
        "trusted_ca_file": cfg.peer_trusted_ca_file,
        "client_cert_auth": cfg.peer_client_cert_auth,
        "crl_file": cfg.peer_crl_file,
        "allowed_cn": cfg.peer_cert_allowed_cn,
        "allowed_hostname": cfg.peer_cert_allowed_hostname,
        "cipher_suites": list(cfg.cipher_suites),
    }
    fixtures = os.path.join(cfg.data_dir_path, "fixtures")
    # Peers first, as etcd configures its peer listeners before its client ones.
    _auto(peer, cfg.peer_auto_tls, os.path.join(fixtures, "peer"), cfg.listen_peer_urls, "peer", log)
    for url in cfg.listen_peer_urls:
        if is_tls(url) and not _has_files(peer):
            raise OSError(f"cannot listen on TLS for {host_port(url)}: KeyFile and CertFile are not presented")
        _warn_plain(url, peer, "peer", log)
    _auto(client, cfg.auto_tls, os.path.join(fixtures, "client"), cfg.listen_client_urls, "client", log)
    for url in cfg.listen_client_urls:
        if is_tls(url) and not _has_files(client):
            raise OSError(
                f"TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
            )
        _warn_plain(url, client, "client", log)
    for info, listens in ((peer, cfg.listen_peer_urls), (client, cfg.listen_client_urls)):
        if any(is_tls(u) for u in listens):
            _native.check_tls(info, server=True)
    if any(is_tls(u) for u in cfg.initial_advertise_peer_urls) or _has_files(peer):
        _native.check_tls(peer, server=False)
    return Tls(client, peer)


def _auto(
    info: dict[str, object], auto: bool, folder: str, urls: list[str], side: str, log: Callable[..., None]
) -> None:
    if not auto:
        return
    if _has_files(info):
        log(f"ignoring {side} auto TLS since certs given")
        return
    cert, key = _native.self_cert(folder, [host_port(u) for u in urls], SELF_CERT_DAYS)
    # A self-signed certificate verifies nothing: peers dialing with it skip verification (Go's selfCert).
    info.update(cert_file=cert, key_file=key, insecure_skip_verify=True)


def _warn_plain(url: str, info: dict[str, object], side: str, log: Callable[..., None]) -> None:
    if is_tls(url):
        return
    if _has_files(info):
        log("scheme is HTTP while key and cert files are present; ignoring key and cert files", **{f"{side}-url": url})
    if info["client_cert_auth"]:
        flag = "--peer-client-cert-auth" if side == "peer" else "--client-cert-auth"
        log(f"scheme is HTTP while {flag} is enabled; ignoring client cert auth for this URL", **{f"{side}-url": url})


def ssl_context(info: dict[str, object]) -> ssl.SSLContext:
    """A client context with a side's CA and certificate (a joining member asking its peers for the cluster)."""
    ctx = ssl.create_default_context(cafile=str(info["trusted_ca_file"]) or None)
    if info.get("insecure_skip_verify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if info["cert_file"] and info["key_file"]:
        ctx.load_cert_chain(str(info["cert_file"]), str(info["key_file"]))
    return ctx
