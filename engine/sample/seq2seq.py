"""Decoding an encoder–decoder graph: the encoder once per input, then the decoder one token
at a time with a KV cache for its self-attention and the cross-attention keys/values of the
encoder output computed once.

Two readers, one interface (:func:`encode`, :func:`start`, :func:`step`, ``state.select``):

* a graph shaped exactly like the ``seq2seq_dates`` preset (the layers of
  :mod:`engine.layers.encoder_decoder`: ``sequence_pairs`` → source Embedding →
  PositionalEmbedding → TransformerEncoderBlock × N → LayerNorm (the memory), and target_in →
  Embedding → PositionalEmbedding → TransformerDecoderBlock × M → LayerNorm → Linear → the
  loss, nothing else upstream of the logits) is decoded by the hand-fused arithmetic below
  (:class:`Seq2SeqModel`, the fast path the bench and the ONNX decoder export read);
* any other encoder–decoder graph by its compiled program
  (:class:`engine.sample.seq2seq_graph.GraphSeq2Seq`): the encoder equations once, the decoder
  equations token by token with KV caches, or full recomputation where that is not possible.

Either way the logits equal a full forward pass of the document (float64 to ~1e-12; checked
token by token by the tests). Tokens come from the data node's tokenizer (characters or BPE;
:mod:`engine.data.pair_tokenizer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.core import registry
from engine.data.pair_tokenizer import PairTokenizer
from engine.data.sequence_pairs import tokenizer_for
from engine.ops.seq2seq import BOS, EOS
from engine.sample import decoder_fused
from engine.sample.seq2seq_graph import GraphSeq2Seq
from engine.sample.seq2seq_math import (
    _attention_proj,
    _heads,
    _linear,
    _ln,
    _ln_of,
    _mlp,
    _out_proj,
    attend,
)
from engine.sample.seq2seq_state import GraphMemory, GraphState


@dataclass
class Block:
    """One encoder or decoder block: its parameters by inner name and its sizes."""

    prefix: str
    heads: int
    masked: bool
    w: dict[str, np.ndarray]

    def get(self, name: str) -> np.ndarray | None:
        return self.w.get(f"{self.prefix}.{name}")

    def weight(self, name: str) -> np.ndarray:
        """A parameter the block cannot run without; a clear error naming it when absent."""
        return _required(self.w, f"{self.prefix}.{name}", self.prefix)


@dataclass
class Seq2SeqModel:
    """The weights of a seq2seq graph, arranged for encoding and step-by-step decoding."""

    vocab: str
    src_len: int
    max_steps: int
    w: dict[str, np.ndarray]
    names: dict[str, str]  # role -> node id (src_emb, src_pos, enc_ln, tgt_emb, ...)
    encoder: list[Block] = field(default_factory=list)
    decoder: list[Block] = field(default_factory=list)
    eps: dict[str, float] = field(default_factory=dict)
    tokenizer: PairTokenizer | None = None
    decoding: str = ("preset layers: the encoder runs once, decoder self-attention keeps its "
                     "keys and values, cross-attention keys/values of the memory are cached")

    def param(self, role: str, name: str = "weight") -> np.ndarray | None:
        return self.w.get(f"{self.names[role]}.{name}")

    def weight(self, role: str, name: str = "weight") -> np.ndarray:
        """A parameter the model cannot run without; a clear error naming it when absent."""
        return _required(self.w, f"{self.names[role]}.{name}", self.names[role])


def _required(w: dict[str, np.ndarray], key: str, node: str) -> np.ndarray:
    value = w.get(key)
    if value is None:
        raise WiregradError(f"the weights lack '{key}'", node=node)
    return value


# ------------------------------------------------------------------ reading the graph


def _edges_from(doc: dict, src: str) -> list[tuple[str, str]]:
    """(node, port) pairs that the output ``src`` ("node:port") feeds."""
    node, port = src.split(":")
    return [(e["dst"]["node"], e["dst"]["port"]) for e in doc["edges"]
            if e["src"]["node"] == node and e["src"]["port"] == port]


def _follow(doc: dict, nodes: dict, src: str, want: str, port: str | None = None) -> str:
    """The node of type *want* fed by *src* (on *port*), or a clear error."""
    hits = [n for n, p in _edges_from(doc, src) if nodes[n]["type"] == want
            and (port is None or p == port)]
    if len(hits) != 1:
        raise WiregradError(f"seq2seq decoding expects '{src}' to feed one {want} "
                            f"(found {len(hits)})", node=src.split(":")[0])
    return hits[0]


def _chain(doc: dict, nodes: dict, src: str, block: str) -> tuple[list[str], str]:
    """Follow a chain of *block* layers from *src*; returns (their ids, the last output)."""
    ids: list[str] = []
    while True:
        nxt = [n for n, p in _edges_from(doc, src) if nodes[n]["type"] == block and p == "x"]
        if not nxt:
            return ids, src
        ids.append(nxt[0])
        src = f"{nxt[0]}:y"


def _params(node: dict) -> dict:
    return {**registry.get(node["type"]).defaults(), **node.get("params", {})}


Model = Seq2SeqModel | GraphSeq2Seq


def load_model(doc: dict, weights: dict[str, np.ndarray], dtype=np.float64,
               base: str | Path | None = None) -> Model:
    """The decoder of *doc* with *weights* (by parameter name): the preset-shaped fast path
    when the graph is exactly that shape, else the graph's own program. *base* is the folder
    a BPE node's TSV path is relative to (only needed when the document does not store its
    trained tokenizer)."""
    data = [n for n in doc["nodes"] if n["type"] == "sequence_pairs"]
    if len(data) != 1:
        raise WiregradError("this graph is not a sequence-to-sequence model: it needs one "
                            "sequence_pairs data source", field="nodes")
    tok = tokenizer_for(_params(data[0]), Path(base) if base is not None else None,
                        data[0]["id"])
    try:
        return _preset_model(doc, weights, dtype, tok)
    except WiregradError:  # not shaped like the preset: read the compiled graph instead
        return GraphSeq2Seq(doc, weights, dtype, tok)


def _upstream(doc: dict, node: str) -> set[str]:
    """Every node whose output reaches *node*'s inputs (and *node*)."""
    seen, todo = {node}, [node]
    while todo:
        dst = todo.pop()
        for e in doc["edges"]:
            if e["dst"]["node"] == dst and e["src"]["node"] not in seen:
                seen.add(e["src"]["node"])
                todo.append(e["src"]["node"])
    return seen


