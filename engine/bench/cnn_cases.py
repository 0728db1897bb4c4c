"""CNN bench cases: one small layer list builds both the Wiregrad document and its PyTorch
twin (same module names, so the twin loads Wiregrad's initial weights by name).

A case's input images come from a ``.npz`` written to a temporary folder (random pixels, random
labels: only the speed is measured), read by ``table_file`` and reshaped to NCHW, so any channel
count and size can be tried. Layers: ``("conv", cout, k, stride, pad)``, ``("bn2",)``,
``("bn1",)``, ``("relu",)``, ``("leaky",)``, ``("silu",)``, ``("max", k)``, ``("avg", k)``,
``("flatten",)``, ``("fc", out)``, ``("dropout", p)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.graphs.parts import finish, node


@dataclass(frozen=True)
class CnnCase:
    """One CNN bench case: input (C, H, W), classes, batch, layers and optimizer params."""

    name: str
    image: tuple[int, int, int]
    classes: int
    batch: int
    layers: tuple[tuple, ...]
    optimizer: dict = field(default_factory=lambda: {"algorithm": "adam", "lr": 0.003})
    note: str = ""


# The issue's hand-written CNN (24×24, 6 classes), and shapes unlike the presets'.
CASES = (
    CnnCase("cnn_issue24", (1, 24, 24), 6, 64,
            (("conv", 16, 5, 1, 2), ("bn2",), ("avg", 2),
             ("conv", 32, 3, 1, 1), ("bn2",), ("leaky",), ("max", 2),
             ("conv", 32, 3, 2, 1), ("silu",), ("flatten",),
             ("fc", 64), ("bn1",), ("dropout", 0.2), ("fc", 6)),
            {"algorithm": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
            "1×24×24, 5×5 pad 2 → BN → avg pool, 3×3 → BN → leaky → max pool, 3×3 stride 2 → "
            "SiLU, FC → BN1d → dropout → FC; SGD Nesterov"),
    CnnCase("cnn_rgb32", (3, 32, 32), 10, 32,
            (("conv", 32, 3, 1, 1), ("bn2",), ("relu",), ("max", 2),
             ("conv", 64, 3, 1, 1), ("bn2",), ("relu",), ("max", 2),
             ("flatten",), ("fc", 10)),
            note="3×32×32 (CIFAR-like), 3×3 pad 1, 32 and 64 channels, batch 32, Adam"),
    CnnCase("cnn_wide28", (1, 28, 28), 10, 128,
            (("conv", 32, 5, 1, 0), ("relu",), ("max", 2),
             ("conv", 64, 5, 1, 0), ("relu",), ("max", 2),
             ("flatten",), ("fc", 10)),
            note="1×28×28 (MNIST-like, LeNet shapes), 5×5 no pad, 32 and 64 channels, batch 128"),
    CnnCase("cnn_stride20", (2, 20, 20), 5, 96,
            (("conv", 24, 3, 2, 1), ("bn2",), ("silu",),
             ("conv", 48, 3, 1, 1), ("bn2",), ("relu",), ("avg", 2),
             ("flatten",), ("fc", 5)),
            note="2×20×20, 3×3 stride 2 pad 1, 24 and 48 channels, average pool, batch 96"),
    CnnCase("cnn_lenet5", (1, 28, 28), 10, 64,
            (("conv", 6, 5, 1, 2), ("relu",), ("max", 2),
             ("conv", 16, 5, 1, 0), ("relu",), ("max", 2),
             ("flatten",), ("fc", 120), ("relu",), ("fc", 84), ("relu",), ("fc", 10)),
            note="LeNet-5 (1×28×28, 6 and 16 channels 5×5, FC 120/84/10), no batch norm: "
                 "a step that could split by rows"),
    CnnCase("cnn_fchead", (3, 16, 16), 10, 64,
            (("conv", 8, 3, 1, 1), ("relu",), ("flatten",),
             ("fc", 512), ("relu",), ("fc", 256), ("relu",), ("fc", 10)),
            note="3×16×16, one 3×3 layer of 8 channels, then FC 2048 → 512 → 256 → 10: a CNN "
                 "whose work is mostly its fully-connected layers"),
    CnnCase("cnn_stem48", (3, 48, 48), 5, 32,
            (("conv", 16, 7, 2, 3), ("bn2",), ("relu",), ("max", 2),
             ("conv", 32, 3, 1, 1), ("relu",), ("avg", 2), ("flatten",), ("fc", 5)),
            note="3×48×48, a ResNet-like stem (7×7 stride 2 pad 3 → BN → ReLU → max pool), "
                 "3×3 → 32, average pool, FC; batch 32"),
)


def _walk(case: CnnCase):
    """Yield ``(node_id, layer, in_shape, out_shape)`` through the layer list."""
    shape: tuple[int, ...] = case.image
    counts: dict[str, int] = {}
    for layer in case.layers:
        kind = layer[0]
        counts[kind] = counts.get(kind, 0) + 1
        nid = f"{kind}{counts[kind]}"
        if kind == "conv":
            _, cout, k, s, p = layer
            shape_out: tuple[int, ...] = (cout, (shape[1] + 2 * p - k) // s + 1,
                                          (shape[2] + 2 * p - k) // s + 1)
        elif kind in ("max", "avg"):
            k = layer[1]
            shape_out = (shape[0], shape[1] // k, shape[2] // k)
        elif kind == "flatten":
            shape_out = (int(np.prod(shape)),)
        elif kind == "fc":
            shape_out = (layer[1],)
        else:
            shape_out = shape
        yield nid, layer, shape, shape_out
        shape = shape_out


def _layer_node(nid: str, layer: tuple, shape: tuple, pos: tuple) -> dict:
    kind = layer[0]
    if kind == "conv":
        _, cout, k, s, p = layer
        return node(nid, "Conv2d", pos, in_channels=shape[0], out_channels=cout,
                    kernel_size=k, stride=s, padding=p)
    simple = {"relu": ("relu", {}), "silu": ("silu", {}),
              "leaky": ("leaky_relu", {"negative_slope": 0.01}), "flatten": ("Flatten", {}),
              "bn2": ("BatchNorm2d", {"num_features": shape[0]}),
              "bn1": ("BatchNorm1d", {"num_features": shape[0]})}
    if kind in simple:
        op, params = simple[kind]
        return node(nid, op, pos, **params)
    if kind in ("max", "avg"):
        op = "MaxPool2d" if kind == "max" else "AvgPool2d"
        return node(nid, op, pos, kernel_size=layer[1], stride=layer[1])
    if kind == "fc":
        return node(nid, "Linear", pos, in_features=shape[0], out_features=layer[1])
    if kind == "dropout":
        return node(nid, "Dropout", pos, p=layer[1])
    raise ValueError(f"unknown layer {layer!r}")


_IN_PORT = {"relu": "x", "silu": "x", "leaky": "x"}
_OUT_PORT = {"relu": "out", "silu": "out", "leaky": "out"}


def write_data(case: CnnCase, folder: Path, n: int | None = None) -> Path:
    """Random images and labels for *case* as ``folder/<name>.npz`` (x: (n, C·H·W))."""
    rng = np.random.default_rng(0)
    n = n or 10 * case.batch  # 10 % held out: nine full training batches per epoch
    x = rng.standard_normal((n, int(np.prod(case.image)))).astype(np.float32)
    y = rng.integers(0, case.classes, n)
    path = Path(folder) / f"{case.name}.npz"
    np.savez(path, x=x, y=y)
    return path


def document(case: CnnCase, data: Path, steps: int = 100_000) -> dict:
    """The Wiregrad document of *case*, reading *data* (from :func:`write_data`)."""
    c, h, w = case.image
    nodes = [node("data", "table_file", (0, 80), path=str(data), n_features=c * h * w,
                  batch_size=case.batch, val_fraction=0.1),
             node("image", "reshape", (200, 80), shape=["B", c, h, w])]
    edges = [("data:features", "image:x")]
    previous, x = "image:out", 400
    for nid, layer, shape, _ in _walk(case):
        nodes.append(_layer_node(nid, layer, shape, (x, 0)))
        kind = layer[0]
        edges.append((previous, f"{nid}:{_IN_PORT.get(kind, 'x')}"))
        previous, x = f"{nid}:{_OUT_PORT.get(kind, 'y')}", x + 240
    nodes += [node("loss", "cross_entropy", (x, 60)), node("accuracy", "accuracy", (x, 240)),
              node("optimizer", "optimizer", (x + 240, 60), **case.optimizer)]
    edges += [(previous, "loss:logits"), ("data:labels", "loss:labels"),
              (previous, "accuracy:logits"), ("data:labels", "accuracy:labels"),
              ("loss:loss", "optimizer:loss")]
    return finish(case.name, case.note, nodes, edges,
                  {"steps": steps, "eval_every": 0, "eval_batches": 0, "checkpoint_every": 0,
                   "seed": 0, "dtype": "float32"})


def _torch_layer(nn, layer: tuple, shape: tuple):
    """The ``torch.nn`` module of one layer whose input has *shape* (without the batch)."""
    kind = layer[0]
    if kind == "conv":
        _, cout, k, s, p = layer
        return nn.Conv2d(shape[0], cout, k, stride=s, padding=p)
    if kind in ("bn2", "bn1"):
        return (nn.BatchNorm2d if kind == "bn2" else nn.BatchNorm1d)(shape[0])
    if kind in ("max", "avg"):
        return (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(layer[1])
    if kind == "fc":
        return nn.Linear(shape[0], layer[1])
    if kind == "dropout":
        return nn.Dropout(layer[1])
    return {"relu": nn.ReLU, "silu": nn.SiLU, "flatten": nn.Flatten,
            "leaky": lambda: nn.LeakyReLU(0.01)}[kind]()


def torch_twin(case: CnnCase, weights: dict[str, np.ndarray]):
    """The PyTorch ``nn.Module`` of *case* loaded with Wiregrad's weights (same names)."""
    from engine.bench.gpt_twin import _torch
    from engine.bench.twins import load_weights

    _torch()  # a clear error when torch is missing
    from torch import nn
    mods = [(nid, _torch_layer(nn, layer, shape)) for nid, layer, shape, _ in _walk(case)]
    image = case.image

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            for nid, mod in mods:
                self.add_module(nid, mod)

        def forward(self, x):  # (N, C·H·W) -> (N, classes)
            x = x.view(x.shape[0], *image)
            for nid, _ in mods:
                x = getattr(self, nid)(x)
            return x

    model = Twin()
    rename = {f"{nid}.norm.running_{s}": f"{nid}.running_{s}" for nid, _ in mods
              for s in ("mean", "var")}
    load_weights(model, weights, "float32", rename)
    return model


