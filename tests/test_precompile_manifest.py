"""The kernel-signature manifest (engine/kernels/signatures.json) stays honest: every kernel
signature a preset's first training step calls is one the cold-start helper would compile for
that graph. A new kernel, a changed layout or dtype fails here until the manifest is
regenerated with ``python tools/kernel_signatures.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.kernels import precompile

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "kernel_signatures.py"
ALL_PRESETS = sorted(p.stem for p in (ROOT / "presets").glob("*.json"))


def _recorded(preset: str) -> list:
    """``[op, phase, dtype, entry]`` rows of one first step, recorded in a fresh process."""
    proc = subprocess.run([sys.executable, str(TOOL), "--unit", f"preset:{preset}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _program_ops(preset: str) -> tuple[list[tuple[str, str]], str, str | None]:
    from engine.core.compile import compile_document
    from engine.core.document import training_settings
    from engine.graphs import presets

    doc, _ = presets.load(preset)
    dtype = training_settings(doc)["dtype"]
    program = compile_document(doc, dtype)
    algorithm = next((eq.params.get("algorithm") for eq in program.equations
                      if eq.op.category == "optimizer"), None)
    return ([(eq.op.name, precompile.params_key(eq.params)) for eq in program.equations],
            dtype, algorithm)


def _check(preset: str) -> None:
    ops, dtype, algorithm = _program_ops(preset)
    needed = {(m, k, tuple(json.dumps(a, sort_keys=True) for a in args))
              for m, k, args in [(e[0], e[1], [json.loads(a) for a in e[2]])
                                 for e in precompile.needed(ops, dtype, algorithm)]}
    rows = _recorded(preset)
    assert rows, f"{preset}: its first step called no kernel from Python?"
    stale = [f"{op} {phase}: {m}.{k}{tuple(args)}" for op, phase, _, (m, k, args, *_) in rows
             if (m, k, tuple(json.dumps(a, sort_keys=True) for a in args)) not in needed]
    assert not stale, (f"{preset}'s first step calls kernel signatures the manifest lacks; "
                       f"rerun python tools/kernel_signatures.py:\n" + "\n".join(stale))


@pytest.mark.parametrize("preset", ["spiral_mlp", "char_gpt"])
def test_a_preset_first_step_calls_only_manifest_signatures(preset):
    _check(preset)


@pytest.mark.slow
@pytest.mark.parametrize("preset", [p for p in ALL_PRESETS if p not in ("spiral_mlp",
                                                                         "char_gpt")])
def test_every_preset_first_step_calls_only_manifest_signatures(preset):
    _check(preset)
