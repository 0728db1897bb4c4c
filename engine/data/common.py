"""What every data source shares: the :class:`Dataset` record, size limits, seeded streams.

Every problem a user can cause (a missing or malformed file, a missing optional package, an
absurd size) raises :class:`~engine.base.errors.WiregradError` naming the node and the file.
Arrays handed out are read-only: a cached dataset is shared by every caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import MissingExtraError, WiregradError

MAX_SAMPLES = 10_000_000
MAX_FILE_BYTES = 2 * 1024**3
MAX_ELEMENTS = 512 * 1024**2  # per dataset: 2 GiB of float32

# Independent random streams drawn from one user seed.
GENERATE, SPLIT = 1, 2


@dataclass
class Dataset:
    """Train and validation arrays by output port name (leading axis = examples).

    Sources that batch differently (text: random windows of one token stream) set
    ``make_batcher(batch_size, seed)`` and ``eval_batches(batch_size, max_batches)``.
    """

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)
    make_batcher: Callable | None = None
    eval_batches: Callable | None = None


def seeded_rng(seed: int, stream: int) -> np.random.Generator:
    """The random stream *stream* of the user's *seed*."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stream])


def frozen(a: np.ndarray) -> np.ndarray:
    """A contiguous, read-only copy (or view) of *a*."""
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def check_count(n: int, node: str | None, what: str = "n_samples") -> None:
    """Refuse fewer than 2 or more than :data:`MAX_SAMPLES` examples."""
    if n > MAX_SAMPLES:
        raise WiregradError(f"{what} is {n:,}; at most {MAX_SAMPLES:,} examples are supported",
                            node=node)
    if n < 2:
        raise WiregradError(f"{what} is {n}; at least 2 examples are needed", node=node)


def check_elements(n: int, per_example: int, node: str | None) -> None:
    """Refuse datasets over :data:`MAX_ELEMENTS` values."""
    if n * per_example > MAX_ELEMENTS:
        raise WiregradError(
            f"{n:,} examples of {per_example:,} values each would need "
            f"{n * per_example * 4 / 1024**3:.1f} GiB; at most {MAX_ELEMENTS * 4 / 1024**3:.0f} "
            "GiB per dataset is supported (lower n_samples or size)", node=node)


def missing_extra(package: str, extra: str, node: str | None) -> MissingExtraError:
    """The error for an optional *package* (pip extra *extra*) that is not installed."""
    err = MissingExtraError(package, extra)
    err.node = node
    return err


def resolve_path(path: str, base: Path | None) -> Path:
    """*path* with ``~`` expanded, relative to *base* (the working directory when None)."""
    p = Path(str(path)).expanduser()
    if not p.is_absolute():
        p = (base if base is not None else Path.cwd()) / p
    return p
