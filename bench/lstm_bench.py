"""The recurrent `wiregrad bench` cases alone (engine/bench/lstm_case.py), as JSON:

    python bench/lstm_bench.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    from engine.bench import benchmark, lstm_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        cases = lstm_case.bench_cases(args.quick, print, benchmark)
    print(json.dumps(cases, indent=2))


if __name__ == "__main__":
    main()
