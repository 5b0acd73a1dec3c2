"""Benchmark: `knowlm data prepare` throughput against the raw tokenizer, and reader memory.

1. Throughput. A corpus of documents recombined from the sentences of ../shared/data/pretrain_sample
   (Chinese and English; every document distinct, so deduplication keeps them) is tokenized by the
   tokenizer alone (`tokenizers.Tokenizer.encode_batch` on whole documents, one thread: what transformers'
   tokenizers call; also `encode_batch_fast`, which skips the character offsets) and prepared by
   the full pipeline (read, clean, near-dup dedup, sentence split, tokenize, pack, write .bin/.idx) with
   one worker and with two, in the same run. The pipeline has a fixed set-up cost (loading a 262k-word
   tokenizer into the main process and every worker, 5-10 s here) that does not grow with the corpus; the
   manifest times it apart from the processing and merging, so the throughput after set-up (what a
   GB-scale corpus sees) is tokens / (processing + merging seconds), and the end-to-end figure counts the
   set-up too. This machine's speed drifts by 20-40% within minutes, so each measurement is a round of the
   tokenizer alone and the pipeline back to back, and the median of ``--repeat`` rounds (default 3) is
   reported with their range. Reported: tokens/s and the ratio to the tokenizer alone per worker (target
   >= 0.8).
2. Reader memory. Two datasets, one 10x the other, are read at random through `IndexedDataset` (memory
   mapped); the peak anonymous memory (RssAnon, what the process itself allocates: page cache is
   shared and reclaimable) of each reader process should not grow with the dataset.

    python bench/data_prepare.py [--mb 12] [--repeat 3] [--tokenizer default]

Writes bench/results/data_prepare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread for the tokenizer alone and per worker

from knowlm.config import PrepareConfig
from knowlm.data.sentences import split_sentences
from knowlm.io import atomic_write

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "pretrain_sample"
RESULTS = Path(__file__).resolve().parent / "results"
CORE = {"dedup": "exact", "max_dup_ngrams": 1.0}


def make_corpus(out: Path, megabytes: float, seed: int = 0) -> list[str]:
    """Documents of 5-40 sentences drawn from the sample corpus's (same-language) sentences."""
    pools: dict[str, list[str]] = {}
    for path in sorted(SAMPLE.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            lang = "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in line[:50]) else "en"
            pools.setdefault(lang, []).extend(s.strip() for s in split_sentences(line) if len(s.strip()) > 8)
    rng = random.Random(seed)
    docs, size = [], 0
    while size < megabytes * 1e6:
        lang = rng.choice(sorted(pools))
        joiner = "" if lang == "zh" else " "
        doc = joiner.join(rng.choice(pools[lang]) for _ in range(rng.randint(5, 40)))
        docs.append(doc)
        size += len(doc.encode())
    out.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return docs


def tokenizer_alone(tokenizer_file: Path, docs: list[str], method: str = "encode_batch") -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    encode = getattr(tok, method)
    started = time.perf_counter()
    tokens = 0
    for i in range(0, len(docs), 512):
        tokens += sum(len(e.ids) for e in encode(docs[i : i + 512], add_special_tokens=False))
    seconds = time.perf_counter() - started
    return {
        "method": method,
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds),
    }


def pipeline(corpus: Path, out: Path, tokenizer: str, workers: int, **settings: object) -> dict:
    from knowlm.data.prepare import prepare

    config = PrepareConfig(
        source=[f"bench={corpus}"],
        out=str(out),
        tokenizer=tokenizer,
        seq_length=1024,
        workers=workers,
        batch_docs=128,  # 33 batches of the 12 MB corpus: two workers finish about together
        overwrite=True,
        **settings,  # type: ignore[arg-type]
    )
    started = time.perf_counter()
    manifest = prepare(config, progress=False)
    seconds = time.perf_counter() - started
    c = manifest["counters"]
    after_setup = manifest["seconds"]["process"] + manifest["seconds"]["merge"]
    return {
        "workers": workers,
        "setup_seconds": manifest["seconds"]["setup"],
        "after_setup_tokens_per_s": round(c["tokens"] / after_setup),
        "documents": c["documents"],
        "kept": c["kept"],
        "samples": c["samples"],
        "tokens": c["tokens"],
        "seconds": round(seconds, 2),
        "tokens_per_s": round(c["tokens"] / seconds),
    }


READER = """
import sys, threading, time
import numpy as np
from knowlm.data.indexed import IndexedDataset

def rss_anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

peak = [rss_anon()]
stop = False
def watch():
    while not stop:
        peak[0] = max(peak[0], rss_anon())
        time.sleep(0.005)
threading.Thread(target=watch, daemon=True).start()
ds = IndexedDataset(sys.argv[1])
rng = np.random.default_rng(0)
total = 0
started = time.perf_counter()
for i in rng.integers(0, len(ds), 200_000):
    total += int(ds[int(i)].sum())
for sample in ds:  # and one sequential pass over every token
    total += int(sample[-1])
seconds = time.perf_counter() - started
stop = True
time.sleep(0.02)
print(peak[0], len(ds), ds.num_tokens, seconds)
"""


