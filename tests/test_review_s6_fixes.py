"""Fixes for the session-6 review (seq2seq / tokenizers): each test failed before its fix."""

from __future__ import annotations

import argparse

from engine.data.sequence_pairs import read_lines
from engine.data.text import read_text_file
from engine.sample.seq2seq_command import _inputs

BOM = "\ufeff"


def test_a_utf8_bom_is_not_part_of_the_first_pair(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_text(BOM + "ab\tba\ncd\tdc\n", encoding="utf-8")
    assert read_lines(path, "pairs")[0] == (1, "ab", "ba")


def test_a_utf8_bom_is_not_part_of_a_text_corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(BOM + "hello", encoding="utf-8")
    assert read_text_file(path, "text") == "hello"


def test_a_utf8_bom_is_not_part_of_the_first_input_line(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text(BOM + "one two\nthree\n", encoding="utf-8")
    args = argparse.Namespace(input=None, input_file=str(path))
    assert _inputs(args) == ["one two", "three"]
