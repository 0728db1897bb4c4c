"""Data sources: nodes whose outputs are mini-batches of a dataset.

Shapes follow from the params alone (no file is read while validating a graph); the batch
dimension is the symbol ``B``. When training, the runner loads the node's dataset with
:func:`engine.data.datasets.load_dataset`, batches it with
:class:`engine.data.batching.Batcher` and feeds each
batch through ``ctx.feed`` as a tuple of arrays in output-port order; ``forward`` checks the
batch against the declared shapes and casts it (floats to the program's dtype, integers to
int64). Data is not differentiable: ``backward`` returns nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.base.errors import WiregradError
from engine.core.registry import OpSpec, Param, Port, TensorType, format_shape, register

# Choices the specs declare; the generators in engine/data/synthetic.py read them from here.
KINDS_2D = ("spirals", "moons", "circles", "xor")
SHAPE_NAMES = ("circle", "square", "triangle", "cross", "ring", "bar")


def _common(batch_size: int) -> list[Param]:
    """The params every data source has: batching and the train/validation split."""
    return [
        Param("batch_size", "int", batch_size, minimum=1, maximum=65_536,
              doc="Examples per training step."),
        Param("val_fraction", "float", 0.1, minimum=0.0, maximum=0.9,
              doc="Share of the examples held out for validation (a fixed, seeded split)."),
        Param("seed", "int", 0, minimum=0, maximum=2**31 - 1,
              doc="Seeds generation, the split and the shuffling."),
    ]


def _checked_forward(infer: Callable) -> Callable:
    """A forward that returns the fed batch after checking it against ``infer``'s shapes."""

    def forward(ctx, params):
        node = ctx.eq.path
        types = infer([], params)
        feed = ctx.feed
        if feed is None:
            raise WiregradError("no data is fed to this data source", node=node)
        if isinstance(feed, np.ndarray) or not isinstance(feed, (tuple, list)):
            feed = (feed,)
        if len(feed) != len(types):
            raise WiregradError(f"expected {len(types)} arrays in the fed batch, got {len(feed)}",
                                node=node)
        bound: dict[str, int] = {}
        out = []
        for t, arr in zip(types, feed):
            out.append(_check(np.asarray(arr), t, bound, node, ctx.dtype))
        return tuple(out)

    return forward


def _check(arr: np.ndarray, t: TensorType, bound: dict, node: str, dtype) -> np.ndarray:
    ok = arr.ndim == len(t.shape)
    for have, want in zip(arr.shape, t.shape):
        expected = want if isinstance(want, int) else bound.setdefault(want, have)
        ok = ok and have == expected
    if not ok:
        raise WiregradError(f"fed data of shape {format_shape(arr.shape)} does not match "
                            f"{format_shape(t.shape)}", node=node)
    if t.dtype == "int":
        if arr.dtype.kind not in "iu":
            raise WiregradError(f"expects integer labels, got {arr.dtype}", node=node)
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.dtype.kind not in "fiub":
        raise WiregradError(f"expects numbers, got {arr.dtype}", node=node)
    return np.ascontiguousarray(arr, dtype=dtype)


def _no_grad(ctx, params, *grads):
    return ()


def _source(name: str, doc: str, outputs: list[Port], params: list[Param],
            infer: Callable) -> None:
    register(OpSpec(
        name=name, category="data", doc=doc, inputs=[], outputs=outputs, params=params,
        infer=infer, forward=_checked_forward(infer), backward=_no_grad, family="data",
    ))


def _labels_port(doc: str = "Class ids in [0, classes).") -> Port:
    return Port("labels", dtype="int", doc=doc, differentiable=False)


_source(
    "classification_2d",
    """Toy 2-D classification: spirals, moons, circles or xor.

    Generated from the seed: ``n_samples`` points split evenly over the classes, with Gaussian
    ``noise`` added to the coordinates (which lie roughly in [-1, 1]). ``classes`` sets the
    number of spiral arms (2–8); moons, circles and xor always have 2 classes.""",
    [Port("points", doc="(x, y) coordinates.", differentiable=False), _labels_port()],
    [
        Param("kind", "choice", "spirals", choices=KINDS_2D, doc="Which toy problem."),
        Param("classes", "int", 3, minimum=2, maximum=8, doc="Spiral arms (spirals only)."),
        Param("n_samples", "int", 1500, minimum=2, maximum=10_000_000, doc="Examples in all."),
        Param("noise", "float", 0.05, minimum=0.0, maximum=2.0,
              doc="Standard deviation of the Gaussian added to each coordinate."),
        *_common(64),
    ],
    lambda inputs, params: [TensorType(("B", 2), "float"), TensorType(("B",), "int")],
)

_source(
    "regression_1d",
    """Noisy sine regression: y = sin(frequency·x) + noise.

    ``x`` is drawn uniformly from [x_min, x_max]; both outputs have one feature.""",
    [Port("x", doc="Inputs.", differentiable=False),
     Port("y", doc="Noisy targets.", differentiable=False)],
    [
        Param("n_samples", "int", 1000, minimum=2, maximum=10_000_000, doc="Examples in all."),
        Param("noise", "float", 0.05, minimum=0.0, maximum=10.0,
              doc="Standard deviation of the Gaussian added to y."),
        Param("x_min", "float", -3.0, doc="Smallest x."),
        Param("x_max", "float", 3.0, doc="Largest x."),
        Param("frequency", "float", 1.0, doc="Angular frequency of the sine."),
        *_common(64),
    ],
    lambda inputs, params: [TensorType(("B", 1), "float"), TensorType(("B", 1), "float")],
)


