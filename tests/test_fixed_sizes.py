"""Fixed and symbolic sizes alike (issue 16 §2): attention on a fixed sequence length, a
text source whose T is its block_size, symbols unified with numbers, no silent truncation."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from engine.base.errors import GraphError, WiregradError
from engine.core import registry
from engine.core.compile import compile_document
from engine.core.registry import TensorType
from engine.core.run import Executor, init_weights
from engine.graphs.presets import presets_dir
from engine.ops.shape import unify_target
from tests.helpers import doc_of, e, n

VOCAB = "abcdefgh"


def _attention(shape, **params) -> dict:
    nodes = [n("x", "input", shape=shape),
             n("attn", "MultiHeadSelfAttention", embed_dim=32, num_heads=4, **params)]
    return doc_of(nodes, [e("x:out", "attn:x")])


@pytest.mark.parametrize("shape", [["B", 8, 32], ["B", "T", 32]])
def test_attention_validates_and_runs_with_fixed_and_symbolic_lengths(shape):
    program = compile_document(_attention(shape, bias=True), "float64")
    assert program.ok, [d.message for d in program.diagnostics]
    out = program.node_outputs["attn"][0]
    assert list(program.values[out].shape) == shape
    weights = init_weights(program.parameters, 0, np.float64)
    x = np.random.default_rng(0).standard_normal((3, 8, 32))
    tape = Executor(program, "float64").forward({"x": x}, weights)
    assert tape.values[out].shape == (3, 8, 32)


def _old_attention_doc() -> dict:
    """Saved documents embed their layers' definitions; the old one reshaped to B×T×…."""
    old = copy.deepcopy(registry.get("MultiHeadSelfAttention").layer)
    for node in old["nodes"]:
        if node["id"] == "split_heads":
            node["params"]["shape"] = ["B", "T", 3, "$num_heads", -1]
        if node["id"] == "concat_heads":
            node["params"]["shape"] = ["B", "T", "$embed_dim"]
    doc = _attention(["B", 8, 32])
    doc["layers"] = {"MultiHeadSelfAttention": old}
    return doc


def test_an_old_attention_definition_exports_with_a_fixed_length():
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from engine.core.inference import extract_model
    from engine.export.onnx_export import build_onnx
    from engine.export.torch_codegen import _reshape_target

    model = extract_model(_old_attention_doc())
    weights = init_weights(model.program.parameters, 0, np.float32)
    proto = build_onnx(model, weights)
    x = np.random.default_rng(2).standard_normal((2, 8, 32)).astype(np.float32)
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    tape = Executor(model.program, "float32").forward({"x": x}, weights)
    want = tape.values[model.program.node_outputs["attn"][0]]
    np.testing.assert_allclose(got, want, atol=1e-5)
    split = next(eq for eq in model.program.equations if eq.path.endswith("split_heads"))
    assert _reshape_target("h", split).split(", ")[1:] == ["8", "3", "4", "-1"]


def test_a_document_with_the_old_attention_definition_still_opens_with_a_fixed_length():
    doc = _old_attention_doc()
    program = compile_document(doc, "float64")
    assert program.ok, [d.message for d in program.diagnostics]
    weights = init_weights(program.parameters, 0, np.float64)
    new = compile_document(_attention(["B", 8, 32]), "float64")
    x = np.random.default_rng(1).standard_normal((2, 8, 32))
    got = Executor(program, "float64").forward({"x": x}, weights)
    want = Executor(new, "float64").forward({"x": x}, weights)
    out = program.node_outputs["attn"][0]
    np.testing.assert_allclose(got.values[out], want.values[new.node_outputs["attn"][0]])


def test_reshape_unifies_a_symbol_with_a_fixed_size():
    assert unify_target(("B", 16, 8), ["B", "T", 4, -1]) == ["B", 16, 4, -1]
    assert unify_target(("B", 16, 8), ["B", "T", 4, -1], actual=(2, 5, 8)) == ["B", 5, 4, -1]
    assert unify_target(("B", "T", 8), ["B", -1]) == ["B", -1]  # nothing to unify
    spec = registry.get("reshape")
    out = spec.infer([TensorType(("B", 16, 8), "float")], {"shape": ["B", "T", 4, -1]})
    assert out[0].shape == ("B", 16, 4, 2)


def _text_doc(tmp_path, block: int, logits_shape) -> dict:
    (tmp_path / "c.txt").write_text("abcdefgh" * 40)
    nodes = [n("text", "text_corpus", source="file", path="c.txt", vocab=VOCAB,
               block_size=block),
             n("logits", "input", shape=logits_shape), n("loss", "cross_entropy")]
    return doc_of(nodes, [e("logits:out", "loss:logits"), e("text:targets", "loss:labels")])


def test_text_corpus_length_is_its_block_size(tmp_path):
    program = compile_document(_text_doc(tmp_path, 16, ["B", 16, len(VOCAB)]))
    assert program.ok, [d.message for d in program.diagnostics]
    assert [tuple(program.values[v].shape) for v in program.node_outputs["text"]] == \
        [("B", 16), ("B", 16)]


def test_a_length_mismatch_is_an_error_naming_the_ports(tmp_path):
    with pytest.raises(GraphError, match=r"\['B', 20\]\), got \['B', 16\]") as err:
        compile_document(_text_doc(tmp_path, 16, ["B", 20, len(VOCAB)]))
    first = err.value.diagnostics[0]
    assert (first.node, first.port) == ("loss", "labels")


def test_windows_of_another_length_are_refused_not_truncated(tmp_path):
    program = compile_document(_text_doc(tmp_path, 16, ["B", 16, len(VOCAB)]))
    windows = np.zeros((2, 20), np.int64)
    logits = np.zeros((2, 16, len(VOCAB)))
    with pytest.raises(WiregradError, match="block_size = 16") as err:
        Executor(program, "float64").forward({"text": (windows, windows), "logits": logits}, {})
    assert err.value.node == "text" and err.value.port == "tokens"


@pytest.mark.parametrize("path", sorted(presets_dir().glob("*.json")), ids=lambda p: p.stem)
def test_every_preset_still_compiles(path):
    program = compile_document(json.loads(path.read_text()))
    assert program.ok, [d.message for d in program.diagnostics]
