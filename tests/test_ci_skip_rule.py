"""The CI skip rule (tests/ci_skip_rule.py): with CI=true a skip fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SKIPPING = """
import pytest

def test_passes():
    pass

def test_skipped():
    pytest.skip("no widget today")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
"""

COLLECTION_SKIP = """
import pytest

pytest.importorskip("a_module_that_does_not_exist_anywhere")

def test_never_runs():
    pass
"""

CLEAN = """
import pytest

def test_passes():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
"""


def _pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(TESTS)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # faster, and only the plugin under test
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "ci_skip_rule",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            str(folder),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path):
    def make(source: str) -> Path:
        folder = tmp_path / "project"
        folder.mkdir()
        (folder / "pytest.ini").write_text("[pytest]\n")  # keep the repo's config out
        (folder / "test_sample.py").write_text(source)
        return folder

    return make


def test_skip_fails_the_run_on_ci(project):
    result = _pytest(project(SKIPPING), ci="true")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "CI skip rule" in result.stdout
    assert "test_sample.py::test_skipped" in result.stdout
    assert "no widget today" in result.stdout


def test_collection_skip_fails_the_run_on_ci(project):
    result = _pytest(project(COLLECTION_SKIP), ci="true")
    assert result.returncode != 0, result.stdout + result.stderr
    assert "CI skip rule" in result.stdout
    assert "test_sample.py" in result.stdout


def test_skip_is_only_a_skip_off_ci(project):
    result = _pytest(project(SKIPPING), ci=None)
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "CI skip rule" not in result.stdout


def test_ci_false_is_not_ci(project):
    result = _pytest(project(SKIPPING), ci="false")
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr


def test_xfail_and_passes_are_fine_on_ci(project):
    result = _pytest(project(CLEAN), ci="true")
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
