"""bias.json's report section (tables, a bar chart, threshold warnings) and the flip test's feature encoding."""

from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import pandas as pd

from mlexp.posttrain import Section

__all__ = ["bias_section", "neighbour_features", "BIAS_PLOT"]

BIAS_PLOT = "bias.png"
MAX_PLOTTED_VALUES = 8
STAGES = (("pre_training_bias_metrics", "pre-training (development rows)"),
          ("post_training_bias_metrics", "post-training (out-of-fold predictions)"),
          ("post_training_bias_metrics_test", "post-training (test split)"))


def neighbour_features(X_dev: pd.DataFrame, facet: str, roles: Any) -> Callable[[pd.DataFrame], np.ndarray]:
    """An encoder for the flip test's nearest neighbours, fitted on the development rows.

    The facet is left out (Clarify's flip test takes the data without facet and label); numeric
    columns are standardized (missing: the mean), categorical ones one-hot; text and dates are left out.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in roles.numeric if c != facet and c in X_dev]
    categorical = [c for c in roles.categorical if c != facet and c in X_dev]
    if not numeric and not categorical:
        def nothing(rows: pd.DataFrame) -> np.ndarray:
            raise ValueError("the flip test needs feature columns other than the facet")
        return nothing
    branches = []
    if numeric:
        branches.append(("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric))
    if categorical:
        branches.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    encoder = ColumnTransformer(branches, sparse_threshold=0.0)
    encoder.fit(_as_strings(X_dev, categorical))
    return lambda rows: np.asarray(encoder.transform(_as_strings(rows, categorical)), dtype=float)


def _as_strings(rows: pd.DataFrame, columns: List[str]) -> pd.DataFrame:
    rows = rows.copy()
    for column in columns:  # missing values and mixed types (numbers and strings) as categories of their own
        rows[column] = rows[column].astype(object).where(rows[column].notna(), "missing").astype(str)
    return rows


def bias_section(report: Dict[str, Any], thresholds: Dict[str, Any], run_dir: Path) -> Section:
    """report.md's bias section: one table per stage (metrics x facet d), a bar chart, threshold warnings."""
    from mlexp.responsible.bias import passes

    facet = report["facet"]
    lines = [f"Facet **{facet}**: each facet d below against the other rows (facet a); positive outcome: "
             f"{report['label']} = {report['label_value_or_threshold']}"
             + (f"; conditional metrics grouped by **{report['group']}**." if report["group"] else ".")
             + " Metrics, names and signs as SageMaker Clarify's (docs/bias.md); full values in bias.json.", ""]
    warnings: List[str] = []
    for key, title in STAGES:
        block = report.get(key)
        if not block:
            continue
        entries = block["facets"][facet]
        values = [e["value_or_threshold"] for e in entries]
        lines += [f"**{title}**", "", "| metric | " + " | ".join(f"{facet}={v}" for v in values) + " |",
                  "|---|" + "---:|" * len(values)]
        names = [m["name"] for m in entries[0]["metrics"]] if entries else []
        for i, name in enumerate(names):
            cells = []
            for entry in entries:
                metric = entry["metrics"][i]
                flag = " ⚠" if name in thresholds and passes(metric["value"], thresholds[name]) else ""
                cells.append(_cell(metric) + flag)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        if key != "post_training_bias_metrics_test":  # warn on the larger samples; test values are in the table
            warnings += _warnings(entries, thresholds, facet, title)
    plot = _chart(report, run_dir / BIAS_PLOT)
    if plot is not None:
        lines += [f"![bias metrics]({plot.name})", ""]
    errors = sorted({f"{m['name']}: {m['error']}" for key, _ in STAGES for e in (report.get(key) or {}).get(
        "facets", {}).get(facet, []) for m in e["metrics"] if m.get("error")})
    if errors:
        lines += ["Not computed: " + "; ".join(errors) + ".", ""]
    return Section("Bias (SageMaker Clarify metrics)", lines, warnings)


def _cell(metric: Dict[str, Any]) -> str:
    value = metric.get("value")
    if value is None:
        return "n/a"
    return ("∞" if value > 0 else "-∞") if np.isinf(value) else f"{value:.4f}"


def _warnings(entries: List[Dict[str, Any]], thresholds: Dict[str, Any], facet: str, title: str) -> List[str]:
    from mlexp.responsible.bias import passes

    out = []
    for name, limit in thresholds.items():
        hits = [f"{facet}={e['value_or_threshold']} ({m['value']:.4f})" for e in entries for m in e["metrics"]
                if m["name"] == name and passes(m["value"], limit)]
        if hits:
            rule = f"outside [{limit[0]}, {limit[1]}]" if isinstance(limit, list) else f"|value| > {limit}"
            out.append(f"Bias: {name} {rule}, {title}, for {', '.join(hits)}. See the bias section and docs/bias.md; "
                       f"bias.thresholds.{name} sets the limit.")
    return out


def _chart(report: Dict[str, Any], path: Path) -> Any:
    """Horizontal bars per metric, one colour per facet d; pre-training and out-of-fold post-training panels."""
    from matplotlib.figure import Figure

    facet = report["facet"]
    panels = [(key, title) for key, title in STAGES[:2] if report.get(key)]
    if not panels:
        return None
    figure = Figure(figsize=(5.2 * len(panels), 4.6), dpi=90)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    figure.subplots_adjust(left=0.1, right=0.98, bottom=0.12, top=0.9, wspace=0.3)
    for ax, (key, title) in zip(axes, panels):
        entries = report[key]["facets"][facet][:MAX_PLOTTED_VALUES]
        names = [m["name"] for m in entries[0]["metrics"]] if entries else []
        height = 0.8 / max(1, len(entries))
        for j, entry in enumerate(entries):
            values = [m["value"] if m["value"] is not None and np.isfinite(m["value"]) else 0.0
                      for m in entry["metrics"]]
            ax.barh(np.arange(len(names)) + j * height, values, height=height, label=str(entry["value_or_threshold"]))
        ax.set_yticks(np.arange(len(names)) + 0.4 - height / 2, names, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", lw=0.6)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7, title=f"facet d ({facet})", title_fontsize=7)
    figure.savefig(path, format="png")
    return path
