"""A forgiving JSON reader for model output.

Model answers are messy: JSON followed by chatter, code fences, single or Chinese quotes, full-width
commas and colons, Python literals, tuples, missing commas, unquoted words, lists cut off by the token
limit. ``read_json`` recovers every well-formed item, never raises, and lists what it repaired or dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "「": "」", "『": "』"}
_SEPARATORS = ",，、;；"
_COLONS = ":："
_OPENERS = {"{": "}", "[": "]", "(": ")", "（": "）", "【": "】"}
_ANY_CLOSER = "}])）】"
_BARE_END = set(_SEPARATORS + _COLONS + _ANY_CLOSER + "\n")
_LITERALS: dict[str, Any] = {"null": None, "none": None, "true": True, "false": False}
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)


class _EndOfText(Exception):
    """The text ended inside a value: that value is incomplete."""


@dataclass
class JsonRead:
    value: Any = None
    found: bool = False
    """A JSON object or list was found."""
    complete: bool = False
    """It was closed properly (the output was not cut off)."""
    problems: list[str] = field(default_factory=list)


class _Reader:
    """Recursive descent over a lenient JSON superset; raises _EndOfText if the text is cut off."""

    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0
        self.problems: list[str] = []

    def peek(self) -> str:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1
        if self.i >= len(self.s):
            raise _EndOfText
        return self.s[self.i]

    def value(self) -> Any:
        c = self.peek()
        if c == "{":
            return self.obj()
        if c in _OPENERS:
            if c != "[":
                self.problems.append(f"read {c!r}...{_OPENERS[c]!r} as a list")
            return self.array(_OPENERS[c])
        if c in _QUOTES:
            return self.string()
        return self.bare()

    def obj(self) -> dict[str, Any]:
        self.i += 1
        out: dict[str, Any] = {}
        while True:
            c = self.peek()
            if c in _ANY_CLOSER:
                self.i += 1
                return out
            if c in _SEPARATORS:
                self.i += 1
                continue
            start = self.i
            key = self.string() if c in _QUOTES else self.bare(key=True)
            if self.peek() in _COLONS:
                self.i += 1
                out[str(key)] = self.value()
            elif self.i == start:
                self.problems.append(f"skipped unexpected {self.s[self.i]!r}")
                self.i += 1
            else:
                self.problems.append(f"dropped key {key!r} without a value")

    def array(self, closer: str) -> list[Any]:
        self.i += 1
        out: list[Any] = []
        while True:
            c = self.peek()
            if c in _ANY_CLOSER:
                if c != closer:
                    self.problems.append(f"a list closed by {c!r} instead of {closer!r}")
                self.i += 1
                return out
            if c in _SEPARATORS:
                self.i += 1
                continue
            if c in _COLONS:
                self.problems.append(f"skipped unexpected {c!r}")
                self.i += 1
                continue
            out.append(self.value())

    def string(self) -> str:
        closer = _QUOTES[self.s[self.i]]
        closers = {closer, '"'} if closer == "”" else {closer}
        if self.s[self.i] != '"':
            self.problems.append("read non-JSON quotes")
        self.i += 1
        chars: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                nxt = self.s[self.i + 1]
                hexdigits = self.s[self.i + 2 : self.i + 6]
                if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", hexdigits):
                    chars.append(chr(int(hexdigits, 16)))
                    self.i += 6
                else:
                    chars.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(nxt, nxt))
                    self.i += 2
                continue
            self.i += 1
            if c in closers:
                return "".join(chars)
            chars.append(c)
        raise _EndOfText

    def bare(self, key: bool = False) -> Any:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in _BARE_END:
            self.i += 1
        if self.i >= len(self.s):
            raise _EndOfText  # a bare word at the very end may be cut off
        word = self.s[start : self.i].strip()
        if key or not word:
            return word
        if word.lower() in _LITERALS:
            return _LITERALS[word.lower()]
        if re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", word):
            return json.loads(word)
        self.problems.append("read unquoted text")
        return word


def read_json(text: str) -> JsonRead:
    """Recover the first JSON object or list in ``text`` (see the module docstring). Objects that follow
    it directly (``{"person": [...]} {"place": [...]}``, as small models write) are merged into it."""
    result = JsonRead()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    match = re.search(r"[{\[]", text)
    if match is None:
        result.problems.append("no JSON object or list in the output")
        return result
    body = text[match.start() :]
    result.found = True
    problems: list[str] = []
    result.value, end, result.complete = _read_value(body, problems)
    merged = 0
    while result.complete and isinstance(result.value, dict):
        follows = _NEXT_OBJECT.match(body, end)
        if follows is None:
            break
        extra_problems: list[str] = []
        extra, extra_end, complete = _read_value(body[follows.end() - 1 :], extra_problems)
        if not isinstance(extra, dict):
            break
        _merge_objects(result.value, extra)
        problems += extra_problems
        end, merged = follows.end() - 1 + extra_end, merged + 1
        result.complete = complete
    if merged:
        problems.append(f"merged {merged + 1} consecutive JSON objects")
    result.problems = list(dict.fromkeys(problems))
    return result


# another top-level object right after the first (whitespace or a separator between them)
_NEXT_OBJECT = re.compile(r"[\s,，;；]*\{")


def _read_value(body: str, problems: list[str]) -> tuple[Any, int, bool]:
    """(value, characters read, complete) of the JSON-like value at the start of ``body``."""
    try:  # the common case: valid JSON, perhaps followed by more text
        value, end = json.JSONDecoder().raw_decode(body)
        return value, end, True
    except json.JSONDecodeError:
        pass
    reader = _Reader(body)
    try:
        value = reader.value()
        problems += reader.problems
        return value, reader.i, True
    except _EndOfText:
        problems += reader.problems
        problems.append("the output was cut off; kept the complete items")
        return _read_truncated(body, problems), len(body), False
    except RecursionError:
        problems += reader.problems
        problems.append("nested too deeply to read")
        return None, len(body), False


def _merge_objects(into: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add ``extra``'s keys to ``into``: lists under the same key are joined, empty values filled."""
    for key, value in extra.items():
        old = into.get(key)
        if isinstance(old, list) and isinstance(value, list):
            old.extend(v for v in value if v not in old)
        elif isinstance(old, dict) and isinstance(value, dict):
            _merge_objects(old, value)
        elif old in (None, "", [], {}):
            into[key] = value


def _read_truncated(body: str, problems: list[str]) -> Any:
    """Cut a text that ends mid-value back to its last complete item, close what is open, read it."""
    open_closers: list[str] = []
    quote: set[str] | None = None
    safe, safe_closers = 0, []
    i = 0
    while i < len(body):
        c = body[i]
        if quote is not None:
            if c == "\\":
                i += 1
            elif c in quote:
                quote = None
        elif c in _QUOTES:
            quote = {_QUOTES[c], '"'} if _QUOTES[c] == "”" else {_QUOTES[c]}
        elif c in _OPENERS:
            open_closers.append(_OPENERS[c])
        elif c in _ANY_CLOSER:
            if open_closers:
                open_closers.pop()
            safe, safe_closers = i + 1, list(open_closers)
        elif c in _SEPARATORS and open_closers:
            safe, safe_closers = i, list(open_closers)
        i += 1
    trimmed = body[:safe].rstrip().rstrip(_SEPARATORS) + "".join(reversed(safe_closers))
    reader = _Reader(trimmed)
    try:
        value = reader.value()
    except _EndOfText:
        return None
    problems.extend(reader.problems)
    return value
