"""``python tools/screenshots.py``: its table of named shots points at GUI tests that exist and
call ``save_screenshot`` with that name (the rendering itself runs in test_readme_commands)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("screenshots_tool", ROOT / "tools" /
                                                  "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _saved_names(function: ast.FunctionDef) -> list[str]:
    """The NAME arguments of ``save_screenshot(widget, NAME, tmp_path)`` calls (f-strings as
    patterns: ``editor-{name}`` → ``editor-*``)."""
    names = []
    for node in ast.walk(function):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "save_screenshot"
                and len(node.args) >= 2):
            arg = node.args[1]
            if isinstance(arg, ast.Constant):
                names.append(arg.value)
            elif isinstance(arg, ast.JoinedStr):
                names.append("".join(v.value if isinstance(v, ast.Constant) else "*"
                                     for v in arg.values))
    return names


def test_every_shot_names_a_test_that_saves_it():
    tool = _tool()
    assert len(tool.SHOTS) >= 15
    for name, test_id in tool.SHOTS.items():
        path, _, function = test_id.partition("::")
        function = function.split("[")[0]
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        defs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
        assert function in defs, test_id
        patterns = _saved_names(defs[function])
        assert any(re.fullmatch(re.escape(p).replace(r"\*", ".+"), name) for p in patterns), \
            (name, test_id, patterns)


def test_every_readme_image_is_a_shot():
    tool = _tool()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for stem in re.findall(r"assets/screenshots/([\w.-]+)\.png", doc.read_text("utf-8")):
            assert stem in tool.SHOTS, f"{doc.name} shows {stem}.png, which no shot renders"


def test_unknown_names_exit_2_and_list_prints_the_table(capsys):
    tool = _tool()
    assert tool.main(["no-such-shot"]) == 2
    assert "unknown shot(s) no-such-shot" in capsys.readouterr().err
    assert tool.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in tool.SHOTS)
