"""Security: no string of a document is executed by an exported PyTorch project (issue 15.1).

Every free-text field of a document (meta.name, meta.description, node titles, layer docs,
layer param docs, text-data strings, ``extra``) is filled with hostile text that would create
a file if it escaped its quoting; the generated ``model.py`` and ``train.py`` must compile,
and importing ``model.py`` / running ``train.py --help`` must create nothing.
"""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from engine import api
from engine.export.torch_codegen import doc_text, py_literal
from engine.graphs import builders as templates
from engine.graphs import presets

HOSTILE = [
    'x"""; open("PWNED_a", "w").write("1"); """',
    "x'''; open('PWNED_b', 'w').write('1'); '''",
    'x\n__import__("os").system("touch PWNED_c")\n#',
    'x\r\nopen("PWNED_d", "w")\r#',
    'x\\"; open("PWNED_e", "w")  #\\',
    'x"',
    '\\',
    '%(prog)s %d %s {0} {name} {{',
    'x\x0c\x0bopen("PWNED_f", "w")\u2028open("PWNED_g", "w")',
    '"""',
    "é—" + "a" * 300,
]


def _hostile_doc(doc: dict, text: str) -> dict:
    doc["meta"] = {"name": text, "description": text + " " + text}
    for node in doc["nodes"]:
        node.setdefault("ui", {})["title"] = text
    for layer in doc.get("layers", {}).values():
        layer["doc"] = text
        for param in layer.get("params", []):
            param["doc"] = text
        for node in layer["nodes"]:
            node.setdefault("ui", {})["title"] = text
    doc["extra"] = {text: text}
    return doc


def _docs(text: str) -> list[tuple[str, dict]]:
    spiral, _ = presets.load("spiral_mlp")
    gpt = templates.char_gpt(layers=1, heads=2, width=16, block=8, batch=2, steps=2)
    return [("spiral", _hostile_doc(spiral, text)), ("gpt", _hostile_doc(gpt, text))]


def _export_all(tmp_path: Path) -> list[Path]:
    folders = []
    for i, text in enumerate(HOSTILE):
        for name, doc in _docs(text):
            out = tmp_path / f"{name}{i}"
            api.export_torch(doc, out)
            folders.append(out)
    return folders


def _pwned(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("PWNED*"))


def test_the_quoting_functions_round_trip_every_hostile_string():
    for text in HOSTILE + ["\ud800", "\x00", "a\\nb"]:
        assert eval(py_literal(text)) == text  # noqa: S307 — a literal, checked to be one
        body = doc_text(text)
        assert "\n" not in body and "\r" not in body and '"' not in body.replace('\\"', "")
        assert eval('"""' + body + '"""') == text  # noqa: S307


def test_hostile_strings_compile_and_execute_nothing_in_model_py(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in _export_all(tmp_path):
        for name in ("model.py", "train.py"):
            py_compile.compile(str(folder / name), doraise=True,
                               cfile=str(tmp_path / "pyc" / folder.name / (name + "c")))
    assert _pwned(tmp_path) == []


@pytest.mark.torch
def test_hostile_strings_run_nothing_in_train_py_help(tmp_path):
    pytest.importorskip("torch")
    folders = [f for f in _export_all(tmp_path) if (f / "train.py").exists()]
    assert len(folders) == 2 * len(HOSTILE)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", RUN_HELP, *map(str, folders)], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("usage:") == len(folders)
    assert done.stdout.count("MODEL-DOC-OK") == len(folders)
    assert _pwned(tmp_path) == []


RUN_HELP = """
import runpy, sys
for folder in sys.argv[1:]:
    sys.modules.pop("model", None)
    sys.argv = [folder + "/train.py", "--help"]
    try:
        runpy.run_path(folder + "/train.py", run_name="__main__")
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
    import model
    assert isinstance(model.Model.__doc__, str)
    print("MODEL-DOC-OK")
    sys.path.remove(folder)
"""
