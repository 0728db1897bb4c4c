"""argparse ``type=`` functions that refuse bad option values with a message (exit 2).

argparse turns the :class:`argparse.ArgumentTypeError` into
``wiregrad train: error: argument --threads: must be an integer ≥ 1, got '0'``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer option that must be ≥ *low* (``--threads``, ``-n``, ``--steps``...)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text!r}")
        return value

    parse.__name__ = f"integer ≥ {low}"
    return parse


def _number(text: str, rule: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number {rule}, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A finite number ≥ 0 (``--temperature``)."""
    value = _number(text, "≥ 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number ≥ 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """A number in (0, 1] (``--top-p``)."""
    value = _number(text, "in (0, 1]")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def seed(text: str) -> int:
    """A random seed: an integer from 0 to 2**32 - 1 (what numpy's generators accept)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**32 - 1, got {text!r}")
    return value


positive_int = int_at_least(1)
count = int_at_least(0)

__all__ = ["int_at_least", "non_negative", "probability", "seed", "positive_int", "count"]
