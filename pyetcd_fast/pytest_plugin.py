"""pytest fixtures that give a test a running etcd: ``etcd``, ``etcd_client``, ``async_etcd_client``, ``etcd_cluster``.

Contract: installing pyetcd_fast registers this plugin (the ``pytest11`` entry point ``pyetcd_fast``); without
the entry point, ``-p pyetcd_fast.pytest_plugin`` or ``pytest_plugins = ["pyetcd_fast.pytest_plugin"]`` loads
it. A test asks for a fixture by name:

- ``etcd``: a ``pyetcd_fast.Etcd`` member serving on free loopback ports, with a temporary data dir. By default
  each test gets a fresh one. With ``--etcd-scope=session`` (or ``etcd_scope = session`` in the ini file) one
  member serves the whole session (one per xdist worker) and before each test every key is deleted and every
  lease revoked; revisions, users and roles carry over, so a test must not expect revision 1.
- ``etcd_client``: a ``pyetcd_fast.Client`` of that member, closed after the test.
- ``async_etcd_client``: a ``pyetcd_fast.AsyncClient`` of that member, closed after the test (it follows the
  event loop it is used from: ``asyncio.run`` in the test, or an async test under an asyncio plugin).
- ``etcd_cluster``: a fresh three-member ``pyetcd_fast.EtcdCluster`` (processes, proxied peer traffic) per test.

Every port is picked free at start and every directory is made by ``tempfile``, so parallel sessions
(pytest-xdist workers, several checkouts) never clash. pyetcd_fast is imported only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal, cast

import pytest

if TYPE_CHECKING:
    from pyetcd_fast.aio import AsyncClient
    from pyetcd_fast.client import Client
    from pyetcd_fast.embed.cluster import EtcdCluster
    from pyetcd_fast.embed.member import Etcd

Scope = Literal["function", "session"]
SCOPES = ("function", "session")
HELP = "how long one etcd member serves tests: 'function' (a fresh one per test) or 'session' (keys cleared per test)"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--etcd-scope`` and the ini option ``etcd_scope``."""
    group = parser.getgroup("pyetcd_fast", "etcd fixtures (pyetcd_fast)")
    group.addoption("--etcd-scope", choices=SCOPES, default=None, help=HELP + "; overrides the ini option")
    parser.addini("etcd_scope", HELP + " (default: function)", default="function")


def etcd_scope(fixture_name: str, config: pytest.Config) -> Scope:
    """The scope of the member behind ``etcd``: the command line's, else the ini file's."""
    scope = config.getoption("etcd_scope") or config.getini("etcd_scope") or "function"
    if scope not in SCOPES:
        raise pytest.UsageError(f"etcd_scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return cast(Scope, scope)


@pytest.fixture(scope=etcd_scope)
def _etcd_member() -> Iterator[Etcd]:
    from pyetcd_fast.embed.member import Etcd

    with Etcd() as member:
        yield member


@pytest.fixture
def etcd(_etcd_member: Etcd, request: pytest.FixtureRequest) -> Etcd:
    """A running member; in session scope emptied of keys and leases before the test."""
    if etcd_scope("etcd", request.config) == "session":
        with _etcd_member.client() as c:
            for lease in c.leases():
                c.revoke(lease)
            c.delete(b"\0", range_end=b"\0")  # [\0, \0): every key
    return _etcd_member


@pytest.fixture
def etcd_client(etcd: Etcd) -> Iterator[Client]:
    """A ``Client`` of ``etcd``, closed after the test."""
    client = etcd.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def async_etcd_client(etcd: Etcd) -> Iterator[AsyncClient]:
    """An ``AsyncClient`` of ``etcd``, closed after the test."""
    client = etcd.async_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def etcd_cluster() -> Iterator[EtcdCluster]:
    """A fresh three-member ``EtcdCluster`` with a leader, closed (members killed, dirs removed) after the test."""
    from pyetcd_fast.embed.cluster import EtcdCluster

    with EtcdCluster(size=3) as cluster:
        yield cluster
