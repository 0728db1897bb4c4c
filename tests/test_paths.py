"""engine.base.paths: one overridable root (WIREGRAD_HOME) for everything Wiregrad writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.base import paths

REPO = Path(__file__).resolve().parent.parent

ALL_DIRS = (
    paths.config_dir,
    paths.data_dir,
    paths.state_dir,
    paths.cache_dir,
    paths.numba_cache_dir,
    paths.layer_library_dir,
    paths.autosave_dir,
    paths.runs_dir,
)


def test_home_override_puts_every_folder_under_it(tmp_path, monkeypatch):
    home = tmp_path / "wg home"
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    found = {fn.__name__: fn() for fn in ALL_DIRS}
    for name, folder in found.items():
        assert folder.is_relative_to(home), (name, folder)
    assert len(set(found.values())) == len(found), "two kinds of data share a folder"
    assert paths.numba_cache_dir().is_relative_to(paths.cache_dir())


def test_test_suite_runs_under_a_temporary_home(wiregrad_home):
    if wiregrad_home is None:  # WIREGRAD_TEST_KEEP_HOME: the user chose their own folders
        return
    assert paths.config_dir().is_relative_to(wiregrad_home)
    assert Path(os.environ["NUMBA_CACHE_DIR"]) != paths.numba_cache_dir()  # session-wide one
    assert Path(os.environ["NUMBA_CACHE_DIR"]).is_relative_to(tempfile.gettempdir())


def test_ensure_creates_nested_folders(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    folder = paths.ensure(paths.autosave_dir())
    assert folder.is_dir()
    assert paths.ensure(folder) == folder  # idempotent


def test_numba_cache_dir_follows_home_in_a_fresh_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env[paths.HOME_ENV] = str(tmp_path)
    code = (
        "import json, os\n"
        "import engine, engine.base.paths as p\n"
        "print(json.dumps([os.environ['NUMBA_CACHE_DIR'], str(p.cache_dir())]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    numba_dir, cache_dir = map(Path, json.loads(result.stdout.strip().splitlines()[-1]))
    assert numba_dir.is_relative_to(cache_dir)
    assert numba_dir.is_relative_to(tmp_path)
