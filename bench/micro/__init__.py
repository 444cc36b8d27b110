"""Micro-benchmarks of the native pieces, with pytest-benchmark: ``make bench-micro`` or
``python -m pytest bench/micro``.

Contract: each benchmark times one operation of a driver from ``pyetcd_fast._native`` (``Micro*``, over
``etcd_core::micro``), set up once per test: a WAL append of one batch with its fdatasync, revision-index puts and
ranges, a serializable Range through the index and the backend, and matching one batch of events against N
watchers. Nothing here runs against real etcd (these pieces have no counterpart to call) and nothing here is part
of the test command; the numbers are for comparing builds of this server on one machine.
"""
