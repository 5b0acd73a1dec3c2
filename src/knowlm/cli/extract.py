"""`knowlm extract`: schema-driven NER / RE / EE / SPO / KG extraction from texts or a JSONL file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from knowlm.cli.args import add_dataclass_args, from_args
from knowlm.cli.common import add_model_args, add_sampling_args, load_engine, sampling_params
from knowlm.config import ExtractConfig
from knowlm.errors import InputError, KnowLMError
from knowlm.ie.export import EXPORT_FORMATS, export
from knowlm.io import ResumableJsonlWriter, atomic_write

EXAMPLES = """examples:
  knowlm extract --task ner --schema person,organization,location --text "Tim Cook leads Apple in Cupertino."
  knowlm extract --task re --schema 创始人,总部地点 --text "马云在杭州创立了阿里巴巴。"
  knowlm extract --task ee --schema "裁员:裁员方|裁员人数|时间" --text "5月份甲骨文在华裁员900余人。"
  knowlm extract --task re --schema-file schema.json --input news.jsonl --output triples.jsonl
  knowlm extract --task re --schema founder --input news.jsonl --output graph.graphml

Batch runs (--input) write one record per input line and resume after an interruption: rerun the same
command and finished records are kept, not redone. A bad input line becomes a record with an "error"
field; the run goes on and exits with 2 at the end if any record was bad.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "extract",
        help="extract entities, relations or events from text",
        description="Extract knowledge (NER, RE, SPO, EE, KG) from text as validated, grounded JSON.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io = parser.add_argument_group("input and output")
    io.add_argument("--text", action="append", help="a text to extract from (repeatable)")
    io.add_argument(
        "--input", "-i", type=Path, help="a .jsonl file (one record a line) or a text file (one text a line)"
    )
    io.add_argument("--text-field", default="text", help="the JSONL field holding the text (default: text)")
    io.add_argument(
        "--id-field",
        default="id",
        help="the JSONL field holding a record id (default: id, else the line number)",
    )
    io.add_argument(
        "--output", "-o", type=Path, help="write results here (format from --format or the file suffix)"
    )
    io.add_argument(
        "--format",
        choices=("table", *EXPORT_FORMATS),
        help="table (default on screen), jsonl, json, csv, nt or graphml",
    )
    io.add_argument("--outputs", action="store_true", help="include the raw model answers in JSON results")
    add_dataclass_args(parser.add_argument_group("extraction"), ExtractConfig)
    add_model_args(parser)
    add_sampling_args(parser)
    parser.set_defaults(handler=run)


