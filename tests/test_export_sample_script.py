"""A PyTorch project of a text model carries its tokenizer (``tokenizer.json``) and a
``sample.py`` that continues a prompt with torch and ``tokenizers`` alone, as
`wiregrad sample` does (greedy, and seeded sampling while the text fits one block)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tokenizers

from engine.cli import main
from engine.data.tokenizers import from_params
from engine.graphs import presets

pytest.importorskip("torch")
pytest.importorskip("safetensors")

pytestmark = pytest.mark.torch

PROMPT = "ROMEO:\nBut soft, what"
TEXT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n"


def _project(preset: str, tmp_path, capsys):
    out = tmp_path / preset
    assert main(["export", preset, "--format", "torch", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tokenizer.json" in printed
    return out


def _script(folder, *args: str) -> str:
    done = subprocess.run([sys.executable, str(folder / "sample.py"), *args], cwd=folder,
                          capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wiregrad(preset: str, capsys, *args: str) -> str:
    assert main(["sample", preset, *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("preset,kind", [("word_gpt", "bpe"), ("char_gpt", "char")])
def test_sample_py_continues_like_wiregrad_sample(preset, kind, tmp_path, capsys):
    folder = _project(preset, tmp_path, capsys)
    hf = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    doc, _ = presets.load(preset)
    ours = from_params(next(n for n in doc["nodes"] if n["type"] == "text_corpus")["params"])
    assert hf.encode(TEXT).ids == ours.encode(TEXT).tolist()
    assert hf.decode(hf.encode(TEXT).ids) == TEXT
    greedy = ["--prompt", PROMPT, "-n", "8", "--temperature", "0"]
    text = _script(folder, *greedy)
    assert text.startswith(PROMPT) and len(text) > len(PROMPT) + 3
    continuation = text[len(PROMPT):].removesuffix("\n")
    assert hf.decode(hf.encode(continuation).ids) == continuation  # whole text, round trip
    assert text == _wiregrad(preset, capsys, *greedy)
    if kind == "bpe":  # the same seeded draws as wiregrad sample
        seeded = ["--prompt", PROMPT, "-n", "8", "--temperature", "0.8", "--seed", "3",
                  "--top-k", "40", "--no-echo"]
        assert _script(folder, *seeded) == _wiregrad(preset, capsys, *seeded)
    else:  # a character outside the vocabulary: a clear error, exit 2
        done = subprocess.run([sys.executable, str(folder / "sample.py"), "--prompt", "日本"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 2
        assert "cannot be encoded by this char tokenizer" in done.stderr
        assert "'日本'" in done.stderr and "[UNK]" not in done.stderr  # names the characters


def test_only_text_graphs_get_a_tokenizer_and_only_language_models_sample_py(tmp_path,
                                                                              capsys):
    assert main(["export", "spiral_mlp", "--format", "torch", "--out",
                 str(tmp_path / "spiral")]) == 0
    assert not (tmp_path / "spiral" / "tokenizer.json").exists()
    assert not (tmp_path / "spiral" / "sample.py").exists()
    assert main(["export", "seq2seq_dates", "--format", "torch", "--out",
                 str(tmp_path / "dates")]) == 0
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "dates" / "tokenizer.json"))
    assert hf.id_to_token(1) == "<bos>"
    assert not (tmp_path / "dates" / "sample.py").exists()  # not a language model
