"""Cold start off the critical path: compile a graph's kernels in a helper process.

A fresh install has an empty Numba cache, so the first training step compiles every kernel it
calls, one after another on one core. Numba's ``cache=True`` lets a second process help: a
dispatcher meeting a new signature first re-reads its on-disk index, so a kernel the helper
has compiled and saved is *loaded* (tens of ms) instead of compiled. The helper
(``python -m engine.kernels.precompile``, started by :func:`start`) compiles the needed
signatures in reverse first-use order. Meanwhile the main process runs the numpy twins of the
kernels it handed over (:mod:`engine.kernels.cold`, :func:`compiling`) and compiles forward
only those without one; they meet in the middle.

What to compile comes from ``signatures.json`` (beside this module), written by
``python tools/kernel_signatures.py``: per op name, training dtype and phase, the
``[module, kernel, argument types, params keys]`` the op's kernels were called with (and under
which of the op's params, :func:`params_key`). Types are
rebuilt from a small description (:func:`describe` / :func:`rebuild`), never evaluated.

Skipped (no helper) when every needed signature is already in the cache, on one core, when
``WIREGRAD_PRECOMPILE=0``, when the cache folder is not writable, or when the host has no core
to spare (``WIREGRAD_PRECOMPILE=1`` starts it anyway). The helper runs at low
priority, exits when its stdin closes (the parent ended) and changes nothing but speed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from engine.kernels import cache_lock

MANIFEST = Path(__file__).with_name("signatures.json")
OPT_OUT = "WIREGRAD_PRECOMPILE"
# the helper's nice increment: below the process it helps, yet not starved on a busy host
# (at +10 it got ~10% of a core beside load 4 and finished nothing before the main did)
HELPER_NICE = 3
LOG = "WIREGRAD_PRECOMPILE_LOG"  # a file the helper appends "time seconds what" lines to
# array dtypes and scalar kinds a description may name (anything else is refused)
DTYPES = frozenset({"float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                    "uint16", "uint32", "uint64", "bool"})
SCALARS = frozenset({"float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                     "uint16", "uint32", "uint64", "bool", "none"})
Entry = tuple[str, str, tuple]  # (module, kernel, argument descriptions)
_helper: subprocess.Popen | None = None
_waiting = False  # _helper was prestarted and waits for its jobs
_spawned_at = 0.0  # when (time.monotonic()) it was
_handed: frozenset[tuple[str, str]] = frozenset()  # (module, kernel) of the jobs _helper got
CORE_SHARE = 0.5  # the prestarted helper's CPU share that shows a core to spare (_got_a_core)


# ------------------------------------------------------------------ type descriptions

def describe(t: Any) -> Any:
    """A JSON-able description of a Numba argument type (see :func:`rebuild`)."""
    from numba.core import types

    if isinstance(t, types.Array):
        d: dict = {"a": str(t.dtype), "nd": t.ndim, "l": t.layout}
        if not t.mutable:
            d["ro"] = True
        if not t.aligned:
            d["unaligned"] = True
        return d
    if isinstance(t, types.UniTuple):
        return {"unituple": describe(t.dtype), "n": t.count}
    if isinstance(t, types.Tuple):
        return {"tuple": [describe(x) for x in t.types]}
    if isinstance(t, types.NoneType):
        return "none"
    if isinstance(t, (types.Integer, types.Float, types.Boolean)) and str(t) in SCALARS:
        return str(t)
    raise ValueError(f"no description for the Numba type {t!r}")


def rebuild(d: Any) -> Any:
    """The Numba type a :func:`describe` description stands for; ValueError if malformed."""
    import numpy as np
    from numba import from_dtype
    from numba.core import types

    if isinstance(d, str):
        if d not in SCALARS:
            raise ValueError(f"unknown scalar kind {d!r}")
        return {"none": types.none, "bool": types.boolean}.get(d) or getattr(types, d)
    if isinstance(d, dict) and "a" in d:
        if d["a"] not in DTYPES or d.get("l") not in ("C", "F", "A"):
            raise ValueError(f"bad array description {d!r}")
        nd = d.get("nd")
        if not isinstance(nd, int) or not 0 <= nd <= 8:
            raise ValueError(f"bad array rank in {d!r}")
        return types.Array(from_dtype(np.dtype(d["a"])), nd, d["l"],
                           readonly=bool(d.get("ro")), aligned=not d.get("unaligned"))
    if isinstance(d, dict) and "unituple" in d:
        return types.UniTuple(rebuild(d["unituple"]), int(d["n"]))
    if isinstance(d, dict) and "tuple" in d:
        return types.Tuple([rebuild(x) for x in d["tuple"]])
    raise ValueError(f"bad type description {d!r}")


def dispatcher(module: str, kernel: str) -> Any:
    """The ``@njit`` dispatcher *module*.*kernel* (an ``engine.kernels`` module only)."""
    if not module.startswith("engine.kernels."):
        raise ValueError(f"{module!r} is not a kernel module")
    obj = getattr(importlib.import_module(module), kernel)
    if not hasattr(obj, "compile") or not hasattr(obj, "py_func"):
        raise ValueError(f"{module}.{kernel} is not a Numba dispatcher")
    return obj


# ------------------------------------------------------------------ the manifest

@cache
def manifest() -> dict:
    """The shipped manifest ({} when missing or unreadable: then nothing is precompiled)."""
    try:
        return json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return {}


def _entries(items: Iterable) -> list[Entry]:
    return [(e[0], e[1], tuple(json.dumps(a, sort_keys=True) for a in e[2])) for e in items]


def params_key(params: dict) -> str:
    """A short, stable key of an equation's params: the manifest notes under which params an
    op called each signature (a GELU's approximation, a causal mask), so a graph's helper
    compiles what its own ops call rather than every variant the op has."""
    try:
        text = json.dumps(params, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # unsortable keys or a cycle: treated as params unseen
        return ""
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _for_params(rows: list, key: str | None) -> list:
    """*rows* recorded under params *key*, or all of them when none was (params unseen)."""
    chosen = [r for r in rows if key is not None and len(r) > 3 and key in r[3]]
    return chosen or rows


def needed(ops: Sequence[str | tuple[str, str]], dtype: str, optimizer: str | None
           ) -> list[Entry]:
    """The signatures a step of a graph with *ops* (its primitive ops in program order: names,
    or ``(name, params_key(params))``) calls, in the order the main process meets them:
    forward in op order, backward in reverse op order, then the trainer's and the optimizer's
    kernels."""
    m = manifest()
    per_op = m.get("ops", {})
    pairs = [(op, None) if isinstance(op, str) else (op[0], op[1]) for op in ops]
    order: list = []
    for phase, seq in (("forward", pairs), ("backward", pairs[::-1])):
        for name, key in dict.fromkeys(seq):
            order += _for_params(per_op.get(name, {}).get(dtype, {}).get(phase, []), key)
    order += m.get("trainer", {}).get(dtype, [])
    if optimizer is not None:
        order += m.get("optimizers", {}).get(optimizer, {}).get(dtype, [])
    return list(dict.fromkeys(_entries(order)))


def signature(entry: Entry) -> tuple:
    """The Numba argument types of *entry*."""
    return tuple(rebuild(json.loads(a)) for a in entry[2])


def cached_signatures(disp: Any) -> set[tuple]:
    """Argument-type tuples in *disp*'s on-disk index for its current source (no compile)."""
    impl = getattr(disp, "_cache", None)
    cache_file = getattr(impl, "_cache_file", None)
    if cache_file is None:
        return set()
    with contextlib.suppress(Exception):  # a torn or foreign index counts as empty
        return {tuple(key[0]) for key in cache_file._load_index()}
    return set()


def compiled_or_cached(disp: Any, sig: tuple) -> bool:
    """Whether *disp* runs *sig* without compiling: compiled in this process, or in the
    on-disk cache (a call then loads it)."""
    return sig in disp.overloads or sig in cached_signatures(disp)


def never_cached(entries: Sequence[Entry], folder: str | None) -> bool:
    """Whether no kernel of *entries* has an index file in the cache *folder* (a fresh
    install): decided from file names alone, without importing Numba, so the helper starts
    before this process pays for that import."""
    if not folder or not Path(folder).is_dir():
        return True
    names = [p.name for p in Path(folder).glob("*/*.nbi")]
    return not any(n.startswith(f"{m.rsplit('.', 1)[-1]}.{k}-") for m, k, _ in entries
                   for n in names)


def missing(entries: Sequence[Entry]) -> list[Entry]:
    """The *entries* neither compiled in this process nor in the on-disk cache."""
    if "numba" not in sys.modules and never_cached(entries, os.environ.get("NUMBA_CACHE_DIR")):
        return list(entries)
    out = []
    indexes: dict[tuple[str, str], set] = {}
    for entry in entries:
        try:
            disp = dispatcher(entry[0], entry[1])
            sig = signature(entry)
        except (ImportError, AttributeError, ValueError):
            continue  # a stale manifest entry: nothing to help with
        if sig in disp.overloads:
            continue
        key = (entry[0], entry[1])
        if key not in indexes:
            indexes[key] = cached_signatures(disp)
        if sig not in indexes[key]:
            out.append(entry)
    return out


# ------------------------------------------------------------------ the helper

def _writable(folder: str | None) -> bool:
    if not folder:
        return False
    path = Path(folder)
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)
    return os.access(path, os.W_OK | os.X_OK)


