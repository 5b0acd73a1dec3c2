"""`knowlm data`: dataset tools. `convert-ie` turns public IE datasets into OneKE instruction records."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXAMPLES = """examples:
  # CLUENER (Chinese NER; train only): hold out 1000 texts as dev, sample 550 of the rest for training
  knowlm data convert-ie cluener ../shared/data/cluener/train.json --out train-zh.jsonl \\
    --holdout 1000 --holdout-out cluener-dev.jsonl --limit 550
  # CoNLL-2003 (English NER): training records from train, evaluation records from valid
  knowlm data convert-ie conll2003 ../shared/data/conll2003/train.txt --out train-en.jsonl --limit 550
  knowlm data convert-ie conll2003 ../shared/data/conll2003/valid.txt --out conll-dev.jsonl --mode eval
  # OneKE / InstructKGC records pass through (validated)
  knowlm data convert-ie oneke ../shared/data/instructkgc/re/train.json --out re.jsonl

Training records sample each text's schema as IEPile does (the types present plus --negatives absent
ones, shuffled, in batches); evaluation records ask for the whole schema and share one id per text, so
`knowlm eval --data FILE` scores them. The same --seed gives the same files.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "data",
        help="dataset tools (convert public IE datasets to instruction records)",
        description="Dataset tools.",
    )
    ops = parser.add_subparsers(dest="op", metavar="OPERATION", required=True)
    convert = ops.add_parser(
        "convert-ie",
        help="CLUENER / CoNLL-2003 / OneKE files -> OneKE instruction records (JSONL)",
        description="Convert an IE dataset into OneKE instruction records for `knowlm finetune` and "
        "`knowlm eval`: Chinese instructions for Chinese data, English for English.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_argument("format", choices=("cluener", "conll2003", "oneke"), help="the dataset's format")
    convert.add_argument("input", type=Path, help="the dataset file")
    convert.add_argument("--out", type=Path, required=True, help="output JSONL (written atomically)")
    convert.add_argument(
        "--mode",
        choices=("train", "eval"),
        default="train",
        help="train: sampled schemas with negatives; eval: the whole schema (default: train)",
    )
    convert.add_argument("--negatives", type=int, default=2, help="absent types per training record")
    convert.add_argument("--limit", type=int, help="sample this many texts (after the holdout)")
    convert.add_argument("--holdout", type=int, default=0, help="texts held out as evaluation records")
    convert.add_argument("--holdout-out", type=Path, help="where the held-out evaluation records go")
    convert.add_argument("--seed", type=int, default=0, help="random seed (sampling, holdout, order)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from knowlm.errors import InputError
    from knowlm.ie.convert import convert
    from knowlm.io import write_jsonl

    if args.holdout and not args.holdout_out:
        raise InputError("--holdout needs --holdout-out FILE for the held-out records")
    if args.holdout < 0 or args.negatives < 0 or (args.limit is not None and args.limit < 1):
        raise InputError("--holdout and --negatives must be >= 0, --limit >= 1")
    records, held, stats = convert(
        args.format,
        args.input,
        mode=args.mode,
        negatives=args.negatives,
        seed=args.seed,
        limit=args.limit,
        holdout=args.holdout,
    )
    write_jsonl(args.out, records)
    if args.holdout_out:
        write_jsonl(args.holdout_out, held)
    summary = {
        "records": len(records),
        "held_out_records": len(held),
        "documents": stats.documents,
        "entities": stats.entities,
        "entities_by_type": stats.by_type,
    }
    print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
    return 0
