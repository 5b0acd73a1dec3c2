"""IE tasks as data: each task is one registry entry, not a branch in an if-chain.

A task = how its schema items appear in an instruction, the instruction texts (Chinese and English), how
to read the model's answer into typed items, the JSON schema of a valid answer (constrained decoding),
and how to write items back as an answer (training data).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from knowlm.errors import InputError
from knowlm.ie.results import Argument, Entity, Event, Item, Triple
from knowlm.ie.schema import (
    Schema,
    SchemaItem,
    item_from_dict,
    parse_spo,
    parse_typed_relation,
    parse_with_roles,
    text_item,
)

MISSING = {"", "nan", "none", "null", "无", "n/a", "-", "未知", "不存在"}


def text_value(value: Any) -> str | None:
    """A usable extracted string, or None for empty/missing markers (NAN, null, 无, ...)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return None if value.lower() in MISSING else value


def text_values(value: Any) -> list[str]:
    """One or several strings (a model may answer a list where one value was asked, or the reverse)."""
    values = value if isinstance(value, list) else [value]
    return [v for v in (text_value(x) for x in values) if v is not None]


def fold_key(name: str) -> str:
    """A key as compared with schema items: NFKC (full-width forms), case-folded, whitespace runs as one
    space. Nothing fuzzier: ``Person`` and ``ｐｅｒｓｏｎ`` match ``person``, ``persons`` does not."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


class Reading:
    """Counters for one answer: items dropped as not in the schema or as malformed."""

    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.malformed = 0
        self.problems: list[str] = []
        """Repairs made while reading (a key matched to a schema item only after folding)."""
        self.matched = False
        """The answer has the expected shape: keyed by schema items (or empty)."""


def _first(obj: dict[str, Any], *keys: str) -> Any:
    return next((obj[k] for k in keys if k in obj), None)


# ---- answer readers ---------------------------------------------------------------------------------


def _read_entities(value: Any, schema: Schema, reading: Reading) -> list[Item]:
    out: list[Item] = []
    for name, found in _by_key(
        value, schema, reading, ("entity_type", "type", "label"), ("entity", "text", "name")
    ):
        for v in found if isinstance(found, list) else [found]:
            texts = text_values(_first(v, "entity", "text", "name", "mention") if isinstance(v, dict) else v)
            if not texts and isinstance(v, dict | list):
                reading.malformed += 1  # structured, but not an entity we can read
            out.extend(Entity(name, t) for t in texts)
    return out


def _pair_reader(head_keys: tuple[str, ...], tail_keys: tuple[str, ...]) -> Callable[..., list[Item]]:
    def read(value: Any, schema: Schema, reading: Reading) -> list[Item]:
        out: list[Item] = []
        for name, found in _by_key(value, schema, reading, ("relation", "predicate", "type"), None):
            item = schema.get(name)
            for v in found if isinstance(found, list) and not _is_pair(found) else [found]:
                if isinstance(v, dict):
                    heads, tails = text_values(_first(v, *head_keys)), text_values(_first(v, *tail_keys))
                elif _is_pair(v):
                    heads, tails = text_values(v[0]), text_values(v[-1])
                else:
                    heads = tails = []
                if not heads or not tails:
                    if isinstance(v, dict | list) or text_value(v) is not None:
                        reading.malformed += 1  # a pair with a part missing, or not a pair at all
                    continue
                head_type, tail_type = (item.head_type, item.tail_type) if item else (None, None)
                out.extend(Triple(h, name, t, head_type, tail_type) for h in heads for t in tails)
        return out

    return read


def _is_pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) in (2, 3) and all(isinstance(x, str) for x in v)


def _read_events(value: Any, schema: Schema, reading: Reading) -> list[Item]:
    out: list[Item] = []
    for name, found in _by_key(value, schema, reading, ("event_type", "type"), None):
        item = schema.get(name)
        for v in found if isinstance(found, list) else [found]:
            if isinstance(v, str):  # trigger only (eet answers)
                if text_value(v):
                    out.append(Event(name, text_value(v)))
                continue
            if not isinstance(v, dict):
                reading.malformed += 1
                continue
            trigger = text_value(_first(v, "trigger", "event_trigger"))
            args_value = _first(v, "arguments", "args", "argument")
            arguments: list[Argument] = []
            if isinstance(args_value, dict):
                pairs = list(args_value.items())
            elif isinstance(args_value, list):
                pairs = [
                    (_first(a, "role"), _first(a, "argument", "text"))
                    for a in args_value
                    if isinstance(a, dict)
                ]
            else:
                pairs = []
            for role, arg in pairs:
                if not isinstance(role, str) or (item and item.roles and role not in item.roles):
                    if isinstance(role, str) and text_values(arg):
                        reading.unknown.append(f"{name}.{role}")
                    continue
                arguments.extend(Argument(role, t) for t in text_values(arg))
            if trigger is None and not arguments:
                reading.malformed += 1
                continue
            out.append(Event(name, trigger, arguments))
    return out


def _read_kg(value: Any, schema: Schema, reading: Reading) -> list[Item]:
    out: list[Item] = []
    for name, found in _by_key(value, schema, reading, ("entity_type", "type"), None):
        item = schema.get(name)
        entities = found if isinstance(found, dict) else {}
        if not isinstance(found, dict) and found not in (None, [], ""):
            reading.malformed += 1
        for entity, attributes in entities.items():
            if not isinstance(attributes, dict) or text_value(entity) is None:
                reading.malformed += 1
                continue
            for attribute, values in attributes.items():
                if item and item.roles and attribute not in item.roles:
                    reading.unknown.append(f"{name}.{attribute}")
                    continue
                out.extend(Triple(entity.strip(), attribute, v, head_type=name) for v in text_values(values))
    return out


def _by_key(
    value: Any,
    schema: Schema,
    reading: Reading,
    type_keys: tuple[str, ...],
    text_keys: tuple[str, ...] | None,
) -> list[tuple[str, Any]]:
    """(schema item name, what the model gave for it); keys outside the schema are counted and dropped.

    Answers keyed by schema item (OneKE) are the norm; a flat list of objects that name their type
    (e.g. [{"entity_type": ..., "entity": ...}]) or of tuples (type, text) is read too.
    """
    pairs: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        for entry in value:
            if isinstance(entry, dict):
                kind = _first(entry, *type_keys)
                if isinstance(kind, str):
                    pairs.append((kind, [entry]))
                else:
                    reading.malformed += 1
            elif isinstance(entry, list) and len(entry) == 3 and type_keys[0] in ("relation", "predicate"):
                pairs.append((str(entry[1]), [[entry[0], entry[2]]]))  # (head, relation, tail)
            elif isinstance(entry, list) and len(entry) == 2 and text_keys is not None:
                pairs.append((str(entry[0]), [entry[1]]))  # (type, text)
            else:
                reading.malformed += 1
    names = set(schema.names)
    folded = {fold_key(n): n for n in schema.names}
    kept = []
    for name, found in pairs:
        name = name.strip()
        if name not in names and (match := folded.get(fold_key(name))) is not None:
            reading.problems.append(f"read key {name!r} as {match!r}")
            name = match
        if name in names:
            kept.append((name, found))
        elif found not in (None, [], {}, ""):
            reading.unknown.append(name)
    reading.matched = reading.matched or bool(kept) or value in ({}, [])
    return kept


# ---- answers written from items (training data, few-shot examples) --------------------------------

Writer = Callable[[list[Item], Schema], dict[str, Any]]


def _write_strings(items: list[Item], schema: Schema) -> dict[str, Any]:
    """Entities by type (NER), or event triggers by event type (EET): lists of strings."""
    answer: dict[str, Any] = {name: [] for name in schema.names}
    for item in items:
        if isinstance(item, Entity | Event) and item.type in answer:
            answer[item.type].append(item.text if isinstance(item, Entity) else item.trigger)
    return answer


def _pair_writer(head: str, tail: str) -> Writer:
    def write(items: list[Item], schema: Schema) -> dict[str, Any]:
        answer: dict[str, Any] = {name: [] for name in schema.names}
        for item in items:
            if isinstance(item, Triple) and item.relation in answer:
                answer[item.relation].append({head: item.head, tail: item.tail})
        return answer

    return write


def _write_events(items: list[Item], schema: Schema) -> dict[str, Any]:
    answer: dict[str, Any] = {name: [] for name in schema.names}
    for item in items:
        if isinstance(item, Event) and item.type in answer:
            roles = schema.get(item.type).roles  # type: ignore[union-attr]
            args: dict[str, Any] = {role: "NAN" for role in roles}
            for arg in item.arguments:
                args[arg.role] = (
                    arg.text if args.get(arg.role) in (None, "NAN") else [*_as_list(args[arg.role]), arg.text]
                )
            answer[item.type].append({"trigger": item.trigger, "arguments": args})
    return answer


def _write_kg(items: list[Item], schema: Schema) -> dict[str, Any]:
    answer: dict[str, Any] = {name: {} for name in schema.names}
    for item in items:
        if isinstance(item, Triple) and item.head_type in answer:
            attributes = answer[item.head_type].setdefault(item.head, {})
            previous = attributes.get(item.relation)
            attributes[item.relation] = item.tail if previous is None else [*_as_list(previous), item.tail]
    return answer


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---- JSON schemas of valid answers (constrained decoding) --------------------------------------------

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _strings_schema(item: SchemaItem) -> dict[str, Any]:
    return _STRINGS


def _pair_schema(head: str, tail: str) -> Callable[[SchemaItem], dict[str, Any]]:
    return lambda item: {"type": "array", "items": _object({head: _STRING, tail: _STRING})}


def _event_schema(item: SchemaItem) -> dict[str, Any]:
    arguments = _object({role: _STRING for role in item.roles})
    return {"type": "array", "items": _object({"trigger": _STRING, "arguments": arguments})}


def _kg_schema(item: SchemaItem) -> dict[str, Any]:
    attributes = {
        "type": "object",
        "properties": {a: _STRING for a in item.roles},
        "additionalProperties": False,
    }
    return {"type": "object", "additionalProperties": attributes}


# ---- what an item counts as -----------------------------------------------------------------------


def _own_type(item: Item) -> str:
    """The schema item an entity, triple or event belongs to: its type or relation."""
    return item.relation if isinstance(item, Triple) else item.type


def _head_type(item: Item) -> str:
    return (item.head_type or "") if isinstance(item, Triple) else item.type


# KnowLM's prompt families (knowlm-tuple, knowlm-colon, knowlm-json): style -> (zh, en) instruction with
# {schema}

_RE_TEXTS: dict[str, tuple[str, str]] = {
    "tuple": (
        "已知候选关系：{schema}。请从输入中找出属于这些关系的全部三元组，每行写一个，格式为(头实体,关系,尾实体)。",
        "Candidate relations: {schema}. Find every triple in the input whose relation is one of these and "
        "write one per line as (head,relation,tail).",
    ),
    "colon": (
        "已知候选关系：{schema}。请从输入中找出属于这些关系的全部三元组，每行写一个，格式为 关系: 头实体,尾实体。",
        "Candidate relations: {schema}. Find every triple in the input whose relation is one of these and "
        "write one per line as relation: head,tail.",
    ),
    "json": (
        '已知候选关系：{schema}。请从输入中找出属于这些关系的全部三元组，以JSON列表作答，每项为{{"head": 头实体, "relation": 关系, "tail": 尾实体}}。',
        "Candidate relations: {schema}. Find every triple in the input whose relation is one of these and "
        'answer with a JSON list of {{"head": ..., "relation": ..., "tail": ...}} objects.',
    ),
}

_NER_TEXTS: dict[str, tuple[str, str]] = {
    "tuple": (
        "已知实体类型：{schema}。请找出输入中属于这些类型的全部实体，每行写一个，格式为(实体类型,实体)。",
        "Entity types: {schema}. Find every entity of these types in the input and write one per line as "
        "(entity type,entity).",
    ),
    "json": (
        '已知实体类型：{schema}。请找出输入中属于这些类型的全部实体，以JSON列表作答，每项为{{"entity_type": 类型, "entity": 实体}}。',
        "Entity types: {schema}. Find every entity of these types in the input and answer with a JSON list "
        'of {{"entity_type": ..., "entity": ...}} objects.',
    ),
}

_EE_TEXTS: dict[str, tuple[str, str]] = {
    "json": (
        '已知事件类型及论元角色：{schema}。请找出输入中的这些事件，以JSON列表作答，每项为{{"event_type": 类型, "trigger": 触发词, "arguments": [{{"role": 角色, "argument": 论元}}]}}。',
        "Event types with their argument roles: {schema}. Find these events in the input and answer with a "
        'JSON list of {{"event_type": ..., "trigger": ..., "arguments": [{{"role": ..., "argument": ...}}]}} '
        "objects.",
    ),
}


# ---- gold answers in list form (InstructKGC samples) -------------------------------------------


def _gold_entity(entry: dict[str, Any]) -> Item | None:
    text, kind = text_value(entry.get("entity")), text_value(entry.get("entity_type"))
    return Entity(kind, text) if text and kind else None


def _gold_triple(entry: dict[str, Any]) -> Item | None:
    head = text_value(entry.get("head", entry.get("subject")))
    relation = text_value(entry.get("relation", entry.get("predicate")))
    tail = text_value(entry.get("tail", entry.get("object")))
    if not (head and relation and tail):
        return None
    return Triple(head, relation, tail, entry.get("head_type"), entry.get("tail_type"))


def _gold_event(entry: dict[str, Any]) -> Item | None:
    kind = text_value(entry.get("event_type"))
    trigger = text_value(entry.get("event_trigger", entry.get("trigger")))
    arguments = [
        Argument(a["role"], text)
        for a in entry.get("arguments", [])
        if isinstance(a, dict) and isinstance(a.get("role"), str)
        for text in text_values(a.get("argument"))
    ]
    return Event(kind, trigger, arguments) if kind else None


# ---- the registry -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Task:
    name: str
    title: str
    kind: Literal["entity", "triple", "event"]
    instructions: dict[str, str]
    """OneKE-format instruction text per language (zh, en)."""
    batch_size: int
    """Schema items per prompt by default (IEPile splits large schemas into batches)."""
    schema_entry: Callable[[SchemaItem], Any]
    """How a schema item appears in the instruction's schema list."""
    reader: Callable[[Any, Schema, Reading], list[Item]]
    """Answer JSON -> typed items."""
    writer: Writer
    """Typed items -> the answer JSON (training data, few-shot examples)."""
    value_schema: Callable[[SchemaItem], dict[str, Any]]
    """The JSON schema of one schema item's value in a valid answer (constrained decoding)."""
    metrics: tuple[str, ...]
    """What scoring counts ('entity', 'triple', 'trigger', 'argument': `Item.key` / `argument_keys`); the
    first is the headline metric."""
    item_type: Callable[[Item], str] = _own_type
    """The schema item an extracted item belongs to (KG: the head's type)."""
    parse_item: Callable[[str, str], SchemaItem] | None = None
    """A compact schema string -> item (None: the plain name; see `knowlm.ie.schema`)."""
    needs_roles: str | None = None
    """When schema items must carry roles: what to call them in the error ("argument roles")."""
    prompt_texts: dict[str, tuple[str, str]] = field(default_factory=dict)
    """KnowLM's prompt families: style (tuple, colon, json) -> (zh, en) instruction with ``{schema}``."""
    gold_entry: Callable[[dict[str, Any]], Item | None] | None = None
    """One entry of a gold label in list form (InstructKGC's samples) -> an item, or None to skip it."""

    def read_answer(self, value: Any, schema: Schema) -> tuple[list[Item], Reading]:
        reading = Reading()
        return self.reader(value, schema, reading), reading

    def to_answer(self, items: list[Item], schema: Schema) -> dict[str, Any]:
        return self.writer(items, schema)

    def answer_json_schema(self, schema: Schema) -> dict[str, Any]:
        return _object({item.name: self.value_schema(item) for item in schema.items})


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> None:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    if set(task.instructions) != {"zh", "en"}:
        raise ValueError(f"task {task.name!r} needs instructions for zh and en")
    unknown = set(task.metrics) - {"entity", "triple", "trigger", "argument"}
    if not task.metrics or unknown:
        raise ValueError(f"task {task.name!r}: metrics must be some of entity, triple, trigger, argument")
    _TASKS[task.name] = task


