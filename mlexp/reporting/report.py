"""A run's report.md with PNG plots: per-fold scores, confusion matrix, ROC/PR curves or regression errors, warnings.

Plots are drawn on matplotlib ``Figure`` objects (no pyplot, no display, no global backend
switch) and saved with the Agg renderer, from predictions kept while scoring, so writing
the report costs no extra model call. ``report=false`` turns it off.
"""

import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

__all__ = ["write_report", "report_warnings", "new_figure", "REPORT_FILE", "PLOTS_DIR", "FONT", "LABEL_FONT", "TITLE_FONT"]

log = logging.getLogger("mlexp")

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
# Warning thresholds on the objective metric (docs/reports.md). Scores are bounded (accuracy,
# roc_auc, r2, ...): compared in absolute terms. Errors (rmse, mae, log_loss): in relative terms.
FOLD_STD_LIMIT = 0.05  # std across folds of a score
FOLD_CV_LIMIT = 0.15  # std / mean across folds of an error
GAP_LIMIT = 0.05  # train score - validation score
GAP_RATIO_LIMIT = 1.25  # validation error / train error
ERRORS = {"rmse", "mae", "log_loss"}
MAX_POINTS = 5000  # scatter plots draw at most this many points
MAX_CURVE_CLASSES = 10  # one-vs-rest ROC/PR curves up to this many classes
DPI = 90
# Font sizes in points: legible at the PNG's own size (a 9-inch figure at 90 dpi), not only zoomed in.
FONT = 9  # tick labels, legends
LABEL_FONT = 10  # axis labels
TITLE_FONT = 11  # panel titles


