"""Render the README and docs screenshots into ``assets/screenshots/`` (Qt offscreen).

    python tools/screenshots.py                 # every shot
    python tools/screenshots.py training-spiral sampling-char_gpt
    python tools/screenshots.py --list
    python tools/screenshots.py --out /tmp/shots

Each shot is made by the GUI test that drives the editor into that state (the same code the
test suite checks): this script runs those tests with ``WIREGRAD_SCREENSHOTS`` naming the output
folder, and ``tests/gui/guihelp.save_screenshot`` writes there instead of the test's tmp folder.
A plain ``pytest`` run never writes into the checkout. To add a screenshot, write a GUI test
that calls ``save_screenshot(widget, NAME, tmp_path)`` and add ``NAME`` to :data:`SHOTS`.

Exit codes: 0 every requested shot written, 1 a test failed or a shot was not written,
2 bad usage (an unknown name).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "assets" / "screenshots"
PRESETS = ("char_gpt", "digits_cnn", "shapes_cnn", "sine_regression", "spiral_mlp")

_SCREENS = "tests/gui/test_editor_screens.py"
_SAMPLING = "tests/gui/test_training_sampling.py"

# name (the PNG's stem) -> the test that renders it
SHOTS: dict[str, str] = {
    **{f"editor-{p}": f"{_SCREENS}::test_main_window_screenshot[{p}]" for p in PRESETS},
    **{f"editor-{p}-auto-layout": f"{_SCREENS}::test_auto_layout_leaves_no_overlaps[{p}]"
       for p in PRESETS},
    "tutorial-built": "tests/gui/test_editor_build.py::test_build_spiral_mlp_from_empty_canvas",
    "training-spiral": f"{_SAMPLING}::test_screenshot_training_the_spiral",
    "sampling-char_gpt": f"{_SAMPLING}::test_screenshot_sampling_the_char_gpt",
    "predictions-spiral":
        "tests/gui/test_training_predictions.py::test_screenshot_decision_boundary_while_training",
    "embeddings-char_gpt":
        "tests/gui/test_training_embeddings.py::test_screenshot_embeddings_of_the_shipped_char_gpt",
    "import-shapes_cnn":
        "tests/gui/test_editor_import.py::test_import_opens_the_model_as_a_graph_with_layers",
    "seq2seq-dates":
        "tests/gui/test_training_seq2seq.py::test_cross_attention_map_per_block_and_head",
    "seq2seq-predictions": "tests/gui/test_training_seq2seq.py::"
        "test_live_predictions_show_decoded_pairs_wrong_ones_marked",
    "explorer-word_gpt":
        "tests/gui/test_editor_explorer.py::test_tokens_dock_shows_the_shipped_word_gpt",
    "sampling-word_gpt": "tests/gui/test_screenshot_word_pieces.py::"
        "test_screenshot_word_pieces_with_a_hover_tooltip",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python tools/screenshots.py",
                                     description="Render the README screenshots offscreen.")
    parser.add_argument("names", nargs="*", help="shots to render (default: all; see --list)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for the PNG files (default: assets/screenshots)")
    parser.add_argument("--list", action="store_true", help="print the shots and their tests")
    return parser.parse_args(argv)


def render(names: list[str], out: Path) -> list[str]:
    """Run the tests behind *names* writing into *out*; returns the names not written."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    tests = list(dict.fromkeys(SHOTS[n] for n in names))
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="wiregrad-shots-") as home:
        env = {**os.environ, "WIREGRAD_SCREENSHOTS": str(out), "WIREGRAD_HOME": home,
               "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
        env.pop("CI", None)  # a skipped shot is reported below, not as a CI failure
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "", "-p", "no:cacheprovider",
               "--durations=0", *tests]
        code = subprocess.call(cmd, cwd=ROOT, env=env)
    missing = [n for n in names
               if not (out / f"{n}.png").is_file() or (out / f"{n}.png").stat().st_mtime < started]
    if code != 0:
        print(f"screenshots: pytest exited {code}", file=sys.stderr)
    return missing if code == 0 else sorted(set(missing) | {"(a test failed)"})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, test in SHOTS.items():
            print(f"{name:32} {test}")
        return 0
    unknown = [n for n in args.names if n not in SHOTS]
    if unknown:
        print(f"screenshots: unknown shot(s) {', '.join(unknown)}; `--list` shows them",
              file=sys.stderr)
        return 2
    names = args.names or list(SHOTS)
    missing = render(names, args.out)
    if missing:
        print(f"screenshots: not written: {', '.join(missing)}", file=sys.stderr)
        return 1
    for name in names:
        print(f"wrote {args.out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
