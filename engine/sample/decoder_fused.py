"""The fused decoder-block step of cached seq2seq decoding (:mod:`engine.kernels.decoder_step`):
one Numba call per decoder block and token instead of ~60 numpy operations, the same
arithmetic (logits equal the numpy path's and full recomputation's in float64 to ~1e-12).

:func:`packs` arranges a model's decoder weights for the kernel once (kept on the model);
:func:`block` runs one block for the new position and grows the state's caches exactly as the
numpy path does. Models in another dtype than float32/float64 keep the numpy path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def packs(model: Any) -> list[tuple[np.ndarray, ...]] | None:
    """Each decoder block's packed weights (cached on *model*), or None where the fused
    kernel does not apply (dtype, or a block without its MLP weights)."""
    cached = model.__dict__.get("_fused_packs")
    if cached is not None:
        return cached or None
    from engine.kernels.decoder_step import pack

    emb = model.weight("tgt_emb")
    found: list[tuple[np.ndarray, ...]] = []
    usable = emb.dtype in _DTYPES and all(
        b.get("mlp.fc.weight") is not None and b.get("mlp.proj.weight") is not None
        for b in model.decoder)
    if usable:
        found = [pack(b.get, emb.shape[1], emb.dtype) for b in model.decoder]
    model.__dict__["_fused_packs"] = found
    return found or None


def block(packed: tuple[np.ndarray, ...], b: Any, i: int, state: Any,
          x: np.ndarray) -> np.ndarray:
    """Decoder block *b* (index *i*) for the new position: *x* (B, 1, C) → (B, 1, C); appends
    the position's self-attention K/V to ``state.keys[i]``/``state.values[i]`` and its cross-
    attention probabilities (B, H, S) to ``state.cross_probs``."""
    from engine.kernels.decoder_step import block_step

    keep, cross = _memory(state.memory)
    ck, cv = cross[i]
    k, v = state.keys[i], state.values[i]
    args = (np.ascontiguousarray(x[:, 0, :]), *packed, np.ascontiguousarray(k),
            np.ascontiguousarray(v), ck, cv, keep, bool(b.masked))
    y, k_new, v_new, probs = block_step(*args)
    state.keys[i] = np.concatenate([k, k_new[:, :, None]], axis=2)
    state.values[i] = np.concatenate([v, v_new[:, :, None]], axis=2)
    state.cross_probs.append(probs)
    return y[:, None, :]


def _memory(mem: Any) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The source mask (float64) and cross K/V of *mem*, contiguous (made once per memory)."""
    cached = mem.__dict__.get("_fused")
    if cached is None or cached[0] is not mem.keep:
        keep = np.ascontiguousarray(mem.keep, dtype=np.float64)
        cross = [(np.ascontiguousarray(k), np.ascontiguousarray(v)) for k, v in mem.cross]
        cached = (mem.keep, keep, cross)
        mem.__dict__["_fused"] = cached
    return cached[1], cached[2]
