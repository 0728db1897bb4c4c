"""The wheel works when installed for real (not editable), from any working directory.

Builds the wheel from a copy of the tree, installs it with ``--no-deps`` into a fresh venv
that borrows the dependencies from this interpreter (``--system-site-packages``), and runs
the console script from an unrelated folder. Catches files missing from the wheel (presets,
schemas, a subpackage left out of ``pyproject.toml``) that an editable install hides.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = "Scripts" if os.name == "nt" else "bin"
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".venv",
    ".hypothesis",
    ".ruff_cache",
    ".import_linter_cache",
)


def _run(cmd: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """(the wheel, the build log)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    shutil.copytree(REPO, src, ignore=NOT_SOURCE)  # never writes build/ into the checkout
    dist = work / "dist"
    result = _check(
        _run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
            cwd=src,
        )
    )
    (found,) = dist.glob("wiregrad-*.whl")
    return found, result.stdout + result.stderr


@pytest.fixture(scope="module")
def wheel(built) -> Path:
    return built[0]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    _check(
        _run(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)],
            cwd=root,
        )
    )
    python = root / BIN / "python"
    # This interpreter's pip installs into the venv; --ignore-installed shadows an editable
    # install of wiregrad in the base environment instead of trying to remove it.
    _check(
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "--no-deps",
                "--no-index",
                "--ignore-installed",
                "--no-compile",
                str(wheel),
            ],
            cwd=root,
        )
    )
    return root


def _source_packages() -> set[str]:
    found = set()
    for top in ("engine", "nodegraph"):
        for init in (REPO / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(REPO).parts))
    return found


def test_pyproject_lists_every_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    missing = _source_packages() - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    absent = [name for name in listed if not (REPO / name.replace(".", "/")).is_dir()]
    assert not absent, f"listed in pyproject.toml but not in the tree: {absent}"


def test_build_does_not_warn_about_unlisted_folders(built):
    # setuptools ships data folders that are not listed, with a deprecation warning that
    # newer releases turn into an error: list them (as namespace packages) instead.
    assert "absent from the `packages` configuration" not in built[1], built[1]


def test_wheel_ships_presets_and_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [
        p.relative_to(REPO).as_posix()
        for pattern in ("presets/*.json", "presets/*.safetensors", "engine/schema/*.json")
        for p in REPO.glob(pattern)
    ]
    missing = [name for name in expected if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_installed_wheel_runs_from_any_folder(venv, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import json, pathlib, engine, nodegraph\n"
        "root = pathlib.Path(engine.__file__).resolve().parent.parent\n"
        "print(json.dumps([str(root), str(pathlib.Path(nodegraph.__file__).resolve()),"
        " sorted(p.name for p in (root / 'presets').glob('*.json'))]))\n"
    )
    result = _check(_run([str(venv / BIN / "python"), "-c", probe], cwd=elsewhere))
    site, nodegraph_file, presets = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(site).is_relative_to(venv.resolve()), f"engine imported from {site}, not the venv"
    assert Path(nodegraph_file).is_relative_to(venv.resolve())
    assert "spiral_mlp.json" in presets

    result = _run([str(venv / BIN / "wiregrad"), "validate", "spiral_mlp"], cwd=elsewhere)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "spiral_mlp" in output
