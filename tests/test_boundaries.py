"""The engine/editor boundary: checked statically (import-linter) and at run time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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


def test_import_engine_loads_no_heavy_library():
    """``import engine`` stays cheap (the bench times it): no Numba, torch, networkx, onnx or
    the op registry until something asks for them. Checked by module, not by clock."""
    code = (
        "import json, sys\n"
        "import engine\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'numba', 'torch', 'networkx', 'onnx', 'scipy', 'sklearn', 'llvmlite'} "
        "or m.startswith('engine.ops.'))))\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def _import_cycles(package: str) -> list[list[str]]:
    import grimp
    import networkx as nx

    graph = grimp.build_graph(package)
    edges = nx.DiGraph()
    for module in graph.modules:
        edges.add_node(module)
        for target in graph.find_modules_directly_imported_by(module):
            edges.add_edge(module, target)
    return sorted(nx.simple_cycles(edges), key=len)


def test_no_import_circles_between_modules():
    """Counting imports inside functions too: no module reaches itself again."""
    for package in ("engine", "nodegraph"):
        cycles = _import_cycles(package)
        assert cycles == [], f"{package}: {cycles[:5]}"
