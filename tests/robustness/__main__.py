"""``python -m robustness`` (from tests/; ``make robustness``): the whole matrix, and its report.

Every scenario (one fault kind) runs ``--runs`` times on each cluster size and server kind it applies to, each
run ``--duration`` seconds of traffic; the report is one Markdown table per kind (runs, operations checked,
faults injected and fired, violations, lost writes, watch and lease violations, longest unavailability, members
restarted), then a table of every fault as injected (each failpoint of the rotating failpoint scenarios on
its own: injected, fired), written to ``--out`` and printed. A progress line per run goes to stderr. Exit
status 1 when any run failed a check.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from robustness.faults import all_faults
from robustness.run import RunResult, Spec, run_once


def table(results: list[RunResult]) -> str:
    groups: dict[tuple[str, int, str], list[RunResult]] = defaultdict(list)
    for r in results:
        groups[(r.spec.kind, r.spec.size, r.spec.scenario)].append(r)
    head = (
        "| kind | members | scenario | runs | passed | operations | faults (fired) | linearizability violations "
        "| acknowledged writes lost | watch violations | lease violations | other failures "
        "| longest unavailability (s) "
        "| members restarted |"
    )
    lines = [head, "|" + "---|" * 14]
    for (kind, size, scenario), rs in sorted(groups.items()):
        lines.append(
            f"| {kind} | {size} | {scenario} | {len(rs)} | {sum(r.ok for r in rs)} | {sum(r.operations for r in rs):,} "
            f"| {sum(r.faults for r in rs)} ({sum(r.faults_fired for r in rs)}) "
            f"| {sum(r.linearizability_violations for r in rs)} | {sum(r.lost_writes for r in rs)} "
            f"| {sum(r.watch_violations for r in rs)} | {sum(r.lease_violations for r in rs)} "
            f"| {sum(len(r.other_failures) for r in rs)} "
            f"| {max(r.max_unavailable_s for r in rs):.2f} | {sum(r.members_restarted for r in rs)} |"
        )
    return "\n".join(lines) + "\n"


def fault_table(results: list[RunResult]) -> str:
    """Per fault as injected (each failpoint of the rotating scenarios on its own): injected and fired."""
    counts: dict[tuple[str, int, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        for i in r.injections:
            c = counts[(r.spec.kind, r.spec.size, i.fault)]
            c[0] += 1
            c[1] += i.fired
    lines = ["| kind | members | fault | injected | fired |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {n} | {f} | {a} | {b} |" for (k, n, f), (a, b) in sorted(counts.items())]
    return "\n".join(lines) + "\n"


def failures(results: list[RunResult]) -> str:
    out = []
    for r in results:
        if r.ok:
            continue
        out.append(f"### {r.spec.kind}, {r.spec.size} member(s), {r.spec.scenario}, seed {r.spec.seed}")
        out += [f"- {v}" for v in r.violations[:20]]
        out += [f"- {f}" for f in r.other_failures[:5]]
        if r.saved:
            out.append(f"- history: `{r.saved}` (`python -m robustness.validate {r.saved}`)")
    return "\n".join(out) + ("\n" if out else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustness", description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--duration", type=float, default=20.0, help="seconds of traffic per run")
    p.add_argument("--sizes", default="1,3")
    p.add_argument("--kinds", default="ours", help="ours, etcd (real etcd 3.4.23), or both: ours,etcd")
    p.add_argument("--scenarios", default="", help="comma-separated substrings of scenario names (all if empty)")
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/pyetcd-robustness"))
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "latest.md")
    p.add_argument("--netns", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args(argv)
    wanted = [s for s in args.scenarios.split(",") if s]
    specs: list[Spec] = []
    for kind in args.kinds.split(","):
        for size in map(int, args.sizes.split(",")):
            for fault in all_faults():
                if wanted and not any(w in fault.name for w in wanted):
                    continue
                if not fault.applies(kind, size, args.netns):
                    continue
                for run in range(args.runs):
                    specs.append(Spec(kind, size, fault, args.duration, seed=run, rate=args.rate))
    results: list[RunResult] = []
    t0 = time.monotonic()
    for i, spec in enumerate(specs, 1):
        workdir = args.workdir / f"{spec.kind}-{spec.size}-{spec.scenario.replace(' ', '_')}-{spec.seed}"
        r = run_once(spec, workdir)
        results.append(r)
        mark = "ok" if r.ok else "FAILED"
        print(
            f"[{i}/{len(specs)} {time.monotonic() - t0:7.0f}s] {spec.kind} x{spec.size} {spec.scenario} "
            f"seed {spec.seed}: {mark} ({r.operations} ops, {r.faults_fired}/{r.faults} faults, "
            f"unavailable {r.max_unavailable_s:.2f}s, {r.seconds:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
    report = table(results) + "\n### Every fault injected\n\n" + fault_table(results)
    bad = failures(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + ("\n## Failed runs\n\n" + bad if bad else ""))
    print(report + bad)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
