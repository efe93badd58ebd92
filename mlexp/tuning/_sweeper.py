"""The tuner's Hydra sweeper: ask Optuna for trials, run each as a job, tell the outcome, keep n_jobs busy."""

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf, open_dict

from mlexp.errors import MlexpError
from mlexp.tuning._space import Param, default_space, grid_values, parse_params, suggest

__all__ = ["TunerSweeper", "TunerSettings", "study_direction"]

log = logging.getLogger("mlexp.tuning")

TUNER_KEYS = {
    "name": None, "n_trials": 20, "n_jobs": 1, "storage": None, "study_name": "mlexp",
    "default_space": True, "max_failure_rate": 0.5, "sampler": None, "pruner": None,
    "heartbeat_interval": 30, "max_retry": 2, "plots": True,
}


@dataclass
class TunerSettings:
    """The `tuner` config node, checked."""

    name: str
    n_trials: Optional[int]
    n_jobs: int
    storage: Optional[str]
    study_name: str
    default_space: bool
    max_failure_rate: float
    sampler: Any
    pruner: Any
    heartbeat_interval: Optional[int]
    max_retry: Optional[int]
    plots: bool

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "TunerSettings":
        node = cfg.get("tuner")
        if node is None:
            raise MlexpError(
                "hydra/sweeper=mlexp needs a tuner: select one with tuner=grid, random, tpe, hyperband or "
                "median (e.g. `mlexp -m tuner=tpe`)."
            )
        unknown = sorted(set(node.keys()) - set(TUNER_KEYS))
        if unknown:
            raise MlexpError(f"tuner has no setting(s) {', '.join(unknown)}; its settings are {', '.join(TUNER_KEYS)}.")
        values = {key: node.get(key, default) for key, default in TUNER_KEYS.items()}
        if values["sampler"] is None or not values["sampler"].get("_target_"):
            raise MlexpError("tuner.sampler needs a _target_ naming an Optuna sampler (e.g. optuna.samplers.TPESampler).")
        if values["n_trials"] is not None and int(values["n_trials"]) < 1:
            raise MlexpError(f"tuner.n_trials must be at least 1; got {values['n_trials']}.")
        if int(values["n_jobs"]) < 1:
            raise MlexpError(f"tuner.n_jobs must be at least 1; got {values['n_jobs']}.")
        if not 0.0 <= float(values["max_failure_rate"]) <= 1.0:
            raise MlexpError(f"tuner.max_failure_rate is a fraction of n_trials in [0, 1]; got {values['max_failure_rate']}.")
        values["name"] = values["name"] or "custom"
        values["n_jobs"] = int(values["n_jobs"])
        return cls(**values)


def study_direction(cfg: DictConfig) -> Tuple[str, str]:
    """(metric, direction) the job will settle, worked out before any job runs."""
    from mlexp.evaluation.metrics import LOWER_IS_BETTER, resolve_objective

    metric, direction = cfg.objective.metric, cfg.objective.direction
    if direction in ("minimize", "maximize"):
        return metric, direction
    if metric != "auto":
        return metric, "minimize" if metric in LOWER_IS_BETTER else "maximize"
    task = cfg.get("task", "auto")
    if task == "auto":
        task = cfg.data.get("task", "auto")
    if task == "auto":  # only the data can tell (classification: roc_auc up; regression: rmse down)
        from mlexp.data import load_dataset

        task = load_dataset(cfg.data).task
    return resolve_objective(metric, direction, task)


