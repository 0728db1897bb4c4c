"""``wiregrad sample`` in the terminal: the text streams one token at a time (written and
flushed per token, as it is drawn), and ``--show-tokens`` marks where each token's text ends —
alternately normal and dim in a terminal, ``|`` between tokens in a file or pipe."""

from __future__ import annotations

import re

from engine import api
from engine.cli import main
from engine.graphs import presets
from engine.sample.sampler import DIM, NORMAL, RESET, Sampler, mark_pieces

PROMPT, N = "ROMEO:\nBut soft", 12
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal:
    """A stand-in stdout that records each write and each flush (a tty or not)."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.events = tty, []

    def write(self, text: str) -> int:
        self.events.append(("write", text))
        return len(text)

    def flush(self) -> None:
        self.events.append(("flush", ""))

    def isatty(self) -> bool:
        return self.tty

    def text(self) -> str:
        return "".join(t for kind, t in self.events if kind == "write")


def _pieces(preset: str) -> list[str]:
    doc, path = presets.load(preset)
    weights = api.load_weights_file(api.document_weights_path(doc, path))
    return list(Sampler(doc, weights).generate(PROMPT, N, temperature=0.8, seed=3))


def _sample(monkeypatch, tty: bool, *extra: str, preset: str = "word_gpt") -> Terminal:
    out = Terminal(tty)
    monkeypatch.setattr("sys.stdout", out)
    assert main(["sample", preset, "--prompt", PROMPT, "-n", str(N), "--seed", "3",
                 *extra]) == 0
    return out


def test_word_pieces_are_written_and_flushed_one_token_at_a_time(monkeypatch):
    pieces = _pieces("word_gpt")
    out = _sample(monkeypatch, tty=True)
    assert out.events[0] == ("write", PROMPT)
    streamed = out.events[1:1 + 2 * N]  # then one write + flush per token, then a newline
    assert streamed == [e for p in pieces for e in (("write", p), ("flush", ""))]
    assert len(pieces) == N and any(len(p) > 1 for p in pieces)  # word pieces, not characters
    assert out.events[1 + 2 * N] == ("write", "\n") and ANSI.search(out.text()) is None


def test_show_tokens_in_a_terminal_alternates_normal_and_dim(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    pieces = [p for p in _pieces("word_gpt") if p]
    out = _sample(monkeypatch, True, "--show-tokens", "--no-echo").text()
    assert ANSI.sub("", out) == "".join(pieces) + "\n"
    expected = "".join((DIM if i % 2 else NORMAL) + p for i, p in enumerate(pieces))
    assert out == expected + RESET + "\n"


def test_show_tokens_in_a_pipe_puts_a_bar_between_tokens(monkeypatch):
    pieces = [p for p in _pieces("char_gpt") if p]
    out = _sample(monkeypatch, False, "--show-tokens", preset="char_gpt").text()
    assert out == PROMPT + "|".join(pieces) + "\n" and len(pieces) == N
    monkeypatch.setenv("NO_COLOR", "1")  # a terminal that asked for no colours: bars too
    assert _sample(monkeypatch, True, "--show-tokens", preset="char_gpt").text() == out


def test_an_unfinished_character_gets_no_mark_of_its_own():
    assert list(mark_pieces(["a", "", "é", "b"], ansi=False)) == ["a", "", "|é", "|b"]
    assert list(mark_pieces([], ansi=True)) == []


def test_show_tokens_is_refused_for_a_seq2seq_graph(capsys):
    assert main(["sample", "seq2seq_dates", "--input", "3 March 1987", "--show-tokens"]) == 2
    assert "--show-tokens" in capsys.readouterr().err
