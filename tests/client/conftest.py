"""Fixtures of the client suites: ``server`` is ours or real etcd 3.4.23 (the same test bodies run on both);
``client`` a ``pyetcd_fast.Client`` of it; ``run`` runs a coroutine on asyncio's loop or on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

import pyetcd_fast as etcd
from harness.servers import Server, start_server

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["ours", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    s = start_server(request.param, tmp_path / request.param)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(server: Server) -> Iterator[etcd.Client]:
    with etcd.Client(server.endpoint) as c:
        yield c


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """``run(coro)``: the coroutine to completion on a new loop of that kind."""
    if request.param == "uvloop":
        return uvloop.run
    return asyncio.run
