"""The benchmark suite: the same load, in the same run, against real etcd and against pyetcd_fast.

Contract: ``python -m bench`` (or ``make bench``) starts each server kind in turn with equivalent settings
(the same filesystem for data dirs, snapshot count and quota, fsync on), single-member and 3-member,
drives each workload with the native load generator (``pyetcd-bench``, native/bench) in A B A B order for
``--rounds`` rounds, and writes a Markdown table, JSON and PNG plots to ``bench/results/``: medians,
min–max and the ratio ours/etcd 3.4 per workload. Then, on fresh single members, the memory, size and recovery
figures of :mod:`bench.scale` (RSS and data dir at 100k/1M keys, memory per watcher, restart time with a 1M-entry
WAL, ``etcdctl check datascale``) join the same report. ``--quick`` is the short variant. ``python -m
bench.probe`` holds two diagnostics outside the report (:mod:`bench.probe`), and ``python -m bench.failover``
the time to a new leader after the leader is killed (:mod:`bench.failover`). Nothing here runs in
the test command except ``tests/bench``'s one-second smoke run of every workload and its pure unit tests.
"""
