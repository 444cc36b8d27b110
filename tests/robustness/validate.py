"""Validate a recorded history: linearizability and watch guarantees over one write log, and the lease guarantees.

Contract: ``validate(history)`` builds W once, runs ``check_linearizability`` and ``check_watches`` on it and
``check_leases`` beside them, and merges their results (violations prefixed with "linearizability: ",
"watch: " and "lease: "). Run as
``python -m robustness.validate history.json`` (with tests/ on PYTHONPATH) to re-check a saved
history; the exit status is 0 when it is valid, 1 when not.
"""

from __future__ import annotations

import sys
import time

from robustness.history import History, Result
from robustness.leases import check_leases
from robustness.linearizability import check_linearizability
from robustness.watches import check_watches
from robustness.writelog import build_write_log


def validate(history: History) -> Result:
    started = time.perf_counter()
    log = build_write_log(history)
    lin = check_linearizability(history, log)
    wat = check_watches(history, log)
    les = check_leases(history)
    parts = (("linearizability", lin), ("watch", wat), ("lease", les))
    return Result(
        ok=all(r.ok for _, r in parts),
        violations=[f"{name}: {v}" for name, r in parts for v in r.violations],
        warnings=[f"{name}: {w}" for name, r in parts for w in r.warnings],
        operations_checked=lin.operations_checked,
        writes=lin.writes,
        reads=lin.reads,
        duration_s=time.perf_counter() - started,
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m robustness.validate HISTORY.json", file=sys.stderr)
        return 2
    result = validate(History.from_json(argv[0]))
    print(result.summary(limit=50))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
