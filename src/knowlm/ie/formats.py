"""Instruction formats: how a task, a schema batch and a text become an instruction, and how the
answer is read back.

- ``oneke``: the OneKE / IEPile format — the instruction is a JSON object ``{"instruction", "schema",
  "input"}`` and the answer a JSON object keyed by schema item.
- ``oneke-text-first``: the same object with the input before the schema, so that the prompts of one
  text's schema batches begin alike and an engine that reuses a shared prompt prefix (llama.cpp's
  scheduler) computes the text once; for models trained on that layout too (`convert-ie --text-first`).
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
from knowlm.ie.tasks import Task, get_task, task_names


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
    style: str | None
    """The task's prompt texts the format uses (`Task.prompt_texts`); a task without them is not
    supported. None: every registered task."""
    build: Builder
    read: Callable[[str], JsonRead]
    texts: str | None = None
    """The format whose instruction texts this one uses (a model's own texts are looked up by it)."""
    keyed_json: bool = False
    """Answers are JSON objects keyed by schema item, the shape constrained decoding enforces."""

    def supports(self, task: Task) -> bool:
        return self.style is None or self.style in task.prompt_texts


DESCRIPTIONS = {"en": " What each schema item means: {items}.", "zh": "各项的含义：{items}。"}


def with_descriptions(instruction: str, schema: Schema, lang: str) -> str:
    """``instruction`` followed by what each item of ``schema`` that has a description means."""
    described = [item for item in schema.items if item.description]
    if not described:
        return instruction
    sep, colon = ("；", "：") if lang == "zh" else ("; ", ": ")
    items = sep.join(f"{item.name}{colon}{(item.description or '').rstrip('。. ')}" for item in described)
    return instruction + DESCRIPTIONS["zh" if lang == "zh" else "en"].format(items=items)


def _oneke(task: Task, schema: Schema, text: str, lang: str, instruction: str | None = None) -> Instruction:
    body = {
        "instruction": with_descriptions(instruction or task.instructions[lang], schema, lang),
        "schema": [task.schema_entry(item) for item in schema.items],
        "input": text,
    }
    return Instruction(json.dumps(body, ensure_ascii=False))


def text_first_instruction(instruction: str) -> str:
    """A OneKE instruction (JSON string) with its input before its schema: the prompts of one text's schema
    batches then begin alike, and an engine that reuses a shared prompt prefix computes the text once."""
    body = json.loads(instruction)
    order = ("instruction", "input", "schema")
    return json.dumps({**{k: body[k] for k in order if k in body}, **body}, ensure_ascii=False)


def _oneke_text_first(
    task: Task, schema: Schema, text: str, lang: str, instruction: str | None = None
) -> Instruction:
    return Instruction(text_first_instruction(_oneke(task, schema, text, lang, instruction).instruction))


def _schema_text(schema: Schema, lang: str) -> str:
    """The schema as a prompt names it: items with roles (event types) list them in brackets."""
    sep = "、" if lang == "zh" else ", "
    return sep.join(f"{i.name}({sep.join(i.roles)})" if i.roles else i.name for i in schema.items)


def _knowlm(style: str) -> Builder:
    def build(
        task: Task, schema: Schema, text: str, lang: str, instruction: str | None = None
    ) -> Instruction:
        zh, en = task.prompt_texts[style]
        template = instruction or (zh if lang == "zh" else en)
        return Instruction(
            with_descriptions(template.format(schema=_schema_text(schema, lang)), schema, lang), text
        )

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


register_format(
    PromptFormat("oneke", None, _oneke, read_json, keyed_json=True)
)  # any task, registered ones too
register_format(
    PromptFormat("oneke-text-first", None, _oneke_text_first, read_json, texts="oneke", keyed_json=True)
)
register_format(PromptFormat("knowlm-tuple", "tuple", _knowlm("tuple"), _read_lines_as_list))
register_format(PromptFormat("knowlm-colon", "colon", _knowlm("colon"), _read_colon_lines))
register_format(PromptFormat("knowlm-json", "json", _knowlm("json"), read_json))


def format_names() -> list[str]:
    return list(_FORMATS)


def get_format(name: str, task: str) -> PromptFormat:
    if name not in _FORMATS:
        raise InputError(f"unknown prompt format {name!r}; choose one of {', '.join(_FORMATS)}")
    fmt = _FORMATS[name]
    if not fmt.supports(get_task(task)):
        supported = [t for t in task_names() if fmt.supports(get_task(t))]
        raise InputError(
            f"prompt format {name!r} does not support task {task!r}; it supports {', '.join(supported)}"
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
