"""Benchmark: generation throughput of each CPU engine on the embedded default model.

Measures tokens/s at batch 1 and batch 8 with 64 new tokens (greedy), llama.cpp being the reference in
the same run: each row reports its ratio to llama.cpp at the same batch size. Writes
bench/results/generation.json.

    python bench/generation.py [--new-tokens 64] [--repeats 2] [--out bench/results/generation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines import create_engine
from knowlm.io import atomic_write

PROMPTS = [
    "The capital of France is",
    "Knowledge graphs store facts as triples, for example",
    "Zhejiang University is located in",
    "浙江大学位于",
    "The most important rivers of Europe are",
    "Named entity recognition is the task of",
    "Steve Jobs founded Apple together with",
    "北京是中国的",
]

CONFIGS = [  # (label, engine, dtype); the first is the reference
    ("llamacpp q4_k_m", "llamacpp", "auto"),
    ("transformers float32", "transformers", "float32"),
    ("transformers bfloat16", "transformers", "bfloat16"),
]


def measure(engine, batch: int, params: SamplingParams, repeats: int) -> dict:
    prompts = PROMPTS[:batch]
    engine.generate(prompts[:1], params.replace(max_new_tokens=8))  # warm-up
    rates, tokens = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        done = engine.generate(prompts, params)
        seconds = time.perf_counter() - start
        tokens = sum(c.completion_tokens for c in done)
        rates.append(tokens / seconds)
    return {"batch": batch, "new_tokens": tokens, "tokens_per_s": round(statistics.median(rates), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "generation.json")
    args = parser.parse_args()

    params = SamplingParams(max_new_tokens=args.new_tokens)
    rows = []
    for label, engine_name, dtype in CONFIGS:
        engine = create_engine(
            ModelConfig(model="default", engine=engine_name, dtype=dtype, threads=args.threads)
        )
        for batch in (1, 8):
            row = {"engine": label, **measure(engine, batch, params, args.repeats)}
            rows.append(row)
            print(f"{label:<24} batch {batch}: {row['tokens_per_s']:7.1f} tokens/s", flush=True)
        del engine
    reference = {r["batch"]: r["tokens_per_s"] for r in rows if r["engine"] == CONFIGS[0][0]}
    for row in rows:
        row["ratio_vs_llamacpp"] = round(row["tokens_per_s"] / reference[row["batch"]], 3)
    result = {
        "benchmark": "generation",
        "model": "default (Gemma 3 270M)",
        "new_tokens": args.new_tokens,
        "threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "reference": CONFIGS[0][0],
        "rows": rows,
    }
    with atomic_write(args.out) as f:
        json.dump(result, f, indent=2)
    print("\n| engine | batch | tokens/s | vs llama.cpp |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['engine']} | {row['batch']} | {row['tokens_per_s']} | {row['ratio_vs_llamacpp']}x |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
