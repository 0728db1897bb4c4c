"""What the model predicts, as plain data for the editor's Predictions tab (Qt-free).

* :func:`live_predictions` — computed in the worker from a trainer's current weights on the
  validation split: a decision-boundary grid for 2-D classifiers, predicted vs. true values
  for regression, a labelled image grid and a confusion matrix for image classifiers.
* :func:`read_inputs` — the model's inputs from a file the user picks (CSV / text table,
  ``.npy``, an image with Pillow).
* :func:`output_table` — the model's outputs for those inputs as rows for a table.

"The model" is :func:`engine.core.inference.extract_model`'s (data inputs → the loss's
prediction input) and it runs through :func:`engine.core.inference.run_model`.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np

from engine.base.errors import MissingExtraError, WiregradError

GRID = 120  # decision-boundary resolution per axis
MAX_EVAL = 1000  # validation examples evaluated for the image views
GRID_IMAGES = 24
CHUNK = 512
MAX_TABLE_ROWS = 1000


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _run(model, weights: dict, name: str, x: np.ndarray) -> np.ndarray:
    """The model's single output for input *name* = *x*, in chunks."""
    from engine.core.inference import run_model

    out_name = model.output_names[0]
    parts = [run_model(model, weights, {name: x[i:i + CHUNK]})[out_name]
             for i in range(0, len(x), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0,))


def _task(model, datasets: dict) -> tuple[str, dict]:
    """(task, where) — task in boundary / regression / images / text / none."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return "none", {"note": "predictions need a model with one input and one output"}
    port = model.inputs[0]
    ds = datasets.get(port.node)
    if ds is None or port.port not in ds.val:
        if port.type.dtype == "int":
            return "text", {"note": "a language model: continue text in the Sampling dock, "
                                    "or use Run ▸ Predict on File with a text file"}
        return "none", {"note": "no validation data feeds the model's input"}
    targets = [k for k in ds.val if k != port.port]
    if not targets:
        return "none", {"note": "the data node has no target port"}
    target = targets[0]
    x, y = ds.val[port.port], ds.val[target]
    out = model.outputs[0].type.shape
    classify = y.dtype.kind in "iu" and len(out) == 2
    where = {"ds": ds, "input": port, "target": target}
    if classify and x.ndim == 2 and x.shape[1] == 2:
        return "boundary", where
    if classify and x.ndim in (3, 4):
        return "images", where
    if y.dtype.kind == "f":
        return "regression", where
    return "none", {"note": "no prediction view for this kind of model yet"}


def live_predictions(model, weights: dict, datasets: dict, step: int) -> dict:
    """The Predictions tab's data for *model* with *weights* on *datasets*' validation split."""
    task, where = _task(model, datasets)
    out = {"task": task, "step": step, "output": model.output_names[0]}
    if task == "boundary":
        out.update(decision_boundary(model, weights, where))
    elif task == "regression":
        out.update(regression_curve(model, weights, where))
    elif task == "images":
        out.update(image_predictions(model, weights, where))
    else:
        out["note"] = where.get("note", "")
    return out


def _class_names(ds, k: int) -> list[str]:
    names = ds.info.get("class_names") or []
    return [str(names[i]) if i < len(names) else f"class {i}" for i in range(k)]


def decision_boundary(model, weights: dict, where: dict, grid: int = GRID) -> dict:
    """Class and confidence on a grid over the data's range, plus the validation points."""
    ds, port = where["ds"], where["input"]
    pts = np.concatenate([ds.train[port.port], ds.val[port.port]]).astype(np.float64)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.06 * np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad, hi + pad
    xs = lo[0] + (np.arange(grid) + 0.5) / grid * (hi[0] - lo[0])
    ys = lo[1] + (np.arange(grid) + 0.5) / grid * (hi[1] - lo[1])
    gx, gy = np.meshgrid(xs, ys)  # row = y, column = x
    flat = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    probs = softmax(_run(model, weights, port.name, flat))
    val_x = np.asarray(ds.val[port.port], np.float32)
    val_y = np.asarray(ds.val[where["target"]], np.int64)
    pred = softmax(_run(model, weights, port.name, val_x)).argmax(axis=1)
    k = probs.shape[1]
    return {"extent": [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])],
            "classes": probs.argmax(axis=1).reshape(grid, grid).astype(np.int16),
            "confidence": probs.max(axis=1).reshape(grid, grid).astype(np.float32),
            "n_classes": k, "class_names": _class_names(ds, k),
            "points": val_x, "labels": val_y, "predicted": pred.astype(np.int64),
            "accuracy": float(np.mean(pred == val_y)) if len(val_y) else 0.0}


