"""Benchmarks of the tuner: per-trial overhead, two workers vs one, Hyperband vs TPE (MLP epochs, forest trees).

    python bench/bench_tuner.py [--trials 20] [--repeats 3] [--mlp-trials 30] [--epochs 30] [--mlp-data synthetic]
                                [--rf-trials 20] [--only overhead,parallel,hyperband,forest]

1. overhead: `mlexp -m tuner=random` vs plain `study.optimize` loops calling the same training
   function (`mlexp.experiment.run`), same sampler, seed, model (logreg, breast_cancer, 2 folds)
   and trial count. Two plain loops: one builds each trial's config by setting the sampled value
   on a config composed once (what a hand-written Optuna script does: the trial's own work is
   `run()`), one composes it with Hydra's compose API per trial. The overhead is the median time a
   trial occupies the loop outside `run()` (from its start to the next trial's start, minus the
   run's own total_seconds), so the noise of the training itself cancels; the trial loop (first
   trial's start to last trial's end) and whole commands are given too. Runs are interleaved,
   medians reported.
2. parallel: `tuner.n_jobs=2` vs `tuner.n_jobs=1`, same 20 trials of logistic regression, 5 folds,
   one thread per trial (instance.vcpus=1): trial-loop speed-up and whole-command speed-up, beside
   a control: the same run() calls in a plain pool of 1 vs 2 forked processes (the speed-up the
   machine offers at that moment: on a machine shared with other work it is well below 2).
3. hyperband: `tuner=hyperband` vs `tuner=tpe` (no pruning) on `model=mlp` (data=synthetic by
   default: 2,000 rows of make_classification), same trials: best CV score (within 0.5%?) and the
   epochs trained (a pruned trial trains the epochs it reported, across folds; a complete one
   every fold plus the final fit).
4. forest: the same on `model=random_forest` with the trees budget: best score and the trees
   grown (a trial pruned at rung s of 27 grew s/27 of its trees in each fold).
"""

import argparse
import copy
import json
import statistics
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
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name="mlexp", storage=JournalStorage(JournalFileBackend(str(sweep / "optuna.log")))).trials


def plain_loop(n_trials: int, out: str, compose_each: bool) -> None:
    """The baseline: Optuna's own loop around mlexp's training function, no sweeper."""
    import optuna
    from hydra import compose, initialize_config_module
    from omegaconf import open_dict

    from mlexp.experiment import run
    from mlexp.schema import register

    register()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        base = compose("config", overrides=FAST)

        def objective(trial):
            c = trial.suggest_float("model.C", 1e-3, 1e2, log=True)
            if compose_each:
                cfg = compose("config", overrides=[*FAST, f"model.C={c}"])
            else:
                cfg = copy.deepcopy(base)
                with open_dict(cfg):
                    cfg.model.C = c
            return run(cfg, run_dir=Path(out) / str(trial.number)).objective

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=42))
        study.optimize(objective, n_trials=n_trials)
    dirs = [Path(out) / str(t.number) for t in study.trials]
    print(json.dumps({"loop": _loop_seconds(study.trials), "outside": _outside_run(study.trials, dirs)}))


def _loop_seconds(trials) -> float:
    """From the first trial's start to the last one's end: the optimisation loop without process start-up."""
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()


def _outside_run(trials, job_dirs) -> float:
    """Median over trials of the time a trial occupies the loop (from its start to the next trial's
    start) minus the run's own total_seconds (its metrics.json): what the loop spends outside the
    training function per trial, bookkeeping between trials included, insensitive to how long the
    training itself took. For one trial at a time."""
    pairs = sorted(zip(trials, job_dirs), key=lambda pair: pair[0].datetime_start)
    spent = []
    for index, (trial, job_dir) in enumerate(pairs):
        metrics = json.loads((Path(job_dir) / "metrics.json").read_text())
        end = pairs[index + 1][0].datetime_start if index + 1 < len(pairs) else trial.datetime_complete
        spent.append((end - trial.datetime_start).total_seconds() - metrics["timings"]["total_seconds"])
    return statistics.median(spent)