def get_task(name: str) -> Task:
    key = name.strip().lower()
    if key not in _TASKS:
        raise InputError(f"unknown task {name!r}; choose one of {', '.join(_TASKS)}")
    return _TASKS[key]


def task_names() -> list[str]:
    return list(_TASKS)


def _event_entry(item: SchemaItem, trigger: Any = True) -> dict[str, Any]:
    return {"event_type": item.name, "trigger": trigger, "arguments": list(item.roles)}


register_task(
    Task(
        name="ner",
        title="named entity recognition",
        kind="entity",
        instructions={
            "zh": "你是命名实体识别专家。请找出input中属于schema所列实体类型的全部实体；没有出现的类型给出空列表。请用JSON字符串作答。",
            "en": "You are an expert in named entity recognition. Find every entity in the input that belongs to "
            "an entity type listed in the schema; give an empty list for types that do not occur. Answer with a "
            "JSON string.",
        },
        batch_size=6,
        schema_entry=lambda item: item.name,
        reader=_read_entities,
        writer=_write_strings,
        value_schema=_strings_schema,
        metrics=("entity",),
        prompt_texts=_NER_TEXTS,
        gold_entry=_gold_entity,
    )
)
register_task(
    Task(
        name="re",
        title="relation extraction",
        kind="triple",
        instructions={
            "zh": "你是关系抽取专家。请找出input中关系属于schema所列关系的全部三元组，给出头实体和尾实体；没有出现的关系给出空列表。请用JSON字符串作答。",
            "en": "You are an expert in relation extraction. Find every triple in the input whose relation is "
            "listed in the schema and give its head and tail; give an empty list for relations that do not "
            "occur. Answer with a JSON string.",
        },
        batch_size=4,
        schema_entry=lambda item: item.name,
        reader=_pair_reader(("head", "subject", "h"), ("tail", "object", "t")),
        writer=_pair_writer("head", "tail"),
        value_schema=_pair_schema("head", "tail"),
        metrics=("triple",),
        parse_item=parse_typed_relation,
        prompt_texts=_RE_TEXTS,
        gold_entry=_gold_triple,
    )
)
register_task(
    Task(
        name="spo",
        title="subject-predicate-object extraction",
        kind="triple",
        instructions={
            "zh": "你是SPO三元组抽取专家。请按照schema中的主体类型、谓词和客体类型，找出input中的全部SPO三元组；没有出现的谓词给出空列表。请用JSON字符串作答。",
            "en": "You are an expert in subject-predicate-object extraction. Following the subject type, "
            "predicate and object type in the schema, find every SPO triple in the input; give an empty list "
            "for predicates that do not occur. Answer with a JSON string.",
        },
        batch_size=4,
        schema_entry=lambda item: {
            "subject_type": item.head_type,
            "predicate": item.name,
            "object_type": item.tail_type,
        },
        reader=_pair_reader(("subject", "head", "s"), ("object", "tail", "o")),
        writer=_pair_writer("subject", "object"),
        value_schema=_pair_schema("subject", "object"),
        metrics=("triple",),
        parse_item=parse_spo,
        gold_entry=_gold_triple,
    )
)
register_task(
    Task(
        name="ee",
        title="event extraction",
        kind="event",
        instructions={
            "zh": "你是事件抽取专家。请找出input中属于schema所列事件类型的全部事件，给出触发词和各论元；没有出现的事件给出空列表，找不到的论元写NAN，有多个值的论元给出列表。请用JSON字符串作答。",
            "en": "You are an expert in event extraction. Find every event in the input whose type is listed in "
            "the schema, with its trigger and arguments; give an empty list for event types that do not occur, "
            "NAN for arguments that are absent, and a list for arguments with several values. Answer with a "
            "JSON string.",
        },
        batch_size=4,
        schema_entry=_event_entry,
        reader=_read_events,
        writer=_write_events,
        value_schema=_event_schema,
        metrics=("argument", "trigger"),
        parse_item=parse_with_roles,
        prompt_texts=_EE_TEXTS,
        gold_entry=_gold_event,
    )
)
register_task(
    Task(
        name="eet",
        title="event trigger extraction",
        kind="event",
        instructions={
            "zh": "你是事件触发词抽取专家。请找出input中属于schema所列事件类型的事件及其触发词；没有出现的事件类型给出空列表。请用JSON字符串作答。",
            "en": "You are an expert in event detection. Find the events in the input whose type is listed in "
            "the schema and give their trigger words; give an empty list for event types that do not occur. "
            "Answer with a JSON string.",
        },
        batch_size=4,
        schema_entry=lambda item: item.name,
        reader=_read_events,
        writer=_write_strings,
        value_schema=_strings_schema,
        metrics=("trigger",),
        gold_entry=_gold_event,
    )
)
register_task(
    Task(
        name="eea",
        title="event argument extraction",
        kind="event",
        instructions={
            "zh": "你是事件论元抽取专家。schema给出了事件类型、触发词和论元角色，请从input中找出各角色的论元；找不到的论元写NAN，有多个值的论元给出列表。请用JSON字符串作答。",
            "en": "You are an expert in event argument extraction. The schema gives event types, their triggers "
            "and argument roles; find the argument of each role in the input, NAN where it is absent and a list "
            "where it has several values. Answer with a JSON string.",
        },
        batch_size=4,
        schema_entry=lambda item: _event_entry(item, list(item.triggers)),
        reader=_read_events,
        writer=_write_events,
        value_schema=_event_schema,
        metrics=("argument",),
        parse_item=parse_with_roles,
        needs_roles="argument roles",
        gold_entry=_gold_event,
    )
)
register_task(
    Task(
        name="kg",
        title="knowledge graph construction (entities with attributes)",
        kind="triple",
        instructions={
            "zh": "你是知识图谱构建专家。请根据schema中的实体类型及其属性，从input中找出这些类型的实体和它们的属性值；没有的属性不要输出，有多个值的属性给出列表。请用可解析的JSON作答。",
            "en": "You are an expert in knowledge graph construction. Following the entity types and attributes "
            "in the schema, find the entities of these types in the input and their attribute values; leave "
            "out attributes that are absent and give a list for attributes with several values. Answer with "
            "parseable JSON.",
        },
        batch_size=1,
        schema_entry=lambda item: {"entity_type": item.name, "attributes": list(item.roles)},
        reader=_read_kg,
        writer=_write_kg,
        value_schema=_kg_schema,
        metrics=("triple",),
        item_type=_head_type,
        parse_item=parse_with_roles,
        needs_roles="attributes (type:attr1|attr2)",
        gold_entry=_gold_triple,
    )
)


