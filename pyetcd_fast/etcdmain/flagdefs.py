"""Every flag etcd 3.4.23 defines, with its etcd name, kind, default and ``--help`` section.

Contract: ``new_flag_set()`` returns a fresh ``FlagSet`` holding exactly the flags ``etcd`` 3.4.23 accepts
(checked against the real binary: each name here is accepted, anything else is "flag provided but not
defined"). A flag's default equals the matching ``Config`` field's default (a unit test holds this).
Flags this server does not act on yet are still accepted so that scripts written for etcd keep working.
"""

from __future__ import annotations

from pyetcd_fast.etcdmain.flags import Flag, FlagSet

MEMBER = "Member"
CLUSTERING = "Clustering"
SECURITY = "Security"
AUTH = "Auth"
MONITORING = "Profiling and Monitoring"
LOGGING = "Logging"
PROXY = "v2 Proxy (to be deprecated in v4)"
EXPERIMENTAL = "Experimental feature"
UNSAFE = "Unsafe feature"
DEPRECATED = "TO BE DEPRECATED"
HIDDEN = ""  # accepted, not listed by --help (as in etcd)

SECTIONS = (MEMBER, CLUSTERING, SECURITY, AUTH, MONITORING, LOGGING, PROXY, EXPERIMENTAL, UNSAFE, DEPRECATED)

# Flags etcd 2 had; etcd 3.4 still accepts them as booleans and warns that they are ignored.
IGNORED = (
    "cluster-active-size",
    "cluster-remove-delay",
    "cluster-sync-interval",
    "config",
    "force",
    "max-result-buffer",
    "max-retry-attempts",
    "peer-heartbeat-interval",
    "peer-election-timeout",
    "retry-interval",
    "snapshot",
    "v",
    "vv",
    "test.coverprofile",
    "test.outputdir",
)

LOCAL_PEER = ["http://localhost:2380"]
# etcd 2's client defaults: the IANA port and etcd 0.4's 4001, so old tutorials' curl commands reach it.
LOCAL_CLIENT = ["http://localhost:2379", "http://localhost:4001"]

# -addr and friends (etcd 0.4.6), each an IP:port standing for the URL flag it names; etcd 2 refused a
# command line that gave both.
LEGACY_ADDRESS_FLAGS = {
    "addr": "advertise-client-urls",
    "bind-addr": "listen-client-urls",
    "peer-addr": "initial-advertise-peer-urls",
    "peer-bind-addr": "listen-peer-urls",
}


def _f(
    name: str,
    kind: str,
    default: object,
    section: str,
    usage: str,
    *,
    attr: str | None = None,
    choices: tuple[str, ...] = (),
    exceptions: tuple[str, ...] = (),
    shown: str | None = None,
) -> Flag:
    """A flag whose ``Config`` field is its name with ``_`` for ``-``, unless ``attr`` says otherwise."""
    return Flag(
        name=name,
        kind=kind,
        default=default,
        usage=usage,
        section=section,
        attr=name.replace("-", "_") if attr is None else attr,
        choices=choices,
        exceptions=exceptions,
        shown=shown,
    )


