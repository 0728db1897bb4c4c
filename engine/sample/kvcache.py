"""The sampler's incremental runner: the model's equations bound once, run per token.

What a full forward pass does per token (a fresh :class:`~engine.core.run.Context` per equation,
every ``parameter`` node re-run, every earlier position recomputed) costs more than the
arithmetic of one token. Here:

* equations that do not depend on the tokens (parameter nodes, anything computed from weights
  alone) are evaluated once, at construction;
* each remaining equation keeps one reusable context and runs by the inference rule its op
  declares in :data:`engine.sample.rules.RULES` (attention keeps a KV cache, recurrent cells
  their state, position ids an offset, position-wise ops see only the new positions);
* an equation whose op has no rule makes the model non-incremental
  (:class:`~engine.sample.rules.NotIncremental`, naming the node).

The logits equal full recomputation's (the sampler checks this once per model, and the tests
compare them token by token).
"""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.core.program import Equation
from engine.core.run import Context
from engine.sample.rules import forward_of, step_for


class Incremental:
    """Runs *equations* for new tokens at positions ``past…``, caching what earlier ones left."""

    def __init__(self, equations: list[Equation], tokens_value: str, logits_value: str,
                 weights: dict, state: dict, block_size: int, dtype) -> None:
        self.tokens_value = tokens_value
        self.logits_value = logits_value
        self.block_size = block_size
        self.dtype = np.dtype(dtype)
        self.const: dict[str, np.ndarray] = {}
        self.kinds: dict[str, str] = {}  # equation path -> rule kind, for dynamic equations
        self.last_attention: dict[str, np.ndarray] = {}
        dynamic = {tokens_value}
        plan = []
        for eq in equations:
            ctx = Context(eq, {k: weights[n] for k, n in eq.weights.items()},
                          {k: state[n] for k, n in eq.state.items()}, False, None, None,
                          self.dtype)
            if any(v in dynamic for v in eq.inputs if v is not None):
                dynamic.update(eq.outputs)
                kind, step = step_for(self, eq, ctx)
                self.kinds[eq.path] = kind
                # One uniform entry per step, so the per-token loop does no dispatching.
                plan.append((tuple(eq.inputs), tuple(eq.outputs), len(eq.outputs) == 1, step,
                             eq.top))
            else:  # depends on weights only: evaluate once
                outs = forward_of(eq)(ctx, eq.params, *[self.const[v] if v is not None
                                                        else None for v in eq.inputs])
                self.const.update(zip(eq.outputs, outs if isinstance(outs, tuple) else (outs,)))
        self.plan = plan

    @property
    def bounded(self) -> bool:
        """True when positions are limited to the block (attention caches, position ids)."""
        return any(kind in ("kv-cache", "offset") for kind in self.kinds.values())

    def run(self, ids: np.ndarray, past: int) -> np.ndarray:
        """Logits (T, V) for *ids* (T,) at positions past…past+T−1; past=0 starts afresh."""
        env = dict(self.const)
        env[self.tokens_value] = ids[None, :].astype(np.int64)
        for names, outputs, single, step, top in self.plan:
            try:
                outs = step([env[v] if v is not None else None for v in names], past)
            except WiregradError as e:
                if e.node is None:  # name the node that raised
                    e.node = top
                raise
            if single:
                env[outputs[0]] = outs[0] if isinstance(outs, tuple) else outs
            else:
                env.update(zip(outputs, outs))
        return env[self.logits_value][0]
