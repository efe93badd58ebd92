"""Distillation vs hard labels: does a student taught by a teacher's soft labels beat its hard-label twin?

    python bench/bench_distill.py [--data gss,digits] [--teachers gradient_boosting,mlp] [--seeds 0,1,2,3,4]
                                  [--student "[8]"] [--temperature 2] [--alpha 0.5] [--rows 6000]

For every data set, teacher and seed: a train run of the teacher (hold-out splitter, seed s),
then `mode=compress compress=distill` from it. The distilled student and its hard-label twin
share the initial weights, the batches and the epochs; only their targets differ. Prints each
pair's test accuracy, ROC AUC and log loss, and how often the distilled student wins.
"""

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATEGORICAL = "data.roles.categorical=[occrecode,wrkstat,gender,educcat,maritalcat]"
TEACHERS = {"mlp": ["model=mlp", "model.hidden_sizes=[256,256]"], "random_forest": ["model=random_forest"],
            "gradient_boosting": ["model=gradient_boosting"]}
METRICS = ("accuracy", "roc_auc", "log_loss")


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from mlexp.schema import register

    register()
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def data_overrides(name: str, rows: int, work: Path) -> list:
    if name != "gss":
        return [f"data={name}"]
    from mlexp.data.loaders import gss_wages

    path = work / "gss.csv"
    if not path.is_file():
        gss_wages().sample(rows, random_state=0).to_csv(path, index=False)
    return ["data=csv", f"data.path={path}", "data.target=high_income", CATEGORICAL, "data.dropna=true"]


def one(data: list, teacher: str, seed: int, args, work: Path) -> dict:
    from omegaconf import OmegaConf

    from mlexp.experiment import run
    from mlexp.neural.compress.mode import run_compress

    overrides = [*data, *TEACHERS[teacher], "splitter=holdout", f"seed={seed}"]
    teacher_dir = work / f"{teacher}_{seed}_{abs(hash(tuple(data))) % 10**6}"
    if not (teacher_dir / "metrics.json").is_file():
        run(compose(overrides), run_dir=teacher_dir)
        (teacher_dir / ".hydra").mkdir(exist_ok=True)
        OmegaConf.save(compose(overrides), teacher_dir / ".hydra" / "config.yaml")
    out = work / f"student_{teacher_dir.name}"
    run_compress(compose(["mode=compress", "compress=distill", f"compress.from={teacher_dir}",
                          f"compress.student.hidden_sizes={args.student}", f"compress.temperature={args.temperature}",
                          f"compress.alpha={args.alpha}"]), run_dir=out)
    return json.loads((out / "compress.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="gss,digits")
    parser.add_argument("--teachers", default="gradient_boosting,mlp")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--student", default="[8]")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--rows", type=int, default=6000, help="rows sampled from GSS wages")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    wins = {m: 0 for m in METRICS}
    total = 0
    print(f"student hidden_sizes={args.student}, T={args.temperature}, alpha={args.alpha}")
    print(f"{'data':<8} {'teacher':<18} seed  " + "  ".join(f"{m + ' (teacher/distilled/hard)':<34}" for m in METRICS))
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as temporary:
        work = Path(temporary)
        for name in args.data.split(","):
            data = data_overrides(name, args.rows, work)
            for teacher in args.teachers.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    with contextlib.redirect_stdout(io.StringIO()):  # the runs' own summaries
                        content = one(data, teacher, seed, args, work)
                    before, after, hard = (content[k]["metrics"] for k in ("before", "after", "hard_labels"))
                    cells = []
                    for m in METRICS:
                        better = after[m] < hard[m] if m == "log_loss" else after[m] > hard[m]
                        wins[m] += better
                        cells.append(f"{before[m]:.4f} / {after[m]:.4f} / {hard[m]:.4f}{' *' if better else '  '}"
                                     .ljust(34))
                    total += 1
                    print(f"{name:<8} {teacher:<18} {seed:>4}  " + "  ".join(cells), flush=True)
    print("distilled student better (*): " + ", ".join(f"{m} {wins[m]}/{total}" for m in METRICS))


if __name__ == "__main__":
    main()
