"""Go's ``flag`` package and etcd's ``pkg/flags``, as etcd 3.4 uses them to read its command line.

Contract: ``FlagSet.parse(args)`` accepts exactly what etcd's ``flag.FlagSet`` accepts and fails with exactly
its messages (``FlagError``; etcd exits 2 on these):

- ``-name value``, ``-name=value``, ``--name value``, ``--name=value``; a boolean flag takes no separate
  value (``--enable-v2``, ``--enable-v2=false``); ``--`` ends the flags; the first non-flag argument ends
  them too and is left in ``FlagSet.args`` (etcd then rejects it: "'foo' is not a valid flag").
- ``-h``/``-help``/``--help`` (with or without a value) raise ``HelpRequested``.
- Each flag remembers whether it was set (``is_set``), which etcd uses for its defaults
  (``--listen-client-urls`` without ``--advertise-client-urls``) and for env-var conflicts.

``set_from_env`` is etcd's ``flags.SetFlagsFromEnv("ETCD", fs)``: every flag not set on the command line
reads ``ETCD_<NAME>`` (dashes to underscores, upper case) when that variable is non-empty.

Values parse like Go's: integers with ``strconv.ParseUint/ParseInt(s, 0, 64)`` (``0x10``, ``010`` octal,
``1_000``), booleans with ``strconv.ParseBool``, durations with ``time.ParseDuration`` (stored as float
seconds), URL lists with etcd's ``types.NewURLs`` (scheme, ``host:port``, no path; sorted).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class FlagError(Exception):
    """A command line the flag package rejects; ``str(e)`` is Go's message (etcd prints it, then usage)."""


class HelpRequested(Exception):
    """``-h`` or ``--help``: etcd prints its usage and exits 0."""


# --- Go value parsers: each raises ValueError carrying the text Go's flag.Value.Set would return. ---

_PARSE_ERROR = "parse error"
_RANGE_ERROR = "value out of range"


def go_bool(s: str) -> bool:
    """``strconv.ParseBool``."""
    if s in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if s in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(_PARSE_ERROR)


_PREFIXED = re.compile(r"0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*")


def _base0(digits: str) -> int:
    """Go's base-0 integer syntax (sign already removed): prefixes, a leading 0 means octal, underscores."""
    if not _PREFIXED.fullmatch(digits) or "__" in digits or digits.endswith("_"):
        raise ValueError(_PARSE_ERROR)
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "01234567_":
        digits = "0o" + digits[1:]
    try:
        return int(digits, 0)
    except ValueError:
        raise ValueError(_PARSE_ERROR) from None


def go_uint(s: str, bits: int = 64) -> int:
    """``strconv.ParseUint(s, 0, bits)`` as the flag package reports it."""
    value = _base0(s)
    if value >= 1 << bits:
        raise ValueError(_RANGE_ERROR)
    return value


def go_int(s: str, bits: int = 64) -> int:
    """``strconv.ParseInt(s, 0, bits)`` as the flag package reports it."""
    sign = 1
    if s[:1] in ("+", "-"):
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    value = sign * _base0(s)
    if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise ValueError(_RANGE_ERROR)
    return value


def go_uint32_base10(s: str) -> int:
    """etcd's ``flags.Uint32Value`` (``--max-concurrent-streams``): ``strconv.ParseUint(s, 10, 32)``."""
    if not s.isascii() or not s.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing "{s}": invalid syntax')
    if int(s) >= 1 << 32:
        raise ValueError(f'strconv.ParseUint: parsing "{s}": value out of range')
    return int(s)


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def go_duration(s: str) -> float:
    """``time.ParseDuration`` ("1h2m3.5s", "100ms", "0"), in seconds."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(_PARSE_ERROR)
    total, pos = 0.0, 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(_PARSE_ERROR)
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return -total if s.startswith("-") else total


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` for the durations etcd's defaults use ("5s", "2h0m0s", "100ms")."""
    if seconds == 0:
        return "0s"
    if abs(seconds) < 1:
        ms = seconds * 1000
        return f"{ms:g}ms" if abs(ms) >= 1 else f"{seconds * 1e6:g}µs"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    sign = "-" if seconds < 0 else ""
    if hours:
        return f"{sign}{int(hours)}h{int(minutes)}m{secs:g}s"
    if minutes:
        return f"{sign}{int(minutes)}m{secs:g}s"
    return f"{sign}{secs:g}s"


