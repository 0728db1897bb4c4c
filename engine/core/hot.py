"""Hot settings: the params that may change while a run trains.

Declared once, on the op spec (``Param.hot``: the optimizer's rate, decay and clipping,
dropout's ``p``, batch norm's ``momentum``). A layer param is hot when every use of it inside
the layer passes it unchanged (``"$name"``) to a hot param of an inner node; used anywhere
else (a size, an expression) it is not. The trainer, the worker, the catalog (and through it
the editor's edit lock, training dock and run list) all read this module.
"""

from __future__ import annotations

import re
from collections import defaultdict

from engine.core import registry
from engine.core.compile import layer_definition
from engine.core.params import layer_params
from engine.core.registry import Param

# A hot param's targets: (inner node path relative to the instance, "" for the node itself;
# the primitive op's param name).
Target = tuple[str, str]

_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_WHOLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def hot_targets(type_name: str, doc_layers: dict | None = None) -> dict[str, list[Target]]:
    """``{param: [(inner path, primitive param), ...]}`` for the hot params of a node type."""
    return _targets(type_name, doc_layers or {}, frozenset())


def hot_param_names(type_name: str, doc_layers: dict | None = None) -> set[str]:
    """Names of the hot params of a node type (an op or a layer)."""
    return set(hot_targets(type_name, doc_layers))


def definition_hot_params(definition: dict, doc_layers: dict | None = None) -> set[str]:
    """Names of the hot params of a layer definition that has no type name yet."""
    return set(_layer_targets(definition, doc_layers or {}, frozenset()))


def param_specs(type_name: str, doc_layers: dict | None = None) -> dict[str, Param]:
    """The :class:`Param` specs of a node type, by name (empty for an unknown type)."""
    ldef = layer_definition(type_name, doc_layers or {})
    if ldef is not None:
        return {p.name: p for p in layer_params(ldef)}
    if registry.has(type_name):
        return {p.name: p for p in registry.get(type_name).params}
    return {}


def _targets(type_name: str, doc_layers: dict, seen: frozenset) -> dict[str, list[Target]]:
    if type_name in seen:  # a layer containing itself: compile reports it; nothing is hot
        return {}
    ldef = layer_definition(type_name, doc_layers)
    if ldef is not None:
        return _layer_targets(ldef, doc_layers, seen | {type_name})
    if not registry.has(type_name):
        return {}
    return {p.name: [("", p.name)] for p in registry.get(type_name).params if p.hot}


def _layer_targets(ldef: dict, doc_layers: dict, seen: frozenset) -> dict[str, list[Target]]:
    uses: dict[str, list[Target]] = defaultdict(list)
    cold: set[str] = set()
    for inner in ldef.get("nodes", []):
        inner_hot = _targets(inner.get("type", ""), doc_layers, seen)
        for key, value in (inner.get("params") or {}).items():
            refs = set(_REF.findall(value)) if isinstance(value, str) else _nested_refs(value)
            plain = _WHOLE.fullmatch(value) if isinstance(value, str) else None
            whole = plain.group(1) if plain else None
            for ref in refs:
                if ref == whole and key in inner_hot:
                    uses[ref] += [(_join(inner["id"], sub), p) for sub, p in inner_hot[key]]
                else:
                    cold.add(ref)
    return {name: targets for name, targets in uses.items() if name not in cold}


def _nested_refs(value) -> set[str]:
    if isinstance(value, str):
        return set(_REF.findall(value))
    if isinstance(value, list):
        return set().union(*(_nested_refs(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_nested_refs(v) for v in value.values())) if value else set()
    return set()


def _join(node_id: str, sub: str) -> str:
    return f"{node_id}.{sub}" if sub else node_id
