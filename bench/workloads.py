"""The workloads, modelled on etcd's ``benchmark`` tool, with the generator arguments of a full and a quick run.

Each has the metric its target in the issue is stated in, and whether higher is better.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Workload:
    name: str
    generator: str  # pyetcd-bench's workload
    args: dict[str, str | int]
    quick: dict[str, str | int] = field(default_factory=dict)
    metric: str = "rps"  # a key of the generator's JSON, or "latency_ms.p50" style
    higher_is_better: bool = True
    # Keys the workload reads, put there first (range).
    seed_keys: tuple[str, ...] = ()

    def argv(self, quick: bool) -> list[str]:
        merged = {**self.args, **(self.quick if quick else {})}
        out = [self.generator]
        for k, v in merged.items():
            out += [f"--{k}"] if v is True else [f"--{k}", str(v)]
        return out


PUT = {"key-size": 8, "val-size": 256, "key-space-size": 100000}

WORKLOADS: list[Workload] = [
    Workload("put 1000 clients", "put", {**PUT, "clients": 1000, "conns": 100, "total": 100000}, {"total": 20000}),
    Workload(
        "put 1 client p50 (ms)",
        "put",
        {**PUT, "clients": 1, "conns": 1, "total": 5000, "sequential-keys": True},
        {"total": 1000},
        metric="latency_ms.p50",
        higher_is_better=False,
    ),
    *(
        Workload(
            f"range {name} 100 clients",
            "range",
            {"clients": 100, "conns": 10, "total": 100000, "key": "foo", "consistency": c},
            {"total": 20000},
            seed_keys=("foo",),
        )
        for name, c in (("linearizable", "l"), ("serializable", "s"))
    ),
    Workload("txn-put 100 clients", "txn-put", {**PUT, "clients": 100, "conns": 10, "total": 50000}, {"total": 10000}),
    Workload(
        "stm 50 clients",
        "stm",
        {**PUT, "key-space-size": 1000, "clients": 50, "conns": 10, "total": 20000},
        {"total": 4000},
    ),  # fmt: skip
    Workload(
        "lease keep-alive 100 clients",
        "lease-keepalive",
        {"clients": 100, "conns": 10, "total": 100000},
        {"total": 20000},
    ),  # fmt: skip
    Workload(
        "watch 10k watchers events/s",
        "watch",
        {"watchers": 10000, "streams": 100, "puts": 100, "conns": 10},
        {"watchers": 2000, "streams": 20, "puts": 50},
        metric="events_per_second",
    ),
    Workload(
        "watch put→event p99 (ms)",
        "watch",
        {"watchers": 100, "streams": 10, "puts": 500, "put-rate": 100, "conns": 2},
        {"puts": 100},
        metric="latency_ms.p99",
        higher_is_better=False,
    ),
]

# `etcdctl check perf` loads, run with the real etcdctl and parsed into the same report.
CHECK_PERF = {"check perf l (writes/s)": "l", "check perf xl (writes/s)": "xl"}


def metric_of(result: dict, metric: str) -> float | None:
    """``latency_ms.p50`` → result["latency_ms"]["p50"]."""
    v: object = result
    for part in metric.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return float(v) if isinstance(v, (int, float)) else None
