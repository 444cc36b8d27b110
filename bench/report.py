"""The report: per workload and cluster size, each kind's median and min–max over the rounds, and the
ratio pyetcd_fast / etcd 3.4.23 per round and overall (medians), as Markdown, JSON and PNG plots.

A kind whose samples for a row all failed (``{"error": ...}`` results, e.g. ``check datascale`` against a
server without ``/metrics``) shows "n/a" in the table, with the errors kept in the row's JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from bench.run import KIND_LABELS, Sample
from bench.scale import metric_for
from bench.workloads import CHECK_PERF, WORKLOADS, metric_of

BASELINE = "etcd"
OURS = "ours"


def _metric(name: str) -> tuple[str, bool]:
    for w in WORKLOADS:
        if w.name == name:
            return w.metric, w.higher_is_better
    if name in CHECK_PERF:
        return "rps", True
    return metric_for(name) or "rss_mb", False


def summarize(samples: list[Sample]) -> list[dict]:
    """One row per (size, workload): values per kind over the rounds, and the per-round ratios."""
    rows = []
    first: dict[tuple[int, str], int] = {}
    for i, s in enumerate(samples):
        first.setdefault((s.size, s.workload), i)
    keys = sorted(first, key=lambda k: (k[0], _order(k[1]), first[k]))
    for size, name in keys:
        metric, higher = _metric(name)
        per_kind: dict[str, dict[int, float]] = {}
        errors: dict[str, str] = {}
        for s in samples:
            if s.size == size and s.workload == name:
                v = metric_of(s.result, metric)
                if v is not None:
                    per_kind.setdefault(s.kind, {})[s.round] = v
                elif "error" in s.result:
                    errors.setdefault(s.kind, str(s.result["error"]))
        row = {"size": size, "workload": name, "metric": metric, "higher_is_better": higher, "kinds": {}}
        row["errors"] = {k: e for k, e in errors.items() if k not in per_kind}
        for kind, vals in per_kind.items():
            xs = list(vals.values())
            row["kinds"][kind] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "rounds": vals}
        base, ours = per_kind.get(BASELINE, {}), per_kind.get(OURS, {})
        ratios = [ours[r] / base[r] for r in sorted(base) if r in ours and base[r]]
        row["ratios"] = ratios
        row["ratio"] = statistics.median(ratios) if ratios else None
        rows.append(row)
    return rows


def _order(name: str) -> int:
    """Workloads, then check perf, then the per-cluster memory row; the scale figures (and anything else) after
    them, in the order they were recorded."""
    names = [w.name for w in WORKLOADS] + list(CHECK_PERF) + ["memory"]
    return names.index(name) if name in names else len(names)


def number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def markdown(rows: list[dict], kinds: list[str]) -> str:
    head = ["members", "workload"] + [KIND_LABELS.get(k, k) for k in kinds] + ["ours / etcd 3.4 (per round)"]
    body = []
    for row in rows:
        cells = [str(row["size"]), row["workload"]]
        for k in kinds:
            d = row["kinds"].get(k)
            if d:
                cells.append(f"{number(d['median'])} ({number(d['min'])}–{number(d['max'])})")
            else:
                cells.append("n/a" if k in row.get("errors", {}) else "—")
        if row["ratio"] is None:
            cells.append("—")
        else:
            better = "higher is better" if row["higher_is_better"] else "lower is better"
            per = ", ".join(f"{r:.2f}" for r in row["ratios"])
            cells.append(f"**{row['ratio']:.2f}** ({per}; {better})")
        body.append(cells)
    return table(head, body)


def plots(rows: list[dict], samples: list[Sample], kinds: list[str], out: Path) -> list[Path]:
    """Throughput ratios as bars, and put→event / put latency CDFs; skipped when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    ratio_rows = [r for r in rows if r["ratio"]]  # None: not both kinds; 0: nothing to invert
    if ratio_rows:
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(ratio_rows) + 1.5))
        labels = [f"{r['workload']} (x{r['size']})" for r in ratio_rows]
        vals = [r["ratio"] if r["higher_is_better"] else 1 / r["ratio"] for r in ratio_rows]
        ax.barh(labels, vals, color=["tab:green" if v >= 1 else "tab:red" for v in vals])
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel("pyetcd_fast over etcd 3.4.23 (>1 is better; lower-is-better figures inverted)")
        ax.invert_yaxis()
        fig.tight_layout()
        p = out / "ratios.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)
    for name in ("put 1 client p50 (ms)", "watch put→event p99 (ms)"):
        fig, ax = plt.subplots(figsize=(7, 4))
        drawn = False
        for kind in kinds:
            hist = None
            for s in samples:
                if s.kind == kind and s.workload == name and s.size == 1:
                    hist = (s.result.get("latency_ms") or {}).get("hist_ms")
            if not hist:
                continue
            total = sum(c for _, c in hist)
            xs, ys, acc = [], [], 0
            for upper, c in hist:
                acc += c
                xs.append(upper)
                ys.append(acc / total)
            ax.step(xs, ys, where="post", label=KIND_LABELS.get(kind, kind))
            drawn = True
        if drawn:
            ax.set_xscale("log")
            ax.set_xlabel("latency (ms)")
            ax.set_ylabel("fraction of requests")
            ax.set_title(f"{name.split(' p')[0]}: latency CDF, 1 member")
            ax.legend()
            fig.tight_layout()
            p = out / ("cdf-" + name.split(" ")[0] + ".png")
            fig.savefig(p, dpi=110)
            made.append(p)
        plt.close(fig)
    return made


def write(samples: list[Sample], kinds: list[str], out: Path, meta: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(samples)
    md = markdown(rows, kinds)
    images = plots(rows, samples, kinds, out)
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "samples": [asdict(s) for s in samples]}, indent=1)
    )
    body = [f"# Benchmark results ({meta.get('mode')})", "", meta.get("when", ""), "", md]
    body += [f"![{p.stem}]({p.name})" for p in images]
    path = out / "results.md"
    path.write_text("\n".join(body) + "\n")
    return path
