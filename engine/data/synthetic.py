"""Generated and bundled data sources: 2-D toy classification, 1-D regression, shape images,
scikit-learn's digits. Each builder returns ``(arrays by port, info)``; the split is made by
:func:`engine.data.datasets.load_dataset`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.data.common import GENERATE, check_count, check_elements, missing_extra, seeded_rng
from engine.ops.data import KINDS_2D, SHAPE_NAMES

Built = tuple[dict[str, np.ndarray], dict]  # arrays by port, info

SPIRAL_TURNS = 0.7  # how far each spiral arm winds, in full turns


def _balanced_labels(n: int, k: int) -> np.ndarray:
    """Class ids with counts differing by at most one."""
    return np.arange(n) % k


def classification_2d(params: dict, base: Path | None, node: str | None) -> Built:
    """Spirals, moons, circles or xor points with balanced class labels."""
    n, kind, noise = int(params["n_samples"]), params["kind"], float(params["noise"])
    check_count(n, node)
    if kind not in KINDS_2D:
        raise WiregradError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS_2D)})",
                            node=node, field="kind")
    k = int(params["classes"]) if kind == "spirals" else 2
    if not 2 <= k <= 8:
        raise WiregradError(f"spirals need 2 to 8 classes, got {k}", node=node, field="classes")
    rng = seeded_rng(params["seed"], GENERATE)
    labels = _balanced_labels(n, k)
    t = rng.uniform(0.0, 1.0, n)
    if kind == "spirals":
        r = 0.15 + 0.85 * t
        theta = 2 * np.pi * (labels / k + SPIRAL_TURNS * t)
        pts = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    elif kind == "moons":
        a = np.pi * t
        upper = np.stack([np.cos(a), np.sin(a)], axis=1)
        lower = np.stack([1.0 - np.cos(a), 0.5 - np.sin(a)], axis=1)
        pts = (np.where(labels[:, None] == 0, upper, lower) - [0.5, 0.25]) / 1.5
    elif kind == "circles":
        a = 2 * np.pi * t
        r = np.where(labels == 0, 1.0, 0.5)
        pts = np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
    else:  # xor: quadrant parity, points kept off the axes by a small margin
        sx, sy = rng.choice([-1.0, 1.0], n), np.where(labels == 0, 1.0, -1.0)
        pts = np.stack([sx, sx * sy], axis=1) * rng.uniform(0.05, 1.0, (n, 2))
    pts = pts + rng.normal(0.0, noise, pts.shape)
    order = rng.permutation(n)
    info = {"classes": k, "kind": kind,
            "description": f"{n} 2-D points, {kind}, {k} classes, noise {noise:g}"}
    return {"points": pts[order].astype(np.float32), "labels": labels[order].astype(np.int64)}, info


def regression_1d(params: dict, base: Path | None, node: str | None) -> Built:
    """Points of y = sin(frequency·x) plus Gaussian noise."""
    n, noise = int(params["n_samples"]), float(params["noise"])
    lo, hi, freq = float(params["x_min"]), float(params["x_max"]), float(params["frequency"])
    check_count(n, node)
    if not hi > lo:
        raise WiregradError(f"x_max ({hi:g}) must be greater than x_min ({lo:g})", node=node,
                            field="x_max")
    rng = seeded_rng(params["seed"], GENERATE)
    x = rng.uniform(lo, hi, (n, 1))
    y = np.sin(freq * x) + rng.normal(0.0, noise, (n, 1))
    info = {"classes": None,
            "description": f"{n} points of y = sin({freq:g}·x) + N(0, {noise:g}²), "
                           f"x in [{lo:g}, {hi:g}]"}
    return {"x": x.astype(np.float32), "y": y.astype(np.float32)}, info


def _shape_sdf(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to a unit-sized shape centred at the origin."""
    au, av = np.abs(u), np.abs(v)

    def box(hw: float, hh: float) -> np.ndarray:
        return np.maximum(au - hw, av - hh)

    if name == "circle":
        return np.hypot(u, v) - 0.9
    if name == "ring":
        return np.abs(np.hypot(u, v) - 0.72) - 0.22
    if name == "square":
        return box(0.8, 0.8)
    if name == "cross":
        return np.minimum(box(0.95, 0.27), box(0.27, 0.95))
    if name == "bar":
        return box(1.0, 0.3)
    # equilateral triangle, circumradius 1: the largest distance past any of its three edges
    edges = [(np.cos(a), np.sin(a)) for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3,
                                              np.pi / 2 + 4 * np.pi / 3)]
    return np.max([-(u * cx + v * cy) - 0.5 for cx, cy in edges], axis=0)