def _image_infer(channels: Callable[[dict], int], size: Callable[[dict], int]) -> Callable:
    def infer(inputs, params):
        s = size(params)
        return [TensorType(("B", channels(params), s, s), "float"), TensorType(("B",), "int")]

    return infer


_source(
    "shapes_images",
    f"""Generated grayscale images of simple shapes ({", ".join(SHAPE_NAMES)}).

    The first ``classes`` shapes are drawn with random rotation (up to ±``rotation``
    degrees), scale, position (``jitter``), foreground and background brightness, plus
    Gaussian pixel ``noise``; pixel values lie in [0, 1].""",
    [Port("images", doc="(channel, height, width) images in [0, 1].", differentiable=False),
     _labels_port("Shape ids in [0, classes).")],
    [
        Param("classes", "int", 4, minimum=2, maximum=len(SHAPE_NAMES),
              doc="How many shapes, taken in order from: " + ", ".join(SHAPE_NAMES) + "."),
        Param("size", "int", 16, minimum=8, maximum=64, doc="Image width and height (pixels)."),
        Param("n_samples", "int", 2000, minimum=2, maximum=10_000_000, doc="Examples in all."),
        Param("noise", "float", 0.1, minimum=0.0, maximum=1.0,
              doc="Standard deviation of the Gaussian pixel noise."),
        Param("rotation", "float", 180.0, minimum=0.0, maximum=180.0,
              doc="Largest rotation in degrees (either way)."),
        Param("min_scale", "float", 0.55, minimum=0.1, maximum=1.0,
              doc="Smallest shape size (fraction of the half-width)."),
        Param("max_scale", "float", 0.95, minimum=0.1, maximum=1.0,
              doc="Largest shape size (fraction of the half-width)."),
        Param("jitter", "float", 0.5, minimum=0.0, maximum=1.0,
              doc="How far a shape may move off-centre (1: up to the image edge)."),
        *_common(64),
    ],
    _image_infer(lambda p: 1, lambda p: int(p["size"])),
)

_source(
    "digits",
    """Handwritten digits: scikit-learn's bundled 8×8 images (1,797 examples, 10 classes).

    Pixel values are scaled to [0, 1]. Needs the optional package scikit-learn
    (``pip install "wiregrad[datasets]"``); nothing is downloaded.""",
    [Port("images", doc="(1, 8, 8) images in [0, 1].", differentiable=False),
     _labels_port("Digits 0–9.")],
    _common(64),
    _image_infer(lambda p: 1, lambda p: 8),
)


def _table_infer(inputs, params):
    dtype = "int" if params["task"] == "classification" else "float"
    return [TensorType(("B", int(params["n_features"])), "float"), TensorType(("B",), dtype)]


_source(
    "table_file",
    """A table of numbers from a CSV, .npy or .npz file: features and a label column.

    CSV (or .tsv): one example per row; ``feature_columns`` (names or 0-based numbers; empty:
    every column but the label) and ``label_column`` (empty: the last). .npy: a 2-D array,
    columns by number. .npz: arrays ``x_key`` (examples × features) and ``y_key``.
    ``n_features`` must equal the number of feature columns (shapes are known before the file
    is read). ``task`` classification needs integer labels 0, 1, 2, …; regression takes any
    number. A relative ``path`` is relative to the graph document's folder.""",
    [Port("features", doc="Feature values.", differentiable=False),
     Port("labels", dtype="any", doc="Class ids (classification) or targets (regression).",
          differentiable=False)],
    [
        Param("path", "string", "", doc="The file (.csv, .tsv, .txt, .npy, .npz)."),
        Param("n_features", "int", 1, minimum=1, maximum=1_000_000,
              doc="Number of feature columns."),
        Param("task", "choice", "classification", choices=("classification", "regression"),
              doc="Integer class labels, or float regression targets."),
        Param("feature_columns", "strings", [],
              doc="Feature columns by header name or 0-based number; empty: all but the label."),
        Param("label_column", "string", "", doc="Label column by name or number; empty: last."),
        Param("has_header", "bool", True, doc="CSV: the first row names the columns."),
        Param("x_key", "string", "x", doc=".npz: name of the features array."),
        Param("y_key", "string", "y", doc=".npz: name of the labels array."),
        *_common(32),
    ],
    _table_infer,
)

_source(
    "image_folder",
    """Images from a folder with one subfolder of PNG/JPEG files per class.

    Classes are the subfolder names in sorted order. Every image is converted to grayscale
    (or RGB) and resized to ``size``×``size``; pixel values lie in [0, 1]. Needs the optional
    package Pillow (``pip install "wiregrad[images]"``).""",
    [Port("images", doc="(channels, size, size) images in [0, 1].", differentiable=False),
     _labels_port("Class ids: subfolders in sorted order.")],
    [
        Param("path", "string", "", doc="The folder holding one subfolder per class."),
        Param("size", "int", 28, minimum=4, maximum=256, doc="Width and height after resizing."),
        Param("grayscale", "bool", True, doc="One channel (else three, RGB)."),
        *_common(32),
    ],
    _image_infer(lambda p: 1 if p["grayscale"] else 3, lambda p: int(p["size"])),
)
