"""pytest plugin: on CI (``CI=true``) a skipped test fails the run.

A skip on CI means a dependency, a display or a data file is missing from the CI image, and
the suite would silently test less than it claims. Locally skips stay skips. Expected failures
(``xfail``) are not skips and are left alone; skips at collection time (``importorskip`` at
module level) count.

Loaded by ``tests/conftest.py``; other runs can load it with ``-p ci_skip_rule`` when
``tests/`` is on ``sys.path``.
"""

from __future__ import annotations

import os

import pytest


def ci_enabled() -> bool:
    """True when the ``CI`` environment variable is ``true`` (as GitHub/GitLab set it)."""
    return os.environ.get("CI", "").strip().lower() == "true"


class SkipRecorder:
    """Collects every skip of the session; fails the session at the end when on CI."""

    def __init__(self) -> None:
        self.skips: list[tuple[str, str]] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = ""
        if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            reason = str(report.longrepr[2])
        self.skips.append((report.nodeid or "<collection>", reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Runs before the terminal summary; pytest returns session.exitstatus afterwards.
        if ci_enabled() and self.skips and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not (ci_enabled() and self.skips):
            return
        terminalreporter.section("CI skip rule", sep="=", red=True, bold=True)
        terminalreporter.line(
            f"CI=true and {len(self.skips)} test(s) were skipped; on CI a skip is a failure "
            "(install what they need, or remove the skip):",
            red=True,
        )
        for nodeid, reason in self.skips:
            terminalreporter.line(f"  SKIPPED {nodeid}: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipRecorder(), "wiregrad-ci-skip-recorder")
