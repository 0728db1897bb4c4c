"""Error types shared by the whole engine.

Every error a user can cause is a :class:`WiregradError`; it names the node, port or
field at fault so the CLI and the editor can point at it. The CLI maps the classes to
exit codes (see :data:`EXIT_CODES`).
"""

from __future__ import annotations


class WiregradError(Exception):
    """Bad input: an unreadable, invalid or unsupported graph, file or option (exit 2)."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        port: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.port = port
        self.field = field

    def __str__(self) -> str:
        where = []
        if self.node is not None:
            where.append(f"node '{self.node}'")
        if self.port is not None:
            where.append(f"port '{self.port}'")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        prefix = (", ".join(where) + ": ") if where else ""
        return prefix + self.message


class DocumentError(WiregradError):
    """The graph document cannot be read: malformed JSON, wrong structure, too large."""


class GraphError(WiregradError):
    """The graph is well-formed but cannot be compiled; carries every diagnostic."""

    def __init__(self, diagnostics: list, message: str | None = None) -> None:
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        first = errors[0] if errors else None
        text = message or (
            f"{len(errors)} error(s) in the graph; first: {first}" if first else "invalid graph"
        )
        super().__init__(text, node=None)


class MissingExtraError(WiregradError):
    """An optional dependency is not installed; the message gives the pip command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the optional package '{package}'. "
            f'Install it with:  pip install "wiregrad[{extra}]"'
        )
        self.package = package
        self.extra = extra


class NonFiniteError(WiregradError):
    """Training produced NaN or Inf; names the first node that did (exit 3)."""

    exit_code = 3
