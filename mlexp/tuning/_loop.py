"""The tuner's trial loop: ask Optuna, start the job, tell the outcome, keep n_jobs trials running.

With a shared storage, trials of the whole study count toward n_trials. A worker with nothing
left to ask waits while other workers' trials run, failing those whose worker stops beating
(Optuna's heartbeat) so that it runs their retries: the study ends with exactly n_trials.
"""

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Callable, Dict, List, Optional

from mlexp.tuning import _study

__all__ = ["TrialLoop", "Heartbeat", "tell"]

log = logging.getLogger("mlexp.tuning")


class TrialLoop:
    """Run trials of ``study`` until n_trials count; ``plan(trial)`` gives a trial's overrides."""

    def __init__(self, study: Any, settings: Any, n_trials: int, runner: Any, plan: Callable[[Any], List[str]],
                 identity: Callable[[Any], str]):
        self.study, self.settings, self.n_trials, self.runner = study, settings, n_trials, runner
        self.plan, self.identity = plan, identity
        self.heartbeat = Heartbeat(study._storage, settings.heartbeat_interval)
        self.outcomes: List[Any] = []       # (trial number, params, Outcome) of the trials run here
        self.stopped_by: Optional[str] = None
        self._last_stale_check = 0.0
        self._snapshot: Optional[List[Any]] = None  # the trials as read right after the last tell

    def run(self) -> Optional[str]:
        """Run until the study has n_trials (or failures pass the limit); the reason it stopped early, if any."""
        running: Dict[Future, Any] = {}
        starting: Any = None
        finished = False
        try:
            while True:
                while self.stopped_by is None and len(running) < self.settings.n_jobs:
                    trial = self._next_trial()
                    if trial is None:
                        break
                    starting = trial  # an in-process job runs inside start(); Ctrl-C may land there
                    running[self._start(trial)] = trial
                    starting = None
                if not running:
                    if self.stopped_by is None and self._others_running():
                        time.sleep(self._poll_seconds())  # their worker may die: then we run the retry
                        continue
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED, timeout=self._poll_seconds())
                for future in done:
                    self._finish(running.pop(future), future.result())
            finished = True
        except KeyboardInterrupt:
            cut = sorted({t.number for t in running.values()} | ({starting.number} if starting else set()))
            log.warning("interrupted: trial(s) %s failed and queued again; re-run the same command to resume.", cut)
            _study.mark_interrupted(self.study, cut, self.settings.max_retry, reason="interrupted (Ctrl-C)")
            raise
        finally:
            self.heartbeat.stop()
            self.runner.shutdown(wait=finished)
        return self.stopped_by

    def _next_trial(self) -> Any:
        """Ask a trial while finished + running trials are below n_trials; None when the budget is used."""
        from optuna.trial import TrialState

        self._check_stale()
        trials = self._snapshot if self._snapshot is not None else self.study.get_trials(deepcopy=False)
        self._snapshot = None
        in_flight = sum(1 for t in trials if t.state == TrialState.RUNNING)
        if len(_study.counted_trials(trials)) + in_flight >= self.n_trials:
            return None
        trial = self.study.ask()
        self.heartbeat.first_beat(trial._trial_id)
        for key, value in _study.worker_attrs().items():  # first: who runs it (see fail_orphans)
            trial.set_user_attr(key, value)
        if trial.number > len(trials):  # other trials were asked since our count (another worker's): count again
            trials = self.study.get_trials(deepcopy=False)
        if _study.budget_rank(trials, trial.number) >= self.n_trials:
            # Other workers used up n_trials between our count and ask: fail it, never run it.
            trial.set_user_attr(_study.SURPLUS_ATTR, True)
            self.heartbeat.remove(trial._trial_id)
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    def _start(self, trial: Any) -> Future:
        from mlexp.tuning._launch import Outcome
        from mlexp.tuning._trial import share_live

        try:
            overrides = self.plan(trial)
        except Exception as err:  # noqa: BLE001 - a model option that cannot be composed fails its trial
            future: Future = Future()
            future.set_result(Outcome("fail", error=f"{type(err).__name__}: {err}"))
            return future
        trial.set_user_attr("overrides", overrides)
        share_live(trial)
        return self.runner.start(overrides + [self.identity(trial)], trial.number)

    def _finish(self, trial: Any, outcome: Any) -> None:
        from mlexp.tuning._trial import drop_live

        drop_live(trial)
        self.heartbeat.remove(trial._trial_id)
        if outcome.lost:
            log.warning("trial %d was lost with its worker process (%s); queued again", trial.number, outcome.error)
            _study.mark_interrupted(self.study, [trial.number], self.settings.max_retry, reason=outcome.error)
            self._snapshot = None
            return
        tell(self.study, trial, outcome)
        self.outcomes.append((trial.number, dict(trial.params), outcome))
        self._snapshot = self.study.get_trials(deepcopy=False)  # read once: for the progress line and the next ask
        self.stopped_by = self.stopped_by or self._progress(trial, outcome, self._snapshot)

    def _others_running(self) -> bool:
        """Trials of other workers still run (and could still fail and be queued again)."""
        if not self.settings.heartbeat_interval or not hasattr(self.study._storage, "record_heartbeat"):
            return False
        from optuna.trial import TrialState

        self._check_stale()
        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return True
        return any(t.state == TrialState.RUNNING for t in trials)

    def _check_stale(self) -> None:
        interval = self.settings.heartbeat_interval
        if not interval or time.monotonic() - self._last_stale_check < min(interval, 5):
            return
        self._last_stale_check = time.monotonic()
        _study.fail_stale(self.study)

    def _poll_seconds(self) -> Optional[float]:
        interval = self.settings.heartbeat_interval
        return min(float(interval), 5.0) if interval else None

    def _progress(self, trial: Any, outcome: Any, trials: List[Any]) -> Optional[str]:
        counted = _study.counted_trials(trials)
        states = [t.state.name for t in counted]
        failed = states.count("FAIL")
        best = _best_of(trials, self.study.direction.name == "MAXIMIZE")
        shown = f"value={outcome.value:.4f}" if outcome.value is not None else (outcome.error or "").splitlines()[0][:200]
        log.info(
            "trial %d %s %s | %d/%d done: %d complete, %d pruned, %d failed | best %s",
            trial.number, outcome.state.upper(), shown, len(counted), self.n_trials, states.count("COMPLETE"),
            states.count("PRUNED"), failed, f"{best.value:.4f} (trial {best.number})" if best else "-",
        )
        if outcome.state == "fail":
            log.warning("trial %d failed: %s%s", trial.number, outcome.error,
                        f" (log: {outcome.job_dir})" if outcome.job_dir else "")
        if failed > self.settings.max_failure_rate * self.n_trials:
            return (
                f"{failed} of {len(counted)} trials failed, more than tuner.max_failure_rate="
                f"{self.settings.max_failure_rate} of n_trials={self.n_trials}; the sweep stopped. First errors are in "
                "trials.csv (column error); fix the cause or raise tuner.max_failure_rate."
            )
        return None


