"""`knowlm data`: dataset tools. `prepare` / `inspect` / `merge` build and examine pretraining datasets;
`convert-ie` turns public IE datasets into OneKE instruction records."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from knowlm.cli.args import add_dataclass_args, config_from
from knowlm.config import PrepareConfig

PREPARE_EXAMPLES = """examples:
  # the sample corpus, a document a line, with the default model's tokenizer
  knowlm data prepare --source 'examples/data/pretrain/*.txt' --out runs/data/sample --seq-length 512
  # two weighted sources, compressed JSONL and Parquet, 4 tokenizing processes
  knowlm data prepare --source wiki='data/wiki/*.jsonl.gz:0.7' --source code='data/code/*.parquet:0.3' \\
    --template '{title}\\n{text}' --tokenizer path/to/llama --workers 4 --out runs/data/mix
  knowlm data prepare --config recipes/pretrain/prepare-sample.yaml

Output: OUT/NAME.bin + OUT/NAME.idx per source and OUT/manifest.json (weights, counters, tokenizer).
An interrupted run continues where it stopped when rerun with the same settings (finished input files
are kept); the result is the same as an uninterrupted run's, for any --workers.
"""

EXAMPLES = """examples:
  # CLUENER (Chinese NER; train only): hold out 20 texts as dev, sample 80 of the rest for training
  knowlm data convert-ie cluener examples/data/cluener/sample.json --out train-zh.jsonl \\
    --holdout 20 --holdout-out cluener-dev.jsonl --limit 80
  # relations: CoNLL04 (SpERT token JSON; any SpERT-style file with `spert`), FinRE (TSV), DuIE (JSON lines)
  knowlm data convert-ie conll04 examples/data/conll04/sample.json --out re-en.jsonl --detokenize
  knowlm data convert-ie finre examples/data/finre/sample.txt --out re-zh.jsonl --negatives 99 --keep-empty 0.2
  knowlm data convert-ie duie duie_train.json --out duie.jsonl --negatives 3
  # CoNLL-2003 (English NER, your own copy): evaluation records from valid
  knowlm data convert-ie conll2003 conll2003/valid.txt --out conll-dev.jsonl --mode eval --detokenize
  # OneKE / InstructKGC records pass through (validated)
  knowlm data convert-ie oneke examples/data/instructkgc/re.jsonl --out re.jsonl
  # a file of a dataset on the Hugging Face Hub (downloaded into the Hub cache once)
  knowlm data convert-ie duie hf://datasets/OWNER/NAME/train.json --out duie.jsonl

