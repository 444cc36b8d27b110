"""etcd 3.4's configuration: flags, ``ETCD_*`` environment variables or a YAML file in; a checked ``Config`` out.

Contract (``parse(argv, environ)``), in etcd's order (``etcdmain/config.go``, ``embed/config.go``):

1. Parse the flags (``flags.FlagSet``). ``--help`` → ``ConfigError`` with the usage and exit code 0;
   ``--version`` → the version text, exit 0; a malformed command line → Go's message plus the short usage,
   exit 2. A positional argument is "'foo' is not a valid flag" (exit 1).
2. ``--config-file`` (or ``ETCD_CONFIG_FILE``) given: the YAML file (etcd's keys, see ``configfile``) is the
   whole configuration; other flags and environment variables are ignored. Otherwise every flag not on the
   command line reads ``ETCD_<FLAG_NAME>``; one set both ways is fatal (exit 1), an unknown ``ETCD_*`` only
   warns. What etcd logs at this stage goes to ``stderr`` in capnslog's plain format, as etcd's does.
3. ``validate``: etcd's ``Config.Validate`` checks and messages (exit 1; exit 2 for an unknown log level,
   where etcd 3.4 panics). With ``--logger zap`` on the command line the failure is a zap JSON line.
4. Defaults that depend on others: ``--initial-cluster`` becomes ``<name>=<initial-advertise-peer-urls>``
   when only ``--name`` was changed; ``--data-dir`` is ``<name>.etcd`` (``Config.data_dir_path``).
5. A member with no WAL yet must find itself in ``--initial-cluster`` with the URLs it advertises
   (etcd's ``VerifyBootstrap``); a member with a WAL takes its identity from the WAL instead.

``compute_ids(cfg)`` is etcd's bootstrap identity: a member ID is the first 8 bytes (big endian) of
``sha1(sorted peer URLs joined + initial-cluster-token)``; the cluster ID is the same over the sorted member
IDs as 8-byte big-endian words. The default single member is 8e9e05c52164694d in cluster cdf818194e3a8c32.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO

from pyetcd_fast.etcdmain import help as helptext
from pyetcd_fast.etcdmain.flagdefs import LEGACY_ADDRESS_FLAGS, new_flag_set
from pyetcd_fast.etcdmain.flags import EnvReport, FlagError, FlagSet, HelpRequested, new_urls_map
from pyetcd_fast.etcdmain.log import capnslog_line, zap_line

DEFAULT_NAME = "default"
DEFAULT_INITIAL_CLUSTER = "default=http://localhost:2380"
CLUSTER_STATE_NEW, CLUSTER_STATE_EXISTING = "new", "existing"
MAX_ELECTION_MS = 50000  # embed.maxElectionMs
DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024  # etcdserver.DefaultQuotaBytes, used when quota-backend-bytes is 0
LOGGERS = ("capnslog", "zap")
LOG_LEVELS = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")

# embed.ErrUnsetAdvertiseClientURLsFlag
ERR_UNSET_ADVERTISE_CLIENT_URLS = "--advertise-client-urls is required when --listen-client-urls is set explicitly"


class ConfigError(Exception):
    """Why etcd would not start, ready to print: ``message`` (no trailing newline) and the ``exit_code``.

    Exit code 0 (``--help``, ``--version``): print ``message`` to stdout. Otherwise print it to stderr.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass
