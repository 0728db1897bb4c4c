"""MultiHeadAttention, TransformerEncoderBlock and TransformerDecoderBlock with key padding
masks match PyTorch's nn.MultiheadAttention / nn.Transformer{Encoder,Decoder}Layer
(norm_first=True) in float64 — outputs, input gradients and every parameter gradient — and a
padded source position changes no output."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import GraphError
from engine.core.compile import compile_document
from engine.core.run import Executor
from tests.helpers import doc_of, e, n

C, H = 8, 2
MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], np.float64)


def _run(doc: dict, feeds: dict, seed: int = 5):
    """(program, executor, weights, tape) of *doc* in float64 with uniform(±0.5) weights."""
    program = compile_document(doc, "float64")
    ex = Executor(program, "float64")
    rng = np.random.default_rng(seed)
    weights = {k: rng.uniform(-0.5, 0.5, v.shape) for k, v in program.parameters.items()}
    return program, ex, weights, ex.forward(feeds, weights, {}, training=True, seed=0)


def _stack_doc() -> dict:
    return doc_of([n("src", "input", shape=["B", "S", C]), n("tgt", "input", shape=["B", "T", C]),
                   n("mask", "input", shape=["B", "S"]),
                   n("enc", "TransformerEncoderBlock", embed_dim=C, num_heads=H, mlp_ratio=2),
                   n("dec", "TransformerDecoderBlock", embed_dim=C, num_heads=H, mlp_ratio=2)],
                  [e("src:out", "enc:x"), e("mask:out", "enc:key_mask"), e("tgt:out", "dec:x"),
                   e("enc:y", "dec:memory"), e("mask:out", "dec:memory_mask")])


def test_a_padded_source_position_changes_no_output():
    rng = np.random.default_rng(0)
    src, tgt = rng.standard_normal((3, 6, C)), rng.standard_normal((3, 4, C))
    program, ex, weights, tape = _run(_stack_doc(), {"src": src, "tgt": tgt, "mask": MASK})
    enc, dec = program.node_outputs["enc"][0], program.node_outputs["dec"][0]
    src2 = src.copy()
    src2[0, 4:] += 3.0
    src2[2, 2:] = rng.standard_normal((4, C))
    tape2 = ex.forward({"src": src2, "tgt": tgt, "mask": MASK}, weights, {}, training=True)
    np.testing.assert_array_equal(tape2.values[dec], tape.values[dec])
    real = MASK.astype(bool)
    np.testing.assert_array_equal(tape2.values[enc][real], tape.values[enc][real])
    src2[1, 5] += 0.1  # a real source position does change the output
    tape3 = ex.forward({"src": src2, "tgt": tgt, "mask": MASK}, weights, {}, training=True)
    assert not np.allclose(tape3.values[dec][1], tape.values[dec][1])


def test_the_mask_is_refused_when_its_shape_is_wrong():
    doc = _stack_doc()
    doc["nodes"][2]["params"]["shape"] = ["B", 5]
    doc["nodes"][0]["params"]["shape"] = ["B", 6, C]
    with pytest.raises(GraphError, match=r"node 'enc', port 'key_mask'.*key padding mask must "
                                         r"be \(B, Tk\)"):
        compile_document(doc, "float64")


# ------------------------------------------------------------------ PyTorch parity

def _torch():
    return pytest.importorskip("torch")


def _copy_attention(weights: dict, prefix: str, mha) -> dict:
    """Load our q_proj / kv_proj / proj into a torch nn.MultiheadAttention; returns the map
    from our parameter names to (torch parameter, row slice)."""
    torch = _torch()
    q_w, kv_w = weights[f"{prefix}.q_proj.weight"], weights[f"{prefix}.kv_proj.weight"]
    q_b, kv_b = weights[f"{prefix}.q_proj.bias"], weights[f"{prefix}.kv_proj.bias"]
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.from_numpy(np.concatenate([q_w, kv_w])))
        mha.in_proj_bias.copy_(torch.from_numpy(np.concatenate([q_b, kv_b])))
        mha.out_proj.weight.copy_(torch.from_numpy(weights[f"{prefix}.proj.weight"]))
        mha.out_proj.bias.copy_(torch.from_numpy(weights[f"{prefix}.proj.bias"]))
    return {f"{prefix}.q_proj.weight": (mha.in_proj_weight, slice(0, C)),
            f"{prefix}.kv_proj.weight": (mha.in_proj_weight, slice(C, 3 * C)),
            f"{prefix}.q_proj.bias": (mha.in_proj_bias, slice(0, C)),
            f"{prefix}.kv_proj.bias": (mha.in_proj_bias, slice(C, 3 * C)),
            f"{prefix}.proj.weight": (mha.out_proj.weight, slice(None)),
            f"{prefix}.proj.bias": (mha.out_proj.bias, slice(None))}


def _copy_plain(weights: dict, pairs: dict) -> dict:
    torch = _torch()
    out = {}
    with torch.no_grad():
        for ours, tp in pairs.items():
            tp.copy_(torch.from_numpy(weights[ours]))
            out[ours] = (tp, slice(None))
    return out


def _compare(program, wgrads, mapping):
    assert set(mapping) == set(program.parameters)
    for ours, (tp, rows) in mapping.items():
        np.testing.assert_allclose(wgrads[ours], tp.grad.numpy()[rows], rtol=1e-9, atol=1e-11,
                                   err_msg=ours)


@pytest.mark.torch
def test_cross_attention_matches_torch_multihead_attention():
    torch = _torch()
    rng = np.random.default_rng(1)
    doc = doc_of([n("q", "input", shape=["B", "T", C]), n("kv", "input", shape=["B", "S", C]),
                  n("mask", "input", shape=["B", "S"]),
                  n("mha", "MultiHeadAttention", embed_dim=C, num_heads=H,
                    key_padding_mask=True)],
                 [e("q:out", "mha:query"), e("kv:out", "mha:key_value"),
                  e("mask:out", "mha:key_mask")])
    q, kv = rng.standard_normal((3, 4, C)), rng.standard_normal((3, 6, C))
    program, ex, weights, tape = _run(doc, {"q": q, "kv": kv, "mask": MASK})
    out = program.node_outputs["mha"][0]
    g = rng.standard_normal(tape.values[out].shape)
    wgrads, vgrads = ex.backward(tape, {out: g})

    mha = torch.nn.MultiheadAttention(C, H, batch_first=True, dtype=torch.float64)
    mapping = _copy_attention(weights, "mha", mha)
    tq, tkv = torch.tensor(q, requires_grad=True), torch.tensor(kv, requires_grad=True)
    ty, _ = mha(tq, tkv, tkv, key_padding_mask=torch.from_numpy(MASK == 0), need_weights=False)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(tape.values[out], ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vgrads["q:out"], tq.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(vgrads["kv:out"], tkv.grad.numpy(), rtol=1e-9, atol=1e-11)
    _compare(program, wgrads, mapping)


def _norms_and_ff(weights: dict, prefix: str, layer, norms: list[str]) -> dict:
    pairs = {f"{prefix}.mlp.fc.weight": layer.linear1.weight,
             f"{prefix}.mlp.fc.bias": layer.linear1.bias,
             f"{prefix}.mlp.proj.weight": layer.linear2.weight,
             f"{prefix}.mlp.proj.bias": layer.linear2.bias}
    for i, name in enumerate(norms, start=1):
        norm = getattr(layer, f"norm{i}")
        pairs[f"{prefix}.{name}.weight"] = norm.weight
        pairs[f"{prefix}.{name}.bias"] = norm.bias
    return _copy_plain(weights, pairs)


@pytest.mark.torch
def test_encoder_and_decoder_blocks_match_torch_layers():
    torch = _torch()
    rng = np.random.default_rng(2)
    src, tgt = rng.standard_normal((3, 6, C)), rng.standard_normal((3, 4, C))
    program, ex, weights, tape = _run(_stack_doc(), {"src": src, "tgt": tgt, "mask": MASK})
    out = program.node_outputs["dec"][0]
    g = rng.standard_normal(tape.values[out].shape)
    wgrads, vgrads = ex.backward(tape, {out: g})

    kw = dict(d_model=C, nhead=H, dim_feedforward=2 * C, dropout=0.0, activation="gelu",
              batch_first=True, norm_first=True, dtype=torch.float64)
    enc, dec = torch.nn.TransformerEncoderLayer(**kw), torch.nn.TransformerDecoderLayer(**kw)
    mapping = {**_copy_attention(weights, "enc.attn", enc.self_attn),
               **_copy_attention(weights, "dec.self_attn", dec.self_attn),
               **_copy_attention(weights, "dec.cross_attn", dec.multihead_attn),
               **_norms_and_ff(weights, "enc", enc, ["ln1", "ln2"]),
               **_norms_and_ff(weights, "dec", dec, ["ln1", "ln2", "ln3"])}
    pad = torch.from_numpy(MASK == 0)
    tsrc, ttgt = torch.tensor(src, requires_grad=True), torch.tensor(tgt, requires_grad=True)
    memory = enc(tsrc, src_key_padding_mask=pad)
    ty = dec(ttgt, memory, tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(
        4, dtype=torch.float64), tgt_is_causal=True, memory_key_padding_mask=pad)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(tape.values[out], ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vgrads["tgt:out"], ttgt.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(vgrads["src:out"], tsrc.grad.numpy(), rtol=1e-9, atol=1e-11)
    _compare(program, wgrads, mapping)
