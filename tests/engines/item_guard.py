"""The check, shared by the engines' tests, that extraction answers close a list when it repeats an item."""

from __future__ import annotations

import json
import re
from typing import Any

from knowlm.config import SamplingParams
from knowlm.ie.grammar import answer_params

SHAPE = {
    "type": "object",
    "properties": {"person": {"type": "array", "items": {"type": "string"}}},
    "required": ["person"],
    "additionalProperties": False,
}
TEXT = "Ann Bob"  # few pieces: a random model soon writes one again
PIECES = {"", "Ann", "Bob", "Ann Bob", " ", "Ann ", " Bob"}


def repeats_then_goes_on(answer: str) -> bool:
    """Whether the answer's list has an item that repeats an earlier one and is followed by another."""
    items = re.findall(r'"((?:[^"\\]|\\.)*)"', answer[answer.index("[") + 1 :])
    return any(items[j] in items[:j] for j in range(1, len(items) - 1))


def check_lists_close_on_repeat(engine: Any, seeds: int = 12) -> None:
    """Sampled grounded answers of a random model: with the grammar alone some lists go on after a repeated
    item; with extraction's settings (distinct_items) none does, and more answers finish."""
    sampled = [SamplingParams(max_new_tokens=64, temperature=1.0, seed=s) for s in range(seeds)]
    guarded = [answer_params(p, SHAPE, TEXT, grounded=True) for p in sampled]
    assert all(p.distinct_items for p in guarded)
    prompts = [f"Text: {TEXT}\nAnswer:"] * seeds
    looping = _each(engine, prompts, [p.replace(distinct_items=False) for p in guarded])
    assert sum(repeats_then_goes_on(c.text) for c in looping) >= 3  # the grammar alone lets lists loop
    done = _each(engine, prompts, guarded)
    assert not any(repeats_then_goes_on(c.text) for c in done)
    finished = [json.loads(c.text) for c in done if c.finish_reason == "stop"]
    assert len(finished) > sum(c.finish_reason == "stop" for c in looping)  # lists close instead of looping
    assert all(set(a["person"]) <= PIECES for a in finished)


def _each(engine: Any, prompts: list[str], params: list[SamplingParams]) -> list[Any]:
    from knowlm.engines.base import generate_each

    return generate_each(engine, prompts, params)