class Config:
    """One member's configuration; field names are etcd's flag names with ``_`` for ``-``.

    Durations are float seconds; URL lists are sorted, as etcd keeps them. Fields mirror every etcd 3.4
    flag we accept, including ones this server does not act on yet (TLS, discovery, proxy, ...).
    """

    # member
    name: str = DEFAULT_NAME
    data_dir: str = ""
    wal_dir: str = ""
    snapshot_count: int = 100000
    heartbeat_interval: int = 100
    election_timeout: int = 1000
    initial_election_tick_advance: bool = True
    listen_peer_urls: list[str] = field(default_factory=lambda: ["http://localhost:2380"])
    listen_client_urls: list[str] = field(default_factory=lambda: ["http://localhost:2379", "http://localhost:4001"])
    max_snapshots: int = 5
    max_wals: int = 5
    quota_backend_bytes: int = 0
    backend_batch_interval: float = 0.0
    backend_batch_limit: int = 0
    max_txn_ops: int = 128
    max_request_bytes: int = 1572864
    max_concurrent_streams: int = 2**32 - 1
    grpc_keepalive_min_time: float = 5.0
    grpc_keepalive_interval: float = 7200.0
    grpc_keepalive_timeout: float = 20.0
    unsafe_no_fsync: bool = False
    # clustering
    initial_advertise_peer_urls: list[str] = field(default_factory=lambda: ["http://localhost:2380"])
    initial_cluster: str = DEFAULT_INITIAL_CLUSTER
    initial_cluster_state: str = CLUSTER_STATE_NEW
    initial_cluster_token: str = "etcd-cluster"
    advertise_client_urls: list[str] = field(default_factory=lambda: ["http://localhost:2379", "http://localhost:4001"])
    discovery: str = ""
    discovery_fallback: str = "proxy"
    discovery_proxy: str = ""
    discovery_srv: str = ""
    discovery_srv_name: str = ""
    strict_reconfig_check: bool = True
    pre_vote: bool = False
    auto_compaction_retention: str = "0"
    auto_compaction_mode: str = "periodic"
    enable_v2: bool = True
    # security
    cert_file: str = ""
    key_file: str = ""
    client_cert_auth: bool = False
    client_crl_file: str = ""
    client_cert_allowed_hostname: str = ""
    trusted_ca_file: str = ""
    auto_tls: bool = False
    peer_cert_file: str = ""
    peer_key_file: str = ""
    peer_client_cert_auth: bool = False
    peer_trusted_ca_file: str = ""
    peer_cert_allowed_cn: str = ""
    peer_cert_allowed_hostname: str = ""
    peer_auto_tls: bool = False
    peer_crl_file: str = ""
    cipher_suites: list[str] = field(default_factory=list)
    cors: list[str] = field(default_factory=lambda: ["*"])
    host_whitelist: list[str] = field(default_factory=lambda: ["*"])
    # auth
    auth_token: str = "simple"
    bcrypt_cost: int = 10
    auth_token_ttl: int = 300
    # profiling and monitoring
    enable_pprof: bool = False
    metrics: str = "basic"
    listen_metrics_urls: list[str] = field(default_factory=list)
    # logging
    logger: str = "capnslog"
    log_outputs: list[str] = field(default_factory=lambda: ["default"])
    log_level: str = "info"
    debug: bool = False
    log_package_levels: str = ""
    # v2 proxy
    proxy: str = "off"
    proxy_failure_wait: int = 5000
    proxy_refresh_interval: int = 30000
    proxy_dial_timeout: int = 1000
    proxy_write_timeout: int = 5000
    proxy_read_timeout: int = 0
    # experimental
    experimental_initial_corrupt_check: bool = False
    experimental_corrupt_check_time: float = 0.0
    experimental_enable_v2v3: str = ""
    experimental_backend_bbolt_freelist_type: str = "array"
    experimental_enable_lease_checkpoint: bool = False
    experimental_enable_lease_checkpoint_persist: bool = False
    experimental_compaction_batch_limit: int = 1000
    # raft entries kept behind a snapshot for slow followers (etcd 3.4's fixed 5000; the flag is etcd 3.5's)
    experimental_snapshot_catchup_entries: int = 5000
    experimental_peer_skip_client_san_verification: bool = False
    experimental_watch_progress_notify_interval: float = 600.0
    experimental_warning_apply_duration: float = 0.1
    # unsafe
    force_new_cluster: bool = False
    enable_grpc_gateway: bool = True
    # where the configuration came from
    config_file: str = ""

    @property
    def data_dir_path(self) -> str:
        """``--data-dir``, or etcd's default ``<name>.etcd``."""
        return self.data_dir or f"{self.name}.etcd"

    @property
    def member_dir(self) -> str:
        return os.path.join(self.data_dir_path, "member")

    @property
    def wal_dir_path(self) -> str:
        """``--wal-dir``, or ``<data-dir>/member/wal``."""
        return self.wal_dir or os.path.join(self.member_dir, "wal")

    @property
    def snap_dir(self) -> str:
        return os.path.join(self.member_dir, "snap")

    @property
    def quota_backend_bytes_effective(self) -> int | None:
        """The backend quota etcd enforces: 0 means its 2 GiB default, a negative value disables it (None)."""
        if self.quota_backend_bytes < 0:
            return None
        return self.quota_backend_bytes or DEFAULT_QUOTA_BYTES

    def initial_cluster_map(self) -> dict[str, list[str]]:
        """``--initial-cluster`` as name → sorted peer URLs (etcd's ``types.NewURLsMap``)."""
        return new_urls_map(self.initial_cluster)


