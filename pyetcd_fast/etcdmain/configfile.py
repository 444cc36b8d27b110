"""etcd 3.4's YAML configuration file (``--config-file`` / ``ETCD_CONFIG_FILE``) → ``Config``.

Contract: ``config_from_file(path)`` reads the file the way ``embed.ConfigFromFile`` does —

- keys are etcd's flag names (``name``, ``data-dir``, ``heartbeat-interval``, ``initial-cluster``, ...);
  unknown keys are ignored, as Go's JSON decoding ignores them; a missing or null key keeps the default;
- values are typed like etcd's Go struct: URL lists (``listen-client-urls``, ...) are comma-separated
  strings; ``log-outputs`` and ``cipher-suites`` are YAML lists; durations (``grpc-keepalive-*``,
  ``backend-batch-interval``, ``experimental-*-time``) are integer nanoseconds; a scalar given for a string
  key is taken as its text (``name: 1`` is "1"), while a string given for a number or a boolean is an error;
- TLS settings live under ``client-transport-security`` and ``peer-transport-security`` (``cert-file``,
  ``key-file``, ``client-cert-auth``, ``trusted-ca-file``, ``auto-tls``).

Errors: ``ValueError`` carrying etcd's text ("open x: no such file or directory", "error converting YAML to
JSON: ...", "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal string into Go struct
field configYAML.heartbeat-interval of type uint"), which ``parse`` reports as "error verifying flags"; a
bad URL list is a ``ConfigError`` "unexpected error setting up listen-client-urls: ..." printed as is.
"""

from __future__ import annotations

import datetime
from typing import Any

import yaml

from pyetcd_fast.etcdmain.config import DEFAULT_INITIAL_CLUSTER, Config, ConfigError
from pyetcd_fast.etcdmain.flagdefs import new_flag_set
from pyetcd_fast.etcdmain.flags import new_urls
from pyetcd_fast.etcdmain.log import capnslog_line

_JSON_ERR = "error unmarshaling JSON: while decoding JSON: json: "

# Go field types, for etcd's "cannot unmarshal ... of type T" messages.
_GO_TYPES = {
    "string": "string",
    "choice": "string",
    "bool": "bool",
    "uint": "uint",
    "int": "int",
    "uint32": "uint32",
    "duration": "time.Duration",
    "urls": "string",
    "unique-strings": "[]string",
    "strings": "[]string",
}
_GO_TYPE_OVERRIDES = {
    "snapshot-count": "uint64",
    "quota-backend-bytes": "int64",
    "host-whitelist": "string",
    "max-snapshots": "uint",
}
_INT_RANGES = {"uint": (0, 2**64), "uint64": (0, 2**64), "uint32": (0, 2**32), "int": (-(2**63), 2**63)}
_INT_RANGES["int64"] = _INT_RANGES["int"]
_INT_RANGES["time.Duration"] = _INT_RANGES["int"]

# TLS settings are not top-level keys in etcd's file; they sit in the two *-transport-security maps.
_SECURITY = {
    "client-transport-security": {
        "cert-file": "cert_file",
        "key-file": "key_file",
        "client-cert-auth": "client_cert_auth",
        "trusted-ca-file": "trusted_ca_file",
        "auto-tls": "auto_tls",
    },
    "peer-transport-security": {
        "cert-file": "peer_cert_file",
        "key-file": "peer_key_file",
        "client-cert-auth": "peer_client_cert_auth",
        "trusted-ca-file": "peer_trusted_ca_file",
        "auto-tls": "peer_auto_tls",
    },
}
_NOT_TOP_LEVEL = {
    "cert-file",
    "key-file",
    "client-cert-auth",
    "client-crl-file",
    "client-cert-allowed-hostname",
    "trusted-ca-file",
    "auto-tls",
    "peer-cert-file",
    "peer-key-file",
    "peer-client-cert-auth",
    "peer-trusted-ca-file",
    "peer-cert-allowed-cn",
    "peer-cert-allowed-hostname",
    "peer-auto-tls",
    "peer-crl-file",
    "log-output",
}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _decode(value: Any, gotype: str, field: str) -> Any:
    """One YAML value into a Go field of ``gotype`` (``field`` names it in errors)."""

    def mismatch(detail: str = "") -> ValueError:
        kind = _json_kind(value) + (f" {detail}" if detail else "")
        return ValueError(f"{_JSON_ERR}cannot unmarshal {kind} into Go struct field {field} of type {gotype}")

    if gotype == "string":
        # etcd 3.4 does not coerce: "name: 123" is "cannot unmarshal number into ... of type string".
        if isinstance(value, datetime.date):
            return value.isoformat()  # YAML timestamps reach Go's JSON as strings
        if not isinstance(value, str):
            raise mismatch()
        return value
    if gotype == "bool":
        if not isinstance(value, bool):
            raise mismatch()
        return value
    if gotype == "[]string":
        if not isinstance(value, list):
            raise mismatch()
        return [_decode(v, "string", field) for v in value]  # Go names the element type: "of type string"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise mismatch()
    low, high = _INT_RANGES[gotype]
    if value != int(value) or not low <= value < high:
        raise mismatch(f"{value:g}" if isinstance(value, float) else str(value))
    return int(value)


