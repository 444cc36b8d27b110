"""The benchmark suite: the same load, in the same run, against real etcd and against pyetcd_fast.

Contract: ``python -m bench`` (or ``make bench``) starts each server kind in turn with equivalent settings
(the same filesystem for data dirs, snapshot count and quota, fsync on), single-member and 3-member,
drives each workload with the native load generator (``pyetcd-bench``, native/bench) in A B A B order for
``--rounds`` rounds, and writes a Markdown table, JSON and PNG plots to ``bench/results/``: medians,
min–max and the ratio ours/etcd 3.4 per workload. ``--quick`` is the short variant. Nothing here runs in
the test command except ``tests/bench``'s one-second smoke run of every workload.
"""
