"""A (possibly shared) study's trials: who runs them, which count toward n_trials, failing and retrying the dead ones."""

import logging
import os
import socket
import time
from typing import Any, Dict, List, Optional, Set

__all__ = [
    "worker_attrs", "fail_orphans", "fail_stale", "retried_numbers", "counted_trials", "budget_rank",
    "mark_interrupted", "SURPLUS_ATTR", "INTERRUPTED_ATTR",
]

log = logging.getLogger("mlexp.tuning")

NAMING_GRACE_S = 2.0
WORKER_ATTR = "worker"          # {"host", "pid"} of the sweeper process that asked the trial
SURPLUS_ATTR = "surplus"       # a trial asked after other workers had used up n_trials; never run
INTERRUPTED_ATTR = "interrupted"  # why mlexp itself failed a running trial (Ctrl-C, its worker gone)


def worker_attrs() -> Dict[str, Any]:
    """Who runs a trial: lets a restarted sweep on the same machine fail a dead worker's trials at once."""
    return {WORKER_ATTR: {"host": socket.gethostname(), "pid": os.getpid()}}


def fail_orphans(study: Any, max_retry: Optional[int]) -> List[int]:
    """Settle RUNNING trials whose worker is gone; returns the numbers of those failed and queued again.

    Same machine: the worker's process no longer exists. A trial whose job had finished (its
    directory holds the result) is recorded with that result instead of being run again.
    Elsewhere: Optuna's heartbeat grace period has passed (``optuna.storages.fail_stale_trials``).
    """
    from optuna.trial import TrialState

    from mlexp.tuning._records import recover

    host = socket.gethostname()
    orphans = []
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if any(WORKER_ATTR not in t.user_attrs for t in running):
        # A live worker names itself milliseconds after asking; a trial still unnamed after a
        # pause was asked by a worker killed in between.
        time.sleep(NAMING_GRACE_S)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        worker = trial.user_attrs.get(WORKER_ATTR)
        if not isinstance(worker, dict) or (worker.get("host") == host and not _alive(worker.get("pid"))):
            orphans.append(trial)
    recovered = [t.number for t in orphans if recover(study, t)]
    if recovered:
        log.info("trial(s) %s of a stopped worker had finished: their results are recorded from their job "
                 "directories, not run again", recovered)
    failed = [t.number for t in orphans if t.number not in recovered]
    mark_interrupted(study, failed, max_retry, reason="its worker process is gone")
    fail_stale(study)
    return failed


def fail_stale(study: Any) -> None:
    """Fail (and queue again) trials whose worker stopped sending heartbeats (RDB storages only)."""
    import optuna

    optuna.storages.fail_stale_trials(study)


def mark_interrupted(study: Any, numbers: List[int], max_retry: Optional[int], reason: str = "interrupted") -> None:
    """FAIL the running trials and queue each again with the same parameters (Optuna's retry callback).

    The retry carries ``retry_history`` (a system attribute) naming the trial it replaces; the
    failed trial keeps ``reason`` in its user attribute ``interrupted``.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from mlexp.tuning._storage import retry_trial

    if not numbers:
        return
    storage = study._storage
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in numbers:
        trial = by_number.get(number)
        if trial is None or trial.state != TrialState.RUNNING:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, INTERRUPTED_ATTR, reason)
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker failed it first
        retry_trial(study, storage.get_trial(trial._trial_id), max_retry)


def retried_numbers(trials: List[Any]) -> Set[int]:
    """Numbers of failed trials that were queued again (their retry stands in for them)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def counted_trials(trials: List[Any]) -> List[Any]:
    """Finished trials that count toward n_trials: complete, pruned, failed; not retried or surplus."""
    retried = retried_numbers(trials)
    return [
        t for t in trials
        if t.state.is_finished() and t.number not in retried and not t.user_attrs.get(SURPLUS_ATTR)
    ]


def budget_rank(trials: List[Any], number: int) -> int:
    """How many earlier trials use the budget before trial ``number`` (>= n_trials: a surplus trial)."""
    retried = retried_numbers(trials)
    return sum(
        1 for t in trials
        if t.number < number and t.number not in retried and not t.user_attrs.get(SURPLUS_ATTR)
    )


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid == os.getpid():
        return False  # this process has just started: no trial can be ours yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
