"""monitor.md with PNG plots: violations, per-feature baseline vs current distributions, checks over windows."""

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

__all__ = ["write_monitor_report"]

MAX_FEATURES = 12  # distribution panels drawn (the most drifted first)
MAX_LISTED = 50  # violations listed in monitor.md (all are in constraint_violations.json)
DPI = 90


def write_monitor_report(out_dir: Path, base: Any, settings: Any, results: List[Dict[str, Any]],
                         summary: Dict[str, Any]) -> Path:
    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)
    windowed = bool(settings.window)
    lines = [f"# Monitor: {settings.data}", "",
             f"Baseline: `{settings.baseline}` ({base.task}, {base.summary.get('rows')} development rows). "
             f"Rows checked: {summary['rows']}" + (f" in {len(results)} windows of `{settings.window}`" if windowed else "")
             + f". Drift distance: `{settings.distance}`. Checks: {', '.join(settings.checks)}.", ""]
    if summary.get("skipped"):
        lines += [f"Model-based checks skipped: {summary['skipped']}.", ""]
    lines += ["## Violations", ""]
    violations = [dict(v, window=str(r["window"])) for r in results for v in r["violations"]]
    if not violations:
        lines += ["None: nothing is violated (exit status 0).", ""]
    else:
        counts = ", ".join(f"`{k}` {v}" for k, v in summary["violations_by_type"].items())
        lines += [f"{len(violations)} violation(s) (exit status 3): {counts}.", "",
                  "| " + ("window | " if windowed else "") + "check | feature / metric | description |",
                  "|" + ("---|" if windowed else "") + "---|---|---|"]
        for v in violations[:MAX_LISTED]:
            subject = v.get("feature_name") or v.get("metric_name", "")
            if v.get("facet"):
                subject = f"{v['facet']}={v['facet_value']}: {subject}"
            lines.append("| " + (f"{v['window'][:19]} | " if windowed else "") +
                         f"`{v['constraint_check_type']}` | {subject} | {v['description']} |")
        if len(violations) > MAX_LISTED:
            lines.append(f"| ... | {len(violations) - MAX_LISTED} more in constraint_violations.json | |")
        lines.append("")
    if windowed:
        lines += _over_time(results, base, plots)
    last = results[-1]
    if "statistics" in last:
        title = f"## Distributions: baseline vs {'the last window' if windowed else 'current data'}"
        lines += [title, "", "| feature | distance |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in sorted(last.get("distances", {}).items(), key=lambda kv: -kv[1])]
        path = _distributions(base.statistics, last["statistics"], last.get("distances", {}), plots / "distributions.png")
        lines += ["", f"![distributions]({path.relative_to(out_dir)})" if path else "", ""]
    if not windowed:
        lines += _metrics_table(last)
    (out_dir / "monitor.md").write_text("\n".join(lines) + "\n")
    return out_dir / "monitor.md"


def _metrics_table(result: Dict[str, Any]) -> List[str]:
    lines = []
    if result.get("estimated"):
        actual = result.get("actual", {})
        lines += ["## Performance", "", "| metric | estimated without labels (CBPE) | with labels | error |",
                  "|---|---:|---:|---:|"]
        for k, v in result["estimated"].items():
            real = actual.get(k)
            lines.append(f"| {k} | {v:.4f} | {_num(real)} | {_num(None if real is None else v - real, '+.4f')} |")
        lines.append("")
    if "ndcg" in result:
        lines += [f"Attribution ranking NDCG against the baseline: {result['ndcg']:.4f}.", ""]
    if result.get("bias"):
        lines += ["## Bias (post-training)", "", "| facet value | metric | value |", "|---|---|---:|"]
        lines += [f"| {g} | {m} | {v:.4f} |" for g, ms in result["bias"].items() for m, v in ms.items()]
        lines.append("")
    return lines


def _over_time(results: List[Dict[str, Any]], base: Any, plots: Path) -> List[str]:
    """One panel per check kind: violations, drift distances, metrics and their estimates, per window."""
    starts = [str(r["window"])[:10] for r in results]
    panels = [("violations per window", {"violations": [len(r["violations"]) for r in results]})]
    features = sorted({f for r in results for f in r.get("distances", {})})
    panels.append(("drift distance per feature", {f: [r.get("distances", {}).get(f, np.nan) for r in results]
                                                  for f in features}))
    metrics = [m for m in ("accuracy", "roc_auc", "f1") if any(m in (r.get("estimated") or {}) for r in results)][:2]
    if metrics:
        series = {}
        for m in metrics:
            series[f"estimated {m}"] = [r.get("estimated", {}).get(m, np.nan) for r in results]
            if any("actual" in r for r in results):
                series[f"actual {m}"] = [r.get("actual", {}).get(m, np.nan) for r in results]
        panels.append(("performance: estimated without labels (CBPE, solid) and with labels (dashed)", series))
    if any("ndcg" in r for r in results):
        panels.append(("attribution NDCG", {"ndcg": [r.get("ndcg", np.nan) for r in results]}))
    figure = _figure(9, 2.6 * len(panels))
    lines = ["## Checks over windows", "", "| window | rows | labelled | violations |" +
             (" estimated accuracy | actual accuracy |" if metrics else ""), "|---|---:|---:|---:|" +
             ("---:|---:|" if metrics else "")]
    for r in results:
        row = f"| {str(r['window'])[:19]} | {r['rows']} | {r.get('labelled', 0)} | {len(r['violations'])} |"
        if metrics:
            row += f" {_num(r.get('estimated', {}).get('accuracy'))} | {_num(r.get('actual', {}).get('accuracy'))} |"
        lines.append(row)
    for i, (title, series) in enumerate(panels):
        axes = figure.add_subplot(len(panels), 1, i + 1)
        colors = {}
        for name, values in series.items():
            metric = name.split(" ", 1)[-1] if name.startswith(("estimated ", "actual ")) else name
            color = colors.setdefault(metric, f"C{len(colors) % 10}")
            axes.plot(range(len(results)), values, marker="o", markersize=3, label=name, color=color,
                      linestyle="--" if name.startswith("actual") else "-")
        axes.set_title(title, fontsize=9)
        axes.set_xticks(range(len(results)))
        axes.set_xticklabels(starts, rotation=45, fontsize=7, ha="right")
        if len(series) > 1:
            axes.legend(fontsize=7, ncol=2, loc="best")
    figure.subplots_adjust(hspace=0.9, left=0.08, right=0.98, top=0.96, bottom=0.08)
    figure.savefig(plots / "windows.png", format="png")
    return lines + ["", "![checks over windows](plots/windows.png)", ""]


def _distributions(baseline: Dict[str, Any], current: Dict[str, Any], distances: Dict[str, float],
                   path: Path) -> Optional[Path]:
    before = {f["name"]: f for f in baseline["features"]}
    now = {f["name"]: f for f in current["features"]}
    names = sorted((n for n in before if n in now), key=lambda n: -distances.get(n, 0.0))[:MAX_FEATURES]
    if not names:
        return None
    columns = 3
    rows = (len(names) + columns - 1) // columns
    figure = _figure(10, 2.4 * rows)
    for i, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, i + 1)
        a, b = before[name], now[name]
        if "numerical_statistics" in a and "numerical_statistics" in b:
            x, y = _items(a), _items(b)
            edges = np.histogram_bin_edges(np.concatenate([x, y]), bins=30) if len(x) + len(y) else 10
            axes.hist(x, bins=edges, density=True, alpha=0.5, label="baseline")
            axes.hist(y, bins=edges, density=True, alpha=0.5, label="current")
        else:
            p, q = _frequencies(a), _frequencies(b)
            top = sorted(set(p) | set(q), key=lambda v: -(p.get(v, 0) + q.get(v, 0)))[:8]
            ticks = np.arange(len(top))
            axes.bar(ticks - 0.2, [p.get(v, 0) for v in top], width=0.4, label="baseline")
            axes.bar(ticks + 0.2, [q.get(v, 0) for v in top], width=0.4, label="current")
            axes.set_xticks(ticks)
            axes.set_xticklabels([str(v)[:10] for v in top], rotation=45, fontsize=6, ha="right")
        axes.set_title(f"{name} ({distances.get(name, 0.0):.3f})", fontsize=8)
        axes.tick_params(labelsize=6)
        if i == 0:
            axes.legend(fontsize=6)
    figure.subplots_adjust(hspace=0.8, wspace=0.3, left=0.05, right=0.98, top=0.95, bottom=0.08)
    figure.savefig(path, format="png")
    return path


def _items(feature: Dict[str, Any]) -> np.ndarray:
    data = feature["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]
    return np.asarray([v for level in data for v in level], dtype=float)


def _frequencies(feature: Dict[str, Any]) -> Dict[str, float]:
    stats = feature.get("string_statistics") or {}
    buckets = stats.get("distribution", {}).get("categorical", {}).get("buckets", [])
    total = sum(b["count"] for b in buckets) or 1
    return {b["value"]: b["count"] / total for b in buckets}


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _num(value: Optional[float], spec: str = ".4f") -> str:
    return "n/a" if value is None or not np.isfinite(value) else format(value, spec)
