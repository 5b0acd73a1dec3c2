"""Typed extraction results. Offsets are character offsets into the input, end exclusive."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Spans = list[tuple[int, int]]


@dataclass
class Entity:
    type: str
    text: str
    spans: Spans = field(default_factory=list)
    grounded: bool | None = None
    confidence: float | None = None
    """How sure the model was of this item, in [0, 1] (`knowlm.ie.confidence`); None: not known."""

    def key(self) -> tuple[str, ...]:
        return (self.type, self.text)

    def mentions(self) -> list[tuple[str, str]]:
        return [("spans", self.text)]


@dataclass
class Triple:
    """A relation (re), an SPO triple (spo) or an entity attribute (kg: head=entity, relation=attribute)."""

    head: str
    relation: str
    tail: str
    head_type: str | None = None
    tail_type: str | None = None
    head_spans: Spans = field(default_factory=list)
    tail_spans: Spans = field(default_factory=list)
    grounded: bool | None = None
    confidence: float | None = None

    def key(self) -> tuple[str, ...]:
        return (self.head, self.relation, self.tail)

    def mentions(self) -> list[tuple[str, str]]:
        return [("head_spans", self.head), ("tail_spans", self.tail)]


@dataclass
class Argument:
    role: str
    text: str
    spans: Spans = field(default_factory=list)
    confidence: float | None = None


@dataclass
class Event:
    type: str
    trigger: str | None = None
    arguments: list[Argument] = field(default_factory=list)
    trigger_spans: Spans = field(default_factory=list)
    grounded: bool | None = None
    confidence: float | None = None

    def key(self) -> tuple[str, ...]:
        return (self.type, self.trigger or "")

    def argument_keys(self) -> list[tuple[str, ...]]:
        return [(self.type, a.role, a.text) for a in self.arguments]

    def mentions(self) -> list[tuple[str, str]]:
        return [("trigger_spans", self.trigger)] if self.trigger else []


Item = Entity | Triple | Event


def item_to_dict(item: Item) -> dict[str, Any]:
    out = asdict(item)
    for key, value in list(out.items()):
        if key.endswith("spans"):
            out[key] = [list(span) for span in value]
        elif value is None and key != "grounded":
            del out[key]
    for argument in out.get("arguments", []):
        if argument.get("confidence") is None:
            argument.pop("confidence", None)
    return out


def item_from_dict(data: dict[str, Any]) -> Item:
    """Rebuild an item from ``item_to_dict`` output (used when reading prediction files)."""
    data = dict(data)
    for key in [k for k in data if k.endswith("spans")]:
        data[key] = [tuple(span) for span in data[key]]
    if "relation" in data:
        return Triple(**data)
    if "arguments" in data or "trigger" in data:
        data["arguments"] = [
            Argument(**{**a, "spans": [tuple(s) for s in a.get("spans", [])]})
            for a in data.get("arguments", [])
        ]
        return Event(**data)
    return Entity(**data)
