"""Instruction formats: how a task, a schema batch and a text become an instruction, and how the
answer is read back.

- ``oneke``: the OneKE / IEPile format — the instruction is a JSON object ``{"instruction", "schema",
  "input"}`` and the answer a JSON object keyed by schema item.
- ``knowlm-tuple``, ``knowlm-colon``, ``knowlm-json``: KnowLM's own prompt families — a natural-language
  instruction naming the schema, the text as the input, and answers as ``(head,relation,tail)`` lines,
  ``relation: head,tail`` lines, or a JSON list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from knowlm.errors import InputError
from knowlm.ie.parse import JsonRead, read_json
from knowlm.ie.schema import Schema
from knowlm.ie.tasks import Task


@dataclass(frozen=True)
class Instruction:
    instruction: str
    input: str | None = None


class Builder(Protocol):
    def __call__(
        self, task: Task, schema: Schema, text: str, lang: str, instruction: str | None = None
    ) -> Instruction:
        """The prompt parts for one schema batch and text; ``instruction`` replaces the built-in text."""
        ...


@dataclass(frozen=True)
class PromptFormat:
    name: str
    tasks: tuple[str, ...] | None
    """Tasks the format supports (None: every registered task)."""
    build: Builder
    read: Callable[[str], JsonRead]


def _oneke(task: Task, schema: Schema, text: str, lang: str, instruction: str | None = None) -> Instruction:
    body = {
        "instruction": instruction or task.instructions[lang],
        "schema": [task.schema_entry(item) for item in schema.items],
        "input": text,
    }
    return Instruction(json.dumps(body, ensure_ascii=False))


# KnowLM's families: (task, format) -> (zh, en) instruction with {schema}
_KNOWLM_TEXTS: dict[tuple[str, str], tuple[str, str]] = {
    ("re", "tuple"): (
        "已知候选关系：{schema}。请从输入中找出属于这些关系的全部三元组，每行写一个，格式为(头实体,关系,尾实体)。",
        "Candidate relations: {schema}. Find every triple in the input whose relation is one of these and "
        "write one per line as (head,relation,tail).",
    ),
    ("re", "colon"): (
        "已知候选关系：{schema}。请从输入中找出属于这些关系的全部三元组，每行写一个，格式为 关系: 头实体,尾实体。",
        "Candidate relations: {schema}. Find every triple in the input whose relation is one of these and "
        "write one per line as relation: head,tail.",
    ),
    ("re", "json"): (
        '已知候选关系：{schema}。请从输入中找出属于这些关系的全部三元组，以JSON列表作答，每项为{{"head": 头实体, "relation": 关系, "tail": 尾实体}}。',
        "Candidate relations: {schema}. Find every triple in the input whose relation is one of these and "
        'answer with a JSON list of {{"head": ..., "relation": ..., "tail": ...}} objects.',
    ),
    ("ner", "tuple"): (
        "已知实体类型：{schema}。请找出输入中属于这些类型的全部实体，每行写一个，格式为(实体类型,实体)。",
        "Entity types: {schema}. Find every entity of these types in the input and write one per line as "
        "(entity type,entity).",
    ),
    ("ner", "json"): (
        '已知实体类型：{schema}。请找出输入中属于这些类型的全部实体，以JSON列表作答，每项为{{"entity_type": 类型, "entity": 实体}}。',
        "Entity types: {schema}. Find every entity of these types in the input and answer with a JSON list "
        'of {{"entity_type": ..., "entity": ...}} objects.',
    ),
    ("ee", "json"): (
        '已知事件类型及论元角色：{schema}。请找出输入中的这些事件，以JSON列表作答，每项为{{"event_type": 类型, "trigger": 触发词, "arguments": [{{"role": 角色, "argument": 论元}}]}}。',
        "Event types with their argument roles: {schema}. Find these events in the input and answer with a "
        'JSON list of {{"event_type": ..., "trigger": ..., "arguments": [{{"role": ..., "argument": ...}}]}} '
        "objects.",
    ),
}


def _schema_text(task: Task, schema: Schema, lang: str) -> str:
    sep = "、" if lang == "zh" else ", "
    if task.name == "ee":
        return sep.join(f"{item.name}({sep.join(item.roles)})" for item in schema.items)
    return sep.join(schema.names)


def _knowlm(style: str) -> Builder:
    def build(
        task: Task, schema: Schema, text: str, lang: str, instruction: str | None = None
    ) -> Instruction:
        zh, en = _KNOWLM_TEXTS[(task.name, style)]
        template = instruction or (zh if lang == "zh" else en)
        return Instruction(template.format(schema=_schema_text(task, schema, lang)), text)

    return build


def _read_lines_as_list(output: str) -> JsonRead:
    """``(a,b,c)`` lines read as a JSON list of lists."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith(("(", "（"))]
    return read_json("[" + ",".join(lines) + "]") if lines else read_json(output)


_COLON_LINE = re.compile(r"^\s*([^:：\n]+?)\s*[:：]\s*(.+?)\s*[,，]\s*(.+?)\s*$")


def _read_colon_lines(output: str) -> JsonRead:
    """``relation: head,tail`` lines read as [head, relation, tail] lists."""
    rows = [[m[2], m[1], m[3]] for m in map(_COLON_LINE.match, output.splitlines()) if m]
    result = JsonRead(value=rows, found=bool(rows), complete=bool(rows))
    if not rows:
        result.problems.append("no 'relation: head,tail' line in the output")
    return result


_FORMATS: dict[str, PromptFormat] = {}


def register_format(fmt: PromptFormat) -> None:
    if fmt.name in _FORMATS:
        raise ValueError(f"prompt format {fmt.name!r} is already registered")
    _FORMATS[fmt.name] = fmt


register_format(PromptFormat("oneke", None, _oneke, read_json))  # any task, registered ones included
register_format(PromptFormat("knowlm-tuple", ("re", "ner"), _knowlm("tuple"), _read_lines_as_list))
register_format(PromptFormat("knowlm-colon", ("re",), _knowlm("colon"), _read_colon_lines))
register_format(PromptFormat("knowlm-json", ("re", "ner", "ee"), _knowlm("json"), read_json))


def format_names() -> list[str]:
    return list(_FORMATS)


def get_format(name: str, task: str) -> PromptFormat:
    if name not in _FORMATS:
        raise InputError(f"unknown prompt format {name!r}; choose one of {', '.join(_FORMATS)}")
    fmt = _FORMATS[name]
    if fmt.tasks is not None and task not in fmt.tasks:
        raise InputError(
            f"prompt format {name!r} does not support task {task!r}; it supports {', '.join(fmt.tasks)}"
        )
    return fmt


def detect_language(text: str) -> str:
    """'zh' when at least a fifth of the letters are CJK characters, else 'en'."""
    letters = [c for c in text if c.isalpha()]
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    return "zh" if letters and cjk / len(letters) >= 0.2 else "en"


def parse_oneke_instruction(value: Any, where: str) -> dict[str, Any]:
    """The OneKE instruction object of a data line (its ``instruction`` field is a JSON string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: 'instruction' is not a JSON string ({exc.msg})") from None
    if not isinstance(value, dict) or not {"schema", "input"} <= set(value):
        raise InputError(f"{where}: 'instruction' must hold an object with 'schema' and 'input'")
    return value
