"""Render bench/gpt_curves.json (from bench/gpt_twin_curve.py) as the table in docs/char_gpt.md.

    python bench/gpt_curves_report.py bench/gpt_curves.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(data: dict) -> str:
    twin = {r["step"]: r for r in data["torch_twin"]}
    ours = {r["step"]: r for r in data["wiregrad"]}
    lines = ["| step | Wiregrad val loss | PyTorch twin val loss | difference |",
             "|---:|---:|---:|---:|"]
    for step in sorted(set(twin) & set(ours)):
        a, b = ours[step]["val_loss"], twin[step]["val_loss"]
        lines.append(f"| {step} | {a:.4f} | {b:.4f} | {a - b:+.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text())))
