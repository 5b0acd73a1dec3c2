"""`knowlm extract`: schema-driven NER / RE / EE / SPO / KG extraction from texts or a JSONL file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from knowlm.batch.runners import RUNNERS, extract_records
from knowlm.batch.shards import decode_records
from knowlm.cli.args import add_dataclass_args, from_args
from knowlm.cli.common import add_model_args, add_sampling_args, load_engine, model_config, sampling_params
from knowlm.config import ExtractConfig, records_per_call
from knowlm.errors import InputError
from knowlm.ie.export import export, exporter_names
from knowlm.io import run_resumable

EXAMPLES = """examples:
  knowlm extract --task ner --schema person,organization,location --text "Tim Cook leads Apple in Cupertino."
  knowlm extract --task re --schema 创始人,总部地点 --text "马云在杭州创立了阿里巴巴。"
  knowlm extract --task ee --schema "裁员:裁员方|裁员人数|时间" --text "5月份甲骨文在华裁员900余人。"
  knowlm extract --task re --schema-file schema.json --input news.jsonl --output triples.jsonl
  knowlm extract --task re --schema founder --input news.jsonl --output graph.graphml
  knowlm extract --task re --schema founder --input 'corpus/**/*.jsonl' --output out/
  knowlm extract --task re --schema founder --input 's3://bucket/corpus/*.parquet' --output out/ --runner ray

Batch runs (--input) write one record per input line and resume after an interruption: rerun the same
command and finished records are kept, not redone. A bad input line becomes a record with an "error"
field; the run goes on and exits with 2 at the end if any record was bad.

Corpus runs: when --input is a directory, a glob or a URI (any filesystem pyarrow supports), or --output
is a directory, every input file (JSONL, Parquet or text, optionally .gz/.zst) becomes one output file
OUT/<its path>.jsonl. A rerun skips complete files and redoes an interrupted one. --runner ray runs the
same extraction on Ray (a local one, or --ray-address of a cluster) in a pool of engine actors; the results
are the same as --runner local. docs/scale.md has the cluster recipes.
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
        "--input",
        "-i",
        help="a .jsonl file (one record a line) or a text file (one text a line); for a corpus run a "
        "directory, a glob ('corpus/**/*.jsonl') or a URI (s3://, gs://, hdfs://)",
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
        choices=("table", *exporter_names()),
        help="table (default on screen), jsonl, json, csv, nt or graphml",
    )
    io.add_argument("--outputs", action="store_true", help="include the raw model answers in JSON results")
    scale = parser.add_argument_group("corpus runs")
    scale.add_argument(
        "--runner",
        choices=RUNNERS,
        default="local",
        help="local: this process (default); ray: a pool of engine actors on Ray (a local Ray or --ray-address)",
    )
    scale.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="an existing Ray cluster: HOST:6379, or auto on a cluster node (default: start a local Ray)",
    )
    scale.add_argument(
        "--num-actors",
        type=int,
        help="engine actors on Ray (default: as many as the cluster's CPUs/GPUs fit)",
    )
    scale.add_argument(
        "--cpus-per-actor", type=float, default=1.0, help="CPUs each actor reserves (default: 1)"
    )
    scale.add_argument(
        "--gpus-per-actor",
        type=float,
        help="GPUs each actor reserves (default: --tensor-parallel-size with --engine vllm, else 0)",
    )
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
    path = Path(args.input)
    if not path.is_file():
        raise InputError(f"--input {args.input}: no such file")
    # the reader of corpus runs, so a file reads the same either way
    records = decode_records(str(path), path.read_bytes(), text_field=args.text_field, id_field=args.id_field)
    return [{k: v for k, v in r.items() if k != "line"} for r in records]


def output_format(args: argparse.Namespace) -> str:
    if args.output is None:
        return args.format or "table"
    fmt = args.format or {".json": "json", ".csv": "csv", ".nt": "nt", ".graphml": "graphml"}.get(
        args.output.suffix.lower(), "jsonl"
    )
    if fmt == "table":
        raise InputError("--format table prints to the screen; drop --output or pick another format")
    return fmt


