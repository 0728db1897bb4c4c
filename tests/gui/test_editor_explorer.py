"""The embedding explorer and the tokenizer view (issue 18 §1, §3): a PCA map of the token
embeddings, search (highlight and centre), k nearest neighbours by cosine similarity checked
against brute-force numpy, click-to-jump, live weights; tokens and ids of typed text."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine import api

pytestmark = pytest.mark.gui

PRESETS = Path(__file__).resolve().parents[2] / "presets"
SHOTS = os.environ.get("WIREGRAD_H11_SHOTS")  # a folder to look at renders (never assets/)


def _preset(name: str) -> tuple[dict, dict]:
    doc = json.loads((PRESETS / f"{name}.json").read_text())
    return doc, api.document_weights(doc, PRESETS / f"{name}.json")


def _cosine(table: np.ndarray, row: int, k: int) -> list[int]:
    t = table.astype(np.float64)
    sims = t @ t[row] / (np.linalg.norm(t, axis=1) * np.linalg.norm(t[row]))
    sims[row] = -np.inf
    return [int(i) for i in np.argsort(-sims, kind="stable")[:k]]


def _shot(widget, name: str) -> None:
    if SHOTS:
        widget.grab().save(str(Path(SHOTS) / f"{name}.png"))


def test_explorer_maps_searches_and_jumps_on_word_gpt(qtbot):
    from nodegraph.training.explorer import EmbeddingExplorer

    doc, weights = _preset("word_gpt")
    panel = EmbeddingExplorer()
    qtbot.addWidget(panel)
    panel.resize(900, 560)
    panel.show()
    assert panel.set_source(doc, weights, "word_gpt.safetensors")
    labels = panel.map["labels"]
    assert len(labels) == 2048 and len(panel.labels) == 2048
    assert np.asarray(panel.map["xy"]).shape == (2048, 2)
    assert panel.scatter.data.shape[0] == 2048

    panel.search_box.setText("king")
    qtbot.keyClick(panel.search_box, Qt.Key.Key_Return)
    query = panel.report["query"]["token"]
    assert labels[query] == " king"
    # neighbours: the k nearest by cosine, as brute-force numpy finds them
    assert panel.neighbour_ids() == _cosine(weights["wte"][:2048], query, 10)
    sims = [n["similarity"] for n in panel.report["neighbours"]]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)
    assert f"{sims[0]:+.3f}" in panel.list.item(1).text()
    # highlighted and centred
    xy = np.asarray(panel.map["xy"], dtype=np.float64)
    assert np.allclose(panel.view_centre(), xy[query], atol=1e-6 + 1e-3 * np.ptp(xy))
    assert list(panel.query_item.data["x"]) == [xy[query, 0]]
    assert len(panel.near_item.data) == 10
    _shot(panel, "explorer-king")

    # click a neighbour: it becomes the query, centred, with its own neighbours
    target = panel.neighbour_ids()[2]
    item = panel.list.item(3)
    rect = panel.list.visualItemRect(item)
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert panel.report["query"]["token"] == target
    assert panel.neighbour_ids() == _cosine(weights["wte"][:2048], target, 10)
    assert np.allclose(panel.view_centre(), xy[target], atol=1e-6 + 1e-3 * np.ptp(xy))

    # k from the spin box; a word that is several tokens is a clear message, not a crash
    panel.k_box.setValue(3)
    assert panel.search("thou") and len(panel.neighbour_ids()) == 3
    before = panel.report
    assert not panel.search("xylophonically")
    assert "not one token" in panel.message.text() and panel.report is before


def test_explorer_on_char_gpt_and_a_graph_without_text(qtbot):
    from nodegraph.training.explorer import EmbeddingExplorer

    doc, weights = _preset("char_gpt")
    panel = EmbeddingExplorer()
    qtbot.addWidget(panel)
    assert panel.set_source(doc, weights, "char_gpt.safetensors")
    assert len(panel.map["labels"]) == 83
    assert panel.search("e")
    e = panel.map["labels"].index("e")
    assert panel.neighbour_ids() == _cosine(weights["wte"][:83], e, 10)
    spiral = json.loads((PRESETS / "spiral_mlp.json").read_text())
    assert not panel.set_source(spiral, {"x": np.zeros(2)}, "none")
    assert "no text data node" in panel.info.text() and panel.map is None
    assert not panel.search("e")


def test_explorer_switches_between_a_seq2seq_graphs_source_and_target_tables(qtbot):
    from nodegraph.training.explorer import EmbeddingExplorer
    from nodegraph.training.tokenview import TokenizerView

    doc, weights = _preset("seq2seq_dates")
    panel = EmbeddingExplorer()
    qtbot.addWidget(panel)
    panel.show()
    assert panel.set_source(doc, weights, "seq2seq_dates.safetensors")
    assert panel.table_box.isVisible() and panel.table_box.count() == 2
    assert panel.map["weight"] == "src_emb.weight" and panel.map["labels"][:3] == [
        "<pad>", "<bos>", "<eos>"]
    assert panel.search("7")
    seven = panel.report["query"]["token"]
    assert panel.neighbour_ids() == _cosine(weights["src_emb.weight"], seven, 10)
    panel.table_box.setCurrentText("target")  # the decoder's table, the token kept in view
    assert panel.map["weight"] == "tgt_emb.weight"
    assert panel.report["query"]["token"] == seven
    assert panel.neighbour_ids() == _cosine(weights["tgt_emb.weight"], seven, 10)
    char, char_weights = _preset("char_gpt")  # one table: no chooser
    assert panel.set_source(char, char_weights, "char_gpt") and not panel.table_box.isVisible()
    view = TokenizerView(lambda: doc)
    qtbot.addWidget(view)
    view.set_text("Mar 3")
    assert [t["token"] for t in view.tokens] == list("Mar 3") and not view.error


def test_tokenizer_view_shows_tokens_ids_and_a_clear_error(qtbot):
    from nodegraph.training.tokenview import TokenizerView

    word, _ = _preset("word_gpt")
    view = TokenizerView(lambda: word)
    qtbot.addWidget(view)
    view.resize(700, 420)
    view.show()
    view.set_text("Now is the winter of our king")
    want = api.tokenize(word, "Now is the winter of our king")
    assert [t["id"] for t in view.tokens] == [t["id"] for t in want]
    assert view.table.rowCount() == len(want)
    assert view.table.item(len(want) - 1, 1).text() == repr(" king")
    assert view.table.item(len(want) - 1, 2).text() == str(want[-1]["id"])
    assert f"{len(want)} token(s)" in view.pieces.text() and not view.error
    _shot(view, "tokenizer-word")

    char, _ = _preset("char_gpt")
    view.doc = lambda: char
    view.set_text("snow ☃")
    assert view.tokens == [] and view.table.rowCount() == 0
    assert "Cannot encode" in view.error and "☃" in view.error
    assert "Cannot encode" in view.pieces.text()
    _shot(view, "tokenizer-error")
    # typing re-tokenises after a short pause
    view.text.setPlainText("to be")
    qtbot.waitUntil(lambda: [t["token"] for t in view.tokens] == list("to be"), timeout=3000)


def test_tokens_dock_shows_the_shipped_word_gpt(make_window, qtbot, tmp_path):
    """No training: the document's own weights; the README's explorer-word_gpt picture."""
    from guihelp import save_screenshot

    win = make_window("word_gpt", size=(1500, 950))
    route = win.explorer
    view = next(a.menu() for a in win.menuBar().actions() if a.text() == "&View")
    assert route.dock.toggleViewAction() in view.actions()  # View ▸ Tokens shows / hides it
    route.dock.raise_()  # shown: the shipped weights, no training
    qtbot.waitUntil(lambda: route.explorer.map is not None, timeout=10_000)
    assert route.source.endswith("word_gpt.safetensors")
    assert "word_gpt.safetensors" in route.explorer.info.text()
    assert route.explorer.search("king")
    assert route.explorer.report["neighbours"][0]["label"] == \
        api.embedding_neighbours(*_preset("word_gpt"), "king", 1)["neighbours"][0]["label"]
    route.widget.tokenizer.set_text("thou art")
    assert route.widget.tokenizer.tokens == api.tokenize(win.controller.model.doc, "thou art")
    assert "".join(t["token"] for t in route.widget.tokenizer.tokens) == "thou art"
    route.widget.setCurrentWidget(route.explorer)
    _shot(route.dock, "explorer-docked")
    route.dock.setFloating(True)  # the README's picture: the dock pulled out, wide
    route.dock.resize(1100, 680)
    route.explorer.centre_on(route.explorer.report["query"]["token"])
    qtbot.wait(50)
    assert route.explorer.split.orientation() == Qt.Orientation.Horizontal
    save_screenshot(route.dock, "explorer-word_gpt", tmp_path)
    _shot(route.dock, "explorer-window")

    # File ▸ Load Weights…: the explorer follows them (no run), the token stays in view
    from safetensors.numpy import save_file

    _, weights = _preset("word_gpt")
    flipped = {**weights, "wte": np.ascontiguousarray(weights["wte"][::-1])}
    save_file(flipped, str(tmp_path / "flipped.safetensors"))
    win.training.load_weights(str(tmp_path / "flipped.safetensors"), show=False)
    qtbot.waitUntil(lambda: "flipped" in route.explorer.info.text(), timeout=5000)
    king = route.explorer.report["query"]["token"]
    assert route.explorer.report["query"]["label"] == " king"
    assert route.explorer.neighbour_ids() == _cosine(flipped["wte"][:2048], king, 10)


def test_tokens_dock_follows_a_live_run(make_window, qtbot):
    """A graph without text says so; a run's weights arrive at its evaluation points."""
    from trainhelp import wait_done, wait_state

    from engine.graphs import builders as templates

    win = make_window("word_gpt")
    route = win.explorer
    route.dock.raise_()
    qtbot.waitUntil(lambda: route.explorer.map is not None, timeout=10_000)
    from nodegraph.files import load_graph

    win.files.set_document(*load_graph("seq2seq_dates"))  # as File ▸ Open does
    qtbot.waitUntil(lambda: route.explorer.map is not None, timeout=10_000)
    assert route.explorer.map["tables"] == ["source", "target"]
    assert "seq2seq_dates.safetensors" in route.explorer.info.text()
    spiral = json.loads((PRESETS / "spiral_mlp.json").read_text())
    win.files.set_document(spiral, None, False)  # as File ▸ Open / New do
    qtbot.waitUntil(lambda: "no text data node" in route.explorer.info.text(), timeout=5000)
    doc = templates.char_gpt(layers=1, heads=2, width=16, block=16)
    doc["training"].update(steps=12, eval_every=1, eval_batches=1, checkpoint_every=0)
    win.files.set_document(doc, None, False)
    route.dock.raise_()
    assert route.dock.isVisible()
    assert route.explorer.map is None  # a fresh template has no weights yet
    run = win.training.train(paused=True)
    wait_state(qtbot, win, "paused")
    win.training.session.step()  # one batch, an evaluation point (eval_every 1), paused again
    qtbot.waitUntil(lambda: "run 1 · step 1" in route.explorer.info.text(), timeout=60_000)
    assert run.status in ("running", "paused") and route.explorer.map is not None
    live = route.explorer.map["xy"]
    win.training.session.resume()
    wait_done(qtbot, win, run)
    assert run.status == "finished", win.training.errors
    qtbot.waitUntil(lambda: "run 1 · step 12" in route.explorer.info.text(), timeout=10_000)
    assert not np.array_equal(route.explorer.map["xy"], live)  # trained on: it moved
    assert len(route.explorer.map["labels"]) == 83
    assert route.explorer.search("e")
