"""Op name → PyTorch reference, assembled from one module per op family.

A reference is ``ref(params, inputs, weights, state, ours) -> Tensor | tuple[Tensor, ...]``:
*inputs* are torch tensors in port order (float64 requiring grad, or int64), *weights* and
*state* are dicts of torch tensors by spec name, and *ours* holds our forward outputs (as
tensors) for stochastic ops such as dropout that must reuse our random mask.
"""

from __future__ import annotations

import importlib
import pkgutil

TORCH_REFS: dict = {}

for _info in pkgutil.iter_modules(__path__):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _name, _ref in getattr(_module, "REFS", {}).items():
        if _name in TORCH_REFS:
            raise RuntimeError(f"two torch references for op {_name}")
        TORCH_REFS[_name] = _ref