def _go_url_parse(raw: str) -> tuple[str, str, str]:
    """The parts of Go's ``url.Parse`` that ``types.NewURLs`` relies on: (scheme, host, path)."""
    scheme, rest = "", raw
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-."):
            if i == 0:
                break
            continue
        if c == ":":
            if i == 0:
                raise ValueError(f'parse "{raw}": missing protocol scheme')
            scheme, rest = raw[:i].lower(), raw[i + 1 :]
        break
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    if not scheme and ":" in rest.split("/", 1)[0]:
        raise ValueError(f'parse "{raw}": first path segment in URL cannot contain colon')
    if not rest.startswith("//"):
        return scheme, "", rest
    authority, slash, path = rest[2:].partition("/")
    host = authority.rpartition("@")[2]
    port = host.rpartition("]")[2] if host.startswith("[") else host
    if ":" in port and not port.rpartition(":")[2].isdigit() and port.rpartition(":")[2] != "":
        raise ValueError(f'parse "{raw}": invalid port "{":" + port.rpartition(":")[2]}" after host')
    return scheme, authority, slash + path


def _has_host_port(host: str) -> bool:
    """Go's ``net.SplitHostPort`` succeeds (brackets for IPv6, exactly one colon otherwise)."""
    host = host.rpartition("@")[2]
    if host.startswith("["):
        end = host.find("]")
        return end > 0 and host[end + 1 : end + 2] == ":" and "[" not in host[1:] and "]" not in host[end + 1 :]
    return host.count(":") == 1


def new_urls(raw_urls: Iterable[str]) -> list[str]:
    """etcd's ``types.NewURLs``: validates each URL and returns them sorted (as Go's ``URL.String``)."""
    out = []
    for raw in raw_urls:
        raw = raw.strip()
        scheme, host, path = _go_url_parse(raw)
        if scheme not in ("http", "https", "unix", "unixs"):
            raise ValueError(f"URL scheme must be http, https, unix, or unixs: {raw}")
        if not _has_host_port(host):
            raise ValueError(f'URL address does not have the form "host:port": {raw}')
        if path:
            raise ValueError(f"URL must not contain a path: {raw}")
        out.append(f"{scheme}://{host}")
    if not out:
        raise ValueError("no valid URLs given")
    return sorted(out)


def new_urls_map(s: str) -> dict[str, list[str]]:
    """etcd's ``types.NewURLsMap`` ("name=url,name=url"); a name may repeat to list several URLs."""
    grouped: dict[str, list[str]] = {}
    for item in s.split(","):
        if item == "":
            continue
        name, _, url = item.partition("=")
        grouped.setdefault(name, []).append(url)
    return {name: new_urls(urls) for name, urls in grouped.items()}


# --- flag kinds: how a kind parses one Set call, given the flag's current value. ---


def ip_address_port(s: str) -> str:
    """etcd 2's ``flags.IPAddressPort``: an IP literal and a port (``127.0.0.1:4001``), kept as ``host:port``."""
    s = s.strip()
    if s.startswith("["):
        host, sep, rest = s[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"address {s}: missing port in address")
        port = rest[1:]
    else:
        host, sep, port = s.rpartition(":")
        if not sep:
            raise ValueError(f"address {s}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {s}: too many colons in address")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid IP address: {host}") from None
    if not re.fullmatch(r"[+-]?\d+", port):
        raise ValueError(f'strconv.Atoi: parsing "{port}": invalid syntax')
    return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"


def _set_urls(flag: Flag, s: str) -> Any:
    # flags.UniqueURLs: an allowed exception ("" or "*") is recorded but keeps the current URLs.
    if s in flag.exceptions:
        return flag.value
    return new_urls(s.split(","))


def _set_unique_strings(flag: Flag, s: str) -> Any:
    return sorted({v for v in s.split(",")})


def _set_choice(flag: Flag, s: str) -> Any:
    if s not in flag.choices:
        raise ValueError("invalid value")
    return s


_SETTERS: dict[str, Callable[[Flag, str], Any]] = {
    "string": lambda f, s: s,
    "bool": lambda f, s: go_bool(s),
    "uint": lambda f, s: go_uint(s),
    "int": lambda f, s: go_int(s),
    "uint32": lambda f, s: go_uint32_base10(s),
    "duration": lambda f, s: go_duration(s),
    "urls": _set_urls,
    "unique-strings": _set_unique_strings,
    "strings": lambda f, s: s.split(","),
    "choice": _set_choice,
    "ignored": lambda f, s: None,
    "ip-port": lambda f, s: ip_address_port(s),
}


