"""Test-suite setup shared by every test.

* ``WIREGRAD_HOME`` points at a fresh temporary folder for the whole session (set here, at
  import time, before anything imports ``engine`` or Numba, so the Numba cache lands there too);
  each test then gets its own home below it. Set ``WIREGRAD_TEST_KEEP_HOME=1`` to keep your
  own ``WIREGRAD_HOME`` / platform folders instead (e.g. to reuse a warm Numba cache).
* Qt runs offscreen unless ``QT_QPA_PLATFORM`` is already set.
* With ``CI=true`` a skipped test fails the run (``tests/ci_skip_rule.py``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["ci_skip_rule"]

KEEP_HOME = bool(os.environ.get("WIREGRAD_TEST_KEEP_HOME"))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# No cold-start kernel helper process per Trainer (engine.kernels.precompile): tests that
# exercise it turn it on themselves.
os.environ.setdefault("WIREGRAD_PRECOMPILE", "0")
# A parallel kernel an op may use compiles before it is used, not on a helper thread
# (engine.kernels.parallel.ready): which route a test takes must not depend on timing.
os.environ.setdefault("WIREGRAD_COMPILE_AT_ONCE", "1")

if not KEEP_HOME:
    _SESSION_HOME = Path(tempfile.mkdtemp(prefix="wiregrad-test-home-"))
    atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
    os.environ["WIREGRAD_HOME"] = str(_SESSION_HOME)
    # engine/__init__ only setdefault()s this; a value inherited from the shell must not win.
    os.environ["NUMBA_CACHE_DIR"] = str(_SESSION_HOME / "cache" / "numba")


@pytest.fixture(autouse=True)
def wiregrad_home(tmp_path_factory, monkeypatch) -> Path | None:
    """This test's ``WIREGRAD_HOME`` (a fresh folder), or None when the user's home is kept.

    The Numba cache stays the session's: Numba reads ``NUMBA_CACHE_DIR`` once per process.
    """
    if KEEP_HOME:
        return None
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("WIREGRAD_HOME", str(home))
    return home