def parse(argv: list[str], environ: Mapping[str, str], *, stderr: IO[str] | None = None) -> Config:
    """etcd 3.4's command line → a validated ``Config``; raises ``ConfigError`` where etcd would exit."""
    out = stderr if stderr is not None else sys.stderr
    fs = new_flag_set()
    try:
        fs.parse(argv)
    except HelpRequested:
        raise ConfigError(helptext.usage(fs), 0) from None
    except FlagError as e:
        raise ConfigError(f"{e}\n{helptext.USAGE_LINE}", 2) from None
    for name in fs.ignored_seen:
        _note(out, "W", "pkg/flags", f'flag "-{name}" is no longer supported - ignoring.')
    if fs.args:
        raise _verify_failed(f"'{fs.args[0]}' is not a valid flag", zap=False)
    if fs["version"].value:
        raise ConfigError(helptext.version(), 0)

    # ETCD_CONFIG_FILE is read on its own: it decides whether the other variables count at all.
    config_file = fs["config-file"].value or environ.get("ETCD_CONFIG_FILE", "")
    if config_file:
        from pyetcd_fast.etcdmain.configfile import config_from_file

        _note(
            out,
            "I",
            "etcdmain",
            f'Loading server configuration from "{config_file}". Other configuration command line flags '
            "and environment variables will be ignored if provided.",
        )
        try:
            cfg = config_from_file(config_file)
        except ValueError as e:
            raise _verify_failed(str(e), zap=False) from None
        cfg.config_file = config_file
        from_cmd_line = False
    else:
        cfg = _config_from_cmd_line(fs, environ, out)
        from_cmd_line = True

    validate(cfg, zap_errors=from_cmd_line and cfg.logger == "zap")
    if cfg.debug:
        cfg.log_level = "debug"
    if not cfg.data_dir:
        default_dir = f"{cfg.name}.etcd"
        if cfg.logger == "zap":
            fields = {"data-dir": default_dir}
            out.write(zap_line("warn", "'data-dir' was empty; using default", "etcdmain/etcd.go:115", **fields) + "\n")
        else:
            _note(out, "W", "etcdmain", f"no data-dir provided, using default data-dir ./{default_dir}")
    _update_default_cluster_from_name(cfg)
    if cfg.initial_cluster_state == CLUSTER_STATE_NEW and not _have_wal(cfg.wal_dir_path):
        try:
            verify_bootstrap(cfg)
        except ValueError as e:
            raise _start_failed(cfg, str(e)) from None
    elif cfg.initial_cluster_state == CLUSTER_STATE_EXISTING and cfg.discovery:
        raise _start_failed(cfg, "discovery URL should not be set when joining existing initial cluster")
    return cfg