# ---- user schemas: the task says how its compact items read ---------------------------------------


def parse_schema(task: str, spec: Any, *, source: str = "schema") -> Schema:
    """Validate a user schema for ``task``: a compact string, a list of strings/objects, or a Schema."""
    if isinstance(spec, Schema):
        return spec
    definition = get_task(task)
    if isinstance(spec, str):
        stripped = spec.strip()
        if stripped.startswith("["):
            try:
                spec = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise InputError(f"{source}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        else:
            spec = [part for part in re.split(r"[,，](?![^(]*\))", stripped) if part.strip()]
    if isinstance(spec, dict) and "schema" in spec:
        spec = spec["schema"]
    if not isinstance(spec, list):
        raise InputError(f"{source}: expected a list of schema items, got {type(spec).__name__}")
    if not spec:
        raise InputError(f"{source}: the schema is empty; name at least one type to extract")
    items = []
    for i, entry in enumerate(spec):
        where = f"{source}[{i}]"
        if isinstance(entry, str):
            parse = definition.parse_item or text_item
            items.append(parse(entry.strip(), where))
        elif isinstance(entry, dict):
            items.append(item_from_dict(entry, where))
        else:
            raise InputError(f"{where}: expected a string or an object, got {type(entry).__name__}")
    names = [item.name for item in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{source}: duplicate schema items: {', '.join(duplicates)}")
    missing = [item.name for item in items if not item.roles]
    if definition.needs_roles and missing:
        raise InputError(
            f"{source}: {definition.name} items need {definition.needs_roles}; missing for {', '.join(missing)}"
        )
    return Schema(definition.name, tuple(items))


def load_schema_file(task: str, path: str | Path) -> Schema:
    """Read a schema from a JSON file (a list, or an object with a "schema" list) or a text file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--schema-file {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg})") from None
        return parse_schema(task, data, source=str(path))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return parse_schema(task, lines, source=str(path))
