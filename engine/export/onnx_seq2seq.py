"""ONNX inference export of a seq2seq graph: an encoder model and a decoder-step model that
takes the cached state, so a user can decode with onnxruntime alone.

``encoder.onnx``: ``source`` (B, S) int64, ``source_mask`` (B, S) float → for every decoder
block ``cross_k{i}``, ``cross_v{i}`` (B, H, S, D) — the cross-attention keys/values of the
memory, computed once per input.

``decoder_step.onnx``: ``token`` (B,) int64, ``position`` (1,) int64, ``source_mask``, the
cross K/V and the self-attention cache ``past_k{i}`` / ``past_v{i}`` (B, H, t, D) → ``logits``
(B, V) and ``present_k{i}`` / ``present_v{i}`` (B, H, t + 1, D).

:data:`DECODE_SCRIPT` is the greedy loop over the two (numpy + onnxruntime only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.base.io import atomic_write_bytes, atomic_write_text
from engine.sample.seq2seq import Block, Model, Seq2SeqModel

OPSET = 17


class _Graph:
    """A tiny builder over onnx.helper: named nodes, float32 initialisers."""

    def __init__(self, name: str) -> None:
        import onnx

        self.onnx, self.h, self.name = onnx, onnx.helper, name
        self.nodes: list = []  # onnx NodeProtos
        self.inits: list = []  # onnx TensorProtos (initialisers)
        self.count = 0

    def const(self, value, dtype=np.float32) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        self.count += 1
        out = f"{op_type.lower()}{self.count}"
        self.nodes.append(self.h.make_node(op_type, inputs, [out], **attrs))
        return out

    def name_as(self, value: str, name: str) -> None:
        self.nodes.append(self.h.make_node("Identity", [value], [name]))

    def model(self, inputs: list, outputs: list):
        graph = self.h.make_graph(self.nodes, self.name, inputs, outputs, self.inits)
        return self.h.make_model(graph, opset_imports=[self.h.make_opsetid("", OPSET)])


def _tensor(g: _Graph, name: str, elem, shape: list):
    return g.h.make_tensor_value_info(name, elem, shape)


def _linear(g: _Graph, x: str, w: np.ndarray, b: np.ndarray | None) -> str:
    y = g.op("MatMul", [x, g.const(w.T)])
    return g.op("Add", [y, g.const(b)]) if b is not None else y


def _ln(g: _Graph, x: str, w, b, eps: float = 1e-5) -> str:
    c = None
    for t in (w, b):
        if t is not None:
            c = t.shape[0]
    w = np.ones(c) if w is None else w
    b = np.zeros(c) if b is None else b
    return g.op("LayerNormalization", [x, g.const(w), g.const(b)], axis=-1, epsilon=eps)


def _heads(g: _Graph, x: str, h: int, d: int) -> str:  # (B, T, C) -> (B, H, T, D)
    r = g.op("Reshape", [x, g.const([0, -1, h, d], np.int64)])
    return g.op("Transpose", [r], perm=[0, 2, 1, 3])


def _merge(g: _Graph, y: str, c: int) -> str:  # (B, H, T, D) -> (B, T, C)
    t = g.op("Transpose", [y], perm=[0, 2, 1, 3])
    return g.op("Reshape", [t, g.const([0, -1, c], np.int64)])


def _attend(g: _Graph, q: str, k: str, v: str, d: int, keep: str | None) -> str:
    s = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                     g.const(1.0 / np.sqrt(d))])
    if keep is not None:  # (B, S) float -> (B, 1, 1, S) bool
        real = g.op("Unsqueeze", [g.op("Cast", [keep], to=g.onnx.TensorProto.BOOL),
                                  g.const([1, 2], np.int64)])
        s = g.op("Where", [real, s, g.const(np.finfo(np.float32).min)])
    return g.op("MatMul", [g.op("Softmax", [s], axis=-1), v])


def _mlp(g: _Graph, b: Block, x: str) -> str:
    h = _linear(g, x, b.weight("mlp.fc.weight"), b.get("mlp.fc.bias"))
    cdf = g.op("Add", [g.const(1.0), g.op("Erf", [g.op("Mul", [h, g.const(1 / np.sqrt(2))])])])
    act = g.op("Mul", [g.op("Mul", [h, cdf]), g.const(0.5)])
    return _linear(g, act, b.weight("mlp.proj.weight"), b.get("mlp.proj.bias"))


def _mha(g, b: Block, name: str, query: str, kv: str, keep, d: int, c: int, past=None):
    """Attention *name* of block *b*; with *past* (k, v) the new K/V are appended."""
    q = _heads(g, _linear(g, query, b.weight(f"{name}.q_proj.weight"),
                          b.get(f"{name}.q_proj.bias")), b.heads, d)
    both = _linear(g, kv, b.weight(f"{name}.kv_proj.weight"), b.get(f"{name}.kv_proj.bias"))
    k = _heads(g, g.op("Slice", [both, g.const([0], np.int64), g.const([c], np.int64),
                                 g.const([2], np.int64)]), b.heads, d)
    v = _heads(g, g.op("Slice", [both, g.const([c], np.int64), g.const([2 * c], np.int64),
                                 g.const([2], np.int64)]), b.heads, d)
    if past is not None:
        k = g.op("Concat", [past[0], k], axis=2)
        v = g.op("Concat", [past[1], v], axis=2)
    y = _attend(g, q, k, v, d, keep)
    out = _linear(g, _merge(g, y, c), b.weight(f"{name}.proj.weight"), b.get(f"{name}.proj.bias"))
    return out, k, v


def encoder_model(m: Seq2SeqModel):
    """The ONNX encoder: source ids and mask → every decoder block's cross K/V."""
    g = _Graph("encoder")
    fl, i64 = g.onnx.TensorProto.FLOAT, g.onnx.TensorProto.INT64
    c = m.weight("src_emb").shape[1]
    x = g.op("Gather", [g.const(m.weight("src_emb")), "source"])
    pos = g.op("Slice", [g.const(m.weight("src_pos")), g.const([0], np.int64),
                         g.op("Shape", ["source"], start=1, end=2), g.const([0], np.int64)])
    x = g.op("Add", [x, pos])
    for b in m.encoder:
        d = c // b.heads
        h = _ln(g, x, b.get("ln1.weight"), b.get("ln1.bias"))
        y, _, _ = _mha(g, b, "attn", h, h, "source_mask" if b.masked else None, d, c)
        x = g.op("Add", [x, y])
        x = g.op("Add", [x, _mlp(g, b, _ln(g, x, b.get("ln2.weight"), b.get("ln2.bias")))])
    mem = _ln(g, x, m.param("enc_ln"), m.param("enc_ln", "bias"), m.eps["enc_ln"])
    outputs = []
    for i, b in enumerate(m.decoder):
        d = c // b.heads
        both = _linear(g, mem, b.weight("cross_attn.kv_proj.weight"),
                       b.get("cross_attn.kv_proj.bias"))
        for j, part in enumerate(("k", "v")):
            piece = g.op("Slice", [both, g.const([j * c], np.int64),
                                   g.const([(j + 1) * c], np.int64), g.const([2], np.int64)])
            g.name_as(_heads(g, piece, b.heads, d), f"cross_{part}{i}")
            outputs.append(_tensor(g, f"cross_{part}{i}", fl, ["B", b.heads, "S", d]))
    inputs = [_tensor(g, "source", i64, ["B", "S"]), _tensor(g, "source_mask", fl, ["B", "S"])]
    return g.model(inputs, outputs)


