"""`knowlm eval`: score predictions against gold (P/R/F1), or run a model on an evaluation file first."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from knowlm.cli.common import add_model_args, add_sampling_args, load_engine, sampling_params
from knowlm.errors import InputError
from knowlm.io import ResumableJsonlWriter, atomic_write

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
        action="store_true",
        help="with --data: constrain answers to the schema's JSON, every string a piece of the input",
    )
    parser.add_argument(
        "--no-grounded",
        dest="grounded",
        action="store_false",
        help="with --constrained: enforce only the JSON shape, not that strings come from the input",
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
    parser.add_argument("--limit", type=int, help="score only the first N documents of the file")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of a table")
    add_model_args(parser)
    add_sampling_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from knowlm.ie import evaluate

    if bool(args.gold) == bool(args.data):
        raise InputError("give --gold FILE (score existing answers) or --data FILE (run a model, then score)")
    if args.few_shot and not (args.data and args.few_shot_from):
        raise InputError("--few-shot N needs --data FILE and --few-shot-from FILE (the examples)")
    if args.limit is not None and args.limit < 1:
        raise InputError("--limit must be at least 1")
    lines = evaluate.read_eval_file(args.gold or args.data, args.task)
    if args.limit is not None:
        keep = set(list(dict.fromkeys(line.id for line in lines))[: args.limit])
        lines = [line for line in lines if line.id in keep]
    tasks = {line.task for line in lines}
    if len(tasks) > 1:
        raise InputError(
            f"the file mixes tasks ({', '.join(sorted(tasks))}); score one task at a time with --task"
        )
    task = tasks.pop()
    if args.data:
        outputs = generate_answers(args, lines)
        docs = evaluate.documents_from_lines(lines, outputs)
    elif args.pred:
        docs = evaluate.apply_predictions(args.pred, lines)
    else:
        if all(line.output is None for line in lines):
            raise InputError(
                f"{args.gold} has no 'output' fields; pass --pred FILE or run a model with --data"
            )
        docs = evaluate.documents_from_lines(lines)
    report = evaluate.score(task, docs)
    if args.report:
        with atomic_write(args.report) as f:
            json.dump(report, f, ensure_ascii=False, indent=1)
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else evaluate.format_report(report))
    return 0


def generate_answers(args: argparse.Namespace, lines: list[Any]) -> dict[int, str]:
    """Run the model on every line's instruction; answers are saved as they come when --output is set."""
    from tqdm import tqdm

    from knowlm.engines.base import chat_renderer
    from knowlm.ie.grammar import answer_grammar
    from knowlm.ie.tasks import get_task
    from knowlm.prompts import get_template

    params = sampling_params(args)

    def constrained(line: Any) -> Any:
        """Decoding settings for one line: its schema batch's JSON shape, grounded in its input."""
        shape = get_task(line.task).answer_json_schema(line.schema)
        if not args.grounded:
            return params.replace(json_schema=shape)
        return params.replace(grammar=answer_grammar(shape, json.loads(line.instruction)["input"]))

    engine = load_engine(args)
    template = get_template(args.template, chat_renderer(engine))
    shots = few_shot_examples(args.few_shot_from, args.few_shot) if args.few_shot else None

    def prompt(line: Any) -> str:
        return template.format(line.instruction, shots=shots(line) if shots else ())

    writer = ResumableJsonlWriter(args.output) if args.output else None
    answers: dict[int, str] = {}
    if writer:
        for line, text in zip(lines, writer.partial.read_text(encoding="utf-8").splitlines(), strict=False):
            answers[line.number] = json.loads(text)["output"]
    todo = [line for line in lines if line.number not in answers]
    step = args.batch_size
    with tqdm(total=len(lines), initial=len(answers), unit="line", file=sys.stderr) as bar:
        for begin in range(0, len(todo), step):
            chunk = todo[begin : begin + step]
            if args.constrained:  # each line has its own schema batch and input, so its own constraint
                done = [engine.generate([prompt(line)], constrained(line))[0] for line in chunk]
            else:
                done = engine.generate([prompt(line) for line in chunk], params)
            for line, completion in zip(chunk, done, strict=True):
                answers[line.number] = completion.text
                if writer:
                    writer.write({"id": line.id, "output": completion.text})
            bar.update(len(chunk))
    if writer:
        writer.finish()
    return answers


def few_shot_examples(path: Path, n: int) -> Any:
    """A function giving, for an evaluation line, the first ``n`` records of ``path`` with its task and
    language, as (instruction, answer) pairs."""
    from knowlm.ie.formats import detect_language, parse_oneke_instruction
    from knowlm.io import read_jsonl

    pool: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for number, record in read_jsonl(path):
        where = f"{path} line {number}"
        if not isinstance(record.get("output"), str) or "instruction" not in record:
            raise InputError(f"{where}: a few-shot example needs 'instruction' and 'output'")
        body = parse_oneke_instruction(record["instruction"], where)
        key = (str(record.get("task", "")).lower(), detect_language(body["input"]))
        pool.setdefault(key, []).append((record["instruction"], record["output"]))

    def pick(line: Any) -> list[tuple[str, str]]:
        lang = detect_language(json.loads(line.instruction)["input"])
        found = pool.get((line.task, lang), [])
        if not found:
            raise InputError(f"{path}: no {line.task} examples in {'Chinese' if lang == 'zh' else 'English'}")
        return [(q, a) for q, a in found if q != line.instruction][:n]

    return pick
