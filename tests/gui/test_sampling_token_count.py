"""The sampling panel counts the tokens generated, not the spans: the byte-level tokens of a
split character share one span with the token that completes it."""

from __future__ import annotations

import pytest

from nodegraph.training.sampling import SamplingPanel

pytestmark = pytest.mark.gui


def test_the_status_counts_every_token_of_a_split_character(qtbot):
    panel = SamplingPanel(lambda: None)
    qtbot.addWidget(panel)
    view = panel.output
    view.start("x", word_pieces=True)
    view.append_token("", 0.5, [], "\\xc3", 195)  # the first byte of "é": shown with the next
    view.append_token("é", 0.5, [], "\\xa9", 169)
    view.append_token(" bon", 0.5, [], " bon", 300)
    view.append_token("", 0.5, [], "\\xe2", 226)  # a character left unfinished at the end
    panel._finished()
    assert panel.status.text().startswith("4 word pieces generated")
    assert len(view.spans) == 2 and view.token_count == 4