def _flags() -> list[Flag]:
    return [
        _f("config-file", "string", "", HIDDEN, "Path to the server configuration file.", attr=""),
        _f("version", "bool", False, HIDDEN, "Print the version and exit.", attr=""),
        # member
        _f("name", "string", "default", MEMBER, "Human-readable name for this member."),
        _f("data-dir", "string", "", MEMBER, "Path to the data directory.", shown="${name}.etcd"),
        _f("wal-dir", "string", "", MEMBER, "Path to a dedicated WAL directory."),
        _f("snapshot-count", "uint", 100000, MEMBER, "Committed transactions that trigger a snapshot to disk."),
        _f("heartbeat-interval", "uint", 100, MEMBER, "Time (in milliseconds) of a heartbeat interval."),
        _f("election-timeout", "uint", 1000, MEMBER, "Time (in milliseconds) for an election to time out."),
        _f(
            "initial-election-tick-advance",
            "bool",
            True,
            MEMBER,
            "Fast-forward the initial election ticks on boot for a faster election.",
        ),
        _f("listen-peer-urls", "urls", LOCAL_PEER, MEMBER, "URLs to listen on for peer traffic.", exceptions=("",)),
        _f(
            "listen-client-urls",
            "urls",
            LOCAL_CLIENT,
            MEMBER,
            "URLs to listen on for client traffic.",
            exceptions=("",),
        ),
        _f("max-snapshots", "uint", 5, MEMBER, "Maximum number of snapshot files to retain (0 is unlimited)."),
        _f("max-wals", "uint", 5, MEMBER, "Maximum number of WAL files to retain (0 is unlimited)."),
        _f("quota-backend-bytes", "int", 0, MEMBER, "Raise an alarm when the backend exceeds this size (0: 2 GiB)."),
        _f("backend-batch-interval", "duration", 0.0, MEMBER, "Longest time before the backend commits a batch."),
        _f("backend-batch-limit", "int", 0, MEMBER, "Most operations before the backend commits a batch."),
        _f("max-txn-ops", "uint", 128, MEMBER, "Maximum number of operations in one transaction."),
        _f("max-request-bytes", "uint", 1572864, MEMBER, "Maximum client request size in bytes."),
        _f(
            "max-concurrent-streams",
            "uint32",
            2**32 - 1,
            MEMBER,
            "Maximum concurrent streams each client can open.",
            shown="math.MaxUint32",
        ),
        _f("grpc-keepalive-min-time", "duration", 5.0, MEMBER, "Minimum time a client should wait between pings."),
        _f("grpc-keepalive-interval", "duration", 7200.0, MEMBER, "Server-to-client ping interval (0 disables)."),
        _f("grpc-keepalive-timeout", "duration", 20.0, MEMBER, "Wait for a ping reply before closing (0 disables)."),
        _f("unsafe-no-fsync", "bool", False, UNSAFE, "Skip fsync of the WAL and backend (unsafe: data loss on crash)."),
        # clustering
        _f(
            "initial-advertise-peer-urls",
            "urls",
            LOCAL_PEER,
            CLUSTERING,
            "This member's peer URLs, as advertised to the rest of the cluster.",
            exceptions=("",),
        ),
        _f(
            "initial-cluster",
            "string",
            "default=http://localhost:2380",
            CLUSTERING,
            "Initial cluster configuration for bootstrapping (name=peer-url,...).",
        ),
        _f(
            "initial-cluster-state",
            "choice",
            "new",
            CLUSTERING,
            "Initial cluster state ('new' or 'existing').",
            choices=("new", "existing"),
        ),
        _f(
            "initial-cluster-token",
            "string",
            "etcd-cluster",
            CLUSTERING,
            "Initial cluster token; keeps separate clusters from mistaking each other's members.",
        ),
        _f(
            "advertise-client-urls",
            "urls",
            LOCAL_CLIENT,
            CLUSTERING,
            "This member's client URLs, as advertised to clients.",
            exceptions=("",),
        ),
        _f("discovery", "string", "", CLUSTERING, "Discovery URL used to bootstrap the cluster."),
        _f(
            "discovery-fallback",
            "choice",
            "proxy",
            CLUSTERING,
            "What to do when discovery fails ('exit' or 'proxy').",
            choices=("proxy", "exit"),
        ),
        _f("discovery-proxy", "string", "", CLUSTERING, "HTTP proxy for traffic to the discovery service."),
        _f("discovery-srv", "string", "", CLUSTERING, "DNS SRV domain used to bootstrap the cluster."),
        _f("discovery-srv-name", "string", "", CLUSTERING, "Suffix of the DNS SRV name queried when bootstrapping."),
        _f("strict-reconfig-check", "bool", True, CLUSTERING, "Reject reconfigurations that would lose quorum."),
        _f("pre-vote", "bool", False, CLUSTERING, "Run an additional Raft election phase (PreVote)."),
        _f(
            "auto-compaction-retention",
            "string",
            "0",
            CLUSTERING,
            "Auto compaction retention (hours or a duration for 'periodic', revisions for 'revision'; 0 disables).",
        ),
        _f(
            "auto-compaction-mode",
            "string",
            "periodic",
            CLUSTERING,
            "How to read --auto-compaction-retention: 'periodic' or 'revision'.",
        ),
        _f("enable-v2", "bool", True, CLUSTERING, "Accept etcd V2 client requests."),
        # security
        _f("cert-file", "string", "", SECURITY, "Client server TLS certificate file."),
        _f("key-file", "string", "", SECURITY, "Client server TLS key file."),
        _f("client-cert-auth", "bool", False, SECURITY, "Require client certificates."),
        _f("client-crl-file", "string", "", SECURITY, "Client certificate revocation list file."),
        _f("client-cert-allowed-hostname", "string", "", SECURITY, "Allowed TLS hostname for client certificates."),
        _f("trusted-ca-file", "string", "", SECURITY, "Client server TLS trusted CA file."),
        _f("auto-tls", "bool", False, SECURITY, "Client TLS with generated certificates."),
        _f("peer-cert-file", "string", "", SECURITY, "Peer server TLS certificate file."),
        _f("peer-key-file", "string", "", SECURITY, "Peer server TLS key file."),
        _f("peer-client-cert-auth", "bool", False, SECURITY, "Require peer client certificates."),
        _f("peer-trusted-ca-file", "string", "", SECURITY, "Peer server TLS trusted CA file."),
        _f("peer-cert-allowed-cn", "string", "", SECURITY, "Required CN of peer client certificates."),
        _f("peer-cert-allowed-hostname", "string", "", SECURITY, "Allowed TLS hostname of peer certificates."),
        _f("peer-auto-tls", "bool", False, SECURITY, "Peer TLS with generated certificates."),
        _f("peer-crl-file", "string", "", SECURITY, "Peer certificate revocation list file."),
        _f("cipher-suites", "strings", [], SECURITY, "Comma-separated TLS cipher suites (empty: Go's defaults)."),
        _f("cors", "urls", ["*"], SECURITY, "Comma-separated CORS origins (empty or * allows all).", exceptions=("*",)),
        _f(
            "host-whitelist",
            "unique-strings",
            ["*"],
            SECURITY,
            "Acceptable hostnames of insecure HTTP requests (empty or * allows all).",
        ),
        # auth
        _f("auth-token", "string", "simple", AUTH, "Auth token type and options ('simple' or 'jwt,...')."),
        _f("bcrypt-cost", "uint", 10, AUTH, "bcrypt cost for hashing auth passwords (4 to 31)."),
        _f("auth-token-ttl", "uint", 300, AUTH, "Time (in seconds) an auth token lives."),
        # profiling and monitoring
        _f("enable-pprof", "bool", False, MONITORING, "Serve runtime profiling data at /debug/pprof/."),
        _f("metrics", "string", "basic", MONITORING, "Exported metrics detail ('basic' or 'extensive')."),
        _f(
            "listen-metrics-urls",
            "urls",
            [],
            MONITORING,
            "URLs to serve the metrics and health endpoints on.",
            exceptions=("",),
        ),
        # logging
        _f("logger", "string", "capnslog", LOGGING, "'zap' or 'capnslog' (accepted; logs are always zap JSON)."),
        _f(
            "log-outputs",
            "unique-strings",
            ["default"],
            LOGGING,
            "Comma-separated log targets: 'default', 'stderr', 'stdout' or file paths.",
        ),
        _f("log-level", "string", "info", LOGGING, "debug, info, warn, error, panic or fatal."),
        _f("log-output", "unique-strings", ["default"], HIDDEN, "DEPRECATED: use --log-outputs.", attr=""),
        # v2 proxy
        _f(
            "proxy",
            "choice",
            "off",
            PROXY,
            "Proxy mode ('off', 'readonly' or 'on').",
            choices=("off", "readonly", "on"),
        ),
        _f("proxy-failure-wait", "uint", 5000, PROXY, "Time (in milliseconds) a failed endpoint is held out."),
        _f("proxy-refresh-interval", "uint", 30000, PROXY, "Time (in milliseconds) between endpoint refreshes."),
        _f("proxy-dial-timeout", "uint", 1000, PROXY, "Time (in milliseconds) for a dial to time out."),
        _f("proxy-write-timeout", "uint", 5000, PROXY, "Time (in milliseconds) for a write to time out."),
        _f("proxy-read-timeout", "uint", 0, PROXY, "Time (in milliseconds) for a read to time out."),
        # experimental
        _f("experimental-initial-corrupt-check", "bool", False, EXPERIMENTAL, "Check data corruption before serving."),
        _f("experimental-corrupt-check-time", "duration", 0.0, EXPERIMENTAL, "Time between cluster corruption checks."),
        _f("experimental-enable-v2v3", "string", "", EXPERIMENTAL, "Serve v2 requests from the v3 store at a prefix."),
        _f(
            "experimental-backend-bbolt-freelist-type",
            "string",
            "array",
            EXPERIMENTAL,
            "bbolt freelist type ('array' or 'map').",
        ),
        _f(
            "experimental-enable-lease-checkpoint",
            "bool",
            False,
            EXPERIMENTAL,
            "Checkpoint lease remaining TTLs through raft.",
        ),
        _f("experimental-enable-lease-checkpoint-persist", "bool", False, HIDDEN, "Persist checkpointed lease TTLs."),
        _f(
            "experimental-compaction-batch-limit",
            "int",
            1000,
            EXPERIMENTAL,
            "Most revisions deleted in one compaction batch.",
        ),
        _f(
            "experimental-snapshot-catchup-entries",
            "uint",
            5000,
            HIDDEN,
            "Raft entries kept after a snapshot for slow followers to catch up from (etcd 3.5's flag).",
        ),
        _f(
            "experimental-peer-skip-client-san-verification",
            "bool",
            False,
            EXPERIMENTAL,
            "Skip SAN verification of peer client certificates.",
        ),
        _f(
            "experimental-watch-progress-notify-interval",
            "duration",
            600.0,
            EXPERIMENTAL,
            "Interval of watch progress notifications.",
        ),
        _f(
            "experimental-warning-apply-duration",
            "duration",
            0.1,
            EXPERIMENTAL,
            "Warn when applying a request takes longer than this.",
        ),
        # unsafe
        _f("force-new-cluster", "bool", False, UNSAFE, "Force a new one-member cluster from the existing data."),
        # to be deprecated
        _f("debug", "bool", False, DEPRECATED, "Debug-level logging (use --log-level=debug)."),
        _f("log-package-levels", "string", "", DEPRECATED, "Per-package log levels (accepted, not used)."),
        _f("enable-grpc-gateway", "bool", True, HIDDEN, "Serve the JSON gRPC gateway."),
        *(_f(name, "ignored", None, HIDDEN, "Ignored (etcd 2 flag).", attr="") for name in IGNORED),
        # etcd 0.4.6's address flags, which etcd 2 still mapped onto the URL flags (LEGACY_ADDRESS_FLAGS)
        *(
            _f(addr, "ip-port", "", HIDDEN, f"DEPRECATED: Use --{urls} instead.", attr="")
            for addr, urls in LEGACY_ADDRESS_FLAGS.items()
        ),
    ]


def new_flag_set() -> FlagSet:
    """A fresh flag set (flags hold their parsed values, so each parse needs its own)."""
    return FlagSet(_flags())