class TunerSweeper:
    """Hydra's Sweeper contract (setup, sweep), implemented on an Optuna study in persistent storage."""

    def __init__(self, params: Optional[Dict[str, Any]] = None):
        self.params = params or {}
        self.config: Optional[DictConfig] = None
        self.hydra_context: Any = None
        self.task_function: Any = None
        self.launcher: Any = None
        self._spaces: Dict[str, List[Param]] = {}

    def setup(self, *, hydra_context: Any, task_function: Callable, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ---- the sweep -------------------------------------------------------------------------
    def sweep(self, arguments: List[str]) -> Any:
        import optuna

        from mlexp.tuning import _study
        from mlexp.tuning._results import write_results

        assert self.config is not None
        settings = TunerSettings.from_config(self.config)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        explicit = parse_params(_flatten_params(self.params) + list(arguments), self.hydra_context.config_loader)
        # tuner settings are the sweeper's; jobs get only their trial identity (and its pruner).
        self.fixed = [p.text for p in explicit if p.distribution is None and not _is_tuner_key(p.name)]
        self.given = {p.name for p in explicit}
        self.sampled = [p for p in explicit if p.distribution is not None]
        self.groups = [p for p in self.sampled if p.group]
        self.values = [p for p in self.sampled if not p.group]
        self.default_space_on = settings.default_space
        model_choice = any(p.name == "model" for p in self.groups)
        self.base_space = [] if model_choice or not settings.default_space else [
            p for p in self._default_params(self.config) if p.name not in self.given
        ]
        space_names = [p.name for p in self.sampled] + [p.name for p in self.base_space if p.distribution is not None]
        if not space_names:
            raise MlexpError(
                "nothing to tune: the model declares no search_space and no parameter was given. Add one, e.g. "
                "`mlexp -m tuner=tpe 'model.C=tag(log,interval(1e-3,1e2))'` or a search_space: node in the model option."
            )

        metric, direction = study_direction(self.config)
        url = settings.storage or _study.default_storage_url(str(sweep_dir))
        storage = _study.open_storage(url, heartbeat_interval=settings.heartbeat_interval, max_retry=settings.max_retry)
        pruner = _build("tuner.pruner", settings.pruner, optuna.pruners.BasePruner) if settings.pruner else (
            optuna.pruners.NopPruner())
        study = optuna.create_study(
            storage=storage, study_name=settings.study_name, direction=direction, load_if_exists=True,
            pruner=pruner, sampler=optuna.samplers.RandomSampler(),
        )
        if study.direction.name.lower() != direction:
            raise MlexpError(
                f"study {settings.study_name!r} in {url} was created to {study.direction.name.lower()}, but this "
                f"sweep's objective ({metric}) is to {direction}. Use another tuner.study_name or sweep directory."
            )
        orphans = _study.fail_orphans(study)
        earlier = _study.counted_trials(study.get_trials(deepcopy=False))
        n_trials = settings.n_trials
        study.sampler, grid_size = self._sampler(settings, study, model_choice)
        if grid_size is not None:
            n_trials = grid_size if n_trials is None else min(n_trials, grid_size)
        if n_trials is None:
            raise MlexpError("tuner.n_trials is null; only tuner=grid can run every combination. Set tuner.n_trials.")
        log.info(
            "tuner %s: %s, %s; %s %s; study %r in %s; %d trial(s), %d at a time; space: %s",
            settings.name, type(study.sampler).__name__, type(pruner).__name__, direction, metric,
            settings.study_name, url, n_trials, settings.n_jobs,
            ", ".join(space_names) + (" + each model's search_space" if model_choice and settings.default_space else ""),
        )
        if earlier:
            log.info("resuming: %d of %d trials already finished%s", len(earlier), n_trials,
                     f"; trial(s) {orphans} of a stopped worker failed and queued again" if orphans else "")

        self.identity = {"storage": url, "study_name": settings.study_name,
                         "pruner": OmegaConf.to_container(settings.pruner, resolve=True) if settings.pruner else None}
        stopped_by = self._run(study, settings, n_trials, storage)
        results = write_results(
            study, sweep_dir, n_trials=n_trials, metric=metric, storage_url=url, tuner=settings.name,
            compose=self._compose_best, plots=settings.plots,
        )
        if stopped_by:
            raise MlexpError(stopped_by)
        return results

    def _run(self, study: Any, settings: TunerSettings, n_trials: int, storage: Any) -> Optional[str]:
        """Keep n_jobs trials running until n_trials count (shared with any other worker)."""
        from mlexp.tuning import _study
        from mlexp.tuning._launch import Outcome, make_runner

        runner = make_runner(self.launcher, settings.n_jobs, self.config, self.hydra_context, self.task_function)
        heartbeat = _Heartbeat(storage, settings.heartbeat_interval)
        running: Dict[Future, Any] = {}
        starting: Any = None
        stopped_by: Optional[str] = None
        try:
            while True:
                while stopped_by is None and len(running) < settings.n_jobs:
                    trials = study.get_trials(deepcopy=False)
                    in_flight = sum(1 for t in trials if t.state.name == "RUNNING")
                    if len(_study.counted_trials(trials)) + in_flight >= n_trials:
                        break
                    trial = study.ask()
                    for key, value in _study.worker_attrs().items():  # first: who runs it (see fail_orphans)
                        trial.set_user_attr(key, value)
                    if _study.budget_rank(study.get_trials(deepcopy=False), trial.number) >= n_trials:
                        # Other workers used up n_trials between our count and ask: fail it, never run it.
                        trial.set_user_attr(_study.SURPLUS_ATTR, True)
                        study.tell(trial, state=optuna_state("FAIL"))
                        break
                    heartbeat.add(trial._trial_id)
                    try:
                        overrides = self._plan(trial)
                    except Exception as err:  # noqa: BLE001 - a model option that cannot be composed fails its trial
                        future: Future = Future()
                        future.set_result(Outcome("fail", error=f"{type(err).__name__}: {err}"))
                    else:
                        trial.set_user_attr("overrides", overrides)
                        starting = trial  # an in-process job runs inside start(); Ctrl-C may land there
                        future = runner.start(overrides + [self._identity_override(trial)], trial.number)
                        starting = None
                    running[future] = trial
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    trial = running.pop(future)
                    heartbeat.remove(trial._trial_id)
                    outcome = future.result()
                    _tell(study, trial, outcome)
                    stopped_by = stopped_by or self._progress(study, trial, outcome, n_trials, settings)
        except KeyboardInterrupt:
            cut = sorted({t.number for t in running.values()} | ({starting.number} if starting else set()))
            log.warning("interrupted: trial(s) %s failed and queued again; re-run the same command to resume.", cut)
            _study.mark_interrupted(study, cut)
            raise
        finally:
            heartbeat.stop()
            runner.shutdown()
        return stopped_by

    # ---- one trial -------------------------------------------------------------------------
    def _plan(self, trial: Any) -> List[str]:
        """Sample the trial's parameters; the job's overrides (fixed ones first)."""
        overrides = list(self.fixed)
        chosen: Dict[str, str] = {}
        for param in self.groups:
            chosen[param.name] = suggest(trial, param.name, param.distribution)
            overrides.append(f"{param.key}={chosen[param.name]}")
        given = self.given
        if "model" in chosen and self.default_space_on:
            option = chosen["model"]
            space = [p for p in self._option_space(option) if p.name not in given]
            prefix = f"{option}/"
        else:
            space, prefix = [p for p in self.base_space if p.name not in given], ""
        for param in space:
            if param.distribution is None:
                overrides.append(param.text)
            else:
                overrides.append(f"{param.key}={suggest(trial, prefix + param.name, param.distribution)}")
        for param in self.values:
            overrides.append(f"{param.key}={suggest(trial, param.name, param.distribution)}")
        return overrides

    def _identity_override(self, trial: Any) -> str:
        """``trial={storage:...,study_name:...,number:N,pruner:{...}}``: all a job needs to reload its trial."""
        return "trial=" + _grammar({**self.identity, "number": trial.number})

    def _progress(self, study: Any, trial: Any, outcome: Any, n_trials: int, settings: TunerSettings) -> Optional[str]:
        from mlexp.tuning import _study

        counted = _study.counted_trials(study.get_trials(deepcopy=False))
        states = [t.state.name for t in counted]
        failed = states.count("FAIL")
        best = _best(study)
        shown = f"value={outcome.value:.4f}" if outcome.value is not None else (outcome.error or "").splitlines()[0][:200]
        log.info(
            "trial %d %s %s | %d/%d done: %d complete, %d pruned, %d failed | best %s",
            trial.number, outcome.state.upper(), shown, len(counted), n_trials, states.count("COMPLETE"),
            states.count("PRUNED"), failed, f"{best.value:.4f} (trial {best.number})" if best else "-",
        )
        if outcome.state == "fail":
            log.warning("trial %d failed: %s%s", trial.number, outcome.error,
                        f" (log: {outcome.job_dir})" if outcome.job_dir else "")
        if failed > settings.max_failure_rate * n_trials:
            return (
                f"{failed} of {len(counted)} trials failed, more than tuner.max_failure_rate="
                f"{settings.max_failure_rate} of n_trials={n_trials}; the sweep stopped. First errors are in "
                "trials.csv (column error); fix the cause or raise tuner.max_failure_rate."
            )
        return None

    # ---- samplers and spaces ---------------------------------------------------------------
    def _sampler(self, settings: TunerSettings, study: Any, model_choice: bool) -> Tuple[Any, Optional[int]]:
        """The configured sampler (a grid gets its values); seeds shift by the trials already run,
        so a resumed random search does not repeat the points it started with (not a grid's)."""
        import optuna
        from hydra.utils import get_class

        try:
            target = get_class(settings.sampler._target_)
        except Exception as err:
            raise MlexpError(
                f"tuner.sampler._target_={settings.sampler._target_!r} cannot be imported ({err}). Name an Optuna "
                "sampler class, e.g. optuna.samplers.TPESampler, RandomSampler, GridSampler, CmaEsSampler."
            ) from err
        if not issubclass(target, optuna.samplers.BaseSampler):
            raise MlexpError(f"tuner.sampler._target_={settings.sampler._target_!r} is not an Optuna sampler.")
        kwargs: Dict[str, Any] = {}
        seed = settings.sampler.get("seed")
        done = len(study.get_trials(deepcopy=False))
        is_grid = issubclass(target, optuna.samplers.GridSampler)
        if seed is not None and (done or settings.storage) and not is_grid:
            # A shared storage may have workers starting together: each gets its own seed, or they
            # would all propose the same points. (A grid keeps its seed: it fixes the order of the
            # combinations, which every worker and every restart must share.)
            kwargs["seed"] = int(seed) + done + (_worker_offset() if settings.storage else 0)
        grid_size = None
        if is_grid:
            if model_choice and self.default_space_on:
                raise MlexpError(
                    "tuner=grid needs one fixed set of parameters, but a model choice brings each model's own "
                    "search_space. Set tuner.default_space=false and give every parameter as a list, e.g. "
                    "'model=choice(logreg,svm)' 'model.C=choice(0.1,1,10)'."
                )
            params = [p for p in self.sampled + self.base_space if p.distribution is not None]
            grid = {p.name: grid_values(p) for p in params}
            kwargs["search_space"] = grid
            grid_size = 1
            for values in grid.values():
                grid_size *= len(values)
        return _build("tuner.sampler", settings.sampler, optuna.samplers.BaseSampler, **kwargs), grid_size

    def _default_params(self, cfg: DictConfig) -> List[Param]:
        return parse_params(default_space(cfg.get("model")), self.hydra_context.config_loader)

    def _option_space(self, option: str) -> List[Param]:
        """A model option's own default space (its config composed once, then cached)."""
        if option not in self._spaces:
            composed = self.hydra_context.config_loader.load_sweep_config(self.config, [*self.fixed, f"model={option}"])
            self._spaces[option] = self._default_params(composed)
        return self._spaces[option]

    def _compose_best(self, overrides: List[str]) -> DictConfig:
        composed = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(composed):
            del composed["hydra"]
            composed.trial = None
        return composed


def _build(where: str, node: Any, kind: type, **kwargs: Any) -> Any:
    """Instantiate an Optuna sampler or pruner from its _target_ node, with a clear error."""
    from hydra.utils import instantiate

    try:
        built = instantiate(node, **kwargs)
    except Exception as err:
        cause = getattr(err, "__cause__", None) or err
        raise MlexpError(f"{where} ({node.get('_target_')}) could not be built: {str(cause).rstrip('.')}. Check its _target_ and "
                         "arguments against Optuna's documentation.") from err
    if not isinstance(built, kind):
        raise MlexpError(f"{where}._target_={node.get('_target_')!r} is not an Optuna {kind.__name__}.")
    return built


def _is_tuner_key(name: str) -> bool:
    return name == "tuner" or name.startswith("tuner.")


def _grammar(value: Any) -> str:
    """A Python value as Hydra override grammar (strings quoted, so URLs and paths pass intact)."""
    from hydra.core.override_parser.types import Quote, QuotedString

    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_grammar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_grammar(v) for v in value) + "]"
    if isinstance(value, str):
        return QuotedString(text=value, quote=Quote.single).with_quotes()
    return "null" if value is None else ("true" if value is True else "false" if value is False else repr(value))


