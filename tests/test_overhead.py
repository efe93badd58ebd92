"""What keeps a small run fast: skops without torch, no final garbage collection, timed steps.

No timing is asserted (bench/bench_overhead.py measures); these tests check the mechanisms.
"""

import subprocess
import sys
import textwrap

import pytest

from conftest import run_inprocess


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


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


def test_the_entrypoint_leaves_its_objects_to_the_os_at_exit(tmp_path):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import atexit, gc, sys
        atexit.register(lambda: print("FROZEN", gc.get_freeze_count() > 0))  # runs after the entrypoint's end
        sys.argv = ["mlexp", "--cfg", "job"]
        from mlexp.cli import main
        main()
    """)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "FROZEN True" in done.stdout


def test_the_report_is_timed_and_written_before_the_metrics(tmp_path):
    result = run_inprocess(["splitter.n_splits=2", "save_model=false"], tmp_path / "run")
    timings = result.metrics["timings"]
    assert timings["report_seconds"] > 0
    assert timings["total_seconds"] >= timings["report_seconds"] + timings["cv_seconds"]
    # report.md shows the timings known when it was drawn; metrics.json has them all.
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| cv_seconds |" in report and "report_seconds" not in report
    assert (tmp_path / "run" / "report.md").stat().st_mtime_ns <= (tmp_path / "run" / "metrics.json").stat().st_mtime_ns
