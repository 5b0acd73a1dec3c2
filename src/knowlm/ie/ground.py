"""Grounding: find where each extracted string occurs in the input (exact, then normalized match).

Items whose text does not occur are marked ``grounded=False``: the model made them up or rewrote them.
Normalized matching ignores Unicode width/compatibility forms (NFKC), case, and runs of whitespace, and
maps the match back to offsets in the original text.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from knowlm.ie.results import Event, Item

Spans = list[tuple[int, int]]


def _normalize_with_map(text: str) -> tuple[str, list[int]]:
    """Normalized text, and for each of its characters the index of the original character."""
    chars: list[str] = []
    origin: list[int] = []
    previous_space = False
    for i, ch in enumerate(text):
        norm = unicodedata.normalize("NFKC", ch).casefold()
        for n in norm:
            if n.isspace():
                if previous_space:
                    continue
                n, previous_space = " ", True
            else:
                previous_space = False
            chars.append(n)
            origin.append(i)
    return "".join(chars), origin


def _normalize(text: str) -> str:
    return _normalize_with_map(text)[0].strip()


@lru_cache(maxsize=64)
def _index(text: str) -> tuple[str, tuple[int, ...]]:
    norm, origin = _normalize_with_map(text)
    return norm, tuple(origin)


def find_spans(text: str, mention: str) -> Spans:
    """Every non-overlapping occurrence of ``mention`` in ``text`` as (start, end), end exclusive."""
    mention = mention.strip()
    if not mention:
        return []
    spans = _find_all(text, mention)
    if spans:
        return spans
    norm_text, origin = _index(text)
    norm_mention = _normalize(mention)
    if not norm_mention:
        return []
    return [(origin[s], origin[e - 1] + 1) for s, e in _find_all(norm_text, norm_mention)]


def _find_all(haystack: str, needle: str) -> Spans:
    spans, start = [], haystack.find(needle)
    while start >= 0:
        spans.append((start, start + len(needle)))
        start = haystack.find(needle, start + len(needle))
    return spans


def ground(text: str, items: list[Item]) -> list[Item]:
    """Fill in the spans of every mention and the ``grounded`` flag of every item (in place)."""
    for item in items:
        found = True
        for attribute, mention in item.mentions():
            spans = find_spans(text, mention)
            setattr(item, attribute, spans)
            found = found and bool(spans)
        if isinstance(item, Event):
            for argument in item.arguments:
                argument.spans = find_spans(text, argument.text)
                found = found and bool(argument.spans)
        item.grounded = found
    return items