def _covers(doc: dict, nodes: dict, names: dict[str, str], blocks: list[str], pid: str) -> bool:
    """True when the head feeds the loss and the recognised nodes are all of the model."""
    head = names["head"]
    consumers = [nodes[e["dst"]["node"]]["type"] for e in doc["edges"]
                 if e["src"]["node"] == head and e["dst"]["node"] in nodes]
    feeds_loss = any(registry.has(t) and registry.get(t).category == "loss" for t in consumers)
    known = set(names.values()) | set(blocks) | {pid}
    return feeds_loss and _upstream(doc, head) == known


def _preset_model(doc: dict, weights: dict[str, np.ndarray], dtype,
                  tok: PairTokenizer) -> Seq2SeqModel:
    """The :class:`Seq2SeqModel` of a preset-shaped *doc*; WiregradError for any other."""
    nodes = {n["id"]: n for n in doc["nodes"]}
    data = [n for n in doc["nodes"] if n["type"] == "sequence_pairs"]
    pairs = _params(data[0])
    pid = data[0]["id"]
    names = {"src_emb": _follow(doc, nodes, f"{pid}:source", "Embedding", "ids"),
             "tgt_emb": _follow(doc, nodes, f"{pid}:target_in", "Embedding", "ids")}
    names["src_pos"] = _follow(doc, nodes, f"{names['src_emb']}:y", "PositionalEmbedding")
    names["tgt_pos"] = _follow(doc, nodes, f"{names['tgt_emb']}:y", "PositionalEmbedding")
    enc, last = _chain(doc, nodes, f"{names['src_pos']}:y", "TransformerEncoderBlock")
    names["enc_ln"] = _follow(doc, nodes, last, "LayerNorm")
    dec, last = _chain(doc, nodes, f"{names['tgt_pos']}:y", "TransformerDecoderBlock")
    if not enc or not dec:
        raise WiregradError("seq2seq decoding needs encoder and decoder blocks after the "
                            "position embeddings", node=names["src_pos"] if not enc else
                            names["tgt_pos"])
    names["dec_ln"] = _follow(doc, nodes, last, "LayerNorm")
    names["head"] = _follow(doc, nodes, f"{names['dec_ln']}:y", "Linear")
    if not _covers(doc, nodes, names, enc + dec, pid):
        raise WiregradError("the graph has more than the preset's layers", node=names["head"])
    w = {k: np.asarray(v, dtype) for k, v in weights.items()}
    missing = [k for k in (f"{names['src_emb']}.weight", f"{names['head']}.weight") if k not in w]
    if missing:
        raise WiregradError(f"the weights lack {missing[0]}", field="weights")
    vocab = pairs["vocab"] if tok.kind == "char" else ""
    model = Seq2SeqModel(vocab, int(pairs["max_source_len"]),
                         int(_params(nodes[names["tgt_pos"]])["block_size"]), w, names,
                         tokenizer=tok)
    for role in ("enc_ln", "dec_ln"):
        model.eps[role] = float(_params(nodes[names[role]])["eps"])
    for ids, out in ((enc, model.encoder), (dec, model.decoder)):
        for i in ids:
            p = _params(nodes[i])
            out.append(Block(i, int(p["num_heads"]), bool(p["key_padding_mask"]), w))
    return model