def read_inputs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Input records {"id", "text"}; a bad line becomes {"id", "error"} instead of stopping the run."""
    if args.text and args.input:
        raise InputError("give --text or --input, not both")
    if args.text:
        return [{"id": i, "text": t} for i, t in enumerate(args.text)]
    if args.input is None:
        raise InputError("nothing to extract from: pass --text TEXT or --input FILE")
    if not args.input.is_file():
        raise InputError(f"--input {args.input}: no such file")
    lines = args.input.read_text(encoding="utf-8").splitlines()
    if args.input.suffix.lower() != ".jsonl":
        return [{"id": n, "text": line} for n, line in enumerate(lines, 1) if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{args.input} line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            records.append({"id": number, "error": f"{where}: invalid JSON ({exc.msg})"})
            continue
        if not isinstance(data, dict):
            records.append({"id": number, "error": f"{where}: expected a JSON object"})
            continue
        key = data.get(args.id_field, number)
        text = data.get(args.text_field)
        if not isinstance(text, str) or not text.strip():
            records.append({"id": key, "error": f"{where}: no text in field {args.text_field!r}"})
        else:
            records.append({"id": key, "text": text})
    return records


def output_format(args: argparse.Namespace) -> str:
    if args.output is None:
        return args.format or "table"
    fmt = args.format or {".json": "json", ".csv": "csv", ".nt": "nt", ".graphml": "graphml"}.get(
        args.output.suffix.lower(), "jsonl"
    )
    if fmt == "table":
        raise InputError("--format table prints to the screen; drop --output or pick another format")
    return fmt


def run(args: argparse.Namespace) -> int:
    from knowlm.ie.extractor import Extractor, resolve_schema
    from knowlm.ie.formats import get_format
    from knowlm.ie.tasks import get_task

    config = from_args(ExtractConfig, args).validate()
    get_format(config.prompt_format, get_task(config.task).name)
    params = sampling_params(args)
    fmt = output_format(args)
    records = read_inputs(args)
    resolve_schema(config)  # a bad schema fails before the model loads
    engine = load_engine(args)
    options = {k: v for k, v in vars(config).items() if k not in ("task", "schema")}
    extractor = Extractor(engine, config.task, config.schema, params=params, **options)

    writer = ResumableJsonlWriter(args.output) if args.output else None
    done: list[dict[str, Any]] = []
    start = writer.done if writer else 0
    if start:
        print(f"resuming: {start} of {len(records)} records already done", file=sys.stderr)
    step = args.batch_size
    from tqdm import tqdm

    with tqdm(
        total=len(records), initial=start, unit="doc", disable=len(records) <= 1, file=sys.stderr
    ) as bar:
        for begin in range(start, len(records), step):
            for record in _extract_batch(extractor, records[begin : begin + step], args.outputs):
                if writer:
                    writer.write(record)
                else:
                    done.append(record)
                bar.update(1)
    bad = sum(1 for r in records if "error" in r)
    if writer:
        if fmt == "jsonl":
            path = writer.finish()
        else:
            writer.close()
            rows = [json.loads(line) for line in writer.partial.read_text(encoding="utf-8").splitlines()]
            with atomic_write(args.output) as f:
                f.write(export(rows, fmt))
            writer.partial.unlink()
            path = args.output
        print(f"wrote {len(records)} records to {path}", file=sys.stderr)
    elif fmt == "table":
        print(render_table(done))
    else:
        sys.stdout.write(export(done, fmt))
    if bad:
        print(f"{bad} of {len(records)} input records were bad (see their 'error' field)", file=sys.stderr)
        return 2
    return 0


def _extract_batch(extractor: Any, records: list[dict[str, Any]], with_outputs: bool) -> list[dict[str, Any]]:
    """Extract a batch; records that fail on their own get an error record, the others go on."""
    good = [r for r in records if "text" in r]
    try:
        results = dict(
            zip((id(r) for r in good), extractor.extract_many([r["text"] for r in good]), strict=True)
        )
    except KnowLMError:  # find the record at fault: one by one
        results = {}
        for r in good:
            try:
                results[id(r)] = extractor.extract(r["text"])
            except KnowLMError as exc:
                r["error"] = str(exc)
    out = []
    for r in records:
        if id(r) in results:
            out.append({"id": r["id"], "text": r["text"], **results[id(r)].to_dict(outputs=with_outputs)})
        else:
            out.append({"id": r["id"], "error": r["error"]})
    return out


def render_table(records: list[dict[str, Any]]) -> str:
    """A plain-text table of the results, one block per record."""
    blocks = []
    for record in records:
        if "error" in record:
            blocks.append(f"[{record['id']}] error: {record['error']}")
            continue
        lines = [f"[{record['id']}] {record['text'][:100]}"]
        for item in record["results"]:
            mark = "" if item.get("grounded") else "   (not in the text)"
            if "relation" in item:
                lines.append(f"  ({item['head']}, {item['relation']}, {item['tail']}){mark}")
            elif "arguments" in item:
                args = ", ".join(f"{a['role']}={a['text']}" for a in item["arguments"])
                lines.append(f"  {item['type']}: trigger={item.get('trigger')} {args}{mark}")
            else:
                spans = ",".join(f"{s}-{e}" for s, e in item["spans"])
                lines.append(f"  {item['type']:<12} {item['text']}  [{spans}]{mark}")
        if not record["results"]:
            lines.append("  (nothing found)")
        if not record["parse"]["ok"]:
            lines.append(
                f"  note: the model's answer could not be read cleanly: {'; '.join(record['parse']['problems'])}"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
