"""`knowlm pretrain`: continued pretraining over prepared datasets, from a YAML recipe plus flag overrides."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from knowlm.cli.args import add_dataclass_args, config_from
from knowlm.config import PretrainConfig

EXAMPLES = """examples:
  knowlm data prepare --source 'examples/data/pretrain/*.txt' --out runs/data/sample --seq-length 256
  knowlm pretrain --config recipes/pretrain/tiny-cpu.yaml
  knowlm pretrain --model path/to/llama --data runs/data/mix --output-dir runs/cpt --max-steps 1000 --bf16
  knowlm pretrain --config recipe.yaml --data runs/data/mix/wiki:0.7 --data runs/data/mix/code:0.3
  torchrun --nproc-per-node 2 -m knowlm.cli.main pretrain --config recipe.yaml          # DDP (gloo on CPU)
  torchrun --nnodes 3 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
    -m knowlm.cli.main pretrain --config recipes/pretrain/llama-13b-3x8gpu.yaml           # ZeRO-3

A recipe is a YAML file whose keys are these flags' names (with underscores); flags given on the command
line override it. --resume auto continues from the latest checkpoint in --output-dir. The final model is a
transformers directory: --model OUTPUT_DIR loads it everywhere.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "pretrain",
        help="continue pretraining a model on prepared token datasets",
        description="Causal-LM (continued) pretraining with the transformers Trainer over datasets made by "
        "`knowlm data prepare`, mixed by weight.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="a YAML recipe (keys are the flag names)")
    add_dataclass_args(parser.add_argument_group("training"), PretrainConfig, suppress_defaults=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from knowlm.train.pretrain import pretrain

    config = config_from(args, PretrainConfig).validate()
    summary = pretrain(config)
    shown = {
        k: summary[k]
        for k in ("steps", "train_loss", "eval_loss", "eval_perplexity", "seconds")
        if k in summary
    }
    print(json.dumps(shown, indent=1), file=sys.stderr)
    print(f"model saved to {config.output_dir}", file=sys.stderr)
    return 0
