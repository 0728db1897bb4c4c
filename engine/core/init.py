"""Weight initialisers, seeded per parameter name so results do not depend on graph order."""

from __future__ import annotations

import math
import zlib

import numpy as np

INITS = ("zeros", "ones", "normal", "uniform", "xavier_uniform", "kaiming_uniform",
         "fan_in_uniform")


def param_rng(seed: int, name: str) -> np.random.Generator:
    """A generator unique to (*seed*, parameter *name*)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) for weights stored PyTorch-style as (out, in, *kernel)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def initial_value(init: str, shape: tuple[int, ...], params: dict, rng: np.random.Generator,
                  dtype: np.dtype) -> np.ndarray:
    """A freshly initialised array; *params* may carry ``std``, ``bound``, ``fan_in``."""
    fan_in, fan_out = _fans(shape)
    if params.get("fan_in"):
        fan_in = int(params["fan_in"])
    if init == "zeros":
        out = np.zeros(shape)
    elif init == "ones":
        out = np.ones(shape)
    elif init == "normal":
        out = rng.normal(0.0, float(params.get("std", 0.02)), size=shape)
    elif init == "uniform":
        b = float(params.get("bound", 0.1))
        out = rng.uniform(-b, b, size=shape)
    elif init == "xavier_uniform":
        b = math.sqrt(6.0 / max(1, fan_in + fan_out))
        out = rng.uniform(-b, b, size=shape)
    elif init in ("kaiming_uniform", "fan_in_uniform"):
        # PyTorch's nn.Linear / nn.Conv2d default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        b = 1.0 / math.sqrt(max(1, fan_in))
        out = rng.uniform(-b, b, size=shape)
    else:
        raise ValueError(f"unknown initialiser {init!r}")
    return np.ascontiguousarray(out, dtype=dtype)
