"""The ``wiregrad`` launcher: headless subcommands go to engine.cli, the rest to the editor."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from nodegraph import launch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_cli(monkeypatch):
    calls: list[list[str]] = []
    module = types.ModuleType("engine.cli")
    module.SUBCOMMANDS = set(launch.HEADLESS_COMMANDS)

    def main(argv):
        calls.append(list(argv))
        return 3

    module.main = main
    import engine

    monkeypatch.setitem(sys.modules, "engine.cli", module)
    monkeypatch.setattr(engine, "cli", module, raising=False)
    return calls


@pytest.mark.parametrize(
    "argv",
    [["validate", "spiral_mlp"], ["ops", "--markdown"], ["--help"], ["--version"], ["bench"]],
)
def test_headless_arguments_go_to_the_engine_cli(fake_cli, argv):
    with pytest.raises(SystemExit) as info:
        launch.main(argv)
    assert info.value.code == 3
    assert fake_cli == [argv]


@pytest.mark.parametrize("argv", [[], ["my_graph.json"], ["spiral_mlp"]])
def test_other_arguments_open_the_editor(fake_cli, monkeypatch, argv):
    opened = []
    monkeypatch.setattr(launch, "open_editor", lambda args: opened.append(list(args)) or 0)
    with pytest.raises(SystemExit) as info:
        launch.main(argv)
    assert info.value.code == 0
    assert opened == [argv]
    assert fake_cli == []


def test_missing_editor_explains_itself(monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "nodegraph.app" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert launch.open_editor([]) == 2
    err = capsys.readouterr().err
    assert "not part of this build" in err
    assert "wiregrad --help" in err


def test_editor_takes_at_most_one_graph(capsys):
    assert launch.open_editor(["a.json", "b.json"]) == 2
    assert "at most one graph" in capsys.readouterr().err


def test_every_engine_cli_subcommand_reaches_the_cli():
    # A subcommand missing from the launcher's list would open the editor instead. (The list
    # may run ahead of the CLI: an unknown one gets argparse's "invalid choice" message.)
    from engine import cli

    assert set(cli.SUBCOMMANDS) <= set(launch.HEADLESS_COMMANDS)


def test_headless_launch_never_imports_qt():
    code = (
        "import sys\n"
        "from nodegraph import launch\n"
        "try:\n"
        "    launch.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "bad = {m.split('.')[0] for m in sys.modules} & {'PySide6', 'shiboken6', 'pyqtgraph'}\n"
        "sys.stderr.write('QT-MODULES:' + ','.join(sorted(bad)) + '\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert "QT-MODULES:\n" in result.stderr, result.stdout + result.stderr