def _plain(n_trials: int, out: Path, compose_each: bool):
    start = time.perf_counter()
    flag = ["--compose-each"] if compose_each else []
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--plain", str(n_trials), "--out", str(out),
                           *flag], cwd=out.parent, capture_output=True, text=True)  # the same cwd as mlexp's
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def bench_overhead(n_trials: int, tmp: Path, repeats: int) -> None:
    runs = {"plain": [], "composed": [], "mlexp": []}
    for repeat in range(repeats):  # interleaved, so drifting load hits every side alike
        for side, compose_each in (("plain", False), ("composed", True)):
            timed, whole = _plain(n_trials, tmp / f"{side}{repeat}", compose_each)
            runs[side].append((timed["loop"], timed["outside"], whole))
        sweep = tmp / f"sweep{repeat}"
        whole = mlexp(["-m", "tuner=random", f"tuner.n_trials={n_trials}", "tuner.plots=false", *FAST,
                       f"hydra.sweep.dir={sweep}"], tmp)
        trials = trials_of(sweep)
        runs["mlexp"].append((_loop_seconds(trials), _outside_run(trials, [t.user_attrs["job_dir"] for t in trials]),
                              whole))
    loop, outside, whole = ({side: statistics.median(r[i] for r in rows) for side, rows in runs.items()}
                            for i in range(3))
    print(f"overhead  {n_trials} trials logreg, {repeats} interleaved runs, medians. Time per trial outside the "
          f"training function run(): plain study.optimize setting the value on a composed config "
          f"{outside['plain'] * 1000:.0f} ms, composing each trial with Hydra {outside['composed'] * 1000:.0f} ms, "
          f"mlexp tuner {outside['mlexp'] * 1000:.0f} ms -> overhead {(outside['mlexp'] - outside['plain']) * 1000:+.0f} "
          f"ms per trial ({(outside['mlexp'] - outside['composed']) * 1000:+.0f} ms vs composing). Trial loop: "
          f"{loop['plain']:.2f}s / {loop['composed']:.2f}s / {loop['mlexp']:.2f}s -> "
          f"{(loop['mlexp'] - loop['plain']) / n_trials * 1000:+.0f} ms per trial; whole commands "
          f"{whole['plain']:.1f}s / {whole['composed']:.1f}s / {whole['mlexp']:.1f}s")


PARALLEL = ["splitter.n_splits=5", "save_model=false", "instance.vcpus=1", *FAST[2:]]


def plain_pool(n_trials: int, processes: int, out: str) -> None:
    """The control: the same trials' run() in a plain pool of forked processes (no tuner): the speed-up
    the machine gives right now."""
    import multiprocessing

    import optuna
    from hydra import compose, initialize_config_module
    from omegaconf import open_dict

    from mlexp.schema import register

    register()
    sampler = optuna.samplers.RandomSampler(seed=42)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    values = [study.ask().suggest_float("model.C", 1e-3, 1e2, log=True) for _ in range(n_trials)]
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        base = compose("config", overrides=PARALLEL)
    global _POOL_JOBS
    _POOL_JOBS = []
    for number, c in enumerate(values):
        cfg = copy.deepcopy(base)
        with open_dict(cfg):
            cfg.model.C = c
        _POOL_JOBS.append((cfg, str(Path(out) / str(number))))
    from mlexp.experiment import run

    run(copy.deepcopy(base), run_dir=Path(out) / "warm-up")  # imports, as the tuner does before forking workers
    start = time.perf_counter()
    if processes == 1:
        for number in range(n_trials):
            _pool_run(number)
    else:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            pool.map(_pool_run, range(n_trials), chunksize=1)
    print(json.dumps({"loop": time.perf_counter() - start}))


_POOL_JOBS: list = []


def _pool_run(number: int) -> float:
    from mlexp.experiment import run

    cfg, run_dir = _POOL_JOBS[number]
    return run(cfg, run_dir=Path(run_dir)).objective


