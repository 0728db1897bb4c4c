"""`wiregrad bench` cases for the recurrent layers, against ``torch.nn.LSTM``.

* ``lstm_layer`` — one LSTM layer's forward + backward through time (the ``lstm`` op with its
  weight gradients; B = 16, T = 64, I = 64, H = 192, float32) against ``torch.nn.LSTM`` with the
  same weights doing the same;
* ``char_lstm_step`` — a training step of the ``char_lstm`` preset (embedding → 2-layer LSTM →
  head, AdamW + clipping) against a PyTorch twin built from ``nn.Embedding``, ``nn.LSTM`` and
  ``nn.Linear`` with the same weights, optimizer and schedule, on the same batches.

The callables take turns (:func:`engine.bench.timing.alternate`), so load on the machine hits
both alike. Run alone: ``python bench/lstm_bench.py [--quick] [--threads N]``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

LAYER_SHAPE = {"batch": 16, "steps": 64, "features": 64, "hidden": 192}


class _Ctx:
    """The slice of :class:`engine.core.run.Context` the lstm op's forward/backward use."""

    saved: tuple = ()

    def __init__(self, inputs: list[str]) -> None:
        self.eq = type("Eq", (), {"inputs": inputs})

    def save(self, *arrays) -> None:
        self.saved = arrays


def layer_pair(batch: int, steps: int, features: int, hidden: int,
               seed: int = 0) -> tuple[Callable[[], object], Callable[[], object]]:
    """(ours, theirs): one LSTM layer's forward + backward with every gradient."""
    import torch

    from engine.core import registry

    spec = registry.get("lstm")
    module = torch.nn.LSTM(features, hidden, batch_first=True)
    named = dict(module.named_parameters())
    weights = [named[f"{w}_l0"].detach().numpy().copy()
               for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    forward, backward = spec.forward, spec.backward
    assert forward is not None and backward is not None
    x = np.random.default_rng(seed).standard_normal((batch, steps, features)).astype(np.float32)
    ctx = _Ctx(["x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"])
    grad_y = np.ones((batch, steps, hidden), np.float32)

    def ours():
        forward(ctx, {}, x, *weights)
        return backward(ctx, {}, grad_y, None, None)

    tx = torch.from_numpy(x).requires_grad_(True)

    def theirs():
        module.zero_grad(set_to_none=True)
        tx.grad = None
        y, _ = module(tx)
        y.backward(torch.from_numpy(grad_y))

    return ours, theirs


def _twin(doc: dict, params: dict):
    """Embedding → LSTM → Linear in PyTorch with the preset's weights (Wiregrad's names)."""
    import torch

    layers = next(n for n in doc["nodes"] if n["id"] == "lstm")["params"]

    class CharLSTM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            emb = params["tok_emb.weight"]
            self.tok_emb = torch.nn.Embedding(*emb.shape)
            self.lstm = torch.nn.LSTM(layers["input_size"], layers["hidden_size"],
                                      num_layers=layers["num_layers"], batch_first=True)
            self.head = torch.nn.Linear(*params["head.weight"].shape[::-1])

        def forward(self, tokens):
            y, _ = self.lstm(self.tok_emb(tokens))
            return self.head(y)

    model = CharLSTM()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
    model.load_state_dict(state)
    return model


def step_pair(doc: dict, make_trainer: Callable):
    """(trainer, torch step) for a char_lstm-shaped document."""
    import torch

    from engine.bench.gpt_twin import twin_optimizer, twin_step

    trainer = make_trainer(doc)
    model = _twin(doc, trainer.params)
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    shadow = copy.deepcopy(next(iter(trainer.batchers.values())))
    clip = trainer.clip_norm
    torch.manual_seed(0)
    return trainer, lambda: twin_step(model, opt, sched, shadow.next(), clip)


def bench_cases(quick: bool, log, tools) -> dict:
    """The recurrent cases (see the module docstring). *tools* is
    :mod:`engine.bench.benchmark` (its ``_line`` and ``_trainer``),
    passed in so that this module does not import it back."""
    from engine.bench.timing import alternate, case_record
    from engine.graphs import presets

    rounds, per = (2, 3) if quick else (6, 8)
    cases = {}
    ours, theirs = layer_pair(**LAYER_SHAPE)
    res = alternate({"w": ours, "t": theirs}, rounds, per, 3)
    cases["lstm_layer"] = case_record(res["w"], res["t"], **LAYER_SHAPE, dtype="float32")
    log(tools._line("lstm_layer", cases["lstm_layer"]))
    trainer, torch_step = step_pair(presets.load("char_lstm")[0], tools._trainer)
    res = alternate({"w": trainer.train_step, "t": torch_step}, rounds, per, 3)
    cases["char_lstm_step"] = case_record(res["w"], res["t"], wiregrad_steps=trainer.split_note)
    log(tools._line("char_lstm_step", cases["char_lstm_step"]))
    return cases