def regression_curve(model, weights: dict, where: dict) -> dict:
    """Predicted and true targets of every validation example (x when the input is 1-D)."""
    ds, port = where["ds"], where["input"]
    x = np.asarray(ds.val[port.port], np.float32)
    true = np.asarray(ds.val[where["target"]], np.float64)
    pred = np.asarray(_run(model, weights, port.name, x), np.float64)
    true2, pred2 = true.reshape(len(true), -1), pred.reshape(len(pred), -1)
    out = {"true": true2[:, 0].astype(np.float32), "pred": pred2[:, 0].astype(np.float32),
           "mse": float(np.mean((true2 - pred2) ** 2)) if true2.shape == pred2.shape else None,
           "x": None, "x_label": None}
    if x.ndim == 2 and x.shape[1] == 1:
        out["x"] = x[:, 0].copy()
        out["x_label"] = port.name
    return out


def image_predictions(model, weights: dict, where: dict) -> dict:
    """A confusion matrix over (up to) MAX_EVAL validation images and a labelled grid."""
    ds, port = where["ds"], where["input"]
    images = np.asarray(ds.val[port.port][:MAX_EVAL], np.float32)
    labels = np.asarray(ds.val[where["target"]][:MAX_EVAL], np.int64)
    probs = softmax(_run(model, weights, port.name, images))
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    confusion = np.zeros((k, k), np.int64)  # row = true class, column = predicted
    np.add.at(confusion, (np.clip(labels, 0, k - 1), pred), 1)
    shown = images[:GRID_IMAGES]
    if shown.ndim == 4:  # (N, C, H, W) → (N, H, W) or (N, H, W, 3)
        shown = shown[:, 0] if shown.shape[1] == 1 else shown[:, :3].transpose(0, 2, 3, 1)
    return {"confusion": confusion, "evaluated": int(len(labels)), "n_classes": k,
            "class_names": _class_names(ds, k), "images": shown.astype(np.float32),
            "grid_true": labels[:GRID_IMAGES], "grid_pred": pred[:GRID_IMAGES],
            "grid_prob": probs.max(axis=1)[:GRID_IMAGES].astype(np.float32),
            "accuracy": float(np.mean(pred == labels)) if len(labels) else 0.0}


# ------------------------------------------------------------------ the user's own files


