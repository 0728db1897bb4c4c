"""The training debugger's numbers, computed from one batch (Qt-free, plain data out).

* :func:`edge_stats` — per wire: shape, mean, std, min, max of the value it carries and the
  norm of the loss gradient with respect to it.
* :func:`node_detail` — per node: histograms of its weights, activations and gradients, its
  weight matrices (downsampled for display) and, for token-embedding tables, a 2-D PCA.
* :func:`attention_maps` — causal attention of every head over a prompt, row by row.

The editor's worker process calls these between training steps; tests call them directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.base.errors import WiregradError
from engine.core.program import Program

HIST_BINS = 30
MAX_IMAGE_SIDE = 64


def port_values(program: Program, node: str) -> dict[str, str]:
    """Output port → value name of top-level *node* (layers resolve to their inner value)."""
    summary = program.nodes.get(node)
    if summary is None:
        return {}
    return dict(zip(summary.outputs.keys(), program.node_outputs.get(node, [])))


def tensor_stats(value: np.ndarray, grad: np.ndarray | None = None) -> dict:
    """Shape, mean, std, min and max of *value* (float64 arithmetic) and the L2 norm of *grad*."""
    a = np.asarray(value)
    f = a.astype(np.float64, copy=False)
    out: dict[str, Any] = {"shape": list(a.shape), "dtype": str(a.dtype)}
    if f.size:
        out.update(mean=float(f.mean()), std=float(f.std()), min=float(f.min()),
                   max=float(f.max()))
    else:
        out.update(mean=0.0, std=0.0, min=0.0, max=0.0)
    out["grad_norm"] = (float(np.linalg.norm(np.asarray(grad, dtype=np.float64).ravel()))
                        if grad is not None else None)
    return out


def edge_stats(doc: dict, program: Program, values: dict[str, np.ndarray],
               value_grads: dict[str, np.ndarray]) -> list[dict]:
    """One entry per top-level edge of *doc*: ``{"src", "sport", "dst", "dport", **stats}``."""
    out = []
    cache: dict[str, dict[str, str]] = {}
    for e in doc["edges"]:
        src, sport = e["src"]["node"], e["src"]["port"]
        names = cache.setdefault(src, port_values(program, src))
        name = names.get(sport)
        if name is None or name not in values:
            continue
        stats = tensor_stats(values[name], value_grads.get(name))
        out.append({"src": src, "sport": sport, "dst": e["dst"]["node"],
                    "dport": e["dst"]["port"], **stats})
    return out


def histogram(values: np.ndarray, bins: int = HIST_BINS) -> dict:
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"counts": [], "edges": []}
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(a, bins=bins, range=(lo, hi))
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def downsample(matrix: np.ndarray, max_side: int = MAX_IMAGE_SIDE) -> np.ndarray:
    """A 2-D view of *matrix* no larger than *max_side* per axis (block means)."""
    m = np.asarray(matrix, dtype=np.float32)
    if m.ndim == 1:
        m = m[None, :]
    elif m.ndim > 2:
        m = m.reshape(-1, m.shape[-1])
    out = m
    for axis in (0, 1):
        n = out.shape[axis]
        if n > max_side:
            step = int(np.ceil(n / max_side))
            pad = (-n) % step
            if pad:
                widths = [(0, 0), (0, 0)]
                widths[axis] = (0, pad)
                out = np.pad(out, widths, mode="edge")
            shape = list(out.shape)
            shape[axis:axis + 1] = [shape[axis] // step, step]
            out = out.reshape(shape).mean(axis=axis + 1)
    return np.ascontiguousarray(out, dtype=np.float32)


def pca_2d(matrix: np.ndarray) -> np.ndarray:
    """Rows of *matrix* projected on its two leading principal components, (N, 2)."""
    m = np.asarray(matrix, dtype=np.float64)
    m = m - m.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(m, full_matrices=False)
    comps = vt[:2]
    if comps.shape[0] < 2:
        comps = np.vstack([comps, np.zeros((2 - comps.shape[0], m.shape[1]))])
    return (m @ comps.T).astype(np.float32)


def _vocab(doc: dict) -> str | list[str] | None:
    """The text node's tokens in id order (characters, or a BPE tokenizer's pieces)."""
    from engine.data.tokenizers import from_params

    for n in doc["nodes"]:
        if n["type"] == "text_corpus":
            params = n.get("params", {})
            if params.get("tokenizer", "char") == "char":
                return params.get("vocab")
            try:
                labels = list(from_params(params, n["id"]).vocab)
            except WiregradError:  # not trained yet: no labels
                return None
            size = int(params.get("vocab_size") or len(labels))  # the table's rows
            return labels + [f"<unused {i}>" for i in range(len(labels), size)]
    return None


def node_detail(doc: dict, program: Program, node: str, params: dict[str, np.ndarray],
                values: dict[str, np.ndarray] | None, weight_grads: dict[str, np.ndarray]
                ) -> dict:
    """Histograms, weight images and (for embedding tables) a labelled PCA of *node*."""
    owned = [name for name, info in program.parameters.items()
             if info.node.split(".")[0] == node and name in params]
    weights: dict[str, Any] = {}
    for name in owned:
        w = params[name]
        entry: dict[str, Any] = {"shape": list(w.shape), "hist": histogram(w)}
        if w.ndim >= 2:
            entry["image"] = downsample(w)
        g = weight_grads.get(name)
        if g is not None:
            entry["grad_hist"] = histogram(g)
            entry["grad_norm"] = float(np.linalg.norm(np.asarray(g, dtype=np.float64)))
        weights[name] = entry
    activations = {}
    for port, name in port_values(program, node).items():
        if values is not None and name in values and np.asarray(values[name]).dtype.kind == "f":
            activations[port] = {"shape": list(np.shape(values[name])),
                                 "hist": histogram(values[name])}
    detail = {"node": node, "weights": weights, "activations": activations}
    vocab = _vocab(doc)
    if vocab:
        for name in owned:
            w = params[name]
            if w.ndim == 2 and w.shape[0] == len(vocab) and w.shape[1] >= 2:
                detail["pca"] = {"weight": name, "xy": pca_2d(w), "labels": list(vocab)}
                break
    return detail


def attention_maps(sampler, prompt: str) -> dict[str, np.ndarray]:
    """Attention layer path → (H, T, T) causal attention over *prompt* (≤ one block).

    Row t holds what position t attends to; each row sums to 1 over positions ≤ t. The prompt
    is fed one token at a time through the KV cache, so the rows are the sampler's own.
    """
    ids = sampler.codec.encode(prompt or "\n", "the prompt")[: sampler.block_size]
    maps: dict[str, np.ndarray] = {}
    for t, token in enumerate(ids):
        if t == 0:
            sampler.prefill([token])
        else:
            sampler.advance(token)
        for layer, rows in sampler.last_attention.items():
            if layer not in maps:
                maps[layer] = np.zeros((rows.shape[0], len(ids), len(ids)), dtype=np.float32)
            maps[layer][:, t, : rows.shape[1]] = rows
    return maps
