"""The sampling dock on the word GPT: word pieces stream in as spans, one per token, in
alternating shades; hovering a span shows its token's text, id and probability (the ids and
probabilities the engine's sampler reports)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent, QTextCursor
from PySide6.QtWidgets import QToolTip

from engine import api
from engine.sample.sampler import Sampler

pytestmark = pytest.mark.gui

PROMPT, N, SEED = "ROMEO:\nBut soft", 30, 5


def _engine_tokens(doc: dict, path: str, temperature: float) -> tuple[str, list]:
    infos: list = []
    text = "".join(Sampler(doc, api.load_weights_file(path)).generate(
        PROMPT, N, temperature=temperature, seed=SEED, callback=infos.append))
    return text, infos


def _generate(qtbot, panel, temperature: float) -> None:
    panel.prompt.setText(PROMPT)
    panel.length.setValue(N)
    panel.seed.setValue(SEED)
    panel.temperature.setValue(temperature)
    assert panel.generate()
    qtbot.waitUntil(lambda: not panel.busy, timeout=120_000)


def _shade(view, span) -> int | None:
    """The background alpha of *span*'s first character that is not a line break (None for
    a span of line breaks, which have no background to show)."""
    offset = next((i for i, c in enumerate(span.text) if c != "\n"), None)
    if offset is None:
        return None
    cursor = QTextCursor(view.document())
    cursor.setPosition(span.start + offset + 1)  # the format of the character before it
    brush = cursor.charFormat().background()
    return 0 if brush.style() == Qt.BrushStyle.NoBrush else brush.color().alpha()


def _hover(view, position: int) -> str:
    """Move the mouse onto the character at *position*; the tooltip's text."""
    cursor = QTextCursor(view.document())
    cursor.setPosition(position)
    rect = view.cursorRect(cursor)
    point = QPointF(rect.left() + 3, rect.center().y())
    event = QMouseEvent(QMouseEvent.Type.MouseMove, point, view.viewport().mapToGlobal(point),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier)
    assert view.position_under(point.toPoint()) == position
    view.mouseMoveEvent(event)
    return QToolTip.text()


def test_word_pieces_are_spans_with_their_id_and_probability_on_hover(make_window, qtbot,
                                                                      tmp_path):
    win = make_window("word_gpt")
    panel = win.training.sampling
    doc = win.controller.model.doc
    assert panel.weights_path and panel.weights_path.endswith("word_gpt.safetensors")
    _generate(qtbot, panel, 0.8)
    view = panel.output
    text, infos = _engine_tokens(doc, panel.weights_path, 0.8)
    assert view.generated_text() == text and view.word_pieces
    tokens = [t for span in view.spans for t in span.tokens]
    assert [t[1] for t in tokens] == [i.id for i in infos]  # every token, in order
    assert [t[0] for t in tokens] == [i.token for i in infos]
    # the panel samples on one BLAS thread (engine.api.sample_tokens), this Sampler on the
    # pool's: float32 logits summed in another order move a probability by ~1e-6 of itself
    assert [t[2] for t in tokens] == pytest.approx([i.probability for i in infos], rel=1e-5)
    assert len(tokens) == N and len(view.spans) < len(text)  # pieces, not characters
    assert any(len(span.text) > 1 for span in view.spans)
    start = len(PROMPT)
    for span in view.spans:  # contiguous, in document order
        assert span.start == start and view.toPlainText()[span.start:span.end] == span.text
        start = span.end
    shades = [(i % 2, _shade(view, span)) for i, span in enumerate(view.spans)]
    assert {shade for odd, shade in shades if shade is not None} == {70, 140}
    assert all(shade == (140 if odd else 70) for odd, shade in shades if shade is not None)
    piece = next(s for s in view.spans if len(s.text.strip()) > 2)
    label, token_id, p, _ = piece.tokens[0]
    for position in range(piece.start, piece.end):  # the whole span answers with its token
        tip = view.describe(position)
        assert f"token id {token_id}" in tip and f"p = {p:.1%}" in tip
        assert repr(label) in tip and "alternatives" in tip
    assert view.describe(len(PROMPT) - 1) is None  # the prompt is no token of the output
    tip = _hover(view, piece.start + 1)
    assert f"token id {token_id}" in tip
    assert "word pieces generated" in panel.status.text()
    panel.grab().save(str(tmp_path / "sampling-word-pieces.png"))


def test_greedy_word_pieces_show_the_models_probability(make_window, qtbot):
    win = make_window("word_gpt")
    panel = win.training.sampling
    _generate(qtbot, panel, 0.0)
    view = panel.output
    text, infos = _engine_tokens(win.controller.model.doc, panel.weights_path, 0.0)
    assert view.generated_text() == text
    first = view.spans[0]
    label, token_id, p, alts = first.tokens[0]
    assert token_id == infos[0].id and alts[0][0] == label  # greedy: the likeliest
    assert 0 < p < 1 and p == pytest.approx(alts[0][1])  # the model's own probability
    tip = view.describe(first.start)
    assert "greedy" in tip and f"token id {token_id}" in tip and f"p = {p:.1%}" in tip
    shades = [(i % 2, _shade(view, span)) for i, span in enumerate(view.spans)]
    assert all(shade == (60 if odd else 0) for odd, shade in shades if shade is not None)
    assert {shade for _, shade in shades} >= {0, 60}  # faint blue on every other piece only