# ------------------------------------------------------------------ encoder and decoder


@dataclass
class Memory:
    """The encoder's output and, per decoder block, the cross-attention K/V over it."""

    keep: np.ndarray  # (B, S) source mask
    cross: list[tuple[np.ndarray, np.ndarray]]  # per decoder block: (K, V) (B, H, S, D)


def encode(model: Model, source: np.ndarray, mask: np.ndarray) -> Memory | GraphMemory:
    """Run the encoder once over *source* (B, S) ids with *mask* (B, S)."""
    if isinstance(model, GraphSeq2Seq):
        return model.encode(source, mask)
    s = source.shape[1]
    x = model.weight("src_emb")[source] + model.weight("src_pos")[:s][None]
    for b in model.encoder:
        h = _ln_of(b, "ln1", x)
        q, k, v = _attention_proj(b, "attn", h, h)
        y, _ = attend(q, k, v, mask if b.masked else None)
        x = x + _out_proj(b, "attn", y)
        x = x + _mlp(b, _ln_of(b, "ln2", x))
    mem = _ln(x, model.param("enc_ln"), model.param("enc_ln", "bias"), model.eps["enc_ln"])
    cross = []
    for b in model.decoder:
        kv = _linear(mem, b.get("cross_attn.kv_proj.weight"), b.get("cross_attn.kv_proj.bias"))
        c = kv.shape[-1] // 2
        cross.append((_heads(kv[..., :c], b.heads), _heads(kv[..., c:], b.heads)))
    return Memory(mask, cross)


@dataclass
class DecoderState:
    """Self-attention caches (B, H, t, D) per decoder block and the next position."""

    keys: list[np.ndarray]
    values: list[np.ndarray]
    memory: Memory
    position: int = 0
    cross_probs: list[np.ndarray] = field(default_factory=list)  # last step, per block

    def select(self, rows: np.ndarray) -> DecoderState:
        """The state of the given batch rows (beam search reorders its hypotheses)."""
        mem = Memory(self.memory.keep[rows], [(k[rows], v[rows]) for k, v in self.memory.cross])
        return DecoderState([k[rows] for k in self.keys], [v[rows] for v in self.values], mem,
                            self.position)


