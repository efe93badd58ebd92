"""Training curves of a run: the reporter's per-epoch rows as a CSV and a PNG (loss and objective per fold)."""

from pathlib import Path
from typing import Any, Dict, List, Optional

__all__ = ["write_training_curves", "CURVES_CSV", "CURVES_PNG"]

CURVES_CSV = "training_curves.csv"
CURVES_PNG = "training_curves.png"


def write_training_curves(epochs: List[Dict[str, float]], directory: Path, metric: Optional[str] = None) -> List[Path]:
    """Write ``training_curves.csv`` (fold, epoch, train_loss, valid_loss, metric) and ``training_curves.png``."""
    import pandas as pd

    frame = pd.DataFrame(epochs)
    csv = Path(directory) / CURVES_CSV
    frame.to_csv(csv, index=False)
    png = Path(directory) / CURVES_PNG
    _figure(frame, metric).savefig(png, format="png")
    return [csv, png]


def _figure(frame: Any, metric: Optional[str]) -> Any:
    """Loss per epoch (left) and the validation objective per epoch (right), one colour per fold.

    A matplotlib ``Figure`` without pyplot (no global state, no backend switch), as in report.md's plots.
    """
    from mlexp.reporting.report import FONT, LABEL_FONT, TITLE_FONT, new_figure

    panels = ["loss"] + ([metric] if metric and metric in frame else [])
    figure = new_figure(5.5 * len(panels), 4.3)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    figure.subplots_adjust(left=0.1 if len(panels) == 1 else 0.06, right=0.98, bottom=0.13, top=0.9, wspace=0.22)
    folds = frame["fold"].fillna(-1)  # the final fit (no fold) last
    for fold in sorted(folds.unique(), key=lambda f: (f == -1, f)):
        rows = frame[folds == fold]
        label = "final fit" if fold == -1 else f"fold {int(fold)}"
        line = axes[0].plot(rows["epoch"], rows["train_loss"], label=f"{label} train")[0]
        if "valid_loss" in rows:
            axes[0].plot(rows["epoch"], rows["valid_loss"], "--", color=line.get_color(), label=f"{label} valid")
        if len(panels) > 1:
            axes[1].plot(rows["epoch"], rows[metric], color=line.get_color(), label=label)
    axes[0].set_title("training (solid) and validation (dashed) loss", fontsize=TITLE_FONT)
    axes[0].set_ylabel("loss", fontsize=LABEL_FONT)
    if len(panels) > 1:
        axes[1].set_title(f"validation {metric}", fontsize=TITLE_FONT)
        axes[1].set_ylabel(metric, fontsize=LABEL_FONT)
    for ax in axes:
        ax.set_xlabel("epoch", fontsize=LABEL_FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
        entries = len(ax.get_legend_handles_labels()[0])
        ax.legend(fontsize=FONT - 1, ncol=2 if entries > 6 else 1)
    return figure