def _worker_offset() -> int:
    import os
    import socket
    import zlib

    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_003


def optuna_state(name: str) -> Any:
    from optuna.trial import TrialState

    return TrialState[name]


def _tell(study: Any, trial: Any, outcome: Any) -> None:
    from optuna.trial import TrialState

    if outcome.job_dir:
        trial.set_user_attr("job_dir", outcome.job_dir)
    if outcome.error and outcome.state == "fail":
        trial.set_user_attr("error", outcome.error[:2000])
    state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}[outcome.state]
    try:
        study.tell(trial, outcome.value if state == TrialState.COMPLETE else None, state=state)
    except RuntimeError as err:
        # GridSampler calls study.stop() once the grid is covered; outside optimize() that raises
        # after the trial's state is already stored.
        if "Study.stop" not in str(err):
            raise


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:
        return None


def _flatten_params(params: Any, prefix: str = "") -> List[str]:
    """hydra.sweeper.params as key=expression strings (nested keys joined by dots)."""
    if isinstance(params, DictConfig):
        params = OmegaConf.to_container(params, resolve=True)
    out: List[str] = []
    for key, value in (params or {}).items():
        if isinstance(value, dict):
            out += _flatten_params(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={value}")
    return out


class _Heartbeat:
    """Record Optuna heartbeats for the running trials, so other workers can tell ours are alive.

    Beats are written from a background thread (a new trial's first within a second), off
    the path that starts the next trial.
    """

    def __init__(self, storage: Any, interval: Optional[int]):
        self.storage, self.interval = storage, interval
        self.last: Dict[int, float] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        if interval:
            threading.Thread(target=self._loop, name="mlexp-heartbeat", daemon=True).start()

    def add(self, trial_id: int) -> None:
        with self.lock:
            self.last[trial_id] = 0.0

    def remove(self, trial_id: int) -> None:
        with self.lock:
            self.last.pop(trial_id, None)

    def stop(self) -> None:
        self.done.set()

    def _loop(self) -> None:
        while not self.done.wait(min(1.0, self.interval)):
            now = time.monotonic()
            with self.lock:
                due = [i for i, last in self.last.items() if now - last >= self.interval]
            for trial_id in due:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as err:  # noqa: BLE001 - a missed beat is retried next time
                    log.debug("heartbeat for trial id %d failed: %s", trial_id, err)
                    continue
                with self.lock:
                    if trial_id in self.last:
                        self.last[trial_id] = now
