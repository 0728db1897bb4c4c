"""What a fresh `wiregrad train` process loads before its first step (issue 20 §2: no wait
before the first step): only what the graph needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEQ2SEQ = ("engine.sample.seq2seq", "engine.kernels.decoder_step",
           "engine.insight.seq2seq_metrics")


def _train_and_list_modules(tmp_path: Path, graph: str) -> dict:
    code = ("import json, sys; from engine.cli import main; "
            f"rc = main(['train', {graph!r}, '--steps', '1']); "
            f"print(json.dumps({{'rc': rc, 'loaded': [m for m in {SEQ2SEQ!r} "
            "if m in sys.modules]}))")
    env = {**os.environ, "WIREGRAD_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_training_an_mlp_never_imports_the_seq2seq_decoder(tmp_path):
    found = _train_and_list_modules(tmp_path, "spiral_mlp")
    assert found == {"rc": 0, "loaded": []}


def test_the_worker_gives_a_seq2seq_graph_its_hooks_and_others_none():
    from engine import worker
    from engine.graphs import presets

    assert worker._eval_hooks(presets.load("spiral_mlp")[0]) == []
    hooks = worker._eval_hooks(presets.load("seq2seq_dates")[0])
    assert [type(h).__name__ for h in hooks] == ["ExactMatch"]
