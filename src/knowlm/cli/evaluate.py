"""`knowlm eval`: score predictions against gold (P/R/F1), or run a model on an evaluation file first."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from knowlm.cli.common import add_model_args, add_sampling_args, load_engine, sampling_params
from knowlm.errors import InputError
from knowlm.io import atomic_write

EXAMPLES = """examples:
  knowlm eval --task re --gold dev.json                  # the file holds label and output per line
  knowlm eval --task ner --gold dev.json --pred predictions.jsonl
  knowlm eval --task ner --data dev.json --model default --output predictions.jsonl --report report.json

The files are OneKE / IEPile evaluation files: JSON lines with "id", "instruction" (a JSON string with
instruction, schema and input), "label" (the gold of the whole document) and, for scoring, "output" (the
model's answer for the line's schema batch). Lines with the same id are one document split by schema
batches; their answers are merged and the document is scored once.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "eval",
        help="score extractions (precision, recall, F1)",
        description="Micro precision/recall/F1 of extractions, counted as in the OneKE/IEPile evaluation.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", help="ner, re, spo, ee, eet, eea or kg (default: each line's 'task' field)")
    parser.add_argument("--gold", type=Path, help="evaluation file with labels (and outputs, unless --pred)")
    parser.add_argument(
        "--pred", type=Path, help="predictions: an 'output' per gold line, or knowlm extract results"
    )
    parser.add_argument("--data", type=Path, help="run --model on this evaluation file, then score it")
    parser.add_argument(
        "--output", "-o", type=Path, help="with --data: save the model's answers here (resumable)"
    )
    parser.add_argument("--template", default="auto", help="prompt template for --data (default: auto)")
    parser.add_argument(
        "--constrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --data: constrain answers to the schema's JSON, every string a piece of the input, "
        "as knowlm extract does (the default; --no-constrained scores the model's free answers)",
    )
    parser.add_argument(
        "--no-grounded",
        dest="grounded",
        action="store_false",
        help="with constraints: enforce only the JSON shape, not that strings come from the input",
    )
    parser.add_argument(
        "--few-shot",
        type=int,
        default=0,
        metavar="N",
        help="with --data: show N worked examples (same task and language) before each instruction",
    )
    parser.add_argument(
        "--few-shot-from", type=Path, metavar="FILE", help="OneKE training records to take the examples from"
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        metavar="P",
        help="score only predictions of confidence at least P (0-1; answers saved with their token "
        "log-probabilities, as --data saves them); the report's calibration shows each threshold",
    )
    parser.add_argument("--limit", type=int, help="score only the first N documents of the file")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of a table")
    add_model_args(parser)
    add_sampling_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from knowlm.ie import evaluate
    from knowlm.ie.confidence import check_threshold

    if bool(args.gold) == bool(args.data):
        raise InputError("give --gold FILE (score existing answers) or --data FILE (run a model, then score)")
    if args.few_shot and not (args.data and args.few_shot_from):
        raise InputError("--few-shot N needs --data FILE and --few-shot-from FILE (the examples)")
    check_threshold(args.min_confidence)
    lines = evaluate.first_documents(evaluate.read_eval_file(args.gold or args.data, args.task), args.limit)
    task = evaluate.single_task(lines)
    if args.data:
        report = evaluate.evaluate_model(
            load_engine(args),
            lines,
            sampling_params(args),
            template=args.template,
            constrained=args.constrained,
            grounded=args.grounded,
            shots=evaluate.few_shot_examples(args.few_shot_from, args.few_shot) if args.few_shot else None,
            batch_size=args.batch_size,
            output=args.output,
            min_confidence=args.min_confidence,
        )
    elif args.pred:
        docs = evaluate.apply_predictions(args.pred, lines)
        report = evaluate.score(task, evaluate.keep_confident(docs, args.min_confidence))
    else:
        if all(line.output is None for line in lines):
            raise InputError(
                f"{args.gold} has no 'output' fields; pass --pred FILE or run a model with --data"
            )
        docs = evaluate.documents_from_lines(lines)
        report = evaluate.score(task, evaluate.keep_confident(docs, args.min_confidence))
    if args.report:
        with atomic_write(args.report) as f:
            json.dump(report, f, ensure_ascii=False, indent=1)
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else evaluate.format_report(report))
    return 0
