"""Dynamic batching: concurrent generate() calls are merged into one engine call.

Requests wait in a bounded queue; a worker thread takes the first, gathers more for up to ``wait_s`` (or
until ``max_batch_size`` prompts), groups them by decoding settings and runs each group as one
``engine.generate`` call. A full queue is refused at once (the server answers 503 with Retry-After), and a
request cancelled before its batch starts (the client went away) is dropped. When a merged call fails, its
prompts run again one by one, so a failing prompt fails alone.

An engine that schedules sequences itself (``submit_each(prompts, params)``: llama.cpp's continuous
batching) gets every request at once instead: a request that arrives while others decode joins their next step.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from knowlm.config import SamplingParams
from knowlm.engines.base import Completion, Engine, settings_key
from knowlm.errors import KnowLMError


class QueueFullError(KnowLMError):
    """The server is at capacity; retry later."""


@dataclass
class _Pending:
    prompt: str
    params: SamplingParams
    future: Future[Completion]


class BatchingEngine:
    """Wraps an engine; implements the same protocol, thread-safe, batching concurrent callers."""

    def __init__(self, engine: Engine, *, max_batch_size: int = 8, wait_s: float = 0.01, max_queue: int = 64):
        self.engine = engine
        self.name, self.model_name = engine.name, engine.model_name
        self.ie_instructions = getattr(engine, "ie_instructions", None)
        self.max_batch_size, self.wait_s = max_batch_size, wait_s
        self._queue: queue.Queue[_Pending] = queue.Queue(maxsize=max_queue)
        self.engine_calls = 0
        self.batched_prompts = 0
        self._stop = threading.Event()
        self._native = getattr(engine, "submit_each", None)
        self._worker = threading.Thread(target=self._run, name="knowlm-batcher", daemon=True)
        if self._native is None:
            self._worker.start()

    # -- protocol -----------------------------------------------------------------------------

    def submit(self, prompts: Sequence[str], params: SamplingParams) -> list[Future[Completion]]:
        """Queue the prompts; each future resolves to its Completion. Raises QueueFullError when full."""
        return self.submit_each(prompts, [params] * len(prompts))

    def submit_each(
        self, prompts: Sequence[str], params: Sequence[SamplingParams]
    ) -> list[Future[Completion]]:
        """Queue every prompt with its own settings, all at once."""
        for p in params:
            p.validate()
        if self._queue.maxsize and self.queue_depth + len(prompts) > self._queue.maxsize:
            raise QueueFullError(f"the server queue is full ({self._queue.maxsize} waiting); retry shortly")
        if self._native is not None:
            self.batched_prompts += len(prompts)
            return list(self._native(prompts, params))
        pending = [_Pending(p, q, Future()) for p, q in zip(prompts, params, strict=True)]
        for item in pending:
            self._queue.put_nowait(item)
        return [item.future for item in pending]

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        return [f.result() for f in self.submit(prompts, params)]

    def generate_each(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Completion]:
        return [f.result() for f in self.submit_each(prompts, params)]

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        return self.engine.stream(prompt, params)

    def render_chat(self, messages: list[dict[str, str]]) -> str | None:
        return self.engine.render_chat(messages)

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    @property
    def queue_depth(self) -> int:
        """Prompts waiting for the engine."""
        if self._native is not None:
            return int(getattr(self.engine, "queue_depth", 0))
        return self._queue.qsize()

    def close(self) -> None:
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join(timeout=5)

    # -- worker -------------------------------------------------------------------------------

    def _gather(self) -> list[_Pending]:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = [p for p in self._gather() if p.future.set_running_or_notify_cancel()]
            groups: dict[str, list[_Pending]] = {}
            for item in batch:
                groups.setdefault(settings_key(item.params), []).append(item)
            for group in groups.values():
                self.engine_calls += 1
                self.batched_prompts += len(group)
                self._complete(group)

    def _complete(self, group: list[_Pending]) -> None:
        """One engine call for ``group``; if it fails, each prompt alone, so only a failing one fails."""
        try:
            results = self.engine.generate([p.prompt for p in group], group[0].params)
        except BaseException as exc:
            if len(group) > 1:
                for item in group:
                    self._complete([item])
            else:  # the caller learns what went wrong
                group[0].future.set_exception(exc)
            return
        for item, result in zip(group, results, strict=True):
            item.future.set_result(result)
