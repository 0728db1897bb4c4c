"""``docs/ops.md``: the op registry rendered as Markdown (kept current by a test)."""

from __future__ import annotations

from engine.core import registry

HEADER = """# Op reference

Generated from the op registry by `wiregrad ops --markdown`; do not edit by hand
(`tests/test_cli.py` checks that this file is current).

Shapes use symbols for sizes that vary (`B` batch, `T` sequence). Variadic inputs are wired as
`name[0]`, `name[1]`, …
"""


def _ports(ports) -> str:
    if not ports:
        return "–"
    parts = []
    for p in ports:
        text = f"`{p.name}{'[…]' if p.variadic else ''}`"
        if p.dtype != "float":
            text += f" ({p.dtype})"
        if p.optional:
            text += " (optional)"
        parts.append(text)
    return ", ".join(parts)


def _params(spec) -> str:
    if not spec.params:
        return "–"
    parts = []
    for p in spec.params:
        extra = ""
        if p.kind == "choice":
            extra = " ∈ {" + ", ".join(map(str, p.choices)) + "}"
        parts.append(f"`{p.name}`: {p.kind} = `{p.default!r}`{extra}")
    return "<br>".join(parts)


def ops_markdown() -> str:
    lines = [HEADER]
    specs = registry.all_ops()
    for category in registry.CATEGORIES:
        group = [s for s in specs if s.category == category]
        if not group:
            continue
        lines.append(f"\n## {category}\n")
        lines.append("| op | summary | inputs | outputs | params |")
        lines.append("|---|---|---|---|---|")
        for s in group:
            summary = s.summary.replace("|", "\\|")
            lines.append(f"| `{s.name}` | {summary} | {_ports(s.inputs)} | {_ports(s.outputs)} "
                         f"| {_params(s)} |")
        for s in group:
            body = "\n".join(line.strip() for line in s.doc.strip().splitlines()[1:]).strip()
            if body:
                lines.append(f"\n**`{s.name}`** — {body}")
    return "\n".join(lines) + "\n"
