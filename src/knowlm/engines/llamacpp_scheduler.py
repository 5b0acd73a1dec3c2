"""Multi-sequence decoding for the llama.cpp engine: many prompts share every forward pass.

One llama.cpp context with ``slots`` sequence ids and a unified KV cache. A thread runs this loop while
there is work:
1. a waiting request takes a free slot at once (continuous batching). The slot's KV cache starts from the
   longest prefix the new prompt shares with any slot's cached tokens — its own (kept from its last
   request) or another's, shared with ``llama_memory_seq_cp`` — so a prompt prefix is computed once (a
   request whose prefix another sequence is computing right now waits for it a step);
2. one ``llama_decode`` holds the next token of every decoding sequence plus prompt tokens of the new ones
   (chunked prefill, at most ``n_batch`` tokens a step);
3. every sequence samples from its own logits row — an argmax when greedy, else its own llama.cpp sampler
   chain (repetition penalty, top-k/top-p/temperature with its own seed) — after its own constraint mask
   (an llguidance matcher; for extraction answers also `ItemGuard`'s rule that a list closes when it
   repeats an item) and its stop-token rule are applied to that row; stop strings, max tokens and the
   finish reason are per sequence too.
A request's problem (too long, a grammar llguidance refuses) fails that request alone.

The KV pool holds ``n_ctx`` tokens per slot, so every slot can hold a full-length sequence at once and a
step never runs out of cells; shared prefixes only take less.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from knowlm.config import SamplingParams
from knowlm.engines.base import Completion, FinishReason, StopStreamer
from knowlm.engines.constrain import ItemGuard
from knowlm.errors import InputError, KnowLMError

log = logging.getLogger(__name__)

OnText = Callable[[str], None]
PENALTY_WINDOW = 64
MIN_SHARED = 16
"""Prompt tokens worth waiting a step for (see `Scheduler._admit_waiting`)."""


class DecodeError(KnowLMError, RuntimeError):
    """llama.cpp failed to decode a batch."""


@dataclass
class Request:
    """One prompt to complete: what the caller gave and the future its Completion goes to."""

    tokens: list[int]
    params: SamplingParams
    future: Future[Completion]
    grammar: str | None = None
    on_text: OnText | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Sequence:
    request: Request
    slot: int
    sampler: Any
    """llama.cpp sampler chain; None for greedy decoding (an argmax)."""
    matcher: Any
    stop_ids: list[int]
    streamer: StopStreamer
    pending: list[int]
    """Prompt tokens not yet in the KV cache (prefill); empty once decoding."""
    next_token: int | None = None
    """The sampled token waiting to be decoded."""
    generated: int = 0
    text: list[str] = field(default_factory=list)
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("ignore"))
    logits_index: int = -1
    logprobs: list[tuple[str, float]] = field(default_factory=list)
    guard: ItemGuard | None = None
    """Follows a constrained answer so that its lists close when they repeat an item (distinct_items)."""


class Scheduler:
    """Continuous batching of many sequences over one llama.cpp model (see the module docstring)."""

    def __init__(
        self,
        llm: Any,
        *,
        slots: int,
        n_ctx: int,
        threads: int,
        n_batch: int = 512,
        ll_tokenizer: Callable[[], Any],
        special_token: Callable[[str], int | None],
    ) -> None:
        import llama_cpp as L

        self.L = L
        self.slots, self.n_batch = slots, n_batch
        params = L.llama_context_default_params()
        params.n_ctx = n_ctx * slots
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = slots
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = True  # one pool: a shared prefix's cells are shared, not copied
        params.swa_full = True  # sliding-window layers keep every cell, so cached prefixes stay reusable
        params.no_perf = True
        # as llama-cpp-python's Llama: one sequence at a time decodes exactly as the engine did before
        params.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.llm = llm  # llama-cpp-python's Llama: keeps the model alive until this context is freed
        self.ctx = L.llama_init_from_model(llm.model, params)
        if not self.ctx:
            raise DecodeError(f"llama.cpp could not create a context of {n_ctx} x {slots} tokens")
        self.memory = L.llama_get_memory(self.ctx)
        self.vocab = L.llama_model_get_vocab(llm.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.eos = L.llama_vocab_eos(self.vocab)
        self._ll_tokenizer, self._special_token = ll_tokenizer, special_token
        self._closed = False
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        self.cached: list[list[int]] = [[] for _ in range(slots)]
        self.active: dict[int, _Sequence] = {}
        self.waiting: deque[Request] = deque()
        self._lock = threading.Lock()
        self.stats = {"prompt_tokens": 0, "reused_tokens": 0, "decode_calls": 0, "generated_tokens": 0}
        """Counters since start: prompt tokens asked for and those taken from the cache, llama_decode calls,
        tokens generated."""
        self._piece = ctypes.create_string_buffer(256)
        self._mask_words = np.zeros((self.n_vocab + 31) // 32, dtype=np.int32)
        self._comma_tokens: np.ndarray | None = None
        """The tokens whose text holds a comma (found once, when a guarded answer first needs them)."""
        self._worker: threading.Thread | None = None

    # -- caller side ------------------------------------------------------------------------

    def submit(self, *requests: Request) -> None:
        """Queue requests, all at once: the loop sees them together, so one caller's batch is composed the
        same way on every run (greedy answers repeat exactly)."""
        with self._lock:
            if self._closed:
                raise DecodeError("the llama.cpp engine is closed")
            self.waiting.extend(requests)
            if self._worker is None:  # the loop runs while there is work, so an idle engine holds no thread
                self._worker = threading.Thread(target=self._run, name="knowlm-llamacpp", daemon=True)
                self._worker.start()

    @property
    def queue_depth(self) -> int:
        return len(self.waiting)

    def close(self) -> None:
        """Fail what is still queued or running and free the context (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
        if worker is not None:
            worker.join(timeout=30)
            if worker.is_alive():  # still inside llama_decode: leave the context to the process' end
                return
        self.L.llama_batch_free(self.batch)
        self.L.llama_free(self.ctx)

    def __del__(self) -> None:
        if hasattr(self, "ctx"):
            self.close()

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed or (not self.waiting and not self.active):
                    self._worker = None
                    break
            try:
                self._admit_waiting()
                self._step()
            except Exception as exc:  # a failed decode: fail what was running, start from a clean cache
                log.exception("llama.cpp decode failed")
                for seq in list(self.active.values()):
                    self._finish(seq, None, exc)
                self.L.llama_memory_clear(self.memory, True)
                self.cached = [[] for _ in range(self.slots)]
        for seq in list(self.active.values()):
            self._finish(seq, None, DecodeError("the llama.cpp engine was closed"))
        while self.waiting:
            self.waiting.popleft().future.cancel()

    def _admit_waiting(self) -> None:
        """Admit waiting requests into free slots, in order. One whose prompt shares a longer prefix with
        a sequence still being prefilled than with any cached tokens waits a step, to share it (the
        schema batches of one text admitted together would otherwise each compute the text)."""
        deferred: list[Request] = []
        while len(self.active) < self.slots:
            with self._lock:
                if not self.waiting:
                    break
                request = self.waiting.popleft()
            if self._soon_shared(request.tokens) > self._shared(request.tokens) + MIN_SHARED:
                deferred.append(request)
            else:
                self._admit(request)
        if deferred:
            with self._lock:
                self.waiting.extendleft(reversed(deferred))

    def _shared(self, tokens: list[int]) -> int:
        """The longest prefix of ``tokens`` some slot's KV cache holds now."""
        return max(_reusable(c, tokens) for c in self.cached)

    def _soon_shared(self, tokens: list[int]) -> int:
        """The longest prefix of ``tokens`` that a sequence being prefilled will hold once prefilled."""
        planned = [self.cached[s.slot] + s.pending for s in self.active.values() if s.pending]
        return max((_reusable(p, tokens) for p in planned), default=0)

    def _admit(self, request: Request) -> None:
        if not request.future.set_running_or_notify_cancel():
            return  # cancelled while it waited
        try:
            sampler, matcher, stop_ids = self._sampling(request)
        except Exception as exc:
            request.future.set_exception(exc)
            return
        slot, shared = self._place(request.tokens)
        self.active[slot] = _Sequence(
            request,
            slot,
            sampler,
            matcher,
            stop_ids,
            StopStreamer(request.params.stop),
            request.tokens[shared:],
            guard=ItemGuard() if matcher is not None and request.params.distinct_items else None,
        )

    def _place(self, tokens: list[int]) -> tuple[int, int]:
        """A free slot for ``tokens`` with its KV cache holding their longest cached prefix; returns the
        slot and how many tokens it already holds."""
        free = [s for s in range(self.slots) if s not in self.active]

        def common(s: int) -> int:
            return _reusable(self.cached[s], tokens)

        own = max(free, key=common)
        source = max(range(self.slots), key=common)
        if common(source) > common(own):
            shared = common(source)
            self.L.llama_memory_seq_rm(self.memory, own, -1, -1)
            self.L.llama_memory_seq_cp(self.memory, source, own, 0, shared)
        else:
            shared = common(own)
            self.L.llama_memory_seq_rm(self.memory, own, shared, -1)
        self.cached[own] = tokens[:shared]
        self.stats["prompt_tokens"] += len(tokens)
        self.stats["reused_tokens"] += shared
        return own, shared

    def _sampling(self, request: Request) -> tuple[Any, Any, list[int]]:
        """The request's sampler chain (None: greedy, an argmax), constraint matcher (or None) and
        special stop-token ids."""
        from knowlm.engines.base import special_stop_ids

        L, params = self.L, request.params
        stop_ids = [t for t in special_stop_ids(params.stop, self._special_token) if t != self.eos]
        matcher = None
        if request.grammar is not None:
            from knowlm.engines.constrain import new_matcher

            tokenizer = self._ll_tokenizer()
            matcher = new_matcher(tokenizer, request.grammar)
            words = (tokenizer.vocab_size + 31) // 32  # llguidance's vocabulary may be the wider one
            if len(self._mask_words) < words:
                self._mask_words = np.zeros(words, dtype=np.int32)
        if params.greedy and params.repetition_penalty == 1.0:
            return None, matcher, stop_ids
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if params.repetition_penalty != 1.0:  # over the last 64 tokens, the prompt's included
            L.llama_sampler_chain_add(
                chain, L.llama_sampler_init_penalties(PENALTY_WINDOW, params.repetition_penalty, 0, 0)
            )
            for token in request.tokens[-PENALTY_WINDOW:]:
                L.llama_sampler_accept(chain, token)
        if params.greedy:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(params.top_p, 1))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(params.temperature))
            # no seed: fresh randomness for every sequence (n choices of one prompt differ)
            seed = params.seed if params.seed is not None else secrets.randbits(32)
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain, matcher, stop_ids

    def _step(self) -> None:
        """One llama_decode over every active sequence, then a token sampled for each that has logits."""
        L, batch = self.L, self.batch
        for seq in [s for s in self.active.values() if s.request.cancelled.is_set()]:
            self._finish(seq, "stop")
        if not self.active:
            return
        batch.n_tokens = 0

        def add(seq: _Sequence, token: int, logits: bool) -> None:
            k = batch.n_tokens
            batch.token[k], batch.pos[k], batch.n_seq_id[k] = token, len(self.cached[seq.slot]), 1
            batch.seq_id[k][0], batch.logits[k] = seq.slot, logits
            self.cached[seq.slot].append(token)
            seq.logits_index = k if logits else -1
            batch.n_tokens += 1

        decoding = [s for s in self.active.values() if s.next_token is not None]
        for seq in decoding:
            assert seq.next_token is not None
            add(seq, seq.next_token, True)
            seq.next_token = None
        budget = self.n_batch - batch.n_tokens
        for seq in self.active.values():
            if not seq.pending or budget <= 0:
                continue
            take, seq.pending = seq.pending[:budget], seq.pending[budget:]
            for i, token in enumerate(take):
                add(seq, token, not seq.pending and i == len(take) - 1)
            budget -= len(take)
        code = L.llama_decode(self.ctx, batch)
        self.stats["decode_calls"] += 1
        if code != 0:
            raise DecodeError(f"llama_decode returned {code}")
        for seq in list(self.active.values()):
            if seq.logits_index >= 0:
                self._sample(seq)

    def _sample(self, seq: _Sequence) -> None:
        L = self.L
        row = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, seq.logits_index), shape=(self.n_vocab,))
        norm = log_sum_exp(row)  # of the model's own distribution, before any mask changes the row
        if seq.matcher is not None:
            seq.matcher.unsafe_compute_mask_ptr(self._mask_words.ctypes.data, self._mask_words.nbytes)
            allowed = allowed_tokens(self._mask_words)
            if seq.guard is not None and seq.guard.watching:
                allowed = self._unrepeated(seq.guard, allowed)
            keep_only(row, allowed)
        stop_to_eos(row, seq.stop_ids, self.eos)
        if seq.sampler is None:
            token = int(np.argmax(row))  # greedy: the first most likely token, as llama.cpp's greedy sampler
        else:
            token = int(L.llama_sampler_sample(seq.sampler, self.ctx, seq.logits_index))
        if L.llama_vocab_is_eog(self.vocab, token) or token in seq.stop_ids:
            self._finish(seq, "stop")
            return
        seq.generated += 1
        self.stats["generated_tokens"] += 1
        if seq.matcher is not None:
            seq.matcher.consume_token(token)
        piece = seq.decoder.decode(self._bytes_of(token))
        if seq.guard is not None:
            seq.guard.feed(piece)
        seq.logprobs.append((piece, float(row[token]) - norm))  # a sampled token's logit is never masked
        out = seq.streamer.feed(piece)
        self._emit(seq, out)
        if seq.streamer.stopped or (seq.matcher is not None and seq.matcher.is_stopped()):
            self._finish(seq, "stop")
        elif seq.generated >= seq.request.params.max_new_tokens:
            self._finish(seq, "length")
        else:
            seq.next_token = token

    def _unrepeated(self, guard: ItemGuard, allowed: np.ndarray) -> np.ndarray:
        """``allowed`` less the tokens that would go on with a list after an item it repeats (only tokens
        holding a comma can; if every allowed token would, the grammar's choice stands)."""
        if self._comma_tokens is None:
            self._comma_tokens = np.array(
                [t for t in range(self.n_vocab) if b"," in self._bytes_of(t)], dtype=allowed.dtype
            )
        candidates = allowed[np.isin(allowed, self._comma_tokens, assume_unique=True)]
        refused = [t for t in candidates if guard.refuses(self._bytes_of(int(t)).decode("utf-8", "ignore"))]
        if not refused or len(refused) == len(allowed):
            return allowed
        return np.setdiff1d(allowed, refused, assume_unique=True)

    def _bytes_of(self, token: int) -> bytes:
        """The bytes ``token`` stands for (special tokens: none, as the text leaves them out)."""
        n = self.L.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, False)
        if n < 0:  # a longer piece than the buffer: -n bytes are needed
            self._piece = ctypes.create_string_buffer(-n)
            n = self.L.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[: max(n, 0)]

    def _emit(self, seq: _Sequence, text: str) -> None:
        if text:
            seq.text.append(text)
            if seq.request.on_text is not None:
                seq.request.on_text(text)

    def _finish(
        self, seq: _Sequence, reason: FinishReason | None, error: BaseException | None = None
    ) -> None:
        del self.active[seq.slot]
        if seq.sampler is not None:
            self.L.llama_sampler_free(seq.sampler)
        if error is not None or reason is None:
            seq.request.future.set_exception(error or DecodeError("no result"))
            return
        if not seq.streamer.stopped:
            self._emit(seq, seq.streamer.feed(seq.decoder.decode(b"", final=True)) + seq.streamer.flush())
        seq.request.future.set_result(
            Completion("".join(seq.text), len(seq.request.tokens), seq.generated, reason, seq.logprobs)
        )