def _config_from_cmd_line(fs: FlagSet, environ: Mapping[str, str], out: IO[str]) -> Config:
    """etcdmain's ``configFromCmdLine``: environment, then the flag values into a ``Config``."""
    report = fs.set_from_env("ETCD", environ)
    _log_env(report, out)
    if report.conflict is not None:
        raise ConfigError(
            capnslog_line(
                "C",
                "pkg/flags",
                f'conflicting environment variable "{report.conflict}" is shadowed by corresponding '
                "command-line flag (either unset environment variable or disable flag)",
            ),
            1,
        )
    if report.error is not None:
        raise _verify_failed(report.error, zap=False)

    cfg = Config()
    for flag in fs.flags.values():
        if flag.attr:
            setattr(cfg, flag.attr, flag.value)
    if fs.is_set("log-output") and not fs.is_set("log-outputs"):
        cfg.log_outputs = fs["log-output"].value  # the deprecated spelling, still honoured by 3.4
    for addr, urls in LEGACY_ADDRESS_FLAGS.items():
        # etcd 2's flags.URLsFromFlags: the address becomes the URL flag's one URL (https with TLS set up).
        if fs.is_set(addr):
            if fs.is_set(urls):
                raise _verify_failed(f"Set only one of flags -{urls} and -{addr}", zap=False)
            peer = addr.startswith("peer")
            tls = cfg.peer_cert_file or cfg.peer_auto_tls if peer else cfg.cert_file or cfg.auto_tls
            setattr(cfg, urls.replace("-", "_"), [f"{'https' if tls else 'http'}://{fs[addr].value}"])
            fs[urls].is_set = True  # as if given: the advertise-client-urls rule below sees it

    # etcd drops the default advertise-client-urls once listen-client-urls is given, so a member never
    # advertises localhost by accident; validate() then asks for --advertise-client-urls.
    if fs.is_set("listen-client-urls") and not fs.is_set("advertise-client-urls") and not _may_be_proxy(cfg):
        cfg.advertise_client_urls = []
    if (cfg.discovery or cfg.discovery_srv or cfg.discovery_srv_name) and not fs.is_set("initial-cluster"):
        cfg.initial_cluster = ""
    return cfg


def _log_env(report: EnvReport, out: IO[str]) -> None:
    for key, val in report.used:
        _note(out, "I", "pkg/flags", f"recognized and used environment variable {key}={val}")
    for name in report.ignored_flags:
        _note(out, "W", "pkg/flags", f'flag "-{name}" is no longer supported - ignoring.')
    for key, val in report.unrecognized:
        _note(out, "W", "pkg/flags", f"unrecognized environment variable {key}={val}")


def _may_be_proxy(cfg: Config) -> bool:
    return cfg.proxy != "off" or (cfg.discovery != "" and cfg.discovery_fallback == "proxy")


def validate(cfg: Config, *, zap_errors: bool = False) -> None:
    """etcd's ``Config.Validate`` (and etcdmain's proxy exception); raises ``ConfigError``."""
    if cfg.logger not in LOGGERS:
        raise _verify_failed(f'unknown logger option "{cfg.logger}"', zap=False)
    level = "debug" if cfg.debug else cfg.log_level
    if level not in LOG_LEVELS:
        # etcd 3.4 panics here (logutil.ConvertToZapLevel), which exits 2.
        raise ConfigError(f'panic: unknown level "{level}"', 2)
    try:
        _validate(cfg)
    except ValueError as e:
        err = str(e)
        if err == ERR_UNSET_ADVERTISE_CLIENT_URLS and _may_be_proxy(cfg):
            return
        raise _verify_failed(err, zap=zap_errors) from None


