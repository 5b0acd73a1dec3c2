"""`knowlm kg2instruct`: instruction data from a knowledge graph and a corpus (distant supervision)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from knowlm.errors import InputError
from knowlm.ie.kg2instruct import KG_TASKS
from knowlm.io import atomic_write, write_jsonl

EXAMPLES = """examples:
  knowlm kg2instruct --kg triples.tsv --corpus wiki.txt --out kg-instructions.jsonl
  knowlm kg2instruct --kg triples.jsonl --aliases aliases.tsv --corpus a.txt --corpus b.txt \\
      --tasks re,ner,spo --relations 创始人,总部 --min-support 3 --max-sentence-len 200 --out data.jsonl

--kg: TSV/CSV rows head, relation, tail[, head_type, tail_type], or JSONL objects with those fields.
--aliases: TSV rows entity<TAB>alias1|alias2, or JSONL {"entity", "aliases": [...]}.
--corpus: text files, one document a line; documents are split into sentences.
The output is OneKE-format JSONL that `knowlm finetune` reads; statistics go to OUT.stats.json.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "kg2instruct",
        help="make IE instructions from a knowledge graph and a corpus",
        description="Distant supervision: label corpus sentences that mention a triple's subject and object.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kg", type=Path, required=True, help="the triples file")
    parser.add_argument("--aliases", type=Path, help="entity aliases")
    parser.add_argument(
        "--corpus", type=Path, action="append", required=True, help="a corpus file (repeatable)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output JSONL of instruction records")
    parser.add_argument("--tasks", default="re", help=f"comma-separated: {', '.join(KG_TASKS)} (default: re)")
    parser.add_argument("--relations", help="only these relations (comma-separated whitelist)")
    parser.add_argument(
        "--max-sentence-len", type=int, default=300, help="skip longer sentences (characters)"
    )
    parser.add_argument(
        "--min-support", type=int, default=1, help="drop relations matched in fewer sentences"
    )
    parser.add_argument("--negatives", type=int, default=2, help="absent schema items added per record")
    parser.add_argument("--schema-batch-size", type=int, help="schema items per record (default: per task)")
    parser.add_argument("--lang", choices=("auto", "zh", "en"), default="auto", help="instruction language")
    parser.add_argument("--seed", type=int, default=42, help="random seed (negatives and order)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from knowlm.ie.kg2instruct import kg2instruct, read_aliases, read_corpus, read_triples

    for name in ("max_sentence_len", "min_support"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if args.negatives < 0:
        raise InputError("--negatives must be >= 0")
    triples = read_triples(args.kg)
    if not triples:
        raise InputError(f"{args.kg}: no triples")
    aliases = read_aliases(args.aliases) if args.aliases else None
    relations = {r.strip() for r in args.relations.split(",") if r.strip()} if args.relations else None
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    records, stats = kg2instruct(
        triples,
        read_corpus(args.corpus),
        aliases=aliases,
        tasks=tasks,
        relations=relations,
        max_sentence_len=args.max_sentence_len,
        min_support=args.min_support,
        negatives=args.negatives,
        schema_batch_size=args.schema_batch_size,
        lang=args.lang,
        seed=args.seed,
    )
    write_jsonl(args.out, records)
    with atomic_write(args.out.with_name(args.out.name + ".stats.json")) as f:
        json.dump(stats.to_dict(), f, ensure_ascii=False, indent=1)
    print(
        f"{stats.matched_sentences} of {stats.sentences} sentences matched "
        f"{sum(stats.matched_triples.values())} triples; wrote {stats.records} records to {args.out}",
        file=sys.stderr,
    )
    if not records:
        print(
            "warning: nothing matched; check that the corpus mentions the graph's entities (or add --aliases)",
            file=sys.stderr,
        )
    return 0