# ------------------------------------------------------------------ the bench cases


def _one_thread_trainer(doc: dict, base_dir: Path):
    """A trainer whose first step (where the batch split is decided) ran on one thread, and
    its step under a one-thread cap: what ``--threads 1`` would measure."""
    from threadpoolctl import threadpool_limits

    from engine.train.trainer import Trainer

    trainer = Trainer(doc, base_dir=base_dir, steps=100_000)

    def step():
        with threadpool_limits(limits=1):
            trainer.train_step()
    step()
    return step


def _pair(doc: dict, base_dir: Path, twin):
    import copy

    from engine.bench.gpt_twin import twin_optimizer
    from engine.bench.twins import classifier_step
    from engine.kernels import parallel
    from engine.train.trainer import Trainer

    # steady-state steps: the ops' parallel kernels compile during the warm-up steps, not in a
    # helper process while steps are timed (engine.kernels.parallel.ready)
    parallel.BACKGROUND = False
    trainer = Trainer(doc, base_dir=base_dir, steps=100_000)
    model = twin({**trainer.params, **trainer.state})
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    node = next(iter(trainer.batchers))
    shadow = copy.deepcopy(trainer.batchers[node])
    ports = trainer.graph.data_ports[node]
    return trainer, lambda: classifier_step(model, opt, sched, shadow.next(), ports)


