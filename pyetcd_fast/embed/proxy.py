"""A userspace TCP proxy in front of every member's peer port: latency, connection drops, blackholes and
one-way loss between members (this kernel has no netem).

Contract:
- ``PeerNet()`` runs one asyncio loop in a daemon thread. ``add(name, port, target)`` listens on
  127.0.0.1:``port`` (the member's advertised peer port) and forwards each connection to 127.0.0.1:``target``
  (where the member listens; ``EtcdCluster(proxy=True)`` and the robustness harness's
  ``Cluster(peer_proxies=True)`` give members the two ports). ``close()`` stops listening and aborts every
  connection.
- Each connection is told apart by who dialed it: the first bytes name the sender — our raft stream's
  handshake (``RAFT``, cluster id, *from*, to: big-endian u64s) or etcd's ``X-Server-From`` HTTP header.
  ``ids`` maps member ids to names (set once the members are up; looked up at every use, so streams
  opened before are matched too); a connection whose sender is not recognised (e.g. a lease keep-alive
  a follower forwards over plain HTTP) counts as from ``"?"``.
- Bytes dialer→owner flow from the dialer to the proxy's member, bytes owner→dialer the other way: each
  direction is one link ``(src, dst)`` and obeys the ``Rule`` set for it with ``set(src, dst, rule)``
  (``"*"`` matches any member on that side; the first of (src, dst), (src, *), (*, dst), (*, *) that is set
  applies; ``clear()`` removes all):
  ``delay``+uniform(0, ``jitter``) s before bytes are passed on (order kept); ``blocked``: nothing more is
  read or passed on (at most one chunk already read waits in the proxy; the sender's socket buffers fill, as
  behind a black hole; what was held flows when the rule is lifted, like TCP retransmissions; new
  connections are still accepted, and their first bytes held); ``drop_per_s``: connections carrying the
  link are reset (RST) at that rate, new ones as soon as they are recognised.
- Only loopback ports the run picked are touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass

HANDSHAKE = 28  # RAFT + cluster id + from + to
POLL = 0.05  # how often a blocked link looks whether it was lifted, and the drop tick


@dataclass(frozen=True)
class Rule:
    """What happens to one direction of traffic between two members (the module docstring says how)."""

    delay: float = 0.0
    jitter: float = 0.0
    blocked: bool = False
    drop_per_s: float = 0.0


NO_FAULT = Rule()


def sender(head: bytes) -> int | None:
    """The member id that dialed a connection starting with ``head``; None while undecided, 0 when unknown."""
    if len(head) < 4 and b"RAFT".startswith(head):
        return None
    if head.startswith(b"RAFT"):
        return struct.unpack(">Q", head[12:20])[0] if len(head) >= 20 else None
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return None if len(head) < 16384 else 0
    for line in head[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-server-from":
            with contextlib.suppress(ValueError):
                return int(value.strip(), 16)
    return 0


class _Conn:
    def __init__(self, net: PeerNet, owner: str, down_r, down_w, up_r, up_w) -> None:  # noqa: ANN001
        self.net, self.owner = net, owner
        self.down_r, self.down_w, self.up_r, self.up_w = down_r, down_w, up_r, up_w
        self.dialer = 0  # the member id that dialed (0: not known)
        self.known = asyncio.Event()

    def links(self) -> list[tuple[str, str]]:
        """(dialer -> owner, owner -> dialer) by member name; names are looked up late, as ``ids`` may be
        filled in after the connection was made."""
        dialer = self.net.ids.get(self.dialer, "?")
        return [(dialer, self.owner), (self.owner, dialer)]

    def abort(self) -> None:
        for w in (self.down_w, self.up_w):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()

    async def run(self) -> None:
        try:
            await asyncio.gather(self._pump(self.down_r, self.up_w, True), self._pump(self.up_r, self.down_w, False))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.abort()
            self.net.conns.discard(self)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dialer_side: bool) -> None:
        head = b""
        if not dialer_side:
            await self.known.wait()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        deliver = asyncio.ensure_future(self._deliver(queue, writer, dialer_side))
        try:
            while True:
                data = await reader.read(65536)
                if dialer_side and not self.known.is_set():
                    head += data
                    found = sender(head) if data else 0
                    if found is None:
                        continue
                    self.dialer = found
                    self.known.set()
                    data = head
                if not data:
                    break
                rule = self._rule(dialer_side)
                while rule.blocked:
                    await asyncio.sleep(POLL)
                    rule = self._rule(dialer_side)
                at = time.monotonic() + rule.delay + (self.net.rng.uniform(0, rule.jitter) if rule.jitter else 0.0)
                queue.put_nowait((at, data))
        finally:
            self.known.set()
            queue.put_nowait(None)
            await deliver

    async def _deliver(self, queue: asyncio.Queue, writer: asyncio.StreamWriter, dialer_side: bool) -> None:
        last = 0.0
        try:
            while (item := await queue.get()) is not None:
                at, data = item
                last = max(last, at)  # keep the byte order: never before what came earlier
                if (wait := last - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                while self._rule(dialer_side).blocked:
                    await asyncio.sleep(POLL)
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except OSError:
            # The far end is gone: reset the near end too, or its sender would go on writing into nothing
            # (a dead member's peers must see their streams break and dial again).
            self.abort()

    def _rule(self, dialer_side: bool) -> Rule:
        src, dst = self.links()[0 if dialer_side else 1]
        return self.net.rule(src, dst)


class PeerNet:
    """The proxies in front of a cluster's peer ports and the rules they obey (see the module docstring)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()  # jitter and drops (the loop's thread alone draws from it)
        self.ids: dict[int, str] = {}
        self.rules: dict[tuple[str, str], Rule] = {}
        self.conns: set[_Conn] = set()
        self.loop = asyncio.new_event_loop()
        self.servers: list[asyncio.AbstractServer] = []
        self.thread = threading.Thread(target=self.loop.run_forever, name="peer-proxy", daemon=True)
        self.thread.start()
        self._dropper = self._call(self._drops())

    def _call(self, coro):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def add(self, name: str, port: int, target: int) -> None:
        """Listen on 127.0.0.1:``port`` for member ``name`` and forward to its 127.0.0.1:``target``."""

        async def handle(down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
            try:
                up_r, up_w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", target), 1.0)
            except (OSError, TimeoutError):
                down_w.transport.abort()
                return
            conn = _Conn(self, name, down_r, down_w, up_r, up_w)
            self.conns.add(conn)
            await conn.run()

        async def listen() -> None:
            self.servers.append(await asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True))

        self._call(listen()).result(5)

    def rule(self, src: str, dst: str) -> Rule:
        """The rule that applies to bytes from ``src`` to ``dst`` now (wildcards as the module says)."""
        r = self.rules
        return r.get((src, dst)) or r.get((src, "*")) or r.get(("*", dst)) or r.get(("*", "*")) or NO_FAULT

    def set(self, src: str, dst: str, rule: Rule) -> None:
        """Bytes from ``src`` to ``dst`` obey ``rule`` from now on (``"*"``: any member)."""
        self.rules[(src, dst)] = rule

    def clear(self) -> None:
        """No fault anywhere: every rule is removed (held bytes flow again)."""
        self.rules = {}

    async def _drops(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            for conn in list(self.conns):
                if not conn.known.is_set():
                    continue
                rate = max(self.rule(s, d).drop_per_s for s, d in conn.links())
                if rate and self.rng.random() < rate * POLL:
                    conn.abort()

    def close(self) -> None:
        """Stop listening, abort every connection and end the loop's thread."""

        async def shut() -> None:
            for s in self.servers:
                s.close()
            for c in list(self.conns):
                c.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self._call(shut()).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()