def corpus_run(args: argparse.Namespace) -> bool:
    """A corpus run (one output file per input file) rather than one input file to one output."""
    if args.runner == "ray":
        return True
    if args.input is None or args.text:
        return False
    spec = str(args.input)
    output_dir = args.output is not None and (args.output.is_dir() or str(args.output).endswith("/"))
    return "://" in spec or any(c in spec for c in "*?[") or Path(spec).is_dir() or output_dir


def run(args: argparse.Namespace) -> int:
    from knowlm.ie.extractor import Extractor, resolve_schema
    from knowlm.ie.formats import get_format
    from knowlm.ie.tasks import get_task

    config = from_args(ExtractConfig, args).validate()
    if config.prompt_format != "auto":
        get_format(config.prompt_format, get_task(config.task).name)
    params = sampling_params(args)
    if corpus_run(args):
        return run_corpus(args, config, params)
    fmt = output_format(args)
    records = read_inputs(args)
    resolve_schema(config)  # a bad schema fails before the model loads
    engine = load_engine(args)
    extractor = Extractor.from_config(engine, config, params=params)

    done = run_resumable(
        records,
        lambda chunk: extract_records(extractor, list(chunk), args.outputs),
        step=records_per_call(args.batch_size),
        output=args.output,
        render=None if fmt == "jsonl" else (lambda rows: export(rows, fmt)),
        on_resume=lambda n: print(f"resuming: {n} of {len(records)} records already done", file=sys.stderr),
        unit="doc",
    )
    bad = sum(1 for r in records if "error" in r)
    if args.output:
        print(f"wrote {len(records)} records to {args.output}", file=sys.stderr)
    elif fmt == "table":
        print(render_table(done))
    else:
        sys.stdout.write(export(done, fmt))
    if bad:
        print(f"{bad} of {len(records)} input records were bad (see their 'error' field)", file=sys.stderr)
        return 2
    return 0


def run_corpus(args: argparse.Namespace, config: ExtractConfig, params: Any) -> int:
    """Every input file to one output file under the --output directory, locally or on Ray."""
    from tqdm import tqdm

    from knowlm.batch.runners import ActorPool, Job, run_local, run_ray

    if args.text or args.input is None:
        raise InputError("a corpus run reads --input FILES (a directory, a glob or a URI), not --text")
    if args.output is None:
        raise InputError("a corpus run writes one file per input file: give --output DIRECTORY")
    if (args.format or "jsonl") != "jsonl":
        raise InputError("a corpus run writes JSON lines; drop --format (use knowlm kg export for graphs)")
    for flag in ("ray_address", "num_actors", "gpus_per_actor"):
        if getattr(args, flag) is not None and args.runner != "ray":
            raise InputError(f"--{flag.replace('_', '-')} needs --runner ray")
    if args.num_actors is not None and args.num_actors < 1:
        raise InputError("--num-actors must be at least 1")
    model = model_config(args)
    job = Job(
        model=model,
        extract=config,
        params=params,
        with_outputs=args.outputs,
        batch_size=model.batch_size,
        text_field=args.text_field,
        id_field=args.id_field,
    )
    out = Path(args.output)
    with tqdm(unit="doc", file=sys.stderr, desc="extracting") as bar:

        def progress(step: dict[str, Any]) -> None:
            bar.update(step["records"])
            bar.set_postfix(shard=step["shard"], refresh=False)

        if args.runner == "ray":
            gpus = args.gpus_per_actor
            if gpus is None:
                gpus = float(model.tensor_parallel_size) if model.engine == "vllm" else 0.0
            pool = ActorPool(args.num_actors, args.cpus_per_actor, gpus)
            report = run_ray(args.input, out, job, address=args.ray_address, pool=pool, progress=progress)
        else:
            report = run_local(args.input, out, job, engine=load_engine(args), progress=progress)
    print(
        f"{report.shards} files written, {report.skipped} already complete, {report.records} records "
        f"in {report.seconds:.1f} s -> {out}",
        file=sys.stderr,
    )
    if report.bad:
        print(f"{report.bad} input records were bad (see their 'error' field)", file=sys.stderr)
        return 2
    return 0


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
            if item.get("confidence") is not None:
                mark = f"  {item['confidence']:.2f}{mark}"
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
