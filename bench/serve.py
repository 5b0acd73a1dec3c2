"""Benchmark: the HTTP server under load, batched versus unbatched, in the same run.

Starts `knowlm serve`'s app on 127.0.0.1 (the default model, transformers engine in bfloat16) twice —
dynamic batching on (max batch 8) and off (max batch 1) — and drives each with 1, 8 and 32 concurrent
clients sending /v1/completions requests (greedy, 16 new tokens). The load is bounded: at most
``--requests`` requests per level and no new request after ``--seconds``. Reports requests/s, generated
tokens/s, p50/p99 latency and errors, and writes bench/results/serve.json.

    python bench/serve.py [--requests 48] [--seconds 90]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from knowlm.config import ModelConfig, ServeConfig
from knowlm.engines import create_engine
from knowlm.io import atomic_write
from knowlm.serve import Service, create_app

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


async def load(url: str, clients: int, total: int, seconds: float, new_tokens: int) -> dict:
    latencies: list[float] = []
    tokens = errors = 0
    sent = 0
    deadline = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal tokens, errors, sent
        while sent < total and time.monotonic() < deadline:
            prompt = PROMPTS[sent % len(PROMPTS)]
            sent += 1
            start = time.perf_counter()
            try:
                r = await http.post(
                    "/v1/completions", json={"prompt": prompt, "max_tokens": new_tokens, "temperature": 0}
                )
                r.raise_for_status()
                tokens += r.json()["usage"]["completion_tokens"]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=48, help="most requests per concurrency level")
    parser.add_argument("--seconds", type=float, default=90, help="no new requests after this long per level")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve.json")
    args = parser.parse_args()

    engine = create_engine(ModelConfig(engine="transformers", dtype="bfloat16", batch_size=8))
    rows = []
    for label, batch in (("batched (max 8)", 8), ("unbatched", 1)):
        service = Service(
            engine, ServeConfig(max_batch_size=batch, batch_wait_ms=10, max_queue=256), model_name="default"
        )
        server, thread, url = start(service)
        asyncio.run(load(url, 1, 2, 30, args.new_tokens))  # warm-up
        for clients in (1, 8, 32):
            total = max(8, min(args.requests, 2 * clients))
            row = {"server": label, **asyncio.run(load(url, clients, total, args.seconds, args.new_tokens))}
            row["engine_calls"] = service.engine.engine_calls
            rows.append(row)
            print(
                f"{label:<16} {clients:>2} clients: {row['requests_per_s']:6.2f} req/s {row['tokens_per_s']:7.1f} tok/s "
                f"p50 {row['p50_s']}s p99 {row['p99_s']}s errors {row['errors']}",
                flush=True,
            )
        server.should_exit = True
        thread.join(timeout=10)
        service.close()
    unbatched = {r["clients"]: r["tokens_per_s"] for r in rows if r["server"] == "unbatched"}
    for row in rows:
        row["ratio_vs_unbatched"] = (
            round(row["tokens_per_s"] / unbatched[row["clients"]], 2) if unbatched[row["clients"]] else None
        )
    result = {
        "benchmark": "serve",
        "model": "default (Gemma 3 270M), transformers bfloat16",
        "new_tokens": args.new_tokens,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "baseline": "unbatched",
        "rows": rows,
    }
    with atomic_write(args.out) as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
