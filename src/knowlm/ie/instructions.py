"""IE instruction texts that travel with a model, as its chat template does.

A model trained on its own exact instruction strings (OneKE, IEPile-tuned models, ZhiXi's IE LoRA, the
default adapter) should be prompted with exactly those. A model or adapter directory may carry them in
``ie_instructions.json`` (a GGUF export keeps them under the metadata key ``knowlm.ie_instructions``),
keyed by prompt format, task and language::

    {"oneke": {"ner": {"zh": "...", "en": "..."}, "re": {"zh": "...", "en": "..."}},
     "knowlm-tuple": {"re": {"zh": "...{schema}...", "en": "...{schema}..."}}}

Users give their own with ``--instructions FILE`` (JSON or YAML, the same shape) or take them from their
OneKE-format records with ``--instructions-from FILE`` (each record's ``instruction`` field). Texts not
given fall back to the built-in ones.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from knowlm.errors import InputError

FILE_NAME = "ie_instructions.json"
GGUF_KEY = "knowlm.ie_instructions"
LANGS = ("zh", "en")

# format -> task -> language -> instruction text
Instructions = dict[str, dict[str, dict[str, str]]]


def check_instructions(value: Any, where: str) -> Instructions:
    """``value`` as instruction texts, or an error naming the bad entry."""
    from knowlm.ie.formats import format_names, get_format

    if not isinstance(value, dict):
        raise InputError(f"{where}: expected an object {{format: {{task: {{zh, en: text}}}}}}")
    for fmt, tasks in value.items():
        if fmt not in format_names():
            raise InputError(f"{where}: unknown prompt format {fmt!r} (known: {', '.join(format_names())})")
        if not isinstance(tasks, dict):
            raise InputError(f"{where}: {fmt} must map task names to texts")
        for task, texts in tasks.items():
            get_format(fmt, task)  # the format must support the task
            if not isinstance(texts, dict) or not texts or set(texts) - set(LANGS):
                raise InputError(f"{where}: {fmt}.{task} must map zh and/or en to a text")
            for lang, text in texts.items():
                if not isinstance(text, str) or not text.strip():
                    raise InputError(f"{where}: {fmt}.{task}.{lang} must be a non-empty string")
                if fmt != "oneke" and "{schema}" not in text:
                    raise InputError(f"{where}: {fmt}.{task}.{lang} needs a {{schema}} placeholder")
    return value


def load_instructions(path: str | Path) -> Instructions:
    """Instruction texts from a JSON or YAML file."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--instructions {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            value = yaml.safe_load(raw)
        else:
            value = json.loads(raw)
    except Exception as exc:
        raise InputError(
            f"--instructions {path}: not valid {path.suffix.lstrip('.') or 'JSON'} ({exc})"
        ) from None
    return check_instructions(value, str(path))


def instructions_from_records(path: str | Path) -> Instructions:
    """The OneKE instruction texts of training or evaluation records (their ``instruction`` field, a JSON
    string holding instruction, schema and input), the most frequent one per task and language."""
    from knowlm.ie.formats import detect_language, parse_oneke_instruction
    from knowlm.ie.tasks import get_task
    from knowlm.io import read_jsonl

    counts: dict[tuple[str, str], Counter[str]] = {}
    for number, record in read_jsonl(path):
        where = f"{path} line {number}"
        if "instruction" not in record or not record.get("task"):
            raise InputError(f"{where}: a OneKE record needs 'task' and 'instruction'")
        body = parse_oneke_instruction(record["instruction"], where)
        if not isinstance(body.get("instruction"), str):
            raise InputError(f"{where}: the instruction object has no 'instruction' text")
        task = get_task(str(record["task"])).name
        counts.setdefault((task, detect_language(str(body["input"]))), Counter())[body["instruction"]] += 1
    if not counts:
        raise InputError(f"--instructions-from {path}: no records")
    found: dict[str, dict[str, str]] = {}
    for (task, lang), texts in sorted(counts.items()):
        found.setdefault(task, {})[lang] = texts.most_common(1)[0][0]
    return {"oneke": found}


def directory_instructions(*directories: Path | None) -> Instructions | None:
    """The texts of the first of ``directories`` (adapter, then model) that carries ``ie_instructions.json``."""
    for directory in directories:
        if directory is not None and (directory / FILE_NAME).is_file():
            return load_instructions(directory / FILE_NAME)
    return None


def lookup(instructions: Instructions | None, fmt: str, task: str, lang: str) -> str | None:
    """The text for (format, task, language), or None to use the built-in one."""
    return ((instructions or {}).get(fmt) or {}).get(task, {}).get(lang)
