"""Extraction schemas, validated: what the user asks to extract, per task.

A schema is a list of items; each task has its own item kind. Users may give a schema as a list of
strings/objects (JSON; an object may carry a ``description`` of what the item means, which prompts include),
or for the CLI as one comma-separated string with a compact form per task:

| task | item | compact string form |
|---|---|---|
| ner | entity type | ``person,organization`` |
| re | relation (optional head/tail types) | ``founder,capital`` or ``founder(organization>person)`` |
| spo | subject type, predicate, object type | ``人物_毕业院校_学校`` |
| ee | event type + argument roles | ``裁员:裁员方|时间|裁员人数`` |
| eet | event type (triggers only) | ``裁员,起火`` |
| eea | event type + roles (+ known triggers) | ``裁员:裁员方|时间`` |
| kg | entity type + attributes | ``人物:出生日期|国籍`` |
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from knowlm.errors import InputError


@dataclass(frozen=True)
class SchemaItem:
    """One thing to extract. ``name`` is the key the model answers under (type, relation or event)."""

    name: str
    roles: tuple[str, ...] = ()
    """Event argument roles (ee, eea) or entity attributes (kg)."""
    head_type: str | None = None
    """Head/subject type (re, spo)."""
    tail_type: str | None = None
    """Tail/object type (re, spo)."""
    triggers: tuple[str, ...] = ()
    """Known triggers (eea)."""
    description: str | None = None
    """What the item means, in the user's words; prompts add it after the instruction (a relation the model
    never saw is then not only a name)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.roles:
            out["roles"] = list(self.roles)
        if self.head_type:
            out["head_type"] = self.head_type
        if self.tail_type:
            out["tail_type"] = self.tail_type
        if self.triggers:
            out["triggers"] = list(self.triggers)
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Schema:
    task: str
    items: tuple[SchemaItem, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]

    def get(self, name: str) -> SchemaItem | None:
        return next((item for item in self.items if item.name == name), None)

    def batches(self, size: int) -> list[Schema]:
        """Split into schemas of at most ``size`` items (IEPile-style schema batching)."""
        if size < 1:
            raise InputError(f"schema batch size must be at least 1, got {size}")
        return [Schema(self.task, self.items[i : i + size]) for i in range(0, len(self.items), size)]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in re.split(r"[|,，、]", value) if v.strip()]
    if not isinstance(value, list):
        raise InputError(f"{where}: expected a list of strings, got {type(value).__name__}")
    return tuple(_text(v, f"{where}[{i}]") for i, v in enumerate(value))


def parse_with_roles(text: str, where: str) -> SchemaItem:
    """``name:role1|role2`` (events and their argument roles, KG types and their attributes), or a name."""
    if ":" in text.replace("：", ":"):
        name, roles = text.replace("：", ":").split(":", 1)
        return SchemaItem(_text(name, where), roles=_strings(roles, where))
    return SchemaItem(_text(text, where))


def parse_spo(text: str, where: str) -> SchemaItem:
    """``subject type_predicate_object type``."""
    parts = text.split("_")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise InputError(f"{where}: an spo item is 'subject type_predicate_object type', got {text!r}")
    return SchemaItem(parts[1].strip(), head_type=parts[0].strip(), tail_type=parts[2].strip())


def parse_typed_relation(text: str, where: str) -> SchemaItem:
    """``relation(head type>tail type)``, or a relation name."""
    match = re.fullmatch(r"(.+?)\((.+?)>(.+?)\)", text)
    if match:
        return SchemaItem(match[1].strip(), head_type=match[2].strip(), tail_type=match[3].strip())
    return SchemaItem(_text(text, where))


_NAME_KEYS = ("name", "entity_type", "relation", "predicate", "event_type", "type")


def item_from_dict(obj: dict[str, Any], where: str) -> SchemaItem:
    """A schema item from its object form (``name``/``relation``/``event_type``..., roles, types)."""
    key = next((k for k in _NAME_KEYS if k in obj), None)
    if key is None:
        raise InputError(
            f"{where}: an item needs one of the fields {', '.join(_NAME_KEYS)}; got {sorted(obj)}"
        )
    roles = obj.get("roles", obj.get("arguments", obj.get("attributes")))
    triggers = obj.get("triggers", obj.get("trigger"))
    if isinstance(triggers, bool):  # OneKE's ee schema marks "trigger": true
        triggers = None
    description = obj.get("description")
    return SchemaItem(
        _text(obj[key], f"{where}.{key}"),
        roles=_strings(roles, f"{where}.roles"),
        head_type=obj.get("head_type", obj.get("subject_type")),
        tail_type=obj.get("tail_type", obj.get("object_type")),
        triggers=_strings(triggers, f"{where}.triggers"),
        description=None if description is None else _text(description, f"{where}.description"),
    )


def text_item(text: str, where: str) -> SchemaItem:
    """A schema item that is just a name."""
    return SchemaItem(_text(text, where))
