"""Benchmark: generation throughput of each CPU engine on the embedded default model, and the start-up
of a one-shot command.

throughput: tokens/s at batch 1 and batch 8 with 64 new tokens (greedy), llama.cpp being the reference in
the same run: each row reports its ratio to llama.cpp at the same batch size.
startup: wall time of a fresh process to its first generated token — `knowlm generate` and `knowlm
extract` on the default model against bare llama-cpp-python loading the same GGUF and generating one
token (the floor: what is left is KnowLM's own start-up).
Writes bench/results/generation.json.

    python bench/generation.py [--parts throughput,startup] [--new-tokens 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
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


def startup(repeats: int) -> list[dict]:
    """Fresh-process wall time to the first token: KnowLM's commands vs bare llama-cpp-python."""
    from knowlm.models.default import default_adapter, default_ie_gguf

    gguf = default_ie_gguf(default_adapter())  # what `--model default` runs on llama.cpp (built once)
    bare = (
        "from llama_cpp import Llama; "
        f"Llama(model_path={str(gguf)!r}, verbose=False).create_completion({PROMPTS[0]!r}, max_tokens=1)"
    )
    knowlm = [sys.executable, "-m", "knowlm.cli.main"]
    commands = {
        "llama-cpp-python, load + 1 token": [sys.executable, "-c", bare],
        "knowlm generate --max-new-tokens 1": [*knowlm, "generate", PROMPTS[0], "--max-new-tokens", "1"],
        "knowlm extract (one NER prompt)": [*knowlm, "extract", "--task", "ner", "--schema", "人物",
                                            "--text", "马云在杭州。", "--max-new-tokens", "16"],
    }  # fmt: skip
    rows = []
    for label, command in commands.items():
        times = []
        for _ in range(repeats + 1):  # the first run warms the page cache
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        rows.append({"command": label, "seconds": round(statistics.median(times[1:]), 2)})
        print(f"{label:<40} {rows[-1]['seconds']:.2f} s", flush=True)
    for row in rows:
        row["ratio_vs_bare"] = round(row["seconds"] / rows[0]["seconds"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="throughput,startup", help="throughput, startup (comma-separated)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "generation.json")
    args = parser.parse_args()

    parts = set(args.parts.split(","))
    params = SamplingParams(max_new_tokens=args.new_tokens)
    rows = []
    for label, engine_name, dtype in CONFIGS if "throughput" in parts else []:
        engine = create_engine(
            ModelConfig(model="default", engine=engine_name, dtype=dtype, threads=args.threads)
        )
        for batch in (1, 8):
            row = {"engine": label, **measure(engine, batch, params, args.repeats)}
            rows.append(row)
            print(f"{label:<24} batch {batch}: {row['tokens_per_s']:7.1f} tokens/s", flush=True)
        del engine
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    starts = startup(args.repeats) if "startup" in parts else previous.get("startup", [])
    rows = rows or previous.get("rows", [])  # a part not measured now keeps its last results
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
        "startup": starts,
    }
    with atomic_write(args.out) as f:
        json.dump(result, f, indent=2)
    print("\n| engine | batch | tokens/s | vs llama.cpp |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['engine']} | {row['batch']} | {row['tokens_per_s']} | {row['ratio_vs_llamacpp']}x |")
    if starts:
        print("\n| fresh process to first token | seconds | vs bare llama-cpp-python |\n|---|---|---|")
        for row in starts:
            print(f"| {row['command']} | {row['seconds']} | {row['ratio_vs_bare']}x |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
