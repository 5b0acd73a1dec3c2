"""The llama.cpp engine (llama-cpp-python) for GGUF files: the fast path on CPU."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
import secrets
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from knowlm.config import ModelConfig, SamplingParams
from knowlm.engines.base import Completion, FinishReason, special_stop_ids
from knowlm.errors import InputError, MissingDependencyError, ModelLoadError
from knowlm.models.resolve import resolve_model

if TYPE_CHECKING:
    from llama_cpp.llama_types import CreateCompletionResponse, CreateCompletionStreamResponse

    from knowlm.ie.instructions import Instructions

log = logging.getLogger(__name__)
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
                n_ctx=config.n_ctx,
                n_threads=config.threads or os.cpu_count() or 1,
                n_gpu_layers=-1 if config.device.startswith("cuda") else 0,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {resolved.path}: {exc}") from exc
        self.model_name = config.model
        self.chat_template = self._chat_template(resolved.kind == "default")
        self.ie_instructions = self._instructions()
        self._lock = threading.Lock()  # a llama.cpp context serves one request at a time
        self._llg_tokenizer: Any = None

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

    def _kwargs(self, params: SamplingParams) -> dict[str, Any]:
        params.validate()
        if params.num_beams > 1:
            raise InputError(
                "the llamacpp engine has no beam search; use num_beams 1 or --engine transformers"
            )
        return {
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,
            "repeat_penalty": params.repetition_penalty,
            "stop": list(params.stop),
            # no seed: fresh randomness every call (llama.cpp would otherwise reuse its last seed)
            "seed": params.seed if params.seed is not None else secrets.randbits(31),
        }

    def _constraint(self, params: SamplingParams) -> dict[str, Any]:
        """Sampler arguments: stops on special tokens (`StopTokens`) and a constraint — llguidance's token
        mask as a logits processor (fast on large vocabularies), or llama.cpp's own GBNF grammar for a
        JSON schema when llguidance is missing."""
        from llama_cpp import LogitsProcessorList

        processors: list[Any] = []
        extra: dict[str, Any] = {}
        if params.json_schema is not None or params.grammar is not None:
            if params.grammar is None and importlib.util.find_spec("llguidance") is None:
                from llama_cpp.llama_grammar import LlamaGrammar

                extra["grammar"] = LlamaGrammar.from_json_schema(
                    json.dumps(params.json_schema), verbose=False
                )
            else:
                from knowlm.engines.constrain import NumpyMaskProcessor, compiled_grammar

                grammar = compiled_grammar(params)
                assert grammar is not None
                processors.append(NumpyMaskProcessor(self._ll_tokenizer(), grammar))
        stop_ids = special_stop_ids(params.stop, self._special_token)
        if stop_ids:
            processors.append(StopTokens(stop_ids, self.llm.token_eos()))
        return {**extra, **({"logits_processor": LogitsProcessorList(processors)} if processors else {})}

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

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        kwargs = self._kwargs(params)
        results = []
        for prompt in prompts:
            self._check_length(prompt, params)
            with self._lock:  # llama.cpp reuses the KV cache of the prefix shared with the last prompt
                out = cast(
                    "CreateCompletionResponse",
                    self.llm.create_completion(prompt, **kwargs, **self._constraint(params)),
                )
            choice, usage = out["choices"][0], out["usage"]
            finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
            results.append(
                Completion(choice["text"], usage["prompt_tokens"], usage["completion_tokens"], finish)
            )
        return results

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        kwargs = self._kwargs(params)
        self._check_length(prompt, params)
        with self._lock:
            chunks = cast(
                "Iterator[CreateCompletionStreamResponse]",
                self.llm.create_completion(prompt, stream=True, **kwargs, **self._constraint(params)),
            )
            for chunk in chunks:
                text = chunk["choices"][0]["text"]
                if text:
                    yield text

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
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def _check_length(self, prompt: str, params: SamplingParams) -> None:
        n = self.count_tokens(prompt)
        if n + params.max_new_tokens > self.llm.n_ctx():
            raise InputError(
                f"prompt ({n} tokens) + max_new_tokens ({params.max_new_tokens}) exceed the context of "
                f"{self.llm.n_ctx()} tokens; shorten the prompt or raise --n-ctx"
            )


class StopTokens:
    """llama-cpp-python logits processor: sampling one of ``ids`` (special tokens that end the answer, such
    as a chat template's turn markers) means stopping, so their probability goes to the end-of-generation
    token ``eos`` (log-sum-exp: the chance of stopping is exactly theirs plus its own) and they are never
    emitted. llama.cpp drops special tokens from the text it returns, so a stop string could not see them."""

    def __init__(self, ids: list[int], eos: int) -> None:
        self.ids, self.eos = [i for i in ids if i != eos], eos

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        if not self.ids:
            return scores
        scores = scores.copy()
        scores[self.eos] = np.logaddexp.reduce(np.append(scores[self.ids], scores[self.eos]))
        scores[self.ids] = -np.inf
        return scores


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
