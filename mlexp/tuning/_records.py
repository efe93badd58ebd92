"""Job directories agree with the study: a trial the tuner failed says so in its job's lineage.json.

A job writes its own lineage.json (``running``, then ``completed`` or ``failed``). When the
process running it is killed, the directory keeps ``running`` (or a ``completed`` result the
sweeper never recorded) while a later sweep fails the trial and runs it again. The leaderboard
is built from job directories, so the tuner writes the study's verdict there.
"""

import json
import math
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

__all__ = ["recover", "settle", "job_result"]


def job_result(job_dir: Optional[str]) -> Optional[Tuple[str, Optional[float], Optional[str]]]:
    """(state, value, error) a finished job left in its directory; None while it says ``running`` or nothing."""
    if not job_dir:
        return None
    lineage = _read(Path(job_dir) / "lineage.json")
    if lineage is None:
        return None
    status, error = lineage.get("status"), lineage.get("error")
    if status == "completed":
        objective = (_read(Path(job_dir) / "metrics.json") or {}).get("objective")
        if isinstance(objective, (int, float)) and math.isfinite(objective):
            return "complete", float(objective), None
        return None
    if status == "failed" and str(error or "").startswith("TrialPruned"):
        return "pruned", None, error
    if status == "failed":
        return "fail", None, error
    return None


def recover(study: Any, trial: Any) -> bool:
    """Record a running trial's result from its finished job (its sweeper died before telling it)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    result = job_result(trial.user_attrs.get("job_dir"))
    if result is None:
        return False
    state, value, error = result
    storage = study._storage
    try:
        if error:
            storage.set_trial_user_attr(trial._trial_id, "error", str(error)[:2000])
        storage.set_trial_state_values(
            trial._trial_id, state=TrialState[state.upper()], values=[value] if value is not None else None)
    except UpdateFinishedTrialError:
        return False  # another worker settled it first
    return True


def settle(study: Any) -> int:
    """Write ``failed`` (and why) into the lineage.json of every FAIL trial whose job directory says otherwise.

    Returns how many job directories were corrected.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    replaced_by = {old: t.number for t in trials for old in t.system_attrs.get("retry_history", [])[-1:]}
    corrected = 0
    for trial in trials:
        job_dir = trial.user_attrs.get("job_dir")
        if trial.state != TrialState.FAIL or not job_dir or not Path(job_dir).is_dir():
            continue
        path = Path(job_dir) / "lineage.json"
        lineage = _read(path) or {"note": "the job was stopped before the experiment started"}
        if lineage.get("status") == "failed" and lineage.get("error"):
            continue
        lineage.update(status="failed", error=_why(trial, lineage.get("status"), replaced_by.get(trial.number)),
                       finished=lineage.get("finished") or _now())
        _write(path, lineage)
        corrected += 1
    return corrected


def _why(trial: Any, status: Optional[str], retry: Optional[int]) -> str:
    from mlexp.tuning._study import INTERRUPTED_ATTR

    cause = trial.user_attrs.get(INTERRUPTED_ATTR) or "its worker stopped sending heartbeats"
    text = f"Interrupted: {cause}; the study failed trial {trial.number}"
    if status == "completed":
        text = (f"Interrupted: the job finished but {cause} before the result was recorded; the study failed "
                f"trial {trial.number}")
    return text + (f" and ran it again as trial {retry}." if retry is not None else ".")


def _read(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, content: Dict[str, Any]) -> None:
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(content, indent=2, default=str))
    temporary.replace(path)


def _now() -> str:
    from mlexp.lineage import now_iso

    return now_iso()