FinRE pairs are grouped by sentence, each inverse pair kept once in its active form (被持股(A,B) ->
持股(B,A)), symmetric relations in text order, `自己` (an entity and another name of it) as 别名 (alias).
Training records sample each text's schema as IEPile does (the types present plus --negatives absent
ones, shuffled, in batches); evaluation records ask for the whole schema and share one id per text, so
`knowlm eval --data FILE` scores them. The same --seed gives the same files.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "data",
        help="dataset tools: prepare/inspect/merge pretraining data, convert IE datasets",
        description="Dataset tools.",
    )
    ops = parser.add_subparsers(dest="op", metavar="OPERATION", required=True)
    prepare = ops.add_parser(
        "prepare",
        help="corpora -> cleaned, deduplicated, tokenized pretraining datasets (.bin/.idx)",
        description="Prepare pretraining data: read sources, clean, deduplicate, split into sentences, "
        "pack whole sentences into samples of at most --seq-length tokens, store memory-mapped datasets.",
        epilog=PREPARE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("--config", type=Path, help="a YAML file whose keys are these flags' names")
    add_dataclass_args(prepare, PrepareConfig, suppress_defaults=True)
    prepare.add_argument("--no-progress", action="store_true", help="no progress bar")
    prepare.set_defaults(handler=run_prepare)

    inspect = ops.add_parser(
        "inspect",
        help="statistics and decoded samples of a prepared dataset",
        description="Print a dataset's statistics (samples, documents, tokens, lengths, fill) and decode "
        "a few samples.",
    )
    inspect.add_argument("dataset", type=Path, help="a prepared directory (manifest.json) or a PREFIX")
    inspect.add_argument("--samples", type=int, default=2, help="samples to decode (default: 2)")
    inspect.add_argument("--seed", type=int, default=0, help="which samples: a seeded random pick")
    inspect.add_argument("--tokenizer", help="decode with this tokenizer (default: the one it was made with)")
    inspect.add_argument("--json", action="store_true", help="statistics as JSON, no decoding")
    inspect.set_defaults(handler=run_inspect)

    merge = ops.add_parser(
        "merge",
        help="concatenate prepared datasets (same tokenizer) into one",
        description="Concatenate indexed datasets into OUT.bin/.idx (streaming, atomic).",
    )
    merge.add_argument("out", type=Path, help="output PREFIX")
    merge.add_argument("inputs", type=Path, nargs="+", help="dataset PREFIXes, in order")
    merge.set_defaults(handler=run_merge)

    from knowlm.ie.convert import dataset_formats

    formats = dataset_formats()
    convert = ops.add_parser(
        "convert-ie",
        help="public IE datasets (CLUENER, CoNLL, FinRE, SanWen, DocRED, FewRel, ...) -> OneKE records (JSONL)",
        description="Convert an IE dataset into OneKE instruction records for `knowlm finetune` and "
        "`knowlm eval`: Chinese instructions for Chinese data, English for English. Formats: "
        + "; ".join(f"{name}: {text}" for name, text in formats.items())
        + ".",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_argument("format", choices=list(formats), help="the dataset's format")
    convert.add_argument(
        "input", help="the dataset file, or a file of a Hub dataset: hf://datasets/OWNER/NAME[@REVISION]/PATH"
    )
    convert.add_argument("--out", type=Path, required=True, help="output JSONL (written atomically)")
    convert.add_argument(
        "--mode",
        choices=("train", "eval"),
        default="train",
        help="train: sampled schemas with negatives; eval: the whole schema (default: train)",
    )
    convert.add_argument(
        "--negatives",
        type=int,
        default=2,
        help="absent types per training record (default 2; a number >= the schema size asks for every "
        "type, in shuffled batches, as evaluation does)",
    )
    convert.add_argument(
        "--keep-empty",
        type=float,
        default=1.0,
        help="share of training batches with nothing to find that are kept (0-1, default 1)",
    )
    convert.add_argument("--limit", type=int, help="sample this many texts (after the holdout)")
    convert.add_argument("--holdout", type=int, default=0, help="texts held out as evaluation records")
    convert.add_argument("--holdout-out", type=Path, help="where the held-out evaluation records go")
    convert.add_argument("--seed", type=int, default=0, help="random seed (sampling, holdout, order)")
    convert.add_argument(
        "--detokenize",
        action="store_true",
        help="token formats (conll2003, conll04, spert): write sentences as running text ('in Dallas.') "
        "instead of space-separated tokens ('in Dallas .')",
    )
    convert.add_argument(
        "--rename",
        metavar="OLD=NEW[,OLD=NEW...]",
        help="use other names for types or relations (as the converter names them), e.g. "
        "'organization based in=headquartered in': train under the names your schemas will use; types "
        "renamed to one name are merged ('公司=组织机构,政府机构=组织机构,组织机构=组织机构')",
    )
    convert.add_argument(
        "--join",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="train mode: join this share of the texts that hold items (0-1) each with another text whose "
        "items are of another type or relation, as one two-text record; most sentences hold one relation, "
        "and a model trained only on them fills at most one relation per answer (default 0)",
    )
    convert.add_argument(
        "--window",
        type=int,
        metavar="CHARS",
        help="train mode: cut longer texts (DocRED's documents) at sentence boundaries into pieces of at most "
        "CHARS characters, each with the items whose names it holds",
    )
    convert.add_argument(
        "--exclude-types",
        metavar="NAME[,NAME...]",
        help="leave these types or relations (as the converter names them) out of every record, schemas "
        "included: train without them, then measure them unseen with --only-types",
    )
    convert.add_argument(
        "--only-types",
        metavar="NAME[,NAME...]",
        help="keep only these types or relations (see --exclude-types)",
    )
    convert.add_argument(
        "--text-first",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="train mode: this share of the records (0-1) put the input before the schema in the instruction, "
        "so that the model also reads that layout, whose prompts share the text's prefill (default 0)",
    )
    convert.add_argument(
        "--schema-batch-size",
        type=int,
        metavar="N",
        help="train mode: schema items per record (default: the task's, as IEPile); 1 trains the one-relation-"
        "a-prompt questions the default model is asked",
    )
    convert.add_argument(
        "--descriptions",
        type=Path,
        metavar="FILE",
        help='JSON: what each type or relation means ({"name": "text"}, or Wikidata\'s pid2name.json); the '
        "instructions of records asking for a described item include its description",
    )
    convert.set_defaults(handler=run_convert)


def run_prepare(args: argparse.Namespace) -> int:
    from knowlm.data.prepare import prepare

    config = config_from(args, PrepareConfig).validate()
    manifest = prepare(config, progress=not args.no_progress)
    for name, source in manifest["sources"].items():
        dropped = {
            k.removeprefix("dropped."): v for k, v in source["counters"].items() if k.startswith("dropped.")
        }
        print(
            f"{name}: {source['documents']} documents -> {source['samples']} samples, {source['tokens']} tokens"
            f" (dropped: {json.dumps(dropped) if dropped else 'none'})",
            file=sys.stderr,
        )
    seconds = manifest.get("seconds")
    if seconds:  # absent when the output was already complete
        print(
            f"took {sum(seconds.values()):.1f} s: set-up {seconds['setup']:.1f} s, processing "
            f"{seconds['process']:.1f} s, merging {seconds['merge']:.1f} s",
            file=sys.stderr,
        )
    print(f"wrote {Path(config.out) / 'manifest.json'}", file=sys.stderr)  # type: ignore[arg-type]
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from knowlm.data.inspect import inspect_dataset

    report = inspect_dataset(
        args.dataset, samples=0 if args.json else args.samples, seed=args.seed, tokenizer=args.tokenizer
    )
    if args.json:
        print(json.dumps(report["stats"], indent=1, ensure_ascii=False))
    else:
        print(report["text"])
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from knowlm.data.indexed import merge

    merged = merge(args.inputs, args.out)
    print(
        f"{args.out}: {len(merged)} samples, {merged.num_documents} documents, {merged.num_tokens} tokens",
        file=sys.stderr,
    )
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from knowlm.errors import InputError
    from knowlm.ie.convert import convert, read_descriptions
    from knowlm.io import write_jsonl

    if args.holdout and not args.holdout_out:
        raise InputError("--holdout needs --holdout-out FILE for the held-out records")
    from knowlm.models.resolve import dataset_file

    def names(spec: str | None) -> list[str]:
        return [n.strip() for n in spec.split(",") if n.strip()] if spec else []

    records, held, stats = convert(
        args.format,
        dataset_file(args.input),
        mode=args.mode,
        negatives=args.negatives,
        seed=args.seed,
        limit=args.limit,
        holdout=args.holdout,
        detokenize=args.detokenize,
        keep_empty=args.keep_empty,
        rename=parse_rename(args.rename) if args.rename else None,
        join=args.join,
        window=args.window,
        exclude=names(args.exclude_types),
        only=names(args.only_types),
        text_first=args.text_first,
        schema_batch_size=args.schema_batch_size,
        descriptions=read_descriptions(args.descriptions) if args.descriptions else None,
    )
    write_jsonl(args.out, records)
    if args.holdout_out:
        write_jsonl(args.holdout_out, held)
    summary = {
        "records": len(records),
        "held_out_records": len(held),
        "documents": stats.documents,
        "items": stats.items,
        "items_by_type": stats.by_type,
        **({"skipped": stats.skipped} if stats.skipped else {}),
    }
    print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
    return 0


def parse_rename(spec: str) -> dict[str, str]:
    """``OLD=NEW,OLD=NEW`` -> {OLD: NEW}; a malformed pair is an error naming it."""
    from knowlm.errors import InputError

    pairs: dict[str, str] = {}
    for part in spec.split(","):
        old, sep, new = part.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"--rename: {part!r} is not OLD=NEW")
        pairs[old.strip()] = new.strip()
    return pairs
