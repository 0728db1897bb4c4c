"""The engine/editor boundary: checked statically (import-linter) and at run time."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Generous on purpose: a loaded CI machine is noisy. The budget is 0.5 s; the benchmarks
# (bench/) measure the real figure.
IMPORT_TIME_BOUND_S = 1.0


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run(
        [exe, "--no-cache", "--no-logo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_headless_engine_imports_no_qt_and_no_editor():
    code = (
        "import json, sys\n"
        "import engine, engine.cli, engine.api\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "print(json.dumps(sorted(roots & {'PySide6', 'shiboken6', 'pyqtgraph', 'nodegraph'})))\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_import_engine_is_fast():
    code = "import time\nt0 = time.perf_counter()\nimport engine\nprint(time.perf_counter() - t0)\n"
    timings = []
    for _ in range(3):
        result = _run_python(code)
        assert result.returncode == 0, result.stderr
        timings.append(float(result.stdout.strip().splitlines()[-1]))
    median = statistics.median(timings)
    assert median < IMPORT_TIME_BOUND_S, f"import engine took {timings} s (median {median:.3f})"
