"""Which Optuna trial a job is: the identity the tuner hands each job, and the job side that reloads it.

The identity (storage, study, trial number and id, pruner, budget) travels as the Hydra override
``++hydra.job.env_set.MLEXP_TRIAL=<json>``: Hydra sets that environment variable while the job
runs, under any launcher, and records it in the job's ``.hydra/hydra.yaml``. It is not a task
override, so it stays out of ``hydra.job.override_dirname``, ``.hydra/overrides.yaml`` and the
leaderboard, and re-running a job's overrides never reports to the study.
"""

import json
import os
from typing import Any, Dict, Optional, Tuple

from hydra.experimental.callback import Callback

__all__ = ["TRIAL_ENV", "identity_override", "job_trial", "load_trial", "share_live", "drop_live", "TrialCallback",
           "record_job_dir"]

TRIAL_ENV = "MLEXP_TRIAL"

# The study as jobs see it (no sampling, the sweep's pruner), loaded once per process and storage:
# the jobs after the first in a worker, or in the sweeper's own process, reuse it.
_studies: Dict[Tuple[str, str], Any] = {}
# Trials the sweeper of this process asked, by trial id: a job it runs in-process uses the same object.
_live: Dict[int, Any] = {}


def share_live(trial: Any) -> None:
    """Let an in-process job use the sweeper's own Trial object (no reload from the storage)."""
    _live[trial._trial_id] = trial


def drop_live(trial: Any) -> None:
    _live.pop(trial._trial_id, None)


def identity_override(identity: Dict[str, Any]) -> str:
    """The override that hands ``identity`` to a job (a quoted JSON string, so URLs and paths pass intact)."""
    from hydra.core.override_parser.types import Quote, QuotedString

    text = json.dumps(identity, separators=(",", ":"), sort_keys=True)
    return f"++hydra.job.env_set.{TRIAL_ENV}=" + QuotedString(text=text, quote=Quote.single).with_quotes()


def job_trial(cfg: Any = None) -> Optional[Dict[str, Any]]:
    """This job's trial identity: ``cfg.trial`` when set by hand, else the one the tuner passed; None outside tuning."""
    explicit = cfg.get("trial") if cfg is not None else None
    if explicit:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(explicit, resolve=True) if not isinstance(explicit, dict) else dict(explicit)
    text = os.environ.get(TRIAL_ENV)
    return json.loads(text) if text else None


def load_trial(identity: Dict[str, Any]) -> Any:
    """The optuna Trial named by ``identity``, on a study loaded once per process (with the sweep's pruner)."""
    import optuna

    from mlexp.errors import MlexpError
    from mlexp.tuning._storage import open_storage

    missing = [k for k in ("storage", "study_name", "number") if identity.get(k) is None]
    if missing:
        raise MlexpError(f"trial={identity} lacks {', '.join(missing)}; the tuner sets it for each job, leave it null otherwise.")
    live = _live.get(identity.get("trial_id"))  # type: ignore[arg-type]
    if live is not None:
        return live
    key = (identity["storage"], identity["study_name"])
    study = _studies.get(key)
    try:
        if study is None:
            pruner = _pruner(identity.get("pruner"))
            study = optuna.load_study(
                study_name=identity["study_name"], storage=open_storage(identity["storage"], existing=True),
                # The job never samples; a sampler without before_trial side effects keeps it that way.
                sampler=optuna.samplers.RandomSampler(), pruner=pruner,
            )
            _studies[key] = study
        trial_id = identity.get("trial_id")
        if trial_id is None:
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(identity["number"]))
    except KeyError as err:
        raise MlexpError(f"trial {identity} is not in its storage: {err}") from err
    return optuna.trial.Trial(study, int(trial_id))


def _pruner(node: Any) -> Any:
    import optuna

    if not node:
        return optuna.pruners.NopPruner()
    from hydra.utils import instantiate

    return instantiate(node)


class TrialCallback(Callback):
    """Records each tuner job's directory on its trial when the job starts (conf/tuner/*.yaml register it).

    So a trial killed mid-run still names its job directory, and a later sweep can write the
    study's verdict there (mlexp.tuning._records) or take the result the job left.
    """

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        record_job_dir(config)


def record_job_dir(config: Any) -> None:
    """Set the ``job_dir`` user attribute of the job's trial to its output directory."""
    text = (config.hydra.job.get("env_set") or {}).get(TRIAL_ENV)
    if not text:
        return
    identity = json.loads(text)
    trial = load_trial(identity)
    trial.set_user_attr("job_dir", str(config.hydra.runtime.output_dir))
