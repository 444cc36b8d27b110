"""The pytest plugin (``pyetcd_fast.pytest_plugin``): its fixtures, run in a separate pytest by ``pytester``."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import pyetcd_fast

pytest_plugins = ["pytester"]

ROOT = str(Path(pyetcd_fast.__file__).resolve().parent.parent)
INI = "[pytest]\nfilterwarnings = error\n"
Run = Callable[..., pytest.RunResult]


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Runs pytest in a subprocess with the plugin loaded (by its entry point when installed) and warnings as errors."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    installed = any(ep.name == "pyetcd_fast" for ep in importlib.metadata.entry_points(group="pytest11"))
    load = [] if installed else ["-p", "pyetcd_fast.pytest_plugin"]

    def run(*args: str, ini: str = INI) -> pytest.RunResult:
        pytester.makeini(ini)
        return pytester.runpytest_subprocess(*load, "-p", "no:cacheprovider", *args, timeout=120)

    return run


def test_etcd_client_puts_and_gets(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(
        """
        def test_put_get(etcd, etcd_client):
            etcd_client.put("/svc/a", "10.0.0.1")
            assert etcd_client.get("/svc/a").value == b"10.0.0.1"
            assert etcd_client.endpoints == etcd.endpoints
        """
    )
    run().assert_outcomes(passed=1)


ISOLATION = """
    SEEN = []

    def check(etcd, etcd_client):
        assert etcd_client.get("shared") is None, "a key from another test"
        lease = etcd_client.grant(60)
        etcd_client.put("shared", "x", lease=lease)
        SEEN.append(etcd)

    def test_a(etcd, etcd_client):
        check(etcd, etcd_client)

    def test_b(etcd, etcd_client):
        check(etcd, etcd_client)
        assert etcd_client.leases() == [etcd_client.get("shared").lease], "leases from another test"

    def test_members():
        assert len(SEEN) == 2
        assert (SEEN[0] is SEEN[1]) == {scope!r}
    """


def test_each_test_gets_its_own_member_by_default(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(ISOLATION.format(scope=False))
    run().assert_outcomes(passed=3)


def test_session_scope_shares_one_member_emptied_between_tests(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(ISOLATION.format(scope=True))
    run("--etcd-scope=session").assert_outcomes(passed=3)


def test_the_ini_option_sets_the_scope_and_the_command_line_wins(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(ISOLATION.format(scope=True))
    run(ini=INI + "etcd_scope = session\n").assert_outcomes(passed=3)
    pytester.makepyfile(ISOLATION.format(scope=False))
    run("--etcd-scope=function", ini=INI + "etcd_scope = session\n").assert_outcomes(passed=3)


def test_an_unknown_scope_is_a_usage_error(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile("def test_x(etcd):\n    pass\n")
    result = run(ini=INI + "etcd_scope = module\n")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*etcd_scope must be one of function, session*"])


def test_async_etcd_client(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(
        """
        import asyncio

        def test_async(async_etcd_client):
            async def main():
                await async_etcd_client.put("k", "v")
                return await async_etcd_client.get("k")

            assert asyncio.run(main()).value == b"v"
        """
    )
    run().assert_outcomes(passed=1)


def test_etcd_cluster(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(
        """
        def test_cluster(etcd_cluster):
            assert len(etcd_cluster.members) == 3
            leader = etcd_cluster.wait_leader()
            with etcd_cluster.client() as c:
                c.put("k", "v")
                assert c.get("k").value == b"v"
            assert leader.running
        """
    )
    run().assert_outcomes(passed=1)


@pytest.mark.parametrize("scope", ["function", "session"])
def test_xdist_workers_do_not_clash(pytester: pytest.Pytester, run: Run, scope: str) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_alone(etcd_client, i):
            assert etcd_client.get("mine") is None
            etcd_client.put("mine", str(i))
            assert etcd_client.get("mine").value == str(i).encode()

        def test_cluster(etcd_cluster):
            etcd_cluster.client().put("k", "v")
        """
    )
    result = run("-n", "2", f"--etcd-scope={scope}")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["*2 workers*"])