def read_table(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Numbers of a CSV / TSV / whitespace table (an optional header row) and the header."""
    rows, header = [], None
    with open(path, newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise WiregradError(f"{path} holds no rows")
    delimiter = "," if "," in lines[0] else "\t" if "\t" in lines[0] else None
    for i, line in enumerate(lines):
        cells = (next(csv.reader([line], delimiter=delimiter)) if delimiter
                 else line.split())
        cells = [c.strip() for c in cells]
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            if i == 0:
                header = cells
                continue
            raise WiregradError(f"{path}, row {i + 1}: cannot read {cells!r} as numbers") from None
    widths = {len(r) for r in rows}
    if not rows or len(widths) != 1:
        raise WiregradError(f"{path}: every row needs the same number of columns "
                            f"(found {sorted(widths) or 'no rows'})")
    return np.asarray(rows, np.float64), header


def read_image(path: Path, shape: tuple) -> np.ndarray:
    """One image file as a (1, C, H, W) array in [0, 1] (needs Pillow)."""
    if importlib.util.find_spec("PIL") is None:
        err = MissingExtraError("Pillow", "images")
        raise WiregradError(f"reading an image file: {err} (or save the image as a .npy "
                            "array)")
    from PIL import Image

    c, h, w = (int(d) for d in shape[1:])
    with Image.open(path) as im:
        small = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(small, np.float32) / 255.0
    return (arr[None, None] if c == 1 else arr.transpose(2, 0, 1)[None]).astype(np.float32)


def read_inputs(model, path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The model's input from *path*, and the true targets when the file carries them (a
    table with one extra, last column)."""
    path = Path(path)
    if not path.is_file():
        raise WiregradError(f"{path} is not a file")
    if len(model.inputs) != 1:
        raise WiregradError(f"this model takes {len(model.inputs)} inputs "
                            f"({', '.join(model.input_names)}); predicting on a file needs one")
    port = model.inputs[0]
    shape = port.type.shape
    suffix = path.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
        if len(shape) != 4:
            raise WiregradError(f"this model takes {port.name} of shape "
                                f"{list(shape)}, not images")
        return {port.name: read_image(path, shape)}, None
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise WiregradError(f"cannot read {path} as a .npy array: {exc}") from None
        names = None
    else:
        arr, names = read_table(path)
    return _fit(port, np.asarray(arr), path)


def _fit(port, arr: np.ndarray, path: Path):
    shape = port.type.shape
    labels = None
    if len(shape) == 2 and isinstance(shape[1], int):  # (B, F) features
        f = shape[1]
        if arr.ndim == 1 and arr.shape[0] in (f, f + 1):
            arr = arr[None]
        if arr.ndim == 2 and arr.shape[1] == f + 1:
            arr, labels = arr[:, :f], arr[:, f]
        if arr.ndim != 2 or arr.shape[1] != f:
            raise WiregradError(f"{path.name} has shape {list(arr.shape)}, but the model takes "
                                f"rows of {f} feature(s) (or {f} features and a label last)")
    elif len(shape) == 4:  # (B, C, H, W) images
        want = tuple(shape[1:])
        if arr.shape == want[1:] and want[0] == 1:
            arr = arr[None, None]
        elif arr.shape == want:
            arr = arr[None]
        elif arr.ndim == 3 and arr.shape[1:] == want[1:] and want[0] == 1:
            arr = arr[:, None]
        if arr.ndim != 4 or arr.shape[1:] != want:
            raise WiregradError(f"{path.name} has shape {list(arr.shape)}, but the model takes "
                                f"images of shape {list(want)} (C, H, W)")
    elif port.type.dtype == "int" and arr.ndim == 1:
        arr = arr[None]
    if port.type.dtype == "int":
        arr = arr.astype(np.int64)
    return {port.name: arr}, labels


def output_table(model, out: np.ndarray, labels: np.ndarray | None,
                 class_names: list[str] | None = None) -> dict:
    """Rows for the editor: a class with its probability for classifiers, values otherwise."""
    out = np.asarray(out)
    classify = model.loss is not None and model.loss.op.name == "cross_entropy" and out.ndim == 2
    rows: list[list] = []
    if classify:
        probs = softmax(out)
        pred = probs.argmax(axis=1)
        names = class_names or []
        columns = ["row", "predicted class", "probability"]
        for i, (c, p) in enumerate(zip(pred, probs.max(axis=1))):
            rows.append([i, names[c] if c < len(names) else int(c), round(float(p), 4)])
    else:
        flat = out.reshape(len(out), -1)
        name = model.output_names[0]
        columns = ["row"] + ([name] if flat.shape[1] == 1 else
                             [f"{name}[{j}]" for j in range(min(8, flat.shape[1]))])
        for i, r in enumerate(flat):
            rows.append([i] + [round(float(v), 6) for v in r[:8]])
    if labels is not None:
        columns.append("true (last column)")
        for row, y in zip(rows, labels):
            row.append(round(float(y), 6))
    return {"kind": "table", "columns": columns, "rows": rows[:MAX_TABLE_ROWS],
            "count": len(rows), "shape": list(out.shape)}
