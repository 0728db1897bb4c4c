"""Regenerate engine/kernels/signatures.json, the kernel-signature manifest the cold-start
helper compiles from (engine.kernels.precompile). Run: python tools/kernel_signatures.py

It runs one training step of every preset (in its training dtype) and every op's registry
examples forward and backward in float32 and float64, recording each kernel signature called
from Python (compiled or loaded) under the op and phase that called it, in first-use order.
Rerun it after adding a kernel or changing the arrays an op hands its kernels
(tests/test_precompile_manifest.py fails until then).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# A fresh install's first step: the ops' parallel kernels are compiled on a helper thread,
# not in the step (engine.kernels.parallel.ready), so they are not the helper's to compile.
os.environ["WIREGRAD_COMPILE_AT_ONCE"] = "0"

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "engine" / "kernels" / "signatures.json"
TRAINER = ("trainer", "", "")  # (op, phase, params key) outside any op


class Recorder:
    """Records ``(module, kernel, argument types)`` of every kernel call from Python that
    found no compiled overload in this process, under the current (op, phase) label."""

    def __init__(self) -> None:
        # (op, phase, dtype) -> [module, kernel, argument types, params keys]
        self.calls: dict[tuple[str, str, str], list] = {}
        self.dtype = "float32"  # the dtype of the run being recorded (set by the driver)
        self._where = threading.local()
        self._last = TRAINER

    @property
    def label(self) -> tuple[str, str, str]:
        """This thread's (op, phase); in a thread the step spawned (the batch split, a
        convolution's second core), the one last entered by any thread."""
        return getattr(self._where, "label", None) or self._last

    @contextmanager
    def under(self, label: tuple[str, str, str]) -> Iterator[None]:
        before = getattr(self._where, "label", None)
        self._where.label = self._last = label
        try:
            yield
        finally:
            self._where.label = before
            self._last = before or TRAINER

    def wrap(self, fn: Callable, label: tuple[str, str]) -> Callable:
        """*fn* (an op's ``forward(ctx, params, *inputs)`` or backward) recording under
        *label* and the call's params key."""
        from engine.kernels.precompile import params_key

        def wrapped(ctx, params, *args, **kwargs):
            with self.under((*label, params_key(params))):
                return fn(ctx, params, *args, **kwargs)
        return wrapped

    @contextmanager
    def installed(self) -> Iterator[Recorder]:
        """Patch Numba's first-call path, every op's forward/backward and the optimizer."""
        from numba.core import dispatcher

        from engine.core import registry
        from engine.train.optim import Optimizer

        base = dispatcher._DispatcherBase
        original = base._compile_for_args
        recorder = self

        def compile_for_args(disp, *args, **kws):
            if disp.py_func.__module__.startswith("engine.kernels.") and not kws:
                types = tuple(disp.typeof_pyval(a) for a in args)
                recorder.add(disp, types)
            return original(disp, *args, **kws)

        specs = [s for s in registry.all_ops() if s.layer is None]
        saved = [(s, s.forward, s.backward) for s in specs]
        for s in specs:
            if s.forward is not None:
                s.forward = self.wrap(s.forward, (s.name, "forward"))
            if s.backward is not None:
                s.backward = self.wrap(s.backward, (s.name, "backward"))
        step, update = Optimizer.step, Optimizer._update

        def labelled(fn: Callable) -> Callable:  # the batch parts call _update themselves
            def optimizer_call(opt, *args, **kwargs):
                with recorder.under(("optimizer:" + opt.kind, "", "")):
                    return fn(opt, *args, **kwargs)
            return optimizer_call

        base._compile_for_args = compile_for_args
        Optimizer.step, Optimizer._update = labelled(step), labelled(update)
        try:
            yield self
        finally:
            base._compile_for_args = original
            Optimizer.step, Optimizer._update = step, update
            for s, fwd, bwd in saved:
                s.forward, s.backward = fwd, bwd

    def add(self, disp, types: tuple) -> None:
        from engine.kernels.precompile import describe

        entry = [disp.py_func.__module__, disp.py_func.__name__, [describe(t) for t in types]]
        op, phase, key = self.label
        _merge(self.calls.setdefault((op, phase, self.dtype), []), entry, key)


def _merge(rows: list, entry: list, key: str) -> None:
    """Add *entry* to *rows* (first-use order), noting params *key* once."""
    for row in rows:
        if row[:3] == entry[:3]:
            if key and key not in row[3]:
                row[3].append(key)
            return
    rows.append([*entry[:3], [key] if key else []])


