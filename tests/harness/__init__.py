"""Test harness shared by the differential and e2e suites.

- ``servers``: start real etcd or pyetcd_fast on loopback and wait until it serves.
- ``kvclient``: a small gRPC client whose calls return comparable plain dicts.
- ``normalize``: strip per-member ids and rebase revisions so two servers' answers compare exactly.
- ``etcdctl``: run the real etcdctl against an endpoint and normalize its output.
- ``cluster``: start N-member clusters, find the leader, kill/restart members, add/remove members.
- ``netns``: network namespaces joined by a bridge, to partition cluster members.
- ``godesc``: read the protobuf descriptors compiled into etcd's Go binary.
"""
