"""Grounded answer grammars: the task's JSON answer shape, with every extracted string a piece of the text.

`answer_grammar` turns an answer JSON schema (what ``Task.answer_json_schema`` gives) into a grammar in
llguidance's Lark syntax. Object keys and structure are fixed by the schema; every string the model
extracts (an entity, a head or tail, a trigger, an argument, a KG entity name) is a ``%regex
{"substring_chunks": ...}`` lexeme over the input text, so decoding cannot produce a string that is not
a contiguous substring of the input. The chunks are the JSON-escaped pieces of the text: a run of
letters or digits is one chunk (Latin-script words are taken whole), every other character is a chunk
of its own (so Chinese is taken character by character). Whitespace follows ``json.dumps`` (``", "``
and ``": "``), the form the training data uses.
"""

from __future__ import annotations

import json
import re
from typing import Any

from knowlm.config import SamplingParams
from knowlm.errors import InputError

_WORD = re.compile(r"[^\W_]+|.", re.S)
# the value an event argument or a KG attribute may take when the text has none
NONE_VALUE = "NAN"


def text_chunks(text: str) -> list[str]:
    """The JSON-escaped pieces whose contiguous runs are the allowed strings (see the module docstring).

    A word of CJK ideographs is split into characters: a Chinese mention may start anywhere."""
    pieces: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        if len(word) > 1 and any(_is_cjk(c) for c in word):
            pieces.extend(_cjk_split(word))
        else:
            pieces.append(word)
    return [json.dumps(p, ensure_ascii=False)[1:-1] for p in pieces]


def _is_cjk(c: str) -> bool:
    return "\u3040" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" or "\uf900" <= c <= "\ufaff"


def _cjk_split(word: str) -> list[str]:
    """Split a word at every CJK character, keeping runs of other letters or digits whole."""
    out: list[str] = []
    for c in word:
        if out and not _is_cjk(c) and not _is_cjk(out[-1][-1]):
            out[-1] += c
        else:
            out.append(c)
    return out


class _Builder:
    """Lark rules for a JSON schema, one rule per array or object; strings are the text's pieces."""

    def __init__(self, text: str | None) -> None:
        self.rules: list[str] = []
        self.text = text
        self.count = 0

    def rule(self, body: str) -> str:
        name = f"r{self.count}"
        self.count += 1
        self.rules.append(f"{name}: {body}")
        return name

    def string(self, allow_none: bool = False) -> str:
        """Any JSON string without a text; with one, a piece of it (or NAN where a value may be absent)."""
        if self.text is None:
            return "FREE"
        return "gnone" if allow_none else "gstr"

    def value(self, schema: dict[str, Any], allow_none: bool = False) -> str:
        kind = schema.get("type")
        if kind == "string":
            return self.string(allow_none)
        if kind == "array":
            item = self.value(schema.get("items", {"type": "string"}))
            return self.rule(f'"[" "]" | "[" {item} (", " {item})* "]"')
        if kind == "object":
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            if properties and not extra:
                parts = [
                    f"{_literal(json.dumps(name, ensure_ascii=False))} {_literal(': ')} "
                    f"{self.value(sub, allow_none=True)}"
                    for name, sub in properties.items()
                ]
                required = [
                    p for n, p in zip(properties, parts, strict=True) if n in schema.get("required", ())
                ]
                optional = [
                    p for n, p in zip(properties, parts, strict=True) if n not in schema.get("required", ())
                ]
                if not optional:
                    return self.rule(f'"{{" {_join(required)} "}}"')
                # the required members in order, then any of the optional ones (e.g. a KG entity's attributes)
                member = self.rule(" | ".join(optional))
                head = f'{_join(required)} (", " {member})*' if required else f'({member} (", " {member})*)?'
                return self.rule(f'"{{" {head} "}}"')
            if isinstance(extra, dict) and not properties:
                member = self.rule(f"{self.string()} {_literal(': ')} {self.value(extra)}")
                return self.rule(f'"{{" "}}" | "{{" {member} (", " {member})* "}}"')
            if not properties:
                return self.rule('"{" "}"')
        raise InputError(f"answer_grammar: unsupported JSON schema part {json.dumps(schema)[:200]}")


def _join(parts: list[str]) -> str:
    return ' ", " '.join(parts)


def _literal(value: str) -> str:
    """A Lark string literal for ``value``."""
    return json.dumps(value, ensure_ascii=False)


def answer_grammar(json_schema: dict[str, Any], text: str | None = None) -> str:
    """A Lark grammar (llguidance syntax) for answers valid under ``json_schema``; with ``text``, every
    string value is a contiguous piece of it (see the module docstring)."""
    builder = _Builder(text)
    top = builder.value(json_schema)
    lines = [f"start: {top}", *builder.rules]
    lines.append(r'FREE: /"(\\(["\\\/bfnrt]|u[a-fA-F0-9]{4})|[^"\\\x00-\x1F\x7F]){0,256}"/')
    if text is not None:
        chunks = text_chunks(text) or [" "]
        lines.append('gstr: "\\"" SPAN "\\""')
        lines.append(f'gnone: gstr | "\\"{NONE_VALUE}\\""')
        lines.append(f"SPAN: %regex {json.dumps({'substring_chunks': chunks}, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def answer_params(
    params: SamplingParams, shape: dict[str, Any], text: str, *, grounded: bool
) -> SamplingParams:
    """``params`` constrained to an answer of JSON shape ``shape`` whose lists close when they repeat an
    item (`knowlm.engines.constrain.ItemGuard`); ``grounded``: every string of it a piece of ``text``
    (the prompt's input)."""
    if not grounded:
        return params.replace(json_schema=shape, distinct_items=True)
    return params.replace(grammar=answer_grammar(shape, text), distinct_items=True)
