"""A BPE seq2seq graph end to end through ONNX: a preset-shaped encoder–decoder over a TSV with
``tokenizer: bpe``, exported by ``wiregrad export --format onnx-decoder``, decodes with the
folder's own ``decode.py`` (onnxruntime + ``tokenizers``, reading ``tokenizer.json``) to the
text ``wiregrad sample GRAPH --input TEXT`` prints."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from engine.base.io import save_weights
from engine.cli import main
from engine.core import document
from engine.core.compile import compile_document
from engine.core.run import init_weights
from engine.graphs.seq2seq_builder import seq2seq_dates

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ["twenty one", "thirty two", "forty three", "fifty four", "sixty five", "zwölf",
         "éclair", "eighty seven", "ninety eight", "one hundred", "eleven", "thirteen"]
INPUTS = ["twelve eleven", "forty three zwölf", "éclair one hundred", "thirty two sixty five"]
VOCAB = 300


def _bpe_seq2seq(folder) -> dict:
    """The preset's shape (1 + 1 blocks, 16 wide) over a TSV of word pairs, BPE tokens."""
    pairs = [f"{a} {b}\t{b.upper()} {a}\n" for a in WORDS for b in WORDS]
    (folder / "pairs.tsv").write_text("".join(pairs), encoding="utf-8")
    doc = seq2seq_dates(layers=1, width=16, heads=2, batch=8, n_train=100)
    v = 3 + VOCAB
    sizes = {"src_emb": {"num_embeddings": v}, "tgt_emb": {"num_embeddings": v},
             "head": {"out_features": v}, "src_pos": {"block_size": 24},
             "tgt_pos": {"block_size": 25},
             "pairs": {"source": "file", "path": "pairs.tsv", "tokenizer": "bpe",
                       "vocab_size": VOCAB, "max_source_len": 24, "max_target_len": 24,
                       "n_val": 20}}
    for n in doc["nodes"]:
        n["params"].update(sizes.get(n["id"], {}))
    return doc


@pytest.fixture(scope="module", params=["trained", "random"])
def exported(request, tmp_path_factory):
    """(graph path, weights path, the onnx-decoder folder) for weights trained 150 steps by
    ``wiregrad train`` (whole pieces: "THIRTY", " ONE") and for random ones spread wide enough
    that greedy decoding writes stray bytes (cut-off characters become U+FFFD)."""
    folder = tmp_path_factory.mktemp(f"bpe_s2s_{request.param}")
    doc = _bpe_seq2seq(folder)
    graph = folder / "pairs_graph.json"
    document.save(doc, graph)
    weights = folder / "w.safetensors"
    if request.param == "trained":
        assert main(["train", str(graph), "--steps", "150", "--seed", "1", "--out",
                     str(folder / "run")]) == 0
        weights = folder / "run" / "weights.safetensors"
    else:
        rng = np.random.default_rng(5)
        arrays = init_weights(compile_document(doc, "float32").parameters, 5, np.float32)
        save_weights(weights, {k: v + rng.uniform(-0.3, 0.3, v.shape).astype(np.float32)
                               for k, v in arrays.items()})
    out = folder / "onnx"
    # run from elsewhere: the TSV path is relative to the graph's folder, not the cwd
    assert main(["export", str(graph), "--weights", str(weights), "--format", "onnx-decoder",
                 "--out", str(out)]) == 0
    return graph, weights, out


def _wiregrad_sample(graph, weights, text: str, capsys) -> str:
    capsys.readouterr()
    assert main(["sample", str(graph), "--weights", str(weights), "--input", text]) == 0
    return capsys.readouterr().out.removesuffix("\n")


def test_decode_py_with_the_exported_tokenizer_prints_what_wiregrad_sample_prints(
        exported, capsys):
    graph, weights, out = exported
    ours = [_wiregrad_sample(graph, weights, text, capsys) for text in INPUTS]
    assert len(set(ours)) >= 3 and all(len(o) > 3 for o in ours)  # not degenerate
    script = subprocess.run([sys.executable, str(out / "decode.py"), *INPUTS],
                            capture_output=True, text=True, encoding="utf-8", cwd=out.parent,
                            check=False)
    assert script.returncode == 0, script.stderr
    assert script.stdout.splitlines() == ours


def test_decode_py_reads_the_exported_tokenizer_and_no_wiregrad(exported):
    _, _, out = exported
    source = (out / "decode.py").read_text(encoding="utf-8")
    assert "engine" not in source and "tokenizer.json" in source
    hf = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    assert [hf.id_to_token(i) for i in range(3)] == ["<pad>", "<bos>", "<eos>"]
    assert hf.decode(hf.encode(INPUTS[1]).ids) == INPUTS[1]


def test_decode_py_refuses_an_input_longer_than_the_source_side(exported):
    _, _, out = exported
    script = subprocess.run([sys.executable, str(out / "decode.py"), " ".join(WORDS * 3)],
                            capture_output=True, text=True, encoding="utf-8", check=False)
    assert script.returncode == 2
    assert "at most 24 tokens" in script.stderr and "Traceback" not in script.stderr
