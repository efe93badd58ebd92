"""What keeps a small run fast: skops without torch, and the helper process that saves and reports.

No timing is asserted (bench/bench_overhead.py measures); these tests check the mechanisms and
that a run gives the same files and numbers with the helper as without it.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import run_cli

QUICK = ["splitter.n_splits=2"]


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLEXP_HELPER": "always"}  # forked even on a loaded machine
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env=env)


def test_skops_is_imported_without_torch():
    pytest.importorskip("torch")
    done = _python("""
        import sys
        from mlexp.artifacts import skops_io
        sio = skops_io()
        print("TORCH", "torch" in sys.modules, "SKOPS", sio.__name__)
        import sklearn.externals.array_api_compat.torch  # the shim still imports when asked for
        print("SHIM", "torch" in sys.modules)
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TORCH False SKOPS skops.io" in done.stdout and "SHIM True" in done.stdout


def test_the_helper_runs_calls_elsewhere_raises_their_errors_and_survives_its_own_death():
    done = _python("""
        import operator, os, signal
        from mlexp.helper import Helper, helper_allowed
        assert helper_allowed()                      # a fresh interpreter: no numpy, one thread
        helper = Helper(allowed=True).start()
        print("BEFORE", helper.call(os.getpid) == os.getpid() or helper.is_ready)  # not ready: done here
        assert helper.ready(timeout=240)             # skops and matplotlib loaded, at the lowest priority
        print("ELSEWHERE", helper.call(os.getpid) != os.getpid())
        try:
            helper.call(operator.truediv, 1, 0)
        except ZeroDivisionError as err:
            print("RAISED", "helper process" in "".join(getattr(err, "__notes__", [])))
        os.kill(helper.pid, signal.SIGKILL)
        os.waitpid(helper.pid, 0)
        print("HERE", helper.call(os.getpid) == os.getpid(), helper.connection is None)
        import numpy  # noqa: F401 - a process that has loaded numpy may not fork one
        print("ALLOWED", helper_allowed(), Helper(allowed=False).start().connection is None)
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["BEFORE", "True", "ELSEWHERE", "True", "RAISED", "True", "HERE", "True", "True",
                                   "ALLOWED", "False", "True"], done.stdout


def test_a_cli_run_writes_the_same_files_and_numbers_with_and_without_the_helper(workdir):
    run_cli(QUICK + ["hydra.verbose=mlexp", "hydra.run.dir=with"], cwd=workdir, env={"MLEXP_HELPER": "always"})
    run_cli(QUICK + ["hydra.run.dir=without"], cwd=workdir, env={"MLEXP_HELPER": "0"})
    assert "helper: process" in (workdir / "with" / "mlexp.log").read_text()

    def files(run):
        return sorted(p.relative_to(workdir / run).as_posix() for p in (workdir / run).rglob("*") if p.is_file())

    assert files("with") == files("without")
    assert {"model.skops", "model.json", "report.md", "plots/roc_pr_curves.png"} <= set(files("with"))
    with_, without = (json.loads((workdir / run / "metrics.json").read_text()) for run in ("with", "without"))
    assert with_["cv"] == without["cv"] and with_["test"] == without["test"]
    assert with_["timings"]["report_seconds"] > 0 and with_["timings"]["save_seconds"] > 0
    import skops.io as sio

    path = workdir / "with" / "model.skops"
    model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    assert type(model.named_steps["model"]).__name__ == "LogisticRegression"
    report = (workdir / "with" / "report.md").read_text()
    assert "## ROC and precision-recall curves" in report and "report_seconds" not in report
