"""The ONNX inference export of a seq2seq graph (encoder + decoder step with the cached state)
decodes like Wiregrad: the shipped decode.py with onnxruntime alone gives the same outputs,
and each step's logits match the cached decoder's."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from engine.core.compile import compile_document
from engine.core.run import init_weights
from engine.export.onnx_seq2seq import export_seq2seq
from engine.graphs.seq2seq_builder import seq2seq_dates
from engine.sample import seq2seq as S
from engine.sample import seq2seq_search as search

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
TEXTS = ["3rd of March, 1987", "03/03/87", "Tuesday, 3rd of March 1987"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    doc = seq2seq_dates(layers=2, width=16, heads=2, n_train=100)
    rng = np.random.default_rng(2)
    weights = init_weights(compile_document(doc, "float32").parameters, 2, np.float32)
    weights = {k: v + rng.uniform(-0.3, 0.3, v.shape).astype(np.float32)
               for k, v in weights.items()}
    model = S.load_model(doc, weights, np.float32)
    folder = export_seq2seq(model, tmp_path_factory.mktemp("onnx") / "dates")
    return model, folder


def test_the_exported_models_pass_the_checker(exported):
    _, folder = exported
    for name in ("encoder", "decoder_step"):
        onnx.checker.check_model(onnx.load(str(folder / f"{name}.onnx")), full_check=True)


def test_decode_py_with_onnxruntime_alone_matches_wiregrad(exported):
    model, folder = exported
    spec = importlib.util.spec_from_file_location("s2s_decode", folder / "decode.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert [script.translate(t) for t in TEXTS] == search.translate(model, TEXTS)


def test_step_logits_match_the_cached_decoder(exported):
    model, folder = exported
    enc = ort.InferenceSession(str(folder / "encoder.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / "decoder_step.onnx"),
                               providers=["CPUExecutionProvider"])
    ids, mask = S.encode_texts(model, TEXTS)  # padded batch: the mask matters
    mask = mask.astype(np.float32)
    cross = enc.run(None, {"source": ids, "source_mask": mask})
    state = S.start(model, S.encode(model, ids, mask))
    feeds = {"source_mask": mask}
    for i, b in enumerate(model.decoder):
        d = model.param("tgt_emb").shape[1] // b.heads
        feeds[f"cross_k{i}"], feeds[f"cross_v{i}"] = cross[2 * i], cross[2 * i + 1]
        feeds[f"past_k{i}"] = feeds[f"past_v{i}"] = np.zeros((3, b.heads, 0, d), np.float32)
    tokens = np.full(3, 1, np.int64)
    for t in range(model.max_steps):
        feeds["token"], feeds["position"] = tokens, np.array([t])
        logits, *present = dec.run(None, feeds)
        ours = S.step(model, state, tokens)
        np.testing.assert_allclose(logits, ours, rtol=1e-4, atol=1e-4)
        for i in range(len(model.decoder)):
            feeds[f"past_k{i}"], feeds[f"past_v{i}"] = present[2 * i], present[2 * i + 1]
        tokens = ours.argmax(-1)


def test_wiregrad_export_onnx_decoder_writes_the_folder(tmp_path, capsys):
    from engine.cli import main
    from engine.core import document

    doc = seq2seq_dates(layers=1, width=16, heads=2, n_train=100)
    document.save(doc, tmp_path / "s2s.json")
    assert main(["export", str(tmp_path / "s2s.json"), "--format", "onnx-decoder", "--out",
                 str(tmp_path / "out")]) == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "encoder.onnx", "decoder_step.onnx", "seq2seq.json", "decode.py", "tokenizer.json"}
    assert main(["export", "spiral_mlp", "--format", "onnx-decoder", "--out",
                 str(tmp_path / "bad")]) == 2
    assert "not a sequence-to-sequence model" in capsys.readouterr().err