def decoder_step_model(m: Seq2SeqModel):
    """The ONNX decoder step: one token per row with the cached state → logits, new cache."""
    g = _Graph("decoder_step")
    fl, i64 = g.onnx.TensorProto.FLOAT, g.onnx.TensorProto.INT64
    c = m.weight("tgt_emb").shape[1]
    tok = g.op("Gather", [g.const(m.weight("tgt_emb")), "token"])  # (B, C)
    pos = g.op("Gather", [g.const(m.weight("tgt_pos")), "position"])  # (1, C)
    x = g.op("Unsqueeze", [g.op("Add", [tok, pos]), g.const([1], np.int64)])  # (B, 1, C)
    inputs = [_tensor(g, "token", i64, ["B"]), _tensor(g, "position", i64, [1]),
              _tensor(g, "source_mask", fl, ["B", "S"])]
    outputs = [_tensor(g, "logits", fl, ["B", m.weight("head").shape[0]])]
    for i, b in enumerate(m.decoder):
        d = c // b.heads
        for name, dims in (("cross_k", "S"), ("cross_v", "S"), ("past_k", "T"),
                           ("past_v", "T")):
            inputs.append(_tensor(g, f"{name}{i}", fl, ["B", b.heads, dims, d]))
        h = _ln(g, x, b.get("ln1.weight"), b.get("ln1.bias"))
        y, k, v = _mha(g, b, "self_attn", h, h, None, d, c, (f"past_k{i}", f"past_v{i}"))
        g.name_as(k, f"present_k{i}")
        g.name_as(v, f"present_v{i}")
        outputs += [_tensor(g, f"present_k{i}", fl, ["B", b.heads, "T1", d]),
                    _tensor(g, f"present_v{i}", fl, ["B", b.heads, "T1", d])]
        x = g.op("Add", [x, y])
        h = _ln(g, x, b.get("ln2.weight"), b.get("ln2.bias"))
        q = _heads(g, _linear(g, h, b.weight("cross_attn.q_proj.weight"),
                              b.get("cross_attn.q_proj.bias")), b.heads, d)
        y = _attend(g, q, f"cross_k{i}", f"cross_v{i}", d, "source_mask" if b.masked else None)
        y = _linear(g, _merge(g, y, c), b.weight("cross_attn.proj.weight"),
                    b.get("cross_attn.proj.bias"))
        x = g.op("Add", [x, y])
        x = g.op("Add", [x, _mlp(g, b, _ln(g, x, b.get("ln3.weight"), b.get("ln3.bias")))])
    x = _ln(g, x, m.param("dec_ln"), m.param("dec_ln", "bias"), m.eps["dec_ln"])
    logits = _linear(g, x, m.weight("head"), m.param("head", "bias"))
    g.name_as(g.op("Squeeze", [logits, g.const([1], np.int64)]), "logits")
    return g.model(inputs, outputs)


