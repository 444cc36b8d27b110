"""The text of ``--help`` and ``--version`` (etcd's ``etcdmain/help.go``, in our words).

Contract: ``USAGE_LINE`` is what follows a flag error (exit 2); ``usage(fs)`` is the ``--help`` text — the
usage line, then every listed flag by section with its default, generated from ``flagdefs`` so it cannot
drift from what ``parse`` accepts; ``version()`` starts with ``etcd Version: 3.4.23`` as etcd's does, so
tools that sniff the version see the API level we implement.
"""

from __future__ import annotations

import platform
import sys

from pyetcd_fast import __version__
from pyetcd_fast.etcdmain.flagdefs import SECTIONS
from pyetcd_fast.etcdmain.flags import Flag, FlagSet, format_duration

ETCD_VERSION = "3.4.23"  # the etcd release whose API, flags and behaviour we match

USAGE_LINE = """Usage:

  pyetcd [flags]
    Start an etcd-compatible member (python -m pyetcd_fast takes the same flags).

  pyetcd --version
    Print the version and exit.

  pyetcd -h | --help
    Print this help and exit.

  pyetcd --config-file PATH
    Read the whole configuration from etcd's YAML config file; other flags and ETCD_* environment
    variables are then ignored.

Every flag may also be given as an environment variable: --listen-client-urls is ETCD_LISTEN_CLIENT_URLS.
A flag and its variable must not both be set. Flags take one or two dashes, and "--flag value" or
"--flag=value"; a boolean flag alone means true.
"""

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm"}


def _shown_default(flag: Flag) -> str:
    if flag.shown is not None:
        return flag.shown
    value = flag.default
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(value)
    if flag.kind == "duration":
        return format_duration(value) if value else ""
    return str(value)


def usage(fs: FlagSet) -> str:
    """The full ``--help`` text."""
    lines = [USAGE_LINE]
    for section in SECTIONS:
        listed = [f for f in fs.flags.values() if f.section == section]
        if not listed:
            continue
        lines.append(f"{section}:")
        for flag in listed:
            lines.append(f"  --{flag.name} '{_shown_default(flag)}'")
            lines.append(f"    {flag.usage}")
        lines.append("")
    lines.append("Unsafe and experimental flags may break the guarantees of the consensus protocol.")
    return "\n".join(lines)


def version() -> str:
    """The ``--version`` text."""
    machine = platform.machine().lower()
    return "\n".join(
        [
            f"etcd Version: {ETCD_VERSION}",
            f"pyetcd_fast Version: {__version__}",
            f"Python Version: {platform.python_version()}",
            f"OS/Arch: {sys.platform}/{_GOARCH.get(machine, machine)}",
        ]
    )