def _read(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except IsADirectoryError:
        raise ValueError(f"read {path}: is a directory") from None
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise ValueError(f"open {path}: {reason}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ValueError(f"error converting YAML to JSON: yaml: {where}{problem}") from None


def _urls(key: str, value: str, exceptions: tuple[str, ...] = ()) -> list[str]:
    if value in exceptions:
        return [value] if value else []
    try:
        return new_urls(value.split(","))
    except ValueError as e:
        # etcd prints this one itself (fmt.Fprintf(os.Stderr, ...)) and exits 1.
        raise ConfigError(f"unexpected error setting up {key}: {e}", 1) from None


def config_from_file(path: str) -> Config:
    """embed.ConfigFromFile + etcdmain's configFromFile; see the module docstring."""
    doc = _read(path)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ValueError(f"{_JSON_ERR}cannot unmarshal {_json_kind(doc)} into Go value of type embed.configYAML")

    cfg = Config()
    for flag in new_flag_set().flags.values():
        key = flag.name
        if not flag.attr or key in _NOT_TOP_LEVEL or doc.get(key) is None:
            continue
        gotype = _GO_TYPE_OVERRIDES.get(key, _GO_TYPES[flag.kind])
        value = _decode(doc[key], gotype, f"configYAML.{key}")
        if flag.kind == "duration":
            value = value / 1e9
        elif flag.kind == "urls":
            value = _urls(key, value, flag.exceptions)
        elif key == "host-whitelist":
            value = sorted(set(value.split(",")))
        elif flag.kind == "choice" and value not in flag.choices:
            if key == "initial-cluster-state":
                pass  # Validate reports it: unexpected clusterState "x"
            else:
                # etcdmain calls Go's log.Fatalf here, which capnslog prints at level I.
                name = "proxyFlag" if key == "proxy" else f"{key} flag"
                raise ConfigError(capnslog_line("I", "", f"unexpected error setting up {name}: invalid value"), 1)
        setattr(cfg, flag.attr, value)

    for section, keys in _SECURITY.items():
        sub = doc.get(section)
        if sub is None:
            continue
        if not isinstance(sub, dict):
            raise ValueError(
                f"{_JSON_ERR}cannot unmarshal {_json_kind(sub)} into Go struct field configYAML.{section} "
                "of type embed.securityConfig"
            )
        for key, attr in keys.items():
            if sub.get(key) is not None:
                gotype = "bool" if key in ("client-cert-auth", "auto-tls") else "string"
                setattr(cfg, attr, _decode(sub[key], gotype, f"securityConfig.{section}.{key}"))

    # embed.configFromYAML: discovery replaces the default initial cluster; an empty state means "new".
    if (cfg.discovery or cfg.discovery_srv) and cfg.initial_cluster == DEFAULT_INITIAL_CLUSTER:
        cfg.initial_cluster = ""
    if cfg.initial_cluster_state == "":
        cfg.initial_cluster_state = "new"
    return cfg