def shapes_images(params: dict, base: Path | None, node: str | None) -> Built:
    """Grayscale images of rotated, scaled, shifted, noisy shapes (anti-aliased)."""
    n, k, size = int(params["n_samples"]), int(params["classes"]), int(params["size"])
    check_count(n, node)
    check_elements(n, size * size, node)
    if not 2 <= k <= len(SHAPE_NAMES):
        raise WiregradError(f"classes must lie in 2..{len(SHAPE_NAMES)}, got {k}", node=node,
                            field="classes")
    rng = seeded_rng(params["seed"], GENERATE)
    labels = rng.permutation(_balanced_labels(n, k))
    angle = np.deg2rad(float(params["rotation"])) * rng.uniform(-1, 1, n)
    scale = rng.uniform(float(params["min_scale"]), float(params["max_scale"]), n)
    shift = float(params["jitter"]) * rng.uniform(-1, 1, (n, 2)) * (1 - scale[:, None])
    fg, bg = rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.25, n)
    images = np.empty((n, 1, size, size), np.float32)
    grid = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    gy, gx = np.meshgrid(-grid, grid, indexing="ij")
    pixel = 2.0 / size
    for cls, name in enumerate(SHAPE_NAMES[:k]):
        for chunk in np.array_split(np.flatnonzero(labels == cls), max(1, n // 512)):
            if not len(chunk):
                continue
            c, s = np.cos(angle[chunk])[:, None, None], np.sin(angle[chunk])[:, None, None]
            dx = gx[None] - shift[chunk, 0, None, None]
            dy = gy[None] - shift[chunk, 1, None, None]
            sc = scale[chunk, None, None]
            u, v = (c * dx + s * dy) / sc, (-s * dx + c * dy) / sc
            cover = np.clip(0.5 - _shape_sdf(name, u, v) * sc / pixel, 0.0, 1.0)
            lo, hi = bg[chunk, None, None], fg[chunk, None, None]
            images[chunk, 0] = lo + (hi - lo) * cover
    images += rng.normal(0.0, float(params["noise"]), images.shape).astype(np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    info = {"classes": k, "class_names": list(SHAPE_NAMES[:k]),
            "description": f"{n} {size}×{size} grayscale images of "
                           f"{', '.join(SHAPE_NAMES[:k])} (rotated, scaled, shifted, noisy)"}
    return {"images": images, "labels": labels.astype(np.int64)}, info


def digits(params: dict, base: Path | None, node: str | None) -> Built:
    """scikit-learn's bundled 8×8 digits, scaled to [0, 1]."""
    if importlib.util.find_spec("sklearn") is None:
        raise missing_extra("scikit-learn", "datasets", node)
    try:
        from sklearn.datasets import load_digits

        bunch = load_digits()
    except ImportError:
        raise missing_extra("scikit-learn", "datasets", node) from None
    images = (np.asarray(bunch.images, np.float32) / 16.0)[:, None]
    labels = np.asarray(bunch.target, np.int64)
    info = {"classes": 10, "description": f"{len(labels)} 8×8 handwritten digits "
                                          "(scikit-learn's bundled copy of the UCI set)"}
    return {"images": images, "labels": labels}, info


BUILDERS = {
    "classification_2d": classification_2d,
    "regression_1d": regression_1d,
    "shapes_images": shapes_images,
    "digits": digits,
}
