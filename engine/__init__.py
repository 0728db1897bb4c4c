"""Wiregrad's execution engine: graph documents in, forward/backward/optimizer out.

Qt-free by contract. Importing it is cheap: Numba and networkx load lazily.
"""

from __future__ import annotations

import os as _os

from engine.base import paths as _paths

# Numba reads NUMBA_CACHE_DIR when it is first imported; set it before any kernel loads.
_os.environ.setdefault("NUMBA_CACHE_DIR", str(_paths.numba_cache_dir()))

__version__ = "0.1.0"
