"""Regenerate the preset documents in presets/ (run: python tools/make_presets.py [NAME…]).

Presets are data; the templates in engine/graphs/builders.py are how we author them reproducibly.
A preset's ``weights`` reference (path + sha256) is kept when its weights file exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.base.io import sha256_file  # noqa: E402
from engine.core import document  # noqa: E402
from engine.graphs.builders import TEMPLATES  # noqa: E402


def main(names: list[str]) -> None:
    for name in names or list(TEMPLATES):
        doc = TEMPLATES[name]()
        weights = ROOT / "presets" / f"{name}.safetensors"
        if weights.is_file():
            doc["weights"] = {"path": weights.name, "sha256": sha256_file(weights)}
        path = ROOT / "presets" / f"{name}.json"
        document.save(doc, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
