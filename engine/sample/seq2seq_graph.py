"""Decoding any encoder–decoder graph from its compiled program, not from a fixed shape.

A user builds a seq2seq graph from the palette in many ways: different layer counts on each
side, separate or shared embeddings, other position embeddings, extra ops between blocks, a
final norm or none. :class:`GraphSeq2Seq` reads the graph by its wires instead: the model is
the program's closure of the loss's prediction input (the logits), and its equations split by
what they read —

* **constant**: weights only (parameter nodes, anything computed from them), evaluated once;
* **encoder**: reads ``source`` / ``source_mask`` but not ``target_in``: run once per input
  batch over the whole (padded) source; the values the decoder reads from it are the
  *memory*;
* **decoder**: reads ``target_in``: run one token at a time with the inference rules of
  :mod:`engine.sample.rules` (position-wise ops see only the new position, position ids
  start at the step), causal self-attention with a key/value cache per batch row, and
  attention whose keys and values come from the memory (cross-attention) over the cached
  memory.

Where a decoder op has no such rule (or the token-by-token logits disagree with full
recomputation on a probe) every step recomputes the whole decoder over the target prefix,
padded to the graph's length like in training (correct, slower); ``decoding`` says which path
was taken and why (``wiregrad sample --verbose`` prints it). A graph that cannot be decoded at
all is refused naming the node.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.base.errors import WiregradError
from engine.core.compile import compile_document
from engine.core.inference import extract_model
from engine.core.program import Equation
from engine.core.run import Context, init_weights
from engine.ops.seq2seq import PAD, SPECIALS
from engine.sample.rules import NotIncremental, forward_of, step_for
from engine.sample.seq2seq_state import CrossSite, GraphMemory, GraphState, _probs

ATTENTION = "scaled_dot_product_attention"
PROBE_STEPS = 4


def _named(fn: Callable, eq: Equation, *args):
    """Run *fn*; an error that names no node is charged to *eq*'s node."""
    try:
        return fn(*args)
    except WiregradError as e:
        if e.node is None:
            e.node = eq.top
        raise


