"""Write presets/word_gpt.json: the word GPT template with its BPE tokenizer trained on the
Shakespeare training split (cached) and stored in the document; the weights reference (path +
sha256) is kept when presets/word_gpt.safetensors exists. Run: python tools/make_word_gpt.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.base.io import sha256_file  # noqa: E402
from engine.core import document  # noqa: E402
from engine.data.tokenizers import store_tokenizers  # noqa: E402
from engine.graphs.word_gpt import word_gpt  # noqa: E402


def main() -> None:
    doc = store_tokenizers(word_gpt())
    weights = ROOT / "presets" / "word_gpt.safetensors"
    if weights.is_file():
        doc["weights"] = {"path": weights.name, "sha256": sha256_file(weights)}
    path = ROOT / "presets" / "word_gpt.json"
    document.save(doc, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
