"""`knowlm generate`: complete prompts from arguments, a text file or a JSONL file."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowlm.cli.common import add_model_args, add_sampling_args, load_engine, sampling_params
from knowlm.config import records_per_call
from knowlm.engines.base import chat_renderer
from knowlm.errors import InputError
from knowlm.io import read_jsonl, run_resumable
from knowlm.prompts import PromptTemplate, get_template, template_names

EXAMPLES = """examples:
  knowlm generate "The capital of France is" --max-new-tokens 20
  knowlm generate --input prompts.jsonl --output answers.jsonl --template alpaca
  knowlm generate "Tell me a story." --temperature 0.8 --top-p 0.9 --seed 1 --stream

JSONL input: one object a line with either "prompt" (used as is) or "instruction" and an optional
"input" (wrapped in --template). A text file (any other extension) holds one prompt a line.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "generate",
        help="generate text from prompts",
        description="Complete prompts with a model. Prints the completions, or writes JSONL with --output.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompts", nargs="*", help="prompts to complete (or use --input)")
    io = parser.add_argument_group("input and output")
    io.add_argument("--input", "-i", type=Path, help="a .jsonl file of records, or a text file of prompts")
    io.add_argument(
        "--template",
        default="auto",
        choices=template_names(),
        help="prompt template for instruction records; 'auto' = the model's chat template if it has one, "
        "else alpaca. Plain prompts are used as is unless a template is named (default: auto)",
    )
    io.add_argument("--instruction", action="store_true", help="treat the positional prompts as instructions")
    io.add_argument("--output", "-o", type=Path, help="write JSONL results here (resumes after interruption)")
    io.add_argument("--jsonl", action="store_true", help="print JSONL results instead of plain text")
    io.add_argument("--stream", action="store_true", help="print tokens as they are generated (one prompt)")
    add_model_args(parser)
    add_sampling_args(parser)
    parser.set_defaults(handler=run)


def read_records(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The records to complete: {"prompt": ...} or {"instruction": ..., "input": ...}."""
    if args.prompts and args.input:
        raise InputError("give prompts as arguments or with --input, not both")
    if args.prompts:
        key = "instruction" if args.instruction else "prompt"
        return [{key: p} for p in args.prompts]
    if args.input is None:
        raise InputError("no prompts: pass them as arguments or with --input FILE")
    if args.input.suffix.lower() != ".jsonl":
        if not args.input.is_file():
            raise InputError(f"{args.input}: no such file")
        lines = args.input.read_text(encoding="utf-8").splitlines()
        return [{"prompt": line} for line in lines if line.strip()]
    records = []
    for number, record in read_jsonl(args.input):
        text = record.get("prompt", record.get("instruction"))
        if not isinstance(text, str) or not text.strip():
            raise InputError(
                f"{args.input} line {number}: needs a non-empty 'prompt' or 'instruction' string"
            )
        if "input" in record and not isinstance(record["input"], str):
            raise InputError(f"{args.input} line {number}: 'input' must be a string")
        records.append(record)
    if not records:
        raise InputError(f"{args.input}: no records")
    return records


def build_prompt(record: dict[str, Any], template: PromptTemplate, explicit: bool) -> str:
    """The model input for a record; plain prompts stay as they are unless a template was named."""
    if "instruction" in record:
        return template.format(record["instruction"], record.get("input"))
    return template.format(record["prompt"]) if explicit else record["prompt"]


def run(args: argparse.Namespace) -> int:
    records = read_records(args)
    params = sampling_params(args)
    if args.stream and (len(records) != 1 or args.output):
        raise InputError("--stream prints one prompt's completion; give exactly one prompt and no --output")
    engine = load_engine(args)
    template = get_template(args.template, chat_renderer(engine))
    prompts = [build_prompt(r, template, args.template != "auto") for r in records]
    if args.stream:
        for piece in engine.stream(prompts[0], params):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0

    def complete(pairs: Sequence[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        done = engine.generate([prompt for _, prompt in pairs], params)
        return [
            {
                **record,
                "output": c.text,
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
                "finish_reason": c.finish_reason,
            }
            for (record, _), c in zip(pairs, done, strict=True)
        ]

    def show(result: dict[str, Any]) -> None:
        if args.jsonl:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        else:
            print(result["output"].strip() if len(records) > 1 else result["output"], flush=True)

    run_resumable(
        list(zip(records, prompts, strict=True)),
        complete,
        step=records_per_call(getattr(engine, "batch_size", 8)),
        output=args.output,
        on_result=None if args.output else show,
        unit="prompt",
    )
    if args.output:
        print(f"wrote {len(records)} results to {args.output}", file=sys.stderr)
    return 0