class GraphSeq2Seq:
    """An encoder–decoder graph compiled once and decoded as the module docstring says.

    Offers what :mod:`engine.sample.seq2seq_search` needs: ``tokenizer``, ``src_len``,
    ``max_steps``, ``decoder`` (the cross-attention sites) and :meth:`encode` /
    :meth:`start` / :meth:`step`."""

    def __init__(self, doc: dict, weights: dict[str, np.ndarray], dtype=np.float64,
                 tokenizer=None) -> None:
        self.dtype = np.dtype(dtype)
        self.tokenizer = tokenizer
        program = compile_document(doc, self.dtype.name)
        model = extract_model(doc, self.dtype.name, program)
        data = [eq for eq in program.equations if eq.op.name == "sequence_pairs"]
        if len(data) != 1 or model.loss is None:
            raise WiregradError("this graph is not a sequence-to-sequence model: it needs one "
                                "sequence_pairs data source and a loss on the logits",
                                field="nodes")
        self.pairs = data[0]
        source, mask, target_in = self.pairs.outputs[:3]
        self.values = {"source": source, "source_mask": mask, "target_in": target_in}
        self.logits = model.outputs[0].value
        self.logits_node = model.outputs[0].node
        self.src_len = int(program.values[source].shape[1])
        self.max_steps = int(program.values[target_in].shape[1])
        self.weights = self._load(program, weights)
        self.const: dict[str, np.ndarray] = {}
        self._split(model.equations, program)
        self.decoder = self._cross_sites(program)
        self.block_size = self.max_steps  # what the shared inference rules read
        self.last_attention: dict[str, np.ndarray] = {}
        self.active: GraphState | None = None
        self.plan: list | None = None
        self.decoding = self._choose()

    # -------------------------------------------------------------- reading the program

    def _load(self, program, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = init_weights(program.parameters, 0, self.dtype)
        out.update(init_weights(program.state, 0, self.dtype))
        for name, value in out.items():
            given = weights.get(name)
            if given is None:
                if name in program.parameters:
                    raise WiregradError(f"the weights lack '{name}'", node=name.split(".")[0])
                continue
            if tuple(np.shape(given)) != value.shape:
                raise WiregradError(f"weight '{name}' has shape {list(np.shape(given))}, the "
                                    f"graph needs {list(value.shape)}", node=name.split(".")[0])
            out[name] = np.ascontiguousarray(given, dtype=self.dtype)
        return out

    def _ctx(self, eq: Equation) -> Context:
        return Context(eq, {k: self.weights[n] for k, n in eq.weights.items()},
                       {k: self.weights[n] for k, n in eq.state.items()}, False, None, None,
                       self.dtype)

    def _split(self, equations: list[Equation], program) -> None:
        """Constant equations evaluated now; encoder and decoder equations kept in order."""
        src = {self.values["source"], self.values["source_mask"]}
        tgt = {self.values["target_in"]}
        self.encoder_eqs: list[Equation] = []
        self.decoder_eqs: list[Equation] = []
        for eq in equations:
            ins = {v for v in eq.inputs if v is not None}
            if ins & tgt:
                self.decoder_eqs.append(eq)
                tgt.update(eq.outputs)
            elif ins & src:
                self.encoder_eqs.append(eq)
                src.update(eq.outputs)
            else:
                outs = _named(forward_of(eq), eq, self._ctx(eq), eq.params,
                              *[self.const.get(v) if v else None for v in eq.inputs])
                self.const.update(zip(eq.outputs, outs if isinstance(outs, tuple) else (outs,)))
        if self.logits not in tgt:
            raise WiregradError("the logits do not read target_in: the decoder has nothing to "
                                "continue from", node=self.logits_node)
        self.dynamic = tgt
        self.memory_values = sorted({v for eq in self.decoder_eqs for v in eq.inputs
                                     if v in src})
        self.batch_axes = {v: (list(program.values[v].shape).index("B")
                               if "B" in program.values[v].shape else None)
                           for v in self.memory_values + [self.values["source_mask"]]}

    def _cross_sites(self, program) -> list[CrossSite]:
        sites = [eq for eq in self.decoder_eqs if eq.op.name == ATTENTION
                 and eq.inputs[1] not in self.dynamic]
        tops = [eq.top for eq in sites]
        unique = len(set(tops)) == len(tops)
        return [CrossSite(eq.top if unique else eq.path.rsplit(".", 1)[0],
                          int(program.values[eq.inputs[0]].shape[1]),
                          len(eq.inputs) > 3 and eq.inputs[3] is not None, eq.path)
                for eq in sites]

    # -------------------------------------------------------------- the encoder

    def encode(self, source: np.ndarray, mask: np.ndarray) -> GraphMemory:
        """Run the encoder equations once over *source* (B, S) ids and *mask* (B, S)."""
        source, mask = self._padded(source, mask)
        env = dict(self.const)
        env[self.values["source"]] = source
        env[self.values["source_mask"]] = mask.astype(self.dtype)
        for eq in self.encoder_eqs:
            outs = _named(forward_of(eq), eq, self._ctx(eq), eq.params,
                          *[env[v] if v is not None else None for v in eq.inputs])
            env.update(zip(eq.outputs, outs if isinstance(outs, tuple) else (outs,)))
        return GraphMemory(mask, {v: env[v] for v in self.memory_values})

    def _padded(self, source: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source and mask padded to the graph's S (the length it was built and trained on)."""
        b, s = source.shape
        if s > self.src_len:
            raise WiregradError(f"an input has at most {self.src_len} tokens; got {s}",
                                field="--input")
        ids = np.full((b, self.src_len), PAD, np.int64)
        keep = np.zeros((b, self.src_len))
        ids[:, :s], keep[:, :s] = source, mask
        return ids, keep

    # -------------------------------------------------------------- the decoder

    def start(self, memory: GraphMemory) -> GraphState:
        b = memory.keep.shape[0]
        return GraphState(memory, {}, np.zeros((b, 0), np.int64), 0, [], self.batch_axes)

    def step(self, state: GraphState, tokens: np.ndarray) -> np.ndarray:
        """Logits (B, V) for the next token after feeding *tokens* (B,) at the next position."""
        t = state.position
        if t >= self.max_steps:
            raise WiregradError(f"the decoder's positions end at {self.max_steps} tokens")
        state.cross_probs = []
        tokens = np.asarray(tokens, np.int64)
        if self.plan is not None:
            logits = self._incremental(state, tokens[:, None], t)
        else:
            logits = self._recompute(state, tokens)
        state.position = t + 1
        return logits

    def _incremental(self, state: GraphState, ids: np.ndarray, past: int) -> np.ndarray:
        env = {**self.const, **state.memory.env, self.values["target_in"]: ids}
        self.active = state
        assert self.plan is not None
        for eq, step in self.plan:
            outs = _named(step, eq, [env[v] if v is not None else None for v in eq.inputs],
                          past)
            env.update(zip(eq.outputs, outs if isinstance(outs, tuple) else (outs,)))
        return env[self.logits][:, -1, :]

    def _recompute(self, state: GraphState, tokens: np.ndarray) -> np.ndarray:
        """Every decoder equation over the prefix, padded to T like a training batch."""
        prefix = np.concatenate([state.tokens, tokens[:, None]], axis=1)
        state.tokens = prefix
        t = prefix.shape[1] - 1
        ids = np.full((prefix.shape[0], self.max_steps), PAD, np.int64)
        ids[:, :t + 1] = prefix
        env = {**self.const, **state.memory.env, self.values["target_in"]: ids}
        cross = {site.path for site in self.decoder}
        for eq in self.decoder_eqs:
            ins: list = [env[v] if v is not None else None for v in eq.inputs]
            outs = _named(forward_of(eq), eq, self._ctx(eq), eq.params, *ins)
            env.update(zip(eq.outputs, outs if isinstance(outs, tuple) else (outs,)))
            if eq.path in cross:
                keep = ins[3] if len(ins) > 3 else None
                p = _probs(ins[0][:, :, t:t + 1], ins[1], keep, eq.params.get("scale"))
                state.cross_probs.append(p[:, :, 0, :])
        return env[self.logits][:, t, :]

    # -------------------------------------------------------------- choosing the path

    def _build_plan(self) -> list:
        plan = []
        for eq in self.decoder_eqs:
            ctx = self._ctx(eq)
            if eq.op.name == ATTENTION:
                plan.append((eq, self._attention_step(eq, ctx)))
                continue
            kind, step = step_for(self, eq, ctx)
            self.kinds.add(kind)
            plan.append((eq, self._recurrent_step(eq, ctx) if kind == "recurrent" else step))
        return plan

    def _recurrent_step(self, eq: Equation, ctx: Context) -> Callable:
        """rnn / lstm / gru: the new position starts from the states the row's previous step
        ended with (kept in the decoding state, so beam search reorders them with the rows)."""
        forward, params = forward_of(eq), eq.params
        first_state = 5  # x, w_ih, w_hh, b_ih, b_hh, then h0 (, c0)

        def carried(ins, past):
            state = self._active()
            ins = list(ins) + [None] * (len(eq.op.inputs) - len(ins))
            kept = state.caches.get(eq.path)
            if past > 0 and kept is not None:
                ins[first_state:first_state + len(kept)] = kept
            outs = forward(ctx, params, *ins)
            state.caches[eq.path] = tuple(outs[1:])  # h_n (, c_n): (B, H)
            return outs
        return carried

    def _attention_step(self, eq: Equation, ctx: Context) -> Callable:
        q, k, v = eq.inputs[:3]
        mask = eq.inputs[3] if len(eq.inputs) > 3 else None
        forward, params = forward_of(eq), eq.params
        if k not in self.dynamic and v not in self.dynamic:  # over the memory: cross-attention
            if params.get("causal", True):
                raise NotIncremental("causal attention over the encoder's output",
                                     node=eq.top)

            def cross(ins, past):
                out = forward(ctx, params, *ins)
                p = _probs(ins[0], ins[1], ins[3] if len(ins) > 3 else None,
                           params.get("scale"))
                self._active().cross_probs.append(p[:, :, -1, :])
                return out
            return cross
        self.kinds.add("kv-cache")
        if not params.get("causal", True) or (mask is not None):
            raise NotIncremental("decoder self-attention without the causal mask or with a "
                                 "key mask", node=eq.top)
        if q not in self.dynamic:
            raise NotIncremental("attention whose query does not follow the target",
                                 node=eq.top)

        def cached(ins, past):
            state = self._active()
            k_new, v_new = ins[1], ins[2]
            if past == 0 or eq.path not in state.caches:
                keys, values = k_new, v_new
            else:
                old_k, old_v = state.caches[eq.path][:2]
                keys = np.concatenate([old_k, k_new], axis=2)
                values = np.concatenate([old_v, v_new], axis=2)
            state.caches[eq.path] = (keys, values)
            return forward(ctx, params, ins[0], keys, values)
        return cached

    def _active(self) -> GraphState:
        if self.active is None:
            raise WiregradError("no decoding is under way")
        return self.active

    def _choose(self) -> str:
        """'kv-cache: …' or 'full recomputation: …' (why), checked on a probe."""
        self.kinds: set[str] = set()
        try:
            self.plan = self._build_plan()
        except NotIncremental as e:
            self.plan = None
            return f"full recomputation per step: {e}"
        why = self._disagreement()
        if why:
            self.plan = None
            return f"full recomputation per step: {why}"
        carried = []
        if "kv-cache" in self.kinds:
            carried.append("decoder self-attention keeps its keys and values")
        if "recurrent" in self.kinds:
            carried.append("recurrent cells carry their state")
        kind = "kv-cache" if "kv-cache" in self.kinds else "incremental"
        return (f"{kind}: the encoder runs once, "
                + ", ".join(carried + ["cross-attention reads the cached memory"]))

    def _disagreement(self) -> str:
        classes = int(self.const_classes())
        rng = np.random.default_rng(0)
        b, s = 2, min(self.src_len, 5)
        source = rng.integers(SPECIALS, max(classes, SPECIALS + 1), (b, s))
        mask = np.ones((b, s))
        mask[1, s - 1:] = 0.0
        tokens = rng.integers(SPECIALS, max(classes, SPECIALS + 1), (b, PROBE_STEPS))
        n = min(PROBE_STEPS, self.max_steps)
        try:
            memory = self.encode(source, mask)
            fast, slow = self.start(memory), self.start(memory)
            plan, got, want = self.plan, [], []
            for i in range(n):
                got.append(self.step(fast, tokens[:, i]))
                self.plan = None
                want.append(self.step(slow, tokens[:, i]))
                self.plan = plan
        except (WiregradError, ValueError, IndexError) as e:
            return f"token-by-token decoding failed ({e})"
        a, w = np.stack(got), np.stack(want)
        scale = max(1.0, float(np.abs(w).max()))
        tol = 1e-3 if self.dtype == np.float32 else 1e-9
        diff = float(np.abs(a - w).max())
        if diff > tol * scale:
            return (f"token-by-token logits differ from full recomputation by {diff:.3g}: an "
                    "op mixes target positions in a way no rule covers")
        return ""

    def const_classes(self) -> int:
        """The number of token ids the target embedding takes (the probe's range)."""
        if self.tokenizer is not None:
            return int(self.tokenizer.classes)
        return SPECIALS + 1
