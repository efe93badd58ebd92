"""Training curves of a run: the reporter's per-epoch rows as a CSV and a PNG (loss and objective per fold)."""

from pathlib import Path
from typing import Dict, List, Optional

__all__ = ["write_training_curves", "CURVES_CSV", "CURVES_PNG"]

CURVES_CSV = "training_curves.csv"
CURVES_PNG = "training_curves.png"


def write_training_curves(epochs: List[Dict[str, float]], directory: Path, metric: Optional[str] = None) -> List[Path]:
    """Write ``training_curves.csv`` (fold, epoch, train_loss, valid_loss, metric) and ``training_curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(epochs)
    csv = Path(directory) / CURVES_CSV
    frame.to_csv(csv, index=False)
    panels = ["loss"] + ([metric] if metric and metric in frame else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for fold, rows in frame.groupby(frame["fold"].fillna(-1), sort=True):
        label = "final" if fold == -1 else f"fold {int(fold)}"
        line = axes[0][0].plot(rows["epoch"], rows["train_loss"], label=f"{label} train")[0]
        if "valid_loss" in rows:
            axes[0][0].plot(rows["epoch"], rows["valid_loss"], "--", color=line.get_color(), label=f"{label} valid")
        if len(panels) > 1:
            axes[0][1].plot(rows["epoch"], rows[metric], color=line.get_color(), label=label)
    axes[0][0].set(xlabel="epoch", ylabel="loss", title="training (solid) and validation (dashed) loss")
    axes[0][0].legend(fontsize=7)
    if len(panels) > 1:
        axes[0][1].set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    figure.tight_layout()
    png = Path(directory) / CURVES_PNG
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return [csv, png]
