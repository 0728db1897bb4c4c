"""Typed node params: checking given values against :class:`~engine.core.registry.Param` specs,
and ``$name`` references inside layer definitions.

A layer definition's inner nodes may say ``"$d_model"``, ``"$d_model*4"`` or
``"$in_channels*$kernel_size*$kernel_size"`` (integers and ``$refs`` joined by ``*``, ``//``,
``+``, ``-``, evaluated left to right) to use the layer instance's params. A bare ``$ref``
may hold any value (a bool for ``when``, a string for a choice); nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import re
from typing import Any

from engine.core.registry import Param

TERM = r"(?:\$[A-Za-z_][A-Za-z0-9_]*|\d{1,9})"
EXPR_RE = re.compile(rf"^\s*{TERM}(?:\s*(?://|\*|\+|-)\s*{TERM})*\s*$")
TOKEN_RE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*|\d{1,9}|//|\*|\+|-")
SYMBOL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,15}$")
MAX_INT = 2**31 - 1


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_value(spec: Param, value: Any) -> str | None:
    """An error message if *value* does not fit *spec*, else ``None``."""
    if value is None:
        return None if spec.optional else "a value is required"
    kind = spec.kind
    if kind == "int":
        if not _is_int(value):
            return f"expected an integer, got {_show(value)}"
        if abs(value) > MAX_INT:
            return f"{value} is too large"
    elif kind == "float":
        if not _is_number(value):
            return f"expected a number, got {_show(value)}"
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"expected true or false, got {_show(value)}"
    elif kind == "choice":
        if value not in spec.choices:
            return f"expected one of {', '.join(map(str, spec.choices))}, got {_show(value)}"
    elif kind == "string":
        if not isinstance(value, str) or len(value) > 100_000:
            return f"expected a string, got {_show(value)}"
    elif kind == "shape":
        if not isinstance(value, list) or len(value) > 8:
            return f"expected a list of at most 8 sizes, got {_show(value)}"
        for d in value:
            ok = (_is_int(d) and 0 < d <= MAX_INT) or (
                isinstance(d, str) and SYMBOL_RE.fullmatch(d))
            if not ok:
                return f"sizes must be positive integers or symbols like 'B', got {_show(d)}"
    elif kind == "target_shape":  # reshape targets: sizes, symbols, and at most one -1
        if not isinstance(value, list) or len(value) > 8:
            return f"expected a list of at most 8 sizes, got {_show(value)}"
        for d in value:
            ok = (_is_int(d) and (0 < d <= MAX_INT or d == -1)) or (
                isinstance(d, str) and SYMBOL_RE.fullmatch(d))
            if not ok:
                return f"sizes must be positive integers, -1 or symbols like 'B', got {_show(d)}"
        if value.count(-1) > 1:
            return "at most one size may be -1"
    elif kind == "ints":
        if not isinstance(value, list) or len(value) > 8 or not all(_is_int(v) for v in value):
            return f"expected a list of integers, got {_show(value)}"
        if any(abs(v) > MAX_INT for v in value):
            return "integer too large"
    elif kind == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"expected a list of strings, got {_show(value)}"
    else:
        return f"unknown param kind {kind}"
    if _is_number(value) and kind in ("int", "float"):
        if spec.minimum is not None and value < spec.minimum:
            return f"{value} is below the minimum {spec.minimum}"
        if spec.maximum is not None and value > spec.maximum:
            return f"{value} is above the maximum {spec.maximum}"
        if spec.exclusive_maximum and spec.maximum is not None and value >= spec.maximum:
            return f"{value} must be below {spec.maximum}"
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def resolve_params(specs: list[Param], given: dict) -> tuple[dict, list[tuple[str, str]]]:
    """Defaults filled in and every value checked; returns (params, [(field, message)])."""
    problems: list[tuple[str, str]] = []
    known = {p.name for p in specs}
    for name in given:
        if name not in known:
            problems.append((name, "unknown param (expected one of: "
                             + ", ".join(sorted(known)) + ")" if known else "takes no params"))
    out: dict = {}
    for p in specs:
        value = given.get(p.name, p.default)
        if p.kind == "float" and _is_int(value):
            value = float(value)
        message = check_value(p, value)
        if message is not None:
            problems.append((p.name, message))
            value = p.default
        out[p.name] = value
    return out, problems


def substitute(value: Any, env: dict) -> Any:
    """Replace ``$name`` references in a node's params dict by the layer instance's params.

    Returns the substituted dict, or an error message (a ``str``) naming the bad reference.
    """
    try:
        return _sub(value, env)
    except _RefError as exc:
        return str(exc)


class _RefError(Exception):
    """A bad ``$reference`` inside a layer definition."""


def _ref(name: str, env: dict) -> Any:
    if name not in env:
        raise _RefError(f"reference to unknown layer param '{name}'")
    return env[name]


def _expr(text: str, env: dict) -> Any:
    """Evaluate ``$a*$b//2``-style integer arithmetic left to right."""
    tokens = TOKEN_RE.findall(text)
    if len(tokens) == 1:
        return _ref(tokens[0][1:], env) if tokens[0].startswith("$") else int(tokens[0])

    def term(tok: str) -> int:
        value = _ref(tok[1:], env) if tok.startswith("$") else int(tok)
        if not _is_int(value):
            raise _RefError(f"'{text}': arithmetic needs integer params")
        return value

    total = term(tokens[0])
    for op, tok in zip(tokens[1::2], tokens[2::2]):
        k = term(tok)
        if op == "//" and k == 0:
            raise _RefError(f"'{text}': division by zero")
        total = {"*": total * k, "//": total // k if k else 0, "+": total + k,
                 "-": total - k}[op]
        if abs(total) > MAX_INT:
            raise _RefError(f"'{text}' is too large")
    return total


def _sub(value: Any, env: dict) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        if not EXPR_RE.fullmatch(value):
            raise _RefError(f"bad reference {value!r} (use '$name' or '$name*4')")
        return _expr(value, env)
    if isinstance(value, list):
        return [_sub(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _sub(v, env) for k, v in value.items()}
    return value


def layer_params(ldef: dict) -> list[Param]:
    """The :class:`Param` specs a layer definition declares."""
    out = []
    for p in ldef.get("params", []):
        out.append(Param(
            name=p["name"], kind=p["kind"], default=p.get("default"),
            minimum=p.get("min"), maximum=p.get("max"), choices=tuple(p.get("choices", ())),
            doc=p.get("doc", ""), optional=bool(p.get("optional", False)),
        ))
    return out
