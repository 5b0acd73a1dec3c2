"""Instruction-tuning data: read Alpaca, OneKE/IEPile and chat-message records, build prompts, tokenize
with label masking and truncation, split, and optionally pack short examples together."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowlm.errors import InputError
from knowlm.prompts import PromptTemplate

IGNORE = -100
DATA_FORMATS = ("auto", "alpaca", "oneke", "messages")


@dataclass
class Example:
    prompt: str
    response: str
    source: str
    """Where it came from (file and line), for error messages."""


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """JSON lines, or one JSON array; each record with its line number (array: its index + 1)."""
    if not path.is_file():
        raise InputError(f"training data {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg})") from None
        return [(i + 1, r) for i, r in enumerate(data)]
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {number}: invalid JSON ({exc.msg})") from None
    return out


def detect_format(record: dict[str, Any]) -> str:
    if "messages" in record:
        return "messages"
    instruction = record.get("instruction")
    if isinstance(instruction, str) and instruction.lstrip().startswith("{") and '"schema"' in instruction:
        return "oneke"
    return "alpaca"


def load_examples(
    path: str | Path,
    template: PromptTemplate,
    *,
    data_format: str = "auto",
    render_chat: Callable[[list[dict[str, str]]], str | None] | None = None,
) -> list[Example]:
    """Read every record into a (prompt, response) example; all problems are reported together."""
    path = Path(path)
    if data_format not in DATA_FORMATS:
        raise InputError(f"--data-format {data_format!r} is not one of {', '.join(DATA_FORMATS)}")
    records = _records(path)
    if not records:
        raise InputError(f"{path}: no records")
    examples, problems = [], []
    for number, record in records:
        where = f"{path} line {number}"
        if not isinstance(record, dict):
            problems.append(f"{where}: expected a JSON object")
            continue
        fmt = detect_format(record) if data_format == "auto" else data_format
        try:
            examples.append(_example(record, fmt, template, render_chat, where))
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InputError("; ".join(problems[:5]) + more)
    return examples


def _field(record: dict[str, Any], name: str, where: str, *, required: bool = True) -> str:
    value = record.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputError(f"{where}: missing or empty '{name}'")
    return value


def _example(
    record: dict[str, Any], fmt: str, template: PromptTemplate, render_chat: Any, where: str
) -> Example:
    if fmt == "messages":
        messages = record.get("messages")
        if not isinstance(messages, list) or len(messages) < 2:
            raise InputError(
                f"{where}: 'messages' must be a list of at least a user and an assistant message"
            )
        for i, m in enumerate(messages):
            if (
                not isinstance(m, dict)
                or m.get("role") not in ("system", "user", "assistant")
                or not isinstance(m.get("content"), str)
            ):
                raise InputError(
                    f"{where}: messages[{i}] needs a role (system/user/assistant) and a content string"
                )
        if messages[-1]["role"] != "assistant":
            raise InputError(f"{where}: the last message must be the assistant's answer to learn")
        prompt = render_chat(messages[:-1]) if render_chat else None
        if prompt is None:
            raise InputError(f"{where}: chat messages need a model with a chat template")
        return Example(prompt, messages[-1]["content"], where)
    output = _field(record, "output", where)
    if fmt == "oneke":
        return Example(template.format(_field(record, "instruction", where)), output, where)
    instruction = _field(record, "instruction", where)
    return Example(
        template.format(instruction, _field(record, "input", where, required=False) or None), output, where
    )


def split(examples: list[Example], val_size: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A deterministic train/validation split; ``val_size`` < 1 is a fraction, else a count."""
    if val_size <= 0:
        return examples, []
    n_val = round(len(examples) * val_size) if val_size < 1 else int(val_size)
    n_val = min(max(n_val, 1), len(examples) - 1)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    val = set(order[:n_val])
    return [e for i, e in enumerate(examples) if i not in val], [
        e for i, e in enumerate(examples) if i in val
    ]


@dataclass
class Tokenized:
    rows: list[dict[str, list[int]]]
    truncated: int = 0
    tokens: int = 0
    answer_tokens: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


def tokenize(
    examples: list[Example], tokenizer: Any, cutoff_len: int, *, train_on_inputs: bool = False
) -> Tokenized:
    """input_ids + labels per example: the prompt's labels are -100 (unless ``train_on_inputs``), the
    response ends with EOS, and examples longer than ``cutoff_len`` lose the end of their response."""
    out = Tokenized([])
    too_long = []
    for example in examples:
        prompt = tokenizer(example.prompt, add_special_tokens=True)["input_ids"]
        response = tokenizer(example.response, add_special_tokens=False)["input_ids"] + [
            tokenizer.eos_token_id
        ]
        if len(prompt) >= cutoff_len:
            too_long.append((example.source, len(prompt)))
            continue
        if len(prompt) + len(response) > cutoff_len:
            response = response[: cutoff_len - len(prompt)]
            out.truncated += 1
        ids = prompt + response
        labels = (list(prompt) if train_on_inputs else [IGNORE] * len(prompt)) + response
        out.rows.append({"input_ids": ids, "labels": labels})
        out.tokens += len(ids)
        out.answer_tokens += sum(1 for t in labels[1:] if t != IGNORE)
    if too_long:
        first, n = too_long[0]
        raise InputError(
            f"--cutoff-len {cutoff_len} is shorter than the prompt of {len(too_long)} example(s) "
            f"(first: {first}, {n} tokens); raise --cutoff-len or shorten those prompts"
        )
    return out


def pack(rows: list[dict[str, list[int]]], cutoff_len: int) -> list[dict[str, list[int]]]:
    """Pack examples into rows of at most ``cutoff_len`` tokens (first fit, longest first).

    Each example keeps its own position ids (restarting at 0) and its own labels; the label of an
    example's first token is -100, so no token is trained to predict across an example boundary.
    Attention is not masked between packed examples (as in common packing on CPU/SDPA).
    """
    bins: list[dict[str, list[int]]] = []
    for row in sorted(rows, key=lambda r: -len(r["input_ids"])):
        n = len(row["input_ids"])
        target = next((b for b in bins if len(b["input_ids"]) + n <= cutoff_len), None)
        if target is None:
            target = {"input_ids": [], "labels": [], "position_ids": []}
            bins.append(target)
        target["input_ids"] += row["input_ids"]
        target["labels"] += [IGNORE, *row["labels"][1:]]
        target["position_ids"] += list(range(n))
    return bins
