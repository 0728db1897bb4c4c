"""Markdown tables for docs/word_gpt.md: the word GPT's validation curve (loss per token and
bits per character) beside the char GPT's, by step and at equal wall time.

Run: python tools/word_gpt_report.py WORD_METRICS.jsonl [CHAR_METRICS.jsonl]
(the char GPT's default: bench/char_gpt_5000_metrics.jsonl; its bpc is val_loss / ln 2).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def evals(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    out = [r for r in rows if r.get("kind") == "eval"]
    for r in out:
        r.setdefault("bpc", r["val_loss"] / math.log(2))  # a char model: loss / ln 2
    return out


def at_wall(curve: list[dict], wall: float) -> dict | None:
    """The last evaluation reached by *wall* seconds."""
    before = [r for r in curve if r["wall"] <= wall]
    return before[-1] if before else None


def main(argv: list[str]) -> None:
    word = evals(Path(argv[0]))
    char = evals(Path(argv[1]) if len(argv) > 1 else ROOT / "bench" / "char_gpt_5000_metrics.jsonl")
    by_step = {r["step"]: r for r in char}
    print("| step | word loss/token | word bpc | word wall (s) | char bpc (same step) | "
          "char bpc at the word run's wall |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in word:
        same = by_step.get(r["step"])
        wall = at_wall(char, r["wall"])
        print(f"| {r['step']} | {r['val_loss']:.4f} | {r['bpc']:.4f} | {r['wall']:.0f} | "
              + (f"{same['bpc']:.4f}" if same else "–") + " | "
              + (f"{wall['bpc']:.4f} (step {wall['step']})" if wall else "–") + " |")
    last = char[-1]
    print(f"\nchar GPT at its end: step {last['step']}, bpc {last['bpc']:.4f}, "
          f"wall {last['wall']:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
