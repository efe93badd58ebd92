"""What an incremental run writes: continual.json, accuracy_matrix.csv, plots/continual.png and report.md."""

import math
from pathlib import Path
from typing import Any, Dict

__all__ = ["write_continual_report", "CONTINUAL_JSON", "MATRIX_CSV", "PLOT"]

CONTINUAL_JSON = "continual.json"
MATRIX_CSV = "accuracy_matrix.csv"
PLOT = "plots/continual.png"


def write_continual_report(run_dir: Path, content: Dict[str, Any], title: str = "") -> None:
    from mlexp.runrecord import write_json

    run_dir = Path(run_dir)
    write_json(run_dir / CONTINUAL_JSON, content)
    names = [t["name"] for t in content["tasks"]]
    lines = ["after," + ",".join(_csv(n) for n in names)]
    lines += [_csv(names[i]) + "," + ",".join(_cell(v) for v in row) for i, row in enumerate(content["matrix"])]
    (run_dir / MATRIX_CSV).write_text("\n".join(lines) + "\n")
    _plot(run_dir / PLOT, content)
    _markdown(run_dir / "report.md", content, title)


def _plot(path: Path, content: Dict[str, Any]) -> None:
    import numpy as np
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    R = np.asarray(content["matrix"], dtype=float)
    names = [t["name"] for t in content["tasks"]]
    metric = content["metric"]
    figure = Figure(figsize=(11, 4.2))
    heat, lines = figure.subplots(1, 2)
    image = heat.imshow(R, cmap="viridis", vmin=np.nanmin([0.0, np.nanmin(R)]), vmax=max(1.0, np.nanmax(R)))
    figure.colorbar(image, ax=heat, fraction=0.046)
    if len(names) <= 12:
        for i in range(len(R)):
            for j in range(len(R)):
                if not math.isnan(R[i, j]):
                    heat.text(j, i, f"{R[i, j]:.2f}", ha="center", va="center", fontsize=9,
                              color="white" if R[i, j] < 0.6 else "black")
    ticks = [_short(n) for n in names]
    heat.set_xticks(range(len(names)), ticks, rotation=45, ha="right", fontsize=9)
    heat.set_yticks(range(len(names)), ticks, fontsize=9)
    heat.set(xlabel="evaluated on task", ylabel="after training on task",
             title=f"{metric} matrix ({content['strategy']['name']})")
    steps = np.arange(len(names))
    for j, name in enumerate(names):
        lines.plot(steps[j:], R[j:, j], marker="o", label=_short(name))
    lines.plot(steps, [np.nanmean(R[i, : i + 1]) for i in steps], "k--", linewidth=2, label="mean of tasks seen")
    lines.set_xticks(steps, ticks, rotation=45, ha="right", fontsize=9)
    lines.set(xlabel="after training on task", ylabel=metric, title=f"{metric} per task as training goes on")
    lines.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def _markdown(path: Path, content: Dict[str, Any], title: str) -> None:
    metric, names = content["metric"], [t["name"] for t in content["tasks"]]
    strategy = content["strategy"]
    settings = ", ".join(f"{k}={v}" for k, v in strategy.items() if k != "name" and not isinstance(v, (list, dict)))
    lines = [f"# Incremental run{': ' + title if title else ''}", "",
             f"Strategy **{strategy['name']}**{' (' + settings + ')' if settings else ''}, "
             f"{content['epochs']} epochs per task" + (f", warm start from `{content['source']}`" if content["source"] else "")
             + ".", "",
             "| score | value |", "|---|---:|",
             f"| average {metric} (after the last task) | {_cell(content['average'])} |",
             f"| backward transfer (BWT; negative = forgetting) | {_cell(content['backward_transfer'])} |",
             f"| forward transfer (FWT) | {_cell(content['forward_transfer'])} |",
             f"| forgetting (mean drop from each task's best) | {_cell(content['forgetting'])} |", "",
             "## Tasks", "", "| task | training rows | test rows | |", "|---|---:|---:|---|"]
    lines += [f"| {t['name']} | {t['train_rows']} | {t['test_rows']} | "
              f"{'learnt by the saved run' if t['trained_before'] else ''} |" for t in content["tasks"]]
    lines += ["", f"## {metric.capitalize()} matrix", "",
              "Row i: after training on task i; column j: scored on task j's test rows.", "",
              "| after \\ on | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {names[i]} | " + " | ".join(_cell(v) for v in row) + " |" for i, row in enumerate(content["matrix"])]
    lines += ["| random init | " + " | ".join(_cell(v) for v in content["random_init"]) + " |", "",
              f"![{metric} matrix]({PLOT})", ""]
    held = {k: v for k, v in strategy.items() if isinstance(v, list)}
    if held:
        lines += ["## Strategy state", ""] + [f"- {k}: {v}" for k, v in held.items()] + [""]
    path.write_text("\n".join(lines))


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4f}"


def _csv(text: str) -> str:
    return f'"{text}"' if "," in text or '"' in text else text


def _short(text: str, width: int = 18) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