DECODE_SCRIPT = '''"""Greedy decoding of the exported seq2seq model with onnxruntime (and, for a BPE
model, the Hugging Face ``tokenizers`` package reading tokenizer.json).

    python decode.py "3rd of March, 1987"
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).parent
CFG = json.loads((HERE / "seq2seq.json").read_text(encoding="utf-8"))
ENC = ort.InferenceSession(str(HERE / "encoder.onnx"), providers=["CPUExecutionProvider"])
DEC = ort.InferenceSession(str(HERE / "decoder_step.onnx"), providers=["CPUExecutionProvider"])
if CFG.get("tokenizer") == "bpe":  # ids 0, 1, 2 = pad, begin, end; then the BPE pieces
    from tokenizers import Tokenizer

    TOKENIZER = Tokenizer.from_file(str(HERE / "tokenizer.json"))


def refuse(message: str) -> None:
    print(f"decode.py: {message}", file=sys.stderr)
    sys.exit(2)


def encode(text: str) -> list:
    if CFG.get("tokenizer") == "bpe":
        ids = TOKENIZER.encode(text).ids
    else:
        unknown = "".join(sorted(set(text) - set(CFG["vocab"])))
        if unknown:
            refuse(f"{text!r} uses characters the model does not know: {unknown!r}")
        ids = [CFG["vocab"].index(ch) + 3 for ch in text]
    limit = CFG.get("max_source_len", len(ids))
    if len(ids) > limit:
        refuse(f"an input has at most {limit} tokens; {text!r} has {len(ids)}")
    return ids


def decode(ids: list) -> str:
    if CFG.get("tokenizer") == "bpe":
        return TOKENIZER.decode(ids)
    return "".join(CFG["vocab"][i - 3] for i in ids if i >= 3)


def translate(text: str) -> str:
    if not text:
        return ""
    ids = np.array([encode(text)], np.int64)
    mask = np.ones(ids.shape, np.float32)
    cross = ENC.run(None, {"source": ids, "source_mask": mask})
    feeds = {"source_mask": mask}
    for i, (heads, d) in enumerate(CFG["decoder"]):
        feeds[f"cross_k{i}"], feeds[f"cross_v{i}"] = cross[2 * i], cross[2 * i + 1]
        feeds[f"past_k{i}"] = feeds[f"past_v{i}"] = np.zeros((1, heads, 0, d), np.float32)
    token, out = 1, []  # 1 = begin, 2 = end
    for t in range(CFG["max_steps"]):
        feeds["token"], feeds["position"] = np.array([token]), np.array([t])
        logits, *present = DEC.run(None, feeds)
        for i in range(len(CFG["decoder"])):
            feeds[f"past_k{i}"], feeds[f"past_v{i}"] = present[2 * i], present[2 * i + 1]
        token = int(logits[0].argmax())
        if token == 2:
            break
        out.append(token)
    return decode(out)


if __name__ == "__main__":
    for line in sys.argv[1:] or sys.stdin.read().splitlines():
        print(translate(line))
'''


def export_seq2seq(m: Model, folder: str | Path) -> Path:
    """Write encoder.onnx, decoder_step.onnx, seq2seq.json and decode.py into *folder*."""
    import json

    if not isinstance(m, Seq2SeqModel):
        raise WiregradError("the ONNX encoder/decoder-step export reads graphs shaped like the "
                            "seq2seq_dates preset; this graph is decoded from its program "
                            "(export its teacher-forced forward with --format onnx)",
                            node=m.logits_node)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    f32 = Seq2SeqModel(m.vocab, m.src_len, m.max_steps,
                       {k: v.astype(np.float32) for k, v in m.w.items()}, m.names, [], [],
                       m.eps)
    f32.encoder = [Block(b.prefix, b.heads, b.masked, f32.w) for b in m.encoder]
    f32.decoder = [Block(b.prefix, b.heads, b.masked, f32.w) for b in m.decoder]
    for name, proto in (("encoder", encoder_model(f32)), ("decoder_step",
                                                          decoder_step_model(f32))):
        atomic_write_bytes(folder / f"{name}.onnx", proto.SerializeToString())
    c = m.weight("tgt_emb").shape[1]
    kind = m.tokenizer.kind if m.tokenizer is not None else "char"
    cfg = {"vocab": m.vocab, "tokenizer": kind, "max_source_len": m.src_len,
           "max_steps": m.max_steps,
           "decoder": [[b.heads, c // b.heads] for b in m.decoder]}
    atomic_write_text(folder / "seq2seq.json", json.dumps(cfg))
    atomic_write_text(folder / "decode.py", DECODE_SCRIPT)
    return folder
