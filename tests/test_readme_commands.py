"""Every command line in README.md and docs/*.md runs verbatim (issue 14 §1).

The lines are taken from the documents' fenced code blocks: a line is a command when its first
word (after ``VAR=value`` assignments and ``nice -n N``) is one of :data:`COMMAND_WORDS`. They
run in document order (one test per document) through ``bash -c``, exactly as written, with:

* the current folder a fresh copy of the repository (so ``python bench/...`` and
  ``python tools/...`` find their files, and whatever a command writes lands in the copy,
  never in the checkout);
* ``HOME`` and ``WIREGRAD_HOME`` fresh temporary folders;
* a ``cd DIR`` line moving the following lines of the same block into ``DIR``.

Each must exit 0. Lines that cannot run here sit in :data:`EXCLUDED` with the reason; lines
that take longer than about a minute sit in :data:`SLOW` and run in the ``slow`` suite (with
everything else, in order). A test checks that both tables name only lines that still exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_WORDS = {"wiregrad", "python", "python3", "pip", "sudo", "torchrun", "cd"}
NOT_COMMANDS = {"json", "text", "output"}  # fenced blocks of these languages hold no commands

EXCLUDED = {
    'pip install -e ".[shakespeare]" && wiregrad':
        "installs packages into the environment and opens the editor (a GUI window)",
    'pip install -e ".[test]" && python -m pytest':
        "installs packages and runs this very suite; .ci/run runs it verbatim",
    "sudo apt-get install libegl1 libgl1 libopengl0 libfontconfig1 libdbus-1-3 libxkbcommon0 "
    "libglib2.0-0 fonts-dejavu-core": "needs root (system packages)",
    "sudo apt-get install libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 "
    "libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libx11-xcb1":
        "needs root (system packages)",
    "pip install torch==2.13.0": "installs packages into the environment",
    'pip install -e ".[torch]"': "installs packages into the environment",
}

SLOW = {
    "wiregrad train char_gpt --out runs/char_gpt_5000 --metrics runs/char_gpt_5000.jsonl "
    "--quiet": "the 5,000-step char-GPT run: about 35 minutes on two cores",
    "python bench/gpt_twin_curve.py --steps 5000 --wiregrad-metrics "
    "bench/char_gpt_5000_metrics.jsonl --out bench/gpt_curves.json":
        "5,000 PyTorch steps of the char-GPT twin: about 7 minutes (needs torch)",
    "python bench/gpt_curves_report.py bench/gpt_curves.json":
        "reads the curves the line before writes",
    "QT_QPA_PLATFORM=offscreen nice -n 10 python bench/ui_latency.py --seconds 20":
        "a latency benchmark: trains the char-GPT in the editor's worker for 20 s plus start-up",
    "python train.py --steps 500 --out run":
        "500 PyTorch steps of the exported char-GPT (needs torch)",
    "torchrun --standalone --nproc-per-node=4 train.py --steps 500 --out run":
        "four DDP processes for 500 steps on two cores (needs torch)",
    "wiregrad evaluate char_gpt --weights run/ckpt.safetensors":
        "evaluates the checkpoint the PyTorch run before writes",
    "wiregrad sample char_gpt --weights run/ckpt.safetensors":
        "samples from the checkpoint the PyTorch run before writes",
    'python sample.py --weights run/ckpt.safetensors --prompt "ROMEO:" -n 200':
        "samples with PyTorch from the checkpoint the PyTorch run before writes",
    "cd gpt_project": "enters the exported project for the PyTorch lines after it",
    "python dates_project/train.py --steps 20 --out dates_project/run":
        "20 PyTorch steps of the exported seq2seq_dates project (needs torch)",
    "wiregrad evaluate seq2seq_dates --weights dates_project/run/ckpt.safetensors --pairs 200":
        "evaluates the checkpoint the PyTorch run before writes",
    "wiregrad train presets/seq2seq_dates.json --out runs/seq2seq_dates --metrics "
    "runs/seq2seq_dates.jsonl":
        "the shipped seq2seq weights' recipe, 3,000 steps with exact-match evaluations: minutes "
        "on a busy host (287 s in a full suite beside two other jobs)",
    "python tools/screenshots.py":
        "renders every README screenshot offscreen (a minute or more; runs the GUI tests' code)",
}

SLOW_TIMEOUT = 3 * 3600  # the 5,000-step run
TIMEOUT = 280  # one default command, on a busy two-core machine


@dataclass(frozen=True)
class Line:
    document: str
    lineno: int
    block: int
    text: str  # the line as written, without a trailing comment

    def __str__(self) -> str:
        return f"{self.document}:{self.lineno}: {self.text}"


def _command_word(text: str) -> str | None:
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]
    if words[:1] == ["nice"]:
        words = words[3:] if words[1:2] == ["-n"] else words[1:]
    return words[0] if words and words[0] in COMMAND_WORDS else None


def _strip_comment(text: str) -> str:
    """The line without a trailing ``# comment`` (outside quotes)."""
    for match in re.finditer(r"\s+#", text):
        head = text[: match.start()]
        try:
            shlex.split(head)
        except ValueError:  # inside quotes
            continue
        return head.rstrip()
    return text.rstrip()


