"""The tuner's Hydra sweeper: check the space, open the study, run the trial loop, write the results."""

import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf, open_dict

from mlexp.errors import MlexpError
from mlexp.tuning._samplers import build, build_sampler, is_grid
from mlexp.tuning._settings import TunerSettings, budget_steps, study_direction
from mlexp.tuning._space import Param, default_space, format_value, grid_values, parse_params, suggest

__all__ = ["TunerSweeper", "TunerSettings", "study_direction"]

log = logging.getLogger("mlexp.tuning")


class TunerSweeper:
    """Hydra's Sweeper contract (setup, sweep), implemented on an Optuna study in persistent storage.

    ``sweep`` returns Hydra's usual list of batches: here one batch, the JobReturns of the trials
    this process ran (in the grid's order for tuner=grid, else by trial number).
    """

    def __init__(self, params: Optional[Dict[str, Any]] = None, tuner: Optional[Dict[str, Any]] = None):
        self.params = params or {}
        self.tuner = tuner  # settings for an application without a `tuner` node
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

        from mlexp.tuning import _storage, _study
        from mlexp.tuning._compose import Composer
        from mlexp.tuning._launch import make_runner
        from mlexp.tuning._loop import TrialLoop
        from mlexp.tuning._records import settle
        from mlexp.tuning._results import write_results

        assert self.config is not None
        settings = TunerSettings.from_config(self.config, self.tuner)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self._read_space(settings, arguments)
        metric, direction = study_direction(self.config)
        composer = Composer(self.hydra_context.config_loader, self.config)
        self._check_space(composer)  # a wrong key fails here, before any trial or study exists
        grid = self._grid(settings)
        url = _storage.storage_url(settings.storage, str(sweep_dir))
        if settings.storage is None:  # the sweep's own file: no other machine shares it, heartbeats serve no one
            settings.heartbeat_interval = None
        runner = make_runner(self.launcher, settings.n_jobs, composer, self.hydra_context, self.task_function)
        try:  # from here on worker processes run: stop them whatever happens
            storage = _storage.open_storage(url, heartbeat_interval=settings.heartbeat_interval,
                                          max_retry=settings.max_retry)
            pruner = build("tuner.pruner", settings.pruner, optuna.pruners.BasePruner) if settings.pruner else (
                optuna.pruners.NopPruner())
            study = optuna.create_study(storage=storage, study_name=settings.study_name, direction=direction,
                                        load_if_exists=True, pruner=pruner, sampler=optuna.samplers.RandomSampler())
            if study.direction.name.lower() != direction:
                raise MlexpError(
                    f"study {settings.study_name!r} in {url} was created to {study.direction.name.lower()}, but "
                    f"this sweep's objective ({metric}) is to {direction}. Use another tuner.study_name or sweep directory.")
            orphans = _study.fail_orphans(study, settings.max_retry)
            settle(study)
            earlier = _study.counted_trials(study.get_trials(deepcopy=False))
            study.sampler = build_sampler(settings, study, grid)
            n_trials = settings.n_trials
            if grid is not None:
                n_trials = len(grid[1]) if n_trials is None else min(n_trials, len(grid[1]))
            if n_trials is None:
                raise MlexpError("tuner.n_trials is null; only tuner=grid can run every combination. Set tuner.n_trials.")
            self._log_start(settings, study, pruner, metric, direction, url, n_trials)
            if earlier:
                log.info("resuming: %d of %d trials already finished%s", len(earlier), n_trials,
                         f"; trial(s) {orphans} of a stopped worker failed and queued again" if orphans else "")
            self.identity = {
                "storage": url, "study_name": settings.study_name, "budget": settings.budget,
                "pruner": OmegaConf.to_container(settings.pruner, resolve=True) if settings.pruner else None,
                "budget_steps": budget_steps(settings),
            }
            loop = TrialLoop(study, settings, n_trials, runner, self._plan, self._identity_override)
            try:
                stopped_by = loop.run()
            except KeyboardInterrupt:
                settle(study)  # the interrupted trials' directories say so before the sweep stops
                raise
        finally:
            runner.shutdown()
        settle(study)
        mlexp_app = self.config.get("objective") is not None
        write_results(study, sweep_dir, n_trials=n_trials, metric=metric, storage_url=url, tuner=settings.name,
                      compose=self._compose_best if mlexp_app else None, plots=settings.plots)
        if stopped_by:
            raise MlexpError(stopped_by)
        return [_ordered(loop.outcomes, grid)]

    def _read_space(self, settings: TunerSettings, arguments: List[str]) -> None:
        explicit = parse_params(_flatten_params(self.params) + list(arguments), self.hydra_context.config_loader)
        # tuner settings are the sweeper's; jobs get only their trial identity (and its pruner).
        self.explicit = explicit
        self.fixed = [p.text for p in explicit if p.distribution is None and not _is_tuner_key(p.name)]
        self.given = {p.name for p in explicit}
        self.sampled = [p for p in explicit if p.distribution is not None]
        self.groups = [p for p in self.sampled if p.group]
        self.values = [p for p in self.sampled if not p.group]
        self.default_space_on = settings.default_space
        self.model_choice = any(p.name == "model" for p in self.groups)
        self.base_space = [] if self.model_choice or not settings.default_space else [
            p for p in self._default_params(self.config) if p.name not in self.given
        ]
        self.space_names = [p.name for p in self.sampled] + [p.name for p in self.base_space if p.distribution is not None]
        if not self.space_names and not is_grid(settings):
            raise MlexpError(
                "nothing to tune: the model declares no search_space and no parameter was given. Add one, e.g. "
                "`mlexp -m tuner=tpe 'model.C=tag(log,interval(1e-3,1e2))'` or a search_space: node in the model option."
            )

    def _log_start(self, settings: TunerSettings, study: Any, pruner: Any, metric: str, direction: str, url: str,
                   n_trials: int) -> None:
        log.info(
            "tuner %s: %s, %s; %s %s; study %r in %s; %d trial(s), %d at a time; space: %s",
            settings.name, type(study.sampler).__name__, type(pruner).__name__, direction, metric,
            settings.study_name, url, n_trials, settings.n_jobs,
            (", ".join(self.space_names) or "none (one run)")
            + (" + each model's search_space" if self.model_choice and settings.default_space else ""),
        )

    # ---- before the first trial --------------------------------------------------------------
    def _check_space(self, composer: Any) -> None:
        """Compose the config once per config-group choice, with a value from every range, and build the
        estimator, as a plain run would: a wrong key or parameter is an error now, not a failed trial each time."""
        for overrides in self._probes():
            try:
                cfg = composer.compose(overrides)
            except Exception as err:  # noqa: BLE001 - Hydra's composition errors, worded below
                raise MlexpError(_space_error(err, overrides)) from err
            if cfg.get("model") is not None and cfg.get("data") is not None and cfg.get("mode") is not None:
                _build_estimator(cfg, self._task(cfg), overrides)

    def _probes(self) -> List[List[str]]:
        """Override lists covering every config-group choice once, every sampled key with a value of its range."""
        first = {g.name: g.distribution.choices[0] for g in self.groups}
        choices: List[Dict[str, Any]] = [first] + [{**first, g.name: c} for g in self.groups for c in g.distribution.choices]
        probes: List[List[str]] = []
        for chosen in choices:
            chosen = {name: format_value(value) for name, value in chosen.items()}
            option = chosen.get("model") if self.model_choice and self.default_space_on else None
            space = [p for p in (self._option_space(option) if option else self.base_space) if p.name not in self.given]
            values = {p.name: _probe_value(p) for p in self.values + [p for p in space if p.distribution is not None]}
            overrides = self._overrides({**chosen, **values}, space)
            if overrides not in probes:
                probes.append(overrides)
        return probes

    def _task(self, cfg: DictConfig) -> str:
        task = cfg.get("task", "auto")
        if task == "auto":
            task = cfg.data.get("task", "auto")
        if task == "auto":  # only the data can tell (loaded once, for the check)
            if getattr(self, "_data_task", None) is None:
                from mlexp.data import load_dataset

                self._data_task = load_dataset(cfg.data).task
            task = self._data_task
        return str(task)

    # ---- one trial -------------------------------------------------------------------------
    def _plan(self, trial: Any) -> List[str]:
        """Sample the trial's parameters; the job's overrides, in the order given, then the model's space."""
        chosen: Dict[str, str] = {}
        for param in self.groups + self.values:  # config groups first: the chosen model decides its space
            chosen[param.name] = suggest(trial, param.name, param.distribution)
        if "model" in chosen and self.default_space_on:
            option = chosen["model"]
            space, prefix = self._option_space(option), f"{option}/"
        else:
            space, prefix = self.base_space, ""
        space = [p for p in space if p.name not in self.given]
        for param in space:
            if param.distribution is not None:
                chosen[param.name] = suggest(trial, prefix + param.name, param.distribution)
        return self._overrides(chosen, space)

    def _overrides(self, chosen: Dict[str, str], space: List[Param]) -> List[str]:
        given = [p for p in self.explicit if not _is_tuner_key(p.name)]
        return [p.text if p.distribution is None else f"{p.key}={chosen[p.name]}" for p in given + space]

    def _identity_override(self, trial: Any) -> str:
        """The Hydra override that tells the job which trial it is (see mlexp.tuning._trial)."""
        from mlexp.tuning._trial import identity_override

        return identity_override({**self.identity, "number": trial.number, "trial_id": trial._trial_id})

    # ---- grid and spaces -------------------------------------------------------------------
    def _grid(self, settings: TunerSettings) -> Optional[Tuple[Dict[str, List[Any]], List[Tuple]]]:
        """For tuner=grid: (values of each parameter, every combination in order); None for other samplers."""
        if not is_grid(settings):
            return None
        if self.model_choice and self.default_space_on:
            raise MlexpError(
                "tuner=grid needs one fixed set of parameters, but a model choice brings each model's own "
                "search_space. Set tuner.default_space=false and give every parameter as a list, e.g. "
                "'model=choice(logreg,svm)' 'model.C=choice(0.1,1,10)'."
            )
        import itertools

        params = [p for p in self.sampled + self.base_space if p.distribution is not None]
        values = {p.name: grid_values(p) for p in params}
        return values, list(itertools.product(*values.values()))

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


