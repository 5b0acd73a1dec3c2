"""Benchmark: batch extraction vs one-by-one extraction, and parse success with/without --constrained.

1. Throughput: the same CLUENER documents (Chinese NER, 4 entity types) extracted with one
   `extract_many` call (the engine batches the prompts) versus one `extract` call per document, with the
   transformers engine in bfloat16 on the default model. Reports documents/s of both and the ratio.
2. Parse success: the share of documents whose answers were complete JSON keyed by the schema, without
   and with constrained decoding (llama.cpp engine, GBNF grammar from the answer's JSON schema).

    python bench/extract.py [--docs 16] [--new-tokens 64] [--out bench/results/extract.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines import create_engine
from knowlm.ie.extractor import Extractor
from knowlm.io import atomic_write

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cluener" / "train.json"
SCHEMA = "name,organization,address,company"


def load_docs(n: int) -> list[str]:
    docs = []
    with DATA.open(encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line)["text"])
            if len(docs) == n:
                break
    return docs


def throughput(docs: list[str], params: SamplingParams, batch: int) -> dict:
    engine = create_engine(ModelConfig(engine="transformers", dtype="bfloat16", batch_size=batch))
    extractor = Extractor(engine, "ner", SCHEMA, params=params, lang="zh")
    extractor.extract(docs[0])  # warm-up
    start = time.perf_counter()
    extractor.extract_many(docs)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for doc in docs:
        extractor.extract(doc)
    single = time.perf_counter() - start
    return {
        "engine": f"transformers bfloat16, batch {batch}",
        "docs": len(docs),
        "batched_docs_per_s": round(len(docs) / batched, 3),
        "one_by_one_docs_per_s": round(len(docs) / single, 3),
        "speedup": round(single / batched, 2),
    }


def parse_success(docs: list[str], params: SamplingParams) -> dict:
    engine = create_engine(ModelConfig(engine="llamacpp"))
    rates = {}
    for constrained in (False, True):
        extractor = Extractor(engine, "ner", SCHEMA, params=params, lang="zh", constrained=constrained)
        results = extractor.extract_many(docs)
        ok = sum(r.parsed for r in results)
        grounded = sum(1 for r in results for e in r.entities if e.grounded)
        total = sum(len(r.entities) for r in results)
        rates["constrained" if constrained else "unconstrained"] = {
            "parse_success_rate": round(ok / len(docs), 3),
            "entities": total,
            "grounded_share": round(grounded / total, 3) if total else 0.0,
        }
    return {"engine": "llamacpp q4_k_m", "docs": len(docs), **rates}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "extract.json")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"reference data not found: {DATA}")
    docs = load_docs(args.docs)
    params = SamplingParams(max_new_tokens=args.new_tokens)
    speed = throughput(docs, params, args.batch)
    print(
        f"batched {speed['batched_docs_per_s']} docs/s vs one by one {speed['one_by_one_docs_per_s']} docs/s "
        f"= {speed['speedup']}x",
        flush=True,
    )
    parsing = parse_success(docs, params)
    for mode in ("unconstrained", "constrained"):
        print(
            f"parse success {mode}: {parsing[mode]['parse_success_rate']:.0%} "
            f"({parsing[mode]['entities']} entities, {parsing[mode]['grounded_share']:.0%} grounded)"
        )
    result = {
        "benchmark": "extract",
        "model": "default (Gemma 3 270M base)",
        "data": "CLUENER train, first documents",
        "schema": SCHEMA,
        "new_tokens": args.new_tokens,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "throughput": speed,
        "parse_success": parsing,
    }
    with atomic_write(args.out) as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