def _preset_case(name: str, batch: int):
    """(document, base folder, twin) of a CNN preset at *batch* rows."""
    from engine.bench.twins import cnn_twin
    from engine.graphs import presets

    doc, path = presets.load(name)
    for n in doc["nodes"]:
        if "batch_size" in n.get("params", {}):
            n["params"]["batch_size"] = batch
    shape = {"shapes_cnn": ((8, 16), 16, 4), "digits_cnn": ((16, 32), 8, 10)}[name]
    return doc, path.parent, lambda w: cnn_twin(w, *shape)


def bench_cases(quick: bool, log, line, names: tuple[str, ...] = ()) -> dict:
    """Every CNN case (or those in *names*): Wiregrad at the run's threads (``w``), Wiregrad
    on one thread and PyTorch, taking turns in blocks; ratio = Wiregrad / PyTorch."""
    import tempfile

    from engine.bench.timing import alternate, case_record

    rounds, per = (2, 3) if quick else (5, 8)
    cases: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="wiregrad-cnn-") as tmp:
        runs = [(f"cnn_{p.split('_')[0]}", *_preset_case(p, 64), f"the {p} preset, batch 64")
                for p in ("shapes_cnn", "digits_cnn")]
        for case in CASES:
            doc = document(case, write_data(case, Path(tmp)))
            runs.append((case.name, doc, Path(tmp),
                         lambda w, case=case: torch_twin(case, w), case.note))
        for name, doc, base, twin, note in runs:
            if names and name not in names:
                continue
            trainer, torch_step = _pair(doc, base, twin)
            one = _one_thread_trainer(doc, base)
            res = alternate({"w": trainer.train_step, "w1": one, "t": torch_step},
                            rounds, per, 3)
            w1 = res["w1"]["median"]
            cases[name] = case_record(res["w"], res["t"], wiregrad_one_thread_ms=w1,
                                threads_vs_one=res["w"]["median"] / w1,
                                wiregrad_steps=trainer.split_note, note=note)
            log(line(name, cases[name]) + f"   (1 thread {w1:.2f} ms)")
    return cases
