"""pyetcd_fast: an etcd-compatible, Raft-replicated key-value store.

Contract: the server speaks etcd 3.4's v3 gRPC API on its client URLs and takes etcd's flags, environment
variables and config file, so real ``etcdctl`` and etcd clients work unchanged. Every per-request path is
native (``pyetcd_fast._native``, Rust); Python runs per batch and per lifecycle event only:

- ``pyetcd_fast.etcdmain``: the ``pyetcd`` command (flags → config → a running member);
- ``pyetcd_fast.embed``: a member inside a Python program (``Etcd``) and the Ready loop that drives raft;
- ``pyetcd_fast.etcdpb``: Python stubs generated from our .proto files, for tests and benches only (not
  installed: the package needs neither grpcio nor protobuf);
- ``pyetcd_fast.client`` (``Client``), ``pyetcd_fast.aio`` (``AsyncClient``) and ``pyetcd_fast.errors``: an etcd
  client whose request path is native;
- ``pyetcd_fast.embed.cluster`` (``EtcdCluster``): a cluster of member processes with faults per member;
- ``pyetcd_fast.pytest_plugin``: fixtures for test suites (registered by the ``pytest11`` entry point).
"""

__version__ = "0.1.0"

from pyetcd_fast import errors, txn  # noqa: E402 (after __version__, which the modules below read)
from pyetcd_fast.aio import AsyncClient  # noqa: E402
from pyetcd_fast.client import Client, KeyValue, Lease, ResponseHeader  # noqa: E402
from pyetcd_fast.embed.cluster import ClusterMember, EtcdCluster  # noqa: E402
from pyetcd_fast.embed.member import Etcd  # noqa: E402
from pyetcd_fast.errors import EtcdError  # noqa: E402

__all__ = [
    "AsyncClient",
    "Client",
    "ClusterMember",
    "Etcd",
    "EtcdCluster",
    "EtcdError",
    "KeyValue",
    "Lease",
    "ResponseHeader",
    "__version__",
    "errors",
    "txn",
]