def _probe_value(param: Param) -> str:
    from optuna.distributions import CategoricalDistribution

    dist = param.distribution
    return format_value(dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low)


def _space_error(err: Exception, overrides: List[str]) -> str:
    cause = " ".join(str(getattr(err, "__cause__", None) or err).split())
    detail = " ".join(str(err).split())
    reason = detail if detail == cause or cause in detail else f"{detail} ({cause})"
    return (f"the search space cannot be run: {reason}. Checked before the first trial by composing the config "
            f"with {' '.join(overrides)}. Fix the key (a key the config does not have needs a leading +, "
            "e.g. '+model.class_weight=null,balanced', and the model must accept it).")


def _build_estimator(cfg: DictConfig, task: str, overrides: List[str]) -> None:
    from mlexp.models import build_estimator

    try:
        build_estimator(cfg, task, n_jobs=1, context={"seed": cfg.get("seed"), "device": "cpu", "reporter": None,
                                                      "cfg": cfg})
    except MlexpError as err:
        raise MlexpError(f"the search space cannot be run: {err} (checked before the first trial with "
                         f"{' '.join(overrides)})") from err


def _ordered(outcomes: List[Tuple[int, Dict[str, Any], Any]], grid: Optional[Tuple]) -> List[Any]:
    """The JobReturns of this process's trials: in the grid's own order for a grid, else by trial number."""
    if grid is None:
        key = lambda item: item[0]  # noqa: E731
    else:
        values = grid[0]
        key = lambda item: tuple(_position(values[n], item[1].get(n)) for n in values)  # noqa: E731
    from mlexp.tuning._workers import restored

    return [restored(outcome.ret) for _, _, outcome in sorted(outcomes, key=key) if outcome.ret is not None]


def _position(values: List[Any], value: Any) -> int:
    return values.index(value) if value in values else len(values)


def _is_tuner_key(name: str) -> bool:
    return name == "tuner" or name.startswith("tuner.")


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