def write_report(
    run_dir: Path,
    metrics: Dict[str, Any],
    cv: Any,
    test_predictions: Any = None,
    class_names: Optional[Sequence[str]] = None,
    title: str = "",
    sections: Sequence[Any] = (),
) -> Path:
    """Write ``report.md`` and ``plots/*.png`` in ``run_dir``; returns the report's path.

    ``cv`` is the run's ``CVResult`` (fold scores, training-fold scores, out-of-fold
    predictions); ``test_predictions`` the final model's ``Predictions`` on the test rows.
    """
    run_dir = Path(run_dir)
    plots = run_dir / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    metric, direction = metrics["objective_metric"], metrics["direction"]
    train = cv.train_summary() if cv.train_folds else {}
    warnings = report_warnings(metrics["cv"], train, metric) + [w for s in sections for w in s.warnings]
    names = [str(c) for c in class_names] if class_names else None

    figures: List[tuple] = [("Scores per fold", _fold_scores(metrics["cv"], train, plots / "fold_scores.png"))]
    notes: List[str] = []
    oof = cv.predictions
    if oof is not None and names:  # classification
        figures.append(("Confusion matrix (out-of-fold)", _confusion(oof, names, plots / "confusion_matrix.png")))
        if oof.scores is None:
            notes.append("ROC and precision-recall curves: skipped, the model gives neither probabilities nor "
                         "decision values.")
        elif len(names) > MAX_CURVE_CLASSES:
            notes.append(f"ROC and precision-recall curves: skipped for {len(names)} classes "
                         f"(drawn one-vs-rest up to {MAX_CURVE_CLASSES}).")
        else:
            label = "ROC and precision-recall curves" + (" (one-vs-rest per class)" if len(names) > 2 else "")
            figures.append((label, _curves(oof, test_predictions, names, plots / "roc_pr_curves.png")))
    elif oof is not None:  # regression
        figures.append(("Predicted vs actual, residuals",
                        _regression(oof, test_predictions, plots / "prediction_errors.png")))

    lines = [f"# Run report{': ' + title if title else ''}", ""]
    folds = len(metrics["cv"][metric]["folds"])
    stats = metrics["cv"][metric]
    lines.append(f"Objective: **{metric}** ({direction}) = {_num(stats['mean'])} ± {_num(stats['std'])} "
                 f"over {folds} fold{'s' if folds != 1 else ''}.")
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in warnings] or ["None."]
    lines += ["", "## Scores", "", "| metric | cv mean | ± std | train mean | test |", "|---|---:|---:|---:|---:|"]
    for name, s in metrics["cv"].items():
        lines.append(f"| {name} | {_num(s['mean'])} | {_num(s['std'])} | "
                     f"{_num(train.get(name, {}).get('mean'))} | {_num(metrics.get('test', {}).get(name))} |")
    lines += ["", "Train mean: each fold's model scored on (at most 5,000 of) its own training rows.", ""]
    lines += ["## Per fold", "", "| fold | " + " | ".join(metrics["cv"]) + " |",
              "|---:|" + "---:|" * len(metrics["cv"])]
    for i in range(folds):
        lines.append(f"| {i} | " + " | ".join(_num(s["folds"][i]) for s in metrics["cv"].values()) + " |")
    lines.append("")
    for label, path in figures:
        if path is not None:
            lines += [f"## {label}", "", f"![{label}]({PLOTS_DIR}/{path.name})", ""]
    if (run_dir / "training_curves.png").is_file():
        lines += ["## Training curves", "", "![Training curves](training_curves.png)", ""]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    for section in sections:
        lines += [f"## {section.title}", "", *section.lines, ""]
    timings = metrics.get("timings", {})
    if timings:
        lines += ["## Timings", "", "| step | seconds |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in timings.items() if isinstance(v, (int, float))]
        lines.append("")
    path = run_dir / REPORT_FILE
    path.write_text("\n".join(lines))
    return path


def report_warnings(cv: Dict[str, Any], train: Dict[str, Any], metric: str) -> List[str]:
    """Warnings on the objective metric: high fold-to-fold spread, and train scores far from validation."""
    out: List[str] = []
    stats = cv.get(metric) or {}
    mean, std = stats.get("mean"), stats.get("std")
    error = metric in ERRORS
    if mean is not None and std is not None and len(stats.get("folds", [])) > 1:
        if error and mean > 0 and std / mean > FOLD_CV_LIMIT:
            out.append(f"High fold-to-fold variance: {metric} std {std:.4f} is {std / mean:.0%} of its mean "
                       f"{mean:.4f} (limit {FOLD_CV_LIMIT:.0%}). The score depends on which rows land in which "
                       "fold: a sign of over-fitting or of too little data; try a simpler model, more "
                       "regularization or more folds.")
        elif not error and std > FOLD_STD_LIMIT:
            out.append(f"High fold-to-fold variance: {metric} std {std:.4f} across folds (limit "
                       f"{FOLD_STD_LIMIT}). The score depends on which rows land in which fold: a sign of "
                       "over-fitting or of too little data; try a simpler model, more regularization or more folds.")
    fit = (train.get(metric) or {}).get("mean")
    if mean is not None and fit is not None:
        if error:
            ratio = mean / fit if fit > 0 else (math.inf if mean > 0 else 1.0)
            if ratio > GAP_RATIO_LIMIT:
                out.append(f"Train and validation diverge: validation {metric} {mean:.4f} vs train {fit:.4f} "
                           f"({'x%.2f' % ratio if math.isfinite(ratio) else 'train error 0'}, limit "
                           f"x{GAP_RATIO_LIMIT}). The model fits its training rows much better than new ones: "
                           "over-fitting; regularize, simplify, or stop earlier.")
        elif fit - mean > GAP_LIMIT:
            out.append(f"Train and validation diverge: train {metric} {fit:.4f} vs validation {mean:.4f} "
                       f"(gap {fit - mean:.4f}, limit {GAP_LIMIT}). The model fits its training rows much "
                       "better than new ones: over-fitting; regularize, simplify, or stop earlier.")
    return out


# ---- plots ---------------------------------------------------------------------------------


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure of ``width`` x ``height`` inches at the report's resolution (no pyplot)."""
    from matplotlib.figure import Figure

    # No layout engine: constrained/tight layout double the time to save, and the report is
    # written by every job of every sweep. Margins are set by hand instead.
    return Figure(figsize=(width, height), dpi=DPI)


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, format="png")
    return path


def _fold_scores(cv: Dict[str, Any], train: Dict[str, Any], path: Path) -> Optional[Path]:
    """Every fold's validation score (dots), training score (squares), mean and ± std (bar), per metric.

    Scores on a 0-1 scale share one panel; errors (rmse, mae, log_loss) get their own.
    """
    shown = [m for m, s in cv.items() if s["mean"] is not None]
    if not shown:
        return None
    panels = [group for group in ([m for m in shown if m not in ERRORS], [m for m in shown if m in ERRORS]) if group]
    figure = new_figure(1.3 + 1.2 * len(shown) + 0.6 * len(panels), 3.8)
    widths = [len(group) for group in panels]
    axes = figure.subplots(1, len(panels), squeeze=False, gridspec_kw={"width_ratios": widths})[0]
    figure.subplots_adjust(left=0.08 if len(panels) > 1 else 0.12, right=0.98, bottom=0.15, top=0.88, wspace=0.3)
    for ax, group in zip(axes, panels):
        for x, metric in enumerate(group):
            stats = cv[metric]
            values = [v for v in stats["folds"] if v is not None]
            ax.errorbar(x, stats["mean"], yerr=stats["std"], fmt="_", color="black", capsize=8, ms=16,
                        label="mean ± std" if x == 0 else None)
            ax.plot(np.full(len(values), x - 0.12), values, "o", color="C0", alpha=0.8,
                    label="validation fold" if x == 0 else None)
            if metric in train and train[metric]["mean"] is not None:
                fit = [v for v in train[metric]["folds"] if v is not None]
                ax.plot(np.full(len(fit), x + 0.12), fit, "s", mfc="none", color="C1", alpha=0.8,
                        label="training fold" if x == 0 else None)
        ax.set_xticks(range(len(group)), group, fontsize=FONT)
        ax.set_xlim(-0.6, len(group) - 0.4)
        ax.tick_params(axis="y", labelsize=FONT)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=FONT, loc="lower left")
    figure.suptitle(f"scores per fold ({len(cv[shown[0]]['folds'])} folds)", fontsize=TITLE_FONT)
    return _save(figure, path)