def start(model: Model, memory: Memory | GraphMemory) -> DecoderState | GraphState:
    """A fresh decoder state over *memory* (nothing fed yet)."""
    if isinstance(model, GraphSeq2Seq):
        assert isinstance(memory, GraphMemory)
        return model.start(memory)
    assert isinstance(memory, Memory)
    b = memory.keep.shape[0]
    emb = model.weight("tgt_emb")
    empty = [np.zeros((b, blk.heads, 0, emb.shape[1] // blk.heads), emb.dtype)
             for blk in model.decoder]
    return DecoderState(list(empty), list(empty), memory)


def step(model: Model, state: DecoderState | GraphState, tokens: np.ndarray) -> np.ndarray:
    """Logits (B, V) for the next token after feeding *tokens* (B,) at the next position;
    the self-attention K/V of the new position are appended to the cache."""
    if isinstance(model, GraphSeq2Seq):
        assert isinstance(state, GraphState)
        return model.step(state, tokens)
    assert isinstance(state, DecoderState)
    t = state.position
    if t >= model.max_steps:
        raise WiregradError(f"the decoder's positions end at {model.max_steps} tokens")
    x = (model.weight("tgt_emb")[tokens] + model.weight("tgt_pos")[t])[:, None, :]  # (B, 1, C)
    state.cross_probs = []
    fused = decoder_fused.packs(model)  # one Numba call per block (same arithmetic)
    for i, b in enumerate(model.decoder):
        if fused is not None:
            x = decoder_fused.block(fused[i], b, i, state, x)
            continue
        h = _ln_of(b, "ln1", x)
        q, k, v = _attention_proj(b, "self_attn", h, h)
        state.keys[i] = np.concatenate([state.keys[i], k], axis=2)
        state.values[i] = np.concatenate([state.values[i], v], axis=2)
        y, _ = attend(q, state.keys[i], state.values[i])  # the newest query sees every key
        x = x + _out_proj(b, "self_attn", y)
        h = _ln_of(b, "ln2", x)
        q = _heads(_linear(h, b.get("cross_attn.q_proj.weight"),
                           b.get("cross_attn.q_proj.bias")), b.heads)
        ck, cv = state.memory.cross[i]
        y, probs = attend(q, ck, cv, state.memory.keep if b.masked else None)
        state.cross_probs.append(probs[:, :, 0, :])  # (B, H, S)
        x = x + _out_proj(b, "cross_attn", y)
        x = x + _mlp(b, _ln_of(b, "ln3", x))
    state.position = t + 1
    x = _ln(x, model.param("dec_ln"), model.param("dec_ln", "bias"), model.eps["dec_ln"])
    return _linear(x, model.param("head"), model.param("head", "bias"))[:, 0, :]


def tokenizer_of(model: Model) -> PairTokenizer:
    """The model's tokenizer (a char model built without one: its vocabulary)."""
    tok = model.tokenizer
    if tok is None:
        from engine.data.tokenizers import CharTokenizer

        tok = PairTokenizer(CharTokenizer(model.vocab if isinstance(model, Seq2SeqModel)
                                          else ""))
    return tok


def encode_texts(model: Model, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(source ids (B, S), mask (B, S)) of *texts*, padded to the longest; clear errors."""
    tok = tokenizer_of(model)
    rows = []
    for text in texts:
        if tok.kind == "char":
            bad = sorted(set(text) - set(tok.inner.vocab))
            if bad:
                raise WiregradError(f"the input {text!r} uses characters the model does not "
                                    f"know: {''.join(bad)!r}", field="--input")
        ids = tok.encode(text, "the input") if text else np.zeros(0, np.int64)
        if not text or len(ids) > model.src_len:
            unit = "characters" if tok.kind == "char" else "tokens"
            raise WiregradError(f"an input has 1 to {model.src_len} {unit}; {text!r} has "
                                f"{len(ids)}", field="--input")
        rows.append(ids)
    s = max(len(r) for r in rows)
    ids = np.zeros((len(texts), s), np.int64)
    mask = np.zeros((len(texts), s))
    for row, r in enumerate(rows):
        ids[row, :len(r)] = r
        mask[row, :len(r)] = 1.0
    return ids, mask


__all__ = ["BOS", "EOS", "DecoderState", "GraphSeq2Seq", "Memory", "Model", "Seq2SeqModel",
           "attend", "encode", "encode_texts", "load_model", "start", "step", "tokenizer_of"]
