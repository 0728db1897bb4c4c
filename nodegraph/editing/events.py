"""Typed model events: what :class:`~nodegraph.editing.model.GraphModel` tells its views.

Every event is a frozen dataclass; views dispatch on the class (``isinstance`` or ``match``).
Events that concern one graph body carry its ``scope`` (``None`` for the document itself, or a
layer definition's name).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reset:
    """The whole document was replaced (open, recover)."""


@dataclass(frozen=True)
class NodeAdded:
    scope: str | None
    id: str


@dataclass(frozen=True)
class NodeRemoved:
    scope: str | None
    id: str


@dataclass(frozen=True)
class EdgeAdded:
    scope: str | None
    edge: dict


@dataclass(frozen=True)
class EdgeRemoved:
    scope: str | None
    edge: dict


@dataclass(frozen=True)
class ParamChanged:
    scope: str | None
    id: str
    name: str


@dataclass(frozen=True)
class UiChanged:
    """A node's ``ui`` entry changed (``key`` is e.g. ``"pos"`` or ``"title"``)."""

    scope: str | None
    id: str
    key: str


@dataclass(frozen=True)
class LayerChanged:
    name: str


@dataclass(frozen=True)
class ExtraChanged:
    key: str


@dataclass(frozen=True)
class MetaChanged:
    key: str


@dataclass(frozen=True)
class TrainingChanged:
    """A setting of the document's ``training`` block (steps, eval_every, seed, dtype …)."""

    key: str


Event = (Reset | NodeAdded | NodeRemoved | EdgeAdded | EdgeRemoved | ParamChanged | UiChanged
         | LayerChanged | ExtraChanged | MetaChanged | TrainingChanged)
