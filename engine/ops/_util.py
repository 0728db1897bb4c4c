"""Small helpers shared by op implementations."""

from __future__ import annotations

import numpy as np

from engine.core.registry import ShapeError, TensorType, numel


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum *grad* over the axes that broadcasting added or stretched to reach *shape*."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def per_example(t: TensorType) -> int:
    """Elements per example: symbolic dims (batch, sequence) count as 1."""
    return numel(t.shape, 1)


def elementwise_flops(k: int = 1):
    """FLOP counter: *k* per output element (per example)."""

    def flops(inputs, outputs, params) -> int:
        return k * sum(per_example(t) for t in outputs)

    return flops


def require_float(t: TensorType, port: str) -> None:
    if t.dtype != "float":
        raise ShapeError(f"expects float values, got {t.dtype}", port=port)


def require_same_shape(reference: TensorType, other: TensorType, reference_name: str,
                       other_name: str) -> None:
    """*other* must have *reference*'s shape (symbols match anything of the same rank)."""
    if len(reference.shape) != len(other.shape) or any(
            isinstance(a, int) and isinstance(b, int) and a != b
            for a, b in zip(reference.shape, other.shape)):
        raise ShapeError(f"{other_name} shape {list(other.shape)} differs from {reference_name} "
                         f"shape {list(reference.shape)}", port=other_name)
