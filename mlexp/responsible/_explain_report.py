"""explain.json's plots and report section: importance bars, PDP/ICE (scikit-learn), SHAP waterfalls per row."""

import logging
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pandas as pd

from mlexp.posttrain import Section

__all__ = ["explain_section", "partial_dependence", "waterfall"]

log = logging.getLogger("mlexp")

DPI = 90
SHOWN = 15  # features in the importance table and chart


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def explain_section(report: Dict[str, Any], run_dir: Path) -> Section:
    ranking = report["global_ranking"][:SHOWN]
    measure = report["global_ranking_measure"]
    permutation = report["permutation_importance"]
    lines = [f"Global importance per input column: **{measure}** "
             f"({permutation['split']} split, {permutation['rows']} rows"
             + (f"; SHAP from {report['shap']['explainer']}, output: {report['shap']['output']}" if "shap" in report
                else f", {permutation['n_repeats']} shuffles per column") + "). Full values in explain.json.", "",
             "| rank | column | importance | ± std |" + (" permutation importance |" if "shap" in report else ""),
             "|---:|---|---:|---:|" + ("---:|" if "shap" in report else "")]
    for row in ranking:
        perm = permutation["features"][row["feature"]]
        lines.append(f"| {row['rank']} | {row['feature']} | {row['importance']:.4f} | {row['std']:.4f} |"
                     + (f" {perm['mean']:.4f} ± {perm['std']:.4f} |" if "shap" in report else ""))
    lines.append("")
    lines += [f"![importance](explain/{_importance_plot(ranking, measure, run_dir / 'explain' / 'importance.png')})", ""]
    for entry in report["partial_dependence"][:1]:
        lines += ["Partial dependence (line) and individual conditional expectation (thin lines) of the model's "
                  "output on the top columns:", "", f"![partial dependence]({entry['plot']})", ""]
    pairs = [e for e in report["partial_dependence"] if len(e["features"]) == 2]
    if pairs:
        lines += [f"![two-way partial dependence]({pairs[0]['plot']})", ""]
    for entry in report.get("local", []):
        lines += [f"Row {entry['row']} ({entry['split']}): prediction {entry['prediction']:.4f} from a base value of "
                  f"{entry['base_value']:.4f}.", "", f"![row {entry['row']}]({entry['plot']})", ""]
    return Section("Explanations", lines)


def _importance_plot(ranking: List[Dict[str, Any]], measure: str, path: Path) -> str:
    figure = _figure(6.0, 1.2 + 0.28 * len(ranking))
    ax = figure.subplots()
    figure.subplots_adjust(left=0.3, right=0.97, bottom=0.12, top=0.92)
    y = np.arange(len(ranking))
    ax.barh(y, [r["importance"] for r in ranking], xerr=[r["std"] for r in ranking], color="C0", alpha=0.8,
            error_kw={"lw": 0.8})
    ax.set_yticks(y, [r["feature"] for r in ranking], fontsize=8)
    ax.invert_yaxis()
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(measure, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    figure.savefig(path, format="png")
    return path.name


def partial_dependence(trained: Any, node: Any, X: pd.DataFrame, ranking: List[Dict[str, Any]], out_dir: Path,
                       seed: int) -> List[Dict[str, Any]]:
    """PDP + ICE for the top_k input columns and 2-way PDP for explain.pairs (scikit-learn's displays)."""
    from sklearn.inspection import PartialDependenceDisplay

    from mlexp.responsible.explain import _class_index, _pairs

    roles = trained.dataset.roles
    skipped = set(roles.text) | set(roles.datetime)
    top = [r["feature"] for r in sorted(ranking, key=lambda r: -r["importance"]) if r["feature"] not in skipped]
    top = top[:node.top_k]
    names = trained.dataset.class_names
    target = None
    if names is not None and len(names) > 2:
        target = _class_index(node.pdp_class, names) if node.get("pdp_class") is not None else 0
    out = []
    jobs = ([("pdp.png", top, ["average" if c in roles.categorical else "both" for c in top])] if top else [])
    jobs += [(f"pdp_{a}_{b}.png", [(a, b)], "average") for a, b in _pairs(node, trained.dataset)]
    for name, features, kind in jobs:
        columns = sorted({c for f in features for c in (f if isinstance(f, tuple) else (f,))})
        rows = X.dropna(subset=columns)
        if len(rows) < 2:
            continue
        categorical = [c for c in columns if c in roles.categorical] or None
        figure = _figure(3.4 * len(features), 3.3)
        axes = figure.subplots(1, len(features), squeeze=False)[0]
        figure.subplots_adjust(left=0.1, right=0.97, bottom=0.18, top=0.88, wspace=0.35)
        try:
            display = PartialDependenceDisplay.from_estimator(
                trained.model, rows, features, kind=kind, subsample=node.ice_lines, ax=axes, target=target,
                categorical_features=categorical, grid_resolution=node.grid_resolution, random_state=seed)
        except (ValueError, TypeError) as err:  # e.g. a column the model cannot vary on
            log.warning("explain: partial dependence for %s skipped: %s", columns, err)
            continue
        figure.suptitle("partial dependence" + (" + ICE" if kind != "average" else "")
                        + (f", class {names[target]}" if target is not None else ""), fontsize=9)
        figure.savefig(out_dir / name, format="png")
        for f, result in zip(features, display.pd_results):
            out.append({"features": list(f) if isinstance(f, tuple) else [f], "plot": f"explain/{name}",
                        "grid": [np.asarray(g).tolist() for g in result["grid_values"]],
                        "average": np.asarray(result["average"]).tolist()})
    return out


def waterfall(entry: Dict[str, Any], row: pd.Series, out_dir: Path, output: str) -> str:
    """shap's waterfall plot of one row's attributions; returns its path relative to the run directory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    columns = list(entry["attributions"])
    explanation = shap.Explanation(values=np.array([entry["attributions"][c] for c in columns]),
                                   base_values=entry["base_value"], feature_names=columns,
                                   data=np.array([row[c] for c in columns], dtype=object))
    shap.plots.waterfall(explanation, max_display=10, show=False)
    figure = plt.gcf()
    figure.suptitle(f"row {entry['row']}: SHAP values ({output})", fontsize=9)
    name = f"waterfall_row{entry['row']}.png"
    figure.savefig(out_dir / name, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return f"explain/{name}"
