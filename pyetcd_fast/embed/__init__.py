"""Running a member inside a Python program.

Contract: ``Etcd(config)`` opens the member's data dir (creating it on first use), ``start()`` serves the
client URLs and drives raft from an asyncio loop (uvloop when available); ``stop()`` shuts down cleanly and
a later ``Etcd`` on the same data dir keeps the cluster id, member id, revision and every acknowledged write.
The Ready loop runs once per batch of requests, never per request (``raftloop``).
"""

from pyetcd_fast.embed.etcd import Etcd
from pyetcd_fast.embed.raftloop import ReadyLoop

__all__ = ["Etcd", "ReadyLoop"]
