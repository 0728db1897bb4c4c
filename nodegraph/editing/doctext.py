"""Op and param docs (written as reStructuredText-ish docstrings in the engine) as readable
text for the inspector: ``code`` set as code, roles and back-quotes dropped, the docstring's
indentation removed and its wrapped lines joined into paragraphs. Plain functions, no Qt."""

from __future__ import annotations

import html
import inspect
import re

_LITERAL = re.compile(r"``(.+?)``")
_ROLE = re.compile(r":[A-Za-z_:]+:`~?([^`]+)`")
_INTERPRETED = re.compile(r"(?<![`\w])`([^`]+)`(?![`\w])")
_LIST_ITEM = re.compile(r"^\s*([-*•]|\d+[.)])\s+")
WRAPPED = 60  # a line at least this long was wrapped by its author: join it with the next


def paragraphs(text: str) -> list[list[str]]:
    """Blank-line separated paragraphs; each a list of lines, wrapped prose joined."""
    out: list[list[str]] = []
    for block in re.split(r"\n\s*\n", inspect.cleandoc(text or "")):
        lines: list[str] = []
        for raw in block.splitlines():
            line = raw.strip()
            if not line:
                continue
            joins = lines and len(lines[-1]) >= WRAPPED and not _LIST_ITEM.match(line)
            if joins:
                lines[-1] = f"{lines[-1]} {line}"
            else:
                lines.append(line)
        if lines:
            out.append(lines)
    return out


def doc_text(text: str) -> str:
    """Plain text (tooltips): no markup, paragraphs separated by a blank line."""
    def plain(line: str) -> str:
        line = _ROLE.sub(r"\1", line)
        line = _LITERAL.sub(r"\1", line)
        return _INTERPRETED.sub(r"\1", line)

    return "\n\n".join("\n".join(plain(line) for line in para) for para in paragraphs(text))


def doc_html(text: str) -> str:
    """Rich text (the inspector's doc label): literals as code, paragraphs as paragraphs."""
    def rich(line: str) -> str:
        parts = re.split(r"(``.+?``|:[A-Za-z_:]+:`~?[^`]+`)", line)
        out = []
        for part in parts:
            literal = _LITERAL.fullmatch(part) or _ROLE.fullmatch(part)
            if literal:
                out.append(f"<code>{html.escape(literal.group(1))}</code>")
            else:
                out.append(_INTERPRETED.sub(r"<i>\1</i>", html.escape(part)))
        return "".join(out)

    return "".join(f"<p>{'<br>'.join(rich(line) for line in para)}</p>"
                   for para in paragraphs(text))