def _best_of(trials: List[Any], maximize: bool) -> Any:
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    if not complete:
        return None
    return max(complete, key=lambda t: t.value) if maximize else min(complete, key=lambda t: t.value)


def tell(study: Any, trial: Any, outcome: Any) -> None:
    """Record a job's outcome on its trial (the job directory too, if the job did not name it)."""
    from optuna.trial import TrialState

    if outcome.job_dir and trial.user_attrs.get("job_dir") != outcome.job_dir:
        trial.set_user_attr("job_dir", outcome.job_dir)
    if outcome.error and outcome.state == "fail":
        trial.set_user_attr("error", outcome.error[:2000])
    state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}[outcome.state]
    try:
        study.tell(trial, outcome.value if state == TrialState.COMPLETE else None, state=state)
    except ValueError as err:
        # Another worker found this trial's heartbeats stale, failed it and queued a retry: the
        # retry's result counts; this job's files stay in its directory.
        if "Cannot tell a FAIL trial" not in str(err):
            raise
        log.warning("trial %d finished after another worker declared it lost (no heartbeat within the grace "
                    "period) and queued it again; the retry's result counts, this job's files stay in %s",
                    trial.number, outcome.job_dir)
    except RuntimeError as err:
        # GridSampler calls study.stop() once the grid is covered; outside optimize() that raises
        # after the trial's state is already stored.
        if "Study.stop" not in str(err):
            raise


class Heartbeat:
    """Record Optuna heartbeats for the running trials, so other workers can tell ours are alive.

    Beats are written from a background thread (a new trial's first within a second), off
    the path that starts the next trial. Storages without heartbeats (journal files) get none.
    """

    def __init__(self, storage: Any, interval: Optional[int]):
        self.storage, self.interval = storage, interval
        self.last: Dict[int, float] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread: Optional[threading.Thread] = None
        if interval and hasattr(storage, "record_heartbeat"):
            self.thread = threading.Thread(target=self._loop, name="mlexp-heartbeat", daemon=True)
            self.thread.start()

    def first_beat(self, trial_id: int) -> None:
        """Beat once now: Optuna never counts a trial without any heartbeat as stale."""
        if self.interval and hasattr(self.storage, "record_heartbeat"):
            self.storage.record_heartbeat(trial_id)
            with self.lock:
                self.last[trial_id] = time.monotonic()

    def remove(self, trial_id: int) -> None:
        with self.lock:
            self.last.pop(trial_id, None)

    def stop(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _loop(self) -> None:
        # Beat every half interval: Optuna calls a trial stale after two silent intervals, and a busy
        # machine (a trial's own threads, other workers) can delay this thread by seconds.
        half = self.interval / 2
        while not self.done.wait(min(0.5, half)):
            now = time.monotonic()
            with self.lock:
                due = [i for i, last in self.last.items() if now - last >= half]
            for trial_id in due:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as err:  # noqa: BLE001 - a missed beat is retried next time
                    log.debug("heartbeat for trial id %d failed: %s", trial_id, err)
                    continue
                with self.lock:
                    if trial_id in self.last:
                        self.last[trial_id] = now
