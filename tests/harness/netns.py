"""A network-namespace fabric: one namespace per cluster member, joined by a bridge, for partition tests.

``NetnsFabric()`` creates a bridge in the root namespace with address ``<subnet>.254/24``
(the subnet is ``10.213.X.0/24``, X free on this host, picked from the pid). ``node(i)``
creates, on first use, namespace ``pyetcd-<pid>-<n>-<i>`` with loopback up and one end
of a veth pair as ``<subnet>.i/24``; the other end is a port of the bridge. So:

- members reach each other, and the test process reaches them, on ``<subnet>.i``;
- inside its namespace a member also listens on 127.0.0.1, so a client started there
  (``exec_prefix(node)`` + argv, i.e. ``ip netns exec <ns> ...``) reaches it even while
  it is cut off;
- ``partition(node)`` sets the bridge end of its veth down: the member loses carrier
  and can reach nobody, nor be reached; ``heal(node)`` sets it up again.

Every name holds the pid and a per-process counter, so runs and fabrics never collide.
``close()`` deletes the namespaces (which deletes their veths) and the bridge; fixtures
call it in finalizers and an atexit hook catches anything left over. Construction raises
``NetnsUnavailable`` when namespaces cannot be made here (not root, no ``ip``, no
kernel support), which tests turn into a skip.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

IP = shutil.which("ip") or "/usr/sbin/ip"
_counter = itertools.count()
_live: list[NetnsFabric] = []


class NetnsUnavailable(RuntimeError):
    """Network namespaces, veths or bridges cannot be created on this host."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def _free_subnet() -> str:
    """A 10.213.X prefix that no interface on this host uses, starting from one picked by the pid."""
    used = set(re.findall(r"inet 10\.213\.(\d+)\.", _ip("-o", "-4", "addr", "show").stdout))
    start = os.getpid() % 250
    for k in range(250):
        x = (start + k) % 250
        if str(x) not in used:
            return f"10.213.{x}"
    raise NetnsUnavailable("no free 10.213.X.0/24 subnet")


@dataclass
class Node:
    index: int
    netns: str
    ip: str
    veth_host: str  # the bridge's end, in the root namespace
    veth_ns: str  # the member's end, inside netns


class NetnsFabric:
    def __init__(self) -> None:
        n = next(_counter)
        tag = f"{os.getpid():x}{n:x}"  # <= 8 characters: interface names are limited to 15
        self.prefix = f"pyetcd-{os.getpid()}-{n}"
        self.bridge = f"pb{tag}"
        self._tag = tag
        self.nodes: dict[int, Node] = {}
        self.closed = False
        probe = f"{self.prefix}-probe"
        try:
            p = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            raise NetnsUnavailable(f"cannot run ip netns add: {e}") from e
        if p.returncode != 0:
            raise NetnsUnavailable(f"ip netns add failed ({p.returncode}): {p.stderr.strip()}")
        _ip("netns", "del", probe, check=False)
        _live.append(self)
        try:
            self.subnet = _free_subnet()
            self.gateway = f"{self.subnet}.254"
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except BaseException as e:
            self.close()
            if isinstance(e, RuntimeError):
                raise NetnsUnavailable(str(e)) from e
            raise

    def node(self, index: int) -> Node:
        """The namespace for member ``index`` (1..253), created on first use."""
        if index in self.nodes:
            return self.nodes[index]
        if not 1 <= index <= 253:
            raise ValueError(f"node index {index} out of range")
        node = Node(
            index=index,
            netns=f"{self.prefix}-{index}",
            ip=f"{self.subnet}.{index}",
            veth_host=f"pv{self._tag}h{index}",
            veth_ns=f"pv{self._tag}n{index}",
        )
        self.nodes[index] = node
        _ip("netns", "add", node.netns)
        _ip("-n", node.netns, "link", "set", "lo", "up")
        _ip("link", "add", node.veth_host, "type", "veth", "peer", "name", node.veth_ns)
        _ip("link", "set", node.veth_ns, "netns", node.netns)
        _ip("link", "set", node.veth_host, "master", self.bridge)
        _ip("link", "set", node.veth_host, "up")
        _ip("-n", node.netns, "addr", "add", f"{node.ip}/24", "dev", node.veth_ns)
        _ip("-n", node.netns, "link", "set", node.veth_ns, "up")
        return node

    def exec_prefix(self, node: Node) -> list[str]:
        """Prepend to an argv to run it inside ``node``'s namespace (``ip`` execs it: the pid is the program's)."""
        return [IP, "netns", "exec", node.netns]

    def partition(self, node: Node) -> None:
        """Cut ``node`` off from every other node and from the root namespace."""
        _ip("link", "set", node.veth_host, "down")

    def heal(self, node: Node) -> None:
        _ip("link", "set", node.veth_host, "up")

    def close(self) -> None:
        """Delete the namespaces (their veths go with them) and the bridge; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for node in self.nodes.values():
            _ip("link", "del", node.veth_host, check=False)
            _ip("netns", "del", node.netns, check=False)
        _ip("link", "del", self.bridge, check=False)
        if self in _live:
            _live.remove(self)


@atexit.register
def _close_leftovers() -> None:
    for fabric in list(_live):
        fabric.close()
