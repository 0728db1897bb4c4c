"""A memory estimate for training a compiled program, checked before anything is allocated.

The limit is ``WIREGRAD_MAX_MEMORY`` when set (bytes, or with a unit: ``512MB``, ``4GiB``),
else the machine's physical memory. Absurd batch or layer sizes are refused with a clear
message naming the largest node, instead of a ``MemoryError`` half-way through allocating.
"""

from __future__ import annotations

import os
import re

from engine.base.errors import WiregradError
from engine.core.program import Program
from engine.core.registry import numel

LIMIT_ENV = "WIREGRAD_MAX_MEMORY"
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> int:
    """``"512MB"`` → 512000000; ``"4GiB"`` → 4294967296; plain digits are bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).upper() if m else ""
    if m is None or unit not in _UNITS:
        raise WiregradError(f"{LIMIT_ENV}={text!r}: expected bytes such as 4GB or 512MiB",
                            field=LIMIT_ENV)
    return int(float(m.group(1)) * _UNITS[unit])


def memory_limit() -> tuple[int | None, str]:
    """(bytes, where the limit comes from); None when it cannot be known."""
    text = os.environ.get(LIMIT_ENV)
    if text:
        return parse_size(text), LIMIT_ENV
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory"
    except (AttributeError, OSError, ValueError):
        return None, "unknown"


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def training_bytes(program: Program, batch: int, itemsize: int) -> tuple[int, dict[str, int]]:
    """Estimated bytes to train *program* with batches of *batch* (every symbolic size taken
    as *batch*): weights, gradients and two optimizer slots per parameter, the state, and
    every value with its gradient. Also the bytes per top-level node."""
    per_node: dict[str, int] = {}
    for w in program.parameters.values():
        top = w.node.split(".")[0]
        per_node[top] = per_node.get(top, 0) + 4 * w.size * itemsize
    for w in program.state.values():
        top = w.node.split(".")[0]
        per_node[top] = per_node.get(top, 0) + w.size * itemsize
    for eq in program.equations:
        for t in eq.output_types:
            if t is not None:
                size = numel(t.shape, max(batch, 1)) * (8 if t.dtype == "int" else itemsize)
                per_node[eq.top] = per_node.get(eq.top, 0) + 2 * size
    return sum(per_node.values()), per_node


def check_weights_memory(infos: dict, itemsize: int) -> int:
    """Refuse (WiregradError) weights whose values alone exceed the limit; returns bytes."""
    per_node: dict[str, int] = {}
    for w in infos.values():
        top = w.node.split(".")[0]
        per_node[top] = per_node.get(top, 0) + w.size * itemsize
    total = sum(per_node.values())
    limit, source = memory_limit()
    if limit is not None and total > limit:
        node = max(per_node, key=lambda n: per_node[n])
        raise WiregradError(
            f"the weights need {_human(total)} of memory (node '{node}' alone "
            f"{_human(per_node[node])}), more than the limit of {_human(limit)} ({source}; "
            f"set {LIMIT_ENV} to change it). Reduce the layer sizes.", node=node)
    return total


def check_training_memory(program: Program, batch: int, dtype: str) -> int:
    """Refuse (WiregradError) a run whose estimate exceeds the limit; returns the estimate."""
    itemsize = 8 if dtype == "float64" else 4
    total, per_node = training_bytes(program, batch, itemsize)
    limit, source = memory_limit()
    if limit is not None and total > limit:
        node = max(per_node, key=lambda n: per_node[n])
        raise WiregradError(
            f"training needs about {_human(total)} of memory (weights, gradients, optimizer "
            f"state and activations for a batch of {batch}; the largest part, "
            f"{_human(per_node[node])}, is node '{node}'), more than the limit of "
            f"{_human(limit)} ({source}; set {LIMIT_ENV} to change it). Reduce the batch "
            "size or the layer sizes.", node=node)
    return total