def enabled() -> bool:
    """Whether a helper may run here: two cores or more, not opted out, a writable cache, and
    (unless ``WIREGRAD_PRECOMPILE=1`` forces it) a core to spare: a 1-minute load average
    below cores + 1. On an oversubscribed host the helper would only take CPU from the run it
    helps (measured at load 5.5 on 2 cores: char_gpt's cold first step 15-18 s with it, 12-14
    s without). The editor's worker (nice 5) gets one too: it used to compile beside the
    helper and waited longer with it, but now runs the twins meanwhile (engine.kernels.cold;
    Train → first step on an empty cache, offscreen, 2 runs each: spiral 2.16-2.39 s without
    a helper, 0.64-0.68 s with one; char_gpt 4.99-5.18 s against 1.28-1.33 s)."""
    setting = os.environ.get(OPT_OUT, "auto").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    cores = os.cpu_count() or 1
    if cores < 2 or not _writable(os.environ.get("NUMBA_CACHE_DIR")):
        return False
    return setting in ("1", "true", "yes", "on") or _load() < cores + 1


def _load() -> float:
    with contextlib.suppress(OSError, AttributeError):
        return os.getloadavg()[0]
    return 0.0


def worth_a_helper(missing_count: int, needed_count: int) -> bool:
    """Whether a helper pays for its start-up (~0.45 s of CPU, about as long as this process
    takes to reach its first kernel): only when a good part of the step's kernels must compile
    (a fresh install, a new dtype) — not for one or two (an edited graph, or variants a run
    may never call: the batch split's sum, another convolution route)."""
    return missing_count >= max(3, needed_count // 2)


def prestart() -> None:
    """On a fresh install (no kernel in the cache), start the helper now, before the graph is
    known, so that its Python, Numba and compiler start-up overlaps this process's; the first
    :func:`start` then hands it the work, or sends it away. Never raises."""
    global _helper, _waiting, _spawned_at
    with contextlib.suppress(Exception):
        folder = os.environ.get("NUMBA_CACHE_DIR")
        if (_helper is None and enabled()
                and not (folder and any(Path(folder).glob("*/*.nbi")))):
            _helper, _waiting, _spawned_at = _spawn(), True, time.monotonic()


def start(ops: Sequence[str | tuple[str, str]], dtype: str, optimizer: str | None = None
          ) -> subprocess.Popen | None:
    """Start the helper for a graph's kernels (or hand them to the one :func:`prestart`
    started) unless it is not needed or not allowed; returns it (or None). Never raises: a
    helper that cannot start only costs speed."""
    global _helper, _waiting, _handed
    try:
        waiting, _waiting = _waiting and _helper is not None and _helper.poll() is None, False
        if waiting and not _got_a_core():
            stop()
            return None
        if not waiting and (not enabled() or (_helper is not None and _helper.poll() is None)):
            return None
        wanted = needed(ops, dtype, optimizer)
        todo = missing(wanted)
        if not worth_a_helper(len(todo), len(wanted)):
            if waiting:
                stop()
            return None
        cache_lock.lock_cache_saves()
        if not waiting:
            _helper = _spawn()
        assert _helper is not None and _helper.stdin is not None
        jobs = [[m, k, [json.loads(a) for a in args]] for m, k, args in reversed(todo)]
        _helper.stdin.write((json.dumps(jobs) + "\n").encode())
        _helper.stdin.flush()  # stdin stays open: the helper exits when it closes
        _handed = frozenset((m, k) for m, k, _ in todo)
        return _helper
    except Exception:  # noqa: BLE001 - the helper is an optimisation only
        return None


def compiling(module: str, kernel: str) -> bool:
    """Whether this process's helper got *module*.*kernel* to compile and is still running
    (:mod:`engine.kernels.cold` runs the kernel's numpy twin meanwhile)."""
    return (module, kernel) in _handed and _helper is not None and _helper.poll() is None


def _got_a_core() -> bool:
    """Whether the prestarted helper ran as if it had a core of its own since it started (at
    least half of the wall time, counted up to the ~0.6 s its start-up takes): the 1-minute
    load average lags, this is the last fraction of a second. Forced helpers, other systems
    and too short a look count as yes."""
    if _helper is None or os.environ.get(OPT_OUT, "").strip() == "1":
        return True
    elapsed = time.monotonic() - _spawned_at
    used = _cpu_seconds(_helper.pid)
    if used is None or elapsed < 0.15:
        return True
    return used >= CORE_SHARE * min(elapsed, 0.6)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process *pid* (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _spawn() -> subprocess.Popen:
    """The helper process, waiting for its job line on stdin."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen([sys.executable, "-m", "engine.kernels.precompile"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, close_fds=True)


def stop() -> None:
    """End this process's helper now (tests; a run that wants its core back)."""
    global _helper, _handed
    proc, _helper, _handed = _helper, None, frozenset()
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def _exit_when_parent_ends() -> None:
    """Block on stdin until the parent closes it (or dies), then end this process."""
    with contextlib.suppress(Exception):
        while sys.stdin.buffer.read(4096):
            continue
    os._exit(0)


def _log(line: str) -> None:
    log = os.environ.get(LOG)
    if log:
        with contextlib.suppress(OSError), open(log, "a") as f:
            f.write(f"{time.time():.3f} {line}\n")


def compile_jobs(jobs: Iterable) -> int:
    """Compile (or load) each ``[module, kernel, argument descriptions]``; returns how many
    succeeded. A job that fails is skipped: the main process compiles it itself."""
    done = 0
    for module, kernel, args in jobs:
        t0 = time.time()
        try:
            dispatcher(module, kernel).compile(tuple(rebuild(a) for a in args))
            done += 1
            note = "ok"
        except Exception as exc:  # noqa: BLE001 - the main process compiles it itself
            note = f"failed: {type(exc).__name__}"
        _log(f"{time.time() - t0:.3f} {module}.{kernel} {note}")
    return done


def main() -> None:
    """The helper: read the job list (one JSON line), compile it, exit."""
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on Windows
        os.nice(HELPER_NICE)
    cache_lock.wait_for_lock()
    _log("0 started")
    with contextlib.suppress(Exception):  # ready the compiler while the jobs are decided
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    _log("0 ready")
    line = sys.stdin.buffer.readline()
    if not line.strip():
        os._exit(0)  # the parent closed the pipe before sending work
    threading.Thread(target=_exit_when_parent_ends, daemon=True).start()
    cache_lock.lock_cache_saves()
    compile_jobs(json.loads(line))
    os._exit(0)  # not a normal shutdown: the stdin watcher thread is still reading


if __name__ == "__main__":
    main()
