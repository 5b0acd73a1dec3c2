"""A confidence for every extracted item: how probable the model found the tokens that wrote it.

An answer lists items in order. An item's tokens run from the end of the item before it (or the start of
the answer) to the end of its last string, so they include the decision to write an item at all (``[{``
rather than ``[]``, ``, {`` rather than ``]``) as well as every token of its strings. Its confidence is the
product of those tokens' probabilities under the model's own distribution (engines report it before
sampling settings and constraint masks): the probability that the model writes this item where it did.
An event argument gets its own, over the tokens from the string before it to its end. Items whose strings
cannot be found in the answer get None.

Measured on held-out sets with the default model (docs/ie-quality.md), this product is calibrated as it
is (expected calibration error 0.05-0.08 on CoNLL04, CoNLL-2003 and CLUENER); the geometric mean of the
same tokens (0.11-0.46) and the least likely token (0.03-0.20) were not.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Sequence

from knowlm.errors import InputError
from knowlm.ie.results import Event, Item

TokenLogprobs = Sequence[tuple[str, float]]


class AnswerTokens:
    """The tokens of one answer, by their character offsets in its text."""

    def __init__(self, logprobs: TokenLogprobs) -> None:
        self.ends: list[int] = []
        self.logprobs: list[float] = []
        end = 0
        for piece, logprob in logprobs:
            end += len(piece)
            self.ends.append(end)
            self.logprobs.append(logprob)

    def confidence(self, start: int, end: int) -> float | None:
        """The joint probability of the tokens overlapping characters [start, end)."""
        first = bisect.bisect_right(self.ends, start)
        last = bisect.bisect_left(self.ends, end)
        chosen = self.logprobs[first : last + 1]
        if not chosen or end <= start:
            return None
        return math.exp(min(sum(chosen), 0.0))  # log-probabilities are <= 0; rounding may say 1e-7


def passes(confidence: float | None, threshold: float) -> bool:
    """Whether an item of ``confidence`` is kept at ``--min-confidence threshold``: 0 keeps every item;
    above 0, an item without a confidence (an engine that gives none) is not kept."""
    return threshold <= 0 or (confidence is not None and confidence >= threshold)


def check_threshold(threshold: float) -> float:
    """``threshold`` as a ``--min-confidence``, which must lie in [0, 1]."""
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"--min-confidence must be between 0 and 1, got {threshold}")
    return threshold


def _find(output: str, text: str, start: int) -> tuple[int, int] | None:
    """Where ``text`` is written in ``output`` at or after ``start``: as a JSON string's contents, else
    verbatim."""
    for form in dict.fromkeys((json.dumps(text, ensure_ascii=False)[1:-1], text)):
        at = output.find(form, start)
        if at >= 0:
            return at, at + len(form)
    return None


def _strings(item: Item) -> list[str]:
    if isinstance(item, Event):
        return [s for s in (item.trigger, *(a.text for a in item.arguments)) if s]
    return [text for _, text in item.mentions()]


def set_confidences(output: str, logprobs: TokenLogprobs | None, items: Sequence[Item]) -> None:
    """Set ``confidence`` on ``items`` (read from ``output``, in its order) and on their event arguments,
    from the answer's token log-probabilities; without them (the engine gave none) nothing is set."""
    if logprobs is None:
        return
    tokens = AnswerTokens(logprobs)
    cursor = 0
    for item in items:
        strings = _strings(item)
        located = [_find(output, s, cursor) for s in strings]
        if not any(located):  # out of the answer's order (a key shared by several items): its strings only
            located = [_find(output, s, 0) for s in strings]
            found = [span for span in located if span]
            start = min((a for a, _ in found), default=0)
        else:
            start = cursor
        spans = [span for span in located if span]
        if not spans:
            continue
        end = max(b for _, b in spans)
        item.confidence = tokens.confidence(start, end)
        if isinstance(item, Event):
            previous = located[0][1] if item.trigger and located[0] else start
            for argument in item.arguments:
                span = _find(output, argument.text, previous)
                if span is not None:
                    argument.confidence = tokens.confidence(previous, span[1])
                    previous = span[1]
        cursor = max(cursor, end)
