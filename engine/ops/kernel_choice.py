"""Lazy access to :mod:`engine.kernels` so that importing the op modules (and building the
catalog) never imports Numba; kernels load, and compile, on first use."""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

from engine.kernels.cold import call as call_kernel  # noqa: F401  (Numba-free; see its doc)


@cache
def kernels(name: str) -> ModuleType:
    """The module ``engine.kernels.<name>``, imported on first call."""
    return importlib.import_module(f"engine.kernels.{name}")