def _validate(cfg: Config) -> None:
    for urls in (cfg.listen_peer_urls, cfg.listen_client_urls, cfg.listen_metrics_urls):
        _check_bind_urls(urls)
    for flag, urls in (
        ("--initial-advertise-peer-urls", cfg.initial_advertise_peer_urls),
        ("--advertise-client-urls", cfg.advertise_client_urls),
    ):
        for url in urls:
            if _url_host(url) == "":
                raise ValueError(f'{flag} "{",".join(urls)}" must be "host:port" (unexpected empty host ({url}))')
    if cfg.initial_cluster_state not in (CLUSTER_STATE_NEW, CLUSTER_STATE_EXISTING):
        raise ValueError(f'unexpected clusterState "{cfg.initial_cluster_state}"')
    if sum(1 for v in (cfg.discovery, cfg.initial_cluster, cfg.discovery_srv) if v) > 1:
        raise ValueError(
            'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or '
            '"discovery-srv"'
        )
    if cfg.heartbeat_interval <= 0:
        raise ValueError(f"--heartbeat-interval must be >0 (set to {cfg.heartbeat_interval}ms)")
    if cfg.election_timeout <= 0:
        raise ValueError(f"--election-timeout must be >0 (set to {cfg.election_timeout}ms)")
    if 5 * cfg.heartbeat_interval > cfg.election_timeout:
        raise ValueError(
            f"--election-timeout[{cfg.election_timeout}ms] should be at least as 5 times as "
            f"--heartbeat-interval[{cfg.heartbeat_interval}ms]"
        )
    if cfg.election_timeout > MAX_ELECTION_MS:
        raise ValueError(
            f"--election-timeout[{cfg.election_timeout}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms"
        )
    if cfg.listen_client_urls and not cfg.advertise_client_urls:
        raise ValueError(ERR_UNSET_ADVERTISE_CLIENT_URLS)
    if cfg.auto_compaction_mode not in ("", "periodic", "revision"):
        raise ValueError(f'unknown auto-compaction-mode "{cfg.auto_compaction_mode}"')


def _url_host(url: str) -> str:
    host = url.partition("://")[2].rpartition("@")[2]
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rpartition(":")[0]


def _check_bind_urls(urls: list[str]) -> None:
    """embed.checkBindURLs: a listener binds an IP or "localhost", never a name to resolve."""
    for url in urls:
        if url.startswith(("unix://", "unixs://")):
            continue
        host = _url_host(url)
        if host == "localhost":
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"expected IP in URL for binding ({url})") from None


def _update_default_cluster_from_name(cfg: Config) -> None:
    """embed.UpdateDefaultClusterFromName: ``etcd --name abc`` alone bootstraps ``abc=<its peer URLs>``."""
    if cfg.name != DEFAULT_NAME and cfg.initial_cluster == DEFAULT_INITIAL_CLUSTER:
        name = cfg.name or DEFAULT_NAME
        cfg.initial_cluster = ",".join(f"{name}={u}" for u in cfg.initial_advertise_peer_urls)


def _have_wal(wal_dir: str) -> bool:
    """wal.Exist: the directory holds at least one ``*.wal`` file."""
    try:
        return any(n.endswith(".wal") for n in os.listdir(wal_dir))
    except OSError:
        return False


def verify_bootstrap(cfg: Config) -> None:
    """etcdserver's ``VerifyBootstrap`` for a new member; raises ValueError with etcd's message."""
    if cfg.discovery or cfg.discovery_srv:
        return  # the cluster comes from discovery, which this server does not do yet
    try:
        urls_map = cfg.initial_cluster_map()
    except ValueError as e:
        raise ValueError(f"error setting up initial cluster: {e}") from None
    if cfg.name not in urls_map:
        raise ValueError(f'couldn\'t find local name "{cfg.name}" in the initial cluster configuration')
    _advertise_matches_cluster(cfg, urls_map[cfg.name])
    seen: set[str] = set()
    for urls in urls_map.values():
        for u in urls:
            if u in seen:
                pairs = sorted(f"{n}={x}" for n, us in urls_map.items() for x in us)
                raise ValueError(f"initial cluster {','.join(pairs)} has duplicate url")
            seen.add(u)


def _resolve(url: str) -> str:
    """netutil's resolveTCPAddrs, roughly: ``http://localhost:2380`` → ``http://127.0.0.1:2380``."""
    scheme, _, hostport = url.partition("://")
    host, port = _url_host(url), hostport.rpartition(":")[2]
    try:
        ipaddress.ip_address(host)
        return url
    except ValueError:
        pass
    try:
        return f"{scheme}://{socket.gethostbyname(host)}:{port}"
    except OSError:
        return url