def first_step(recorder: Recorder, name: str) -> None:
    """One training step of preset *name* in its training dtype."""
    from engine.graphs import presets
    from engine.train.trainer import Trainer

    doc, path = presets.load(name)
    trainer = Trainer(doc, base_dir=path.parent, steps=2)
    recorder.dtype = trainer.dtype
    trainer.train_step()


def examples(recorder: Recorder) -> None:
    """Every op's registry examples, forward and backward, in float32 and float64."""
    import numpy as np

    from engine.core import registry
    from engine.core.op_cases import build_case
    from engine.core.warmup import _run_once

    for spec in registry.all_ops():
        if spec.layer is not None:
            continue
        for dtype in (np.float32, np.float64):
            recorder.dtype = np.dtype(dtype).name
            for example in spec.examples:
                try:
                    _run_once(build_case(spec, example, dtype), dtype)
                except Exception:  # noqa: BLE001, S112 - an example that needs more context
                    continue


def optimizers(recorder: Recorder) -> None:
    """Every optimizer algorithm's step in float32 and float64, with and without momentum,
    Nesterov, weight decay and clipping."""
    import numpy as np

    from engine.ops.optimizer import OPTIMIZERS
    from engine.train.optim import Optimizer

    for kind in OPTIMIZERS:
        for dtype in ("float32", "float64"):
            recorder.dtype = dtype
            for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
                opt = Optimizer(kind=kind, momentum=momentum, nesterov=nesterov,
                                weight_decay=0.01, decay_names=frozenset({"w"}))
                params = {n: np.ones(4, dtype) for n in ("w", "b")}
                for scale in (1.0, 0.5):
                    opt.step(params, {n: np.ones(4, dtype) for n in params}, scale)


def record_unit(unit: str) -> list:
    """Record one unit in this process: ``preset:NAME``, ``optimizer:KIND`` or ``examples``;
    ``[op, phase, dtype, entry]`` rows in first-use order. Numba's first-call path sees a
    signature once per process, so each unit runs in a fresh process (:func:`record`)."""
    recorder = Recorder()
    with recorder.installed():
        kind, _, name = unit.partition(":")
        if kind == "preset":
            first_step(recorder, name)
        elif kind == "optimizers":
            optimizers(recorder)
        elif kind == "examples":
            examples(recorder)
        else:
            raise ValueError(f"unknown unit {unit!r}")
    return [[op, phase, dtype, e] for (op, phase, dtype), es in recorder.calls.items()
            for e in es]


def record(units: list[str]) -> tuple[dict, list[str]]:
    """Record each unit in its own process; the manifest and the units that failed."""
    rows: list = []
    failed = []
    for unit in units:
        proc = subprocess.run([sys.executable, __file__, "--unit", unit], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            failed.append(f"{unit}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        rows += json.loads(proc.stdout.strip().splitlines()[-1])
    calls: dict = {}
    for op, phase, dtype, entry in rows:
        got = calls.setdefault((op, phase, dtype), [])
        for key in entry[3] or [""]:
            _merge(got, entry, key)
    return build(calls), failed


def build(calls: dict[tuple[str, str, str], list]) -> dict:
    """The manifest from recorded calls: ops → dtype → phase, trainer and optimizers by dtype."""
    import numba

    out: dict = {"about": "generated by python tools/kernel_signatures.py; do not edit",
                 "numba": numba.__version__, "ops": {}, "optimizers": {}, "trainer": {}}
    for (name, phase, dtype), entries in calls.items():
        for entry in entries:
            if name == TRAINER[0]:
                out["trainer"].setdefault(dtype, []).append(entry[:3])
            elif name.startswith("optimizer:"):
                kind = name.split(":", 1)[1]
                out["optimizers"].setdefault(kind, {}).setdefault(dtype, []).append(entry[:3])
            else:
                out["ops"].setdefault(name, {}).setdefault(dtype, {}).setdefault(
                    phase, []).append(entry)
    out["ops"] = dict(sorted(out["ops"].items()))
    out["optimizers"] = dict(sorted(out["optimizers"].items()))
    return out


def preset_names() -> list[str]:
    return sorted(p.stem for p in (ROOT / "presets").glob("*.json"))


def units() -> list[str]:
    """What the manifest is recorded from: the presets, the optimizers, the registry examples."""
    return [f"preset:{n}" for n in preset_names()] + ["optimizers", "examples"]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--unit"]:
        print(json.dumps(record_unit(argv[1])))
        return 0
    manifest, failed = record(units())
    OUT.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    count = sum(len(v) for d in manifest["ops"].values() for p in d.values()
                for v in p.values())
    print(f"wrote {OUT.relative_to(ROOT)}: {len(manifest['ops'])} ops, {count} op signatures")
    for line in failed:
        print(f"could not run {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
