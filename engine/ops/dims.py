"""Arithmetic on symbolic dimensions for shape inference (reshape, concat, split, slice).

A dimension is an ``int`` or a string. Strings are symbols (``"B"``), products of symbols and
integers written ``"B*T"`` or ``"T*64"`` (what reshape infers for a flattened ``B×T``), or
opaque expressions such as ``"T+3"`` or ``"T-1"`` that only name a size for display.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from engine.core.registry import Dim

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def factor(d: Dim) -> tuple[int, Counter]:
    """``d`` as ``(integer coefficient, Counter of symbol factors)``."""
    if isinstance(d, int):
        return d, Counter()
    coef, syms = 1, Counter[str]()
    for part in d.split("*"):
        part = part.strip()
        if part.isdigit():
            coef *= int(part)
        elif _NAME_RE.match(part):
            syms[part] += 1
        else:  # an opaque expression: one symbol of its own
            return 1, Counter({d: 1})
    return coef, syms


def product(dims: Sequence[Dim]) -> tuple[int, Counter]:
    """Factored product of *dims*."""
    coef, syms = 1, Counter[str]()
    for d in dims:
        c, s = factor(d)
        coef *= c
        syms += s
    return coef, syms


def make_dim(coef: int, syms: Counter, order: Sequence[Dim] = ()) -> Dim:
    """The dimension ``coef × Π syms``: an int when no symbol is left, else ``"B*T*4"``.

    Symbols appear in the order they first occur in *order* (e.g. the input shape).
    """
    if not +syms:
        return coef
    seen: list[str] = []
    for d in order:
        for name in factor(d)[1]:
            if name not in seen:
                seen.append(name)
    names = sorted(syms, key=lambda n: (seen.index(n) if n in seen else len(seen), n))
    parts = [n for n in names for _ in range(syms[n])]
    if coef != 1:
        parts.append(str(coef))
    return "*".join(parts)


def add_dims(dims: Sequence[Dim]) -> Dim:
    """Sum of sizes: an int when all are ints, else an expression like ``"T+T+3"``."""
    total = sum(d for d in dims if isinstance(d, int))
    syms = [d for d in dims if isinstance(d, str)]
    if not syms:
        return total
    return "+".join(syms + ([str(total)] if total else []))


def bind_symbols(declared: Sequence[Dim] | None, actual: Sequence[int]) -> dict[str, int]:
    """Runtime sizes of the symbols in an inferred shape, read off the actual array shape."""
    if declared is None or len(declared) != len(actual):
        return {}
    return {d: n for d, n in zip(declared, actual) if isinstance(d, str)}
