"""The issue-20 `wiregrad bench` cases alone (engine/bench/first_step_cases.py): the spiral
MLP's cold and warm first step against PyTorch's, and with ``--editor`` the editor's training
rate against the CLI's. Prints the cases; ``--json PATH`` also writes them with the command
and the host's load before and after:

    python bench/first_step_bench.py [--editor] [--json PATH]

``--helper PRESET`` instead times the cold-start helper (engine.kernels.precompile): process
start to the first finished step of PRESET with an empty kernel cache, ``--runs`` times with
the helper off (``WIREGRAD_PRECOMPILE=0``) and on (forced, ``=1``; with ``--auto`` left to
decide, as for a user), alternating; each run prints its wall
seconds, the main process's CPU seconds, the load average, whether a helper started and when
it finished each kernel:

    python bench/first_step_bench.py --helper spiral_mlp --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from engine.bench import benchmark, first_step_cases

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editor", action="store_true", help="also editor_train_rate")
    parser.add_argument("--json", default=None)
    parser.add_argument("--helper", default=None, metavar="PRESET",
                        help="time the cold start with the compile helper off and on")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--auto", action="store_true",
                        help="with --helper: 'on' lets the helper decide (no forcing)")
    args = parser.parse_args()
    if args.helper:
        return helper_ab(args.helper, args.runs, args.json, "auto" if args.auto else "1")
    before = os.getloadavg()
    cases = first_step_cases.bench_cases(not args.editor, os.cpu_count() or 1, print,
                                         benchmark)
    made = {"command": "python bench/first_step_bench.py"
                       + (" --editor" if args.editor else "")
                       + (f" --json {args.json}" if args.json else ""),
            "load_average_before": before, "load_average_after": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": cases, "provenance": made}, indent=2)
                                   + "\n")
    return 0


def helper_ab(preset: str, runs: int, out: str | None, on: str = "1") -> int:
    """Cold first steps of *preset*, helper off then on (``WIREGRAD_PRECOMPILE`` = *on*),
    *runs* times; prints and returns 0."""
    records: dict[str, list] = {"off": [], "on": []}
    for _ in range(runs):
        for mode in ("off", "on"):
            record = _cold_run(preset, on if mode == "on" else "0")
            records[mode].append(record)
            print(mode, json.dumps(record), flush=True)
    summary = {m: {"wall_s": sorted(r["s"] for r in rs), "cpu_s": sorted(r["cpu_s"] for r in rs)}
               for m, rs in records.items()}
    print(json.dumps(summary))
    if out:
        auto = " --auto" if on == "auto" else ""
        made = {"command": f"python bench/first_step_bench.py --helper {preset} --runs {runs}"
                           f"{auto} --json {out}", "date": time.strftime("%Y-%m-%d %H:%M")}
        Path(out).write_text(json.dumps({"runs": records, "summary": summary,
                                         "provenance": made}, indent=2) + "\n")
    return 0


def _cold_run(preset: str, setting: str) -> dict:
    """One fresh process on an empty kernel cache; the probe's record, the load average and
    the helper's log (seconds after start, kernel)."""
    with tempfile.TemporaryDirectory(prefix="wiregrad-cold-") as home:
        log = Path(home) / "helper.log"
        env = {**os.environ, "WIREGRAD_HOME": home, "NUMBA_CACHE_DIR": f"{home}/numba",
               "WIREGRAD_PRECOMPILE": setting, "WIREGRAD_PRECOMPILE_LOG": str(log)}
        load = os.getloadavg()[0]
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "engine.bench.first_step", str(start),
                               preset], env=env, capture_output=True, text=True, check=True,
                              cwd=ROOT)
        record = {k: round(v, 3) for k, v in json.loads(proc.stdout.splitlines()[-1]).items()}
        time.sleep(1.0)  # the helper notices its parent ended
        lines = log.read_text().splitlines() if log.exists() else []
        record["load"] = load
        record["helper_started"] = any(ln.split()[2:3] == ["started"] for ln in lines)
        record["helper"] = [f"{float(t) - start:.2f} {what.rsplit('.', 1)[-1]}"
                            for t, _, what, *_ in (ln.split() for ln in lines)
                            if what not in ("started", "ready")]
    return record


if __name__ == "__main__":
    raise SystemExit(main())
