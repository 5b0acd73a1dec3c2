"""`knowlm finetune`: LoRA / QLoRA / full instruction tuning from a YAML recipe plus flag overrides."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from knowlm.cli.args import add_dataclass_args
from knowlm.config import FinetuneConfig
from knowlm.errors import InputError

EXAMPLES = """examples:
  knowlm finetune --config recipes/ie-lora-tiny.yaml
  knowlm finetune --config recipes/ie-lora-tiny.yaml --max-steps 20 --output-dir runs/try
  knowlm finetune --model default --data train.jsonl --output-dir runs/ie --epochs 2 --bf16
  torchrun --nproc-per-node 2 -m knowlm.cli.main finetune --config recipe.yaml      # DDP
  deepspeed --num_gpus 8 -m knowlm.cli.main finetune --config recipe.yaml --deepspeed ds_zero2.json

A recipe is a YAML file whose keys are these flags' names (with underscores); flags given on the command
line override it. The output directory holds a PEFT adapter that --adapter loads everywhere.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "finetune",
        help="instruction-tune a model (LoRA, QLoRA or full)",
        description="Instruction-tune a model with the transformers Trainer.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="a YAML recipe (keys are the flag names)")
    add_dataclass_args(parser.add_argument_group("training"), FinetuneConfig, suppress_defaults=True)
    parser.set_defaults(handler=run)


def load_recipe(path: Path) -> dict[str, Any]:
    """Read a YAML recipe; unknown keys and wrong types are errors that name them."""
    import yaml

    if not path.is_file():
        raise InputError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a recipe is a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{path}: unknown settings {', '.join(unknown)}")
    for key, value in data.items():
        kind = str(fields[key].type).replace(" ", "").removesuffix("|None")
        expected = {"int": int, "float": (int, float), "bool": bool, "str": str}[kind]
        if value is not None and (
            not isinstance(value, expected) or (kind == "int" and isinstance(value, bool))
        ):
            raise InputError(f"{path}: '{key}' must be {kind}, got {value!r}")
    return data


def build_config(args: argparse.Namespace) -> FinetuneConfig:
    values = load_recipe(args.config) if args.config else {}
    names = {f.name for f in dataclasses.fields(FinetuneConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names})  # flags override the recipe
    return FinetuneConfig(**values).validate()


def run(args: argparse.Namespace) -> int:
    from knowlm.train.sft import finetune

    config = build_config(args)
    summary = finetune(config)
    shown = {
        k: summary[k] for k in ("examples", "steps", "train_loss", "eval_loss", "seconds") if k in summary
    }
    if "eval_ie" in summary:
        shown["eval_ie_f1"] = summary["eval_ie"]["f1"]
    print(json.dumps(shown, indent=1), file=sys.stderr)
    print(f"adapter saved to {config.output_dir}", file=sys.stderr)
    return 0
