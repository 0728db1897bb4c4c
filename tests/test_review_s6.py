"""Review of session 6 by use: bugs found with graphs and inputs unlike the presets.

``wiregrad pack`` of a BPE model must carry the trained tokenizer in the bundle's document
(``tokenizer_data``), so the bundle decodes on a machine without the corpus / TSV file.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np

from engine import cli
from engine.base.io import save_weights
from engine.core import document
from engine.core.compile import compile_document
from engine.core.run import init_weights
from engine.graphs.parts import finish, node
from engine.graphs.seq2seq_builder import seq2seq_custom

WORDS = "one two three four five six seven eight nine zero".split()


def _tsv(path) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(60):
        ws = [WORDS[i] for i in rng.integers(0, 10, size=int(rng.integers(1, 4)))]
        lines.append(" ".join(ws) + "\t" + "".join(str((WORDS.index(w) + 1) % 10) for w in ws))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _bpe_pairs_graph(folder):
    _tsv(folder / "pairs.tsv")
    doc = seq2seq_custom(enc_layers=1, dec_layers=2, width=8, heads=2, source="file",
                         path="pairs.tsv", max_source_len=40, max_target_len=12,
                         tokenizer="bpe", vocab_size=260)
    weights = init_weights(compile_document(doc, "float32").parameters, 1,
                           np.float32)
    document.save(doc, folder / "pairs.json")
    save_weights(folder / "w.safetensors", weights)
    return folder / "pairs.json", folder / "w.safetensors"


def test_a_packed_bpe_seq2seq_bundle_decodes_without_its_tsv(tmp_path, capsys):
    graph, weights = _bpe_pairs_graph(tmp_path)
    bundle = tmp_path / "out" / "model.wgz"
    bundle.parent.mkdir()
    assert cli.main(["pack", str(graph), "--weights", str(weights), "--out", str(bundle)]) == 0
    with zipfile.ZipFile(bundle) as zf:
        packed = json.loads(zf.read("graph.json"))
    pairs = next(n for n in packed["nodes"] if n["type"] == "sequence_pairs")
    assert pairs["params"].get("tokenizer_data"), "the trained BPE is not in the bundle"
    (tmp_path / "pairs.tsv").unlink()  # the bundle travels; the TSV stays behind
    capsys.readouterr()
    assert cli.main(["sample", str(bundle), "--input", "one two", "-n", "3"]) == 0
    assert capsys.readouterr().out.endswith("\n")


def _bpe_text_graph(folder):
    (folder / "corpus.txt").write_text("der Bär schläft. Über Brücken fließt Wasser. " * 40,
                                       encoding="utf-8")
    nodes = [node("text", "text_corpus", (0, 0), source="file", path="corpus.txt",
                  block_size=8, batch_size=2, tokenizer="bpe", vocab_size=280),
             node("emb", "Embedding", (200, 0), num_embeddings=280, embedding_dim=8),
             node("head", "Linear", (400, 0), in_features=8, out_features=280),
             node("loss", "cross_entropy", (600, 0))]
    edges = [("text:tokens", "emb:ids"), ("emb:y", "head:x"), ("head:y", "loss:logits"),
             ("text:targets", "loss:labels")]
    doc = finish("bpe text", "", nodes, edges, {"steps": 1})
    weights = init_weights(compile_document(doc, "float32").parameters, 1, np.float32)
    document.save(doc, folder / "text.json")
    save_weights(folder / "w.safetensors", weights)
    return folder / "text.json", folder / "w.safetensors"


def test_a_packed_bpe_language_model_samples_without_its_corpus(tmp_path, capsys):
    graph, weights = _bpe_text_graph(tmp_path)
    bundle = tmp_path / "out" / "text.wgz"
    bundle.parent.mkdir()
    assert cli.main(["pack", str(graph), "--weights", str(weights), "--out", str(bundle)]) == 0
    (tmp_path / "corpus.txt").unlink()
    capsys.readouterr()
    assert cli.main(["sample", str(bundle), "--prompt", "Über", "-n", "4", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("Über")


def test_the_editors_save_as_bundle_carries_the_trained_bpe(tmp_path):
    """The editor's "save as bundle" (the worker's ``save_bundle``) stores the tokenizer its
    run trained, so the bundle decodes without the TSV, as ``wiregrad pack`` does."""
    from engine.worker import Worker

    graph, _ = _bpe_pairs_graph(tmp_path)
    sent: list[tuple[str, dict]] = []
    worker = Worker(conn=None)
    worker.send = lambda kind, **fields: sent.append((kind, fields))  # type: ignore[method-assign]
    worker.cmd_train({"doc": document.load(graph), "base_dir": str(tmp_path), "steps": 2,
                      "run_dir": str(tmp_path / "run")})
    bundle = tmp_path / "model.wgz"
    worker.cmd_save_bundle({"path": str(bundle)})
    assert ("saved", {"what": "bundle", "path": str(bundle), "step": 0}) in sent
    with zipfile.ZipFile(bundle) as zf:
        packed = json.loads(zf.read("graph.json"))
    pairs = next(n for n in packed["nodes"] if n["type"] == "sequence_pairs")
    assert pairs["params"].get("tokenizer_data"), "the run's trained BPE is not in the bundle"