def _confusion(pred: Any, names: List[str], path: Path) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    size = min(3.2 + 0.45 * len(names), 10)
    figure = new_figure(size, size * 0.9)
    ax = figure.subplots()
    figure.subplots_adjust(left=0.22, right=0.97, bottom=0.2, top=0.92)
    ConfusionMatrixDisplay.from_predictions(
        pred.y_true, pred.y_pred, labels=np.arange(len(names)), display_labels=names, ax=ax, colorbar=False,
        xticks_rotation="vertical" if len(names) > 4 else "horizontal",
    )
    ax.tick_params(labelsize=FONT)
    ax.set_title("confusion matrix, out-of-fold", fontsize=TITLE_FONT)
    return _save(figure, path)


def _curves(oof: Any, test: Any, names: List[str], path: Path) -> Path:
    """ROC (left) and precision-recall (right): binary for the positive class, else one-vs-rest per class."""
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    figure = new_figure(10.0, 4.8)
    axes = figure.subplots(1, 2)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.91, wspace=0.22)
    sets = [("out-of-fold", oof)] + ([("test", test)] if _has_scores(test, oof) else [])
    for ax, display in zip(axes, (RocCurveDisplay, PrecisionRecallDisplay)):
        for label, pred in sets:
            for positive in ([1] if len(names) == 2 else range(len(names))):
                y = (pred.y_true == positive).astype(int)
                if y.min() == y.max():  # a class absent from these rows has no curve
                    continue
                scores = pred.scores
                s = scores[:, positive] if scores.ndim == 2 else (scores if positive == 1 else -scores)
                name = label if len(names) == 2 else f"{names[positive]} ({label})"
                display.from_predictions(y, s, name=name, ax=ax)
                if label == "test":  # set afterwards: the style keyword changed across scikit-learn versions
                    ax.lines[-1].set_linestyle("--")
        entries = len(ax.get_legend_handles_labels()[0])
        ax.legend(fontsize=FONT, ncol=2 if entries > 8 else 1)
        ax.tick_params(labelsize=FONT)
    axes[0].set_xlabel("false positive rate", fontsize=LABEL_FONT)
    axes[0].set_ylabel("true positive rate", fontsize=LABEL_FONT)
    axes[1].set_xlabel("recall", fontsize=LABEL_FONT)
    axes[1].set_ylabel("precision", fontsize=LABEL_FONT)
    suffix = f", positive class {names[1]}" if len(names) == 2 else ", one-vs-rest"
    axes[0].set_title("ROC" + suffix, fontsize=TITLE_FONT)
    axes[1].set_title("precision-recall" + suffix, fontsize=TITLE_FONT)
    return _save(figure, path)


def _has_scores(test: Any, oof: Any) -> bool:
    return test is not None and test.scores is not None and test.scores_kind == oof.scores_kind


def _regression(oof: Any, test: Any, path: Path) -> Path:
    """Predicted vs actual (left) and residuals vs predicted (right), out-of-fold and test."""
    from sklearn.metrics import PredictionErrorDisplay

    figure = new_figure(10.0, 4.8)
    axes = figure.subplots(1, 2)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9, wspace=0.25)
    sets = [("out-of-fold", oof, "C0")] + ([("test", test, "C1")] if test is not None else [])
    for ax, kind in zip(axes, ("actual_vs_predicted", "residual_vs_predicted")):
        for label, pred, color in sets:
            PredictionErrorDisplay.from_predictions(
                pred.y_true, pred.y_pred, kind=kind, subsample=MAX_POINTS, random_state=0, ax=ax,
                scatter_kwargs={"alpha": 0.4, "s": 8, "color": color, "label": label},
            )
        ax.legend(fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.xaxis.label.set_fontsize(LABEL_FONT)
        ax.yaxis.label.set_fontsize(LABEL_FONT)
    axes[0].set_title("predicted vs actual", fontsize=TITLE_FONT)
    axes[1].set_title("residuals (actual - predicted)", fontsize=TITLE_FONT)
    return _save(figure, path)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"