@dataclass
class Flag:
    """One flag: etcd's name, its kind (a key of ``_SETTERS``), default, and where its value goes.

    ``attr`` is the ``Config`` field the value lands in ("" for flags kept only so scripts don't break).
    ``shown`` overrides how ``--help`` prints the default (etcd prints ``'${name}.etcd'`` for --data-dir).
    """

    name: str
    kind: str
    default: Any
    usage: str
    section: str
    attr: str = ""
    choices: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    shown: str | None = None
    value: Any = None
    is_set: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _SETTERS:
            raise ValueError(f"unknown flag kind {self.kind!r}")
        # A list default must not be shared with the Config that receives the value.
        self.value = list(self.default) if isinstance(self.default, list) else self.default

    @property
    def is_bool(self) -> bool:
        # flag.boolFlag: IgnoredFlag also reports IsBoolFlag, so "-v" takes no value.
        return self.kind in ("bool", "ignored")

    def set(self, s: str) -> None:
        """flag.Value.Set; raises ValueError with Go's message."""
        self.value = _SETTERS[self.kind](self, s)
        self.is_set = True


def env_key(prefix: str, name: str) -> str:
    """etcd's ``flags.FlagToEnv``: ``listen-client-urls`` → ``ETCD_LISTEN_CLIENT_URLS``."""
    return f"{prefix}_{name.replace('-', '_').upper()}"


@dataclass
class EnvReport:
    """What ``set_from_env`` saw, for etcd's log lines (it logs them before the server's logger exists)."""

    used: list[tuple[str, str]] = field(default_factory=list)
    unrecognized: list[tuple[str, str]] = field(default_factory=list)
    ignored_flags: list[str] = field(default_factory=list)
    conflict: str | None = None
    error: str | None = None


class FlagSet:
    """``flag.NewFlagSet("etcd", flag.ContinueOnError)`` with etcd's flags registered."""

    def __init__(self, flags: Iterable[Flag]) -> None:
        self.flags: dict[str, Flag] = {}
        for f in flags:
            if f.name in self.flags:
                raise ValueError(f"flag redefined: {f.name}")
            self.flags[f.name] = f
        self.args: list[str] = []
        self.ignored_seen: list[str] = []

    def __getitem__(self, name: str) -> Flag:
        return self.flags[name]

    def is_set(self, name: str) -> bool:
        return self.flags[name].is_set

    def parse(self, args: list[str]) -> None:
        """flag.FlagSet.Parse: raises FlagError or HelpRequested; leaves the first non-flag in ``args``."""
        i = 0
        while i < len(args):
            s = args[i]
            if len(s) < 2 or s[0] != "-":
                break
            minuses = 2 if s[1] == "-" else 1
            if s == "--":
                i += 1
                break
            name = s[minuses:]
            if not name or name[0] in "-=":
                raise FlagError(f"bad flag syntax: {s}")
            i += 1
            name, has_value, value = name.partition("=")
            flag = self.flags.get(name)
            if flag is None:
                if name in ("help", "h"):
                    raise HelpRequested()
                raise FlagError(f"flag provided but not defined: -{name}")
            if flag.is_bool:
                try:
                    flag.set(value if has_value else "true")
                except ValueError as e:
                    raise FlagError(f'invalid boolean value "{value}" for -{name}: {e}') from None
            else:
                if not has_value:
                    if i >= len(args):
                        raise FlagError(f"flag needs an argument: -{name}")
                    value, i = args[i], i + 1
                try:
                    flag.set(value)
                except ValueError as e:
                    raise FlagError(f'invalid value "{value}" for flag -{name}: {e}') from None
            if flag.kind == "ignored":
                self.ignored_seen.append(name)
        self.args = args[i:]

    def set_from_env(self, prefix: str, environ: Mapping[str, str]) -> EnvReport:
        """flags.SetFlagsFromEnv: fills unset flags from ``PREFIX_NAME``; reports what etcd would log.

        A variable whose flag was also given on the command line is a conflict (etcd: fatal, exit 1);
        a ``PREFIX_`` variable naming no flag is only warned about.
        """
        report = EnvReport()
        already = {env_key(prefix, f.name) for f in self.flags.values() if f.is_set}
        used = set()
        for name in sorted(self.flags):  # VisitAll walks flags in lexical order; the last error wins
            flag, key = self.flags[name], env_key(prefix, name)
            val = environ.get(key, "")
            if key in already or val == "":
                continue
            used.add(key)
            try:
                flag.set(val)
            except ValueError as e:
                report.error = f'invalid value "{val}" for {key}: {e}'
                continue
            if flag.kind == "ignored":
                report.ignored_flags.append(name)
            report.used.append((key, val))
        for key, val in environ.items():
            if key in used:
                continue
            if key in already:
                report.conflict = key
                break
            if key.startswith(prefix + "_"):
                report.unrecognized.append((key, val))
        return report