def _advertise_matches_cluster(cfg: Config, cluster_urls: list[str]) -> None:
    """etcdserver's ``advertiseMatchesCluster``: --initial-advertise-peer-urls equals this member's entry."""
    ap = sorted(cfg.initial_advertise_peer_urls)
    urls = sorted(cluster_urls)
    if len(ap) != len(urls):
        reason = f"len({_go_quote_list(ap)}) != len({_go_quote_list(urls)})"
    else:
        mismatch = [(a, b) for a, b in zip(ap, urls, strict=True) if a != b and _resolve(a) != _resolve(b)]
        if not mismatch:
            return
        reason = f'resolved urls: "{mismatch[0][0]}" != "{mismatch[0][1]}"'
    ap_str = ",".join(ap)
    missing = sorted(set(urls) - set(ap))
    if missing:
        mstr = ",".join(f"{cfg.name}={u}" for u in missing)
        raise ValueError(
            f"--initial-cluster has {mstr} but missing from --initial-advertise-peer-urls={ap_str} ({reason})"
        )
    own = ",".join(f"{cfg.name}={u}" for u in ap)
    extra = sorted(set(ap) - set(urls))
    if extra:
        raise ValueError(
            f"--initial-advertise-peer-urls has {','.join(extra)} but missing from --initial-cluster={own}"
        )
    raise ValueError(f"failed to resolve {ap_str} to match --initial-cluster={own} ({reason})")


def _go_quote_list(items: list[str]) -> str:
    return "[" + " ".join(f'"{s}"' for s in items) + "]"


def member_id(peer_urls: list[str], token: str) -> int:
    """membership.NewMember's ID for a bootstrapping member (no timestamp: ``now`` is nil)."""
    data = "".join(sorted(peer_urls)) + token
    return struct.unpack(">Q", hashlib.sha1(data.encode()).digest()[:8])[0]


def cluster_id(member_ids: list[int]) -> int:
    """RaftCluster.genID: sha1 over the sorted member IDs as 8-byte big-endian words."""
    data = b"".join(struct.pack(">Q", m) for m in sorted(member_ids))
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]


def compute_ids(cfg: Config) -> tuple[int, int]:
    """(cluster ID, this member's ID) as etcd derives them when bootstrapping from ``--initial-cluster``."""
    try:
        urls_map = cfg.initial_cluster_map()
    except ValueError as e:
        raise ConfigError(f"error setting up initial cluster: {e}") from None
    if cfg.name not in urls_map:
        raise ConfigError(f'couldn\'t find local name "{cfg.name}" in the initial cluster configuration')
    ids = {name: member_id(urls, cfg.initial_cluster_token) for name, urls in urls_map.items()}
    return cluster_id(list(ids.values())), ids[cfg.name]


def _note(out: IO[str], level: str, pkg: str, msg: str) -> None:
    out.write(capnslog_line(level, pkg, msg) + "\n")
    out.flush()


def _verify_failed(err: str, *, zap: bool) -> ConfigError:
    """etcdmain's "error verifying flags" exit (1), in the logger format etcd would be using by then."""
    if zap:
        lines = [zap_line("warn", "failed to verify flags", "etcdmain/etcd.go:66", error=err)]
        if err == ERR_UNSET_ADVERTISE_CLIENT_URLS:
            lines.append(zap_line("warn", "advertise client URLs are not set", "etcdmain/etcd.go:73", error=err))
        return ConfigError("\n".join(lines), 1)
    lines = [capnslog_line("E", "etcdmain", f"error verifying flags, {err}. See 'etcd --help'.")]
    if err == ERR_UNSET_ADVERTISE_CLIENT_URLS:
        lines.append(
            capnslog_line(
                "E",
                "etcdmain",
                "When listening on specific address(es), this etcd process must advertise accessible url(s) "
                "to each connected client.",
            )
        )
    return ConfigError("\n".join(lines), 1)


def _start_failed(cfg: Config, err: str) -> ConfigError:
    """etcdmain's exit (1) when the member cannot bootstrap from its initial cluster."""
    if cfg.logger == "zap":
        return ConfigError(
            zap_line("warn", "failed to start etcd", "etcdmain/etcd.go:176", error=err)
            + "\n"
            + zap_line("fatal", "discovery failed", "etcdmain/etcd.go:271", error=err),
            1,
        )
    return ConfigError(capnslog_line("C", "etcdmain", err), 1)