def command_lines() -> list[Line]:
    """Every command line of README.md and docs/*.md, in document order."""
    out: list[Line] = []
    block = 0
    for path in DOCUMENTS:
        fence = None
        for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stripped = raw.strip()
            if stripped.startswith("```"):
                fence = None if fence is not None else stripped[3:].strip().lower()
                block += 1
                continue
            if fence is None or fence in NOT_COMMANDS or not _command_word(stripped):
                continue
            out.append(Line(str(path.relative_to(ROOT)), lineno, block, _strip_comment(stripped)))
    return out


def _workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the repository to run in, and the environment (fresh HOME/WIREGRAD_HOME)."""
    work = tmp_path / "repo"
    anywhere = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".pytest_cache",
                                      ".ruff_cache", ".hypothesis", ".import_linter_cache")

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = {"runs", "build", "dist", ".venv", "venv"} if Path(folder) == ROOT else set()
        return set(anywhere(folder, names)) | (top & set(names))

    shutil.copytree(ROOT, work, symlinks=True, ignore=ignore)
    home, wg_home = tmp_path / "home", tmp_path / "wiregrad-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "WIREGRAD_HOME": str(wg_home),
           "QT_QPA_PLATFORM": "offscreen", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return work, env


def _run_lines(lines: list[Line], tmp_path: Path, timeout: int) -> list[str]:
    work, env = _workspace(tmp_path)
    cwd, block = work, None
    ran = []
    for line in lines:
        if line.block != block:
            cwd, block = work, line.block
        if _command_word(line.text) == "cd":
            cwd = (cwd / shlex.split(line.text)[1]).resolve()
            assert cwd.is_dir() and cwd.is_relative_to(tmp_path), f"{line}: no such folder"
            continue
        proc = subprocess.run(["bash", "-c", line.text], cwd=cwd, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        assert proc.returncode == 0, (f"{line}\nexit {proc.returncode}\n--- stdout\n"
                                      f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
        assert "Traceback" not in proc.stderr, f"{line}\n{proc.stderr[-3000:]}"
        ran.append(line.text)
    return ran


def test_every_table_entry_names_a_line_that_exists():
    texts = {line.text for line in command_lines()}
    assert not set(EXCLUDED) & set(SLOW)
    assert set(EXCLUDED) <= texts, f"stale exclusions: {set(EXCLUDED) - texts}"
    assert set(SLOW) <= texts, f"stale slow lines: {set(SLOW) - texts}"
    assert all(reason for reason in [*EXCLUDED.values(), *SLOW.values()])


def test_the_parser_finds_the_headless_commands():
    texts = [line.text for line in command_lines()]
    first = "wiregrad train spiral_mlp --out runs/spiral --metrics runs/spiral.jsonl"
    assert first in texts  # the comment after it is not part of the command
    assert texts.index(first) < texts.index(
        "wiregrad evaluate spiral_mlp --weights runs/spiral/weights.safetensors")
    assert "python bench/ui_latency.py --seconds 20" in " ".join(texts)


def _documents_with_commands() -> list[str]:
    return sorted({x.document for x in command_lines()
                   if x.text not in EXCLUDED and x.text not in SLOW})


@pytest.mark.timeout(900)  # a few commands of ~20 s each; generous for a loaded machine
@pytest.mark.parametrize("document", _documents_with_commands())
def test_readme_and_docs_commands_run_verbatim(tmp_path, document):
    """One document at a time (its lines depend only on earlier lines of the same document)."""
    lines = [x for x in command_lines() if x.document == document
             and x.text not in EXCLUDED and x.text not in SLOW]
    ran = _run_lines(lines, tmp_path, TIMEOUT)
    assert ran == [x.text for x in lines]
    if document == "README.md":
        assert len(ran) >= 9


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.timeout(SLOW_TIMEOUT + 600)
def test_every_command_including_the_long_ones_runs_verbatim(tmp_path):
    pytest.importorskip("torch")
    lines = [x for x in command_lines() if x.text not in EXCLUDED]
    ran = _run_lines(lines, tmp_path, SLOW_TIMEOUT)
    assert set(SLOW) - {"cd gpt_project"} <= set(ran)


def test_ci_runs_the_readme_test_command_verbatim_with_ci_true():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    match = re.search(r"^TEST_CMD='(.*)'$", script, re.M)
    assert match, ".ci/run must define TEST_CMD"
    readme = [x.text for x in command_lines() if x.document == "README.md"]
    assert match.group(1) in readme and match.group(1) in EXCLUDED
    assert 'bash -c "$TEST_CMD"' in script
    assert re.search(r"^export CI=true$", script, re.M)


def test_no_test_writes_into_the_screenshots_folder():
    """Screenshots come from `python tools/screenshots.py`; tests save theirs to tmp_path."""
    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name in (Path(__file__).name, "test_screenshots_tool.py"):  # read docs only
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"""["']assets["']|assets/screenshots""", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
    assert "WIREGRAD_SCREENSHOTS" in (ROOT / "tools" / "screenshots.py").read_text()