def allowed_tokens(words: np.ndarray) -> np.ndarray:
    """The token ids set in an llguidance bitmask (32 tokens an int32 word, lowest bit first). Only the
    words with a bit set are unpacked: a grammar usually allows few tokens of a large vocabulary."""
    nonzero = np.flatnonzero(words)
    bits = np.unpackbits(words[nonzero].view(np.uint8), bitorder="little").reshape(len(nonzero), 32)
    ids: np.ndarray = (nonzero[:, None] * 32 + np.arange(32))[bits.astype(bool)]
    return ids


def log_sum_exp(row: np.ndarray) -> float:
    """log(sum(exp(row))), computed stably: a token's log-probability is its logit less this."""
    top = float(row.max())
    return top + float(np.log(np.exp(row - top).sum()))


def keep_only(row: np.ndarray, tokens: np.ndarray) -> None:
    """In place: every logit but those of ``tokens`` becomes -inf."""
    tokens = tokens[tokens < len(row)]
    kept = row[tokens]
    row.fill(-np.inf)
    row[tokens] = kept


def stop_to_eos(row: np.ndarray, ids: list[int], eos: int) -> None:
    """In place: sampling one of ``ids`` (special tokens that end the answer, such as a chat template's
    turn markers) means stopping, so their probability goes to the end-of-generation token (log-sum-exp:
    the chance of stopping is exactly theirs plus its own) and they are never emitted. llama.cpp leaves
    special tokens out of the text, so a stop string could not see them."""
    if ids and eos >= 0:  # (a vocabulary without EOS: a sampled stop token ends the answer itself)
        row[eos] = np.logaddexp.reduce(np.append(row[ids], row[eos]))
        row[ids] = -np.inf


def _reusable(cached: list[int], tokens: list[int]) -> int:
    """How many leading ``tokens`` a cache holding ``cached`` can skip: their common prefix, less the last
    prompt token, which is always decoded again (its logits are needed)."""
    n = min(len(cached), len(tokens) - 1)
    for i in range(n):
        if cached[i] != tokens[i]:
            return i
    return n


def check_request(tokens: list[int], params: SamplingParams, n_ctx: int) -> None:
    """A prompt and its token budget must fit one sequence's context."""
    if len(tokens) + params.max_new_tokens > n_ctx:
        raise InputError(
            f"prompt ({len(tokens)} tokens) + max_new_tokens ({params.max_new_tokens}) exceed the context of "
            f"{n_ctx} tokens; shorten the prompt or raise --n-ctx"
        )
