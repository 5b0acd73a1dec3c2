"""The llama.cpp engine (llama-cpp-python) for GGUF files: the fast path on CPU."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
import queue
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Any, TypeVar

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.base import Completion
from knowlm.engines.llamacpp_scheduler import OnText, Request, Scheduler, check_request
from knowlm.errors import InputError, MissingDependencyError, ModelLoadError
from knowlm.models.resolve import resolve_model

if TYPE_CHECKING:
    from knowlm.ie.instructions import Instructions

log = logging.getLogger(__name__)
T = TypeVar("T")
_LOG_CALLBACK: Any = None  # kept referenced: llama.cpp holds a raw pointer to it

INSTALL_HINT = "install it with `make install-llamacpp` (builds llama-cpp-python with portable CPU flags)"


def is_llamacpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


class LlamaCppEngine:
    """Generation with llama.cpp over a GGUF file."""

    name = "llamacpp"

    def __init__(self, config: ModelConfig) -> None:
        config.validate()
        if config.adapter:
            raise InputError(
                "the llamacpp engine runs merged GGUF models; merge the adapter first "
                "(knowlm weights merge-lora, then export-gguf) or use --engine transformers"
            )
        if config.load_in_8bit or config.load_in_4bit:
            raise InputError("--load-in-8bit/4bit are for transformers; GGUF files are already quantized")
        resolved = resolve_model(config.model, revision=config.revision)
        if not resolved.is_gguf:
            raise InputError(
                f"the llamacpp engine needs a .gguf file, but {config.model} is a Hugging Face directory; "
                "use --engine transformers, or export it with knowlm weights export-gguf"
            )
        if not is_llamacpp_available():
            raise MissingDependencyError(f"the llamacpp engine needs llama-cpp-python: {INSTALL_HINT}")
        from llama_cpp import Llama

        _route_native_logs()
        try:
            self.llm = Llama(
                model_path=str(resolved.path),
                n_ctx=256,  # this context stays unused: the scheduler decodes in its own (below)
                n_threads=config.threads or os.cpu_count() or 1,
                n_gpu_layers=-1 if config.device.startswith("cuda") else 0,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {resolved.path}: {exc}") from exc
        self.model_name = config.model
        self.chat_template = self._chat_template(resolved.kind == "default")
        self.ie_instructions = self._instructions()
        self._llg_tokenizer: Any = None
        self.n_ctx, self.batch_size = config.n_ctx, config.batch_size
        self.scheduler = Scheduler(
            self.llm,
            slots=config.batch_size,
            n_ctx=config.n_ctx,
            threads=config.threads or os.cpu_count() or 1,
            # weakly: the scheduler must not keep the engine alive (it frees its context when collected)
            ll_tokenizer=_weak(self._ll_tokenizer),
            special_token=_weak(self._special_token),
        )

    def _instructions(self) -> Instructions | None:
        """The IE instruction texts a GGUF export carries in its metadata (`knowlm.ie.instructions`)."""
        from knowlm.ie.instructions import GGUF_KEY, check_instructions

        raw = self.llm.metadata.get(GGUF_KEY)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{self.model_name}: {GGUF_KEY} is not valid JSON ({exc})") from None
        return check_instructions(value, f"{self.model_name}: {GGUF_KEY}")

    def _chat_template(self, is_default: bool) -> str | None:
        template = self.llm.metadata.get("tokenizer.chat_template")
        if template is None and is_default:
            from knowlm.models.default import GEMMA_CHAT_TEMPLATE

            template = GEMMA_CHAT_TEMPLATE
        return template

    def _special_token(self, text: str) -> int | None:
        """The id of ``text`` when it is one special token (one that detokenizes to nothing)."""
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return ids[0] if len(ids) == 1 and not self.llm.detokenize(ids, special=False) else None

    def _ll_tokenizer(self) -> Any:
        """llguidance's view of the vocabulary, built once (seconds for Gemma's 262k words)."""
        if self._llg_tokenizer is None:
            import llama_cpp
            from llguidance.llamacpp import lltokenizer_from_vocab

            vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
            eog = [t for t in range(self.llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
            with warnings.catch_warnings():  # it calls a llama_cpp function deprecated (and warned) per token
                warnings.simplefilter("ignore", DeprecationWarning)
                self._llg_tokenizer = lltokenizer_from_vocab(vocab, eos_token=eog or None)
        return self._llg_tokenizer

    def _request(self, prompt: str, params: SamplingParams, on_text: OnText | None = None) -> Request:
        """A scheduler request for ``prompt``, checked: the settings, the length, the constraint."""
        params.validate()
        if params.num_beams > 1:
            raise InputError(
                "the llamacpp engine has no beam search; use num_beams 1 or --engine transformers"
            )
        tokens = self._tokens(prompt) or [self.llm.token_bos()]
        check_request(tokens, params, self.n_ctx)
        from knowlm.engines.constrain import compiled_grammar

        return Request(tokens, params, Future(), grammar=compiled_grammar(params), on_text=on_text)

    def submit(
        self, prompt: str, params: SamplingParams, on_text: OnText | None = None
    ) -> Future[Completion]:
        """Queue one prompt; its future resolves to the Completion (or to this prompt's own error).
        ``on_text`` receives the completion's text piece by piece as it is generated."""
        return self._submit([(prompt, params, on_text)])[0]

    def submit_each(
        self, prompts: Sequence[str], params: Sequence[SamplingParams]
    ) -> list[Future[Completion]]:
        """Queue every prompt with its own settings, together: one caller's prompts are composed into
        batches alike on every run, so greedy answers and seeded samples repeat."""
        return self._submit([(p, q, None) for p, q in zip(prompts, params, strict=True)])

    def _submit(self, items: Sequence[tuple[str, SamplingParams, OnText | None]]) -> list[Future[Completion]]:
        futures: list[Future[Completion]] = []
        requests = []
        for prompt, params, on_text in items:
            try:
                requests.append(self._request(prompt, params, on_text))
                futures.append(requests[-1].future)
            except Exception as exc:  # this prompt fails alone
                futures.append(Future())
                futures[-1].set_exception(exc)
        self.scheduler.submit(*requests)
        return futures

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        return self.generate_each(prompts, [params] * len(prompts))

    def generate_each(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Completion]:
        """Complete every prompt with its own settings, all in flight together (``batch_size`` at a time);
        the first failing prompt's error is raised once the others are done."""
        futures = self.submit_each(prompts, params)
        wait(futures)
        return [f.result() for f in futures]

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        pieces: queue.Queue[str | None] = queue.Queue()
        request = self._request(prompt, params, pieces.put)
        future = request.future
        self.scheduler.submit(request)
        future.add_done_callback(lambda _: pieces.put(None))
        try:
            while (piece := pieces.get()) is not None:
                yield piece
            future.result()  # a failed decode is raised, not ended quietly
        finally:
            request.cancelled.set()  # the caller stopped reading: the sequence stops at the next step

    @property
    def queue_depth(self) -> int:
        """Prompts waiting for a free sequence slot."""
        return self.scheduler.queue_depth

    def close(self) -> None:
        """Free the decoding context now (the engine cannot generate afterwards); otherwise that happens when
        the engine is garbage-collected, before the model is freed."""
        self.scheduler.close()

    def render_chat(self, messages: list[dict[str, str]]) -> str | None:
        if self.chat_template is None:
            return None
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        # the template's BOS is dropped: llama.cpp adds BOS itself when it tokenizes the prompt
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=True, bos_token="", eos_token=""
        )

    def count_tokens(self, text: str) -> int:
        return len(self._tokens(text))

    def _tokens(self, text: str) -> list[int]:
        """``text`` as the model reads it: BOS added, special tokens parsed."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)


def _weak(method: Callable[..., T]) -> Callable[..., T]:
    """``method`` without a strong reference to its object."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> T:
        bound = ref()
        if bound is None:
            raise ReferenceError("the llama.cpp engine is gone")
        return bound(*args)

    return call


def _route_native_logs() -> None:
    """Send llama.cpp's native log lines to Python logging: errors show by default, its warnings
    (mostly about cache sizes) with -v, the rest with -vv. ggml levels: 1 debug, 2 info, 3 warn, 4 error."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import llama_cpp

    levels = {3: logging.INFO, 4: logging.ERROR}

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]  # a ctypes callback factory
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        message = text.decode("utf-8", errors="replace").rstrip()
        if message:
            log.log(levels.get(level, logging.DEBUG), "%s", message)

    _LOG_CALLBACK = callback
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