def reader_memory(root: Path, base_tokens: int) -> dict:
    import numpy as np

    from knowlm.data.indexed import IndexedDatasetWriter

    results = {}
    for name, scale in (("1x", 1), ("10x", 10)):
        prefix = root / f"reader-{name}"
        rng = np.random.default_rng(scale)
        with IndexedDatasetWriter(prefix, np.uint32, {"tokenizer": "bench"}) as writer:
            for _ in range(scale):
                block = rng.integers(0, 262_144, base_tokens, dtype=np.uint32)
                for start in range(0, base_tokens, 1024):
                    writer.add(block[start : start + 1024])
                writer.end_document()
        out = subprocess.run(
            [sys.executable, "-c", READER, str(prefix)], capture_output=True, text=True, check=True
        ).stdout.split()
        peak, samples, tokens, seconds = int(out[0]), int(out[1]), int(out[2]), float(out[3])
        results[name] = {
            "samples": samples,
            "tokens": tokens,
            "file_mb": round(tokens * 4 / 1e6, 1),
            "peak_rss_anon_mb": round(peak / 1e6, 1),
            "seconds": round(seconds, 2),
        }
    results["peak_ratio_10x_to_1x"] = round(
        results["10x"]["peak_rss_anon_mb"] / results["1x"]["peak_rss_anon_mb"], 3
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=12.0, help="corpus size in MB of UTF-8 text (default 12)")
    parser.add_argument("--tokenizer", default="default", help="tokenizer to prepare with (default: default)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each pipeline (median counts)")
    parser.add_argument(
        "--reader-tokens", type=int, default=20_000_000, help="tokens in the 1x reader dataset"
    )
    args = parser.parse_args()

    from knowlm.data.tokenizer import load_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = root / "corpus.txt"
        docs = make_corpus(corpus, args.mb)
        tokenizer_file = root / "tokenizer.json"
        load_tokenizer(args.tokenizer).backend_tokenizer.save(str(tokenizer_file))
        runs = []
        # every step (the default), and the core alone: no MinHash and no repeated-n-gram check
        variants = [("all steps", 1, {}), ("all steps", 2, {}), ("exact dedup only", 1, CORE)]
        for label, workers, settings in variants:
            rounds = []
            for _ in range(args.repeat):  # the baseline next to each measurement: the machine's speed drifts
                alone = tokenizer_alone(tokenizer_file, docs)["tokens_per_s"]
                fast = tokenizer_alone(tokenizer_file, docs, "encode_batch_fast")["tokens_per_s"]
                run = pipeline(corpus, root / "out", args.tokenizer, workers, **settings)
                rounds.append(
                    {
                        "tokenizer_tokens_per_s": alone,
                        "fast_tokenizer_tokens_per_s": fast,
                        **{k: run[k] for k in ("setup_seconds", "seconds", "after_setup_tokens_per_s")},
                        "ratio_per_worker": round(run["after_setup_tokens_per_s"] / workers / alone, 3),
                        "ratio_to_fast_per_worker": round(
                            run["after_setup_tokens_per_s"] / workers / fast, 3
                        ),
                        "end_to_end_ratio_per_worker": round(run["tokens_per_s"] / workers / alone, 3),
                    }
                )
            ratios = [r["ratio_per_worker"] for r in rounds]
            result = {
                **{k: run[k] for k in ("workers", "documents", "kept", "samples", "tokens")},
                "steps": label,
                "ratio_to_tokenizer_per_worker": median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "ratio_to_fast_tokenizer_per_worker": median(r["ratio_to_fast_per_worker"] for r in rounds),
                "after_setup_tokens_per_s": round(median(r["after_setup_tokens_per_s"] for r in rounds)),
                "setup_seconds": median(r["setup_seconds"] for r in rounds),
                "end_to_end_ratio_per_worker": median(r["end_to_end_ratio_per_worker"] for r in rounds),
                "rounds": rounds,
            }
            runs.append(result)
            print(
                f"pipeline ({label}), {workers} worker(s): {result['after_setup_tokens_per_s']:,} tokens/s after "
                f"set-up, {result['ratio_to_tokenizer_per_worker']:.2f}x the tokenizer per worker (median of "
                f"{args.repeat}; {min(ratios):.2f}-{max(ratios):.2f}; "
                f"{result['ratio_to_fast_tokenizer_per_worker']:.2f}x encode_batch_fast); set-up {result['setup_seconds']} s, end to "
                f"end {result['end_to_end_ratio_per_worker']:.2f}x",
                flush=True,
            )
        reader = reader_memory(root, args.reader_tokens)
        print(
            f"reader peak RssAnon: {reader['1x']['peak_rss_anon_mb']} MB for {reader['1x']['file_mb']} MB, "
            f"{reader['10x']['peak_rss_anon_mb']} MB for {reader['10x']['file_mb']} MB",
            flush=True,
        )
    result = {
        "benchmark": "data_prepare",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "corpus": {"documents": len(docs), "megabytes": args.mb, "tokenizer": args.tokenizer},
        "pipeline": runs,
        "reader": reader,
    }
    RESULTS.mkdir(exist_ok=True)
    with atomic_write(RESULTS / "data_prepare.json") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {RESULTS / 'data_prepare.json'}")


if __name__ == "__main__":
    main()
