"""Tests of ``pyetcd_fast.embed.proxy``: who dialed is read from the first bytes, and each rule does what it says on one
link and not on the other, against a plain echo server (no cluster needed)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from harness.servers import free_port
from pyetcd_fast.embed.proxy import PeerNet, Rule, sender

A, B = 0xA, 0xB  # member ids: A dials, B owns the proxy


def handshake(frm: int, to: int) -> bytes:
    return b"RAFT" + struct.pack(">QQQ", 1, frm, to)


def test_the_sender_is_read_from_our_handshake_and_etcds_header() -> None:
    assert sender(b"RA") is None  # undecided yet
    assert sender(handshake(7, 9)[:19]) is None
    assert sender(handshake(7, 9)) == 7
    assert sender(b"GET /raft/stream/message/b HTTP/1.1\r\nHost: x\r\nX-Server-From: 1f\r\n\r\n") == 0x1F
    assert sender(b"GET /raft HTTP/1.1\r\nHost: x\r\n") is None  # the header is not over
    assert sender(b"POST /leases HTTP/1.1\r\nHost: x\r\n\r\n") == 0  # not known


class Echo:
    """A TCP server that sends back what it reads; ``close_all()`` closes every connection it has."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c: socket.socket) -> None:
        try:
            while data := c.recv(65536):
                c.sendall(data)
        except OSError:
            pass

    def close_all(self) -> None:
        """As a process dying: every connection shut down (a FIN goes out at once) and closed, and the
        listening socket too."""
        for c in [*self.conns, self.sock]:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()


class Net:
    """Member b behind its proxy (an echo server), and member a's streams to it."""

    def __init__(self) -> None:
        self.echo = Echo()
        self.proxy = PeerNet()
        self.port = free_port()
        self.proxy.add("b", self.port, self.echo.port)
        self.proxy.ids = {A: "a", B: "b"}
        self.dialed: list[socket.socket] = []

    def dial(self) -> socket.socket:
        """A stream from a to b through b's proxy, its handshake echoed back."""
        c = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        self.dialed.append(c)
        hs = handshake(A, B)
        c.sendall(hs)
        assert recv_exactly(c, len(hs)) == hs
        return c

    def close(self) -> None:
        for c in self.dialed:
            c.close()
        self.proxy.close()
        self.echo.close_all()


@pytest.fixture
def net() -> Iterator[Net]:
    n = Net()
    yield n
    n.close()


def recv_exactly(c: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = c.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def test_latency_delays_one_direction(net: Net) -> None:
    c = net.dial()
    net.proxy.set("a", "b", Rule(delay=0.3))
    t = time.monotonic()
    c.sendall(b"x")
    assert c.recv(1) == b"x"
    assert 0.28 < time.monotonic() - t < 1.5
    net.proxy.clear()
    t = time.monotonic()
    c.sendall(b"y")
    assert c.recv(1) == b"y"
    assert time.monotonic() - t < 0.28


def test_a_blocked_direction_holds_the_bytes_until_lifted(net: Net) -> None:
    c = net.dial()
    net.proxy.set("b", "*", Rule(blocked=True))  # the echo back (b -> a) is held
    c.sendall(b"held")
    c.settimeout(0.5)
    with pytest.raises(TimeoutError):
        c.recv(4)
    net.proxy.clear()
    c.settimeout(3)
    assert recv_exactly(c, 4) == b"held"


def test_drops_reset_the_connection(net: Net) -> None:
    c = net.dial()
    net.proxy.set("*", "b", Rule(drop_per_s=50))
    time.sleep(1)
    with pytest.raises(OSError):
        c.sendall(b"z")
        if not c.recv(1):
            raise ConnectionResetError("closed")


def test_a_dead_far_end_resets_the_dialer(net: Net) -> None:
    """Regression: when the member behind the proxy died, the dialer's side stayed open and swallowed
    everything written to it (a raft stream that never broke, so votes went nowhere and no leader was
    elected after a restart). It must be reset at the first write that cannot be passed on."""
    c = net.dial()
    net.echo.close_all()
    time.sleep(0.2)
    c.settimeout(3)
    with pytest.raises(OSError):
        for _ in range(50):
            c.sendall(b"after")
            time.sleep(0.05)