def bench_parallel(n_trials: int, tmp: Path) -> None:
    loop, whole, control = {}, {}, {}
    for n_jobs in (1, 2):
        sweep = tmp / f"jobs{n_jobs}"
        whole[n_jobs] = mlexp(["-m", "tuner=random", f"tuner.n_trials={n_trials}", f"tuner.n_jobs={n_jobs}",
                               "tuner.plots=false", *PARALLEL, f"hydra.sweep.dir={sweep}"], tmp)
        loop[n_jobs] = _loop_seconds(trials_of(sweep))
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--pool", str(n_trials), "--processes",
                               str(n_jobs), "--out", str(tmp / f"pool{n_jobs}")], cwd=tmp, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        control[n_jobs] = json.loads(done.stdout.strip().splitlines()[-1])["loop"]
    print(f"parallel  {n_trials} trials logreg 5-fold, one thread per trial: tuner trial loop n_jobs=1 "
          f"{loop[1]:.2f}s, n_jobs=2 {loop[2]:.2f}s -> speed-up {loop[1] / loop[2]:.2f}x (whole commands "
          f"{whole[1]:.1f}s vs {whole[2]:.1f}s -> {whole[1] / whole[2]:.2f}x); control, the same run()s in a plain "
          f"pool of 1 vs 2 forked processes: {control[1]:.2f}s vs {control[2]:.2f}s -> {control[1] / control[2]:.2f}x")


def _pruning_pair(label: str, n_trials: int, model_args, work, tmp: Path) -> None:
    """TPE without pruning vs Hyperband, same trials: best value and the training work (``work(trial)``)."""
    rows = {}
    for tuner in ("tpe", "hyperband"):
        sweep = tmp / f"{label}-{tuner}"
        seconds = mlexp(["-m", f"tuner={tuner}", f"tuner.n_trials={n_trials}", "tuner.plots=false", *model_args,
                         *FAST, f"hydra.sweep.dir={sweep}"], tmp)
        trials = trials_of(sweep)
        best = max(t.value for t in trials if t.state.name == "COMPLETE")
        rows[tuner] = (best, sum(work(t) for t in trials), seconds, sum(t.state.name == "PRUNED" for t in trials))
    (tb, tw, ts, _), (hb, hw, hs, hp) = rows["tpe"], rows["hyperband"]
    print(f"{label:<9} {n_trials} trials: TPE best {tb:.4f}, {tw:.0f} {_UNITS[label]}, {ts:.0f}s; Hyperband best "
          f"{hb:.4f} ({(hb - tb) / tb * 100:+.2f}%), {hw:.0f} {_UNITS[label]} ({hw / tw:.2f}x), {hs:.0f}s, {hp} pruned")


_UNITS = {"hyperband": "epochs", "forest": "trees"}


def bench_hyperband(n_trials: int, epochs: int, data: str, tmp: Path) -> None:
    folds = 2  # FAST: two CV folds; a complete trial also trains the final fit

    def trained(trial) -> float:
        if trial.state.name == "COMPLETE":
            return epochs * (folds + 1)
        return max(trial.intermediate_values, default=0)  # steps are epochs across folds

    _pruning_pair("hyperband", n_trials, [f"data={data}", "model=mlp", f"model.max_epochs={epochs}",
                                          "model.early_stopping=false"], trained, tmp)


def bench_forest(n_trials: int, tmp: Path) -> None:
    folds = 2

    def grown(trial) -> float:
        trees = trial.params["model.n_estimators"]
        if trial.state.name == "COMPLETE":
            return trees * (folds + 1)
        return folds * trees * max(trial.intermediate_values, default=0) / 27  # rung s of 27 in every fold

    _pruning_pair("forest", n_trials, ["model=random_forest"], grown, tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--mlp-trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--mlp-data", default="synthetic",
                        help="data option of the MLP comparison (breast_cancer's 10%% validation slice, ~26 rows, "
                             "scores ROC AUC 1.0 after a few epochs in most trials: nothing for a pruner to rank)")
    parser.add_argument("--rf-trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of the overhead benchmark")
    parser.add_argument("--only", default="overhead,parallel,hyperband,forest")
    parser.add_argument("--plain", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pool", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--compose-each", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        return plain_loop(args.plain, args.out, args.compose_each)
    if args.pool:
        return plain_pool(args.pool, args.processes, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        only = args.only.split(",")
        if "overhead" in only:
            bench_overhead(args.trials, Path(tmp), args.repeats)
        if "parallel" in only:
            bench_parallel(args.trials, Path(tmp))
        if "hyperband" in only:
            bench_hyperband(args.mlp_trials, args.epochs, args.mlp_data, Path(tmp))
        if "forest" in only:
            bench_forest(args.rf_trials, Path(tmp))


if __name__ == "__main__":
    main()
