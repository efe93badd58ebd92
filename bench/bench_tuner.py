"""Benchmarks of the tuner: sweeper overhead, Hyperband vs TPE on the MLP, two workers vs one.

    python bench/bench_tuner.py [--trials 20] [--mlp-trials 12] [--epochs 30] [--only overhead,hyperband,parallel]

1. overhead: `mlexp -m tuner=random` vs a plain `study.optimize` loop calling the same
   training function (`mlexp.experiment.run` on a Hydra-composed config), both as whole
   processes, same sampler, seed, model (logreg, breast_cancer) and trial count.
2. hyperband: `tuner=hyperband` vs `tuner=tpe` on `model=mlp`, same number of trials:
   best CV score and the epochs trained (a pruned trial trains only the epochs it reported).
3. parallel: `tuner.n_jobs=2` vs `tuner.n_jobs=1`, wall time for the same trials (each trial
   limited to one thread with instance.vcpus=1, so two trials do not fight over the cores).
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The same small run on both sides: logreg on breast_cancer, two folds, no model file or report.
FAST = ["splitter.n_splits=2", "save_model=false"] + (
    ["report=false"] if "\nreport:" in (ROOT / "conf" / "config.yaml").read_text() else []
)


def mlexp(args, cwd):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlexp", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"mlexp {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def trials_of(sweep: Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="mlexp", storage=f"sqlite:///{sweep / 'optuna.db'}").trials


def plain_loop(n_trials: int, out: str) -> None:
    """The baseline: Optuna's own loop around mlexp's training function, no sweeper."""
    import optuna
    from hydra import compose, initialize_config_module

    from mlexp.experiment import run
    from mlexp.schema import register

    register()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        def objective(trial):
            c = trial.suggest_float("model.C", 1e-3, 1e2, log=True)
            cfg = compose("config", overrides=[*FAST, f"model.C={c}"])
            return run(cfg, run_dir=Path(out) / str(trial.number)).objective

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=42))
        study.optimize(objective, n_trials=n_trials)
    print(_loop_seconds(study.trials))


def _loop_seconds(trials) -> float:
    """From the first trial's start to the last one's end: the optimisation loop without process start-up."""
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()


def bench_overhead(n_trials: int, tmp: Path) -> None:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--plain", str(n_trials), "--out", str(tmp / "plain")],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    plain = time.perf_counter() - start
    plain_loop_s = float(done.stdout.strip().splitlines()[-1])
    swept = mlexp(["-m", "tuner=random", f"tuner.n_trials={n_trials}", "tuner.plots=false", *FAST,
                   f"hydra.sweep.dir={tmp / 'sweep'}"], tmp)
    swept_loop_s = _loop_seconds(trials_of(tmp / "sweep"))
    plots = mlexp(["-m", "tuner=random", f"tuner.n_trials={n_trials}", *FAST, f"hydra.sweep.dir={tmp / 'sweep'}"], tmp)
    print(f"overhead  {n_trials} trials logreg: trial loop: plain study.optimize {plain_loop_s:.1f}s, mlexp tuner "
          f"{swept_loop_s:.1f}s -> ratio {swept_loop_s / plain_loop_s:.2f} "
          f"({(swept_loop_s - plain_loop_s) / n_trials * 1000:+.0f} ms per trial); whole commands: {plain:.1f}s vs "
          f"{swept:.1f}s -> ratio {swept / plain:.2f}; results + plots of a finished study (a re-run): {plots:.1f}s")


def bench_hyperband(n_trials: int, epochs: int, tmp: Path) -> None:
    rows = {}
    for tuner in ("tpe", "hyperband"):
        sweep = tmp / tuner
        seconds = mlexp(["-m", f"tuner={tuner}", "model=mlp", f"tuner.n_trials={n_trials}", "tuner.plots=false",
                         f"model.max_epochs={epochs}", "model.early_stopping=false", *FAST,
                         f"hydra.sweep.dir={sweep}"], tmp)
        trials = trials_of(sweep)
        folds = 2 + 1  # two CV folds and the final fit, each max_epochs long, for a trial that completes
        trained = sum(epochs * folds if t.state.name == "COMPLETE" else max(t.intermediate_values, default=0)
                      for t in trials)
        best = max(t.value for t in trials if t.state.name == "COMPLETE")
        rows[tuner] = (best, trained, seconds, sum(t.state.name == "PRUNED" for t in trials))
    (tb, te, ts, _), (hb, he, hs, hp) = rows["tpe"], rows["hyperband"]
    print(f"hyperband {n_trials} trials mlp, {epochs} epochs: TPE best roc_auc {tb:.4f}, {te} epochs, {ts:.0f}s; "
          f"Hyperband best {hb:.4f} ({(hb - tb) / tb * 100:+.2f}%), {he} epochs ({he / te:.2f}x), {hs:.0f}s, "
          f"{hp} pruned")


def bench_parallel(n_trials: int, tmp: Path) -> None:
    times = {}
    for n_jobs in (1, 2):
        times[n_jobs] = mlexp(["-m", "tuner=random", f"tuner.n_trials={n_trials}", f"tuner.n_jobs={n_jobs}",
                               "tuner.plots=false", "splitter.n_splits=5", "save_model=false", "instance.vcpus=1",
                               *FAST[2:],
                               f"hydra.sweep.dir={tmp / f'jobs{n_jobs}'}"], tmp)
    print(f"parallel  {n_trials} trials logreg 5-fold, one thread per trial: n_jobs=1 {times[1]:.1f}s, n_jobs=2 {times[2]:.1f}s "
          f"-> speed-up {times[1] / times[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--mlp-trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--only", default="overhead,hyperband,parallel")
    parser.add_argument("--plain", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        return plain_loop(args.plain, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        only = args.only.split(",")
        if "overhead" in only:
            bench_overhead(args.trials, Path(tmp))
        if "hyperband" in only:
            bench_hyperband(args.mlp_trials, args.epochs, Path(tmp))
        if "parallel" in only:
            bench_parallel(args.trials, Path(tmp))


if __name__ == "__main__":
    main()
