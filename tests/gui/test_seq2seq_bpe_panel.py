"""The input → output panel on a seq2seq graph unlike the preset (1 encoder + 2 hand-wired
decoder layers, separate tables) whose ``sequence_pairs`` node reads BPE pieces: the output is
detokenized text, the map's columns are the input's pieces, one map per cross-attention."""

from __future__ import annotations

import numpy as np
import pytest
from guihelp import save_screenshot
from PySide6.QtCore import Qt

from engine import api
from engine.base.io import save_weights
from engine.core import document
from engine.core.compile import compile_document
from engine.core.run import init_weights
from engine.data.tokenizers import train_bpe
from engine.graphs.seq2seq_builder import seq2seq_custom

pytestmark = pytest.mark.gui

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
TEXT = "seventy seven"


def _bpe_graph(tmp_path):
    pairs = [(f"{t} {o}", str(20 + 10 * i + j)) for i, t in enumerate(TENS)
             for j, o in enumerate(ONES)]
    doc = seq2seq_custom(source="file", path="gone.tsv", tokenizer="bpe", vocab_size=300,
                         max_source_len=16, max_target_len=8, enc_layers=1, dec_layers=2,
                         decoder="parts", width=16, heads=2)
    pairs_node = doc["nodes"][0]
    pairs_node["params"]["tokenizer_data"] = train_bpe(
        "".join(f"{a}\n{b}\n" for a, b in pairs), 300)
    path = tmp_path / "numbers_bpe.json"
    document.save(doc, path)
    program = compile_document(doc, "float32")
    rng = np.random.default_rng(1)
    weights = {k: (v + rng.normal(0, 0.3, v.shape)).astype(np.float32)
               for k, v in init_weights(program.parameters, 1, np.float32).items()}
    save_weights(tmp_path / "numbers_bpe.safetensors", weights)
    return path, tmp_path / "numbers_bpe.safetensors"


def test_bpe_graph_unlike_the_preset_decodes_to_text_in_the_panel(make_window, qtbot, tmp_path):
    path, weights = _bpe_graph(tmp_path)
    win = make_window(str(path))
    panel = win.training.sampling
    panel.set_weights(str(weights))
    s2s = panel.seq2seq
    assert not s2s.isHidden()
    s2s.input.setText(TEXT)
    qtbot.keyClick(s2s.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not s2s.busy, timeout=60_000)
    expected = api.decode_pairs(win.controller.model.doc, api.load_weights_file(str(weights)),
                                TEXT)
    assert s2s.result is not None, s2s.status.text()
    shown = s2s.output.generated_text()
    assert shown.removesuffix("<end>") == expected["output"]  # detokenized, not piece ids
    view = s2s.attention
    assert [view.layer.itemText(i) for i in range(view.layer.count())] == ["d1_cross", "d2_cross"]
    assert view.cols == expected["input_tokens"] and len(view.cols) < len(TEXT)  # pieces
    assert "".join(view.cols) == TEXT
    m = view.current()
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-6)
    panel.resize(1100, 460)
    save_screenshot(panel, "seq2seq-bpe-panel", tmp_path)
