"""Benchmark: the HTTP server under load, batched versus unbatched, in the same run.

1. ``completions``: `knowlm serve`'s app on 127.0.0.1 (the default model, transformers engine in bfloat16)
   twice — dynamic batching on (max batch 8) and off (max batch 1) — driven by 1, 8 and 32 concurrent
   clients sending /v1/completions requests (greedy, 16 new tokens).
2. ``extract``: the default engine (llama.cpp, the default model with its IE adapter) serving /v1/extract
   (CLUENER texts, grounded NER, one text a request) to 8 concurrent clients, with 8 sequences in flight
   (multi-sequence decoding) against 1 (one sequence at a time: the server before multi-sequence
   decoding, which ran each request's grounded prompt alone).
The load is bounded: at most ``--requests`` requests per level and no new request after ``--seconds``.
Reports requests/s, generated tokens/s, p50/p99 latency and errors, and writes bench/results/serve.json.

    python bench/serve.py [--requests 48] [--seconds 90] [--parts completions,extract]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import socket
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn

from knowlm.config import ModelConfig, ServeConfig
from knowlm.engines import create_engine
from knowlm.io import atomic_write
from knowlm.serve import Service, create_app

CLUENER = Path(__file__).resolve().parents[2] / "shared" / "data" / "cluener" / "train.json"
PROMPTS = [
    "The capital of France is",
    "Knowledge graphs store facts as",
    "Zhejiang University is located in",
    "浙江大学位于",
    "Named entity recognition is",
    "Steve Jobs founded Apple together with",
    "北京是中国的",
    "The most important rivers of Europe are",
]


def start(service: Service) -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def completion_request(i: int, new_tokens: int) -> tuple[str, dict]:
    prompt = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": new_tokens, "temperature": 0}
    return "/v1/completions", prompt


def cluener_texts(n: int) -> list[str]:
    with CLUENER.open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line, _ in zip(f, range(n), strict=False)]


async def load(
    url: str, clients: int, total: int, seconds: float, request: Callable[[int], tuple[str, dict]]
) -> dict:
    latencies: list[float] = []
    tokens = errors = 0
    sent = 0
    deadline = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal tokens, errors, sent
        while sent < total and time.monotonic() < deadline:
            path, body = request(sent)
            sent += 1
            start = time.perf_counter()
            try:
                r = await http.post(path, json=body)
                r.raise_for_status()
                tokens += r.json().get("usage", {}).get("completion_tokens", 0)
                latencies.append(time.perf_counter() - start)
            except httpx.HTTPError:
                errors += 1

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 3),
        "tokens_per_s": round(tokens / elapsed, 2),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p99_s": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3)
        if latencies
        else None,
    }


def completions(args: argparse.Namespace) -> dict:
    engine = create_engine(ModelConfig(engine="transformers", dtype="bfloat16", batch_size=8))
    rows = []
    request = functools.partial(completion_request, new_tokens=args.new_tokens)
    for label, batch in (("batched (max 8)", 8), ("unbatched", 1)):
        service = Service(
            engine, ServeConfig(max_batch_size=batch, batch_wait_ms=10, max_queue=256), model_name="default"
        )
        server, thread, url = start(service)
        asyncio.run(load(url, 1, 2, 30, request))  # warm-up
        for clients in (1, 8, 32):
            total = max(8, min(args.requests, 2 * clients))
            row = {"server": label, **asyncio.run(load(url, clients, total, args.seconds, request))}
            row["engine_calls"] = service.engine.engine_calls
            rows.append(row)
            report(label, row)
        server.should_exit = True
        thread.join(timeout=10)
        service.close()
    unbatched = {r["clients"]: r["tokens_per_s"] for r in rows if r["server"] == "unbatched"}
    for row in rows:
        row["ratio_vs_unbatched"] = (
            round(row["tokens_per_s"] / unbatched[row["clients"]], 2) if unbatched[row["clients"]] else None
        )
    return {
        "engine": "transformers bfloat16",
        "new_tokens": args.new_tokens,
        "baseline": "unbatched",
        "rows": rows,
    }


def extraction(args: argparse.Namespace) -> dict:
    """8 concurrent /v1/extract clients on the default engine, 8 sequences in flight vs 1."""
    texts = cluener_texts(64)

    def request(i: int) -> tuple[str, dict]:
        body = {
            "task": "ner",
            "schema": "name,organization,address,company",
            "text": texts[i % len(texts)],
            "options": {"constrained": True, "lang": "zh"},
            "parameters": {"max_tokens": 64},
        }
        return "/v1/extract", body

    rows = []
    for label, sequences in (("8 sequences in flight", 8), ("one sequence at a time (before)", 1)):
        engine = create_engine(ModelConfig(engine="llamacpp", batch_size=sequences))
        service = Service(engine, ServeConfig(max_batch_size=sequences, max_queue=256), model_name="default")
        server, thread, url = start(service)
        asyncio.run(load(url, 1, 2, 30, request))  # warm-up
        row = {"server": label, **asyncio.run(load(url, 8, args.requests, args.seconds, request))}
        rows.append(row)
        report(label, row)
        server.should_exit = True
        thread.join(timeout=10)
        service.close()
        engine.close()
    ratio = (
        round(rows[0]["requests_per_s"] / rows[1]["requests_per_s"], 2) if rows[1]["requests_per_s"] else None
    )
    print(f"/v1/extract, 8 clients: {ratio}x the requests/s of one sequence at a time")
    return {
        "engine": "llamacpp (default model + IE adapter, q8_0), grounded NER, CLUENER texts",
        "clients": 8,
        "rows": rows,
        "ratio_vs_one_at_a_time": ratio,
    }


def report(label: str, row: dict) -> None:
    print(
        f"{label:<32} {row['clients']:>2} clients: {row['requests_per_s']:6.2f} req/s "
        f"{row['tokens_per_s']:7.1f} tok/s p50 {row['p50_s']}s p99 {row['p99_s']}s errors {row['errors']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=48, help="most requests per concurrency level")
    parser.add_argument("--seconds", type=float, default=90, help="no new requests after this long per level")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--parts", default="completions,extract", help="which parts to run")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve.json")
    args = parser.parse_args()

    parts = set(args.parts.split(","))
    result: dict = {
        "benchmark": "serve",
        "model": "default (Gemma 3 270M)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if "completions" in parts:
        result["completions"] = completions(args)
    if "extract" in parts:
        result["extract"] = extraction(args)
    with atomic_write(args.out) as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
