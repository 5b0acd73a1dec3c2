"""Prompt templates: how an instruction (and optional input) becomes the text a model sees.

- ``alpaca``: the template KnowLM / ZhiXi models were instruction-tuned with.
- ``chat``: the model's own chat template (rendered by the engine's tokenizer).
- ``raw``: the instruction as is (and the input after a blank line).

Templates live in a registry, so adding one is one ``register_template`` call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from knowlm.errors import InputError

ChatRenderer = Callable[[list[dict[str, str]]], str]
"""Renders chat messages to a prompt string, ending with the assistant turn's opening."""


class PromptTemplate(Protocol):
    @property
    def name(self) -> str:
        """The template's registry name."""
        ...

    def format(
        self, instruction: str, input: str | None = None, shots: Sequence[tuple[str, str]] = ()
    ) -> str:
        """The full prompt for one instruction and optional input, after ``shots``: worked examples
        (instruction, answer) shown first (few-shot prompting)."""
        ...

    def response(self, output: str) -> str:
        """The model's answer from a generated text that may echo the prompt."""
        ...


@dataclass(frozen=True)
class AlpacaTemplate:
    """The Alpaca template, with and without input, as KnowLM's models were tuned with."""

    name: str = "alpaca"
    with_input: str = (
        "Below is an instruction that describes a task, paired with an input that provides further "
        "context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
    )
    without_input: str = (
        "Below is an instruction that describes a task. Write a response that appropriately completes "
        "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
    )
    marker: str = "### Response:"

    def format(
        self, instruction: str, input: str | None = None, shots: Sequence[tuple[str, str]] = ()
    ) -> str:
        examples = "".join(self.format(q) + f"{a}\n\n" for q, a in shots)
        if input:
            return examples + self.with_input.format(instruction=instruction, input=input)
        return examples + self.without_input.format(instruction=instruction)

    def response(self, output: str) -> str:
        return output.split(self.marker, 1)[1].strip() if self.marker in output else output.strip()


@dataclass(frozen=True)
class RawTemplate:
    """No template: the instruction, then the input after a blank line."""

    name: str = "raw"

    def format(
        self, instruction: str, input: str | None = None, shots: Sequence[tuple[str, str]] = ()
    ) -> str:
        examples = "".join(f"{q}\n{a}\n\n" for q, a in shots)
        return examples + (f"{instruction}\n\n{input}" if input else instruction)

    def response(self, output: str) -> str:
        return output.strip()


@dataclass(frozen=True)
class ChatTemplate:
    """The model's own chat template: instruction and input become one user turn."""

    render: ChatRenderer
    name: str = "chat"

    def format(
        self, instruction: str, input: str | None = None, shots: Sequence[tuple[str, str]] = ()
    ) -> str:
        turns = [
            turn
            for q, a in shots
            for turn in ({"role": "user", "content": q}, {"role": "assistant", "content": a})
        ]
        content = f"{instruction}\n\n{input}" if input else instruction
        return self.render([*turns, {"role": "user", "content": content}])

    def response(self, output: str) -> str:
        return output.strip()


_REGISTRY: dict[str, Callable[[ChatRenderer | None], PromptTemplate]] = {}


def register_template(name: str, factory: Callable[[ChatRenderer | None], PromptTemplate]) -> None:
    """Register a template factory; it receives the engine's chat renderer (or None)."""
    if not name.isidentifier():
        raise ValueError(f"template name {name!r} must be an identifier")
    if name in _REGISTRY or name == "auto":
        raise ValueError(f"template {name!r} is already registered")
    _REGISTRY[name] = factory


def _chat(render: ChatRenderer | None) -> PromptTemplate:
    if render is None:
        raise InputError("--template chat: this model has no chat template; use --template alpaca or raw")
    return ChatTemplate(render)


register_template("alpaca", lambda _render: AlpacaTemplate())
register_template("raw", lambda _render: RawTemplate())
register_template("chat", _chat)


def template_names() -> list[str]:
    return ["auto", *_REGISTRY]


def get_template(name: str, render: ChatRenderer | None = None) -> PromptTemplate:
    """The template called ``name``; ``auto`` is the model's chat template if it has one, else Alpaca."""
    if name == "auto":
        name = "chat" if render is not None else "alpaca"
    if name not in _REGISTRY:
        raise InputError(f"--template {name!r} is unknown; choose one of {', '.join(template_names())}")
    return _REGISTRY[name](render)


def chat_prompt(
    render: Callable[[list[dict[str, str]]], str | None], messages: list[dict[str, str]]
) -> tuple[str, list[str]]:
    """The prompt for the assistant's next turn, and the stop strings it needs.

    ``render`` is the engine's ``render_chat``. With a chat template, the stops are its turn markers
    (`turn_markers`), so the answer ends with the assistant's turn. Models without a chat template
    (KnowLM/ZhiXi) get the conversation in the Alpaca template: earlier turns become the input, the last
    message the instruction.
    """
    prompt = render(messages)
    if prompt is not None:
        return prompt, turn_markers(render, messages)
    *history, last = messages
    context = "\n".join(f"{m['role']}: {m['content']}" for m in history)
    return AlpacaTemplate().format(last["content"], context or None), ["### Instruction:"]


_ANSWER, _NEXT = "knowlm-probe-answer-7f3a", "knowlm-probe-next-7f3a"  # survive templates that trim
_LEADING_SPECIAL = re.compile(r"^<[^<>\s]+>")


def turn_markers(
    render: Callable[[list[dict[str, str]]], str | None], messages: list[dict[str, str]]
) -> list[str]:
    """The strings a chat template closes the assistant's turn and opens the next one with (Gemma:
    ``<end_of_turn>``, ``<start_of_turn>user``, ``<start_of_turn>``; ChatML: ``<|im_end|>``, ...), found
    by rendering one more exchange after ``messages`` and reading what lies between the two turns.
    A marker that opens a turn also gives its role line as plain text (``user\n``): a base model (the
    default model is one) writes the next turn in ordinary tokens rather than the special ones, and its
    answer would otherwise run on into a conversation it invents. A template that refuses the probe gives
    no markers."""
    probe = [*messages, {"role": "assistant", "content": _ANSWER}, {"role": "user", "content": _NEXT}]
    try:
        text = render(probe) or ""
    except Exception:  # a template may insist on its own conversation rules
        return []
    start, end = text.find(_ANSWER), text.find(_NEXT)
    if start < 0 or end < start:
        return []
    markers: list[str] = []
    plain: list[str] = []
    for line in text[start + len(_ANSWER) : end].splitlines():
        line = line.strip()
        special = _LEADING_SPECIAL.match(line)
        markers += [line, special.group(0)] if special else [line]
        if special and line[special.end() :].strip():  # the next turn's role, as the template writes it
            plain.append(line[special.end() :].strip() + "\n")
    return [m for m in dict.fromkeys(markers + plain) if m]
