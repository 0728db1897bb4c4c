"""The ``wiregrad`` console script.

``wiregrad SUBCOMMAND ...`` and ``wiregrad --help`` run headless through ``engine.cli``;
``wiregrad`` and ``wiregrad GRAPH`` open the editor. Qt is imported only on the editor path,
so the headless commands work on machines without a display or Qt's system libraries.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

# A superset of engine.cli.SUBCOMMANDS (checked by tests/test_launch.py), kept here so that
# deciding between editor and CLI needs no import.
HEADLESS_COMMANDS = frozenset(
    {
        "validate",
        "gradcheck",
        "ops",
        "train",
        "evaluate",
        "sample",
        "pack",
        "run",
        "export",
        "import",
        "embeddings",
        "bench",
    }
)

EXIT_BAD_INPUT = 2
_QT_PACKAGES = frozenset({"PySide6", "shiboken6", "pyqtgraph"})

_NO_EDITOR = (
    "wiregrad: the graph editor is not part of this build yet, so `wiregrad` and "
    "`wiregrad GRAPH` cannot open a window. The headless commands work: run "
    "`wiregrad --help` to list them (for example `wiregrad validate spiral_mlp`)."
)

_QT_FAILED = (
    "wiregrad: the editor could not load Qt ({error}). On Debian/Ubuntu install the system "
    "packages listed in README.md (libegl1, libgl1, libxkbcommon-x11-0, libxcb-cursor0, ...). "
    "The headless commands do not need Qt: run `wiregrad --help`."
)


def is_headless(args: Sequence[str]) -> bool:
    """True when *args* name a headless subcommand or an option such as ``--help``."""
    return bool(args) and (args[0] in HEADLESS_COMMANDS or args[0].startswith("-"))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``wiregrad`` script; always ends with :func:`sys.exit`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if is_headless(args):
        from engine import cli  # lazy: keeps `wiregrad` (editor) start-up independent of it

        sys.exit(cli.main(args))
    sys.exit(open_editor(args))


def open_editor(args: Sequence[str]) -> int:
    """Open the editor on ``args[0]`` (a graph file or preset name) or on a new graph."""
    if len(args) > 1:
        print(
            f"wiregrad: the editor takes at most one graph, got {len(args)} arguments; "
            "see `wiregrad --help` for the headless commands.",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if importlib.util.find_spec("nodegraph.app") is None:
        print(_NO_EDITOR, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        import nodegraph.app as app  # imports Qt
    except ImportError as exc:
        if not _is_qt_failure(exc):
            raise  # a bug in the editor itself: show the traceback
        print(_QT_FAILED.format(error=exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    return app.run_editor(args[0] if args else None)


def _is_qt_failure(exc: ImportError) -> bool:
    """Qt or pyqtgraph missing, or Qt's shared libraries not loadable (``libEGL.so.1`` ...)."""
    name = exc.name or ""
    return name.split(".")[0] in _QT_PACKAGES or ".so" in str(exc)


if __name__ == "__main__":
    main()
