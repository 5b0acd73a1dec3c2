"""The serving class: validates requests, feeds the batching engine, streams, extracts, counts metrics.

Routes (``knowlm.serve.app``) stay thin; everything they need is here, so it can be tested with any
engine that follows the protocol.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from typing import Any

from knowlm.config import SamplingParams, ServeConfig
from knowlm.engines.base import Completion, Engine
from knowlm.errors import InputError
from knowlm.serve.batching import BatchingEngine


class ClientGoneError(Exception):
    """The client disconnected before its answer was ready."""


class Metrics:
    """Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

    def __init__(self, engine: BatchingEngine) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "knowlm_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "knowlm_request_seconds",
            "request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
        )
        self.prompt_tokens = Counter(
            "knowlm_prompt_tokens", "prompt tokens processed", registry=self.registry
        )
        self.generated_tokens = Counter("knowlm_generated_tokens", "tokens generated", registry=self.registry)
        queue = Gauge("knowlm_queue_depth", "prompts waiting for the engine", registry=self.registry)
        queue.set_function(lambda: engine.queue_depth)
        calls = Gauge("knowlm_engine_calls", "engine generate calls so far (batches)", registry=self.registry)
        calls.set_function(lambda: engine.engine_calls)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class Service:
    def __init__(self, engine: Engine, config: ServeConfig, *, model_name: str | None = None) -> None:
        self.config = config.validate()
        self.engine = BatchingEngine(
            engine,
            max_batch_size=config.max_batch_size,
            wait_s=config.batch_wait_ms / 1000,
            max_queue=config.max_queue,
        )
        self.model_name = config.served_model_name or model_name or engine.model_name
        self.metrics = Metrics(self.engine)
        self.started = int(time.time())

    def close(self) -> None:
        self.engine.close()

    # -- checks -------------------------------------------------------------------------------

    def check_prompt(self, prompt: str) -> int:
        n = self.engine.count_tokens(prompt)
        if n > self.config.max_prompt_tokens:
            raise InputError(
                f"the prompt has {n} tokens; this server accepts at most {self.config.max_prompt_tokens}"
            )
        return n

    def check_max_tokens(self, max_tokens: int) -> int:
        if max_tokens > self.config.max_tokens_limit:
            raise InputError(
                f"max_tokens {max_tokens} exceeds this server's limit of {self.config.max_tokens_limit}"
            )
        return max_tokens

    # -- generation ---------------------------------------------------------------------------

    async def complete(
        self, prompts: Sequence[str], params: Sequence[SamplingParams], is_disconnected: Any
    ) -> list[Completion]:
        """Generate every prompt with its settings through the batching engine, queued together (so an
        idle server composes a request's batch alike every time); cancel the queued work if the client
        goes away."""
        for prompt in prompts:
            self.metrics.prompt_tokens.inc(self.check_prompt(prompt))
        for p in params:
            self.check_max_tokens(p.max_new_tokens)
        futures = self.engine.submit_each(prompts, params)
        results = await _wait(futures, is_disconnected)
        self.metrics.generated_tokens.inc(sum(c.completion_tokens for c in results))
        return results

    async def stream(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        """Stream one completion; closing the iterator (client gone) stops the generation."""
        self.metrics.prompt_tokens.inc(self.check_prompt(prompt))
        self.check_max_tokens(params.max_new_tokens)
        params.validate()
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            iterator = self.engine.stream(prompt, params)
            try:
                for piece in iterator:
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(pieces.put_nowait, ("piece", piece))
                loop.call_soon_threadsafe(pieces.put_nowait, ("end", None))
            except BaseException as exc:
                loop.call_soon_threadsafe(pieces.put_nowait, ("error", exc))
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()

        thread = threading.Thread(target=produce, name="knowlm-stream", daemon=True)
        thread.start()
        text: list[str] = []
        try:
            while True:
                kind, value = await pieces.get()
                if kind == "end":
                    break
                if kind == "error":
                    raise value
                text.append(value)
                yield value
        finally:
            stop.set()
            self.metrics.generated_tokens.inc(self.completion_tokens("".join(text)))

    def completion_tokens(self, text: str) -> int:
        """Tokens in a streamed completion (without the BOS a tokenizer may add)."""
        return max(self.engine.count_tokens(text) - self.engine.count_tokens(""), 0)


async def _wait(futures: list[Future[Completion]], is_disconnected: Any) -> list[Completion]:
    gathered = asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    while True:
        try:
            return list(await asyncio.wait_for(asyncio.shield(gathered), timeout=0.25))
        except TimeoutError:
            if await is_disconnected():
                for future in futures:
                    future.cancel()
                gathered.cancel()
                raise ClientGoneError from None
