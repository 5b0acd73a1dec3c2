"""`knowlm finetune`: LoRA / QLoRA / full instruction tuning from a YAML recipe plus flag overrides."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from knowlm.cli.args import add_dataclass_args, config_from
from knowlm.config import FinetuneConfig

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


def run(args: argparse.Namespace) -> int:
    from knowlm.train.sft import finetune

    config = config_from(args, FinetuneConfig).validate()
    summary = finetune(config)
    shown: dict[str, Any] = {
        k: summary[k] for k in ("examples", "steps", "train_loss", "eval_loss", "seconds") if k in summary
    }
    if "eval_ie" in summary:
        shown["eval_ie_f1"] = summary["eval_ie"]["f1"]
    print(json.dumps(shown, indent=1), file=sys.stderr)
    print(f"adapter saved to {config.output_dir}", file=sys.stderr)
    return 0
