"""engine/data: every public entry point works first thing in a fresh process, and the layers
point one way (data -> ops -> core; the core never reads datasets)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def _fresh(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run *code* in a new interpreter (cwd *tmp_path*), the repository on its path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)


def test_text_corpus_loads_first_in_a_fresh_process(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    vocab = "".join(sorted(set(TEXT)))
    code = ("from engine.data import load_dataset, batcher_for\n"
            f"ds = load_dataset('text_corpus', {{'source': 'file', 'path': 'corpus.txt', "
            f"'vocab': {vocab!r}, 'block_size': 16}})\n"
            "b = batcher_for(ds, 3, 0).next()\n"
            "print(ds.info['characters'], b['tokens'].shape)\n")
    done = _fresh(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(TEXT)), "(3,", "16)"]


@pytest.mark.parametrize("code", [
    "from engine.data import load_dataset\n"
    "print(len(load_dataset('classification_2d', {'n_samples': 100}).train['points']))",
    "from engine.data.datasets import load_dataset\n"
    "print(len(load_dataset('regression_1d', {'n_samples': 100}).train['x']))",
    "from engine.data import load_dataset, eval_batches_for\n"
    "ds = load_dataset('shapes_images', {'n_samples': 100, 'size': 8})\n"
    "print(len(next(iter(eval_batches_for(ds, 5)))['images']))",
])
def test_sources_load_first_in_a_fresh_process(tmp_path, code):
    done = _fresh(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 0


def test_gradcheck_with_example_feeds_first_in_a_fresh_process(tmp_path):
    code = ("import json\n"
            "from engine.core.gradcheck import gradcheck_document, summarize\n"
            "from engine.data.examples import feeds_for\n"
            f"doc = json.load(open({str(ROOT / 'presets' / 'spiral_mlp.json')!r}))\n"
            "print(summarize(gradcheck_document(doc, 'fc1', feeds=feeds_for()))['ok'])\n")
    done = _fresh(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def _imports(path: Path) -> set[str]:
    """Modules *path* imports (anywhere in the file, lazily included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("folder", ["engine/ops", "engine/core"])
def test_ops_and_core_never_import_the_data_layer(folder):
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p)
                                                  if m.startswith("engine.data"))
                 for p in sorted((ROOT / folder).glob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_worker_checks_gradients_without_the_api_facade():
    imports = _imports(ROOT / "engine" / "worker.py")
    assert "engine.api" not in imports and not any(m == "engine" or m.startswith("engine.api")
                                                   for m in imports if "api" in m)
    assert "engine.core.gradcheck" in imports


@pytest.mark.parametrize("module", ["engine/data/datasets.py", "engine/data/batching.py",
                                    "engine/data/synthetic.py", "engine/data/files.py",
                                    "engine/data/text_corpus.py", "engine/data/examples.py",
                                    "engine/ops/text_data.py"])
def test_data_modules_are_small(module):
    assert len((ROOT / module).read_text(encoding="utf-8").splitlines()) < 400


def test_text_op_module_holds_only_the_op_spec():
    names = {n.name for n in ast.parse((ROOT / "engine/ops/text_data.py").read_text()).body
             if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert "WindowBatcher" not in names and "val_batches" not in names
