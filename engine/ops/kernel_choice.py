"""Lazy access to :mod:`engine.kernels` so that importing the op modules (and building the
catalog) never imports Numba; kernels load, and compile, on first use."""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType


@cache
def kernels(name: str) -> ModuleType:
    """The module ``engine.kernels.<name>``, imported on first call."""
    return importlib.import_module(f"engine.kernels.{name}")


def call_kernel(kernel, *args):
    """``kernel(*args)``, or its numpy twin while a cold start's helper compiles it
    (:func:`engine.kernels.cold.call`)."""
    return kernels("cold").call(kernel, *args)
