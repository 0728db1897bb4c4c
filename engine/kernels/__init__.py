"""Numba kernels over raw contiguous arrays, each with a numpy reference twin for tests.

Every submodule imports Numba, so nothing here is imported eagerly: ops load a kernel module
inside ``forward``/``backward`` on first use, which keeps ``import engine`` and
``engine.core.registry.catalog()`` fast and Numba-free. Kernels are
``@njit(cache=True, nogil=True)``,
compile lazily (no eager signatures) and are serial unless a measurement shows threads win.
"""
