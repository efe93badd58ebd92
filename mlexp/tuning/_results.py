"""What a tuning sweep leaves in its directory: results YAML, best config, trials.csv and plots."""

import json
import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from omegaconf import OmegaConf

__all__ = ["write_results", "RERUN_COMMAND"]

log = logging.getLogger("mlexp.tuning")

RERUN_COMMAND = "mlexp --config-dir {sweep_dir} --config-name best_config"


def write_results(
    study: Any, sweep_dir: Path, *, n_trials: int, metric: str, storage_url: str, tuner: str,
    compose: Optional[Callable[[List[str]], Any]], plots: bool = True,
) -> Dict[str, Any]:
    """Write optimization_results.yaml, best_config.yaml, trials.csv and the PNG plots; return the results.

    ``compose`` re-composes the best trial's config for best_config.yaml (None: an application
    other than mlexp, whose config mlexp cannot re-run).
    """
    from mlexp.tuning._study import counted_trials, retried_numbers

    sweep_dir = Path(sweep_dir).resolve()
    trials = study.get_trials(deepcopy=False)
    counted = counted_trials(trials)
    states = [t.state.name for t in counted]
    results: Dict[str, Any] = {
        "tuner": tuner,
        "study": study.study_name,
        "storage": storage_url,
        "direction": study.direction.name.lower(),
        "metric": metric,
        "sampler": type(study.sampler).__name__,
        "pruner": type(study.pruner).__name__,
        "n_trials": n_trials,
        "trials": {"complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
                   "failed": states.count("FAIL"), "retried": len(retried_numbers(trials))},
        "best": None,
    }
    best = _best(study)
    if best is not None:
        overrides = [o for o in best.user_attrs.get("overrides", []) if not o.startswith(("tuner", "+tuner"))]
        job_dir = best.user_attrs.get("job_dir")
        results["best"] = {
            "value": best.value, "trial": best.number, "params": dict(best.params),
            "overrides": overrides, "job_dir": job_dir, "test": _test_scores(job_dir),
        }
        if results["metric"] == "auto" and job_dir:
            results["metric"] = _job_metrics(job_dir).get("objective_metric", "auto")
        try:
            if compose is None:
                raise _NotMlexp()
            _write_best_config(compose(best.user_attrs.get("overrides", [])), sweep_dir / "best_config.yaml", sweep_dir)
            results["best_config"] = str(sweep_dir / "best_config.yaml")
            results["rerun"] = RERUN_COMMAND.format(sweep_dir=sweep_dir)
        except _NotMlexp:
            pass
        except Exception as err:  # noqa: BLE001 - results must be written even if re-composing fails
            log.warning("best_config.yaml not written: %s", err)
        if compose is not None:
            results["rerun_with_overrides"] = "mlexp " + " ".join(_shell_quote(o) for o in overrides)
    _write_yaml(results, sweep_dir / "optimization_results.yaml")
    _write_trials_csv(trials, sweep_dir / "trials.csv")
    if plots:
        _write_plots(study, sweep_dir)
    if best is not None:
        log.info("best %s = %.4f (trial %d): %s", results["metric"], best.value, best.number,
                 " ".join(results["best"]["overrides"]))
        if "rerun" in results:
            log.info("re-run the best trial: %s", results["rerun"])
    log.info("tuning results in %s", sweep_dir)
    return results


class _NotMlexp(Exception):
    """The sweep's application is not mlexp: no best_config.yaml to write."""


def _best(study: Any) -> Optional[Any]:
    try:
        return study.best_trial
    except ValueError:
        return None


def _job_metrics(job_dir: Optional[str]) -> Dict[str, Any]:
    path = Path(job_dir or "") / "metrics.json"
    return json.loads(path.read_text()) if job_dir and path.is_file() else {}


def _test_scores(job_dir: Optional[str]) -> Dict[str, Any]:
    return _job_metrics(job_dir).get("test") or {}


def _write_best_config(cfg: Any, path: Path, sweep_dir: Path) -> None:
    # The schema first, so `mlexp --config-name best_config` checks types as a normal run does.
    body = OmegaConf.to_container(cfg, resolve=True)
    body.pop("tuner", None)
    text = OmegaConf.to_yaml(OmegaConf.create({"defaults": ["mlexp_schema", "_self_"], **body}))
    header = (
        "# The best trial's full config, written by mlexp's tuner. Re-run it with:\n"
        f"#   {RERUN_COMMAND.format(sweep_dir=sweep_dir)}\n"
    )
    path.write_text(header + text)


def _write_yaml(content: Dict[str, Any], path: Path) -> None:
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(content)))


def _write_trials_csv(trials: List[Any], path: Path) -> None:
    import pandas as pd

    from mlexp.tuning._study import SURPLUS_ATTR

    replaced_by = {n: t.number for t in trials for n in t.system_attrs.get("retry_history", [])[-1:]}
    rows = []
    for t in trials:
        error = t.user_attrs.get("error")
        if t.number in replaced_by:
            error = f"interrupted; run again as trial {replaced_by[t.number]}"
        elif t.user_attrs.get(SURPLUS_ATTR):
            error = "not run: other workers had reached n_trials"
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "duration_s": t.duration.total_seconds() if t.duration is not None else None,
            **{f"params_{k}": v for k, v in t.params.items()},
            "intermediate_values": json.dumps({int(k): v for k, v in sorted(t.intermediate_values.items())}),
            "job_dir": t.user_attrs.get("job_dir"),
            "error": error,
            "overrides": " ".join(t.user_attrs.get("overrides", [])),
        })
    pd.DataFrame(rows).to_csv(path, index=False)


def _write_plots(study: Any, sweep_dir: Path) -> None:
    """Optimization history, parameter importances and (when reported) intermediate values, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = {
        "optimization_history.png": ovm.plot_optimization_history,
        "param_importances.png": ovm.plot_param_importances,
    }
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        plots["intermediate_values.png"] = ovm.plot_intermediate_values
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = plot(study)
            figure = getattr(axes, "figure", None) or plt.gcf()
            figure.savefig(sweep_dir / name, dpi=100, bbox_inches="tight")
            plt.close(figure)
        except Exception as err:  # noqa: BLE001 - e.g. importances need two complete trials with varied params
            log.info("%s not drawn: %s", name, err)
            plt.close("all")


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
