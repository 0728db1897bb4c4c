"""The issue-20 `wiregrad bench` cases alone (engine/bench/first_step_cases.py): the spiral
MLP's cold and warm first step against PyTorch's, and with ``--editor`` the editor's training
rate against the CLI's. Prints the cases; ``--json PATH`` also writes them with the command
and the host's load before and after:

    python bench/first_step_bench.py [--editor] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from engine.bench import benchmark, first_step_cases

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editor", action="store_true", help="also editor_train_rate")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
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


if __name__ == "__main__":
    raise SystemExit(main())
